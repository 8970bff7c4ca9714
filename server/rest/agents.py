"""Letta's agent and block routes: agents, an agent's core-memory blocks, standalone (shared) blocks, and
agent files (export and import: Letta's .af by default, Engram's own zip, the MCP memory server's graph)."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from typing import IO, Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse

from engram.server.rest import letta
from engram.server.rest.scope import ScopeDep, agent_state, page_of, state
from engram.storage.errors import InvalidInputError, NotFoundError
from engram.tools.ingest import agent_files, engram_files, transfer
from engram.tools.memory import agents, blocks, records
from engram.tools.memory.agents import BlockSpec
from engram.tools.scope import Scope

router = APIRouter(tags=["agents"])
MAX_AGENT_FILE_BYTES = 100_000_000
EXPORT_CHUNK = 1024 * 1024

Limit = Annotated[int, Query(ge=1, le=records.MAX_PAGE, description="Items per page.")]
After = Annotated[str | None, Query(description="Only items after the one with this id (the next page).")]
Before = Annotated[str | None, Query(description="Only items before the one with this id (the previous page).")]
Order = Annotated[Literal["asc", "desc"], Query(description="Oldest first (asc) or newest first (desc).")]


@router.post("/agents/", include_in_schema=False)
@router.post("/agents")
async def create_agent(body: letta.CreateAgent, request: Request, scope: ScopeDep) -> letta.AgentState:
    """Create an agent with its core-memory blocks (`memory_blocks`; 'persona' and 'human' get Engram's
    defaults when not given), its system prompt, model, context window and tags; `block_ids` attaches
    standalone blocks."""
    shared = [records.parse_id("block", block_id) for block_id in body.block_ids or []]
    for block_id in shared:
        await records.block_by_id(scope, block_id)  # every block exists before anything is created
    model, window = _llm(body.model, body.llm_config, body.context_window_limit)
    created = await agents.agent_create(
        scope,
        body.name or f"agent-{uuid.uuid4().hex[:8]}",
        description=body.description or "",
        blocks=[
            BlockSpec(
                label=spec.label,
                value=spec.value,
                limit=spec.limit,
                description=spec.description or "",
                read_only=spec.read_only,
            )
            for spec in body.memory_blocks or []
        ],
        system=body.system,
        model=model or None,
        context_window=window or None,
        tags=body.tags,
    )
    try:
        for block_id in shared:
            await blocks.block_attach(scope, created.name, str(block_id))
    except Exception:
        await agents.agent_delete(scope, created.name)  # a failed request leaves nothing behind
        raise
    return await agent_state(request, scope, uuid.UUID(created.id))


@router.get("/agents/", include_in_schema=False)
@router.get("/agents")
async def list_agents(
    request: Request,
    scope: ScopeDep,
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
    order: Order = "desc",
    name: Annotated[str | None, Query(description="Only the agent with this name.")] = None,
    tags: Annotated[list[str] | None, Query(description="Only agents with any of these tags.")] = None,
    match_all_tags: Annotated[bool, Query(description="Only agents with all of `tags`.")] = False,
) -> list[letta.AgentState]:
    """Your agents, newest first unless `order=asc`; page on with `after=<last id>`."""
    found = await records.agent_records(
        scope, page_of(limit, after, before, order, "agent"), name=name, tags=tags, match_all_tags=match_all_tags
    )
    return [state(request, record) for record in found]


@router.get("/agents/{agent_id}")
async def retrieve_agent(agent_id: str, request: Request, scope: ScopeDep) -> letta.AgentState:
    return await agent_state(request, scope, records.parse_id("agent", agent_id))


@router.patch("/agents/{agent_id}")
async def update_agent(agent_id: str, body: letta.UpdateAgent, request: Request, scope: ScopeDep) -> letta.AgentState:
    """Change the agent's name, system prompt, description, model, context window or tags; only what is sent
    changes."""
    own_id = records.parse_id("agent", agent_id)
    model, window = _llm(body.model, body.llm_config, body.context_window_limit)
    await agents.agent_update(
        scope,
        await records.agent_name(scope, own_id),
        system=body.system,
        description=body.description,
        model=model,
        context_window=window,
        tags=body.tags,
        new_name=body.name,
    )
    return await agent_state(request, scope, own_id)


@router.delete("/agents/{agent_id}")
async def delete_agent(agent_id: str, scope: ScopeDep) -> agents.AgentDeleted:
    """Delete the agent with all of its own memory (blocks shared with other agents stay)."""
    return await agents.agent_delete(scope, await records.agent_name(scope, records.parse_id("agent", agent_id)))


@router.get("/agents/{agent_id}/core-memory/blocks", tags=["blocks"])
async def list_agent_blocks(
    agent_id: str,
    scope: ScopeDep,
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
    order: Order = "asc",
) -> list[letta.Block]:
    """The agent's blocks in display order (`order=desc` reverses it); page on with `after=<last id>`, as
    Letta's client does until a page is empty."""
    page = page_of(limit, after, before, order, "block")
    record = await records.agent_record(scope, records.parse_id("agent", agent_id))
    ordered = record.blocks[::-1] if page.descending else record.blocks
    ids = [b.id for b in ordered]

    def position(block_id: uuid.UUID, argument: str) -> int:
        if block_id not in ids:
            raise NotFoundError(f"{argument}: agent '{record.name}' has no block block-{block_id}")
        return ids.index(block_id)

    start = position(page.after, "after") + 1 if page.after is not None else 0
    end = position(page.before, "before") if page.before is not None else len(ordered)
    window = ordered[start:end]
    # Only `before`: the blocks nearest to it, as keyset pages do.
    window = window[-page.limit :] if page.before is not None and page.after is None else window[: page.limit]
    return [letta.block(b) for b in window]


@router.get("/agents/{agent_id}/core-memory/blocks/{block_label}", tags=["blocks"])
async def retrieve_agent_block(agent_id: str, block_label: str, scope: ScopeDep) -> letta.Block:
    return letta.block(await records.agent_block(scope, records.parse_id("agent", agent_id), block_label))


@router.patch("/agents/{agent_id}/core-memory/blocks/{block_label}", tags=["blocks"])
async def update_agent_block(agent_id: str, block_label: str, body: letta.UpdateBlock, scope: ScopeDep) -> letta.Block:
    """Change the block's text (a new version in its history), limit, description or read-only flag."""
    found = await records.agent_block(scope, records.parse_id("agent", agent_id), block_label)
    return await _update_block(scope, found.id, body)


@router.patch("/agents/{agent_id}/core-memory/blocks/attach/{block_id}", tags=["blocks"])
async def attach_block(agent_id: str, block_id: str, request: Request, scope: ScopeDep) -> letta.AgentState:
    """Attach a standalone block: every agent it is attached to shares its text."""
    own_id = records.parse_id("agent", agent_id)
    block = records.parse_id("block", block_id)
    await blocks.block_attach(scope, await records.agent_name(scope, own_id), str(block))
    return await agent_state(request, scope, own_id)


@router.patch("/agents/{agent_id}/core-memory/blocks/detach/{block_id}", tags=["blocks"])
async def detach_block(agent_id: str, block_id: str, request: Request, scope: ScopeDep) -> letta.AgentState:
    own_id = records.parse_id("agent", agent_id)
    block = records.parse_id("block", block_id)
    await blocks.block_detach(scope, await records.agent_name(scope, own_id), str(block))
    return await agent_state(request, scope, own_id)


@router.post("/blocks/", include_in_schema=False)
@router.post("/blocks", tags=["blocks"])
async def create_block(body: letta.CreateBlock, scope: ScopeDep) -> letta.Block:
    """Create a standalone block, to attach to agents; it stays until deleted."""
    created = await blocks.block_create(
        scope,
        body.label,
        value=body.value,
        limit=body.limit,
        description=body.description or "",
        read_only=body.read_only,
    )
    return letta.block(await records.block_by_id(scope, uuid.UUID(created.id)))


@router.get("/blocks/", include_in_schema=False)
@router.get("/blocks", tags=["blocks"])
async def list_blocks(
    scope: ScopeDep,
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
    order: Order = "asc",
    label: Annotated[str | None, Query(description="Only blocks with this label.")] = None,
) -> list[letta.Block]:
    """Every block you have (standalone ones and those made with an agent), oldest first."""
    found = await records.block_records(scope, page_of(limit, after, before, order, "block"), label=label)
    return [letta.block(b) for b in found]


@router.get("/blocks/{block_id}", tags=["blocks"])
async def retrieve_block(block_id: str, scope: ScopeDep) -> letta.Block:
    return letta.block(await records.block_by_id(scope, records.parse_id("block", block_id)))


@router.patch("/blocks/{block_id}", tags=["blocks"])
async def update_block(block_id: str, body: letta.UpdateBlock, scope: ScopeDep) -> letta.Block:
    return await _update_block(scope, records.parse_id("block", block_id), body)


@router.delete("/blocks/{block_id}", tags=["blocks"])
async def delete_block(block_id: str, scope: ScopeDep) -> blocks.BlockDeleted:
    """Delete the block with its history, detaching it from every agent."""
    return await blocks.block_delete(scope, str(records.parse_id("block", block_id)))


@router.get("/agents/{agent_id}/export", tags=["agent files"])
async def export_agent(
    agent_id: str,
    scope: ScopeDep,
    format: Annotated[
        Literal["af", "engram"],
        Query(description="af (default): Letta's agent file; engram: Engram's zip with all of the agent's memory."),
    ] = "af",
    with_vectors: Annotated[bool, Query(description="engram: include the embeddings.")] = False,
) -> Response:
    """The agent as a Letta agent file (.af: its settings, blocks and messages; archival passages are not part of
    that format), or with `format=engram` as Engram's own file (a zip, streamed) holding all of its memory."""
    name = await records.agent_name(scope, records.parse_id("agent", agent_id))
    if format == "af":
        if with_vectors:
            raise InvalidInputError("with_vectors is for format=engram: Letta's agent files carry no vectors")
        return JSONResponse(await agent_files.export_agent_file(scope, name))
    spool = tempfile.TemporaryFile()  # the zip is written whole, then streamed: memory holds a chunk at a time
    try:
        await engram_files.export_agents(scope, [name], spool, with_vectors=with_vectors)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return StreamingResponse(
        _chunks(spool),
        media_type="application/zip",
        headers={"content-disposition": f'attachment; filename="{name}.engram.zip"'},
    )


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(EXPORT_CHUNK):
            yield chunk


@router.post("/agents/import", tags=["agent files"])
async def import_agent(
    scope: ScopeDep,
    file: Annotated[
        UploadFile,
        File(description="Engram's agent file (zip), a Letta agent file (.af, current or 0.6.x) or memory.jsonl."),
    ],
    name: Annotated[str | None, Form(description="A name for the imported agent, instead of the file's.")] = None,
    append_copy_suffix: Annotated[bool, Form(description="Append '__copy' to the agent's name.")] = False,
    strip_messages: Annotated[bool, Form(description="Leave the message history out.")] = False,
) -> dict[str, list[str]]:
    """Import the agents of an agent file, its format told from its content: Engram's own, Letta's .af, or the MCP
    memory server's graph (which needs `name`); in one transaction, so a failure leaves nothing behind."""
    where = f"'{file.filename}'" if file.filename else "the uploaded file"
    chosen = transfer.detect_format(file.file, where)
    if chosen == "letta":
        data = await file.read(MAX_AGENT_FILE_BYTES + 1)
        if len(data) > MAX_AGENT_FILE_BYTES:
            raise InvalidInputError(f"the agent file is over {MAX_AGENT_FILE_BYTES // 1_000_000} MB; Engram refuses it")
        names = await agent_files.import_agent_file(
            scope, data, name=name or None, append_copy_suffix=append_copy_suffix, strip_messages=strip_messages
        )
    else:
        if append_copy_suffix or strip_messages:
            raise InvalidInputError(
                "append_copy_suffix and strip_messages are for Letta's agent files; use 'name' to import under "
                "another name"
            )
        report = await transfer.import_file(scope, file.file, as_name=name or None, where=where)
        names = report.agents
    first = records.cursor(1, None, None, kind="agent", descending=False)
    return {"agent_ids": [f"agent-{(await records.agent_records(scope, first, name=n))[0].id}" for n in names]}


async def _update_block(scope: Scope, block_id: uuid.UUID, body: letta.UpdateBlock) -> letta.Block:
    if body.label is not None:
        raise InvalidInputError("a block's label cannot change; create a block with the new label instead")
    await blocks.block_update(
        scope,
        str(block_id),
        value=body.value,
        limit=body.limit,
        description=body.description,
        read_only=body.read_only,
        actor="rest",
    )
    return letta.block(await records.block_by_id(scope, block_id))


def _llm(model: str | None, config: letta.LlmConfigIn | None, window: int | None) -> tuple[str | None, int | None]:
    """The model and context window from Letta's `model`/`context_window_limit` or its `llm_config`."""
    chosen_model = model if model is not None else (config.model if config is not None else None)
    chosen_window = window if window is not None else (config.context_window if config is not None else None)
    return chosen_model, chosen_window
