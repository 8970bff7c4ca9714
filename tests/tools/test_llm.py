"""The litellm implementation of the `LLM` seam: what each provider failure becomes, raised by litellm itself
(its `mock_response` raises the exception it is given, of litellm's own classes) with no network."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import pytest

from engram.storage.errors import BackendUnavailableError, ConfigurationError, EngramError
from engram.tools.loop import llm
from engram.tools.loop.llm import FALLBACK_CONTEXT_WINDOW, LiteLLM, LLMError, is_local

pytestmark = pytest.mark.anyio

MODEL = "openai/gpt-4o-mini"
HI = [{"role": "user", "content": "hi"}]


def failing_with(failure: Exception | str, *, timeout: float = 60.0) -> LiteLLM:
    """The model as the agent runs it, but litellm raises `failure` instead of calling the provider."""
    return LiteLLM(MODEL, retries=0, timeout=timeout, options={"mock_response": failure})


@pytest.fixture
def litellm() -> Any:
    """litellm, for its exception classes, once Engram has imported it its own way (offline, with the bundled
    model list: imported first by a test module, litellm would fetch that list from the network)."""
    LiteLLM(MODEL)
    return sys.modules["litellm"]


@pytest.fixture
def no_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.mark.usefixtures("no_openai_key")
async def test_a_refused_api_key_names_the_variable_to_set(litellm: Any) -> None:
    refused = litellm.AuthenticationError(message="Incorrect API key provided", llm_provider="openai", model=MODEL)
    with pytest.raises(ConfigurationError) as raised:
        await failing_with(refused).complete(HI)
    assert str(raised.value) == (
        "openai/gpt-4o-mini: the provider refused the API key; set OPENAI_API_KEY in the environment of Engram"
    )
    assert raised.value.__cause__ is refused


@pytest.mark.usefixtures("no_openai_key")
async def test_a_missing_api_key_names_the_variable_to_set() -> None:
    """No mock: litellm itself refuses to call OpenAI without a key, before any network."""
    with pytest.raises(ConfigurationError) as raised:
        await LiteLLM(MODEL, retries=0).complete(HI)
    assert str(raised.value) == "openai/gpt-4o-mini: no API key; set OPENAI_API_KEY in the environment of Engram"


async def test_a_rate_limit_after_the_retries_is_a_temporary_unavailability(litellm: Any) -> None:
    with pytest.raises(BackendUnavailableError) as raised:
        await failing_with("litellm.RateLimitError").complete(HI)
    assert str(raised.value) == "openai/gpt-4o-mini is rate-limited (after 0 retries); wait and send the message again"
    assert isinstance(raised.value.__cause__, litellm.RateLimitError)


async def test_a_timeout_names_the_setting_that_bounds_it(litellm: Any) -> None:
    late = litellm.Timeout(message="Request timed out", llm_provider="openai", model=MODEL)
    with pytest.raises(LLMError) as raised:
        await failing_with(late, timeout=12.5).complete(HI)
    assert str(raised.value) == (
        "openai/gpt-4o-mini did not answer within 12.5 s: raise the setting llm_timeout; tried 1 times"
    )


async def test_a_provider_error_carries_the_providers_message(litellm: Any) -> None:
    broken = litellm.APIError(status_code=502, message="upstream exploded", llm_provider="openai", model=MODEL)
    with pytest.raises(LLMError) as raised:
        await failing_with(broken).complete(HI)
    assert str(raised.value) == "openai/gpt-4o-mini failed: litellm.APIError: upstream exploded"


async def test_any_other_failure_is_an_llm_error_naming_its_kind() -> None:
    with pytest.raises(LLMError) as raised:
        await failing_with("litellm.InternalServerError").complete(HI)
    assert str(raised.value) == (
        "openai/gpt-4o-mini failed: InternalServerError: litellm.InternalServerError: this is a mock internal "
        "server error"
    )
    assert isinstance(raised.value, EngramError)  # so the tool call reports it to the model as an error


def test_the_context_window_is_the_models_own_or_a_safe_fallback() -> None:
    assert LiteLLM(MODEL).context_window == 128_000  # from litellm's bundled model list
    assert LiteLLM("nobody/no-such-model").context_window == FALLBACK_CONTEXT_WINDOW
    assert LiteLLM("nobody/no-such-model", context_window=32_000).context_window == 32_000


class LocalModelServer:
    """An OpenAI-compatible server on this machine (as llama.cpp's is), answering each chat completion as the
    script says, in order: "slow" (answers after 3 s), "busy" (503), or "ok"; it counts the requests."""

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.requests = 0
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                step = served.script[min(served.requests, len(served.script) - 1)]
                served.requests += 1
                if step == "slow":
                    time.sleep(3)
                if step == "busy":
                    self.send_response(503)
                    body = json.dumps({"error": {"message": "loading model", "type": "unavailable"}}).encode()
                else:
                    self.send_response(200)
                    body = json.dumps(
                        {
                            "id": "chatcmpl-1",
                            "object": "chat.completion",
                            "created": 0,
                            "model": "local",
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": "hello"},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                        }
                    ).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:  # the client gave up waiting
                    pass

            def log_message(self, *_: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.http.server_address[1]}/v1"

    def model(self, **arguments: Any) -> LiteLLM:
        return LiteLLM("openai/local", options={"api_base": self.base, "api_key": "none"}, **arguments)


@pytest.fixture
def local_model() -> Iterator[Any]:
    servers: list[LocalModelServer] = []

    def start(script: list[str]) -> LocalModelServer:
        server = LocalModelServer(script)
        threading.Thread(target=server.http.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.http.shutdown()
        server.http.server_close()


async def test_a_local_model_that_times_out_gets_the_prompt_once_and_the_error_names_the_setting(
    local_model: Any,
) -> None:
    """A local server still working on a timed-out prompt must not get it again (litellm and the OpenAI SDK
    would each retry it: four copies at once overflowed llama.cpp's context slots)."""
    server = local_model(["slow"])
    with pytest.raises(LLMError) as raised:
        await server.model(timeout=0.5, retries=3).complete(HI)
    await anyio.sleep(1)  # no retry arrives later either
    assert server.requests == 1
    assert str(raised.value) == (
        "openai/local did not answer within 0.5 s: raise the setting llm_timeout (a local model on a CPU may need "
        "600 or more); not retried, as the model may still be working on it"
    )


async def test_a_briefly_unavailable_local_model_is_retried_until_it_answers(
    local_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llm, "RETRY_DELAY", 0.01)
    server = local_model(["busy", "busy", "ok"])
    reply = await server.model(retries=3).complete(HI)
    assert (reply.text, server.requests) == ("hello", 3)
    server = local_model(["busy"])
    with pytest.raises(LLMError):
        await server.model(retries=1).complete(HI)
    assert server.requests == 2


def test_local_servers_wait_longer_by_default() -> None:
    for model, options in (
        ("ollama/llama3.2", {}),
        ("ollama_chat/qwen2.5", {}),
        ("openai/local", {"api_base": "http://localhost:8080/v1"}),
        ("openai/local", {"api_base": "http://127.0.0.1:8080"}),
        ("openai/local", {"api_base": "http://[::1]:8080/v1"}),
        ("openai/local", {"api_base": "http://192.168.1.20:11434"}),
        ("hosted_vllm/m", {"api_base": "http://gpu-box.local:8000/v1"}),
        ("ollama/llama3.2", {"api_base": "10.0.0.5:11434"}),
    ):
        assert is_local(model, options), (model, options)
        assert LiteLLM(model, options=options).timeout == 600
    for model, options in (
        ("openai/gpt-4o-mini", {}),
        ("anthropic/claude-sonnet-4-5", {}),
        ("openai/gpt-4o-mini", {"api_base": "https://api.openai.com/v1"}),
        ("ollama/llama3.2", {"api_base": "https://ollama.example.com"}),
    ):
        assert not is_local(model, options), (model, options)
        assert LiteLLM(model, options=options).timeout == 60
    assert LiteLLM("ollama/llama3.2", timeout=30).timeout == 30  # the setting wins
