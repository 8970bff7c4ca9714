"""`engram db status|stop`: the embedded PostgreSQL itself, which Engram processes share and the last one to exit
stops. A process killed without its exit handlers is pruned from the server's users at the next start; `db stop`
stops a server that only such processes used, without starting anything."""

from __future__ import annotations

import argparse
import os

from engram.server.settings import Settings
from engram.storage.errors import ConfigurationError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    db = commands.add_parser("db", help="the embedded PostgreSQL: whether it runs and who uses it; stop it")
    actions = db.add_subparsers(title="actions", metavar="ACTION", required=True)
    status = actions.add_parser("status", parents=[common], help="whether it runs, and which Engram processes use it")
    status.set_defaults(run=_status)
    stop = actions.add_parser(
        "stop", parents=[common], help="stop it when no live Engram process uses it (--force: even then)"
    )
    stop.add_argument("--force", action="store_true", help="stop it even while Engram processes use it")
    stop.set_defaults(run=_stop)


def _pgdata(settings: Settings) -> os.PathLike[str]:
    if settings.sqlalchemy_url() is not None:
        raise ConfigurationError("Engram uses an external database (database_url); 'engram db' is for the embedded one")
    from engram.storage.embedded import PG_SUBDIR

    return (settings.data_dir / PG_SUBDIR).expanduser().resolve()


def _status(settings: Settings, _args: argparse.Namespace) -> int:
    from pathlib import Path

    from engram.storage.embedded import postmaster_pid, prune_handles, users

    pgdata = Path(_pgdata(settings))
    pid = postmaster_pid(pgdata)
    if pid is None:
        print(f"the embedded PostgreSQL in {pgdata} is not running")
        return 0
    stale = prune_handles(pgdata)
    live = users(pgdata)
    print(
        f"the embedded PostgreSQL in {pgdata} runs (pid {pid}); "
        + (f"used by Engram processes {', '.join(map(str, live))}" if live else "no live Engram process uses it")
        + (f"; removed {len(stale)} gone processes from its users" if stale else "")
    )
    return 0


def _stop(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from engram.storage.embedded import stop_server, users

    pgdata = Path(_pgdata(settings))
    live = users(pgdata)
    if live and not args.force:
        raise ConfigurationError(
            f"Engram processes {', '.join(map(str, live))} use the embedded PostgreSQL in {pgdata}; stop them (it "
            "stops with the last one), or pass --force to stop it under them"
        )
    if stop_server(pgdata):
        print(f"stopped the embedded PostgreSQL in {pgdata}")
    else:
        print(f"the embedded PostgreSQL in {pgdata} was not running")
    return 0
