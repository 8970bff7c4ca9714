"""`engram ui`: the web memory browser on this machine. It serves what `engram serve --transport http` serves
(the page at /, the REST API it reads at /v1, and /mcp) on 127.0.0.1 only, with the configured database, and
opens the default browser at it."""

from __future__ import annotations

import argparse
import sys

from engram.server.settings import Settings
from engram.storage.errors import ConfigurationError

LOOPBACK = "127.0.0.1"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    ui = commands.add_parser(
        "ui", parents=[common], help="browse and curate memory in a web browser (served on 127.0.0.1 only)"
    )
    ui.add_argument("--port", type=int, help="port on 127.0.0.1 (default 8283, the HTTP server's)")
    ui.add_argument(
        "--no-browser", dest="open_browser", action="store_false", help="print the address without opening a browser"
    )
    ui.set_defaults(run=_ui)


def _ui(settings: Settings, args: argparse.Namespace) -> int:
    import socket
    import threading
    import webbrowser

    import uvicorn

    from engram.server.cli.serve import http_app, leave_on_signal
    from engram.server.runtime import default_opener

    local = settings.model_copy(update={"host": LOOPBACK, "transport": "http"})
    app = http_app(local, default_opener(local))
    try:
        # Listening before the server starts: a browser that connects while the database opens waits in the
        # backlog instead of being refused.
        listener = socket.create_server((LOOPBACK, local.port))
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on {LOOPBACK}:{local.port} ({exc.strerror}); choose another port with --port"
        ) from None
    url = f"http://{LOOPBACK}:{local.port}/"
    announcement = f"Engram's memory browser: {url} (Ctrl+C stops it)"
    print(announcement, flush=True)
    print(announcement, file=sys.stderr, flush=True)
    if args.open_browser:
        # A terminal browser (lynx, w3m) blocks until it exits: the server must not wait for it.
        threading.Thread(target=webbrowser.open, args=(url,), name="engram-open-browser", daemon=True).start()
    leave_on_signal()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    server.run(sockets=[listener])
    return 0 if server.started else 1
