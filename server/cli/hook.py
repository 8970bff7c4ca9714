"""`engram hook claude-code`: Claude Code's hook command (server/hooks.py says what each event does).

It never blocks Claude Code: whatever fails, the reason goes to stderr, no context is given, and the exit
status is 0 (a UserPromptSubmit hook exiting with 2 would block the user's prompt). It runs on every prompt,
so it loads only what the event needs: the embedding model only for a prompt (whose memory is searched by
meaning), in the background while the database opens, and without optimising its graph (for one query that
costs more than it saves).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from engram.tools.ingest.claude_code import HOOKS

if TYPE_CHECKING:
    from engram.server.runtime import WarmUp
    from engram.server.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    hook = commands.add_parser(
        "hook",
        parents=[common],
        help="answer a host's hook event on stdin: record the conversation and give the model memory (see README)",
    )
    hook.add_argument("host", choices=HOOKS, help="the host whose hook event comes on stdin")
    hook.add_argument(
        "--agent", help="the agent whose memory to give and record into (created if new; default: the default agent)"
    )
    hook.add_argument(
        "--url",
        help="a running `engram serve --transport http` to answer through (fast; token in ENGRAM_HOOK_TOKEN); "
        "answers in process when it cannot be reached",
    )
    hook.set_defaults(run=_hook, never_blocks=True)


def _hook(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from engram.server.hooks import handle_claude_code, searches_by_meaning
    from engram.server.runtime import open_runtime

    event = sys.stdin.read()
    if args.url:  # with other options too (--config, ...): through the server all the same
        from engram.server.cli.forward import forwarded

        rest = ["--url", args.url, *(["--agent", args.agent] if args.agent else [])]
        code = forwarded(["hook", "claude-code", *rest], event)
        if code is not None:
            return code

    async def answer() -> str:
        # one query to embed: loading the model fast beats running it fast (see OnnxEmbedder)
        warm_up: WarmUp = "at_once" if searches_by_meaning(event) else "never"
        async with open_runtime(settings, warm_up=warm_up, optimize_model=False) as runtime:
            scope = await runtime.scope(args.principal)
            return await handle_claude_code(scope, event, args.agent, settings.context_budget())

    try:
        output = asyncio.run(answer())
    except Exception as exc:  # never block the host: say why on stderr and give no context
        print(f"engram hook: {exc}", file=sys.stderr)
        return 0
    if output:
        sys.stdout.write(output)
    return 0
