"""Engram's operations on memory. They take a `Scope` (database, owner, limits) and know nothing of MCP,
HTTP or the CLI: every door in `engram.server` calls these same functions.

- `memory/`: the memory tiers — agents (named memory namespaces), core memory blocks, archival passages,
  recall (recorded conversations), and the worker that embeds recorded messages.
- `loop/`: the built-in agent behind `send_message` — its turn loop, the prompt it sees, the functions
  offered to its model, the recursive summarizer and the `LLM` seam.
- `ingest/`: data in and out — documents and chunking, chat-export importers, Claude Code hook events, and
  whole agents exported and imported (Engram's own files, Letta's agent files, the MCP memory server's graph).
- `arguments.py`: the argument types and checks every door shares; `scope.py`: what an operation runs
  with; `repositories.py`: the storage repositories, imported on first use.
"""
