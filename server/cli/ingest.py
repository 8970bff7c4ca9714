"""Getting data into memory (the door to `tools/ingest`): `engram ingest`, `record`, `import` and `reindex`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from engram.server.cli.operation import run_with_scope
from engram.tools.ingest.claude_code import HOOKS

if TYPE_CHECKING:
    from engram.server.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    ingest = commands.add_parser(
        "ingest", parents=[common], help="load .txt and .md files (or directories of them) into archival memory"
    )
    ingest.add_argument("agent", help="the agent whose archival memory receives the passages")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ingest.set_defaults(run=_ingest)

    record = commands.add_parser(
        "record",
        parents=[common],
        help="record one message in recall memory (for host hook scripts); the text comes from stdin if omitted",
    )
    record.add_argument("text", nargs="?", help="the message; omitted or '-': read from stdin")
    record.add_argument(
        "--agent", help="the agent whose recall memory receives it (created if new; default: the default agent)"
    )
    record.add_argument("--conversation", help="conversation name (default: 'default', or the hook's session id)")
    record.add_argument("--role", choices=("user", "assistant", "tool", "system"), default="user")
    record.add_argument(
        "--hook",
        choices=HOOKS,
        help="stdin is a host hook's JSON event: record the prompt or reply it carries (see README)",
    )
    record.set_defaults(run=_record)

    history = commands.add_parser(
        "import",
        parents=[common],
        help="import exported chat histories (Claude.ai, ChatGPT conversations.json, JSONL) into recall memory",
    )
    history.add_argument("path", type=Path, metavar="PATH", help="the export: .json, .jsonl, or the .zip as received")
    history.add_argument(
        "--agent", help="the agent whose recall memory receives them (created if new; default: the default agent)"
    )
    history.add_argument("--format", choices=("claude", "chatgpt", "jsonl"), help="default: detected from the file")
    history.set_defaults(run=_import)

    reindex = commands.add_parser(
        "reindex",
        parents=[common],
        help="re-embed archival passages and recorded messages not embedded with the configured model",
    )
    reindex.add_argument("--agent", help="only this agent (default: all of your agents)")
    reindex.set_defaults(run=_reindex)


def _ingest(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.ingest.documents import ingest

    bar = ProgressBar("embedding")
    report = run_with_scope(
        settings, lambda scope: ingest(scope, args.agent, args.paths, bar), principal=args.principal
    )
    bar.close()
    print(
        f"{report.files} files ({report.unchanged_files} unchanged): {report.passages_added} passages added, "
        f"{report.passages_already_stored} already stored, {report.passages_replaced} replaced from earlier versions"
    )
    return 0


def _reindex(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.ingest.documents import reindex

    bar = ProgressBar("re-embedding")
    report = run_with_scope(settings, lambda scope: reindex(scope, args.agent, bar), principal=args.principal)
    bar.close()
    print(f"{report.reembedded} passages and {report.messages} messages embedded with {report.model}")
    return 0


def _record(settings: Settings, args: argparse.Namespace) -> int:
    """Silent on success: a hook's stdout may be shown to the host's model."""
    from engram.tools.memory.recall import record_message

    text = sys.stdin.read() if args.text in (None, "-") else args.text
    conversation, role, source = args.conversation, args.role, "cli"
    if args.hook is not None:
        from engram.tools.ingest.claude_code import claude_code_message

        message = claude_code_message(text)
        if message is None:
            return 0  # an event, or an empty reply, with nothing to record
        conversation, role, text, source = conversation or message.conversation, message.role, message.text, args.hook
    run_with_scope(
        settings,
        lambda scope: record_message(scope, args.agent, conversation, role, text, source=source, create_agent=True),
        principal=args.principal,
    )
    return 0


def _import(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.ingest.history import import_history

    reading, embedding = ProgressBar("importing"), ProgressBar("embedding")

    def embedding_progress(done: int, total: int) -> None:
        reading.close()
        embedding(done, total)

    report = run_with_scope(
        settings,
        lambda scope: import_history(
            scope,
            args.agent or settings.default_agent,
            args.path,
            args.format,
            progress=reading,
            embedding_progress=embedding_progress,
        ),
        principal=args.principal,
    )
    reading.close()
    embedding.close()
    print(
        f"{report.conversations} {report.format} conversations ({report.new_conversations} new): "
        f"{report.messages_added} messages added, {report.messages_already_stored} already stored, "
        f"{report.embedded} embedded"
    )
    return 0


class ProgressBar:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, label: str, width: int = 30) -> None:
        self._label = label
        self._width = width
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return
        filled = self._width * done // total if total else self._width
        bar = "#" * filled + "." * (self._width - filled)
        print(f"\r{self._label} [{bar}] {done}/{total}", end="", file=sys.stderr, flush=True)
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            print(file=sys.stderr)
            self._drawn = False
