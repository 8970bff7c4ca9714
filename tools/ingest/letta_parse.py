"""Reading Letta's agent files (.af): the current format (top-level `agents`), the flat 0.6.x format, and files
whose JSON is a string holding the JSON, checked and turned into what `agent_files` stores.

Every error names the place in the file (`agents[0] ('helper').messages[3]`) and what is wrong. MemGPT's JSON
envelopes (`{"type": "user_message", "message": ...}`) are unwrapped to their text; its heartbeat, login and
system-alert events become system messages, so that they are never found as something the user said.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from engram.storage.errors import InvalidInputError
from engram.tools.arguments import (
    Role,
    check_context_window,
    check_label,
    check_model,
    check_tags,
    check_text,
    parse_moment,
)
from engram.tools.ingest.history import MAX_SEARCHABLE_CHARS
from engram.tools.loop.functions import SEARCH_CALLS
from engram.tools.loop.prompt import DEFAULT_SYSTEM_PROMPT
from engram.tools.memory.agents import MAX_BLOCKS_PER_AGENT, MAX_DESCRIPTION_CHARS, BlockSpec
from engram.tools.memory.blocks import MAX_LIMIT
from engram.tools.repositories import message_repo
from engram.tools.scope import Scope

log = logging.getLogger(__name__)

MAX_AGENT_FILE_BYTES = 100_000_000
EXPECTED = (
    "expected a Letta agent file (.af): a JSON object with an 'agents' list, or a Letta 0.6 agent object with "
    "'core_memory' and 'messages'"
)
LETTA_ROLES: dict[str, Role] = {
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
    "system": "system",
}
# MemGPT's events, sent to its model as user messages in a JSON envelope: kept as system messages.
EVENTS = ("heartbeat", "login", "system_alert")


@dataclass(frozen=True)
class FileMessage:
    index: int  # its place in the file's messages
    draft: message_repo.NewMessage


@dataclass(frozen=True)
class FileAgent:
    where: str  # how errors name it
    name: str | None
    system: str
    description: str
    tags: list[str]
    llm: dict[str, Any]
    blocks: list[tuple[str, BlockSpec]]  # with the file's id: agents listing one block id share one block
    messages: list[FileMessage]  # those to store, in the file's order
    in_context: set[int] | None  # indices of the file's in-context messages; None: the file does not say
    tools: list[str]  # the Letta tools it lists (code Engram does not run)


def parse_agent_file(data: bytes | str, scope: Scope, *, keep_messages: bool) -> list[FileAgent]:
    """The agents of a Letta agent file, checked; nothing is stored."""
    return _file_agents(_load(data), scope, keep_messages=keep_messages)


def _load(data: bytes | str) -> Any:
    """The file's JSON, decoded a second time when it is a JSON string holding the JSON."""
    too_large = len(data) > MAX_AGENT_FILE_BYTES  # a character takes one byte or more
    if too_large or (isinstance(data, str) and len(data.encode("utf-8", "surrogatepass")) > MAX_AGENT_FILE_BYTES):
        raise InvalidInputError(
            f"the agent file is over {MAX_AGENT_FILE_BYTES // 1_000_000} MB; Letta's agent files are far smaller: "
            "check that this is an agent file"
        )
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"the agent file is not UTF-8 text (bad byte at offset {exc.start}); {EXPECTED}"
        ) from None
    parsed = _json(text, "the agent file")
    return _json(parsed, "the JSON string in the agent file") if isinstance(parsed, str) else parsed


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); {EXPECTED}"
        ) from None


def _file_agents(data: Any, scope: Scope, *, keep_messages: bool) -> list[FileAgent]:
    if not isinstance(data, dict):
        raise InvalidInputError(f"the agent file holds {_kind(data)}; {EXPECTED}")
    if "agents" in data:
        agents = _field(data, "agents", list, "the agent file") or []
        if not agents:
            raise InvalidInputError("the agent file holds no agents: its 'agents' list is empty")
        blocks: dict[str, dict[str, Any]] = {}
        for index, raw in enumerate(_field(data, "blocks", list, "the agent file") or []):
            block = _object(raw, f"blocks[{index}]")
            blocks[str(block.get("id"))] = block
        tools = {
            str(tool.get("id")): _tool_name(tool)
            for tool in _field(data, "tools", list, "the agent file") or []
            if isinstance(tool, dict)
        }
        return [
            _current_agent(raw, blocks, tools, f"agents[{index}]", scope, keep_messages)
            for index, raw in enumerate(agents)
        ]
    if "core_memory" in data:
        return [_legacy_agent(data, scope, keep_messages)]
    raise InvalidInputError(f"the agent file has neither 'agents' nor 'core_memory'; {EXPECTED}")


def _tool_name(tool: Any) -> str:
    """A Letta tool's name, as a file lists it (an object, or in 0.6.x files sometimes the name alone)."""
    name = tool.get("name") if isinstance(tool, dict) else tool
    return _clean(str(name))[:200] if name else "(unnamed)"


def _current_agent(
    raw: Any,
    blocks: dict[str, dict[str, Any]],
    tools: dict[str, str],
    where: str,
    scope: Scope,
    keep_messages: bool,
) -> FileAgent:
    agent = _object(raw, where)
    where = _named(agent, where)
    specs: list[tuple[str, BlockSpec]] = []
    for block_id in _field(agent, "block_ids", list, where) or []:
        if str(block_id) not in blocks:
            raise InvalidInputError(f"{where}: 'block_ids' names {block_id!r}, which is not in the file's 'blocks'")
        specs.append((str(block_id), _block(blocks[str(block_id)], f"{where}: block {block_id!r}", scope)))
    raw_messages = (_field(agent, "messages", list, where) or []) if keep_messages else []
    positions: dict[str, int] = {}
    for index, message in enumerate(raw_messages):
        message_id = _object(message, f"{where}.messages[{index}]").get("id")
        if isinstance(message_id, str):
            if message_id in positions:
                raise InvalidInputError(f"{where}: two messages have the id {message_id!r}; message ids must differ")
            positions[message_id] = index
    in_context: set[int] | None = None
    listed = _field(agent, "in_context_message_ids", list, where) or []
    if listed and keep_messages:
        unknown = [message_id for message_id in listed if message_id not in positions]
        if unknown:
            raise InvalidInputError(
                f"{where}: 'in_context_message_ids' names {unknown[0]!r}, which is not one of its messages"
            )
        in_context = {positions[message_id] for message_id in listed}
    names = [tools.get(str(tool_id), str(tool_id)) for tool_id in _field(agent, "tool_ids", list, where) or []]
    return _agent(agent, where, specs, raw_messages, in_context, scope, names)


def _legacy_agent(agent: dict[str, Any], scope: Scope, keep_messages: bool) -> FileAgent:
    where = _named(agent, "the agent")
    specs = [
        (str(index), _block(_object(block, f"{where}.core_memory[{index}]"), f"{where}.core_memory[{index}]", scope))
        for index, block in enumerate(_field(agent, "core_memory", list, where) or [])
    ]
    raw_messages = (_field(agent, "messages", list, where) or []) if keep_messages else []
    indices = _field(agent, "in_context_message_indices", list, where)
    in_context: set[int] | None = None
    if indices is not None and keep_messages:
        if not all(isinstance(index, int) and 0 <= index < len(raw_messages) for index in indices):
            raise InvalidInputError(
                f"{where}: 'in_context_message_indices' must hold places in its messages (0-{len(raw_messages) - 1})"
            )
        in_context = set(indices)
    elif any(isinstance(message, dict) and "in_context" in message for message in raw_messages):
        in_context = {
            index for index, message in enumerate(raw_messages) if _object(message, where).get("in_context") is True
        }
    tools = [_tool_name(tool) for tool in _field(agent, "tools", list, where) or []]
    return _agent(agent, where, specs, raw_messages, in_context, scope, tools)


def _agent(
    agent: dict[str, Any],
    where: str,
    blocks: list[tuple[str, BlockSpec]],
    raw_messages: list[Any],
    in_context: set[int] | None,
    scope: Scope,
    tools: list[str],
) -> FileAgent:
    """The parts both formats share: settings, and the messages to store (not the system prompt)."""
    if len(blocks) > MAX_BLOCKS_PER_AGENT:
        raise InvalidInputError(f"{where} has {len(blocks)} blocks; an agent may have at most {MAX_BLOCKS_PER_AGENT}")
    labels = [block.label for _, block in blocks]
    if len(set(labels)) != len(labels):
        raise InvalidInputError(f"{where}: two of its blocks share a label; every block needs its own label")
    system = _clean(_field(agent, "system", str, where) or "")
    check_text(f"{where}.system", system, max_chars=scope.max_input_chars, allow_empty=True)
    description = _clean(_field(agent, "description", str, where) or "")
    check_text(f"{where}.description", description, max_chars=MAX_DESCRIPTION_CHARS, allow_empty=True)
    try:
        tags = check_tags([_clean(str(tag)) for tag in _field(agent, "tags", list, where) or []])
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None
    messages = [
        _message(raw, index, f"{where}.messages[{index}]")
        for index, raw in enumerate(raw_messages)
        if not _is_system_prompt(_object(raw, f"{where}.messages[{index}]"), index, system)
    ]
    return FileAgent(
        where=where,
        name=_field(agent, "name", str, where),
        system="" if system == DEFAULT_SYSTEM_PROMPT else system,
        description=description,
        tags=tags,
        llm=_llm(agent.get("llm_config"), where),
        blocks=blocks,
        messages=messages,
        in_context=in_context,
        tools=tools,
    )


def _is_system_prompt(message: dict[str, Any], index: int, system: str) -> bool:
    """Letta's message 0 is the agent's compiled system prompt: the agent's system setting holds it already."""
    return message.get("role") == "system" and (index == 0 or _text(message) == system)


def _llm(config: Any, where: str) -> dict[str, Any]:
    """The model and context window the file gives, each kept only if Engram's checks accept it."""
    if config is None:
        return {}
    settings = _object(config, f"{where}.llm_config")
    llm: dict[str, Any] = {}
    model = settings.get("model")
    if model is not None:
        try:
            llm["model"] = check_model(str(model))
        except InvalidInputError as exc:
            log.info("%s: the model is left unset: %s", where, exc)
    window = settings.get("context_window")
    if isinstance(window, int) and not isinstance(window, bool) and window:
        try:
            llm["context_window"] = check_context_window(window)
        except InvalidInputError as exc:
            log.info("%s: the context window is left unset: %s", where, exc)
    return llm


def _block(block: dict[str, Any], where: str, scope: Scope) -> BlockSpec:
    label = block.get("label")
    if not isinstance(label, str):
        raise InvalidInputError(f"{where}: 'label' must be a string, not {_kind(label)}")
    try:
        check_label(label)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None
    where = f"{where} ('{label}')"
    value = _clean(_field(block, "value", str, where) or "")
    if len(value) > MAX_LIMIT:
        raise InvalidInputError(f"{where} holds {len(value)} characters; a block holds at most {MAX_LIMIT}")
    limit = block.get("limit")
    chosen = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None
    description = _clean(_field(block, "description", str, where) or "")
    check_text(f"{where}.description", description, max_chars=MAX_DESCRIPTION_CHARS, allow_empty=True)
    return BlockSpec(
        label=label,
        value=value,
        # a value longer than its limit raises the limit: the text is never cut
        limit=min(MAX_LIMIT, max(chosen or scope.defaults.block_char_limit, len(value), 1)),
        description=description,
        read_only=bool(block.get("read_only")),
    )


def _message(raw: Any, index: int, where: str) -> FileMessage:
    message = _object(raw, where)
    role = LETTA_ROLES.get(str(message.get("role")))
    if role is None:
        raise InvalidInputError(
            f"{where}: role {message.get('role')!r} is not one Engram stores (user, assistant, tool, function, "
            "system); pass strip_messages to import the agent without its history"
        )
    role, text, event = _unwrapped(role, _text(message))
    calls = _tool_calls(message.get("tool_calls"), where)
    content: dict[str, Any] = {"text": text}
    if event is not None:
        content["event"] = event
    if calls:
        content["tool_calls"] = calls
    for field in ("tool_call_id", "name"):
        if isinstance(message.get(field), str):
            content[field] = _clean(message[field])
    returns = message.get("tool_returns")
    status = (
        returns[0].get("status") if isinstance(returns, list) and returns and isinstance(returns[0], dict) else None
    )
    if role == "tool" and status in ("success", "error"):
        content["ok"] = status == "success"
    names = [call["function"]["name"] for call in calls]
    searchable = f"{text}\n[called {', '.join(names)}]".strip() if calls else text
    search_call = (bool(names) and all(n in SEARCH_CALLS for n in names) and not text) or (
        role == "tool" and content.get("name") in SEARCH_CALLS
    )
    created_at = message.get("created_at")
    if created_at is not None and not isinstance(created_at, str):
        raise InvalidInputError(f"{where}: 'created_at' must be ISO 8601 text, not {_kind(created_at)}")
    message_id = message.get("id")
    draft = message_repo.NewMessage(
        role=role,
        text=searchable[:MAX_SEARCHABLE_CHARS],
        content=content,
        created_at=parse_moment(f"{where}.created_at", created_at, end_of_day=False),
        external_key=f"af:{message_id if isinstance(message_id, str) else index}",
        search_call=search_call,
    )
    return FileMessage(index=index, draft=draft)


def _unwrapped(role: Role, text: str) -> tuple[Role, str, str | None]:
    """(role, text, event) of a message, out of MemGPT's JSON envelope when it has one: a user message's text
    alone; a heartbeat, login or system alert as a system message saying what happened."""
    if role not in ("user", "system") or not text.startswith("{"):
        return role, text, None
    try:
        envelope = json.loads(text)
    except json.JSONDecodeError:
        return role, text, None
    kind = envelope.get("type") if isinstance(envelope, dict) else None
    if kind == "user_message" and isinstance(envelope.get("message"), str):
        return role, _clean(envelope["message"]), None
    if kind not in EVENTS:
        return role, text, None
    if kind == "login":
        said = f"[login] last login: {envelope.get('last_login') or 'unknown'}"
    else:
        detail = envelope.get("reason") if kind == "heartbeat" else envelope.get("message")
        said = f"[{kind.replace('_', ' ')}] {detail}" if isinstance(detail, str) and detail else f"[{kind}]"
    return "system", _clean(said), kind


def _text(message: dict[str, Any]) -> str:
    """The message's text: its text parts joined, a plain string content, or the legacy 'text' field."""
    content = message.get("content")
    if isinstance(content, str):
        return _clean(content)
    parts: list[str] = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
    if not parts and isinstance(message.get("text"), str):
        parts.append(message["text"])
    return _clean("\n\n".join(parts))


def _tool_calls(value: Any, where: str) -> list[dict[str, Any]]:
    """Tool calls in the OpenAI shape the built-in agent stores (arguments as JSON text)."""
    calls: list[dict[str, Any]] = []
    if value is not None and not isinstance(value, list):
        raise InvalidInputError(f"{where}: 'tool_calls' must be a list, not {_kind(value)}")
    for index, raw in enumerate(value or []):
        call = _object(raw, f"{where}.tool_calls[{index}]")
        function = _object(call.get("function"), f"{where}.tool_calls[{index}].function")
        name = _field(function, "name", str, f"{where}.tool_calls[{index}].function")
        if not name:
            raise InvalidInputError(f"{where}.tool_calls[{index}].function: 'name' is missing")
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments or {}, ensure_ascii=False)
        call_id = call.get("id")
        calls.append(
            {
                "id": _clean(call_id) if isinstance(call_id, str) else "",
                "type": "function",
                "function": {"name": _clean(name), "arguments": _clean(arguments)},
            }
        )
    return calls


def _named(agent: dict[str, Any], where: str) -> str:
    name = agent.get("name")
    return f"{where} ('{name[:100]}')" if isinstance(name, str) else where


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where}: expected a JSON object, found {_kind(value)}")
    return value


def _field(obj: dict[str, Any], field: str, kind: type, where: str) -> Any:
    """`obj[field]` if it is absent, null or of `kind`; else an error naming it."""
    value = obj.get(field)
    if value is not None and not isinstance(value, kind):
        raise InvalidInputError(f"{where}: '{field}' must be {_KINDS[kind]}, not {_kind(value)}")
    return value


def _clean(text: str) -> str:
    """PostgreSQL cannot store NUL characters."""
    return text.replace("\x00", "")


_KINDS: dict[type, str] = {dict: "an object", list: "a list", str: "a string", int: "a number", bool: "true or false"}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return (
        "a number"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else _KINDS.get(type(value), "a value")
    )
