"""`engram serve`: the MCP server over stdio (the default) or HTTP.

Everything heavy (the MCP SDK, SQLAlchemy, uvicorn) is imported once the command runs, and over stdio
only after the embedded PostgreSQL has begun starting, so that a host's server answers quickly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from engram.server.cli.operation import run_with_scope
from engram.server.settings import TOOL_PROFILES, Settings, SettingsError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from engram.storage.database import Database
    from engram.tools.scope import Scope


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    serve = commands.add_parser("serve", parents=[common], help="run the MCP server (stdio, or HTTP)")
    serve.add_argument("--default-agent", dest="default_agent", help="agent used when a call names none")
    serve.add_argument("--transport", choices=("stdio", "http", "sse"), help="default stdio; http also serves SSE")
    serve.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8283)")
    serve.add_argument(
        "--stateless", dest="http_stateless", action="store_const", const=True, help="stateless streamable HTTP"
    )
    serve.add_argument(
        "--tools",
        dest="tool_profile",
        metavar="PROFILE",
        help="tools offered: memory (the default: what a conversation needs), full (every tool), or tool and "
        "profile names separated by commas",
    )
    serve.set_defaults(run=_serve)


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    import threading

    if settings.tool_profile not in TOOL_PROFILES:
        # Tool names are checked before anything starts (importing the server first: named profiles skip this).
        from engram.server.app import offered_tools

        try:
            offered_tools(settings.tool_profile)
        except SettingsError as exc:
            print(f"engram: {exc}", file=sys.stderr)
            return 2

    if settings.transport != "stdio":
        from engram.server.runtime import default_opener

        return _serve_http(settings, default_opener(settings))

    # The embedded PostgreSQL starts in a subprocess; begin it now, so it runs while the MCP SDK imports.
    starter = None
    if settings.database_url is None:
        from engram.storage.embedded import start_embedded

        starter = threading.Thread(
            target=_ignore_errors(start_embedded), args=(settings.data_dir,), name="engram-pg-start", daemon=True
        )
        starter.start()

    import anyio

    from engram.server.app import build_server
    from engram.server.runtime import default_opener
    from engram.server.stdio import serve_stdio

    open_database = default_opener(settings)

    def opener() -> Database:
        if starter is not None:
            starter.join()  # start_embedded then finds the running server (or reports why it failed)
        return open_database()

    # A host may stop its server with a signal while stdin is still open; a normal exit would then wait
    # for the thread blocked reading stdin. Release the embedded PostgreSQL and leave at once.
    leave_on_signal()
    anyio.run(serve_stdio, build_server(settings, opener=opener))
    return 0


def leave_on_signal() -> None:
    """On SIGTERM, SIGINT or SIGHUP: release the embedded PostgreSQL (stopping it if no other process uses it)
    and exit at once. Under HTTP, uvicorn handles the signal first (a graceful shutdown) and then
    raises it again, which lands here: a signal's death would skip the release that exit handlers do.
    A start still in progress in another thread is waited for first (release_all), or it would be left running."""
    import signal

    def terminate(signum: int, _frame: object) -> None:
        from engram.storage.embedded import release_all

        release_all()
        os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, terminate)


def _serve_http(settings: Settings, opener: Callable[[], Database]) -> int:
    import uvicorn

    app = http_app(settings, opener)
    leave_on_signal()
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", lifespan="on")
    return 0


def http_app(settings: Settings, opener: Callable[[], Database]) -> ASGIApp:
    """The app `engram serve --transport http` (and `engram ui`) runs: tokens are required once any exists
    (in settings or stored), and serving without them is refused beyond loopback."""
    from engram.server.http import build_http_app, check_binding

    async def stored_tokens(scope: Scope) -> bool:
        from engram.storage.tokens import any_active

        async with scope.sessions.begin() as session:
            return await any_active(session)

    require_tokens = bool(settings.tokens) or run_with_scope(settings, stored_tokens)
    check_binding(settings, require_tokens)
    app = build_http_app(settings, opener=opener, require_tokens=require_tokens)
    logging.getLogger(__name__).info(
        "serving MCP on http://%s:%d/mcp (and /sse); %s",
        settings.host,
        settings.port,
        "bearer tokens required" if require_tokens else "no tokens: the local user, loopback only",
    )
    return app


def _ignore_errors(function: Callable[..., object]) -> Callable[..., None]:
    """For a warm-up whose failure the real call will meet again and report."""

    def run(*args: object) -> None:
        try:
            function(*args)
        except Exception:
            pass

    return run
