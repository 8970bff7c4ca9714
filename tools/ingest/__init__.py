"""Data in and out: documents into archival memory, chat exports and Claude Code hook events into recall memory,
and whole agents out and in (Engram's own files, Letta's agent files, the MCP memory server's graph)."""
