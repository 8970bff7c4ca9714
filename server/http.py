"""Engram over HTTP: streamable HTTP at /mcp, legacy SSE at /sse (+ /messages/), GET /healthz.

Bearer tokens map to principals; each principal sees only its own memory. Tokens come from the
`tokens` setting or from `engram tokens create` (stored hashed). With no token anywhere, HTTP serves the
local user, and only on a loopback address. Host and Origin headers are checked (DNS rebinding) and
request bodies are bounded by the SDK's transports.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from engram.server.runtime import PRINCIPAL_KEY, DatabaseOpener, Runtime, open_runtime
from engram.server.settings import Settings
from engram.storage.errors import ConfigurationError

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz"})
LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]

Verify = Callable[[str], Awaitable[str | None]]  # token -> principal name, or None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_security(settings: Settings) -> TransportSecuritySettings:
    hosts = [*LOOPBACK_HOSTS, *settings.allowed_hosts]
    if not is_loopback(settings.host) and settings.host not in ("0.0.0.0", "::"):
        hosts += [settings.host, f"{settings.host}:*"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[*LOOPBACK_ORIGINS, *settings.allowed_origins],
    )


class BearerAuth:
    """Requires `Authorization: Bearer <token>` on every path but /healthz when `verify` is set, and puts
    the token's principal in the request's scope for the tools. Without `verify`, everyone is local."""

    def __init__(self, app: ASGIApp, verify: Verify | None) -> None:
        self._app = app
        self._verify = verify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._verify is None or scope.get("path") in OPEN_PATHS:
            await self._app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await _unauthorized(scope, receive, send, "missing bearer token: send 'Authorization: Bearer <token>'")
            return
        principal = await self._verify(token.strip())
        if principal is None:
            await _unauthorized(scope, receive, send, "invalid or revoked token")
            return
        await self._app({**scope, PRINCIPAL_KEY: principal}, receive, send)


async def _unauthorized(scope: Scope, receive: Receive, send: Send, reason: str) -> None:
    response = JSONResponse({"error": "unauthorized", "detail": reason}, status_code=401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="engram"'
    await response(scope, receive, send)


def static_verifier(settings: Settings) -> Callable[[str], str | None]:
    """Tokens from settings, compared by hash in constant time."""
    from engram.storage.tokens import token_hash

    known = [(token_hash(token.get_secret_value()), principal) for principal, token in settings.tokens.items()]

    def verify(token: str) -> str | None:
        digest = token_hash(token)
        found = None
        for expected, principal in known:
            if hmac.compare_digest(digest, expected):
                found = principal
        return found

    return verify


def build_http_app(
    server: MCPServer[Runtime],
    settings: Settings,
    running: list[Runtime],
    *,
    opener: DatabaseOpener | None = None,
    require_tokens: bool,
) -> ASGIApp:
    """The ASGI app `engram serve --transport http` runs. The Engram context (database, embedder, worker)
    opens once with the app and is shared by every MCP session, streamable or SSE."""
    security = transport_security(settings)
    streamable = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=settings.http_stateless,
        transport_security=security,
        host=settings.host,
        max_request_body_size=settings.max_request_bytes,
    )
    sse = server.sse_app(
        sse_path="/sse",
        message_path="/messages/",
        transport_security=security,
        host=settings.host,
        max_request_body_size=settings.max_request_bytes,
    )
    from_settings = static_verifier(settings)

    async def verify(token: str) -> str | None:
        principal = from_settings(token)
        if principal is None and running:
            from engram.storage.tokens import principal_of as stored_principal

            database, _ = await running[-1].backend.wait()
            async with database.sessions.begin() as session:
                principal = await stored_principal(session, token)
        return principal

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with open_runtime(settings, opener, background=True) as runtime:
            running.append(runtime)
            try:
                yield
            finally:
                running.remove(runtime)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            async with lifespan():
                await streamable(scope, receive, send)  # runs the streamable session manager
            return
        path = scope.get("path", "")
        target = sse if path == "/sse" or path.startswith("/messages/") else streamable
        await target(scope, receive, send)

    return BearerAuth(dispatch, verify if require_tokens else None)


def register_health(server: MCPServer[Runtime], running: list[Runtime]) -> None:
    async def healthz(_request: Request) -> Response:
        """Whether the database answers with the current schema, and the embedder's state; no secrets."""
        if not running:
            return JSONResponse({"ok": False, "database": "not open"}, status_code=503)
        report = await running[-1].health()
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    server.custom_route("/healthz", methods=["GET"])(healthz)


def check_binding(settings: Settings, require_tokens: bool) -> None:
    """Refuse to serve memory without authentication beyond loopback."""
    if not require_tokens and not is_loopback(settings.host):
        raise ConfigurationError(
            f"refusing to serve HTTP on {settings.host} without authentication: create a token with "
            "'engram tokens create NAME' (or set tokens in the config), or bind to 127.0.0.1"
        )
