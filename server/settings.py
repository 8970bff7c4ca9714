"""Engram's settings, layered: defaults → config.toml → ENGRAM_* environment → CLI flags.

Each layer is read explicitly so that an invalid value can be reported with the place it came from.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from engram.storage.embeddings import DEFAULT_MODEL
from engram.storage.errors import ConfigurationError, InvalidInputError
from engram.tools.arguments import check_agent_name

if TYPE_CHECKING:
    from engram.tools.memory.context import ContextBudget

ENV_PREFIX = "ENGRAM_"
CONFIG_ENV = "ENGRAM_CONFIG"

DEFAULT_PERSONA = (
    "I am a helpful assistant with a long-term memory. I keep what I learn about the user in the "
    "'human' block and notes about myself in this 'persona' block, and I update both as I learn."
)
DEFAULT_HUMAN = "Nothing is known about the user yet."

# The tool profiles: `memory` offers what a model needs during a conversation, `full` every tool
# (server/app.py's TOOLS says which profile offers each tool).
ToolProfile = Literal["memory", "full"]
TOOL_PROFILES: tuple[ToolProfile, ...] = ("memory", "full")

# Command-line flags named otherwise than their setting, for the messages that name a value's source.
FLAG_NAMES = {"tool_profile": "--tools", "http_stateless": "--stateless"}


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("engram", appauthor=False))


def default_config_file() -> Path:
    return Path(platformdirs.user_config_dir("engram", appauthor=False)) / "config.toml"


class SettingsError(ConfigurationError):
    """Settings could not be loaded; the message names the key, its source and what to change."""


class Settings(BaseSettings):
    """Every setting Engram reads. `config.example.toml` documents each one."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the embedded PostgreSQL keeps its data (unused with database_url).",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql:// URL of an external PostgreSQL with pgvector; unset = embedded server.",
    )
    default_agent: str = Field(
        default="default",
        description="The agent a tool call uses when it names none; created on first use.",
    )
    block_char_limit: int = Field(
        default=5000, ge=100, le=1_000_000, description="Character limit of new core-memory blocks."
    )
    max_input_chars: int = Field(
        default=100_000, ge=1000, le=10_000_000, description="Longest text any tool argument may carry."
    )
    default_persona: str = Field(default=DEFAULT_PERSONA, description="Initial 'persona' block of new agents.")
    default_human: str = Field(default=DEFAULT_HUMAN, description="Initial 'human' block of new agents.")
    embedding_provider: Literal["fastembed", "litellm"] = Field(
        default="fastembed",
        description="fastembed (local ONNX, in process) or litellm (a provider's embedding API).",
    )
    embedding_model: str = Field(
        default=DEFAULT_MODEL,
        min_length=1,
        description="Embedding model name. The default ships with Engram and works offline; other fastembed "
        "models download on first use; litellm takes e.g. 'openai/text-embedding-3-small'.",
    )
    archival_result_chars: int = Field(
        default=600, ge=100, le=20_000, description="Longest passage or message text one search result shows."
    )
    archival_exact_scan_limit: int = Field(
        default=10_000,
        ge=0,
        le=10_000_000,
        description="Agents with at most this many passages are searched by exact scan; above it, by the "
        "HNSW index (with iterative scans, falling back to exact when filters leave too few rows).",
    )
    llm_model: str = Field(
        default="",
        description="litellm model of the built-in agent (send_message, engram chat), e.g. "
        "'anthropic/claude-sonnet-4-5' with its API key in the environment; empty = the host's model through MCP "
        "sampling. An agent's own llm.model wins.",
    )
    llm_context_window: int = Field(
        default=0,
        ge=0,
        le=10_000_000,
        description="Tokens the agent's prompt may hold; 0 = the model's own window (8192 when unknown).",
    )
    llm_options: dict[str, Any] = Field(
        default_factory=dict,
        description='Further arguments for litellm\'s completion call, e.g. {"api_base": "http://localhost:11434"} '
        "for a local server (in the environment as JSON); an agent's own options win.",
    )
    llm_max_tokens: int = Field(default=1024, ge=16, le=200_000, description="Longest reply, in tokens.")
    llm_timeout: float = Field(
        default=0,
        ge=0,
        le=3600,
        description="Seconds to wait for one model call; 0 = 60 for a hosted provider, 600 for a local server "
        "(an api_base on this machine or its network, or an ollama/ model).",
    )
    llm_max_retries: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Retries of a rate-limited, unreachable or briefly unavailable model; a timed-out call to a "
        "local server is never retried (it is still working on it).",
    )
    agent_max_steps: int = Field(
        default=10, ge=1, le=100, description="Most model calls one send_message may make (tool use included)."
    )
    summarize_threshold: float = Field(
        default=0.9, gt=0.1, le=1.0, description="Summarize when the prompt would pass this share of the window."
    )
    summarize_target: float = Field(
        default=0.7, gt=0.05, lt=1.0, description="After summarizing, the kept messages fit this share of it."
    )
    summarize_evict_share: float = Field(
        default=0.3, gt=0.0, lt=1.0, description="Share of in-context messages evicted at least, per summary."
    )
    context_prompt_tokens: int = Field(
        default=1500,
        ge=200,
        le=8000,
        description="Tokens of memory memory_context gives for a message: core memory, then what is recalled for "
        "it (Claude Code's UserPromptSubmit hook; the tool's and REST's default).",
    )
    context_session_tokens: int = Field(
        default=2500,
        ge=200,
        le=8000,
        description="Tokens of memory given at a session's start: core memory and recent activity (Claude Code's "
        "SessionStart hook; memory_context with an empty message).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level of the server's stderr log."
    )
    transport: Literal["stdio", "http", "sse"] = Field(
        default="stdio",
        description="stdio (a host runs Engram), or http: streamable HTTP at /mcp plus legacy SSE at /sse "
        "('sse' is the same server, kept as a name for hosts that ask for it).",
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="Address the HTTP server binds to.")
    port: int = Field(default=8283, ge=1, le=65535, description="Port of the HTTP server.")
    http_stateless: bool = Field(
        default=False,
        description="Streamable HTTP without sessions, so that several Engram instances behind a load "
        "balancer can share one PostgreSQL.",
    )
    tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Bearer tokens for HTTP, principal name -> token (environment: 'alice=TOKEN,bob=TOKEN'). "
        "Tokens made by 'engram tokens create' are stored hashed in the database instead.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host headers HTTP accepts besides loopback ('memory.example.com', 'host:*').",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origin headers HTTP accepts besides loopback ('https://app.example.com').",
    )
    max_request_bytes: int = Field(
        default=4_000_000, ge=10_000, le=100_000_000, description="Largest HTTP request body accepted."
    )
    tool_profile: str = Field(
        default="memory",
        description="Tools offered to hosts (each costs the host context): 'memory', what a model needs during a "
        "conversation; 'full', every tool (managing agents and blocks, deletes, history, undo); or tool and profile "
        "names separated by commas, e.g. 'memory,agent_list'. Resources and prompts are always offered.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings() merges the layers itself; the class validates what it is given.
        return (init_settings,)

    @model_validator(mode="after")
    def _target_below_threshold(self) -> Settings:
        if self.summarize_target >= self.summarize_threshold:
            raise ValueError("summarize_target must be below summarize_threshold")
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("tokens", mode="before")
    @classmethod
    def _token_pairs(cls, value: Any) -> Any:
        """'alice=TOKEN,bob=TOKEN' (an environment variable) as a mapping."""
        if not isinstance(value, str):
            return value
        pairs = [item.strip() for item in value.split(",") if item.strip()]
        if any("=" not in pair for pair in pairs):
            raise ValueError("use 'principal=token' pairs separated by commas")
        return dict(pair.split("=", 1) for pair in pairs)

    @field_validator("llm_options", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        """A JSON object (an environment variable) as a mapping."""
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError('use a JSON object, e.g. {"api_base": "http://localhost:11434"}') from None

    @field_validator("default_agent")
    @classmethod
    def _agent_name(cls, value: str) -> str:
        """The rule every agent tool applies, so the default agent can be named, shown and deleted like any other."""
        try:
            return check_agent_name(value)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("tokens")
    @classmethod
    def _token_shape(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if not value:
            return value
        # Here, not at the top: it loads SQLAlchemy, which a CLI start that never opens the database does without.
        from engram.storage.principals import check_token_principal

        for principal, token in value.items():
            if not principal.strip() or len(token.get_secret_value()) < 16:
                raise ValueError(f"token of principal '{principal}' must be at least 16 characters")
            try:
                check_token_principal(principal)
            except InvalidInputError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value

    @field_validator("tool_profile", mode="before")
    @classmethod
    def _tool_names(cls, value: Any) -> Any:
        """A profile or names, separated by commas or given as a list (TOML), kept as 'a,b'; build_server knows
        which names exist."""
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list):
            return value  # pydantic names the type it wants
        names = [str(item).strip() for item in value if str(item).strip()]
        if not names:
            raise ValueError("give 'memory', 'full', or tool names separated by commas")
        return ",".join(names)

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        url = value.get_secret_value()
        if not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("must start with postgresql:// (for example postgresql://user@host:5432/engram)")
        return value

    def context_budget(self) -> ContextBudget:
        """What memory_context gives by default, in tokens: for a message, and at a session's start."""
        from engram.tools.memory.context import ContextBudget

        return ContextBudget(prompt_tokens=self.context_prompt_tokens, session_tokens=self.context_session_tokens)

    def sqlalchemy_url(self) -> str | None:
        """The external database URL in the form SQLAlchemy's psycopg driver expects, if one is set."""
        if self.database_url is None:
            return None
        url = self.database_url.get_secret_value()
        for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url


def load_settings(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Merge the layers and validate once; raise SettingsError naming the offending key and its source."""
    env = dict(os.environ if environ is None else environ)
    fields = Settings.model_fields
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}

    path, explicit = config_path(config_file, env)
    if path is not None and (explicit or path.exists()):
        for key, value in _read_toml(path).items():
            if key not in fields:
                known = ", ".join(sorted(fields))
                raise SettingsError(f"unknown setting '{key}' in {path}; known settings: {known}")
            values[key], origin[key] = value, str(path)

    for key in fields:
        name = ENV_PREFIX + key.upper()
        if name in env:
            values[key], origin[key] = env[name], f"environment variable {name}"

    for key, value in (overrides or {}).items():
        if value is not None:
            flag = FLAG_NAMES.get(key, f"--{key.replace('_', '-')}")
            values[key], origin[key] = value, f"command-line flag {flag}"

    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            source = origin.get(key, "defaults")
            problems.append(f"invalid setting '{key}' (from {source}): {error['msg']}")
        raise SettingsError("; ".join(problems)) from None


def config_path(config_file: Path | None, env: dict[str, str]) -> tuple[Path | None, bool]:
    if config_file is not None:
        return config_file.expanduser(), True
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser(), True
    return default_config_file(), False


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist; create it or drop --config/{CONFIG_ENV}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
