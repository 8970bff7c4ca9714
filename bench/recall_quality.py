"""Retrieval quality of conversation_search: turn-level evidence recall over long multi-session chats.

The data (bench/data/recall_quality.json) holds four users' month-long histories with an assistant (one
conversation per session, with its date) and questions whose evidence turns are known. Every user is one
agent; each question searches that agent's whole history, the question text as the query. Prints JSON:
recall@5 and recall@10 (share of a question's evidence turns in the top 5 / 10), overall and per kind,
for hybrid (the tool's default), vector-only and keyword-only.

    python -m bench.recall_quality
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import text

from bench.quality import evidence_recall, recall_summary, run
from engram.tools.ingest.history import import_history
from engram.tools.memory import recall
from engram.tools.memory.agents import resolve_agent
from engram.tools.memory.hybrid import SearchMode
from engram.tools.scope import Scope

DATA = Path(__file__).parent / "data" / "recall_quality.json"
MODES: tuple[SearchMode, ...] = ("hybrid", "vector", "keyword")


async def load(scope: Scope, data: dict[str, Any], work_dir: Path) -> dict[str, str]:
    """Import every user's sessions (a JSONL per user, through `engram import`'s code); message id -> turn id."""
    turn_of: dict[str, str] = {}
    for user in data["users"]:
        lines = []
        for session in user["sessions"]:
            start = datetime.fromisoformat(session["date"].replace("Z", "+00:00"))
            for number, turn in enumerate(session["turns"]):
                moment = (start + timedelta(minutes=number)).isoformat()
                line = {"conversation": session["session"], "role": turn["role"], "content": turn["text"]}
                lines.append(json.dumps(line | {"created_at": moment}))
        path = work_dir / f"{user['user']}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        await import_history(scope, user["user"], path)
        by_position = {
            (session["session"], ordinal): turn["id"]
            for session in user["sessions"]
            for ordinal, turn in enumerate(session["turns"], start=1)
        }
        async with scope.sessions.begin() as session:
            agent = await resolve_agent(session, scope, user["user"])
            rows = await session.execute(
                text(
                    "SELECT m.id, c.name, m.ordinal FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                    "WHERE m.agent_id = :agent"
                ),
                {"agent": agent.id},
            )
            for row in rows:
                turn_of[str(row.id)] = by_position[(row.name, row.ordinal)]
    return turn_of


async def evaluate(scope: Scope) -> dict[str, Any]:
    data = json.loads(DATA.read_text())
    with tempfile.TemporaryDirectory(prefix="engram-recall-") as work_dir:
        turn_of = await load(scope, data, Path(work_dir))
    from engram.storage.messages import MessageFilter

    agents = {}
    async with scope.sessions.begin() as session:
        for user in data["users"]:
            agents[user["user"]] = await resolve_agent(session, scope, user["user"])
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for question in data["questions"]:
        evidence = set(question["evidence"])
        for mode in MODES:
            ranked, _ = await recall.search_messages(
                scope, agents[question["user"]], question["query"], MessageFilter(), mode=mode, size=0
            )
            turns = [turn_of[str(message_id)] for message_id, _ in ranked[:10]]
            rows[mode].append(evidence_recall(question["kind"], evidence, turns))
    return {mode: recall_summary(results, kinds="kind") for mode, results in rows.items()}


if __name__ == "__main__":
    anyio.run(run, evaluate)
