"""Alembic migrations. HEAD names the newest revision so a start-up can skip Alembic when already current."""

HEAD = "0010"
