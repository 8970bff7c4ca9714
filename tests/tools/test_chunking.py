"""Chunking documents into passages."""

from __future__ import annotations

import itertools
import re

from engram.tools.ingest.chunking import chunk_text


def test_short_paragraphs_are_packed_whole() -> None:
    text = "First paragraph.\n\nSecond paragraph.\n\n\nThird."
    assert chunk_text(text, max_chars=1000) == ["First paragraph.\n\nSecond paragraph.\n\nThird."]


def test_chunks_respect_the_limit_and_keep_every_sentence() -> None:
    sentences = [f"Sentence number {n} says something about topic {n % 7}." for n in range(200)]
    text = "\n\n".join(" ".join(sentences[i : i + 10]) for i in range(0, 200, 10))
    chunks = chunk_text(text, max_chars=400)
    assert all(len(chunk) <= 400 for chunk in chunks)
    found = set(re.findall(r"Sentence number (\d+) ", " ".join(chunks)))
    assert found == {str(n) for n in range(200)}


def test_consecutive_chunks_overlap_by_a_sentence() -> None:
    text = "\n\n".join(f"Paragraph {n} opens. It continues with detail {n}. It closes {n}." for n in range(30))
    chunks = chunk_text(text, max_chars=200)
    assert len(chunks) > 5
    for previous, current in itertools.pairwise(chunks):
        assert current.startswith(previous.split(". ")[-1].strip())


def test_a_giant_sentence_is_cut_at_spaces() -> None:
    chunks = chunk_text("word " * 1000, max_chars=300)
    assert all(0 < len(chunk) <= 300 for chunk in chunks)
    assert sum(chunk.count("word") for chunk in chunks) >= 1000
