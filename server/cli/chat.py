"""`engram chat` (an interactive terminal chat with the built-in agent) and `engram summarize`.

Replies go to stdout; the spinner and the dimmed tool trace go to stderr, drawn only on a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from contextlib import suppress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engram.server.settings import Settings

DIM, RESET = "\x1b[2m", "\x1b[0m"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    chat = commands.add_parser("chat", parents=[common], help="chat with an agent in the terminal (needs a model)")
    chat.add_argument("agent", help="the agent to talk to (created if new)")
    chat.add_argument("--model", help="litellm model for this chat (default: the agent's, else llm_model)")
    chat.add_argument("--conversation", help="conversation name (default: 'default')")
    chat.set_defaults(run=_chat)

    summarize = commands.add_parser(
        "summarize", parents=[common], help="summarize the oldest in-context messages of an agent's conversation now"
    )
    summarize.add_argument("agent")
    summarize.add_argument(
        "--model", help="litellm model that writes the summary (default: the agent's, else llm_model)"
    )
    summarize.add_argument("--conversation", help="conversation name (default: 'default')")
    summarize.set_defaults(run=_summarize)


def _chat(settings: Settings, args: argparse.Namespace) -> int:
    return chat(settings, args.agent, args.conversation, args.model, args.principal)


def _summarize(settings: Settings, args: argparse.Namespace) -> int:
    return summarize(settings, args.agent, args.conversation, args.model, args.principal)


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
    """Chat as `principal` with its agent (created if new) until an empty line or end of input.

    A turn that fails for its own reasons (a message too long, the model timing out or rate-limited) is
    reported on stderr and the chat goes on; the exit status is then 1. An error no later turn could
    escape (no model or key configured, the agent gone) ends the chat at once with status 1.
    """
    from engram.server.runtime import open_runtime
    from engram.server.send_message import llm_chooser, loop_config
    from engram.storage.errors import ConfigurationError, EngramError, NotFoundError
    from engram.tools.loop.turn import current_summary, ensure_agent, send_message

    async def run() -> int:
        async with open_runtime(settings, background=True) as runtime:
            scope = await runtime.scope(principal)
            await ensure_agent(scope, agent)
            choose = llm_chooser(settings, model=model)
            with suppress(EngramError):
                known = await current_summary(scope, agent, conversation)
                print(_dim(f"({known.messages} messages so far; in context from #{known.in_context_from})"))
            print(_dim(f"chatting with '{agent}'; an empty line or Ctrl-D ends"), file=sys.stderr)
            failed = False
            while True:
                try:
                    line = await asyncio.to_thread(input, "you> ")
                except EOFError:
                    return int(failed)
                if not line.strip():
                    return int(failed)
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
                        config=loop_config(settings),
                        progress=progress,
                    )
                except (ConfigurationError, NotFoundError) as exc:  # every later turn would fail the same way
                    print(f"\rengram: {exc}", file=sys.stderr)
                    return 1
                except EngramError as exc:
                    print(f"\rengram: {exc}", file=sys.stderr)
                    failed = True
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
    from engram.server.runtime import open_runtime
    from engram.server.send_message import llm_chooser, loop_config
    from engram.tools.loop.turn import summarize_conversation

    async def run() -> int:
        async with open_runtime(settings) as runtime:
            scope = await runtime.scope(principal)
            done = await summarize_conversation(
                scope, agent, conversation, choose_llm=llm_chooser(settings, model=model), config=loop_config(settings)
            )
        if done is None:
            print("nothing to summarize: the conversation's context holds too few messages")
            return 0
        print(f"summarized {done.evicted} messages (the summary now covers #{done.first_ordinal}-#{done.last_ordinal})")
        print(done.summary)
        return 0

    return asyncio.run(run())
