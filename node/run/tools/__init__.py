"""The resident's tools: one module per area, each tool returning its result to the model."""
