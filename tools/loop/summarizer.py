"""The recursive summarizer: keeps the agent's prompt inside its model's context window, losing nothing.

When the prompt would pass `trigger` of the window, the oldest in-context messages are evicted: about
`evict_share` of them first, more until the rest fits `target` of the window (with room for the summary),
never separating a tool call from its result. The model then folds the previous summary and the evicted
messages into a new summary, stored with the span it covers; the evicted messages stay in recall memory.
If the model fails, the messages are evicted anyway with a notice in place of a summary (a safe truncation):
the prompt still fits, and conversation_search still finds every message.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engram.tools.loop.llm import LLM, ChatMessage
from engram.tools.loop.prompt import row_message, transcript_line
from engram.tools.repositories import summary_repo
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from engram.storage.schema import Conversation, Message

log = logging.getLogger(__name__)

SUMMARIZER_PROMPT = """\
You maintain the running summary of a conversation between a user and an AI assistant with long-term \
memory. Older messages are leaving the assistant's context; you get the previous summary (if any) and \
those messages. Write the new summary: one text that keeps what the previous summary said and adds what \
the messages say, focused on facts about the user, decisions, open tasks and what the assistant stored \
in memory. Be concise (at most {words} words). Answer with the summary only."""


@dataclass(frozen=True)
class ContextPolicy:
    window: int  # tokens
    trigger: float = 0.9
    target: float = 0.7
    evict_share: float = 0.3
    summary_share: float = 0.1  # the longest a summary may be, as a share of the window

    @property
    def summary_tokens(self) -> int:
        return max(64, int(self.window * self.summary_share))


@dataclass(frozen=True)
class Compaction:
    evicted: int
    first_ordinal: int
    last_ordinal: int
    kind: str  # 'summary' or 'truncation'
    summary: str


def eviction_cut(sizes: Sequence[int], tool_results: Sequence[bool], budget: int, evict_share: float) -> int:
    """How many of the oldest messages to evict so the rest fits `budget` tokens.

    At least `evict_share` of them (so a summary is not made every turn), and never a cut that keeps a
    tool result without the call before it. The newest message (with its call, if it is a result) stays.
    """
    count = len(sizes)
    if count <= 1:
        return 0
    cut = max(1, math.ceil(evict_share * count))
    kept = sum(sizes[cut:])
    while cut < count and kept > budget:
        kept -= sizes[cut]
        cut += 1
    while cut < count and tool_results[cut]:
        cut += 1
    if cut >= count:
        cut = count - 1
        while cut > 0 and tool_results[cut]:
            cut -= 1
    return cut


def needs_compaction(prompt_tokens: int, policy: ContextPolicy) -> bool:
    return prompt_tokens > policy.trigger * policy.window


async def compact(
    scope: Scope,
    llm: LLM,
    conversation: Conversation,
    rows: Sequence[Message],
    *,
    base_tokens: int,
    previous_summary: str | None,
    policy: ContextPolicy,
    sizes: dict[uuid.UUID, int] | None = None,
) -> Compaction | None:
    """Evict the oldest in-context messages into a new summary. `base_tokens` is the prompt without
    summary and messages (system prompt, core memory, tools). None when there is nothing to evict."""
    known = sizes if sizes is not None else {}
    counts = [known.setdefault(row.id, llm.count_tokens([row_message(row)])) for row in rows]
    budget = int(policy.target * policy.window) - base_tokens - policy.summary_tokens
    cut = eviction_cut(counts, [row.role == "tool" for row in rows], budget, policy.evict_share)
    if cut == 0:
        return None
    evicted = list(rows[:cut])
    try:
        text, kind = await summarize(llm, previous_summary, evicted, policy), "summary"
    except Exception as exc:  # any failure of the model: truncate safely rather than fail the turn
        log.warning("summarizing %d messages failed (%s); evicting them with a notice instead", cut, exc)
        text, kind = truncation_notice(previous_summary, evicted, exc, policy), "truncation"
    async with scope.sessions.begin() as session:
        stored = await summary_repo.evict(
            session, conversation, through=evicted[-1].ordinal, evicted=cut, text=text, kind=kind
        )
        first = stored.first_ordinal
    return Compaction(evicted=cut, first_ordinal=first, last_ordinal=evicted[-1].ordinal, kind=kind, summary=text)


async def summarize(llm: LLM, previous: str | None, evicted: Sequence[Message], policy: ContextPolicy) -> str:
    """Fold the evicted messages into the previous summary, in as many rounds as the window needs."""
    words = max(30, policy.summary_tokens * 2 // 3)
    system: ChatMessage = {"role": "system", "content": SUMMARIZER_PROMPT.format(words=words)}
    room = int(policy.target * policy.window) - llm.count_tokens([system]) - policy.summary_tokens
    summary = previous or ""
    lines = [transcript_line(row) for row in evicted]
    while lines:
        part: list[str] = []
        while lines:
            candidate = [*part, lines[0]]
            if part and llm.count_tokens([system, _request(summary, candidate)]) > room:
                break
            part = candidate
            lines.pop(0)
        reply = await llm.complete([system, _request(summary, part)])
        if not reply.text.strip():
            raise ValueError("the model returned an empty summary")
        summary = cap_summary(llm, reply.text.strip(), policy)
    return summary


def _request(previous: str, lines: Sequence[str]) -> ChatMessage:
    body = f"Previous summary:\n{previous or '(none yet)'}\n\nMessages leaving the context:\n" + "\n".join(lines)
    return {"role": "user", "content": body}


def cap_summary(llm: LLM, text: str, policy: ContextPolicy) -> str:
    """A summary longer than its share of the window is cut (keeping its end, the most recent part)."""
    while len(text) > 100 and llm.count_tokens([{"role": "system", "content": text}]) > policy.summary_tokens:
        text = "…" + text[len(text) // 5 :]
    return text


def truncation_notice(previous: str | None, evicted: Sequence[Message], error: Exception, policy: ContextPolicy) -> str:
    notice = (
        f"[{len(evicted)} messages (ordinals {evicted[0].ordinal}-{evicted[-1].ordinal}) left the context "
        f"without a summary ({type(error).__name__}); they are in recall memory: use conversation_search.]"
    )
    kept = previous or ""
    # The summary's share at 3 characters a token (estimate_tokens' rate), less the notice and the newline.
    room = policy.summary_tokens * 3 - len(notice) - 1
    if len(kept) > room:
        kept = "…" + kept[len(kept) - max(0, room) + 1 :] if room > 1 else ""
    return f"{kept}\n{notice}".strip()
