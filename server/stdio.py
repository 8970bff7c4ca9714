"""MCP over stdio that answers every line.

The SDK's stdio transport hands a line that is not a JSON-RPC message (not JSON, a lone surrogate such as a
truncated emoji's escape, a message of no known shape) to the session as an exception, which drops it: the
host then waits for its timeout. Here such a line gets the answer the HTTP transport gives: a JSON-RPC
error, "Parse error" (-32700) for text that is not JSON and "Invalid Request" (-32600) for JSON that is not
a message, with the request's id when one can be read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

READ_BUFFER = 0


def _details(exc: Exception) -> list[Any]:
    """The validation errors of an unreadable line (the first says why it could not be read), or none."""
    return list(exc.errors()) if isinstance(exc, ValidationError) else []


def is_blank(exc: Exception) -> bool:
    """Whether the unreadable line was empty or only white space (nothing was asked: no answer is due)."""
    details = _details(exc)
    line = details[0].get("input") if details else None
    return isinstance(line, str) and not line.strip()


def error_for(exc: Exception) -> types.JSONRPCError:
    """The JSON-RPC error answering a line the transport could not read as a message."""
    details = _details(exc)
    if not details:
        return _error(None, types.PARSE_ERROR, f"Parse error: {exc}")
    if details[0]["type"] == "json_invalid":
        return _error(None, types.PARSE_ERROR, f"Parse error: {details[0]['msg']}")
    request_id = next(
        (
            found["id"]
            for error in details
            if isinstance(found := error.get("input"), dict) and isinstance(found.get("id"), int | str)
        ),
        None,
    )
    message = f"Invalid Request: not a JSON-RPC message ({details[0]['msg']})"
    return _error(request_id, types.INVALID_REQUEST, message)


def _error(request_id: int | str | None, code: int, message: str) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))


@asynccontextmanager
async def answering_stdio() -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's stdio streams, with unreadable lines answered instead of passed on to the session."""
    async with stdio_server() as (read_stream, write_stream):
        relay_writer, relay_reader = anyio.create_memory_object_stream[SessionMessage | Exception](READ_BUFFER)

        async def relay() -> None:
            async with relay_writer:
                async for item in read_stream:
                    if isinstance(item, Exception):
                        if not is_blank(item):
                            await write_stream.send(SessionMessage(error_for(item)))
                    else:
                        await relay_writer.send(item)

        async with anyio.create_task_group() as group:
            group.start_soon(relay)
            yield relay_reader, write_stream
            group.cancel_scope.cancel()


async def serve_stdio(server: MCPServer[Any]) -> None:
    """Serve `server` over stdin/stdout until stdin closes (what MCPServer.run("stdio") does, answering
    unreadable lines). The SDK has no public way to serve a MCPServer on given streams, hence the
    low-level server."""
    lowlevel = server._lowlevel_server
    async with answering_stdio() as (read_stream, write_stream):
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
