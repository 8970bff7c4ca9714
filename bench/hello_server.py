"""The floor for start-up: a minimal MCPServer over stdio with one tool (what bench/startup.py compares to)."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("hello")


@server.tool()
def hello(name: str) -> str:
    """Say hello."""
    return f"hello {name}"


if __name__ == "__main__":
    server.run("stdio")
