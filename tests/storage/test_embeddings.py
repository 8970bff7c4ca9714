"""Embedders: the default model offline, another fastembed name, and litellm's API shape."""

from __future__ import annotations

import re
from pathlib import Path

import numpy
import pytest

from engram.storage.embeddings import DEFAULT_MODEL, LiteLLMEmbedder, make_embedder
from engram.storage.errors import BackendUnavailableError

pytestmark = pytest.mark.anyio


async def test_the_default_model_embeds_offline_into_unit_vectors(tmp_path: Path) -> None:
    embedder = make_embedder("fastembed", DEFAULT_MODEL, tmp_path / "models")
    cat, feline, invoice = await embedder.embed(
        ["The cat sat on the mat.", "A feline rested on the rug.", "Invoice 4471 is overdue."]
    )
    assert len(cat) == 384 and abs(float(numpy.linalg.norm(cat)) - 1) < 1e-3
    assert float(numpy.dot(cat, feline)) > float(numpy.dot(cat, invoice)) + 0.2
    assert not (tmp_path / "models").exists()  # run from the wheel's files where they are, nothing linked
    assert await embedder.embed([]) == []


async def test_an_unknown_fastembed_model_is_a_clear_error(tmp_path: Path) -> None:
    embedder = make_embedder("fastembed", "nobody/no-such-model", tmp_path / "models")
    with pytest.raises(
        BackendUnavailableError,
        match=rf"^the embedding model 'nobody/no-such-model' could not be loaded \(.+\); the default "
        rf"'{re.escape(DEFAULT_MODEL)}' works offline, other models need a network on first use$",
    ):
        await embedder.embed(["x"])


async def test_litellm_vectors_are_normalized() -> None:
    embedder = LiteLLMEmbedder("openai/text-embedding-3-small", options={"mock_response": [3.0, 4.0]})
    assert await embedder.embed(["hello"]) == [[0.6, 0.8]]


async def test_litellm_returning_too_few_vectors_is_an_error() -> None:
    embedder = LiteLLMEmbedder("openai/text-embedding-3-small", options={"mock_response": [1.0, 0.0]})
    with pytest.raises(BackendUnavailableError, match="returned 1 vectors for 2 texts"):
        await embedder.embed(["a", "b"])
