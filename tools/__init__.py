"""Engram's memory operations, one module per memory tier; they know nothing of MCP transports."""
