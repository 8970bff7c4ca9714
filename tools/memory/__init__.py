"""The memory tiers: agents, core memory, archival memory, recall memory, and embedding recorded messages."""
