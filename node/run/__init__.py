"""The daily run: context, tools, the agent loop, and the scheduler that runs every resident once a day."""
