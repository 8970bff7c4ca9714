"""Memory that reaches the model: how much of a question's evidence memory_context injects at the default
budget, at what cost in tokens, and whether prompts about nothing in memory get nothing recalled.

- locomo-dev (`../shared/eval/locomo-dev.json`, LoCoMo's CC BY-NC data: read from there, never copied into
  the project): each conversation is one agent, each of its sessions one Engram conversation, each turn a
  message `speaker: text` dated with its session. Every question of categories 1-4 is the message; a
  question's evidence turns are looked for among the messages the context shows (a recalled turn and the
  turns around it). Reported: the mean share of a question's evidence in the context, the share of questions
  with all of it and with some of it, per category too, and the context's tokens (cl100k_base).
- The archival quality set (bench/data/archival_quality.json): its notes are one agent's archival memory;
  the same figures for each question's answer passages.
- UNRELATED prompts (below: coding requests, general questions, short replies such as "continue") asked of
  every agent (the archival set's agent only the ones that are not about code: see below): the share that got
  any recalled item (the relevance floor should make it 0).
- `--floor` adds where the floor sits: for each prompt, the best cosine similarity of any candidate (unrelated
  prompts) or of a candidate showing its evidence (questions), and the shares either side of other floors.

    python -m bench.context [--locomo PATH] [--floor]    # JSON; ~3 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import anyio

from bench import locomo_dev
from bench.quality import mean
from bench.tokens import cl100k_base
from engram.tools.memory import archival
from engram.tools.memory.agents import agent_create, resolve_agent
from engram.tools.memory.context import RELEVANCE_FLOOR, MemoryContext, memory_context, recalled
from engram.tools.memory.hybrid import embedding_of
from engram.tools.scope import Scope

LOCOMO = Path(__file__).resolve().parents[2] / "shared" / "eval" / "locomo-dev.json"
ARCHIVAL = Path(__file__).parent / "data" / "archival_quality.json"
NOTES = "notes"  # the agent holding the archival set
FLOORS = (0.30, 0.35, 0.38, 0.40, 0.42, 0.45, 0.50)

# Prompts about nothing these agents hold: what a coding assistant is asked all day, general questions, and
# the short replies that carry no topic. Written for this bench, not drawn from the evaluation sets. The
# archival set's agent is a data engineer's notes, to which coding requests can truly relate ("webpack: Module
# not found" and "Node 20 breaks the old webpack 4 config"): it is asked the other prompts only.
CODING = [
    "Add a --verbose flag to the CLI parser and pass it through to the logger.",
    "Why does the borrow checker say cannot borrow `buf` as mutable more than once at a time?",
    "Write a unit test for parse_duration that covers negative values.",
    "Refactor the payment service so that the HTTP client is injected instead of created inside.",
    "The CI job fails with npm ERR! code ERESOLVE unable to resolve dependency tree; fix it.",
    "Convert this callback-based Node.js module to async/await.",
    "What is the time complexity of heapsort in the worst case?",
    "Rename the variable usr to user across the whole module.",
    "Set up ESLint with the recommended TypeScript rules and a pre-commit hook.",
    "Explain the difference between a mutex and a semaphore.",
    "Generate a Dockerfile for a Go 1.22 web service with a distroless final image.",
    "webpack: Module not found: Error: Can't resolve 'fs' in src/utils. How do I fix it?",
    "Add cursor pagination to the GET /invoices endpoint.",
    "How do I squash the last three git commits into one?",
    "Implement binary search over a sorted array in TypeScript with generics.",
    "Make the sidebar collapse into a hamburger menu below 768px using CSS grid.",
    "Bump Kotlin to 2.0 and fix the deprecation warnings in the Gradle build.",
    "Write a regular expression that matches IPv6 addresses, including compressed forms.",
    "Find out why this React component re-renders on every keystroke.",
    "Create a GitHub Actions workflow that runs pytest on Python 3.12 and uploads coverage.",
    "What does the segfault in libssl at EVP_DigestFinal_ex usually mean?",
    "Replace the hand-written retry loop with tenacity and exponential backoff.",
    "Add type hints to utils/strings.py and make mypy --strict pass.",
    "Why is my Kubernetes pod stuck in CrashLoopBackOff with exit code 137?",
]
OTHER = [
    "What is the boiling point of liquid nitrogen in kelvin?",
    "Explain quantum entanglement in two sentences.",
    "Who wrote One Hundred Years of Solitude?",
    "Convert 72 degrees Fahrenheit to Celsius.",
    "How many moons does Jupiter have?",
    "Summarise the main causes of the First World War.",
    "What is the derivative of x^3 * sin(x)?",
    "Translate 'where is the train station' into Portuguese.",
    "continue",
    "yes, go ahead",
    "run the tests again",
    "looks good, commit it",
    "undo that last change",
    "thanks!",
    "ok",
    "try again with a smaller batch size",
]
UNRELATED = CODING + OTHER


def unrelated_to(agent: str) -> list[str]:
    return OTHER if agent == NOTES else UNRELATED


async def load_locomo(scope: Scope, samples: list[dict[str, Any]], work_dir: Path) -> dict[str, str]:
    """Each conversation as an agent, as bench/locomo_dev.py imports it but without the images' captions;
    "message:<id>" -> dia_id."""
    turn_of: dict[str, str] = {}
    for sample in samples:
        dia_ids = await locomo_dev.load(scope, sample, work_dir, captions=False)
        turn_of |= {f"message:{message_id}": dia_id for message_id, dia_id in dia_ids.items()}
    return turn_of


async def load_archival(scope: Scope, corpus: dict[str, Any], agent: str) -> dict[str, str]:
    """The notes as one agent's passages; 'passage:<id>' -> the note's key."""
    await agent_create(scope, agent)
    keys = {}
    for item in corpus["passages"]:
        stored = await archival.archival_memory_insert(scope, item["text"], tags=item["tags"], agent=agent)
        keys[f"passage:{stored.id}"] = item["key"]
    return keys


def shown(context: MemoryContext, names: dict[str, str]) -> set[str]:
    """The evaluation's names (dia_ids, note keys) of what the context shows."""
    return {names[key] for item in context.items for key in item.ids if key in names}


def row(kind: Any, evidence: set[str], found: set[str], context: MemoryContext, encoding: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "share": len(evidence & found) / len(evidence),
        "all": float(evidence <= found),
        "any": float(bool(evidence & found)),
        "tokens": len(encoding.encode(context.text)),
        "estimated": context.tokens,
        "recalled": context.recalled,
    }


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tokens = [r["tokens"] for r in rows]
    kinds = sorted({r["kind"] for r in rows})
    return {
        "questions": len(rows),
        "evidence_share": mean("share", rows),
        "all_evidence": mean("all", rows),
        "any_evidence": mean("any", rows),
        "by_category": {
            str(kind): {
                "evidence_share": mean("share", [r for r in rows if r["kind"] == kind]),
                "all_evidence": mean("all", [r for r in rows if r["kind"] == kind]),
            }
            for kind in kinds
        },
        "tokens_mean": round(statistics.mean(tokens)),
        "tokens_p50": round(statistics.median(tokens)),
        "tokens_max": max(tokens),
        "estimated_over_counted": round(sum(r["estimated"] for r in rows) / sum(tokens), 3),
        "recalled_items_mean": round(statistics.mean(r["recalled"] for r in rows), 1),
    }


async def best_similarity(scope: Scope, agent: str, query: str, names: dict[str, str], evidence: set[str]) -> float:
    """The best cosine similarity of a candidate showing some of `evidence` (of any candidate, when `evidence` is
    empty): what the relevance floor is compared with."""
    async with embedding_of(scope, query, "hybrid") as vector, scope.sessions.begin() as session:
        assert vector is not None  # a hybrid query is embedded
        agent_row = await resolve_agent(session, scope, agent)
        pieces = await recalled(session, scope, agent_row, query, vector, None, floor=0.0)
    scores = [
        piece.similarity or 0.0
        for piece in pieces
        if not evidence or evidence & {names[key] for key in piece.ids if key in names}
    ]
    return max(scores, default=0.0)


async def evaluate(scope: Scope, samples: list[dict[str, Any]], floor_report: bool) -> dict[str, Any]:
    encoding = cl100k_base()
    corpus = json.loads(ARCHIVAL.read_text())
    with tempfile.TemporaryDirectory(prefix="engram-context-") as work_dir:
        names = await load_locomo(scope, samples, Path(work_dir))
    names |= await load_archival(scope, corpus, NOTES)
    agents = [sample["sample_id"] for sample in samples] + [NOTES]

    locomo_rows, archival_rows, unrelated_rows = [], [], []
    questions: list[tuple[str, str, set[str]]] = []
    for sample in samples:
        for qa in sample["qa"]:
            if qa.get("category") in (1, 2, 3, 4) and qa["evidence"]:
                context = await memory_context(scope, qa["question"], sample["sample_id"])
                evidence = set(qa["evidence"])
                locomo_rows.append(row(qa["category"], evidence, shown(context, names), context, encoding))
                questions.append((sample["sample_id"], qa["question"], evidence))
    for question in corpus["questions"]:
        context = await memory_context(scope, question["query"], NOTES)
        evidence = set(question["answers"])
        archival_rows.append(row(question["kind"], evidence, shown(context, names), context, encoding))
        questions.append((NOTES, question["query"], evidence))
    for agent in agents:
        for prompt in unrelated_to(agent):
            context = await memory_context(scope, prompt, agent)
            unrelated_rows.append({"recalled": context.recalled, "tokens": len(encoding.encode(context.text))})

    result: dict[str, Any] = {
        "relevance_floor": RELEVANCE_FLOOR,
        "budget_tokens": 1500,
        "locomo_dev": report(locomo_rows),
        "archival_quality": report(archival_rows),
        "unrelated": {
            "prompts": len(unrelated_rows),
            "with_recalled_items": sum(1 for r in unrelated_rows if r["recalled"]),
            "tokens_mean": round(statistics.mean(r["tokens"] for r in unrelated_rows)),
        },
    }
    if floor_report:
        result["floor"] = await floors(scope, agents, questions, names)
    return result


async def floors(
    scope: Scope, agents: list[str], questions: list[tuple[str, str, set[str]]], names: dict[str, str]
) -> dict[str, Any]:
    """Where the floor sits: unrelated prompts' best candidates against questions' best evidence (its recalled
    turn, or the turn recalled with it), by cosine similarity."""
    unrelated = [
        await best_similarity(scope, agent, prompt, names, set()) for agent in agents for prompt in unrelated_to(agent)
    ]
    evidence = [await best_similarity(scope, agent, query, names, wanted) for agent, query, wanted in questions]
    found = [score for score in evidence if score > 0]

    def quantiles(scores: list[float]) -> dict[str, float]:
        ordered = sorted(scores)
        return {f"p{q}": round(ordered[min(len(ordered) - 1, len(ordered) * q // 100)], 3) for q in (50, 90, 99)} | {
            "max": round(ordered[-1], 3)
        }

    return {
        "unrelated_best": quantiles(unrelated),
        "evidence_best": quantiles(found) | {"min": round(min(found), 3), "questions_with_evidence_found": len(found)},
        "at_floor": {
            str(floor): {
                "unrelated_with_recalled": round(sum(score >= floor for score in unrelated) / len(unrelated), 3),
                "questions_evidence_kept": round(sum(score >= floor for score in evidence) / len(evidence), 3),
            }
            for floor in FLOORS
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locomo", type=Path, default=LOCOMO, help="locomo-dev.json (default: ../shared/eval)")
    parser.add_argument("--floor", action="store_true", help="also report where the relevance floor sits")
    args = parser.parse_args()

    async def run() -> None:
        from engram.server.runtime import open_runtime
        from engram.server.settings import load_settings

        with tempfile.TemporaryDirectory(prefix="engram-context-") as data_dir:
            settings = load_settings(overrides={"data_dir": data_dir}, environ={})
            async with open_runtime(settings) as runtime:
                samples = json.loads(args.locomo.read_text())
                print(json.dumps(await evaluate(await runtime.scope(), samples, args.floor), indent=2))

    anyio.run(run)


if __name__ == "__main__":
    main()
