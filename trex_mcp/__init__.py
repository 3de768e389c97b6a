"""trex-mcp: an MCP server that automates LLM fine-tuning as an agent-driven tree search."""

__version__ = "0.1.0"
