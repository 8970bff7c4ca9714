"""`engram backup` and `engram restore`: the whole database, with PostgreSQL's own tools (`storage.backup`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from engram.storage.errors import ConflictError

if TYPE_CHECKING:
    from engram.server.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    backup = commands.add_parser(
        "backup", parents=[common], help="back up the whole database to a file (pg_dump; safe while servers run)"
    )
    backup.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="the backup file to write")
    backup.set_defaults(run=_backup)

    restore = commands.add_parser(
        "restore", parents=[common], help="replace the whole database with a backup (stop servers using it first)"
    )
    restore.add_argument("file", type=Path, metavar="FILE", help="a file 'engram backup' wrote")
    restore.add_argument(
        "--force", action="store_true", help="replace a database that holds memory already (it is lost)"
    )
    restore.set_defaults(run=_restore)


def _url(settings: Settings) -> str:
    """The database's URL, starting the embedded server (and making the schema current) when none is set."""
    from engram.storage.database import prepare_schema, resolve_url

    url, _embedded = resolve_url(settings.sqlalchemy_url(), settings.data_dir)
    prepare_schema(url)
    return url


def _backup(settings: Settings, args: argparse.Namespace) -> int:
    from engram.storage import backup

    url = _url(settings)
    held = backup.contents(url)
    target: Path = args.output
    backup.dump(url, target)
    size = target.stat().st_size
    print(
        f"backed up {held.agents} agents, {held.passages} passages and {held.messages} messages to {target} "
        f"({size / 1_000_000:.1f} MB)"
    )
    return 0


def _restore(settings: Settings, args: argparse.Namespace) -> int:
    from engram.storage import backup
    from engram.storage.database import prepare_schema

    url = _url(settings)
    backup.check_backup(args.file)
    held = backup.contents(url)
    if held.rows and not args.force:
        raise ConflictError(
            f"the database holds memory already ({held.agents} agents, {held.passages} passages, {held.messages} "
            "messages); pass --force to replace all of it with the backup, or restore into an empty database"
        )
    backup.restore(url, args.file)
    prepare_schema(url)  # a backup made by an older Engram is brought up to this one's schema
    now = backup.contents(url)
    print(f"restored {now.agents} agents, {now.passages} passages and {now.messages} messages from {args.file}")
    return 0
