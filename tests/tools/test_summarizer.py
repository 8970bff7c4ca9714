"""The recursive summarizer: triggered at the threshold, recursive, never splitting a tool call from its result,
falling back to a safe truncation, and never losing a message."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import AsyncIterator, Sequence

import pytest
from mcp.client.client import Client
from sqlalchemy import func, select

from engram.server.runtime import open_runtime
from engram.server.settings import Settings
from engram.storage.schema import Conversation, Message, Summary
from engram.tools.loop.functions import tool_schemas
from engram.tools.loop.llm import ChatMessage, LLMReply, estimate_tokens
from engram.tools.loop.prompt import chat_messages
from engram.tools.loop.summarizer import eviction_cut
from engram.tools.loop.turn import LoopConfig, current_summary, send_message, summarize_conversation
from engram.tools.scope import Scope
from tests.tools.scripted_llm import ScriptedLLM, call, say

pytestmark = pytest.mark.anyio

WINDOW = 6000
CONFIG = LoopConfig(context_window=WINDOW)
FILLER = "The quick brown fox jumps over the lazy dog while the user tells a long story. " * 4


@pytest.fixture
async def scope(settings: Settings) -> AsyncIterator[Scope]:
    async with open_runtime(settings) as runtime:
        yield await runtime.scope()


async def chat(scope: Scope, llm: ScriptedLLM, turns: int) -> None:
    for turn in range(turns):
        await send_message(scope, f"turn {turn}: {FILLER}", choose_llm=lambda _c: llm, config=CONFIG)


async def count(scope: Scope, model: type[Message] | type[Summary]) -> int:
    async with scope.sessions.begin() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def context_start(scope: Scope) -> int:
    async with scope.sessions.begin() as session:
        return int(await session.scalar(select(Conversation.context_start)) or 0)


def prompt_share(prompt: list[ChatMessage]) -> float:
    return estimate_tokens(prompt, tool_schemas()) / WINDOW


def test_eviction_takes_a_third_first_and_never_keeps_a_result_without_its_call() -> None:
    assert eviction_cut([10] * 10, [False] * 10, budget=1000, evict_share=0.3) == 3
    assert eviction_cut([10] * 10, [False] * 10, budget=35, evict_share=0.3) == 7
    assert eviction_cut([10] * 10, [False, False, False, True, True, False, False, False, False, False], 1000, 0.3) == 5
    assert eviction_cut([10, 10, 10], [False, False, True], budget=0, evict_share=0.3) == 1
    generator = random.Random(5)
    for _ in range(2000):
        size = generator.randint(2, 30)
        results = [False] + [generator.random() < 0.4 for _ in range(size - 1)]
        sizes = [generator.randint(1, 50) for _ in range(size)]
        cut = eviction_cut(sizes, results, generator.randint(0, 500), 0.3)
        assert 0 <= cut < size and (cut == 0 or not results[cut])


async def test_prompts_stay_under_the_threshold_and_no_message_is_lost(scope: Scope) -> None:
    llm = ScriptedLLM(then=say("I hear you. " + FILLER))
    await chat(scope, llm, 40)
    assert max(prompt_share(prompt) for prompt in llm.prompts) <= 0.9
    assert await count(scope, Summary) >= 2
    assert await count(scope, Message) == 80
    assert await context_start(scope) > 1
    found = await current_summary(scope, None, None)
    assert found.summary and found.covers is not None and found.covers[0] == 1
    assert found.covers[1] == found.in_context_from - 1 and found.kind == "summary"


async def test_each_summary_folds_in_the_previous_one(scope: Scope) -> None:
    llm = ScriptedLLM(then=say("I hear you. " + FILLER))
    await chat(scope, llm, 40)
    async with scope.sessions.begin() as session:
        texts = list(await session.scalars(select(Summary.text).order_by(Summary.id)))
    assert len(llm.summary_requests) == len(texts) >= 2
    assert "(none yet)" in llm.summary_requests[0][-1]["content"]
    assert texts[0] in llm.summary_requests[1][-1]["content"]
    second = llm.prompts[-1][0]["content"]
    assert texts[-1] in second and "<summary>" in second


async def test_a_failing_summarizer_falls_back_to_truncation_with_a_notice(scope: Scope) -> None:
    llm = ScriptedLLM(then=say("I hear you. " + FILLER), summarizer=RuntimeError("model down"))
    await chat(scope, llm, 30)
    async with scope.sessions.begin() as session:
        kinds = set(await session.scalars(select(Summary.kind)))
        notice = await session.scalar(select(Summary.text).order_by(Summary.id.desc()).limit(1))
    assert kinds == {"truncation"}
    assert notice is not None and "conversation_search" in notice and "RuntimeError" in notice
    assert max(prompt_share(prompt) for prompt in llm.prompts) <= 0.9
    assert await count(scope, Message) == 60


def turn_with_a_tool_call(messages: Sequence[ChatMessage]) -> LLMReply:
    if messages[-1]["role"] == "tool":
        return say("Stored. " + FILLER[:120])
    return call("memory_insert", call_id=f"call-{len(messages)}", label="persona", new_str="x", insert_line=0)


async def test_a_tool_call_and_its_result_are_never_separated(scope: Scope) -> None:
    llm = ScriptedLLM(then=turn_with_a_tool_call)
    for turn in range(30):
        await send_message(scope, f"turn {turn}: {FILLER}", choose_llm=lambda _c: llm, config=CONFIG)
        async with scope.sessions.begin() as session:
            start = await session.scalar(select(Conversation.context_start))
            first = await session.scalar(select(Message.role).where(Message.ordinal == start))
        assert first != "tool"
    assert await count(scope, Summary) >= 2
    for prompt in llm.prompts:
        for before, message in itertools.pairwise(prompt):
            if message["role"] == "tool":
                assert before["role"] == "tool" or message["tool_call_id"] in json.dumps(before["tool_calls"])


async def test_summarize_now_evicts_the_oldest_messages_and_the_resource_shows_it(scope: Scope, client: Client) -> None:
    llm = ScriptedLLM(then=say("ok"))
    await chat(scope, llm, 5)
    done = await summarize_conversation(scope, None, None, choose_llm=lambda _c: llm, config=CONFIG)
    assert done is not None and done.first_ordinal == 1 and done.evicted >= 3
    resource = await client.read_resource("engram://agents/default/summary")
    shown = json.loads(resource.contents[0].text)  # type: ignore[union-attr]
    assert shown["summary"] == done.summary and shown["in_context_from"] == done.last_ordinal + 1
    assert shown["covers"] == [1, done.last_ordinal]


def test_orphaned_tool_traffic_becomes_notes_the_model_can_read() -> None:
    class Row:
        def __init__(self, role: str, text: str, content: dict[str, object]) -> None:
            self.role, self.text, self.content = role, text, content

    calls = [{"id": "a", "type": "function", "function": {"name": "x", "arguments": "{}"}}]
    rows = [
        Row("assistant", "", {"text": "", "tool_calls": calls}),  # its result was never stored
        Row("tool", "stray", {"text": "stray", "tool_call_id": "zzz"}),
        Row("user", "hi", {"text": "hi"}),
    ]
    chat = chat_messages(rows)  # type: ignore[arg-type]
    assert chat == [{"role": "user", "content": "[tool note] stray"}, {"role": "user", "content": "hi"}]
