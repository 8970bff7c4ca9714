"""Ranked results are best first, and equal scores keep one order: that of the ids' text."""

from __future__ import annotations

import uuid

from engram.storage import search


def test_ties_are_broken_by_the_ids_text_for_uuids_as_for_other_keys() -> None:
    ids = [uuid.uuid4() for _ in range(300)]
    scores = {key: float(index % 3) for index, key in enumerate(ids)}
    by_text = sorted(scores.items(), key=lambda item: (-item[1], str(item[0])))
    assert search.ranked(scores) == [(key, round(score, 4)) for key, score in by_text]
    assert search.ranked({"b": 1.0, "a": 1.0, "c": 2.0}) == [("c", 2.0), ("a", 1.0), ("b", 1.0)]
