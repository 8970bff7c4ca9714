"""Retrieval quality of conversation_search on real multi-session dialogue: LoCoMo's dev conversations.

The data stays in the evaluation folder beside the project (`../shared/eval/locomo-dev.json`, CC BY-NC 4.0:
evaluation only, never copied into the project); `--data` or ENGRAM_LOCOMO names another copy. Each
conversation is imported through `engram import`'s code as one agent: one Engram conversation per session,
each turn a message `speaker: text` at its session's date and time (a minute apart, to keep their order),
with the shared image's caption when there is one (`--no-captions`: without; the image itself is what the
turn shared, and its caption is the only text of it there is). Every question of categories 1-4 is asked
as the query of `conversation_search` with its default settings and `limit` 10; a question's score is the
share of its evidence turns among the hits themselves (not their neighbours). Prints JSON: recall@5 and
recall@10, overall and per category (1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop), for the tool's
hybrid search and for each leg alone.

    python -m bench.locomo_dev [--data PATH] [--no-captions]    # ~8 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import text

from bench.quality import evidence_recall, recall_summary, run
from engram.storage.messages import MessageFilter
from engram.tools.ingest.history import import_history
from engram.tools.memory import recall
from engram.tools.memory.agents import resolve_agent
from engram.tools.memory.hybrid import SearchMode
from engram.tools.scope import Scope

DATA = Path(__file__).resolve().parents[2] / "shared" / "eval" / "locomo-dev.json"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
LEGS: tuple[SearchMode, ...] = ("vector", "keyword")
DEPTH = 10


def session_moment(value: str) -> datetime:
    """LoCoMo's session time, e.g. '1:56 pm on 8 May, 2023' (taken as UTC)."""
    return datetime.strptime(value, "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def turn_text(turn: dict[str, Any], *, captions: bool = True) -> str:
    """What a person would have recorded: who said it, what they said, and what their photo showed."""
    said = f"{turn['speaker']}: {turn['text']}"
    caption = turn.get("blip_caption") if captions else None
    return f"{said} [shares {caption}]" if caption else said


def export_lines(sample: dict[str, Any], *, captions: bool = True) -> tuple[list[str], dict[tuple[str, int], str]]:
    """The conversation as JSON Lines for `engram import`, and each message's (session, ordinal) -> dia_id."""
    conversation = sample["conversation"]
    roles = {conversation["speaker_a"]: "user", conversation["speaker_b"]: "assistant"}
    lines: list[str] = []
    turn_at: dict[tuple[str, int], str] = {}
    number = 1
    while f"session_{number}" in conversation:
        name = f"session-{number}"
        start = session_moment(conversation[f"session_{number}_date_time"])
        for ordinal, turn in enumerate(conversation[f"session_{number}"], start=1):
            moment = start + timedelta(minutes=ordinal - 1)
            said = turn_text(turn, captions=captions)
            record = {"conversation": name, "role": roles.get(turn["speaker"], "user"), "content": said}
            lines.append(json.dumps(record | {"created_at": moment.isoformat()}))
            turn_at[name, ordinal] = turn["dia_id"]
        number += 1
    return lines, turn_at


async def load(scope: Scope, sample: dict[str, Any], work_dir: Path, *, captions: bool) -> dict[str, str]:
    """Import one conversation as an agent named after it; message id -> dia_id."""
    lines, turn_at = export_lines(sample, captions=captions)
    path = work_dir / f"{sample['sample_id']}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    await import_history(scope, sample["sample_id"], path)
    async with scope.sessions.begin() as session:
        agent = await resolve_agent(session, scope, sample["sample_id"])
        rows = await session.execute(
            text(
                "SELECT m.id, c.name, m.ordinal FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                "WHERE m.agent_id = :agent"
            ),
            {"agent": agent.id},
        )
        return {str(row.id): turn_at[row.name, row.ordinal] for row in rows}


def read_samples(data: Path = DATA) -> list[dict[str, Any]]:
    return list(json.loads(data.read_text()))


async def evaluate(scope: Scope, samples: list[dict[str, Any]], *, captions: bool = True) -> dict[str, Any]:
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in ("hybrid", *LEGS)}
    with tempfile.TemporaryDirectory(prefix="engram-locomo-") as work_dir:
        for sample in samples:
            turn_of = await load(scope, sample, Path(work_dir), captions=captions)
            async with scope.sessions.begin() as session:
                agent = await resolve_agent(session, scope, sample["sample_id"])
            for question in sample["qa"]:
                evidence = set(question["evidence"])
                if question["category"] not in CATEGORIES or not evidence:
                    continue
                page = await recall.conversation_search(
                    scope, str(question["question"]), limit=DEPTH, agent=sample["sample_id"]
                )
                turns = [turn_of[hit.id] for hit in page.results]
                rows["hybrid"].append(evidence_recall(CATEGORIES[question["category"]], evidence, turns))
                for mode in LEGS:
                    ranked, _ = await recall.search_messages(
                        scope, agent, str(question["question"]), MessageFilter(), mode=mode, size=0
                    )
                    turns = [turn_of[str(message_id)] for message_id, _ in ranked[:DEPTH]]
                    rows[mode].append(evidence_recall(CATEGORIES[question["category"]], evidence, turns))
    return {mode: recall_summary(results, kinds="category") for mode, results in rows.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("ENGRAM_LOCOMO", DATA)))
    parser.add_argument("--no-captions", action="store_true", help="leave shared images' captions out")
    arguments = parser.parse_args()

    samples = read_samples(arguments.data)

    async def with_data(scope: Scope) -> dict[str, Any]:
        return await evaluate(scope, samples, captions=not arguments.no_captions)

    anyio.run(run, with_data)
