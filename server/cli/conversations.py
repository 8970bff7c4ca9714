"""`engram conversations list|delete`: an agent's conversations in recall memory."""

from __future__ import annotations

import argparse
from datetime import UTC
from typing import TYPE_CHECKING

from engram.server.cli.operation import refused_deletion, run_with_scope

if TYPE_CHECKING:
    from engram.server.settings import Settings
    from engram.tools.memory.recall import ConversationInfo
    from engram.tools.scope import Scope

PAGE = 100


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    conversations = commands.add_parser("conversations", help="list or delete an agent's conversations")
    actions = conversations.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", parents=[common], help="list an agent's conversations, most recently active first"
    )
    listing.add_argument("--agent", help="whose conversations (default: the default agent)")
    listing.set_defaults(run=_list)
    delete = actions.add_parser(
        "delete", parents=[common], help="delete a conversation with its messages and summaries"
    )
    delete.add_argument("name", help="the conversation's name, as `engram conversations list` shows it")
    delete.add_argument("--agent", help="whose conversation (default: the default agent)")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(run=_delete)


def _list(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.recall import list_conversations

    async def every_conversation(scope: Scope) -> tuple[str, list[ConversationInfo]]:
        listing = await list_conversations(scope, args.agent, limit=PAGE)
        found = list(listing.conversations)
        while len(found) < listing.total and listing.conversations:
            listing = await list_conversations(scope, args.agent, limit=PAGE, offset=len(found))
            found.extend(listing.conversations)
        return listing.agent, found

    agent, found = run_with_scope(settings, every_conversation, principal=args.principal)
    if not found:
        print(f"agent '{agent}' has no conversations yet")
    for conversation in found:
        last = (conversation.last_message_at or conversation.created_at).astimezone(UTC)
        print(
            f"{conversation.name}\t{conversation.title}\t{conversation.source}\t"
            f"{counted(conversation.messages, 'message')}\t{last:%Y-%m-%d %H:%M} UTC"
        )
    return 0


def _delete(settings: Settings, args: argparse.Namespace) -> int:
    from engram.tools.memory.recall import conversation_delete

    if (
        refused := refused_deletion(args.yes, f"delete conversation '{args.name}' and all of its messages?")
    ) is not None:
        return refused
    deleted = run_with_scope(
        settings, lambda scope: conversation_delete(scope, args.name, args.agent), principal=args.principal
    )
    print(
        f"deleted conversation '{deleted.conversation}' of agent '{deleted.agent}' "
        f"({counted(deleted.messages_deleted, 'message')}, {counted(deleted.summaries_deleted, 'summary')})"
    )
    return 0


def counted(number: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{number} {noun if number == 1 else plural}"
