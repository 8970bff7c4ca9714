"""What the retrieval-quality evaluations share: averaging per-question rows and running in a fresh data dir."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from engram.tools.scope import Scope

Row = dict[str, Any]


def mean(key: str, rows: list[Row]) -> float:
    return round(sum(row[key] for row in rows) / len(rows), 3) if rows else 0.0


def by_kind(key: str, rows: list[Row]) -> dict[str, float]:
    return {kind: mean(key, [row for row in rows if row["kind"] == kind]) for kind in sorted({r["kind"] for r in rows})}


def evidence_recall(kind: str, evidence: set[str], turns: list[str]) -> Row:
    """One question's row: the share of its evidence turns among the first 5 and the first 10 ranked."""
    return {
        "kind": kind,
        "r5": len(evidence & set(turns[:5])) / len(evidence),
        "r10": len(evidence & set(turns[:10])) / len(evidence),
    }


def recall_summary(rows: list[Row], *, kinds: str) -> dict[str, Any]:
    """recall@5 and @10 over the questions, and @10 per kind (reported as `recall@10_by_<kinds>`)."""
    return {
        "recall@5": mean("r5", rows),
        "recall@10": mean("r10", rows),
        f"recall@10_by_{kinds}": by_kind("r10", rows),
        "questions": len(rows),
    }


async def run(evaluate: Callable[[Scope], Awaitable[dict[str, Any]]]) -> None:
    """Print the evaluation's JSON, computed on a private embedded PostgreSQL in a temporary data dir."""
    from engram.server.runtime import open_runtime
    from engram.server.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="engram-quality-") as data_dir:
        settings = load_settings(overrides={"data_dir": data_dir}, environ={})
        async with open_runtime(settings) as runtime:
            print(json.dumps(await evaluate(await runtime.scope()), indent=2))
