"""Registering the memory operations of `tools/` as MCP tools.

An operation in `tools/` takes a `Scope` first and its model-facing arguments after. Here each becomes
an MCP tool whose schema is the operation's own signature without the scope; the scope comes from the
request context, and Engram's errors become tool errors the model can read and act on.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError

from engram.storage.errors import EngramError, NotFoundError, first_line
from engram.tools.scope import Scope

Operation = Callable[..., Awaitable[Any]]
ScopeOf = Callable[[Context], Awaitable[Scope]]


def as_mcp_tool(operation: Operation, scope_of: ScopeOf) -> Callable[..., Awaitable[Any]]:
    """Wrap `operation(scope, **arguments)` as `tool(**arguments, ctx)` with the same schema and docstring."""
    signature = inspect.signature(operation, eval_str=True)
    hints = typing.get_type_hints(operation, include_extras=True)
    arguments = list(signature.parameters.values())[1:]
    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)

    @functools.wraps(operation)
    async def tool(*, ctx: Context, **kwargs: Any) -> Any:
        with tool_errors():
            return await operation(await scope_of(ctx), **kwargs)

    del tool.__wrapped__  # the SDK must read the signature below, not the operation's
    tool.__signature__ = signature.replace(parameters=[*arguments, context])  # type: ignore[attr-defined]
    tool.__annotations__ = {
        **{parameter.name: hints[parameter.name] for parameter in arguments},
        "ctx": Context,
        "return": hints["return"],
    }
    return tool


@contextmanager
def tool_errors() -> Iterator[None]:
    try:
        yield
    except EngramError as exc:
        raise ToolError(str(exc)) from exc
    except Exception as exc:
        from sqlalchemy.exc import DBAPIError  # imported by now: a tool runs only once the database is open

        if isinstance(exc, DBAPIError):
            raise ToolError(f"the database failed: {first_line(exc.orig)}; run 'engram doctor' to check it") from exc
        raise


@contextmanager
def resource_errors() -> Iterator[None]:
    try:
        yield
    except NotFoundError as exc:
        raise ResourceNotFoundError(str(exc)) from exc
    except EngramError as exc:
        raise ResourceError(str(exc)) from exc
