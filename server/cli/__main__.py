"""`python -m engram.server.cli`: the `engram` command without its console script."""

from engram.server.cli import main

raise SystemExit(main())
