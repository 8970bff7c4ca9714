"""Registering the memory operations of `tools/` as MCP tools.

An operation in `tools/` takes a `Scope` first and its model-facing arguments after. Here each becomes
an MCP tool whose schema is the operation's own signature without the scope; the scope comes from the
request context, and Engram's errors become tool errors the model can read and act on.

Arguments are checked strictly before the SDK sees them (`check_arguments`): an unknown argument is refused
with the known ones, a value is never coerced ("5" is not 5, true is not 1), and every refusal is Engram's own
sentence naming the argument and what it must be.

Every tool in tools/list costs each host conversation context, so the listing is lean (`lean_listing`): no
output schemas, no schema titles, an optional argument shown as its type rather than "that type or null",
no hint that says what MCP assumes anyway. Results are compact text beside their structured content
(`compact`).
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import typing
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from mcp_types import Tool as ListedTool
from pydantic import ValidationError

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


def check_arguments(tool: Tool, arguments: dict[str, Any]) -> None:
    """Refuse arguments the tool's schema does not allow, in a sentence that says what to change."""
    known: dict[str, Any] = tool.parameters.get("properties", {})
    unknown = sorted(set(arguments) - set(known))
    if unknown:
        names = ", ".join(f"'{name}'" for name in unknown)
        raise ToolError(
            f"Error executing tool {tool.name}: it takes no argument {names}; its arguments are: "
            f"{', '.join(known) or 'none'}"
        )
    try:
        tool.fn_metadata.arg_model.model_validate_json(json.dumps(arguments), strict=True)
    except ValidationError as exc:
        problems = "; ".join(_explain(error, known) for error in exc.errors()[:3])
        raise ToolError(f"Error executing tool {tool.name}: {problems}") from None


def _explain(error: Any, known: dict[str, Any]) -> str:
    """One validation error as Engram says it: "'top_k' must be a whole number from 1 to 50"."""
    location = [part for part in error["loc"] if not isinstance(part, str) or not part.startswith("function-")]
    name = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
    kind = error["type"]
    if kind == "missing":
        return f"'{name}' is required"
    if kind.startswith(("int_", "greater_than", "less_than")) or kind in ("float_type", "float_parsing"):
        return f"'{name}' must be {_number(known.get(str(location[0]), {}) if location else {})}"
    if kind == "bool_type":
        return f"'{name}' must be true or false"
    if kind.startswith("string_too_long"):
        return f"'{name}' is too long: at most {error.get('ctx', {}).get('max_length')} characters"
    if kind.startswith("string"):
        return f"'{name}' must be text"
    if kind.startswith("list"):
        return f"'{name}' must be a list"
    if kind == "literal_error":
        return f"'{name}' must be one of {error.get('ctx', {}).get('expected')}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"'{name}' must be an object"
    if kind == "extra_forbidden":
        return f"'{name}' is not a field here; remove it"
    return f"'{name}': {error['msg']}"


def _number(schema: dict[str, Any]) -> str:
    """ "a whole number from 1 to 50", from the argument's JSON schema (possibly an anyOf with null)."""
    options = schema.get("anyOf", [schema])
    number = next((option for option in options if option.get("type") in ("integer", "number")), schema)
    what = "a whole number" if number.get("type", "integer") == "integer" else "a number"
    low, high = number.get("minimum"), number.get("maximum")
    if low is not None and high is not None:
        return f"{what} from {low} to {high}"
    if low is not None:
        return f"{what} of at least {low}"
    if high is not None:
        return f"{what} of at most {high}"
    return what


def compact(result: CallToolResult) -> CallToolResult:
    """The result with its text as compact JSON without null fields: the SDK indents it, which costs the host a
    third more tokens for the same data (the structured content beside it is unchanged)."""
    if result.is_error or result.structured_content is None:
        return result
    text = json.dumps(without_nulls(result.structured_content), ensure_ascii=False, separators=(",", ":"))
    return result.model_copy(update={"content": [TextContent(type="text", text=text)]})


def without_nulls(value: Any) -> Any:
    """`value` with every null field of its objects left out (a model reads `"source":null` as noise)."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


# What MCP assumes of a tool that gives no hint (the spec's defaults): a hint equal to it says nothing.
DEFAULT_HINTS = {"read_only_hint": False, "destructive_hint": True, "idempotent_hint": False, "open_world_hint": True}
SCHEMA_MAPS = ("properties", "$defs", "patternProperties")  # keys whose value maps names to schemas
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")  # keys whose value is a list of schemas
SCHEMA_ONE = ("items", "additionalProperties", "not")  # keys whose value is one schema
NULL = {"type": "null"}


def lean_listing(tool: ListedTool) -> ListedTool:
    """The tool as tools/list sends it, saying the same in about half the tokens.

    - No output schema: hosts hand a model the text of a result, not its schema, and a client reads the
      structured content without one (the SDK's client checks structured content only against a schema it
      was given). Results still carry their structured content.
    - The description's paragraphs on one line each (docstrings wrap at 120 columns and indent).
    - The input schema without pydantic's titles (the property's name again, capitalised), and an optional
      argument with a null default as its plain type: leaving it out is how a caller says "none" (an
      explicit null is still accepted).
    - Only the annotations MCP does not assume by default; none of destructive/idempotent on a read-only tool
      (the spec gives them meaning only for tools that change something).
    """
    return tool.model_copy(
        update={
            "description": one_line_paragraphs(tool.description or ""),
            "input_schema": lean_schema(tool.input_schema),
            "output_schema": None,
            "annotations": lean_hints(tool.annotations),
        }
    )


def one_line_paragraphs(docstring: str) -> str:
    """A docstring's paragraphs, each on one line; a line starting a list item ("- ") keeps its break."""
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(docstring))
    return "\n\n".join(re.sub(r"\n(?!- )", " ", paragraph) for paragraph in paragraphs)


def lean_schema(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    lean: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in SCHEMA_MAPS and isinstance(value, dict):
            lean[key] = {name: lean_schema(item) for name, item in value.items()}
        elif key in SCHEMA_LISTS and isinstance(value, list):
            lean[key] = [lean_schema(item) for item in value]
        elif key in SCHEMA_ONE and isinstance(value, dict):
            lean[key] = lean_schema(value)
        else:
            lean[key] = value
    options = lean.get("anyOf")
    if "default" in lean and lean["default"] is None and isinstance(options, list) and len(options) == 2:
        if NULL in options:
            [kept] = [option for option in options if option != NULL]
            rest = {key: value for key, value in lean.items() if key not in ("anyOf", "default")}
            return {**kept, **rest}
    return lean


def lean_hints(hints: ToolAnnotations | None) -> ToolAnnotations | None:
    if hints is None:
        return None
    given = hints.model_dump(exclude_none=True)
    if given.get("read_only_hint"):
        given = {key: value for key, value in given.items() if key not in ("destructive_hint", "idempotent_hint")}
    return ToolAnnotations(**{key: value for key, value in given.items() if DEFAULT_HINTS.get(key) != value})
