"""conversation_search's default must find at least as much evidence as either of its legs, and reach the
issue's goal of recall@10 >= 0.60, on the multi-session evaluation (bench/recall_quality.py)."""

from __future__ import annotations

import pytest

from bench.recall_quality import evaluate
from engram.server.runtime import open_runtime
from engram.server.settings import Settings

pytestmark = pytest.mark.anyio


async def test_hybrid_finds_at_least_as_much_evidence_as_each_leg(settings: Settings) -> None:
    async with open_runtime(settings) as runtime:
        results = await evaluate(await runtime.scope())
    hybrid, vector, keyword = results["hybrid"], results["vector"], results["keyword"]
    assert hybrid["questions"] >= 150, results
    for depth in ("recall@5", "recall@10"):
        assert hybrid[depth] >= max(vector[depth], keyword[depth]), (depth, results)
    assert hybrid["recall@10"] >= 0.60, results
