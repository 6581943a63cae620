"""LLM providers behind one neutral interface: Anthropic Messages, OpenAI Chat Completions, compatible servers."""
