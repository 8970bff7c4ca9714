"""`engram chat` (an interactive terminal chat with the built-in agent) and `engram summarize`.

Replies go to stdout; the spinner and the dimmed tool trace go to stderr, drawn only on a terminal.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from contextlib import suppress

from engram.server.runtime import open_runtime
from engram.server.send_message import agent_config, llm_chooser
from engram.server.settings import Settings
from engram.storage.errors import ConfigurationError, EngramError
from engram.tools.loop.turn import current_summary, send_message, summarize_conversation

DIM, RESET = "\x1b[2m", "\x1b[0m"


def _dim(text: str) -> str:
    return f"{DIM}{text}{RESET}" if sys.stderr.isatty() else text


async def _spin(status: list[str]) -> None:
    if not sys.stderr.isatty():
        return
    for frame in itertools.cycle("|/-\\"):
        print(f"\r{frame} {status[0]}\x1b[K", end="", file=sys.stderr, flush=True)
        await asyncio.sleep(0.1)


def chat(
    settings: Settings, agent: str, conversation: str | None, model: str | None, principal: str | None = None
) -> int:
    async def run() -> int:
        async with open_runtime(settings, background=True) as runtime:
            scope = await runtime.scope(principal)
            choose = llm_chooser(settings, model=model)
            with suppress(EngramError):
                known = await current_summary(scope, agent, conversation)
                print(_dim(f"({known.messages} messages so far; in context from #{known.in_context_from})"))
            print(_dim(f"chatting with '{agent}'; an empty line or Ctrl-D ends"), file=sys.stderr)
            while True:
                try:
                    line = await asyncio.to_thread(input, "you> ")
                except EOFError:
                    return 0
                if not line.strip():
                    return 0
                status = ["thinking"]

                async def progress(_step: int, _total: int, text: str, status: list[str] = status) -> None:
                    status[0] = text

                spinner = asyncio.create_task(_spin(status))
                try:
                    reply = await send_message(
                        scope,
                        line,
                        agent,
                        conversation,
                        choose_llm=choose,
                        config=agent_config(settings),
                        progress=progress,
                    )
                except ConfigurationError as exc:  # no model, no key: nothing else would work either
                    print(f"\rengram: {exc}", file=sys.stderr)
                    return 1
                except EngramError as exc:
                    print(f"\rengram: {exc}", file=sys.stderr)
                    continue
                finally:
                    spinner.cancel()
                    with suppress(asyncio.CancelledError):
                        await spinner
                    if sys.stderr.isatty():
                        print("\r\x1b[K", end="", file=sys.stderr)
                for use in reply.tools_used:
                    print(_dim(f"  [{use.name}{'' if use.ok else ' failed'}] {use.arguments}"), file=sys.stderr)
                print(f"{agent}> {reply.reply}")

    with suppress(ImportError):
        import readline  # noqa: F401 - line editing and history for input()
    return asyncio.run(run())


def summarize(
    settings: Settings, agent: str, conversation: str | None, model: str | None, principal: str | None = None
) -> int:
    async def run() -> int:
        async with open_runtime(settings) as runtime:
            scope = await runtime.scope(principal)
            done = await summarize_conversation(
                scope, agent, conversation, choose_llm=llm_chooser(settings, model=model), config=agent_config(settings)
            )
        if done is None:
            print("nothing to summarize: the conversation's context holds too few messages")
            return 0
        print(f"summarized {done.evicted} messages (the summary now covers #{done.first_ordinal}-#{done.last_ordinal})")
        print(done.summary)
        return 0

    return asyncio.run(run())
