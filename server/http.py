"""Engram over HTTP: streamable HTTP at /mcp, legacy SSE at /sse (+ /messages/), the REST API at /v1 (its
docs at /v1/docs), the web memory browser at / (its files at /ui/), Claude Code's http hooks at
/hooks/claude-code, GET /healthz.

Bearer tokens map to principals; each principal sees only its own memory. Tokens come from the
`tokens` setting or from `engram tokens create` (stored hashed; checked through storage.tokens.TokenCache,
so an authenticated request costs no database round trip and a revocation still applies to the next
request). With no token anywhere, HTTP serves the local user, and only on a loopback address. Host and
Origin headers are checked (DNS rebinding) and request bodies are bounded by the SDK's transports.

Query embeddings of concurrent requests are joined into one model call (storage.batching).
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable

import anyio
from mcp.server.transport_security import TransportSecuritySettings
from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError, BaseUser, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from engram.server.app import build_server
from engram.server.hooks import HOOK_PATH, build_hook_app
from engram.server.rest.app import PREFIX, build_rest_app, is_open
from engram.server.runtime import DatabaseOpener, Runtime
from engram.server.settings import Settings
from engram.server.ui import build_ui_app, is_ui_path
from engram.storage.batching import BatchingEmbedder
from engram.storage.errors import BackendUnavailableError, ConfigurationError
from engram.storage.tokens import TokenCache

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


class TokenAuthentication(AuthenticationBackend):
    """Bearer tokens as Starlette authentication: a request's `user` is its token's principal.

    Every path but /healthz, the REST API's description (rest.app.is_open) and the memory browser's files
    (which hold no memory: the page sends the token with each /v1 call) needs `Authorization: Bearer
    <token>`; the MCP tools read the principal from `request.user` (server.runtime.principal_of).
    """

    def __init__(self, verify: Verify) -> None:
        self._verify = verify

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        if conn.url.path in OPEN_PATHS or is_open(conn.url.path) or is_ui_path(conn.url.path):
            return None
        scheme, _, token = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("missing bearer token: send 'Authorization: Bearer <token>'")
        principal = await self._verify(token.strip())
        if principal is None:
            raise AuthenticationError("invalid or revoked token")
        return AuthCredentials(["authenticated"]), SimpleUser(principal)


def _unauthorized(_conn: HTTPConnection, exc: AuthenticationError) -> Response:
    response = JSONResponse({"error": "unauthorized", "detail": str(exc)}, status_code=401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="engram"'
    return response


def static_verifier(settings: Settings) -> Callable[[str], str | None]:
    """Tokens from settings, compared by hash in constant time."""
    from engram.storage import sha256_hex

    known = [(sha256_hex(token.get_secret_value()), principal) for principal, token in settings.tokens.items()]

    def verify(token: str) -> str | None:
        digest = sha256_hex(token)
        found = None
        for expected, principal in known:
            if hmac.compare_digest(digest, expected):
                found = principal
        return found

    return verify


def build_http_app(
    settings: Settings,
    *,
    opener: DatabaseOpener | None = None,
    require_tokens: bool,
    token_cache: TokenCache | None = None,
) -> ASGIApp:
    """The ASGI app `engram serve --transport http` runs: one runtime (database, embedder, worker), run
    with the app's lifespan and shared by every MCP session, streamable or SSE, and by /healthz.

    Stored tokens are checked through `token_cache` (a new one if not given), whose listener for
    revocations runs with the app's lifespan."""
    runtime = Runtime.create(settings, opener, background=True)
    if not isinstance(runtime.embedder, BatchingEmbedder):
        # Concurrent sessions' query embeddings share model calls; the background worker keeps its own
        # batches (it holds the embedder it was created with).
        runtime = dataclasses.replace(runtime, embedder=BatchingEmbedder(runtime.embedder))
    server = build_server(settings, runtime)
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
    rest = build_rest_app(settings, runtime, security)
    hooks = build_hook_app(settings, runtime, security)
    ui = build_ui_app(security)
    from_settings = static_verifier(settings)
    tokens = token_cache or TokenCache()

    async def verify(token: str) -> str | None:
        found = from_settings(token)
        if found is not None:
            return found
        database, _ = await runtime.backend.wait()
        return await tokens.principal_of(database.sessions, token)

    async def listen_for_revocations() -> None:
        try:
            database, _ = await runtime.backend.wait()
        except BackendUnavailableError:
            return  # every request reports it
        await tokens.listen(database.engine)

    async def healthz(scope: Scope, receive: Receive, send: Send) -> None:
        """Whether the database answers with the current schema, and the embedder's state; no secrets."""
        report = await runtime.health()
        await JSONResponse(report, status_code=200 if report["ok"] else 503)(scope, receive, send)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            async with runtime.run(), anyio.create_task_group() as group:
                if require_tokens:
                    group.start_soon(listen_for_revocations)
                await streamable(scope, receive, send)  # runs the streamable session manager
                group.cancel_scope.cancel()
            return
        path = scope.get("path", "")
        if path == "/healthz" and scope.get("method") == "GET":
            await healthz(scope, receive, send)
            return
        if path == PREFIX or path.startswith(f"{PREFIX}/"):
            await rest(scope, receive, send)
            return
        if path == HOOK_PATH:
            await hooks(scope, receive, send)
            return
        if is_ui_path(path):
            await ui(scope, receive, send)
            return
        target = sse if path == "/sse" or path.startswith("/messages/") else streamable
        await target(scope, receive, send)

    if not require_tokens:
        return dispatch
    return AuthenticationMiddleware(dispatch, backend=TokenAuthentication(verify), on_error=_unauthorized)


def check_binding(settings: Settings, require_tokens: bool) -> None:
    """Refuse to serve memory without authentication beyond loopback."""
    if not require_tokens and not is_loopback(settings.host):
        raise ConfigurationError(
            f"refusing to serve HTTP on {settings.host} without authentication: create a token with "
            "'engram tokens create NAME' (or set tokens in the config), or bind to 127.0.0.1"
        )
