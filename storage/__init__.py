"""Engram's storage: PostgreSQL schema, migrations, repositories and the embedded server."""
