"""Running one memory operation from a command: open the runtime, act as a principal, close it again."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from engram.server.settings import Settings
    from engram.tools.scope import Scope

T = TypeVar("T")


def run_with_scope(settings: Settings, work: Callable[[Scope], Awaitable[T]], principal: str | None = None) -> T:
    """Run one memory operation as `principal` (default: the local user, as a stdio server does)."""
    import asyncio

    from engram.server.runtime import open_runtime

    async def run() -> T:
        async with open_runtime(settings) as runtime:
            return await work(await runtime.scope(principal))

    return asyncio.run(run())


def refused_deletion(yes: bool, question: str) -> int | None:
    """None when a deletion may go ahead (--yes, or the person at the terminal answered yes to `question`);
    otherwise the command's exit status."""
    if yes:
        return None
    if not sys.stdin.isatty():
        print("engram: deleting needs --yes when not run from a terminal", file=sys.stderr)
        return 2
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        print("nothing deleted")
        return 1
    return None
