"""The REST API at /v1: Letta's routes (so Letta's own client works) and Engram's own, on FastAPI.

It runs inside `engram serve --transport http` beside /mcp: the same runtime, tokens and principals (a
request's principal is Starlette's `request.user`), the same Host/Origin checks and body limit. Routes only
translate: each calls the `tools/` operation that the MCP tool of the same job calls.

Errors are JSON `{"detail": ...}` saying what to change: 404 for what the caller does not own (another
principal's agent is "not found", never "forbidden"), 409 for a conflict, 422 for invalid input. Errors a
retry cannot fix carry `x-should-retry: false`, which Letta's client honours.
"""

from __future__ import annotations

import logging
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from mcp.server.transport_security import (
    RequestBodyLimitMiddleware,
    TransportSecurityMiddleware,
    TransportSecuritySettings,
)
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from engram.server import engram_version
from engram.server.rest import agents, context, letta, memory, messages
from engram.server.rest.scope import ScopeDep
from engram.server.runtime import Runtime
from engram.server.settings import Settings
from engram.storage.errors import (
    BackendUnavailableError,
    ConfigurationError,
    ConflictError,
    EngramError,
    InvalidInputError,
    NotFoundError,
    first_line,
)
from engram.tools.loop.llm import LLMError
from engram.tools.memory import records

log = logging.getLogger(__name__)

PREFIX = "/v1"
# Readable without a token: the API's description, its docs page and liveness hold no memory.
OPEN_PATHS = frozenset({f"{PREFIX}/openapi.json", f"{PREFIX}/docs", f"{PREFIX}/health", f"{PREFIX}/health/"})
DOCS_ASSETS = f"{PREFIX}/docs/assets/"
ASSETS = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(DOCS_ASSETS)


def error(status: int, detail: str, *, retry: bool = False) -> JSONResponse:
    response = JSONResponse({"detail": detail}, status_code=status)
    if not retry:
        response.headers["x-should-retry"] = "false"
    return response


def status_of(exc: EngramError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, InvalidInputError):
        return 422
    if isinstance(exc, ConfigurationError):
        return 400
    if isinstance(exc, BackendUnavailableError):
        return 503
    if isinstance(exc, LLMError):
        return 502
    return 400


def build_rest_app(settings: Settings, runtime: Runtime, security: TransportSecuritySettings) -> ASGIApp:
    """The /v1 API as an ASGI app, with Host/Origin checks and the body limit of the MCP transports."""
    app = FastAPI(
        title="Engram",
        version=engram_version(),
        summary="Letta's REST API (as letta-client 1.x uses it) and Engram's own routes, over Engram's memory.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.settings = settings
    app.state.in_flight = {}  # (agent id, otid) -> set when the message's turn is stored

    @app.exception_handler(EngramError)
    async def engram_error(_request: Request, exc: EngramError) -> JSONResponse:
        status = status_of(exc)
        return error(status, str(exc), retry=status == 503)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, "; ".join(_problem(item) for item in exc.errors()[:5]))

    @app.exception_handler(Exception)
    async def failed(_request: Request, exc: Exception) -> JSONResponse:
        from sqlalchemy.exc import DBAPIError

        if isinstance(exc, DBAPIError):
            return error(503, f"the database failed: {first_line(exc.orig)}; run 'engram doctor'", retry=True)
        log.exception("REST request failed")
        return error(500, f"internal error ({type(exc).__name__}); the server's log has the details", retry=True)

    @app.get(f"{PREFIX}/health", include_in_schema=False)
    @app.get(f"{PREFIX}/health/", tags=["health"])
    async def health() -> letta.Health:
        """Liveness: 200 while the process answers (GET /healthz also checks the database)."""
        return letta.Health(status="ok", version=engram_version())

    @app.get(f"{PREFIX}/status", tags=["health"])
    async def status(scope: ScopeDep) -> dict[str, Any]:
        """What GET /healthz reports (database, schema, embedder), and how many of your messages wait to be
        embedded (searchable by keyword until then)."""
        report = await runtime.health()
        return report | {"messages_waiting_for_embedding": await records.waiting_for_embedding(scope)}

    @app.get(f"{PREFIX}/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{PREFIX}/openapi.json",
            title="Engram API",
            swagger_js_url=f"{DOCS_ASSETS}swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}favicon-32x32.png",
        )

    @app.get(DOCS_ASSETS + "{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        """Swagger UI, served from the installed fastapi-swagger package: the docs page needs no network."""
        if name not in ASSETS:
            return error(404, f"no docs asset {name!r}")
        data = files("fastapi_swagger.resources").joinpath(name).read_bytes()
        return Response(data, media_type=ASSETS[name], headers={"cache-control": "max-age=86400"})

    for router in (agents.router, memory.router, messages.router, context.router):
        app.include_router(router, prefix=PREFIX)
    _add_bearer_scheme(app)

    guard = TransportSecurityMiddleware(security)

    async def checked(scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            rejected = await guard.validate_request(Request(scope), is_post=False)
            if rejected is not None:
                await rejected(scope, receive, send)
                return
        await app(scope, receive, send)

    return RequestBodyLimitMiddleware(checked, settings.max_request_bytes)


def _problem(item: Any) -> str:
    location = tuple(item.get("loc", ()))
    if location[:1] in (("body",), ("query",), ("path",)):
        location = location[1:]  # where the field came from: its name says enough
    where = ".".join(str(part) for part in location) or "the request"
    if item.get("type") == "extra_forbidden":
        return f"'{where}' is not a field of this request; remove it"
    if item.get("type") == "missing":
        return f"'{where}' is required" if location else "this request needs a JSON body"
    return f"'{where}': {item.get('msg', 'is not valid')}"


def _add_bearer_scheme(app: FastAPI) -> None:
    """Name the bearer token in the OpenAPI document, so the docs page offers 'Authorize'."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = original()
            document.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A token from 'engram tokens create'."}
            }
            document["security"] = [{"bearer": []}]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
