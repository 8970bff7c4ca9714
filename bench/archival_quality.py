"""Retrieval quality of archival search: hybrid vs vector-only vs keyword-only on a corpus with known answers.

The corpus (bench/data/archival_quality.json) holds ~160 notes a personal assistant would keep and 60
questions of three kinds: paraphrases (few shared words), keyword questions (rare names, codes, numbers,
with near-miss distractors) and mixed ones. Prints JSON: MRR@10, hit@1, recall@5 and recall@10 per mode,
overall and per kind. tests/tools/test_archival_quality.py runs the same evaluation and requires hybrid
to beat both legs.

    python -m bench.archival_quality
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio

from bench.quality import by_kind, mean, run
from engram.tools.memory import archival
from engram.tools.memory.hybrid import SearchMode
from engram.tools.scope import Scope

CORPUS = Path(__file__).parent / "data" / "archival_quality.json"
MODES: tuple[SearchMode, ...] = ("hybrid", "vector", "keyword")


async def evaluate(scope: Scope, agent: str = "quality") -> dict[str, Any]:
    corpus = json.loads(CORPUS.read_text())
    from engram.tools.memory.agents import agent_create

    await agent_create(scope, agent)
    ids: dict[str, str] = {}
    for item in corpus["passages"]:
        ref = await archival.archival_memory_insert(scope, item["text"], tags=item["tags"], agent=agent)
        ids[ref.id] = item["key"]
    where = archival.passage_filter(None, "any", None, None)
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for question in corpus["questions"]:
        for mode in MODES:
            ranked = (await archival.find_passages(scope, agent, question["query"], where, mode=mode)).ranked
            keys = [ids[str(passage_id)] for passage_id, _ in ranked[:10]]
            answers = set(question["answers"])
            first = next((rank for rank, key in enumerate(keys, start=1) if key in answers), None)
            rows[mode].append(
                {
                    "kind": question["kind"],
                    "rr": 1 / first if first else 0.0,
                    "hit1": float(first == 1),
                    "r5": len(answers & set(keys[:5])) / len(answers),
                    "r10": len(answers & set(keys)) / len(answers),
                }
            )
    return {mode: _summary(results) for mode, results in rows.items()}


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "mrr@10": mean("rr", results),
        "hit@1": mean("hit1", results),
        "recall@5": mean("r5", results),
        "recall@10": mean("r10", results),
        "mrr@10_by_kind": by_kind("rr", results),
        "questions": len(results),
    }


if __name__ == "__main__":
    anyio.run(run, evaluate)
