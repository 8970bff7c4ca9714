"""The built-in agent's loop with a scripted LLM: tool calls run and fed back, errors fed back, the step limit,
recall memory of every message, and the context the model sees."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from engram.server.runtime import open_runtime
from engram.server.settings import Settings
from engram.storage.schema import Message
from engram.tools.loop.functions import TOOLS, tool_schemas
from engram.tools.loop.llm import LLMReply, ToolCall
from engram.tools.loop.turn import AgentReply, LoopConfig, send_message
from engram.tools.memory.core import read_block
from engram.tools.scope import Scope
from tests.conftest import Invalid
from tests.tools.scripted_llm import ScriptedLLM, call, say

pytestmark = pytest.mark.anyio


@pytest.fixture
async def scope(settings: Settings) -> AsyncIterator[Scope]:
    async with open_runtime(settings) as runtime:
        yield await runtime.scope()


async def ask(
    scope: Scope, llm: ScriptedLLM, message: str, *, max_steps: int = 10, conversation: str | None = None
) -> AgentReply:
    return await send_message(
        scope, message, None, conversation, choose_llm=lambda _config: llm, config=LoopConfig(max_steps=max_steps)
    )


async def stored(scope: Scope) -> list[Message]:
    async with scope.sessions.begin() as session:
        return list(await session.scalars(select(Message).order_by(Message.conversation_id, Message.ordinal)))


async def test_a_tool_call_is_executed_and_its_result_fed_back_to_the_model(scope: Scope) -> None:
    llm = ScriptedLLM([call("core_memory_append", label="human", content="Likes green tea."), say("Noted!")])
    reply = await ask(scope, llm, "I like green tea.")
    assert reply.reply == "Noted!" and reply.stopped == "reply" and reply.steps == 2
    assert [(use.name, use.ok) for use in reply.tools_used] == [("core_memory_append", True)]
    assert "Likes green tea." in (await read_block(scope, None, "human")).value
    fed_back = llm.prompts[1][-1]
    assert fed_back["role"] == "tool" and fed_back["tool_call_id"] == "call-1"
    assert "Likes green tea." in fed_back["content"]
    assert llm.prompts[1][-2]["tool_calls"][0]["function"]["name"] == "core_memory_append"


async def test_a_failing_tool_call_reaches_the_model_as_an_error_it_can_correct(scope: Scope) -> None:
    llm = ScriptedLLM(
        [
            call("core_memory_replace", label="human", old_content="coffee", new_content="tea"),
            call("no_such_tool", call_id="call-2"),
            LLMReply(text="", tool_calls=[ToolCall(id="call-3", name="memory_rethink", arguments="{not json")]),
            call("core_memory_append", call_id="call-4", label="human", content="Prefers tea."),
            say("Fixed."),
        ]
    )
    reply = await ask(scope, llm, "I prefer tea now.")
    assert reply.reply == "Fixed."
    assert [use.ok for use in reply.tools_used] == [False, False, False, True]
    errors = [str(prompt[-1]["content"]) for prompt in llm.prompts[1:4]]
    assert errors[0] == "error: block 'human' has no text 'coffee'; call core_memory_view to see its current value"
    assert errors[1] == f"error: there is no tool 'no_such_tool'; the tools are: {', '.join(TOOLS)}"
    assert "core_memory_append, " in errors[1]
    assert errors[2] == (
        "error: invalid arguments for memory_rethink: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"
    )


async def test_the_loop_stops_at_the_step_limit_with_every_call_answered(scope: Scope) -> None:
    llm = ScriptedLLM(then=call("archival_memory_search", query="tea"))
    reply = await ask(scope, llm, "Search forever.", max_steps=3)
    assert reply.stopped == "step_limit" and reply.steps == 3 and len(llm.prompts) == 3
    assert "stopped after 3 steps" in reply.reply
    roles = [row.role for row in await stored(scope)]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant", "tool"]


async def test_every_message_of_the_loop_is_stored_and_search_calls_are_marked(scope: Scope) -> None:
    llm = ScriptedLLM([call("conversation_search", query="tea"), say("You never mentioned tea.")])
    await ask(scope, llm, "Did I mention tea?", conversation="chat-1")
    rows = await stored(scope)
    assert [(row.role, row.search_call) for row in rows] == [
        ("user", False),
        ("assistant", True),
        ("tool", True),
        ("assistant", False),
    ]
    assert rows[1].content["tool_calls"][0]["function"]["name"] == "conversation_search"
    assert rows[2].content["tool_call_id"] == "call-1" and rows[2].content["name"] == "conversation_search"
    assert rows[3].text == "You never mentioned tea."


async def test_the_model_sees_its_prompt_core_memory_statistics_and_earlier_turns(scope: Scope) -> None:
    llm = ScriptedLLM([say("Hello Ada."), say("You are Ada.")])
    await ask(scope, llm, "I am Ada.")
    await ask(scope, llm, "Who am I?")
    system, *chat = llm.prompts[1]
    assert system["role"] == "system"
    for expected in ("archival_memory_search", "<memory_blocks", "<human>", "chars_limit", "3 messages in recall"):
        assert expected in system["content"], expected
    assert [(m["role"], m["content"]) for m in chat] == [
        ("user", "I am Ada."),
        ("assistant", "Hello Ada."),
        ("user", "Who am I?"),
    ]
    offered = {tool["function"]["name"] for tool in tool_schemas()}
    assert offered >= {"core_memory_append", "memory_rethink", "archival_memory_insert", "conversation_search"}


async def test_the_agent_edits_only_its_own_memory(scope: Scope) -> None:
    for schema in tool_schemas():
        assert "agent" not in schema["function"]["parameters"]["properties"], schema["function"]["name"]
    llm = ScriptedLLM([call("core_memory_append", label="human", content="x", agent="other"), say("ok")])
    reply = await ask(scope, llm, "hi")
    assert not reply.tools_used[0].ok
    refusal = str(llm.prompts[1][-1]["content"])
    assert refusal.startswith("error: invalid arguments for core_memory_append: ")
    assert Invalid("agent", "Extra inputs are not permitted").found_in(refusal)
