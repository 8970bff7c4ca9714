"""`engram tokens create|list|revoke`: the bearer tokens that `engram serve --transport http` accepts."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from engram.server.cli.operation import run_with_scope

if TYPE_CHECKING:
    from engram.server.settings import Settings
    from engram.storage.tokens import TokenInfo
    from engram.tools.scope import Scope


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    tokens = commands.add_parser("tokens", help="create, list or revoke bearer tokens for HTTP")
    actions = tokens.add_subparsers(title="actions", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", parents=[common], help="create a token (shown once) for --principal (default: the token's name)"
    )
    create.add_argument("name", help="what to call the token (unique)")
    create.set_defaults(run=_create)
    listing = actions.add_parser("list", parents=[common], help="list tokens (never their values)")
    listing.set_defaults(run=_list)
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a token at once")
    revoke.add_argument("name")
    revoke.set_defaults(run=_revoke)


def _create(settings: Settings, args: argparse.Namespace) -> int:
    from engram.storage.tokens import create

    async def make(scope: Scope) -> str:
        async with scope.sessions.begin() as session:
            return await create(session, args.name, args.principal or args.name)

    token = run_with_scope(settings, make)
    print(f"token '{args.name}' for principal '{args.principal or args.name}' (shown only now; keep it secret):")
    print(token)
    return 0


def _list(settings: Settings, _args: argparse.Namespace) -> int:
    from engram.storage.tokens import listing

    async def read(scope: Scope) -> list[TokenInfo]:
        async with scope.sessions.begin() as session:
            return await listing(session)

    found = run_with_scope(settings, read)
    if not found:
        print("no tokens yet ('engram tokens create NAME' makes one)")
    for info in found:
        state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
        print(f"{info.name}\tprincipal {info.principal}\tcreated {info.created_at:%Y-%m-%d %H:%M}\t{state}")
    return 0


def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    from engram.storage.tokens import revoke

    async def drop(scope: Scope) -> bool:
        async with scope.sessions.begin() as session:
            return await revoke(session, args.name)

    if not run_with_scope(settings, drop):
        print(f"engram: no active token named '{args.name}' ('engram tokens list' shows them)", file=sys.stderr)
        return 1
    print(f"revoked token '{args.name}'")
    return 0
