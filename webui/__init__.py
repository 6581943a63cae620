"""Server-rendered pages and feeds; defines the narrow read interface it needs and never imports ftm.node."""
