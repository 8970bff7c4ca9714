"""The argument types and checks every door shares (MCP tools, the CLI, the built-in agent).

Each check's error names the argument and what to change. Living in one module, no memory tier imports
another one for a type.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal, get_args

from pydantic import Field

from engram.storage.errors import InvalidInputError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,49}$")
CONVERSATION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$")
DEFAULT_CONVERSATION = "default"
MAX_TAGS = 20
MAX_TAG_CHARS = 50
MODEL_PATTERN = re.compile(r"^[^\s\x00]{1,200}$")
MIN_CONTEXT_WINDOW = 4096  # the system prompt and the memory tools' schemas take 1,000-2,300 tokens
MAX_CONTEXT_WINDOW = 10_000_000
MAX_MOMENT_CHARS = 40  # the longest ISO 8601 date-time with fractions and an offset is 32
MAX_PAGE = 100_000

Role = Literal["user", "assistant", "tool", "system"]  # messages_role_valid in the schema allows the same
ROLES: tuple[Role, ...] = get_args(Role)

AgentArg = Annotated[
    str | None,
    Field(
        description="Agent name; the default agent if omitted.",
        max_length=100,
    ),
]
ConversationArg = Annotated[
    str | None,
    Field(description=f"Conversation (thread) name, e.g. a chat's id; '{DEFAULT_CONVERSATION}' if omitted."),
]


def check_text(argument: str, value: str, *, max_chars: int, allow_empty: bool = False) -> str:
    if not allow_empty and not value.strip():
        raise InvalidInputError(f"'{argument}' is empty; pass the text to use")
    if len(value) > max_chars:
        raise InvalidInputError(
            f"'{argument}' is {len(value)} characters, over the maximum of {max_chars}; send a shorter text"
        )
    if "\x00" in value:
        raise InvalidInputError(f"'{argument}' contains a NUL character (\\x00), which cannot be stored; remove it")
    return value


def check_agent_name(name: str) -> str:
    return _matching(
        NAME_PATTERN, name, "agent name", "use 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit"
    )


def check_label(label: str) -> str:
    return _matching(LABEL_PATTERN, label, "block label", "use 1-50 letters, digits, '_', '.' or '-' (e.g. 'human')")


def check_conversation(name: str) -> str:
    return _matching(
        CONVERSATION_PATTERN,
        name,
        "conversation name",
        "use 1-200 letters, digits, '_', '.', ':', '@' or '-', starting with a letter or digit",
    )


def _matching(pattern: re.Pattern[str], value: str, what: str, rule: str) -> str:
    """`value` if it matches `pattern`; else an error quoting it (shortened) and giving the rule."""
    if not pattern.fullmatch(value):
        raise InvalidInputError(f"{what} {value[:220]!r} is not valid: {rule}")
    return value


def check_tags(tags: list[str] | None) -> list[str]:
    """Tags stripped and without repeats (passages' and agents' alike)."""
    if not tags:
        return []
    if len(tags) > MAX_TAGS:
        raise InvalidInputError(f"{len(tags)} tags given; use at most {MAX_TAGS}")
    clean: list[str] = []
    for tag in tags:
        value = tag.strip()
        if not value or len(value) > MAX_TAG_CHARS or "\x00" in value:
            raise InvalidInputError(f"tag {tag[:60]!r} is not valid: use 1-{MAX_TAG_CHARS} characters")
        if value not in clean:
            clean.append(value)
    return clean


def check_model(model: str) -> str:
    return _matching(
        MODEL_PATTERN,
        model,
        "model",
        "use a litellm model name (1-200 characters, no spaces), e.g. 'openai/gpt-4o-mini'",
    )


def check_context_window(tokens: int) -> int:
    """A context window in tokens; 0 stands for "not set" (the server's setting, else the model's own)."""
    if tokens != 0 and not MIN_CONTEXT_WINDOW <= tokens <= MAX_CONTEXT_WINDOW:
        raise InvalidInputError(
            f"context_window {tokens} is out of range: use {MIN_CONTEXT_WINDOW}-{MAX_CONTEXT_WINDOW} tokens, "
            "or 0 for the server's default"
        )
    return tokens


def check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise InvalidInputError(f"role {role!r} is not valid; use one of {', '.join(ROLES)}")


def time_range(start: tuple[str, str | None], end: tuple[str, str | None]) -> tuple[datetime | None, datetime | None]:
    """An inclusive (start, end) range from two (argument name, ISO text) pairs; refused if it ends before it starts."""
    start_at = parse_moment(start[0], start[1], end_of_day=False)
    end_at = parse_moment(end[0], end[1], end_of_day=True)
    if start_at and end_at and end_at < start_at:
        raise InvalidInputError(f"{end[0]} {end[1]} is before {start[0]} {start[1]}; swap them or widen the range")
    return start_at, end_at


def parse_moment(argument: str, value: str | None, *, end_of_day: bool) -> datetime | None:
    """An ISO 8601 date or date-time; a date alone means the start (or, for an end, the end) of that day, UTC."""
    if value is None or not value.strip():
        return None
    text_value = value.strip()
    if len(text_value) > MAX_MOMENT_CHARS:
        raise InvalidInputError(
            f"{argument} is {len(text_value)} characters long, not an ISO 8601 date or date-time; use e.g. "
            "'2025-01-31' or '2025-01-31T09:30:00Z'"
        )
    try:
        if len(text_value) == 10:
            day = date.fromisoformat(text_value)
            moment = datetime.combine(day, time.min, tzinfo=UTC)
            return moment + timedelta(days=1, microseconds=-1) if end_of_day else moment
        parsed = datetime.fromisoformat(text_value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"{argument} {value[:40]!r} is not an ISO 8601 date or date-time; use e.g. '2025-01-31' or "
            "'2025-01-31T09:30:00Z'"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def check_page(page: int) -> int:
    """A page number from 1 to MAX_PAGE (a page past the end is empty; one past this is refused, not sent to the
    database as a number it cannot hold)."""
    if not 1 <= page <= MAX_PAGE:
        raise InvalidInputError(f"page {page} is not valid; pages run from 1 to {MAX_PAGE}")
    return page
