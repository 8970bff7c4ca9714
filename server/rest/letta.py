"""Letta's JSON shapes, as its own client (`letta-client` 1.x) reads and sends them, made from Engram's records.

Ids carry Letta's prefixes (`agent-<uuid>`, `block-<uuid>`, `passage-<uuid>`, `message-<uuid>`); the uuid alone
is accepted too. Request bodies list every field Letta's client may send: the ones Engram has no use for are
accepted and ignored (they are named in the OpenAPI document), and a field that is no part of Letta's API is
refused, so a typo never passes silently.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engram.tools.loop.prompt import DEFAULT_SYSTEM_PROMPT
from engram.tools.memory.records import AgentRecord, BlockRecord, MessageRecord, PassageRecord

# Letta's values of llm_config.model_endpoint_type; a litellm provider prefix that is one of them is kept.
ENDPOINT_TYPES = frozenset(
    "openai anthropic google_ai google_vertex azure groq ollama vllm hugging-face mistral together bedrock "
    "deepseek xai fireworks openrouter".split()
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Responses


class Block(BaseModel):
    id: str
    label: str
    value: str
    limit: int
    description: str
    read_only: bool
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int = Field(description="Engram: the block's version (core_memory_history lists them).")
    agents: list[str] = Field(description="Engram: the agents it is attached to, by name.")


class Memory(BaseModel):
    blocks: list[Block]


class LlmConfig(BaseModel):
    model: str = Field(description="The built-in agent's litellm model for this agent ('' when none is set).")
    model_endpoint_type: str
    context_window: int = Field(description="Tokens of the agent's prompt; 0: the model's own window.")


class AgentState(BaseModel):
    id: str
    name: str
    description: str
    system: str
    agent_type: Literal["memgpt_agent"] = "memgpt_agent"
    blocks: list[Block]
    memory: Memory
    llm_config: LlmConfig
    tags: list[str]
    tools: list[dict[str, Any]] = Field(default_factory=list)
    sources: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


class Passage(BaseModel):
    id: str
    text: str
    tags: list[str]
    created_at: datetime
    metadata: dict[str, Any]
    source_id: str | None = Field(description="Engram: where the passage came from (a document), if anywhere.")


class SearchResult(BaseModel):
    id: str
    content: str
    timestamp: datetime
    tags: list[str]
    score: float = Field(description="Engram: fused rank score, 1.0 = best possible.")
    found_by: list[str] = Field(description="Engram: which searches found it: 'meaning' (vectors), 'words'.")


class SearchResults(BaseModel):
    count: int
    results: list[SearchResult]


class Health(BaseModel):
    status: str
    version: str


# Requests


class BlockFields(Strict):
    """The fields of Letta's block create and update that Engram ignores: accepted so that Letta scripts run."""

    metadata: dict[str, Any] | None = None
    hidden: bool | None = None
    is_template: bool | None = None
    preserve_on_migration: bool | None = None
    project_id: str | None = None
    tags: list[str] | None = None
    template_name: str | None = None
    base_template_id: str | None = None
    deployment_id: str | None = None
    entity_id: str | None = None
    template_id: str | None = None


class CreateBlock(BlockFields):
    label: str
    value: str = ""
    limit: int | None = Field(default=None, ge=1, le=1_000_000)
    description: str | None = None
    read_only: bool = False


class UpdateBlock(BlockFields):
    value: str | None = None
    limit: int | None = Field(default=None, ge=1, le=1_000_000)
    description: str | None = None
    label: str | None = None
    read_only: bool | None = None


class LlmConfigIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # Letta's llm_config has dozens of provider fields

    model: str | None = None
    context_window: int | None = None


class AgentFields(BaseModel):
    """The fields of Letta's agent create and update that Engram ignores: accepted so that Letta scripts run."""

    model_config = ConfigDict(extra="forbid")

    agent_type: Any = None
    base_template_id: Any = None
    compaction_settings: Any = None
    embedding: Any = None
    embedding_chunk_size: Any = None
    embedding_config: Any = None
    enable_reasoner: Any = None
    enable_sleeptime: Any = None
    folder_ids: Any = None
    from_template: Any = None
    hidden: Any = None
    identity_ids: Any = None
    include_base_tool_rules: Any = None
    include_base_tools: Any = None
    include_default_source: Any = None
    initial_message_sequence: Any = None
    max_files_open: Any = None
    max_reasoning_tokens: Any = None
    max_tokens: Any = None
    memory_variables: Any = None
    message_buffer_autoclear: Any = None
    metadata: Any = None
    model_settings: Any = None
    parallel_tool_calls: Any = None
    per_file_view_window_char_limit: Any = None
    project: Any = None
    project_id: Any = None
    reasoning: Any = None
    response_format: Any = None
    secrets: Any = None
    source_ids: Any = None
    template: Any = None
    template_id: Any = None
    timezone: Any = None
    tool_exec_environment_variables: Any = None
    tool_ids: Any = None
    tool_rules: Any = None
    tools: Any = None
    last_run_completion: Any = None
    last_run_duration_ms: Any = None
    last_stop_reason: Any = None
    output_schema: Any = None


class CreateAgent(AgentFields):
    name: str | None = Field(default=None, description="The agent's name; a new 'agent-N' name when omitted.")
    system: str | None = None
    description: str | None = None
    memory_blocks: list[CreateBlock] | None = None
    block_ids: list[str] | None = Field(default=None, description="Standalone blocks to attach (shared blocks).")
    tags: list[str] | None = None
    model: str | None = None
    llm_config: LlmConfigIn | None = None
    context_window_limit: int | None = None


class UpdateAgent(AgentFields):
    name: str | None = None
    system: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    model: str | None = None
    llm_config: LlmConfigIn | None = None
    context_window_limit: int | None = None
    block_ids: list[str] | None = Field(
        default=None, description="Ignored: attach and detach blocks with the core-memory routes."
    )


class CreatePassage(Strict):
    text: str
    tags: list[str] | None = None
    created_at: datetime | None = Field(
        default=None, description="Ignored: a passage is dated when Engram stores it (and kept once if repeated)."
    )


# Converters


def agent_id(record: AgentRecord) -> str:
    return f"agent-{record.id}"


def block(record: BlockRecord) -> Block:
    return Block(
        id=f"block-{record.id}",
        label=record.label,
        value=record.value,
        limit=record.limit,
        description=record.description,
        read_only=record.read_only,
        version=record.version,
        agents=record.agents,
    )


def agent_state(record: AgentRecord, *, default_model: str, default_window: int) -> AgentState:
    blocks = [block(b) for b in record.blocks]
    model = record.model or default_model
    provider = model.split("/", 1)[0] if "/" in model else ""
    return AgentState(
        id=agent_id(record),
        name=record.name,
        description=record.description,
        system=record.system or DEFAULT_SYSTEM_PROMPT,
        blocks=blocks,
        memory=Memory(blocks=blocks),
        llm_config=LlmConfig(
            model=model,
            model_endpoint_type=provider if provider in ENDPOINT_TYPES else "openai",
            context_window=record.context_window or default_window,
        ),
        tags=record.tags,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def passage(record: PassageRecord) -> Passage:
    return Passage(
        id=f"passage-{record.id}",
        text=record.text,
        tags=record.tags,
        created_at=record.created_at,
        metadata=record.metadata,
        source_id=record.source,
    )


def messages(record: MessageRecord) -> list[dict[str, Any]]:
    """One stored message as Letta's messages: an assistant turn that called tools is its text (if any) and
    one tool_call_message per call; the others map one to one."""
    common = {"date": record.created_at.isoformat(), "otid": None}
    own_id = f"message-{record.id}"
    text = str(record.content.get("text", record.text))
    if record.role == "user":
        return [{"id": own_id, "message_type": "user_message", "content": text, **common}]
    if record.role == "system":
        return [{"id": own_id, "message_type": "system_message", "content": text, **common}]
    if record.role == "tool":
        return [
            {
                "id": own_id,
                "message_type": "tool_return_message",
                "tool_return": text,
                "status": "success" if record.content.get("ok", True) else "error",
                "tool_call_id": str(record.content.get("tool_call_id", "")),
                "name": record.content.get("name"),
                **common,
            }
        ]
    found: list[dict[str, Any]] = []
    calls = record.content.get("tool_calls") or []
    if text or not calls:
        found.append({"id": own_id, "message_type": "assistant_message", "content": text, **common})
    for call in calls:
        function = call.get("function", {})
        arguments = function.get("arguments", "")
        found.append(
            {
                "id": own_id,
                "message_type": "tool_call_message",
                "tool_call": {
                    "name": function.get("name", ""),
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                    "tool_call_id": call.get("id", ""),
                },
                **common,
            }
        )
    return found


def message_text(content: str | list[dict[str, Any]]) -> str:
    """The text of a Letta message's content: a string, or a list of parts whose text parts are joined."""
    if isinstance(content, str):
        return content
    return "\n".join(str(part.get("text", "")) for part in content if part.get("type", "text") == "text")
