"""Reading exported chat histories (Claude.ai, ChatGPT, JSON Lines) into plain conversations for recall memory.

`engram import` stores what this returns; this module only parses. Keys are stable across re-imports of the
same export (the source's own ids, or a content hash for JSON Lines), so importing a file twice, or again after
it has grown, can skip what is already stored. Malformed input raises InvalidInputError naming the file, the
place in it and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from engram.storage.errors import InvalidInputError
from engram.tools.arguments import ROLES, Role

ExportFormat = Literal["claude", "chatgpt", "jsonl"]

# Larger than document ingest's cap: a long history's conversations.json runs to a hundred MB and more. Parsing
# takes several times the file's size in memory, and a zip member this large may be a zip bomb.
MAX_EXPORT_BYTES = 250_000_000

_CLAUDE_SENDERS: dict[str, Role] = {"human": "user", "user": "user", "assistant": "assistant"}
_JSON_TYPES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


@dataclass(frozen=True)
class ImportedMessage:
    key: str  # stable across re-imports: the source's message id, or a content hash (JSON Lines)
    role: Role
    text: str  # plain searchable text, never empty
    content: dict[str, Any]  # {"text": ...} plus "tool_calls", "tool_call_id", "name", "attachments" when present
    created_at: datetime | None  # timezone-aware, UTC


@dataclass(frozen=True)
class ImportedConversation:
    key: str  # the source's conversation id (JSON Lines: the "conversation" field)
    title: str  # "" if none
    created_at: datetime | None
    messages: list[ImportedMessage]  # in conversation order


def detect_format(path: Path) -> ExportFormat:
    """The export's format: "jsonl" by name, else from its JSON array of Claude or ChatGPT conversations."""
    if path.suffix.lower() == ".jsonl":
        return "jsonl"
    source, text = _read_source(path)
    return _format_of(_load_json(text, source), source)


def read_export(path: Path, export_format: ExportFormat | None = None) -> list[ImportedConversation]:
    """Every conversation in a .json or .jsonl file, or in the .zip the service emails (its conversations.json)."""
    source, text = _read_source(path)
    if export_format == "jsonl" or (export_format is None and path.suffix.lower() == ".jsonl"):
        return _jsonl_conversations(text, source)
    data = _load_json(text, source)
    if not data:
        return []
    claude = (export_format or _format_of(data, source)) == "claude"
    parse = _claude_conversation if claude else _chatgpt_conversation
    return [parse(item, f"{source}[{index}]") for index, item in enumerate(data)]


def _read_source(path: Path) -> tuple[str, str]:
    """A name for error messages and the text to parse: the file itself, or the conversations.json in a zip."""
    try:
        if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                found = [name for name in archive.namelist() if name.rsplit("/", 1)[-1] == "conversations.json"]
                if not found:
                    raise InvalidInputError(
                        f"{path.name} holds no conversations.json; pass the .zip the service emailed, "
                        "or the extracted conversations.json"
                    )
                info = archive.getinfo(min(found, key=len))
                source = f"{path.name}/{info.filename}"
                raw = _read_capped(source, info.file_size, lambda: archive.open(info))
        else:
            source = path.name
            raw = _read_capped(source, path.stat().st_size, lambda: path.open("rb"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except zipfile.BadZipFile as exc:
        raise InvalidInputError(f"{path.name} is not a readable zip archive ({exc})") from exc
    try:
        return source, raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{source} is not UTF-8 text (bad byte at offset {exc.start})") from exc


def _read_capped(source: str, size: int, open_source: Callable[[], IO[bytes]]) -> bytes:
    """The source's bytes, refused past MAX_EXPORT_BYTES by its recorded size before anything is read, and by
    what a bounded read yields (a zip header can understate a member; a file can grow after its size was taken)."""
    if size > MAX_EXPORT_BYTES:
        raise _too_large(source, f"{size} bytes")
    with open_source() as handle:
        raw = handle.read(MAX_EXPORT_BYTES + 1)
    if len(raw) > MAX_EXPORT_BYTES:
        raise _too_large(source, f"more than {MAX_EXPORT_BYTES} bytes, although its size on record is {size}")
    return raw


def _too_large(source: str, size: str) -> InvalidInputError:
    return InvalidInputError(
        f"{source} is {size}; exports over {MAX_EXPORT_BYTES} bytes are not imported: split it into smaller files "
        "and import each one"
    )


def _load_json(text: str, source: str) -> list[Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "pass the conversations.json from the export; for JSON Lines name the file .jsonl or use --format jsonl"
        ) from exc
    if not isinstance(data, list):
        raise InvalidInputError(
            f"{source}: expected a JSON array of conversations (the conversations.json of a Claude or ChatGPT "
            f"export), found {_type_name(data)}"
        )
    return data


def _format_of(data: list[Any], source: str) -> ExportFormat:
    first = data[0] if data else None
    if isinstance(first, dict) and "chat_messages" in first:
        return "claude"
    if isinstance(first, dict) and "mapping" in first:
        return "chatgpt"
    found = "no conversations" if first is None else "a first item with neither 'chat_messages' nor 'mapping'"
    raise InvalidInputError(f"cannot tell the format of {source}: it has {found}; use --format claude|chatgpt|jsonl")


def _jsonl_conversations(text: str, source: str) -> list[ImportedConversation]:
    conversations: dict[str, list[ImportedMessage]] = {}
    repeats: dict[tuple[str, str], int] = {}
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: JSON strings may hold U+2028
        if not line.strip():
            continue
        where = f"line {number} of {source}"
        try:
            record = _object(json.loads(line), where)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); each line must be one JSON object"
            ) from exc
        conversation = _key(record, "conversation", where)
        role = _role(_get(record, "role", str, where), where, "role")
        content = _get(record, "content", str, where)
        stamp = record.get("created_at")
        created_at = _timestamp(stamp, where, "created_at")
        # Identical lines in one conversation get -2, -3...: the same file, or a longer one, gives the same keys.
        digest = hashlib.sha256(json.dumps([role, content, stamp], ensure_ascii=False).encode()).hexdigest()[:32]
        count = repeats[conversation, digest] = repeats.get((conversation, digest), 0) + 1
        messages = conversations.setdefault(conversation, [])
        message = _message(digest if count == 1 else f"{digest}-{count}", role, content, created_at)
        if message is not None:
            messages.append(message)
    return [
        ImportedConversation(key, "", messages[0].created_at if messages else None, messages)
        for key, messages in conversations.items()
    ]


def _claude_conversation(item: Any, where: str) -> ImportedConversation:
    conversation = _object(item, where)
    key = _key(conversation, "uuid", where)
    where = f"{where} (uuid {key!r})"
    messages = [
        _claude_message(raw, f"{where}, chat_messages[{index}]")
        for index, raw in enumerate(_get(conversation, "chat_messages", list, where))
    ]
    return ImportedConversation(
        key=key,
        title=_clean(_get(conversation, "name", str, where, required=False) or ""),
        created_at=_timestamp(conversation.get("created_at"), where, "created_at"),
        messages=[message for message in messages if message is not None],
    )


def _claude_message(item: Any, where: str) -> ImportedMessage | None:
    message = _object(item, where)
    key = _key(message, "uuid", where)
    where = f"{where} (uuid {key!r})"
    sender = _get(message, "sender", str, where)
    if sender not in _CLAUDE_SENDERS:
        raise InvalidInputError(f"{where}: 'sender' must be 'human' or 'assistant', not {sender!r}")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, raw in enumerate(_get(message, "content", list, where, required=False) or []):
        block = _object(raw, f"{where}, content[{index}]")
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            name = _get(block, "name", str, f"{where}, content[{index}]")
            calls.append({"id": block.get("id"), "name": name, "arguments": block.get("input") or {}})
    # Older exports have only "text"; in newer ones it repeats the text blocks with placeholders for tool use.
    if not calls and not any(text.strip() for text in texts):
        texts = [_get(message, "text", str, where, required=False) or ""]
    files = [
        file for field in ("attachments", "files") for file in _get(message, field, list, where, required=False) or []
    ]
    names = [file["file_name"] for file in files if isinstance(file, dict) and isinstance(file.get("file_name"), str)]
    return _message(
        key,
        _CLAUDE_SENDERS[sender],
        "\n\n".join(text.strip() for text in texts if text.strip()),
        _timestamp(message.get("created_at"), where, "created_at"),
        tool_calls=calls,
        attachments=list(dict.fromkeys(names)),
    )


def _chatgpt_conversation(item: Any, where: str) -> ImportedConversation:
    conversation = _object(item, where)
    key = _key(conversation, "conversation_id" if conversation.get("conversation_id") is not None else "id", where)
    where = f"{where} (id {key!r})"
    mapping = _get(conversation, "mapping", dict, where)
    branch = _branch(mapping, _get(conversation, "current_node", str, where), where)
    messages = [_chatgpt_message(mapping[node], f"{where}, mapping[{node!r}]") for node in branch]
    return ImportedConversation(
        key=key,
        title=_clean(_get(conversation, "title", str, where, required=False) or ""),
        created_at=_timestamp(conversation.get("create_time"), where, "create_time"),
        messages=[message for message in messages if message is not None],
    )


def _branch(mapping: dict[str, Any], current_node: str, where: str) -> list[str]:
    """Node ids from the root to the conversation's current node: the branch ChatGPT displays.

    Editing a message or regenerating an answer adds a sibling; only the chosen path leads to current_node.
    """
    node: Any = current_node
    path: list[str] = []
    while node is not None:
        if not isinstance(node, str) or node not in mapping:
            child = f"node {path[-1]!r} names parent {node!r}" if path else f"'current_node' {node!r}"
            raise InvalidInputError(f"{where}: {child}, which is not a key of 'mapping'")
        if len(path) == len(mapping):  # every node already on the path: this one comes round again
            raise InvalidInputError(f"{where}: the parent links through mapping[{node!r}] form a cycle")
        path.append(node)
        node = _object(mapping[node], f"{where}, mapping[{node!r}]").get("parent")
    return path[::-1]


def _chatgpt_message(item: Any, where: str) -> ImportedMessage | None:
    raw = _object(item, where).get("message")
    if raw is None:
        return None
    message = _object(raw, f"{where}.message")
    metadata: dict[str, Any] = message["metadata"] if isinstance(message.get("metadata"), dict) else {}
    if metadata.get("is_visually_hidden_from_conversation"):
        return None
    key = _key(message, "id", f"{where}.message")
    author = _get(message, "author", dict, where)
    role = _role(_get(author, "role", str, where), where, "author.role")
    content = _get(message, "content", dict, where)
    files = metadata["attachments"] if isinstance(metadata.get("attachments"), list) else []
    name = author.get("name")
    return _message(
        key,
        role,
        _chatgpt_text(content),
        _timestamp(message.get("create_time"), where, "create_time"),
        name=name if role == "tool" and isinstance(name, str) else None,
        attachments=[file["name"] for file in files if isinstance(file, dict) and isinstance(file.get("name"), str)],
    )


def _chatgpt_text(content: dict[str, Any]) -> str:
    """The readable text: string parts, the text of structured parts, "[image]" for images; else a "text" field."""
    parts = content.get("parts")
    if not isinstance(parts, list):
        text = content.get("text")  # code, execution_output, tether_quote
        return text if isinstance(text, str) else ""
    pieces: list[str] = []
    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            pieces.append(part["text"])
        elif isinstance(part, dict) and "image" in str(part.get("content_type", "")):
            pieces.append("[image]")
    return "\n\n".join(piece.strip() for piece in pieces if piece.strip())


def _message(key: str, role: Role, text: str, created_at: datetime | None, **extra: Any) -> ImportedMessage | None:
    """The message, or None when it has neither text nor tool calls; NUL characters (which PostgreSQL cannot
    store) are removed. A message of tool calls alone is searchable by their names and arguments."""
    text = _clean(text).strip()
    calls = extra.get("tool_calls") or []
    if not text and calls:
        text = _clean("\n".join(f"{c['name']}({json.dumps(c['arguments'], ensure_ascii=False)})" for c in calls))
    if not text:
        return None
    content = _clean({"text": text, **{field: value for field, value in extra.items() if value}})
    return ImportedMessage(key=key, role=role, text=text, content=content, created_at=created_at)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {_clean(field): _clean(item) for field, item in value.items()}
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where}: expected a JSON object, found {_type_name(value)}")
    return value


def _get(obj: dict[str, Any], field: str, kind: type, where: str, *, required: bool = True) -> Any:
    value = obj.get(field)
    if value is None and required:
        raise InvalidInputError(f"{where}: '{field}' is missing")
    if value is not None and not isinstance(value, kind):
        raise InvalidInputError(f"{where}: '{field}' must be {_JSON_TYPES[kind]}, not {_type_name(value)}")
    return value


def _key(obj: dict[str, Any], field: str, where: str) -> str:
    key: str = _clean(_get(obj, field, str, where))
    if not key.strip():
        raise InvalidInputError(f"{where}: '{field}' is empty")
    return key


def _role(value: str, where: str, field: str) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise InvalidInputError(f"{where}: '{field}' must be one of {', '.join(ROLES)}, not {value!r}")


def _timestamp(value: Any, where: str, field: str) -> datetime | None:
    """ISO 8601 text or seconds since the epoch, as an aware UTC datetime (UTC assumed when no zone is given)."""
    try:
        if value is None:
            return None
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value)
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise InvalidInputError(
        f"{where}: '{field}' is not a valid timestamp: {value!r}; use ISO 8601 (2024-05-01T12:00:00Z) "
        "or seconds since the epoch"
    )


def _type_name(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)
