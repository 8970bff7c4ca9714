"""Engram's MCP wiring: settings, the server, its resources and prompts, transports and the CLI."""
