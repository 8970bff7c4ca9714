"""The built-in agent: one `send_message` runs a Letta-style loop over the agent's own memory.

Each step builds the context (system prompt, core memory, memory statistics, summary, in-context
messages), compacts it first if it would pass the threshold, asks the model, stores what it said, runs
the memory tools it called and feeds their results (errors included) back, until it answers without a
tool call or reaches the step limit. Every message of the loop is stored in recall memory.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field

from engram.storage.errors import ConflictError
from engram.tools.arguments import DEFAULT_CONVERSATION, AgentArg, ConversationArg, check_conversation, check_text
from engram.tools.loop.functions import SEARCH_CALLS, run_tool, tool_schemas
from engram.tools.loop.llm import LLM, ChatMessage, LLMReply
from engram.tools.loop.prompt import MemoryStats, chat_messages, system_message
from engram.tools.loop.summarizer import Compaction, ContextPolicy, compact, needs_compaction
from engram.tools.memory.agents import resolve_agent
from engram.tools.memory.recall import find_conversation
from engram.tools.memory.records import MessageRecord
from engram.tools.repositories import block_repo, message_repo, summary_repo
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from engram.storage.schema import Agent, Block, Conversation, Message, Summary

LLMChooser = Callable[[dict[str, Any]], LLM]  # the agent's llm settings (model, context_window) -> a model
Progress = Callable[[int, int, str], Awaitable[None]]  # step, step limit, what the agent does now
Emit = Callable[[MessageRecord], Awaitable[None]]  # each message of the turn, once it is stored
OTID_KEY = "otid:"  # external key of a user message sent with an otid (Letta's client's id for a message)
COMPACTION_ROUNDS = 3


@dataclass(frozen=True)
class LoopConfig:
    """How the built-in agent runs: its step limit, and when and how far the summarizer compacts."""

    max_steps: int = 10
    context_window: int = 0  # tokens (llm_context_window); an agent's own context_window wins; 0 = the model's
    trigger: float = 0.9
    target: float = 0.7
    evict_share: float = 0.3


class ToolUse(BaseModel):
    name: str
    arguments: str = Field(description="The arguments the agent gave, shortened.")
    ok: bool


class AgentReply(BaseModel):
    agent: str
    conversation: str
    reply: str = Field(description="What the agent answers.")
    tools_used: list[ToolUse] = Field(description="The memory tools the agent called, in order.")
    steps: int
    stopped: Literal["reply", "step_limit"] = Field(
        description="'reply': the agent answered; 'step_limit': it was stopped while still calling tools."
    )
    summaries_made: int = Field(description="How many times older messages were summarized out of context.")
    model: str


async def _no_progress(_step: int, _total: int, _message: str) -> None:
    pass


async def _no_emit(_message: MessageRecord) -> None:
    pass


async def send_message(
    scope: Scope,
    message: Annotated[str, Field(description="The message to send to the agent.")],
    agent: AgentArg = None,
    conversation: ConversationArg = None,
    *,
    choose_llm: LLMChooser,
    config: LoopConfig,
    progress: Progress = _no_progress,
    emit: Emit = _no_emit,
    otid: str | None = None,
) -> AgentReply:
    """Send a message to the agent: it may edit its memory with tools, then replies.

    `emit` receives every message of the turn as it is stored (the user's first). A message with an `otid`
    that the conversation already holds is not answered again: ConflictError (a retried request; the REST
    API replays the stored turn instead).
    """
    text = check_text("message", message, max_chars=scope.max_input_chars)
    name = check_conversation(DEFAULT_CONVERSATION if conversation is None else conversation)
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent(session, scope, agent)
        thread = await message_repo.ensure_conversation(session, scope.owner_id, agent_row.id, name, source="agent")
    llm = choose_llm(dict(agent_row.llm or {}))
    policy = _policy(config, agent_row, llm)
    user = message_repo.NewMessage(
        role="user", text=text, content={"text": text}, external_key=f"{OTID_KEY}{otid}" if otid else None
    )
    if not await _store(scope, thread, [user], emit):
        raise ConflictError(f"the message with otid '{otid}' was sent already; it is answered once")
    tools = tool_schemas()
    used: list[ToolUse] = []
    summaries_made = 0
    sizes: dict[uuid.UUID, int] = {}
    reply = LLMReply(text="")
    for step in range(1, config.max_steps + 1):
        await progress(step, config.max_steps, f"step {step}: thinking")
        prompt, made = await build_prompt(scope, llm, agent_row, thread.id, tools, policy, sizes)
        summaries_made += len(made)
        if made:
            await progress(step, config.max_steps, f"step {step}: summarized {sum(c.evicted for c in made)} messages")
        reply = await llm.complete(prompt, tools)
        await _store(scope, thread, [_assistant_message(reply)], emit)
        if not reply.tool_calls:
            return _reply(agent_row, name, reply.text, used, step, "reply", summaries_made, llm)
        for call in reply.tool_calls:
            await progress(step, config.max_steps, f"step {step}: {call.name}")
            outcome = await run_tool(scope, agent_row.name, call.name, call.arguments)
            used.append(ToolUse(name=call.name, arguments=_short(call.arguments), ok=outcome.ok))
            await _store(
                scope,
                thread,
                [
                    message_repo.NewMessage(
                        role="tool",
                        text=outcome.text,
                        content={"text": outcome.text, "tool_call_id": call.id, "name": call.name, "ok": outcome.ok},
                        search_call=call.name in SEARCH_CALLS,
                    )
                ],
                emit,
            )
    final = reply.text or f"(the agent was stopped after {config.max_steps} steps while still using its tools)"
    return _reply(agent_row, name, final, used, config.max_steps, "step_limit", summaries_made, llm)


async def build_prompt(
    scope: Scope,
    llm: LLM,
    agent_row: Agent,
    conversation_id: uuid.UUID,
    tools: Sequence[dict[str, Any]],
    policy: ContextPolicy,
    sizes: dict[uuid.UUID, int] | None = None,
) -> tuple[list[ChatMessage], list[Compaction]]:
    """The prompt of the next model call, compacted first when it would pass the threshold."""
    made: list[Compaction] = []
    for _round in range(COMPACTION_ROUNDS):
        view = await _load(scope, agent_row, conversation_id)
        prompt = [view.system(view.summary_text), *chat_messages(view.rows)]
        if not needs_compaction(llm.count_tokens(prompt, tools), policy):
            return prompt, made
        done = await _compact(scope, llm, view, tools, policy, sizes)
        if done is None:
            return prompt, made  # nothing left to evict: send what there is
        made.append(done)
    return prompt, made


@dataclass(frozen=True)
class _ContextView:
    agent: Agent
    thread: Conversation
    blocks: list[Block]
    rows: list[Message]
    summary: Summary | None
    stats: MemoryStats

    @property
    def summary_text(self) -> str | None:
        return self.summary.text if self.summary is not None else None

    def system(self, summary: str | None) -> ChatMessage:
        return system_message(self.agent.name, self.agent.system, self.blocks, self.stats, summary)


async def _load(scope: Scope, agent_row: Agent, conversation_id: uuid.UUID) -> _ContextView:
    async with scope.sessions.begin() as session:
        thread = await summary_repo.conversation(session, conversation_id)
        blocks = await block_repo.of_agent(session, scope.owner_id, agent_row.id)
        rows = await summary_repo.in_context(session, thread)
        summary = await summary_repo.latest(session, conversation_id)
        passages, messages = await summary_repo.memory_counts(session, scope.owner_id, agent_row.id)
    stats = MemoryStats(passages=passages, messages=messages, out_of_context=thread.context_start - 1)
    return _ContextView(agent_row, thread, list(blocks), rows, summary, stats)


async def _compact(
    scope: Scope,
    llm: LLM,
    view: _ContextView,
    tools: Sequence[dict[str, Any]],
    policy: ContextPolicy,
    sizes: dict[uuid.UUID, int] | None,
) -> Compaction | None:
    base = llm.count_tokens([view.system(None)], tools)
    return await compact(
        scope,
        llm,
        view.thread,
        view.rows,
        base_tokens=base,
        previous_summary=view.summary_text,
        policy=policy,
        sizes=sizes,
    )


def _policy(config: LoopConfig, agent_row: Agent, llm: LLM) -> ContextPolicy:
    """The agent's own context window (agent_create, agent_update), else the server's, else the model's."""
    own = int((agent_row.llm or {}).get("context_window") or 0)
    return ContextPolicy(
        window=own or config.context_window or llm.context_window,
        trigger=config.trigger,
        target=config.target,
        evict_share=config.evict_share,
    )


async def summarize_conversation(
    scope: Scope, agent: str | None, conversation: str | None, *, choose_llm: LLMChooser, config: LoopConfig
) -> Compaction | None:
    """Summarize the oldest in-context messages now (as at the threshold); None when there is nothing to evict."""
    name = DEFAULT_CONVERSATION if conversation is None else conversation
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent(session, scope, agent)
        thread = await find_conversation(session, scope, agent_row, name)
    llm = choose_llm(dict(agent_row.llm or {}))
    view = await _load(scope, agent_row, thread.id)
    return await _compact(scope, llm, view, tool_schemas(), _policy(config, agent_row, llm), None)


async def reset_context(scope: Scope, agent: str | None, conversation: str | None) -> int:
    """Start the built-in agent's context of a conversation afresh (Letta's reset-messages); returns how many
    messages left its context. The messages stay in recall memory, searchable; a conversation not started yet
    has nothing to reset."""
    name = check_conversation(DEFAULT_CONVERSATION if conversation is None else conversation)
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent(session, scope, agent)
        thread = await message_repo.get_conversation(session, scope.owner_id, agent_row.id, name)
        if thread is None:
            return 0
        current = await summary_repo.conversation(session, thread.id)
        evicted = current.message_count - current.context_start + 1
        if evicted > 0:
            await summary_repo.evict(
                session, current, through=current.message_count, evicted=evicted, text="", kind="reset"
            )
        return max(evicted, 0)


class SummaryView(BaseModel):
    agent: str
    conversation: str
    summary: str | None = Field(description="The newest summary, or null if nothing has left the context yet.")
    kind: str | None = Field(description="'summary'; 'truncation' when the summarizer failed; 'reset' when reset.")
    covers: list[int] | None = Field(description="First and last message ordinal the summary covers.")
    summaries: int = Field(description="How many summaries this conversation has had.")
    in_context_from: int = Field(description="Ordinal of the first message still in the agent's context.")
    messages: int
    created_at: datetime | None


async def current_summary(scope: Scope, agent: str | None, conversation: str | None) -> SummaryView:
    name = DEFAULT_CONVERSATION if conversation is None else conversation
    async with scope.sessions.begin() as session:
        agent_row = await resolve_agent(session, scope, agent)
        thread = await find_conversation(session, scope, agent_row, name)
        summary = await summary_repo.latest(session, thread.id)
        count = await summary_repo.count(session, thread.id)
    return SummaryView(
        agent=agent_row.name,
        conversation=name,
        summary=summary.text if summary else None,
        kind=summary.kind if summary else None,
        covers=[summary.first_ordinal, summary.last_ordinal] if summary else None,
        summaries=count,
        in_context_from=thread.context_start,
        messages=thread.message_count,
        created_at=summary.created_at if summary else None,
    )


async def _store(scope: Scope, thread: Conversation, new: list[message_repo.NewMessage], emit: Emit) -> bool:
    """Store the messages and emit them; False (nothing stored) when one's external key was known already."""
    async with scope.sessions.begin() as session:
        stored = await message_repo.append(session, thread, new)
    if not all(item.created for item in stored):
        return False
    scope.recorded()
    for message, item in zip(new, stored, strict=True):
        await emit(
            MessageRecord(
                id=item.id,
                agent_id=thread.agent_id,
                conversation=thread.name,
                ordinal=item.ordinal,
                role=message.role,
                text=message.text,
                content=message.content,
                created_at=item.created_at,
            )
        )
    return True


def _assistant_message(reply: LLMReply) -> message_repo.NewMessage:
    content: dict[str, Any] = {"text": reply.text}
    searchable = reply.text
    if reply.tool_calls:
        content["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in reply.tool_calls
        ]
        names = ", ".join(call.name for call in reply.tool_calls)
        searchable = f"{reply.text}\n[called {names}]".strip()
    search_only = bool(reply.tool_calls) and all(call.name in SEARCH_CALLS for call in reply.tool_calls)
    return message_repo.NewMessage(
        role="assistant", text=searchable, content=content, search_call=search_only and not reply.text
    )


def _short(arguments: str, limit: int = 200) -> str:
    try:
        arguments = json.dumps(json.loads(arguments), ensure_ascii=False)
    except ValueError:
        pass
    return arguments if len(arguments) <= limit else arguments[:limit] + "…"


def _reply(
    agent_row: Agent,
    conversation: str,
    text: str,
    used: list[ToolUse],
    steps: int,
    stopped: Literal["reply", "step_limit"],
    summaries_made: int,
    llm: LLM,
) -> AgentReply:
    return AgentReply(
        agent=agent_row.name,
        conversation=conversation,
        reply=text,
        tools_used=used,
        steps=steps,
        stopped=stopped,
        summaries_made=summaries_made,
        model=llm.name,
    )


async def ensure_agent(scope: Scope, agent: str) -> str:
    """The agent's name, creating it (with persona and human blocks) if it is new."""
    async with scope.sessions.begin() as session:
        return (await resolve_agent(session, scope, agent, create=True)).name
