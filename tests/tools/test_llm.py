"""The litellm implementation of the `LLM` seam: what each provider failure becomes, raised by litellm itself
(its `mock_response` raises the exception it is given, of litellm's own classes) with no network."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from engram.storage.errors import BackendUnavailableError, ConfigurationError, EngramError
from engram.tools.loop.llm import FALLBACK_CONTEXT_WINDOW, LiteLLM, LLMError

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
    assert str(raised.value) == "openai/gpt-4o-mini did not answer within 12.5 s (setting llm_timeout)"


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
