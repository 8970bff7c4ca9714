"""The days a search query names ("on 8 May, 2023", "in March 2024", "2024-03-05"), for recall's ranking:
what was said then is more likely what a question about then is after."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

# A day either side of what is named: the speaker's day need not be UTC's.
MARGIN = timedelta(days=1)

_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_MONTHS |= {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
_MONTHS["sept"] = 9
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(\d{4})"
_DAY_MONTH_YEAR = re.compile(rf"\b{_DAY} (?:of )?{_MONTH},? {_YEAR}\b", re.IGNORECASE)
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH} {_DAY},? {_YEAR}\b", re.IGNORECASE)
_MONTH_YEAR = re.compile(rf"\b{_MONTH},? {_YEAR}\b", re.IGNORECASE)
_ISO_DAY = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")

Span = tuple[datetime, datetime]  # [start, end) in UTC


def named_spans(query: str) -> list[Span]:
    """The days (or, for "May 2023", the month) the query names, each widened by MARGIN; an impossible day
    ("31 February 2023") counts as its month."""
    spans: list[Span] = []
    for day, month, year in _DAY_MONTH_YEAR.findall(query):
        spans += _day(int(year), _MONTHS[month.lower()], int(day))
    for month, day, year in _MONTH_DAY_YEAR.findall(query):
        spans += _day(int(year), _MONTHS[month.lower()], int(day))
    for year, month, day in _ISO_DAY.findall(query):
        spans += _day(int(year), int(month), int(day))
    if not spans:  # "May 2023" is also the tail of "8 May 2023": a month only when no day is named
        for month, year in _MONTH_YEAR.findall(query):
            spans += _month(int(year), _MONTHS[month.lower()])
    return spans


def within(moment: datetime, spans: list[Span]) -> bool:
    return any(start <= moment < end for start, end in spans)


def _day(year: int, month: int, day: int) -> list[Span]:
    try:
        start = datetime(year, month, day, tzinfo=UTC)
        return [(start - MARGIN, start + timedelta(days=1) + MARGIN)]
    except (ValueError, OverflowError):  # no such day, or at the very ends of the calendar
        return []


def _month(year: int, month: int) -> list[Span]:
    try:
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        return [(start - MARGIN, end + MARGIN)]
    except (ValueError, OverflowError):
        return []
