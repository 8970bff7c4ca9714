"""What an Engram agent file is: a zip of JSON Lines members and a manifest, written and read a line at a time
with what is unpacked capped (a zip bomb is refused before it is inflated), and the records its lines hold.

Records point at one another by keys local to the file (`agent-0`, `block-3`, `conversation-12`):

- `manifest.json`: `format` ("engram-agents"), `format_version`, the Engram version that wrote it, when, the
  embedding model (and the vectors' dimension when the file carries vectors), the agents' names, and how many
  lines each member holds (a file cut short is refused);
- `agents.jsonl`: name, description, system prompt, model settings (`llm`), tags, timestamps, and the keys of
  its blocks in display order (agents listing one key share that block);
- `blocks.jsonl` and `block_history.jsonl`: each block with its version, limit, description, read-only and
  standalone flags, and every earlier value with what replaced it and when;
- `passages.jsonl`: archival passages with tags, metadata, source, time, and their vector when asked for
  (base64 of little-endian float32s);
- `conversations.jsonl`, `messages.jsonl`, `summaries.jsonl`: recall memory with ordinals, roles, content
  (tool calls included), searchable text, times, where each conversation's context starts, and the built-in
  agent's summaries.

Every error names the file, the member and the line.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engram.storage.errors import InvalidInputError
from engram.tools.arguments import (
    Role,
    check_agent_name,
    check_context_window,
    check_conversation,
    check_label,
    check_model,
    check_tags,
)
from engram.tools.memory.agents import MAX_BLOCKS_PER_AGENT, MAX_DESCRIPTION_CHARS
from engram.tools.memory.blocks import MAX_LIMIT

Line = TypeVar("Line", bound=BaseModel)

FORMAT: Literal["engram-agents"] = "engram-agents"
FORMAT_VERSION = 1
EXPECTED = "expected an Engram agent file, as 'engram agents export' writes it"
MANIFEST = "manifest.json"
AGENTS, BLOCKS, HISTORY = "agents.jsonl", "blocks.jsonl", "block_history.jsonl"
PASSAGES, CONVERSATIONS, MESSAGES = "passages.jsonl", "conversations.jsonl", "messages.jsonl"
SUMMARIES = "summaries.jsonl"
MAX_MANIFEST_BYTES = 1_000_000
MAX_LINE_BYTES = 64_000_000  # one record: a block of 1,000,000 characters, escaped, is ~12 MB at worst
MAX_UNPACKED_BYTES = 64_000_000_000  # all members together
MAX_RATIO = 100  # unpacked to packed, for a member over SMALL_MEMBER: JSON Lines pack 3-10x, zip bombs 1000x
SMALL_MEMBER = 16_000_000  # members up to this size may pack as well as they like


class ArchiveWriter:
    """Members written one after the other, a line at a time."""

    def __init__(self, out: IO[bytes]) -> None:
        # Level 1: vectors (base64) hardly pack at all, and text packs nearly as well as at zlib's default level.
        self._zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True)
        self._member: IO[bytes] | None = None
        self.counts: dict[str, int] = {}

    def start(self, name: str) -> None:
        self._finish_member()
        self._member = self._zip.open(name, "w", force_zip64=True)  # dated 1980-01-01: same agent, same bytes
        self.counts[name] = 0

    def write(self, name: str, line: BaseModel) -> None:
        assert self._member is not None and name in self.counts, name
        self._member.write(line.model_dump_json().encode() + b"\n")
        self.counts[name] += 1

    def close(self, manifest: BaseModel) -> None:
        self._finish_member()
        info = zipfile.ZipInfo(MANIFEST)
        info.compress_type = zipfile.ZIP_DEFLATED
        self._zip.writestr(info, manifest.model_dump_json(indent=2) + "\n")
        self._zip.close()

    def _finish_member(self) -> None:
        if self._member is not None:
            self._member.close()
            self._member = None


class ArchiveReader:
    """An Engram agent file opened for reading: its members' sizes checked against the caps at once."""

    def __init__(self, file: IO[bytes], where: str, expected: str) -> None:
        self.where = where
        try:
            self._zip = zipfile.ZipFile(file)
        except zipfile.BadZipFile:
            raise InvalidInputError(
                f"{where} is not a complete zip archive (truncated or damaged: its table of contents is missing); "
                f"{expected}"
            ) from None
        except (OSError, EOFError, ValueError) as exc:
            raise InvalidInputError(f"{where} cannot be read as a zip archive ({exc}); {expected}") from None
        self._infos = {info.filename: info for info in self._zip.infolist()}
        if MANIFEST not in self._infos:
            raise InvalidInputError(
                f"{where} is a zip archive without {MANIFEST}: not an Engram agent file; {expected}"
            )
        unpacked = 0
        for info in self._infos.values():
            unpacked += info.file_size
            if info.file_size > SMALL_MEMBER and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise InvalidInputError(
                    f"{where}: {info.filename} would unpack {info.file_size} bytes from {info.compress_size} "
                    f"(over {MAX_RATIO} times its packed size): refused as a possible zip bomb"
                )
        if unpacked > MAX_UNPACKED_BYTES:
            raise InvalidInputError(
                f"{where} would unpack {unpacked} bytes, over the {MAX_UNPACKED_BYTES // 1_000_000_000} GB Engram "
                "unpacks from one file"
            )

    def manifest(self) -> dict[str, Any]:
        info = self._infos[MANIFEST]
        if info.file_size > MAX_MANIFEST_BYTES:
            raise InvalidInputError(f"{self.where}: {MANIFEST} is {info.file_size} bytes; a manifest is far smaller")
        data = self._read(MANIFEST, MAX_MANIFEST_BYTES)
        try:
            manifest = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{self.where}: {MANIFEST} is not valid JSON ({exc})") from None
        if not isinstance(manifest, dict):
            raise InvalidInputError(f"{self.where}: {MANIFEST} must hold a JSON object")
        return manifest

    def lines(self, name: str, model: type[Line]) -> Iterator[tuple[int, Line]]:
        """(line number, record) of a member, one line at a time; a missing member has no lines."""
        if name not in self._infos:
            return
        try:
            with self._zip.open(name) as member:
                number = 0
                while True:
                    raw = member.readline(MAX_LINE_BYTES + 1)
                    if not raw:
                        return
                    number += 1
                    if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                        raise InvalidInputError(
                            f"{self.where}: {name} line {number} is over {MAX_LINE_BYTES // 1_000_000} MB; no record "
                            "Engram writes is that long"
                        )
                    if not raw.strip():
                        continue
                    yield number, parse_line(raw, model, f"{self.where}: {name} line {number}")
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise InvalidInputError(f"{self.where}: {name} is damaged or truncated ({exc})") from None

    def _read(self, name: str, limit: int) -> bytes:
        try:
            with self._zip.open(name) as member:
                return member.read(limit + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise InvalidInputError(f"{self.where}: {name} is damaged or truncated ({exc})") from None


def parse_line(raw: bytes, model: type[Line], where: str) -> Line:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInputError(f"{where}: {problem(exc)}") from None


def problem(exc: ValidationError) -> str:
    """The first of pydantic's complaints, in Engram's words: where, and what is wrong."""
    first = exc.errors(include_url=False)[0]
    place = ".".join(str(part) for part in first.get("loc", ()))
    kind = first.get("type", "")
    if kind == "json_invalid":
        return f"not valid JSON ({first.get('msg', '')}); the line may be cut short"
    if kind == "missing":
        return f"'{place}' is missing"
    if kind == "extra_forbidden":
        return f"'{place}' is not a field Engram writes"
    message = str(first.get("msg", "is not valid")).removeprefix("Value error, ")
    return f"'{place}': {message}" if place else message


# The records


def _checked(check: Callable[[str], str]) -> Callable[[str], str]:
    """An Engram check as a pydantic validator (which wants ValueError)."""

    def validate(value: str) -> str:
        try:
            return check(value)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    return validate


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character (\\u0000), which PostgreSQL cannot store")
    return value


def _json_without_nul(value: dict[str, Any]) -> dict[str, Any]:
    if "\\u0000" in json.dumps(value):
        raise ValueError("contains a NUL character (\\u0000), which PostgreSQL cannot store")
    return value


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_tags_strictly(tags: list[str]) -> list[str]:
    try:
        return check_tags(tags)
    except InvalidInputError as exc:
        raise ValueError(str(exc)) from None


Text = Annotated[str, AfterValidator(_no_nul)]
Json = Annotated[dict[str, Any], AfterValidator(_json_without_nul)]
Moment = Annotated[datetime, AfterValidator(_utc)]
Key = Annotated[str, Field(min_length=1, max_length=100)]
Tags = Annotated[list[str], AfterValidator(check_tags_strictly)]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmbeddingInfo(Record):
    model: str
    dimension: int | None = Field(default=None, ge=1, le=16_000)  # of the vectors the file carries
    vectors: bool  # whether passages and messages carry their vectors (those the model made)


class Manifest(Record):
    format: Literal["engram-agents"]
    format_version: int
    engram_version: str
    exported_at: Moment
    embedding: EmbeddingInfo
    agents: list[str]
    counts: dict[str, int]


class AgentLine(Record):
    key: Key
    name: Annotated[str, AfterValidator(_checked(check_agent_name))]
    description: Annotated[Text, Field(max_length=MAX_DESCRIPTION_CHARS)] = ""
    system: Text = ""
    llm: Json = Field(default_factory=dict)
    tags: Tags = Field(default_factory=list)
    created_at: Moment
    updated_at: Moment
    blocks: Annotated[list[Key], Field(max_length=MAX_BLOCKS_PER_AGENT)] = Field(default_factory=list)

    @field_validator("llm")
    @classmethod
    def _llm(cls, llm: dict[str, Any]) -> dict[str, Any]:
        model = llm.get("model")
        if model is not None and not (isinstance(model, str) and _is_valid(check_model, model)):
            raise ValueError(f"model {str(model)[:60]!r} is not a litellm model name")
        window = llm.get("context_window")
        if window is not None and not (isinstance(window, int) and _is_valid(check_context_window, window)):
            raise ValueError(f"context_window {str(window)[:20]!r} is out of range")
        return llm


def _is_valid(check: Callable[[Any], Any], value: Any) -> bool:
    try:
        check(value)
    except InvalidInputError:
        return False
    return True


class BlockLine(Record):
    key: Key
    label: Annotated[str, AfterValidator(_checked(check_label))]
    value: Text
    limit: int = Field(ge=1, le=MAX_LIMIT)
    description: Annotated[Text, Field(max_length=MAX_DESCRIPTION_CHARS)] = ""
    read_only: bool = False
    standalone: bool = False
    version: int = Field(default=1, ge=1)
    created_at: Moment
    updated_at: Moment

    @model_validator(mode="after")
    def _fits(self) -> BlockLine:
        if len(self.value) > self.limit:
            raise ValueError(f"block '{self.label}' holds {len(self.value)} characters, over its limit of {self.limit}")
        return self


class HistoryLine(Record):
    block: Key
    version: int = Field(ge=1)
    value: Text
    actor: Text
    created_at: Moment


class PassageLine(Record):
    agent: Key
    text: Annotated[Text, Field(min_length=1)]
    tags: Tags = Field(default_factory=list)
    metadata: Json = Field(default_factory=dict)
    source: Text | None = None
    created_at: Moment
    vector: str | None = None  # base64 of little-endian float32s


class ConversationLine(Record):
    key: Key
    agent: Key
    name: Annotated[str, AfterValidator(_checked(check_conversation))]
    title: Text = ""
    source: Text = ""
    context_start: int = Field(default=1, ge=1)
    created_at: Moment


class MessageLine(Record):
    conversation: Key
    ordinal: int = Field(ge=1)
    role: Role
    content: Json
    text: Text
    external_key: Text | None = None
    search_call: bool = False
    created_at: Moment
    vector: str | None = None


class SummaryLine(Record):
    conversation: Key
    first_ordinal: int = Field(ge=0)
    last_ordinal: int = Field(ge=0)
    evicted: int = Field(ge=0)
    text: Text
    kind: Annotated[Text, Field(min_length=1, max_length=50)]
    created_at: Moment


def counted(archive: ArchiveReader, manifest: Manifest, member: str, found: int) -> None:
    """A member must hold as many lines as the manifest says: fewer means the file was cut short."""
    expected = manifest.counts.get(member, 0)
    if found != expected:
        raise InvalidInputError(
            f"{archive.where}: {member} holds {found} records where its manifest says {expected}: the file is "
            "truncated or was altered"
        )
