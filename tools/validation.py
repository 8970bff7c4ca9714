"""Argument checks shared by the memory operations; each error names the argument and what to change."""

from __future__ import annotations

import re

from storage.errors import InvalidInputError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,49}$")


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
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInputError(
            f"agent name {name[:120]!r} is not valid: use 1-100 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_label(label: str) -> str:
    if not LABEL_PATTERN.fullmatch(label):
        raise InvalidInputError(
            f"block label {label[:80]!r} is not valid: use 1-50 letters, digits, '_', '.' or '-' (e.g. 'human')"
        )
    return label
