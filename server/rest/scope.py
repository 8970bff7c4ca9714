"""What every route takes: the caller's scope (its bearer token's principal), and the pieces of Letta's
paging and agent state that several routers share."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Request

from engram.server.rest import letta
from engram.server.runtime import Runtime, principal_of
from engram.storage.paging import Cursor
from engram.tools.memory import records
from engram.tools.scope import Scope


async def scope_of_request(request: Request) -> Scope:
    runtime: Runtime = request.app.state.runtime
    return await runtime.scope(principal_of(request))


ScopeDep = Annotated[Scope, Depends(scope_of_request)]


def page_of(
    limit: int, after: str | None, before: str | None, order: Literal["asc", "desc"], kind: records.Kind
) -> Cursor:
    return records.cursor(limit, after, before, kind=kind, descending=order == "desc")


def state(request: Request, record: records.AgentRecord) -> letta.AgentState:
    settings = request.app.state.settings
    return letta.agent_state(record, default_model=settings.llm_model, default_window=settings.llm_context_window)


async def agent_state(request: Request, scope: Scope, agent_id: uuid.UUID) -> letta.AgentState:
    return state(request, await records.agent_record(scope, agent_id))
