"""Engram's own agent files: an agent holding every kind of memory leaves one database and arrives in another as
the same agent (the file exported again is the same, searches answer the same); bad files, taken names and newer
formats are refused naming the file and the problem, and nothing is written."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from engram.server.runtime import open_runtime
from engram.server.settings import load_settings
from engram.storage.embedded import EmbeddedPostgres
from engram.storage.errors import ConflictError, InvalidInputError, NotFoundError
from engram.storage.schema import Agent, Block, Message, Passage
from engram.tools.ingest.documents import ingest
from engram.tools.ingest.engram_files import export_agents, import_agents
from engram.tools.ingest.engram_format import MAX_RATIO, SMALL_MEMBER
from engram.tools.loop.turn import LoopConfig, current_summary, send_message, summarize_conversation
from engram.tools.memory.agents import BlockSpec, agent_create, agent_list, agent_show
from engram.tools.memory.archival import archival_memory_insert, archival_memory_search
from engram.tools.memory.blocks import block_attach, block_create, block_list
from engram.tools.memory.core import core_memory_append, core_memory_history, memory_replace
from engram.tools.memory.embedding_queue import embed_pending
from engram.tools.memory.recall import conversation_record, conversation_search
from engram.tools.scope import Scope
from tests.conftest import TEMPLATE, temporary_database
from tests.tools.scripted_llm import ScriptedLLM, call, say

pytestmark = pytest.mark.anyio

PIRATE = "You are a pirate who keeps a ship's log in memory. Answer in pirate speech."


@asynccontextmanager
async def scope_on(database_url: str, tmp_path: Path) -> AsyncIterator[Scope]:
    settings = load_settings(
        overrides={"database_url": database_url, "data_dir": str(tmp_path / "unused-data-dir")}, environ={}
    )
    async with open_runtime(settings) as runtime:
        yield await runtime.scope()


@pytest.fixture
async def scope(database_url: str, tmp_path: Path) -> AsyncIterator[Scope]:
    async with scope_on(database_url, tmp_path) as opened:
        yield opened


async def every_kind_of_memory(scope: Scope, tmp_path: Path) -> None:
    """Two agents: settings, a read-only block, a block they share, edits with history, archival passages (tagged,
    ingested from a file with its source and metadata), a conversation with tool calls and a summary, another
    conversation recorded by hand; every message embedded."""
    await agent_create(
        scope,
        "ship",
        description="The ship's log",
        system=PIRATE,
        model="anthropic/claude-3-5-haiku",
        context_window=16000,
        tags=["sea", "log"],
        blocks=[BlockSpec(label="charter", value="Sail west.", limit=300, description="Orders", read_only=True)],
    )
    await agent_create(scope, "crew", human="The crew of the Black Gull.")
    await block_create(scope, "team", value="Watch changes at the eighth bell.", description="Shared by the crew")
    await block_attach(scope, "ship", "team")
    await block_attach(scope, "crew", "team")
    await core_memory_append(scope, "human", "Captain Ann keeps a parrot.", agent="ship")
    await memory_replace(scope, "human", "a parrot", "a grey parrot", agent="ship")
    await archival_memory_insert(
        scope, "The treasure is buried under the old oak on Skull Island.", ["treasure"], "ship"
    )
    await archival_memory_insert(
        scope, "Ann's parrot Polly speaks Portuguese and hates rain.", ["crew", "pets"], "ship"
    )
    await archival_memory_insert(scope, "The cook stores rum in the third barrel.", ["galley"], "crew")
    notes = tmp_path / "charts"
    notes.mkdir()
    (notes / "reefs.md").write_text("# Reefs\n\nThe Hook Reef lies two miles south of the harbour.\n")
    await ingest(scope, "ship", [notes])
    llm = ScriptedLLM([call("core_memory_append", label="human", content="Ann likes tea."), say("Noted!")])
    llm.then = say("Aye.")
    for said in ("I am Captain Ann and I like tea.", "Where are we sailing?", "Hoist the sails."):
        await send_message(scope, said, "ship", choose_llm=lambda _config: llm, config=LoopConfig())
    done = await summarize_conversation(scope, "ship", None, choose_llm=lambda _config: llm, config=LoopConfig())
    assert done is not None
    await conversation_record(scope, "user", "We sighted a whale near the Azores.", "log-2025", "ship")
    await conversation_record(scope, "assistant", "Logged: whale, Azores, calm sea.", "log-2025", "ship")
    await embed_pending(scope.sessions, scope.embedder, exact_scan_limit=scope.exact_scan_limit)


async def exported(scope: Scope, names: list[str], *, with_vectors: bool = False) -> bytes:
    out = io.BytesIO()
    await export_agents(scope, names, out, with_vectors=with_vectors)
    return out.getvalue()


def content(data: bytes) -> dict[str, Any]:
    """Every member's records, and the manifest without its time."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        found: dict[str, Any] = {
            name: [json.loads(line) for line in archive.read(name).splitlines()]
            for name in archive.namelist()
            if name.endswith(".jsonl")
        }
        manifest = json.loads(archive.read("manifest.json"))
    del manifest["exported_at"]
    return found | {"manifest.json": manifest}


async def answers(scope: Scope, database_url: str) -> list[Any]:
    """What archival and conversation searches of both agents answer (statistics fresh, so BM25 weighs alike)."""
    engine = create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()
    found: list[Any] = []
    for agent, query in (("ship", "where is the treasure?"), ("ship", "parrot"), ("crew", "rum")):
        page = await archival_memory_search(scope, query, agent=agent)
        found.append(sorted((-hit.score, hit.content, hit.tags, hit.source) for hit in page.results))
    for agent, query in (("ship", "whale near the Azores"), ("ship", "tea")):
        hits = await conversation_search(scope, query, agent=agent)
        found.append(sorted((-hit.score, hit.role, hit.text, hit.conversation) for hit in hits.results))
    return found


@pytest.mark.parametrize("with_vectors", [False, True], ids=["embedded-again", "with-vectors"])
async def test_agents_holding_every_kind_of_memory_arrive_whole_in_an_empty_database(
    scope: Scope, database_url: str, postgres: EmbeddedPostgres, tmp_path: Path, with_vectors: bool
) -> None:
    await every_kind_of_memory(scope, tmp_path)
    first = await exported(scope, ["ship", "crew"], with_vectors=with_vectors)
    before = await answers(scope, database_url)
    before_summary = await current_summary(scope, "ship", None)

    with temporary_database(postgres, template=TEMPLATE) as empty_url:
        async with scope_on(empty_url, tmp_path) as empty:
            report = await import_agents(empty, io.BytesIO(first), where="ship.engram.zip")
            assert report.agents == ["ship", "crew"]
            assert (report.blocks, report.passages, report.conversations, report.summaries) == (6, 4, 2, 1)
            assert report.messages == 10 and report.skipped == []
            assert report.embedded == (0 if with_vectors else 14)  # 4 passages and 10 messages
            again = await exported(empty, ["ship", "crew"], with_vectors=with_vectors)
            assert content(again) == content(first)
            assert await answers(empty, empty_url) == before
            summary = await current_summary(empty, "ship", None)
            assert (summary.summary, summary.in_context_from) == (
                before_summary.summary,
                before_summary.in_context_from,
            )
            shared = {block.label: block.agents for block in (await block_list(empty)).blocks}
            assert shared["team"] == ["crew", "ship"]
            history = await core_memory_history(empty, "human", agent="ship")
            assert [version.actor for version in history.versions][:3] == [
                "core_memory_append",
                "memory_replace",
                "core_memory_append",
            ]

    records = content(first)
    assert records["manifest.json"]["embedding"]["vectors"] is with_vectors
    assert all((passage["vector"] is not None) is with_vectors for passage in records["passages.jsonl"])
    assert {tuple(agent["blocks"]) for agent in records["agents.jsonl"]} == {
        ("block-0", "block-1", "block-2", "block-3"),
        ("block-4", "block-5", "block-3"),
    }
    [ingested] = [passage for passage in records["passages.jsonl"] if passage["source"]]
    assert ingested["tags"] == ["reefs"] and set(ingested["metadata"]) == {"file_sha256", "chunk"}
    tool_call = next(message for message in records["messages.jsonl"] if message["content"].get("tool_calls"))
    assert tool_call["content"]["tool_calls"][0]["function"]["name"] == "core_memory_append"


async def test_a_taken_name_is_refused_and_as_or_replace_import_it(scope: Scope, tmp_path: Path) -> None:
    await agent_create(scope, "ship", description="first")
    await archival_memory_insert(scope, "The first ship's only passage.", agent="ship")
    data = await exported(scope, ["ship"])
    with pytest.raises(ConflictError) as refused:
        await import_agents(scope, io.BytesIO(data))
    assert str(refused.value) == (
        "agent 'ship' already exists; import it under another name (--as NAME) or replace the existing agent "
        "(--replace)"
    )
    assert [agent.name for agent in (await agent_list(scope)).agents] == ["ship"]

    report = await import_agents(scope, io.BytesIO(data), "ship-copy")
    assert report.agents == ["ship-copy"] and report.passages == 1
    assert (await agent_show(scope, "ship-copy")).description == "first"

    await archival_memory_insert(scope, "A passage the replaced agent had.", agent="ship")
    assert (await import_agents(scope, io.BytesIO(data), replace=True)).agents == ["ship"]
    page = await archival_memory_search(scope, "passage", agent="ship")
    assert [hit.content for hit in page.results] == ["The first ship's only passage."]
    assert await blocks_in_database(scope) == 4  # the replaced agent's own blocks went with it


async def blocks_in_database(scope: Scope) -> int:
    async with scope.sessions.begin() as session:
        return int(await session.scalar(select(func.count()).select_from(Block)) or 0)


async def test_as_renames_only_a_file_of_one_agent(scope: Scope) -> None:
    await agent_create(scope, "a")
    await agent_create(scope, "b")
    data = await exported(scope, ["a", "b"])
    with pytest.raises(InvalidInputError, match=r"holds 2 agents \(a, b\); --as names one agent only"):
        await import_agents(scope, io.BytesIO(data), "c", where="two.zip")


async def test_exporting_an_unknown_agent_names_it(scope: Scope) -> None:
    with pytest.raises(NotFoundError, match="agent 'ghost' does not exist"):
        await exported(scope, ["ghost"])


def rewritten(data: bytes, change: Callable[[str, bytes], bytes | None]) -> bytes:
    """The file with each member passed through `change` (None leaves a member out)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            changed = change(name, source.read(name))
            if changed is not None:
                target.writestr(name, changed)
    return out.getvalue()


def with_manifest(**fields: Any) -> Callable[[str, bytes], bytes | None]:
    def change(name: str, data: bytes) -> bytes:
        return json.dumps(json.loads(data) | fields).encode() if name == "manifest.json" else data

    return change


def with_line(member: str, number: int, **fields: Any) -> Callable[[str, bytes], bytes | None]:
    def change(name: str, data: bytes) -> bytes:
        if name != member:
            return data
        lines = data.splitlines()
        lines[number - 1] = json.dumps(json.loads(lines[number - 1]) | fields).encode()
        return b"\n".join(lines) + b"\n"

    return change


def without_last_line(member: str) -> Callable[[str, bytes], bytes | None]:
    return lambda name, data: b"\n".join(data.splitlines()[:-1]) + b"\n" if name == member else data


def cut_line(member: str) -> Callable[[str, bytes], bytes | None]:
    return lambda name, data: data[: len(data) // 2] if name == member else data


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            with_manifest(format_version=2, engram_version="9.0.0"),
            "log.zip was written by a newer Engram (9.0.0, format version 2); this Engram reads format version 1 "
            "and older: upgrade Engram to import it",
        ),
        (with_manifest(format="letta"), "log.zip: its manifest says format 'letta', not 'engram-agents'"),
        (with_manifest(embedding={"model": "m"}), "log.zip: manifest.json: 'embedding.vectors' is missing"),
        (lambda name, data: None if name == "manifest.json" else data, "log.zip is a zip archive without manifest"),
        (with_line("messages.jsonl", 2, role="narrator"), "log.zip: messages.jsonl line 2: 'role': Input should be"),
        (with_line("messages.jsonl", 2, ordinal=1), "log.zip: the database refused a record"),
        (with_line("passages.jsonl", 1, agent="agent-7"), "log.zip: passages.jsonl line 1: agent 'agent-7' is not in"),
        (with_line("agents.jsonl", 1, name="no name!"), "log.zip: agents.jsonl line 1: 'name': agent name 'no name!'"),
        (with_line("blocks.jsonl", 1, limit=3), "log.zip: blocks.jsonl line 1: block 'persona' holds"),
        (with_line("passages.jsonl", 1, text="a\u0000b"), "passages.jsonl line 1: 'text': contains a NUL"),
        (with_line("passages.jsonl", 1, extra=1), "passages.jsonl line 1: 'extra' is not a field Engram writes"),
        (with_manifest(format_version=None), "log.zip: its manifest has no format_version"),
        (with_line("agents.jsonl", 1, blocks=["block-0", "block-9"]), "lists block 'block-9', which blocks.jsonl"),
        (with_line("agents.jsonl", 1, blocks=["block-0"]), "log.zip: block 'block-1' is attached to none of the"),
        (with_line("blocks.jsonl", 2, label="persona"), "log.zip: agent 'log' has two blocks with one label"),
        (with_line("conversations.jsonl", 1, agent="agent-9"), "conversations.jsonl line 1: agent 'agent-9' is not"),
        (with_line("messages.jsonl", 3, conversation="c-9"), "messages.jsonl line 3: conversation 'c-9' is not in"),
        (with_line("summaries.jsonl", 1, last_ordinal=0), "summaries.jsonl line 1: 'last_ordinal' is before"),
        (without_last_line("messages.jsonl"), "log.zip: messages.jsonl holds 3 records where its manifest says 4"),
        (cut_line("summaries.jsonl"), "log.zip: summaries.jsonl line 1: not valid JSON"),
    ],
)
async def test_a_bad_file_is_refused_naming_the_file_and_the_problem_and_nothing_is_written(
    scope: Scope, change: Callable[[str, bytes], bytes | None], says: str
) -> None:
    await agent_create(scope, "log")
    await conversation_record(scope, "user", "Ahoy.", agent="log")
    await conversation_record(scope, "assistant", "Ahoy there.", agent="log")
    await conversation_record(scope, "user", "Any whales?", agent="log")
    await conversation_record(scope, "assistant", "One, to starboard.", agent="log")
    await archival_memory_insert(scope, "Whales sighted to starboard.", agent="log")
    async with scope.sessions.begin() as session:
        conversation_id = await session.scalar(select(Message.conversation_id).limit(1))
        await session.execute(
            text(
                "INSERT INTO summaries (owner_id, agent_id, conversation_id, first_ordinal, last_ordinal, evicted, "
                "text, kind) SELECT owner_id, agent_id, id, 1, 2, 2, 'They greeted each other.', 'summary' "
                "FROM conversations WHERE id = :id"
            ),
            {"id": conversation_id},
        )
    data = rewritten(await exported(scope, ["log"]), change)
    before = await row_counts(scope)
    with pytest.raises(InvalidInputError) as refused:
        await import_agents(scope, io.BytesIO(data), "log-copy", where="log.zip")
    assert says in str(refused.value)
    assert await row_counts(scope) == before


async def row_counts(scope: Scope) -> tuple[int, ...]:
    async with scope.sessions.begin() as session:
        return tuple(
            [
                int(await session.scalar(select(func.count()).select_from(table)) or 0)
                for table in (Agent, Block, Passage, Message)
            ]
        )


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"PK\x03\x04 cut short", "ship.zip is not a complete zip archive (truncated or damaged"),
        (b"PK\x05\x06" + bytes(18), "ship.zip is a zip archive without manifest.json"),
    ],
)
async def test_what_is_not_a_whole_zip_is_refused(scope: Scope, data: bytes, says: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        await import_agents(scope, io.BytesIO(data), where="ship.zip")
    assert says in str(refused.value)
    assert (await agent_list(scope)).agents == []


async def test_a_file_truncated_in_transit_is_refused(scope: Scope) -> None:
    await agent_create(scope, "ship")
    await archival_memory_insert(scope, "A passage.", agent="ship")
    data = await exported(scope, ["ship"])
    with pytest.raises(InvalidInputError, match=r"ship\.zip is not a complete zip archive"):
        await import_agents(scope, io.BytesIO(data[: len(data) - 30]), "other", where="ship.zip")
    assert [agent.name for agent in (await agent_list(scope)).agents] == ["ship"]


async def test_a_zip_bomb_is_refused_before_it_is_unpacked(scope: Scope) -> None:
    await agent_create(scope, "ship")
    size = SMALL_MEMBER + 1_000_000

    def bomb(name: str, data: bytes) -> bytes:
        return bytes(size) if name == "passages.jsonl" else data

    data = rewritten(await exported(scope, ["ship"]), bomb)
    assert len(data) * MAX_RATIO < size
    with pytest.raises(InvalidInputError) as refused:
        await import_agents(scope, io.BytesIO(data), "other", where="bomb.zip")
    assert str(refused.value).startswith(f"bomb.zip: passages.jsonl would unpack {size} bytes from ")
    assert str(refused.value).endswith("refused as a possible zip bomb")


async def test_credentials_in_an_agents_model_options_are_left_out_of_the_file(scope: Scope) -> None:
    await agent_create(scope, "ship", model="openai/gpt-4o-mini")
    options = {"api_base": "http://localhost:11434", "api_key": "sk-secret", "AWS_SECRET_ACCESS_KEY": "x"}
    async with scope.sessions.begin() as session:
        await session.execute(
            text("UPDATE agents SET llm = llm || jsonb_build_object('options', CAST(:options AS jsonb))"),
            {"options": json.dumps(options)},
        )
    [agent] = content(await exported(scope, ["ship"]))["agents.jsonl"]
    assert agent["llm"] == {"model": "openai/gpt-4o-mini", "options": {"api_base": "http://localhost:11434"}}


@pytest.mark.parametrize(
    ("vector", "says"),
    [
        ("not base64!", "passages.jsonl line 1: 'vector' is not base64"),
        ("AAAAAA==", "passages.jsonl line 1: 'vector' holds 1 numbers, not 384"),
        (base64.b64encode(np.full(384, np.nan, dtype="<f4").tobytes()).decode(), "a number that is not finite"),
    ],
)
async def test_a_bad_vector_is_refused_and_nothing_is_written(scope: Scope, vector: str, says: str) -> None:
    await agent_create(scope, "ship")
    await archival_memory_insert(scope, "Whales sighted to starboard.", agent="ship")
    data = rewritten(await exported(scope, ["ship"], with_vectors=True), with_line("passages.jsonl", 1, vector=vector))
    with pytest.raises(InvalidInputError) as refused:
        await import_agents(scope, io.BytesIO(data), "ship-2", where="ship.zip")
    assert says in str(refused.value)
    assert [agent.name for agent in (await agent_list(scope)).agents] == ["ship"]


async def test_vectors_of_another_model_are_not_used_and_the_import_embeds_again(scope: Scope) -> None:
    await agent_create(scope, "ship")
    await archival_memory_insert(scope, "Whales sighted to starboard.", agent="ship")
    embedding = {"model": "other/model", "dimension": 384, "vectors": True}
    data = rewritten(await exported(scope, ["ship"], with_vectors=True), with_manifest(embedding=embedding))
    report = await import_agents(scope, io.BytesIO(data), "ship-2")
    assert report.skipped == [
        "the file's vectors (made by other/model): embedded again with sentence-transformers/all-MiniLM-L6-v2"
    ]
    assert report.embedded == 1
    with pytest.raises(InvalidInputError, match=r"agent name 'bad name!' is not valid"):
        await import_agents(scope, io.BytesIO(data), "bad name!")
