"""Alembic environment: always run on a connection that storage.migrate hands over (under its advisory lock)."""

from __future__ import annotations

from alembic import context

from engram.storage.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through storage.migrate.upgrade(), which passes an open connection")

context.configure(connection=connection, target_metadata=Base.metadata, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
