"""Whole agents in and out, in whichever format a file is: what `engram agents import|export` and the REST
routes /v1/agents/import and /v1/agents/{id}/export call.

Formats, told apart by content (never by the file's name):
- `engram`: Engram's own versioned zip of JSON Lines (`engram_files`), everything an agent holds;
- `letta`: Letta's agent files (`.af`, `agent_files`), settings, blocks and messages;
- `memory-graph`: the reference MCP memory server's knowledge graph (`memory.jsonl`, `memory.json`; `memory_graph`),
  into archival passages.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import IO, Literal

from engram.storage.errors import InvalidInputError
from engram.tools.scope import Scope

Format = Literal["engram", "letta", "memory-graph"]
ExportFormat = Literal["engram", "af"]
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
GRAPH_LINE = re.compile(r'^\{\s*"type"\s*:\s*"(entity|relation)"')  # a graph line too long to peek at whole
PEEK_BYTES = 64 * 1024  # of a text file's start, to tell a graph's first line from an agent file
UNKNOWN = (
    "expected an Engram agent file (a zip from 'engram agents export'), a Letta agent file (.af) or the MCP "
    "memory server's graph (memory.jsonl)"
)


@dataclass
class AgentsImported:
    """What an import did: the agents it made or added to, what it stored, and what it left out and why."""

    format: Format
    agents: list[str]
    blocks: int = 0
    passages: int = 0
    conversations: int = 0
    messages: int = 0
    summaries: int = 0
    embedded: int = 0  # passages and messages embedded after storing (those whose vectors the file did not give)
    skipped: list[str] = field(default_factory=list)  # what was not imported, each with the reason
    notes: list[str] = field(default_factory=list)  # anything else the person importing should know

    def lines(self) -> list[str]:
        """The report for people, a few lines."""
        stored = [
            f"{count} {what}"
            for what, count in (
                ("blocks", self.blocks),
                ("passages", self.passages),
                ("conversations", self.conversations),
                ("messages", self.messages),
                ("summaries", self.summaries),
            )
            if count
        ]
        names = ", ".join(f"'{name}'" for name in self.agents)
        found = [f"imported {names} from {_FORMAT_NAMES[self.format]}: {', '.join(stored) or 'nothing new'}"]
        if self.embedded:
            found.append(f"embedded {self.embedded} passages and messages")
        return found + self.notes + [f"skipped {reason}" for reason in self.skipped]


_FORMAT_NAMES: dict[Format, str] = {
    "engram": "an Engram agent file",
    "letta": "a Letta agent file",
    "memory-graph": "a memory graph",
}


def detect_format(file: IO[bytes], where: str) -> Format:
    """The file's format from its first bytes (the file is left at its start)."""
    start = file.read(PEEK_BYTES)
    file.seek(0)
    if start.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC)):
        return "engram"
    text = start.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if not text:
        raise InvalidInputError(f"{where} is empty; {UNKNOWN}")
    if text[0] not in '{["':
        raise InvalidInputError(f"{where} is neither a zip archive nor JSON; {UNKNOWN}")
    first_line = text.split("\n", 1)[0].strip()
    try:
        first = json.loads(first_line)
    except json.JSONDecodeError:
        first = None
    if (isinstance(first, dict) and first.get("type") in ("entity", "relation")) or GRAPH_LINE.match(first_line):
        return "memory-graph"
    return "letta"


async def import_file(
    scope: Scope,
    file: IO[bytes],
    *,
    as_name: str | None = None,
    replace: bool = False,
    where: str = "the file",
) -> AgentsImported:
    """Import the agents a file holds, whatever its format; one transaction, then what was stored without vectors
    is embedded. `as_name` names the imported agent (a file of one agent; a graph needs it); `replace` deletes an
    agent of the same name first (otherwise an existing name is refused, except for a graph, which adds to it)."""
    chosen = detect_format(file, where)
    if chosen == "engram":
        from engram.tools.ingest.engram_files import import_agents

        return await import_agents(scope, file, as_name, replace, where=where)
    if chosen == "memory-graph":
        from engram.tools.ingest.memory_graph import import_graph

        return await import_graph(scope, file, as_name, replace=replace, where=where)
    from engram.tools.ingest.agent_files import MAX_AGENT_FILE_BYTES, import_letta_file

    data = file.read(MAX_AGENT_FILE_BYTES + 1)
    return await import_letta_file(scope, data, name=as_name, replace=replace, where=where)
