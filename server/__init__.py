"""Engram's MCP wiring: settings, the server, its resources and prompts, transports and the CLI."""


def engram_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("engram")
    except PackageNotFoundError:
        return "0.0.0"
