"""The storage repositories the memory operations call, imported on first use rather than at import.

Defining the tools is all `engram serve` needs to answer `initialize`; that must not pay for importing
SQLAlchemy (~0.25 s) while the database opens in the background. The first call that touches a
repository imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engram.storage import lazy_module

if TYPE_CHECKING:
    from engram.storage import agents as agent_repo
    from engram.storage import blocks as block_repo
    from engram.storage import messages as message_repo
    from engram.storage import passages as passage_repo
    from engram.storage import search
    from engram.storage import summaries as summary_repo
else:
    agent_repo = lazy_module("engram.storage.agents")
    block_repo = lazy_module("engram.storage.blocks")
    message_repo = lazy_module("engram.storage.messages")
    passage_repo = lazy_module("engram.storage.passages")
    search = lazy_module("engram.storage.search")
    summary_repo = lazy_module("engram.storage.summaries")

__all__ = ["agent_repo", "block_repo", "message_repo", "passage_repo", "search", "summary_repo"]
