"""Data in: documents into archival memory, chat exports and Claude Code hook events into recall memory."""
