"""`engram agents list|create|show|delete`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from engram.server.cli.operation import run_with_scope

if TYPE_CHECKING:
    from engram.server.settings import Settings
    from engram.tools.memory.agents import AgentInfo, AgentListItem
    from engram.tools.scope import Scope


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    agents = commands.add_parser("agents", help="list, create, show or delete agents")
    actions = agents.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", parents=[common], help="list agents")
    listing.set_defaults(run=_list)
    create = actions.add_parser("create", parents=[common], help="create an agent")
    create.add_argument("name")
    create.add_argument("--description", default="")
    create.add_argument("--persona", help="initial persona block")
    create.add_argument("--human", help="initial human block")
    create.set_defaults(run=_create)
    show = actions.add_parser("show", parents=[common], help="show an agent's core memory")
    show.add_argument("name")
    show.set_defaults(run=_show)
    delete = actions.add_parser("delete", parents=[common], help="delete an agent and its own blocks")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(run=_delete)


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
        print(f"{agent.name}\t{agent.created_at:%Y-%m-%d %H:%M}\t{agent.description}")
    return 0


def _create(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.agents import agent_create

    info = run_with_scope(
        settings,
        lambda scope: agent_create(
            scope, args.name, description=args.description, persona=args.persona, human=args.human
        ),
        principal=args.principal,
    )
    print(f"created agent '{args.name}'")
    _print_blocks(info)
    return 0


def _show(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.agents import agent_show
    from engram.tools.memory.core import core_memory_view

    async def show(scope: Scope) -> tuple[AgentInfo, str]:
        return await agent_show(scope, args.name), await core_memory_view(scope, args.name)

    info, rendered = run_with_scope(settings, show, principal=args.principal)
    print(f"agent {args.name}: {info.description}")
    _print_blocks(info)
    print()
    print(rendered)
    return 0


def _print_blocks(info: AgentInfo) -> None:
    for block in info.blocks:
        flag = " read-only" if block.read_only else ""
        print(f"  {block.label}: {block.chars_current}/{block.chars_limit} chars, version {block.version}{flag}")


def _delete(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.agents import agent_delete

    if not args.yes:
        if not sys.stdin.isatty():
            print("engram: deleting needs --yes when not run from a terminal", file=sys.stderr)
            return 2
        answer = input(f"delete agent '{args.name}' and all of its own memory? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    result = run_with_scope(settings, lambda scope: agent_delete(scope, args.name), principal=args.principal)
    print(f"deleted agent '{result.name}' ({result.blocks_deleted} blocks)")
    return 0
