"""The default model run by ONNX Runtime directly: fastembed's vectors, without importing fastembed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy
import pytest

from engram.storage.embeddings import DEFAULT_MODEL, FastEmbedder, OnnxEmbedder, Vector, make_embedder

pytestmark = pytest.mark.anyio

LONG = " ".join(f"Step {n}: the billing API moved to port {8000 + n} after the outage review." for n in range(60))
TEXTS = [
    "The cat sat on the mat.",
    "",
    "Invoice 4471 is overdue — ça coûte 3 € 🙂, 東京で会いましょう",
    LONG,  # ~900 tokens: cut at the tokenizer's 256
    "short",
    "A medium sentence about the Halvard cutover planned for March, with numpy pinned below 2.0.",
]


def cosine(a: Vector, b: Vector) -> float:
    return float(numpy.dot(a, b) / (numpy.linalg.norm(a) * numpy.linalg.norm(b)))


async def test_the_default_model_makes_fastembeds_vectors_for_short_long_and_padded_texts(tmp_path: Path) -> None:
    """Vectors stored by earlier versions (made by fastembed) stay valid: same tokenizer, truncation, pooling."""
    ours = await make_embedder("fastembed", DEFAULT_MODEL, tmp_path / "models").embed(TEXTS)  # one padded batch
    theirs = await FastEmbedder(DEFAULT_MODEL, models_dir=tmp_path / "models").embed(TEXTS)
    for text, mine, reference in zip(TEXTS, ours, theirs, strict=True):
        assert mine.shape == (384,) and mine.dtype == numpy.float32, text
        assert cosine(mine, reference) >= 0.9999, text
        assert abs(float(numpy.linalg.norm(mine)) - 1) < 1e-5


async def test_a_text_embeds_the_same_alone_and_in_a_batch_padded_to_a_longer_one() -> None:
    embedder = OnnxEmbedder(batch_size=64)
    together = await embedder.embed(TEXTS)
    for text, vector in zip(TEXTS, together, strict=True):
        [alone] = await embedder.embed([text])
        assert cosine(alone, vector) >= 0.9999, text


async def test_text_past_the_models_256_tokens_is_cut_off() -> None:
    embedder = OnnxEmbedder()
    long, longer, shorter = await embedder.embed([LONG, LONG + " Then everything changed completely.", LONG[:300]])
    assert cosine(long, longer) >= 0.99999
    assert cosine(long, shorter) < 0.99


async def test_every_embedder_of_the_default_model_shares_one_loaded_model() -> None:
    await OnnxEmbedder().embed(["load it"])
    assert OnnxEmbedder().loaded


def test_the_default_model_runs_without_importing_fastembed(tmp_path: Path) -> None:
    """fastembed takes about a second to import; a hook pays it on every prompt otherwise."""
    probe = (
        "import sys, anyio; from pathlib import Path; from engram.storage.embeddings import make_embedder, "
        f"DEFAULT_MODEL; e = make_embedder('fastembed', DEFAULT_MODEL, Path({str(tmp_path)!r})); "
        "[v] = anyio.run(e.embed, ['x']); print(len(v), 'fastembed' in sys.modules)"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert completed.stdout.split() == ["384", "False"]


async def test_the_model_loaded_without_graph_optimisation_for_hooks_makes_the_same_vectors() -> None:
    optimised = await OnnxEmbedder().embed(TEXTS)
    plain = await OnnxEmbedder(optimize=False).embed(TEXTS)
    for text, fast_to_run, fast_to_load in zip(TEXTS, optimised, plain, strict=True):
        assert cosine(fast_to_run, fast_to_load) >= 0.9999, text
