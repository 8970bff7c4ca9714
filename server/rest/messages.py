"""Letta's message routes: send a message to the built-in agent (plain or streamed as server-sent events),
list an agent's messages, reset its context, summarize it now.

The REST API talks with an agent in its default conversation. A message sent with an `otid` is answered
once: a retried request (Letta's client retries timeouts and 5xx) gets the stored answer, waiting for it
while the first request still runs.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from engram.server.rest import letta
from engram.server.rest.agents import After, Before, Limit, Order
from engram.server.rest.scope import ScopeDep, agent_state, page_of
from engram.server.send_message import NO_LLM, llm_chooser, loop_config
from engram.server.settings import Settings
from engram.storage.errors import ConfigurationError, ConflictError, EngramError, InvalidInputError
from engram.tools.loop import turn
from engram.tools.memory import records
from engram.tools.scope import Scope

router = APIRouter(tags=["messages"])


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "system", "assistant"]
    content: str | list[dict[str, Any]]
    otid: str | None = Field(
        default=None,
        max_length=200,
        description="The client's id for the message: a message whose otid was seen already is not answered again.",
    )
    name: str | None = None
    type: Literal["message"] | None = None
    sender_id: str | None = None
    batch_item_id: str | None = None
    group_id: str | None = None


class SendMessages(BaseModel):
    """Letta's request: one user message, as `input` or as `messages`; `streaming` answers with server-sent
    events. The other fields of Letta's request are accepted and ignored."""

    model_config = ConfigDict(extra="forbid")

    messages: list[MessageIn] | None = None
    input: str | list[dict[str, Any]] | None = None
    streaming: bool = False
    max_steps: int | None = Field(default=None, ge=1, le=100)
    stream_tokens: bool | None = None
    include_pings: bool | None = None
    background: bool | None = None
    use_assistant_message: bool | None = None
    assistant_message_tool_name: str | None = None
    assistant_message_tool_kwarg: str | None = None
    include_return_message_types: list[str] | None = None
    enable_thinking: str | None = None
    override_model: str | None = None
    override_system: str | None = None
    client_tools: list[Any] | None = None
    client_skills: list[Any] | None = None
    return_logprobs: bool | None = None
    top_logprobs: int | None = None
    return_token_ids: bool | None = None
    include_compaction_messages: bool | None = None

    def user_message(self) -> tuple[str, str | None]:
        """The text of the one user message, and its otid."""
        if self.input is not None and self.messages:
            raise InvalidInputError("send either 'input' or 'messages', not both")
        if self.input is not None:
            return letta.message_text(self.input), None
        if not self.messages or len(self.messages) != 1 or self.messages[0].role != "user":
            raise InvalidInputError(
                "send one message: 'input' with its text, or 'messages' with one {role: 'user', content} item"
            )
        return letta.message_text(self.messages[0].content), self.messages[0].otid


class Compacted(BaseModel):
    summary: str
    num_messages_before: int
    num_messages_after: int


@router.post("/agents/{agent_id}/messages")
async def send_message(agent_id: str, body: SendMessages, request: Request, scope: ScopeDep) -> Any:
    """Send a message to the agent and get what it said and did; with `"streaming": true`, as server-sent
    events (`data: <message>` each, then `data: [DONE]`)."""
    return await _answer(request, scope, records.parse_id("agent", agent_id), body, streaming=body.streaming)


@router.post("/agents/{agent_id}/messages/stream")
async def stream_message(agent_id: str, body: SendMessages, request: Request, scope: ScopeDep) -> Any:
    """Send a message and stream the answer as server-sent events (Letta's older route)."""
    return await _answer(request, scope, records.parse_id("agent", agent_id), body, streaming=True)


@router.get("/agents/{agent_id}/messages")
async def list_messages(
    agent_id: str,
    scope: ScopeDep,
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
    order: Order = "desc",
    conversation_id: Annotated[
        str | None, Query(description="Engram: a conversation's name; the default conversation if omitted.")
    ] = None,
) -> list[dict[str, Any]]:
    """The agent's messages, newest first unless `order=asc`, in Letta's shapes (by `message_type`)."""
    found = await records.message_records(
        scope,
        records.parse_id("agent", agent_id),
        page_of(limit, after, before, order, "message"),
        conversation=conversation_id,
    )
    return [message for record in found for message in letta.messages(record)]


@router.patch("/agents/{agent_id}/reset-messages")
async def reset_messages(agent_id: str, request: Request, scope: ScopeDep) -> letta.AgentState:
    """Start the agent's context afresh. Unlike Letta, nothing is deleted: the messages stay searchable in
    recall memory (conversation search)."""
    own_id = records.parse_id("agent", agent_id)
    await turn.reset_context(scope, await records.agent_name(scope, own_id), None)
    return await agent_state(request, scope, own_id)


@router.post("/agents/{agent_id}/summarize")
async def summarize(agent_id: str, request: Request, scope: ScopeDep) -> Compacted:
    """Summarize the oldest messages of the agent's context now, as the summarizer does at its threshold."""
    own_id = records.parse_id("agent", agent_id)
    settings: Settings = request.app.state.settings
    name = await records.agent_name(scope, own_id)
    before = await turn.current_summary(scope, name, None)
    done = await turn.summarize_conversation(
        scope, name, None, choose_llm=llm_chooser(settings), config=loop_config(settings)
    )
    in_context = before.messages - before.in_context_from + 1
    if done is None:
        return Compacted(summary=before.summary or "", num_messages_before=in_context, num_messages_after=in_context)
    return Compacted(summary=done.summary, num_messages_before=in_context, num_messages_after=in_context - done.evicted)


async def _answer(request: Request, scope: Scope, agent_id: uuid.UUID, body: SendMessages, *, streaming: bool) -> Any:
    settings: Settings = request.app.state.settings
    text, otid = body.user_message()
    agent = await records.agent_record(scope, agent_id)
    if not (agent.model or settings.llm_model):
        raise ConfigurationError(NO_LLM.replace("or call it from a host that supports MCP sampling", "for REST"))
    config = loop_config(settings)
    if body.max_steps is not None:
        config = dataclasses.replace(config, max_steps=min(config.max_steps, body.max_steps))

    async def run(emit: turn.Emit) -> turn.AgentReply | None:
        """Run the turn, or (a retry) emit the stored one and return None."""
        if otid is None:
            return await _run(scope, agent.name, text, settings, config, emit, None)
        waiting: dict[tuple[uuid.UUID, str], anyio.Event] = request.app.state.in_flight
        key = (agent_id, otid)
        if key in waiting:
            await waiting[key].wait()
        else:
            waiting[key] = anyio.Event()  # claimed before any await, so a duplicate arriving meanwhile waits
            try:
                if await records.turn_of(scope, agent_id, f"{turn.OTID_KEY}{otid}") is None:
                    return await _run(scope, agent.name, text, settings, config, emit, otid)
            except ConflictError:
                pass  # another instance took the otid first: answer with what it stored
            finally:
                waiting.pop(key).set()
        for record in await records.turn_of(scope, agent_id, f"{turn.OTID_KEY}{otid}") or []:
            await emit(record)
        return None

    if streaming:
        return EventStream(run)
    collected: list[dict[str, Any]] = []

    async def collect(record: records.MessageRecord) -> None:
        if record.role != "user":
            collected.extend(letta.messages(record))

    reply = await run(collect)
    return {"messages": collected, "stop_reason": _stop(reply), "usage": _usage(reply)}


async def _run(
    scope: Scope, agent: str, text: str, settings: Settings, config: turn.LoopConfig, emit: turn.Emit, otid: str | None
) -> turn.AgentReply:
    return await turn.send_message(
        scope, text, agent, None, choose_llm=llm_chooser(settings), config=config, emit=emit, otid=otid
    )


def _stop(reply: turn.AgentReply | None) -> dict[str, str]:
    reason = "max_steps" if reply is not None and reply.stopped == "step_limit" else "end_turn"
    return {"message_type": "stop_reason", "stop_reason": reason}


def _usage(reply: turn.AgentReply | None) -> dict[str, Any]:
    # Engram does not count the provider's tokens; the steps are what it knows.
    return {
        "message_type": "usage_statistics",
        "completion_tokens": 0,
        "prompt_tokens": 0,
        "total_tokens": 0,
        "step_count": reply.steps if reply is not None else 0,
    }


class EventStream(Response):
    """The turn as server-sent events, each `data: <json>` as its message is stored, then Letta's stop reason
    and usage, then `data: [DONE]`; an error after the stream started is `event: error`."""

    def __init__(self, run: Any) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self._run = run

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        async def chunk(data: dict[str, Any] | str, event: str | None = None) -> None:
            payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            framed = (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"
            await send({"type": "http.response.body", "body": framed.encode(), "more_body": True})

        async def emit(record: records.MessageRecord) -> None:
            if record.role != "user":
                for message in letta.messages(record):
                    await chunk(message)

        try:
            reply = await self._run(emit)
            await chunk(_stop(reply))
            await chunk(_usage(reply))
        except EngramError as exc:
            await chunk({"detail": str(exc), "message_type": "error_message"}, event="error")
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
