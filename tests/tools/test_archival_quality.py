"""Hybrid search must beat each of its legs on the retrieval-quality corpus (bench/archival_quality.py)."""

from __future__ import annotations

import pytest

from bench.archival_quality import evaluate
from engram.server.runtime import open_runtime
from engram.server.settings import Settings

pytestmark = pytest.mark.anyio


async def test_hybrid_beats_vector_only_and_keyword_only(settings: Settings) -> None:
    async with open_runtime(settings) as runtime:
        results = await evaluate(await runtime.scope())
    hybrid, vector, keyword = results["hybrid"], results["vector"], results["keyword"]
    assert hybrid["mrr@10"] > vector["mrr@10"] and hybrid["mrr@10"] > keyword["mrr@10"], results
    assert hybrid["recall@5"] >= max(vector["recall@5"], keyword["recall@5"]), results
    assert hybrid["recall@10"] >= max(vector["recall@10"], keyword["recall@10"]), results
    for kind, score in hybrid["mrr@10_by_kind"].items():  # fusion must not sink any kind of question
        assert score >= 0.95 * max(vector["mrr@10_by_kind"][kind], keyword["mrr@10_by_kind"][kind]), (kind, results)
