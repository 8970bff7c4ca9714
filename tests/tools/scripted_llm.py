"""A scripted LLM: a real implementation of the `LLM` Protocol whose answers the test writes in advance."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engram.tools.loop.llm import ChatMessage, LLMReply, ToolCall, ToolSchema, estimate_tokens
from engram.tools.loop.summarizer import SUMMARIZER_PROMPT

Answer = LLMReply | Exception | Callable[[Sequence[ChatMessage]], LLMReply]
SUMMARY_MARK = SUMMARIZER_PROMPT[:40]


def call(name: str, call_id: str = "call-1", **arguments: object) -> LLMReply:
    return LLMReply(text="", tool_calls=[ToolCall(id=call_id, name=name, arguments=json.dumps(arguments))])


def say(text: str) -> LLMReply:
    return LLMReply(text=text)


def summarize_by_counting(messages: Sequence[ChatMessage]) -> LLMReply:
    """A summary that names how many messages it folded in and keeps the previous one's first line."""
    request = str(messages[-1]["content"])
    previous = request.split("\n")[1]
    folded = request.split("Messages leaving the context:\n", 1)[1].count("\n") + 1
    return say(f"{folded} more; before: {previous[:60]}")


@dataclass
class ScriptedLLM:
    """Answers agent calls from `script` in order (then `then`, forever) and summary calls with `summarizer`."""

    script: list[Answer] = field(default_factory=list)
    then: Answer | None = None
    summarizer: Answer = summarize_by_counting
    window: int = 100_000
    prompts: list[list[ChatMessage]] = field(default_factory=list)
    summary_requests: list[list[ChatMessage]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "scripted"

    @property
    def context_window(self) -> int:
        return self.window

    def count_tokens(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()) -> int:
        return estimate_tokens(messages, tools)

    async def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()) -> LLMReply:
        is_summary = str(messages[0]["content"]).startswith(SUMMARY_MARK)
        (self.summary_requests if is_summary else self.prompts).append(list(messages))
        if is_summary:
            answer = self.summarizer
        elif self.script:
            answer = self.script.pop(0)
        elif self.then is not None:
            answer = self.then
        else:
            raise AssertionError("the scripted LLM ran out of answers")
        if isinstance(answer, Exception):
            raise answer
        return answer(messages) if callable(answer) else answer
