"""Rank fusion for hybrid search: one implementation for archival and recall memory."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

RRF_K = 60


def fuse(rankings: Sequence[tuple[Sequence[K], float]], *, k: int = RRF_K) -> list[tuple[K, float]]:
    """Weighted reciprocal-rank fusion of ranked id lists; scores scaled so that 1.0 is first in every list.

    Ties are broken by the id's text, so the order (and so pagination) is stable.
    """
    scores: dict[K, float] = {}
    for ids, weight in rankings:
        for rank, key in enumerate(ids, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    best = sum(weight for _, weight in rankings) / (k + 1)
    ordered = sorted(scores.items(), key=lambda item: (-item[1], str(item[0])))
    return [(key, round(score / best, 4) if best else 0.0) for key, score in ordered]
