"""The web memory browser: static files (an HTML page, plain ES modules, a stylesheet) served at `/` and
`/ui/<file>` by the HTTP server, from the installed package. The page holds no memory: it reads and edits
memory only through the /v1 REST API, with the bearer token the person gives it.

Every answer carries a strict Content-Security-Policy (only this origin's own scripts, styles and requests;
no inline scripts, no frames), so that memory text shown in the page can never run as code.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

PREFIX = "/ui/"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",  # revalidated on each load, so an upgraded Engram serves its new files
}
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


def is_ui_path(path: str) -> bool:
    return path == "/" or path.startswith(PREFIX)


def static_files(folder: Traversable, prefix: str = "") -> dict[str, Traversable]:
    """Every file under `folder` by its path relative to it: the only names the app serves (no path
    from a request ever reaches the file system)."""
    found: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.update(static_files(entry, f"{name}/"))
        else:
            found[name] = entry
    return found


def build_ui_app(security: TransportSecuritySettings) -> ASGIApp:
    """The ASGI app for `/` (index.html) and `/ui/<file>`, with the Host check of the other doors."""
    known = static_files(files("engram.server.ui").joinpath("static"))
    guard = TransportSecurityMiddleware(security)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await guard.validate_request(Request(scope), is_post=False)
        if response is None:
            response = _answer(scope, known)
        response.headers.update(HEADERS)
        await response(scope, receive, send)

    return app


def _answer(scope: Scope, known: dict[str, Traversable]) -> Response:
    if scope.get("method") not in ("GET", "HEAD"):
        return PlainTextResponse("read the memory browser's files with GET", status_code=405, headers={"allow": "GET"})
    path: str = scope.get("path", "")
    name = "index.html" if path == "/" else path.removeprefix(PREFIX)
    found = known.get(name)
    suffix = f".{name.rsplit('.', 1)[-1]}" if "." in name else ""
    if found is None or suffix not in MEDIA_TYPES:
        return PlainTextResponse(f"no file {path!r} in the memory browser; open / instead", status_code=404)
    return Response(found.read_bytes(), media_type=MEDIA_TYPES[suffix])
