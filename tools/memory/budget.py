"""Search answers within a token budget, shared by archival_memory_search and conversation_search.

An MCP host pays in context for everything a search sends, so an answer is budgeted in tokens: whole hits,
best first, as many as fit, rather than every hit of the page cut to a stub. The answer then says how many
matches are left and which page continues right after the last hit shown (`continuation`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from engram.tools.memory.hybrid import CANDIDATES

# Text is measured, not tokenized (text_tokens): no tokenizer ships with Engram, and hosts' models differ.
WORD_CHARS_PER_TOKEN = 3.6
OTHER_CHARS_PER_TOKEN = 1.3
BEYOND_ASCII_BYTE_TOKENS = 0.6
ASCII_BYTES = bytes(range(0x80))
NOT_FOUR_BYTE_LEADS = bytes(range(0xF0))  # every byte but 0xF0-0xFF, which lead a four-byte character
WORD_BYTES = b" " + bytes(range(ord("A"), ord("Z") + 1)) + bytes(range(ord("a"), ord("z") + 1))
# An answer's own fields besides its hits (results, page, the page size, more, next and the JSON punctuation):
# 26-28 cl100k_base tokens measured for either search at three-digit counts, rounded up generously.
ANSWER_FIELD_TOKENS = 40
MIN_HIT_CHARS = 100  # the shortest cut of a first hit too long for the whole budget

Found = TypeVar("Found")  # what a search found (a row and its score)
Hit = TypeVar("Hit")  # how the answer shows it


def text_tokens(text: str) -> int:
    """About how many tokens `text` costs a host, never fewer than cl100k_base counts on the English notes,
    code, numbers, accented Latin, Cyrillic, Greek, CJK and emoji text of tests/tools/test_archival.py (1.0
    to 1.75 times the count; English prose about 1.3): letters and spaces WORD_CHARS_PER_TOKEN a token,
    other ASCII (digits, punctuation) OTHER_CHARS_PER_TOKEN, beyond ASCII BEYOND_ASCII_BYTE_TOKENS a byte
    of UTF-8 and one more for a four-byte character (emoji)."""
    data = text.encode("utf-8")
    beyond = data.translate(None, ASCII_BYTES)
    four_byte = len(beyond.translate(None, NOT_FOUR_BYTE_LEADS))
    other = len(data.translate(None, WORD_BYTES)) - len(beyond)
    words = len(data) - len(beyond) - other
    beyond_tokens = len(beyond) * BEYOND_ASCII_BYTE_TOKENS + four_byte
    return math.ceil(words / WORD_CHARS_PER_TOKEN + other / OTHER_CHARS_PER_TOKEN + beyond_tokens)


def within_budget(
    ranked: Sequence[Found],
    budget: int,
    render: Callable[[Found, int], Hit],
    tokens: Callable[[Hit], int],
    most_chars: int,
) -> list[Hit]:
    """The hits, best first, that fit `budget` tokens whole: `render(found, chars)` shows one with its text cut
    to `chars` (`most_chars`, the server's setting, at most), `tokens` estimates what a hit costs.

    Fewer whole hits read better than many stubs: the first hit that does not fit ends the answer. Only a
    first hit too long for the whole budget is cut to fit, so that an answer never comes back empty.
    """
    hits: list[Hit] = []
    room = budget - ANSWER_FIELD_TOKENS
    for found in ranked:
        hit = render(found, most_chars)
        cost = tokens(hit)
        if cost > room:
            if hits:
                break
            hit = cut_to_fit(found, room, render, tokens, most_chars)
            cost = tokens(hit)
        hits.append(hit)
        room -= cost
    return hits


def cut_to_fit(
    found: Found, room: int, render: Callable[[Found, int], Hit], tokens: Callable[[Hit], int], most_chars: int
) -> Hit:
    """The hit with the longest text (at least MIN_HIT_CHARS, at most `most_chars`) that fits `room` tokens."""
    low, high = MIN_HIT_CHARS, max(MIN_HIT_CHARS, most_chars)
    while low < high:
        middle = (low + high + 1) // 2
        if tokens(render(found, middle)) <= room:
            low = middle
        else:
            high = middle - 1
    return render(found, low)


def continuation(shown_to: int, page: int, size: int, shown: int, largest: int) -> tuple[int, int] | None:
    """The page and page size whose page starts right after the `shown_to` best matches, or None past the
    depth searched (CANDIDATES). After a full page that is simply the next page; after a page the budget cut
    short, the page size that divides `shown_to` (the largest up to `largest`), so that no match is skipped."""
    if shown_to >= CANDIDATES:
        return None
    if shown == size:
        return page + 1, size
    size = max(size for size in range(1, min(largest, shown_to) + 1) if shown_to % size == 0)
    return shown_to // size + 1, size


def what_is_left(matches: int, page: int, size: int, shown: int, largest: int) -> tuple[int, tuple[int, int] | None]:
    """After a page of `size` (page numbers from 1) that showed `shown` hits of `matches` ranked: how many
    matches come after the last hit shown, and the page and page size that continue there (`continuation`;
    None when none is left)."""
    shown_to = (page - 1) * size + shown
    more = max(0, matches - shown_to)
    return more, continuation(shown_to, page, size, shown, largest) if more else None
