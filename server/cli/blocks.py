"""`engram blocks list|create|attach|detach|delete|history|undo`: shared blocks, and every block's versions."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from engram.server.cli.operation import refused_deletion, run_with_scope

if TYPE_CHECKING:
    from engram.server.settings import Settings
    from engram.tools.memory.blocks import BlockInfo
    from engram.tools.scope import Scope

UNDO_ACTOR = "engram blocks undo"  # recorded in the block's history as what made the restored version


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    blocks = commands.add_parser("blocks", help="shared blocks: list, create, attach, detach, delete; history, undo")
    actions = blocks.add_subparsers(title="actions", metavar="ACTION", required=True)
    block_help = "the block's id, or its label if only one of your blocks has it"

    listing = actions.add_parser("list", parents=[common], help="list blocks, their sizes and the agents they are in")
    listing.add_argument("--label", help="only blocks with this label")
    listing.set_defaults(run=_list)

    create = actions.add_parser("create", parents=[common], help="create a standalone block, to attach to agents")
    create.add_argument("label")
    create.add_argument("--value", default="", help="initial text (default: empty)")
    create.add_argument("--limit", type=int, help="character limit (default: the block_char_limit setting)")
    create.add_argument("--description", default="", help="what the block is for, shown to agents")
    create.add_argument("--read-only", dest="read_only", action="store_true", help="no tool may edit its text")
    create.set_defaults(run=_create)

    attach = actions.add_parser("attach", parents=[common], help="attach a block to an agent (shared with others)")
    attach.add_argument("block", help=block_help)
    attach.add_argument("--agent", required=True, help="the agent to attach it to")
    attach.set_defaults(run=_attach)

    detach = actions.add_parser("detach", parents=[common], help="detach a block from an agent (the block stays)")
    detach.add_argument("block", help=block_help)
    detach.add_argument("--agent", required=True, help="the agent to detach it from")
    detach.set_defaults(run=_detach)

    delete = actions.add_parser("delete", parents=[common], help="delete a block, detaching it from every agent")
    delete.add_argument("block", help=block_help)
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(run=_delete)

    history = actions.add_parser("history", parents=[common], help="an agent's block's versions, newest first")
    history.add_argument("label")
    history.add_argument("--agent", help="whose block (default: the default agent)")
    history.add_argument("--limit", type=int, default=10, help="how many versions (default: 10, at most 50)")
    history.set_defaults(run=_history)

    undo = actions.add_parser("undo", parents=[common], help="bring back a block's previous text, as a new version")
    undo.add_argument("label")
    undo.add_argument("--agent", help="whose block (default: the default agent)")
    undo.set_defaults(run=_undo)


def _list(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.blocks import MAX_PAGE_SIZE, block_list

    async def every_block(scope: Scope) -> list[BlockInfo]:
        found: list[BlockInfo] = []
        page: int | None = 1
        while page is not None:
            result = await block_list(scope, label=args.label, page=page, page_size=MAX_PAGE_SIZE)
            found.extend(result.blocks)
            page = result.next_page
        return found

    found = run_with_scope(settings, every_block, principal=args.principal)
    if not found:
        print("no blocks" + (f" labelled '{args.label}'" if args.label else ""))
    for block in found:
        print(_line(block))
    return 0


def _line(block: BlockInfo) -> str:
    flags = "".join((" read-only" if block.read_only else "", " standalone" if block.standalone else ""))
    agents = ", ".join(block.agents) + (" …" if block.agent_count > len(block.agents) else "")
    return (
        f"{block.id}\t{block.label}\t{block.chars_current}/{block.chars_limit} chars, version {block.version}{flags}"
        f"\t{'agents: ' + agents if agents else 'no agent'}"
    )


def _create(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.blocks import block_create

    block = run_with_scope(
        settings,
        lambda scope: block_create(
            scope,
            args.label,
            value=args.value,
            limit=args.limit,
            description=args.description,
            read_only=args.read_only,
        ),
        principal=args.principal,
    )
    print(f"created block '{block.label}' {block.id}")
    return 0


def _attach(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.blocks import block_attach

    block = run_with_scope(
        settings, lambda scope: block_attach(scope, args.agent, args.block), principal=args.principal
    )
    print(f"attached block '{block.label}' {block.id} to agent '{args.agent}'; it is in: {', '.join(block.agents)}")
    return 0


def _detach(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.blocks import block_detach

    block = run_with_scope(
        settings, lambda scope: block_detach(scope, args.agent, args.block), principal=args.principal
    )
    left = ", ".join(block.agents) or "no agent (it stays; see 'engram blocks list')"
    print(f"detached block '{block.label}' {block.id} from agent '{args.agent}'; it is in: {left}")
    return 0


def _delete(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.blocks import block_delete

    if (
        refused := refused_deletion(
            args.yes, f"delete block {args.block} and its history, from every agent that has it?"
        )
    ) is not None:
        return refused
    deleted = run_with_scope(settings, lambda scope: block_delete(scope, args.block), principal=args.principal)
    detached = ", ".join(deleted.detached_from) or "no agent"
    print(f"deleted block '{deleted.label}' {deleted.id} (it was in: {detached})")
    return 0


def _history(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.core import core_memory_history

    found = run_with_scope(
        settings,
        lambda scope: core_memory_history(scope, args.label, agent=args.agent, limit=args.limit),
        principal=args.principal,
    )
    print(f"block '{found.label}' of agent '{found.agent}' ({found.block_id}), newest first:")
    for version in found.versions:
        when = f"{version.created_at:%Y-%m-%d %H:%M:%S}" if version.created_at else "unknown time"
        print(f"version {version.version}\t{when}\t{version.actor}\t{version.chars} chars")
        for line in version.value.splitlines() or [""]:
            print(f"    {line}")
    if found.older:
        print(f"({found.older} older versions not shown; use --limit)")
    return 0


def _undo(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.core import undo

    block = run_with_scope(
        settings, lambda scope: undo(scope, args.agent, args.label, actor=UNDO_ACTOR), principal=args.principal
    )
    print(f"block '{block.label}' of agent '{block.agent}' is back to its previous text, as version {block.version}:")
    for line in block.value.splitlines() or [""]:
        print(f"    {line}")
    return 0
