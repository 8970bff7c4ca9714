"""Letta agent files (.af): an exported agent imports as the same agent; Letta's current and 0.6.x files, and
double-encoded ones, import with their blocks, history and context; bad files and taken names change nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from engram.server.runtime import open_runtime
from engram.server.settings import Settings
from engram.storage.errors import ConflictError, InvalidInputError, NotFoundError
from engram.storage.schema import Message
from engram.tools.ingest.agent_files import MAX_AGENT_FILE_BYTES, export_agent_file, import_agent_file
from engram.tools.loop.prompt import DEFAULT_SYSTEM_PROMPT
from engram.tools.loop.turn import LoopConfig, current_summary, send_message, summarize_conversation
from engram.tools.memory.agents import BlockSpec, agent_create, agent_list, agent_show
from engram.tools.memory.blocks import block_list
from engram.tools.memory.core import read_block
from engram.tools.scope import Scope
from tests.tools.scripted_llm import ScriptedLLM, call, say

pytestmark = pytest.mark.anyio

PIRATE = "You are a pirate who keeps a ship's log in memory. Answer in pirate speech."
EMBEDDING = {"embedding_model": "text-embedding-3-small", "embedding_endpoint_type": "openai", "embedding_dim": 1536}


def text(value: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": value}]


def letta_file() -> dict[str, Any]:
    """A small file shaped like Letta's own export: message 0 the compiled system prompt, a tool call with its
    return, a message of two text parts, and only the last messages in context."""
    return {
        "agents": [
            {
                "id": "agent-0",
                "name": "helper",
                "system": "You are Letta's helper.",
                "agent_type": "memgpt_v2_agent",
                "description": "Made in Letta",
                "llm_config": {"model": "gpt-4o-mini", "model_endpoint_type": "openai", "context_window": 32000},
                "embedding_config": EMBEDDING,
                "tags": ["letta"],
                "block_ids": ["block-0", "block-1"],
                "tool_ids": ["tool-0"],
                "messages": [
                    {
                        "id": "message-0",
                        "role": "system",
                        "content": text("You are Letta's helper.\n<memory_blocks>...</memory_blocks>"),
                        "created_at": "2025-05-01T10:00:00Z",
                    },
                    {
                        "id": "message-1",
                        "role": "user",
                        "content": text("Hi, I'm Bo."),
                        "created_at": "2025-05-01T10:00:01Z",
                    },
                    {
                        "id": "message-2",
                        "role": "assistant",
                        "content": text("A new user called Bo."),
                        "tool_calls": [
                            {
                                "id": "call-a",
                                "type": "function",
                                "function": {"name": "send_message", "arguments": '{"message": "Hello Bo!"}'},
                            }
                        ],
                        "created_at": "2025-05-01T10:00:02Z",
                    },
                    {
                        "id": "message-3",
                        "role": "tool",
                        "content": text('{"status": "OK"}'),
                        "tool_call_id": "call-a",
                        "name": "send_message",
                        "tool_returns": [{"tool_call_id": "call-a", "status": "success", "stdout": [], "stderr": []}],
                        "created_at": "2025-05-01T10:00:03Z",
                    },
                    {
                        "id": "message-4",
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "I live in Oslo."},
                            {"type": "text", "text": "It is cold."},
                        ],
                        "created_at": "2025-05-01T10:01:00Z",
                    },
                    {
                        "id": "message-5",
                        "role": "assistant",
                        "content": text("Noted."),
                        "created_at": "2025-05-01T10:01:01Z",
                    },
                ],
                "in_context_message_ids": ["message-0", "message-4", "message-5"],
            }
        ],
        "blocks": [
            {"id": "block-0", "label": "human", "value": "Name: Bo", "limit": 5000, "description": "The user"},
            {
                "id": "block-1",
                "label": "persona",
                "value": "A helper.",
                "limit": 400,
                "read_only": True,
                "metadata": {},
            },
        ],
        "tools": [{"id": "tool-0", "name": "send_message", "tool_type": "letta_core", "source_type": "python"}],
        "groups": [],
        "files": [],
        "sources": [],
        "mcp_servers": [],
        "metadata": {"revision_id": "a1b2c3"},
        "created_at": "2025-05-01T10:05:00Z",
    }


def legacy_file(**in_context: Any) -> dict[str, Any]:
    """A Letta 0.6.x file: one flat agent, 'core_memory' blocks, messages with 'text' or plain-string content."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "text": "You are MemGPT.\n### Memory [...]", "created_at": "2025-01-02T09:00:00"},
        {
            "role": "assistant",
            "text": "Bootup sequence complete.",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "send_message", "arguments": "{}"}}],
            "created_at": "2025-01-02T09:00:01",
        },
        {"role": "function", "text": '{"status": "OK"}', "tool_call_id": "c1", "name": "send_message"},
        {"role": "user", "content": "What do you remember?", "created_at": "2025-01-02T09:01:00"},
        {"role": "assistant", "content": text("That you like chess."), "created_at": "2025-01-02T09:01:01"},
    ]
    flags = in_context.pop("flags", None)
    if flags is not None:
        for message, flag in zip(messages, flags, strict=True):
            message["in_context"] = flag
    return {
        "version": "0.6.6",
        "name": "old-timer",
        "system": "You are MemGPT.",
        "description": None,
        "tags": [],
        "llm_config": {"model": "gpt-4", "model_endpoint_type": "openai", "context_window": 8192},
        "embedding_config": EMBEDDING,
        "core_memory": [
            {"label": "persona", "value": "I am Sam.", "limit": 2000},
            {"label": "human", "value": "Likes chess. " * 10, "limit": 100},
        ],
        "messages": messages,
        "tools": [],
        **in_context,
    }


@pytest.fixture
async def scope(settings: Settings) -> AsyncIterator[Scope]:
    async with open_runtime(settings) as runtime:
        yield await runtime.scope()


async def messages_of(scope: Scope, agent: str) -> list[Message]:
    agent_id = uuid.UUID((await agent_show(scope, agent)).id)
    async with scope.sessions.begin() as session:
        return list(
            await session.scalars(select(Message).where(Message.agent_id == agent_id).order_by(Message.ordinal))
        )


async def agent_names(scope: Scope) -> list[str]:
    return [agent.name for agent in (await agent_list(scope)).agents]


async def in_context_from(scope: Scope, agent: str) -> int:
    return (await current_summary(scope, agent, None)).in_context_from


def comparable(exported: dict[str, Any]) -> Any:
    """The file as JSON, without what differs between two agents of the same content: names and times."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: strip(item) for key, item in value.items() if key not in ("created_at", "name")}
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    return strip(json.loads(json.dumps(exported)))


async def test_an_exported_agent_imports_as_the_same_agent_and_exports_the_same_file(scope: Scope) -> None:
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
    llm = ScriptedLLM([call("core_memory_append", label="human", content="Captain Ann likes tea."), say("Noted!")])
    llm.then = say("Aye.")
    for message in ("I am Captain Ann and I like tea.", "Where are we?", "Hoist the sails."):
        await send_message(scope, message, "ship", choose_llm=lambda _config: llm, config=LoopConfig())
    done = await summarize_conversation(scope, "ship", None, choose_llm=lambda _config: llm, config=LoopConfig())
    assert done is not None and done.last_ordinal >= 2

    exported = await export_agent_file(scope, "ship")
    [agent] = exported["agents"]
    assert (agent["name"], agent["system"], agent["description"], agent["tags"]) == (
        "ship",
        PIRATE,
        "The ship's log",
        ["sea", "log"],
    )
    assert agent["llm_config"] == {
        "model": "anthropic/claude-3-5-haiku",
        "model_endpoint_type": "anthropic",
        "context_window": 16000,
    }
    assert agent["embedding_config"]["embedding_dim"] == 384 and agent["agent_type"] == "memgpt_agent"
    assert [(b["label"], b["read_only"], b["limit"]) for b in exported["blocks"]] == [
        ("persona", False, 5000),
        ("human", False, 5000),
        ("charter", True, 300),
    ]
    assert "Captain Ann likes tea." in exported["blocks"][1]["value"]
    roles = ["system", "user", "assistant", "tool", "assistant", "user", "assistant", "user", "assistant"]
    assert [m["role"] for m in agent["messages"]] == roles
    assert agent["messages"][0]["content"] == text(PIRATE)
    assert agent["messages"][2]["tool_calls"][0]["function"]["name"] == "core_memory_append"
    tool_result = agent["messages"][3]
    assert (tool_result["tool_call_id"], tool_result["name"]) == ("call-1", "core_memory_append")
    assert agent["in_context_message_ids"] == ["message-0"] + [f"message-{n}" for n in range(done.last_ordinal + 1, 9)]
    assert exported["metadata"]["exported_by"] == "engram"

    assert await import_agent_file(scope, json.dumps(exported), name="copy") == ["copy"]
    again = await export_agent_file(scope, "copy")
    assert again["agents"][0]["name"] == "copy"
    assert comparable(again) == comparable(exported)
    assert await in_context_from(scope, "copy") == done.last_ordinal + 1
    original, copied = await messages_of(scope, "ship"), await messages_of(scope, "copy")
    assert [(m.role, m.text, m.content, m.created_at) for m in copied] == [
        (m.role, m.text, m.content, m.created_at) for m in original
    ]


async def test_an_agent_without_settings_exports_engrams_prompt_and_imports_without_them(scope: Scope) -> None:
    await agent_create(scope, "plain")
    exported = await export_agent_file(scope, "plain")
    [agent] = exported["agents"]
    assert agent["system"] == DEFAULT_SYSTEM_PROMPT and agent["llm_config"] is None
    assert agent["messages"] == [
        {
            "id": "message-0",
            "role": "system",
            "content": text(DEFAULT_SYSTEM_PROMPT),
            "tool_calls": None,
            "tool_call_id": None,
            "name": None,
            "tool_returns": None,
            "created_at": agent["messages"][0]["created_at"],
        }
    ]
    assert agent["in_context_message_ids"] == ["message-0"]
    await import_agent_file(scope, json.dumps(exported), name="plain2")
    info = await agent_show(scope, "plain2")
    assert (info.system, info.model, info.context_window) == (None, None, None)
    assert await messages_of(scope, "plain2") == []


async def test_a_letta_file_imports_its_settings_blocks_history_and_context(scope: Scope) -> None:
    assert await import_agent_file(scope, json.dumps(letta_file()).encode()) == ["helper"]
    info = await agent_show(scope, "helper", system_chars=None)
    assert (info.system, info.description, info.model, info.context_window, info.tags) == (
        "You are Letta's helper.",
        "Made in Letta",
        "gpt-4o-mini",
        32000,
        ["letta"],
    )
    assert [(b.label, b.chars_limit, b.read_only, b.description) for b in info.blocks] == [
        ("human", 5000, False, "The user"),
        ("persona", 400, True, ""),
    ]
    assert (await read_block(scope, "helper", "human")).value == "Name: Bo"
    stored = await messages_of(scope, "helper")
    assert [(m.ordinal, m.role, m.content["text"]) for m in stored] == [
        (1, "user", "Hi, I'm Bo."),
        (2, "assistant", "A new user called Bo."),
        (3, "tool", '{"status": "OK"}'),
        (4, "user", "I live in Oslo.\n\nIt is cold."),
        (5, "assistant", "Noted."),
    ]
    assert stored[1].content["tool_calls"] == letta_file()["agents"][0]["messages"][2]["tool_calls"]
    assert stored[1].text == "A new user called Bo.\n[called send_message]"
    assert stored[2].content == {
        "text": '{"status": "OK"}',
        "tool_call_id": "call-a",
        "name": "send_message",
        "ok": True,
    }
    assert stored[0].created_at == datetime(2025, 5, 1, 10, 0, 1, tzinfo=UTC)
    assert [m.external_key for m in stored] == [f"af:message-{n}" for n in range(1, 6)]
    assert await in_context_from(scope, "helper") == 4


async def test_a_legacy_file_takes_its_context_from_in_context_message_indices(scope: Scope) -> None:
    assert await import_agent_file(scope, json.dumps(legacy_file(in_context_message_indices=[0, 3, 4]))) == [
        "old-timer"
    ]
    info = await agent_show(scope, "old-timer", system_chars=None)
    assert (info.system, info.description, info.model, info.context_window) == ("You are MemGPT.", "", "gpt-4", 8192)
    human = await read_block(scope, "old-timer", "human")
    assert human.value == "Likes chess. " * 10 and human.char_limit == 130  # raised to fit, never cut
    stored = await messages_of(scope, "old-timer")
    assert [(m.role, m.content["text"]) for m in stored] == [
        ("assistant", "Bootup sequence complete."),
        ("tool", '{"status": "OK"}'),
        ("user", "What do you remember?"),
        ("assistant", "That you like chess."),
    ]
    assert stored[1].content == {"text": '{"status": "OK"}', "tool_call_id": "c1", "name": "send_message"}
    assert stored[0].created_at == datetime(2025, 1, 2, 9, 0, 1, tzinfo=UTC)
    assert await in_context_from(scope, "old-timer") == 3


async def test_a_legacy_file_takes_its_context_from_in_context_flags(scope: Scope) -> None:
    await import_agent_file(scope, json.dumps(legacy_file(flags=[True, False, True, True, True])))
    assert len(await messages_of(scope, "old-timer")) == 4
    assert await in_context_from(scope, "old-timer") == 2


async def test_a_file_holding_its_json_as_a_string_is_decoded_again_and_all_is_in_context(scope: Scope) -> None:
    data = letta_file()
    del data["agents"][0]["in_context_message_ids"]
    assert await import_agent_file(scope, json.dumps(json.dumps(data))) == ["helper"]
    assert len(await messages_of(scope, "helper")) == 5
    assert await in_context_from(scope, "helper") == 1


async def test_strip_messages_imports_the_agent_without_its_history(scope: Scope) -> None:
    data = letta_file()
    data["agents"][0]["messages"].append({"id": "message-6", "role": "approval", "approve": True})
    with pytest.raises(InvalidInputError, match="pass strip_messages to import the agent without its history"):
        await import_agent_file(scope, json.dumps(data))
    await import_agent_file(scope, json.dumps(data), strip_messages=True)
    assert [b.label for b in (await agent_show(scope, "helper")).blocks] == ["human", "persona"]
    assert await messages_of(scope, "helper") == []
    assert (await export_agent_file(scope, "helper"))["agents"][0]["in_context_message_ids"] == ["message-0"]


async def test_append_copy_suffix_imports_the_same_file_again_under_a_copy_name(scope: Scope) -> None:
    await import_agent_file(scope, json.dumps(letta_file()))
    assert await import_agent_file(scope, json.dumps(letta_file()), append_copy_suffix=True) == ["helper__copy"]
    assert sorted(await agent_names(scope)) == ["helper", "helper__copy"]
    assert len(await messages_of(scope, "helper__copy")) == 5


async def test_a_taken_name_is_refused_and_nothing_changes(scope: Scope) -> None:
    await agent_create(scope, "helper", description="mine")
    with pytest.raises(ConflictError) as refused:
        await import_agent_file(scope, json.dumps(letta_file()))
    assert str(refused.value) == (
        "agent 'helper' already exists; pass another name, or append_copy_suffix to import it as 'helper__copy'"
    )
    info = await agent_show(scope, "helper")
    assert (info.description, [b.label for b in info.blocks]) == ("mine", ["persona", "human"])
    assert await agent_names(scope) == ["helper"] and await messages_of(scope, "helper") == []


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"{not json", "the agent file is not valid JSON (line 1, column 2"),
        ('"no json inside"', "the JSON string in the agent file is not valid JSON"),
        (b"\xff\xfe{}", "the agent file is not UTF-8 text"),
        ("[1, 2]", "the agent file holds a list; expected a Letta agent file (.af)"),
        ('{"conversations": []}', "the agent file has neither 'agents' nor 'core_memory'; expected a Letta agent"),
        ('{"agents": []}', "the agent file holds no agents"),
        ('{"agents": [{"name": "x", "block_ids": ["block-9"]}]}', "'block_ids' names 'block-9', which is not in"),
    ],
)
async def test_what_is_not_an_agent_file_is_refused_saying_what_was_expected(
    scope: Scope, data: bytes | str, says: str
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        await import_agent_file(scope, data)
    assert says in str(refused.value)
    assert await agent_names(scope) == []


def changed(
    agent: dict[str, Any] | None = None,
    message: tuple[int, dict[str, Any]] | None = None,
    block: tuple[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The Letta file with some fields of its agent, of one message or of one block replaced."""
    data = letta_file()
    data["agents"][0] |= agent or {}
    if message is not None:
        data["agents"][0]["messages"][message[0]] |= message[1]
    if block is not None:
        data["blocks"][block[0]] |= block[1]
    return data


def many_blocks() -> dict[str, Any]:
    data = letta_file()
    data["blocks"] = [{"id": f"block-{n}", "label": f"b{n}", "value": ""} for n in range(21)]
    data["agents"][0]["block_ids"] = [block["id"] for block in data["blocks"]]
    return data


def twins() -> dict[str, Any]:
    data = letta_file()
    data["agents"].append({**data["agents"][0], "id": "agent-1"})
    return data


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (changed(agent={"name": None}), "agents[0] has no name; pass 'name' to give it one"),
        (changed(agent={"system": 7}), "agents[0] ('helper'): 'system' must be a string, not a number"),
        (changed(agent={"tags": ["x" * 51]}), "agents[0] ('helper'): tag 'xxxxx"),
        (changed(agent={"llm_config": "gpt-4"}), "agents[0] ('helper').llm_config: expected a JSON object, found a"),
        (changed(agent={"messages": ["hi"]}), "agents[0] ('helper').messages[0]: expected a JSON object, found a"),
        (changed(message=(2, {"id": "message-1"})), "two messages have the id 'message-1'; message ids must differ"),
        (changed(agent={"in_context_message_ids": ["message-9"]}), "names 'message-9', which is not one of its"),
        (changed(message=(2, {"tool_calls": "send_message"})), "'tool_calls' must be a list, not a string"),
        (changed(message=(2, {"tool_calls": [{"function": {}}]})), ".tool_calls[0].function: 'name' is missing"),
        (changed(message=(1, {"created_at": 17})), "messages[1]: 'created_at' must be ISO 8601 text, not a number"),
        (changed(message=(1, {"created_at": "yesterday"})), "messages[1].created_at 'yesterday' is not an ISO 8601"),
        (changed(block=(0, {"label": None})), "block 'block-0': 'label' must be a string, not null"),
        (changed(block=(1, {"label": "human"})), "two of its blocks share a label; every block needs its own label"),
        (changed(block=(0, {"value": "x" * 1_000_001})), "holds 1000001 characters; a block holds at most 1000000"),
        (changed(block=(0, {"description": "d" * 2001})), "is 2001 characters, over the maximum of 2000"),
        (many_blocks(), "agents[0] ('helper') has 21 blocks; an agent may have at most 20"),
        (twins(), "the agent file holds several agents named 'helper'; agent names must differ"),
        (legacy_file(in_context_message_indices=[7]), "must hold places in its messages (0-4)"),
        ({**legacy_file(), "core_memory": "persona"}, "'core_memory' must be a list, not a string"),
    ],
)
async def test_a_malformed_agent_file_is_refused_naming_the_place(scope: Scope, data: Any, says: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        await import_agent_file(scope, json.dumps(data))
    assert says in str(refused.value)
    assert await agent_names(scope) == []


async def test_a_file_over_100_mb_is_refused_before_it_is_read(scope: Scope) -> None:
    with pytest.raises(InvalidInputError, match="over 100 MB"):
        await import_agent_file(scope, b" " * (MAX_AGENT_FILE_BYTES + 1))


async def test_a_bad_block_in_the_second_agent_leaves_nothing_behind(scope: Scope) -> None:
    data = letta_file()
    second = {**data["agents"][0], "id": "agent-1", "name": "second", "block_ids": ["block-2"]}
    data["agents"].append(second)
    data["blocks"].append({"id": "block-2", "label": "bad label!", "value": ""})
    with pytest.raises(InvalidInputError) as refused:
        await import_agent_file(scope, json.dumps(data))
    assert str(refused.value).startswith("agents[1] ('second'): block 'block-2': block label 'bad label!' is not valid")
    assert await agent_names(scope) == []


async def test_a_failure_while_storing_the_second_agent_rolls_back_the_first(scope: Scope) -> None:
    await agent_create(scope, "second")
    data = letta_file()
    data["agents"].append({**data["agents"][0], "id": "agent-1", "name": "second"})
    with pytest.raises(ConflictError, match="agent 'second' already exists"):
        await import_agent_file(scope, json.dumps(data))
    assert await agent_names(scope) == ["second"]
    async with scope.sessions.begin() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0


async def test_agents_of_one_file_that_list_the_same_block_share_it(scope: Scope) -> None:
    data = letta_file()
    data["blocks"].append({"id": "block-2", "label": "notes", "value": "Own notes."})
    data["agents"].append(
        {**data["agents"][0], "id": "agent-1", "name": "sleeper", "block_ids": ["block-0", "block-2"]}
    )
    assert await import_agent_file(scope, json.dumps(data)) == ["helper", "sleeper"]
    shared = {block.label: block.agents for block in (await block_list(scope)).blocks}
    assert shared == {"human": ["helper", "sleeper"], "notes": ["sleeper"], "persona": ["helper"]}
    assert [block.label for block in (await agent_show(scope, "sleeper")).blocks] == ["human", "notes"]


async def test_a_name_for_a_file_of_several_agents_is_refused(scope: Scope) -> None:
    data = letta_file()
    data["agents"].append({**data["agents"][0], "id": "agent-1", "name": "other"})
    with pytest.raises(InvalidInputError, match="holds 2 agents and 'name' renames one agent only"):
        await import_agent_file(scope, json.dumps(data), name="mine")
    assert await import_agent_file(scope, json.dumps(data)) == ["helper", "other"]


async def test_engrams_own_prompt_a_bad_model_and_a_bad_window_are_left_unset(scope: Scope) -> None:
    data = letta_file()
    data["agents"][0] |= {
        "system": DEFAULT_SYSTEM_PROMPT,
        "llm_config": {"model": "not a model", "model_endpoint_type": "openai", "context_window": 100},
    }
    await import_agent_file(scope, json.dumps(data), name="mine")
    info = await agent_show(scope, "mine")
    assert (info.system, info.model, info.context_window) == (None, None, None)


async def test_a_letta_name_engram_cannot_take_asks_for_another_name(scope: Scope) -> None:
    data = letta_file()
    data["agents"][0]["name"] = "My Helper"
    with pytest.raises(InvalidInputError, match="pass 'name' to import the agent under another name"):
        await import_agent_file(scope, json.dumps(data))
    with pytest.raises(InvalidInputError, match=r"^agent name 'my helper' is not valid"):
        await import_agent_file(scope, json.dumps(data), name="my helper")
    assert await import_agent_file(scope, json.dumps(data), name="my-helper") == ["my-helper"]


async def test_exporting_an_unknown_agent_names_it(scope: Scope) -> None:
    with pytest.raises(NotFoundError, match="agent 'ghost' does not exist"):
        await export_agent_file(scope, "ghost")
