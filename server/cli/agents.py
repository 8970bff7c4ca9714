"""`engram agents list|create|show|update|delete|export|import`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from engram.server.cli.operation import refused_deletion, run_with_scope
from engram.storage.errors import InvalidInputError

if TYPE_CHECKING:
    from engram.server.settings import Settings
    from engram.tools.memory.agents import AgentInfo, AgentListItem
    from engram.tools.scope import Scope


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    agents = commands.add_parser("agents", help="list, create, show, update or delete agents")
    actions = agents.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", parents=[common], help="list agents")
    listing.set_defaults(run=_list)
    create = actions.add_parser("create", parents=[common], help="create an agent")
    create.add_argument("name")
    create.add_argument("--description", default="")
    create.add_argument("--persona", help="initial persona block")
    create.add_argument("--human", help="initial human block")
    _settings_options(create, update=False)
    create.set_defaults(run=_create)
    show = actions.add_parser("show", parents=[common], help="show an agent's settings and core memory")
    show.add_argument("name")
    show.set_defaults(run=_show)
    update = actions.add_parser("update", parents=[common], help="change an agent's settings or name")
    update.add_argument("name")
    update.add_argument("--description", help="new description")
    _settings_options(update, update=True)
    update.add_argument("--new-name", dest="new_name", help="rename the agent (its memory stays with it)")
    update.set_defaults(run=_update)
    delete = actions.add_parser("delete", parents=[common], help="delete an agent and its own blocks")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(run=_delete)
    export = actions.add_parser(
        "export", parents=[common], help="write agents to a file: Engram's format (all of their memory) or Letta's .af"
    )
    export.add_argument("names", nargs="+", metavar="NAME", help="the agents to export")
    export.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="the file to write")
    export.add_argument(
        "--format",
        choices=("engram", "af"),
        default="engram",
        help="engram (default): everything, archival passages included; af: Letta's agent file (no passages)",
    )
    export.add_argument(
        "--with-vectors",
        dest="with_vectors",
        action="store_true",
        help="include the embeddings, so that an import with the same model need not embed again",
    )
    export.set_defaults(run=_export)
    importing = actions.add_parser(
        "import",
        parents=[common],
        help="import agents from a file: Engram's export, a Letta .af, or the MCP memory server's memory.jsonl",
    )
    importing.add_argument("file", type=Path, metavar="FILE", help="the format is told from the content")
    importing.add_argument(
        "--as", dest="as_name", metavar="NAME", help="import the file's agent under this name (a graph: the agent)"
    )
    importing.add_argument(
        "--replace", action="store_true", help="delete an existing agent of the same name first (else it is refused)"
    )
    importing.set_defaults(run=_import)


def _settings_options(parser: argparse.ArgumentParser, *, update: bool) -> None:
    """The built-in agent's settings and the tags, as `create` and `update` take them."""
    system = parser.add_mutually_exclusive_group()
    system.add_argument(
        "--system",
        help="system prompt of the built-in agent"
        + (" ('' returns to Engram's)" if update else " (default: Engram's memory-agent prompt)"),
    )
    system.add_argument(
        "--system-file", dest="system_file", type=Path, help="read the system prompt from this file ('-': stdin)"
    )
    parser.add_argument(
        "--model",
        help="litellm model of the built-in agent, e.g. openai/gpt-4o-mini"
        + (" ('' returns to llm_model)" if update else " (default: llm_model)"),
    )
    parser.add_argument(
        "--context-window",
        dest="context_window",
        type=int,
        help="tokens the built-in agent's prompt may hold" + (" (0 returns to the server's)" if update else ""),
    )
    parser.add_argument(
        "--tags", help="comma-separated tags, e.g. work,rust" + (" ('' removes them)" if update else "")
    )


def _system(args: argparse.Namespace) -> str | None:
    """--system, or the text of --system-file."""
    text: str | None = args.system
    file: Path | None = args.system_file
    if file is None:
        return text
    if str(file) == "-":
        return sys.stdin.read()
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read the system prompt from {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"cannot read the system prompt from {file}: it is not UTF-8 text") from None


def _tags(text: str | None) -> list[str] | None:
    return None if text is None else [tag for tag in text.split(",") if tag.strip()]


def _list(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.agents import agent_list

    async def every_agent(scope: Scope) -> list[AgentListItem]:
        found: list[AgentListItem] = []
        page: int | None = 1
        while page is not None:
            result = await agent_list(scope, page=page, page_size=100)
            found.extend(result.agents)
            page = result.next_page
        return found

    found = run_with_scope(settings, every_agent, principal=args.principal)
    if not found:
        print("no agents yet (the default agent is created on first use)")
    for agent in found:
        print(f"{agent.name}\t{agent.created_at:%Y-%m-%d %H:%M}\t{agent.description}\t{','.join(agent.tags)}")
    return 0


def _create(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.agents import agent_create

    system = _system(args)
    info = run_with_scope(
        settings,
        lambda scope: agent_create(
            scope,
            args.name,
            description=args.description,
            persona=args.persona,
            human=args.human,
            system=system,
            model=args.model,
            context_window=args.context_window,
            tags=_tags(args.tags),
        ),
        principal=args.principal,
    )
    print(f"created agent '{args.name}'")
    _print_settings(info)
    _print_blocks(info)
    return 0


def _update(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.agents import agent_update

    system = _system(args)
    info = run_with_scope(
        settings,
        lambda scope: agent_update(
            scope,
            args.name,
            system=system,
            description=args.description,
            model=args.model,
            context_window=args.context_window,
            tags=_tags(args.tags),
            new_name=args.new_name,
        ),
        principal=args.principal,
    )
    print(f"updated agent '{info.name}'" + (f" (was '{args.name}')" if info.name != args.name else ""))
    _print_settings(info)
    return 0


def _show(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.agents import agent_show
    from engram.tools.memory.core import core_memory_view

    async def show(scope: Scope) -> tuple[AgentInfo, str]:
        return await agent_show(scope, args.name, system_chars=None), await core_memory_view(scope, args.name)

    info, rendered = run_with_scope(settings, show, principal=args.principal)
    print(f"agent {args.name}: {info.description}")
    _print_settings(info)
    _print_blocks(info)
    print()
    if info.system is not None:
        print(f"system prompt:\n{info.system}\n")
    print(rendered)
    return 0


def _print_settings(info: AgentInfo) -> None:
    model = info.model or "the server's (llm_model)"
    window = f"{info.context_window} tokens" if info.context_window else "the server's (llm_context_window)"
    print(f"  model: {model}; context window: {window}")
    system = "its own" if info.system is not None else "Engram's default"
    print(f"  system prompt: {system}")
    if info.tags:
        print(f"  tags: {', '.join(info.tags)}")


def _print_blocks(info: AgentInfo) -> None:
    for block in info.blocks:
        flag = " read-only" if block.read_only else ""
        print(f"  {block.label}: {block.chars_current}/{block.chars_limit} chars, version {block.version}{flag}")


def _delete(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.agents import agent_delete

    if (refused := refused_deletion(args.yes, f"delete agent '{args.name}' and all of its own memory?")) is not None:
        return refused
    result = run_with_scope(settings, lambda scope: agent_delete(scope, args.name), principal=args.principal)
    print(f"deleted agent '{result.name}' ({result.blocks_deleted} blocks)")
    return 0


def _export(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from engram.tools.ingest.agent_files import export_agent_files
    from engram.tools.ingest.engram_files import export_agents

    if args.with_vectors and args.format != "engram":
        raise InvalidInputError("--with-vectors is for --format engram: Letta's agent files carry no vectors")
    target: Path = args.output
    partial = target.with_name(f".{target.name}.partial")  # renamed once complete: a failed export leaves no file
    try:
        with partial.open("wb") as out:
            if args.format == "engram":
                done = run_with_scope(
                    settings,
                    lambda scope: export_agents(scope, args.names, out, with_vectors=args.with_vectors),
                    principal=args.principal,
                )
                counts = {member.removesuffix(".jsonl"): count for member, count in done.counts.items() if count}
                stored = ", ".join(f"{count} {what.replace('_', ' ')}" for what, count in counts.items())
                note = f" ({done.vectors} vectors)" if args.with_vectors else ""
            else:
                exported, left_out = run_with_scope(
                    settings, lambda scope: export_agent_files(scope, args.names), principal=args.principal
                )
                out.write(json.dumps(exported, ensure_ascii=False, indent=2).encode())
                messages = sum(len(agent["messages"]) - 1 for agent in exported["agents"])
                stored = f"{len(exported['blocks'])} blocks, {messages} messages (Letta's .af format)"
                note = (
                    f"; {left_out} archival passages left out: Letta's agent files have no archival memory "
                    "(--format engram keeps them)"
                    if left_out
                    else "; Letta's agent files have no archival memory (this agent has none)"
                )
        partial.replace(target)
    except OSError as exc:
        raise InvalidInputError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
    names = ", ".join(f"'{name}'" for name in dict.fromkeys(args.names))
    print(f"exported {names} to {target}: {stored}{note}")
    return 0


def _import(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.ingest.transfer import import_file

    path: Path = args.file
    try:
        file = path.open("rb")
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from None
    with file:
        report = run_with_scope(
            settings,
            lambda scope: import_file(scope, file, as_name=args.as_name, replace=args.replace, where=str(path)),
            principal=args.principal,
        )
    for line in report.lines():
        print(line)
    return 0
