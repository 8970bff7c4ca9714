"""The `LLM` seam of the built-in agent, and its litellm implementation.

Messages and tools use the OpenAI chat format (litellm's lingua franca): messages are dicts with role,
content, tool_calls, tool_call_id and name; tools are {"type": "function", "function": {...}}. The MCP
sampling implementation (the host's own model) lives in `server/`, since it needs the MCP session.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio

from engram.storage.errors import BackendUnavailableError, ConfigurationError, EngramError

log = logging.getLogger(__name__)

ChatMessage = dict[str, Any]
ToolSchema = dict[str, Any]
FALLBACK_CONTEXT_WINDOW = 8192


class LLMError(EngramError):
    """The model could not answer (provider error, timeout, rate limit after retries, bad key)."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True)
class LLMReply:
    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)


class LLM(Protocol):
    """A chat model the agent loop and the summarizer talk to."""

    @property
    def name(self) -> str: ...

    @property
    def context_window(self) -> int:
        """How many tokens a prompt may hold (the model's own limit, or the configured one)."""
        ...

    def count_tokens(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()) -> int: ...

    async def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()) -> LLMReply: ...


def estimate_tokens(messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()) -> int:
    """A cheap, model-free count: one token per 3 characters of the messages' and tools' JSON, plus 4 tokens
    of framing per message.

    It errs high for English (tokenizers average 4-5 characters a token), so a window planned with it is not overrun.
    """
    chars = sum(len(json.dumps(message, ensure_ascii=False)) for message in messages)
    chars += sum(len(json.dumps(tool, ensure_ascii=False)) for tool in tools)
    return chars // 3 + 4 * len(messages)


HOSTED_TIMEOUT = 60.0  # seconds for one model call to a hosted provider (setting llm_timeout)
LOCAL_TIMEOUT = 600.0  # ... and to a local server: a model on a CPU takes minutes for the agent's first prompt
RETRY_DELAY = 1.0  # seconds before the first retry; doubled for each next one
# litellm providers that run on the user's machine by default (their api_base is a local address)
LOCAL_PROVIDERS = ("ollama/", "ollama_chat/", "llamafile/", "lm_studio/")


def is_local(model: str, options: dict[str, Any]) -> bool:
    """Whether the model is served from this machine or its network: an `api_base` on a loopback or private
    address (llama.cpp's server, vLLM, an Ollama elsewhere in the house), or a local provider without one."""
    base = options.get("api_base") or options.get("base_url")
    if not isinstance(base, str) or not base:
        return model.startswith(LOCAL_PROVIDERS)
    host = urlsplit(base if "//" in base else f"//{base}").hostname or ""
    if host == "localhost" or host.endswith((".local", ".localhost")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        raise ConfigurationError(
            "llm_model is set but litellm is not installed; run 'pip install litellm' (from Engram's source: "
            'pip install ".[llm]"), or unset llm_model to use the host\'s model through MCP sampling'
        ) from None
    return litellm


class LiteLLM:
    """Any provider litellm knows ('anthropic/claude-…', 'openai/gpt-…', 'ollama/…'), with its API key from the
    environment. `options` go to litellm.acompletion as they are (api_base, mock_response, ...)."""

    def __init__(
        self,
        model: str,
        *,
        context_window: int | None = None,
        max_tokens: int = 1024,
        timeout: float | None = None,
        retries: int = 3,
        options: dict[str, Any] | None = None,
    ) -> None:
        self._model = model
        self._window = context_window
        self._max_tokens = max_tokens
        self._options = options or {}
        self._local = is_local(model, self._options)
        self._timeout = timeout if timeout is not None else LOCAL_TIMEOUT if self._local else HOSTED_TIMEOUT
        self._retries = retries
        self._lib = _litellm()

    @property
    def name(self) -> str:
        return self._model

    @property
    def timeout(self) -> float:
        """Seconds one call may take (the setting llm_timeout, else the default for a local or hosted model)."""
        return self._timeout

    @property
    def context_window(self) -> int:
        if self._window:
            return self._window
        try:
            info = self._lib.get_model_info(self._model)
            window = info.get("max_input_tokens") or info.get("max_tokens")
        except Exception:  # an unknown model: litellm raises; the fallback is a safe, small window
            window = None
        self._window = int(window) if window else FALLBACK_CONTEXT_WINDOW
        return self._window

    def count_tokens(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()) -> int:
        try:
            return int(self._lib.token_counter(model=self._model, messages=list(messages), tools=list(tools) or None))
        except Exception:
            return estimate_tokens(messages, tools)

    async def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()) -> LLMReply:
        lib = self._lib
        arguments: dict[str, Any] = {
            "model": self._model,
            "messages": list(messages),
            "max_tokens": self._max_tokens,
            "timeout": self._timeout,
            # Retries are Engram's own (below): litellm's and the provider SDK's would also retry a timed-out
            # request while the server still works on it, and a local server then gets the same prompt again
            # and again until its context slots overflow.
            "num_retries": 0,
            "max_retries": 0,
        } | self._options
        if tools:
            arguments["tools"] = list(tools)
        attempt = 0
        while True:
            try:
                response = await lib.acompletion(**arguments)
                break
            except Exception as exc:
                if attempt < self._retries and self._retryable(exc):
                    attempt += 1
                    log.info("%s: %s; retry %d of %d", self._model, type(exc).__name__, attempt, self._retries)
                    await anyio.sleep(RETRY_DELAY * 2 ** (attempt - 1))
                    continue
                raise self._failure(exc) from exc
        choice = response.choices[0].message
        calls = [
            ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments or "{}")
            for call in (choice.tool_calls or [])
        ]
        return LLMReply(text=choice.content or "", tool_calls=calls)

    def _retryable(self, exc: Exception) -> bool:
        """Whether a new attempt may succeed without piling work on the provider: a rate limit, a connection
        that failed or a server that is briefly unavailable; a timeout only from a hosted provider (a local
        server is still working on the request that timed out)."""
        lib = self._lib
        if isinstance(exc, lib.Timeout):
            return not self._local
        return isinstance(
            exc, lib.RateLimitError | lib.APIConnectionError | lib.ServiceUnavailableError | lib.InternalServerError
        )

    def _failure(self, exc: Exception) -> EngramError:
        """What a provider's failure means to the caller, in Engram's words."""
        lib = self._lib
        if isinstance(exc, lib.AuthenticationError):
            return ConfigurationError(f"{self._model}: the provider refused the API key; {self._key_hint()}")
        if isinstance(exc, lib.RateLimitError):
            return BackendUnavailableError(
                f"{self._model} is rate-limited (after {self._retries} retries); wait and send the message again"
            )
        if isinstance(exc, lib.Timeout):
            advice = (
                f"raise the setting llm_timeout (a local model on a CPU may need {LOCAL_TIMEOUT:g} or more); "
                "not retried, as the model may still be working on it"
                if self._local
                else f"raise the setting llm_timeout; tried {self._retries + 1} times"
            )
            return LLMError(f"{self._model} did not answer within {self._timeout:g} s: {advice}")
        if isinstance(exc, lib.APIError):
            return LLMError(f"{self._model} failed: {exc}")
        if "api_key" in str(exc).lower() or "api key" in str(exc).lower():
            return ConfigurationError(f"{self._model}: no API key; {self._key_hint()}")
        return LLMError(f"{self._model} failed: {type(exc).__name__}: {exc}")

    def _key_hint(self) -> str:
        try:
            missing = self._lib.validate_environment(model=self._model).get("missing_keys") or []
        except Exception:
            missing = []
        if missing:
            return f"set {', '.join(missing)} in the environment of Engram"
        return "check the provider's API key in the environment of Engram"
