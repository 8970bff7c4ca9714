"""Splitting documents into passages on paragraph and sentence boundaries, with a little overlap."""

from __future__ import annotations

import re

MAX_CHUNK_CHARS = 1200
OVERLAP_MAX_CHARS = 240  # the last sentence of a chunk starts the next one when it is at most this long

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def chunk_text(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[str]:
    """Passages of at most `max_chars`, made of whole paragraphs where they fit, else whole sentences.

    Consecutive passages share the previous passage's last sentence when it is short, so a fact that
    straddles a boundary can still be found with its context.
    """
    pieces: list[str] = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= max_chars:
            pieces.append(paragraph)
        else:
            pieces.extend(_sentences(paragraph, max(max_chars - OVERLAP_MAX_CHARS, max_chars // 2)))

    chunks: list[str] = []
    current: list[str] = []
    for piece in pieces:
        candidate = "\n\n".join([*current, piece])
        if current and len(candidate) > max_chars:
            chunks.append("\n\n".join(current))
            tail = _last_sentence(current[-1])
            current = [tail, piece] if tail and len(tail) + len(piece) + 2 <= max_chars else [piece]
        else:
            current.append(piece)
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def _sentences(paragraph: str, max_chars: int) -> list[str]:
    """Whole sentences packed up to `max_chars`; a sentence longer than that is cut at spaces."""
    packed: list[str] = []
    line = ""
    for sentence in _SENTENCE_END.split(paragraph):
        for part in _hard_split(sentence, max_chars):
            if line and len(line) + 1 + len(part) > max_chars:
                packed.append(line)
                line = part
            else:
                line = f"{line} {part}" if line else part
    if line:
        packed.append(line)
    return packed


def _hard_split(sentence: str, max_chars: int) -> list[str]:
    parts: list[str] = []
    while len(sentence) > max_chars:
        cut = sentence.rfind(" ", 0, max_chars)
        cut = cut if cut > max_chars // 2 else max_chars
        parts.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    return [*parts, sentence] if sentence else parts


def _last_sentence(chunk: str) -> str | None:
    sentence = _SENTENCE_END.split(chunk.strip())[-1].strip()
    return sentence if 0 < len(sentence) <= OVERLAP_MAX_CHARS and sentence != chunk.strip() else None
