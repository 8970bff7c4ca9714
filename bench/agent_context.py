"""The summarizer over a long conversation: a scripted 1,000-turn chat with a small context window.

A scripted model (no network, deterministic) answers every turn, calls a memory tool every fifth turn, and
writes summaries that name what they folded in. Prints JSON: the peak prompt size as a share of the window
(goal: never above summarize_threshold), summaries made, and messages lost (goal: 0: every message of
every turn is still in recall memory, in order).

    python -m bench.agent_context [--turns 1000] [--window 6000]
"""

from __future__ import annotations

import argparse
import atexit
import json
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import func, select

from engram.server.runtime import open_runtime
from engram.server.send_message import loop_config
from engram.server.settings import load_settings
from engram.storage.schema import Message, Summary
from engram.tools.loop.functions import tool_schemas
from engram.tools.loop.llm import ChatMessage, LLMReply, ToolCall, ToolSchema, estimate_tokens
from engram.tools.loop.summarizer import SUMMARIZER_PROMPT
from engram.tools.loop.turn import send_message

WORDS = "tea garden river violin Lisbon cousin marathon recipe project deadline holiday piano bike".split()


class ScriptedModel:
    """An `LLM` that replies with varied, realistic-length text and measures every prompt it is sent."""

    def __init__(self, window: int, seed: int = 7) -> None:
        self._window = window
        self._random = random.Random(seed)
        self.peak_share = 0.0
        self.calls = 0
        self.summaries = 0

    @property
    def name(self) -> str:
        return "scripted"

    @property
    def context_window(self) -> int:
        return self._window

    def count_tokens(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()) -> int:
        return estimate_tokens(messages, tools)

    def _sentence(self, words: int) -> str:
        return " ".join(self._random.choice(WORDS) for _ in range(words)) + "."

    async def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()) -> LLMReply:
        self.peak_share = max(self.peak_share, self.count_tokens(messages, tools) / self._window)
        if str(messages[0]["content"]).startswith(SUMMARIZER_PROMPT[:40]):
            self.summaries += 1
            return LLMReply(text=f"Summary {self.summaries}: the user talked about " + self._sentence(60))
        self.calls += 1
        last = messages[-1]
        if last["role"] == "user" and "remember" in str(last["content"]):
            arguments = json.dumps({"label": "human", "new_memory": "Topics: " + self._sentence(20)})
            return LLMReply(
                text="", tool_calls=[ToolCall(id=f"c{self.calls}", name="memory_rethink", arguments=arguments)]
            )
        return LLMReply(text=self._sentence(self._random.randint(10, 80)))


async def run(turns: int, window: int) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="engram-bench-"))
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    settings = load_settings(overrides={"data_dir": str(data_dir), "llm_context_window": window}, environ={})
    model = ScriptedModel(window)
    sent: list[str] = []
    started = time.perf_counter()
    async with open_runtime(settings) as runtime:
        scope = await runtime.scope()
        for turn in range(turns):
            text = f"turn {turn}: " + model._sentence(model._random.randint(5, 60))
            if turn % 5 == 4:
                text += " Please remember this."
            sent.append(text)
            await send_message(scope, text, choose_llm=lambda _c: model, config=loop_config(settings))
        async with scope.sessions.begin() as session:
            stored_users = list(
                await session.scalars(select(Message.text).where(Message.role == "user").order_by(Message.ordinal))
            )
            stored = int(await session.scalar(select(func.count()).select_from(Message)) or 0)
            summaries = int(await session.scalar(select(func.count()).select_from(Summary)) or 0)
    expected = turns * 2 + 2 * (turns // 5)  # user + reply, and a tool call with its result every fifth turn
    base = estimate_tokens([], tool_schemas())
    return {
        "turns": turns,
        "context_window_tokens": window,
        "tool_schema_tokens": base,
        "threshold": settings.summarize_threshold,
        "peak_prompt_share_of_window": round(model.peak_share, 3),
        "summaries_made": summaries,
        "messages_stored": stored,
        "messages_lost": expected - stored + sum(1 for a, b in zip(sent, stored_users, strict=False) if a != b),
        "model_calls": model.calls,
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--window", type=int, default=6000)
    arguments = parser.parse_args()
    print(json.dumps(anyio.run(run, arguments.turns, arguments.window), indent=2))
