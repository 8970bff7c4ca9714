"""Running one memory operation from a command: open the runtime, act as a principal, close it again."""

from __future__ import annotations

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
