"""The reference MCP memory server's knowledge graph (`memory.jsonl`, and the legacy `memory.json`, which holds the
same lines) into an agent's archival memory.

Each line is `{"type": "entity", "name", "entityType", "observations"}` or `{"type": "relation", "from", "to",
"relationType"}`. An entity becomes one passage (its name, type and observations, tagged with its type), a
relation one passage ("A relationType B", tagged 'relation'). Importing again adds only what is new: an entity
whose observations changed replaces its earlier passage; passages already stored are left as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from engram.storage import sha256_hex
from engram.storage.errors import InvalidInputError
from engram.tools.arguments import MAX_TAG_CHARS, check_agent_name
from engram.tools.ingest.transfer import AgentsImported
from engram.tools.memory.agents import resolve_agent
from engram.tools.repositories import agent_repo, block_repo, passage_repo, search
from engram.tools.scope import Scope

if TYPE_CHECKING:
    from engram.storage import transfer as transfer_repo
else:
    from engram.storage import lazy_module

    transfer_repo = lazy_module("engram.storage.transfer")

MAX_LINE_BYTES = 10_000_000
BATCH = 256  # lines embedded and stored at a time
RELATION_TAG = "relation"


@dataclass(frozen=True)
class _Item:
    text: str
    tag: str
    metadata: dict[str, Any]
    entity: str | None  # the entity's name (relations: None)


async def import_graph(
    scope: Scope, file: IO[bytes], as_name: str | None, *, replace: bool = False, where: str = "the file"
) -> AgentsImported:
    """Store the graph's entities and relations as passages of the agent `as_name` (created if new; with
    `replace`, an existing agent of that name is deleted first), in one transaction."""
    if as_name is None:
        raise InvalidInputError(
            f"{where} is a memory graph, which names no agent; pass --as NAME for the agent to hold it"
        )
    check_agent_name(as_name)
    report = AgentsImported(format="memory-graph", agents=[as_name])
    source = where.replace("\\", "/").rsplit("/", 1)[-1][:200]
    seen: set[str] = set()
    unchanged = replaced = repeated = 0
    async with scope.sessions.begin() as session:
        if replace:
            existing = await agent_repo.get_by_name(session, scope.owner_id, as_name)
            if existing is not None:
                own = [block.id for block in await block_repo.of_agent(session, scope.owner_id, existing.id)]
                await agent_repo.delete_agent(session, scope.owner_id, existing.id)
                await block_repo.delete_unlinked(session, scope.owner_id, own)
        agent = await resolve_agent(session, scope, as_name, create=True)
        dimension = 0
        for batch in _batches(_items(file, where, scope.max_input_chars)):
            fresh: list[_Item] = []
            for item in batch:
                if item.text in seen:
                    repeated += 1
                else:
                    seen.add(item.text)
                    fresh.append(item)
            stored = await passage_repo.existing_ids(
                session, scope.owner_id, agent.id, [sha256_hex(item.text) for item in fresh]
            )
            new = [item for item in fresh if sha256_hex(item.text) not in stored]
            unchanged += len(fresh) - len(new)
            earlier = await transfer_repo.entity_passages(
                session, scope.owner_id, agent.id, [item.metadata["name"] for item in new if item.entity is not None]
            )
            stale = [passage_id for found in earlier.values() for passage_id, _hash in found]
            replaced += len(earlier)
            await transfer_repo.delete_passages(session, scope.owner_id, agent.id, stale)
            if not new:
                continue
            vectors = await scope.embedder.embed([item.text for item in new])
            dimension = len(vectors[0])
            await passage_repo.insert_many(
                session,
                scope.owner_id,
                agent.id,
                scope.embedder.model,
                [
                    passage_repo.NewPassage(
                        text=item.text, embedding=vector, tags=[item.tag], metadata=item.metadata, source=source
                    )
                    for item, vector in zip(new, vectors, strict=True)
                ],
            )
            report.passages += len(new)
        if dimension:
            await search.index_when_large(
                session,
                "passages",
                [agent.id],
                model=scope.embedder.model,
                dimension=dimension,
                exact_scan_limit=scope.exact_scan_limit,
            )
    if unchanged:
        report.skipped.append(f"{unchanged} entities and relations already stored")
    if repeated:
        report.skipped.append(f"{repeated} lines repeating an earlier line of the file")
    if replaced:
        report.notes.append(f"{replaced} entities whose observations changed: their earlier passages were replaced")
    return report


def _batches(items: Iterator[_Item]) -> Iterator[list[_Item]]:
    batch: list[_Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _items(file: IO[bytes], where: str, max_chars: int) -> Iterator[_Item]:
    number = 0
    while raw := file.readline(MAX_LINE_BYTES + 1):
        number += 1
        at = f"{where} line {number}"
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise InvalidInputError(f"{at} is over {MAX_LINE_BYTES // 1_000_000} MB; a graph's lines are far shorter")
        try:
            line = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError:
            raise InvalidInputError(f"{at} is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            if not raw.strip():
                continue
            raise InvalidInputError(f"{at} is not valid JSON ({exc.msg}); the file may be cut short") from None
        item = _item(line, at)
        if len(item.text) > max_chars:
            raise InvalidInputError(
                f"{at}: the passage it makes is {len(item.text)} characters, over the maximum of {max_chars}"
            )
        yield item


def _item(line: Any, at: str) -> _Item:
    if not isinstance(line, dict) or line.get("type") not in ("entity", "relation"):
        raise InvalidInputError(
            f'{at}: expected a graph line, {{"type": "entity", ...}} or {{"type": "relation", ...}}'
        )
    if line["type"] == "entity":
        name = _text(line, "name", at)
        kind = _text(line, "entityType", at)
        observations = line.get("observations", [])
        if not isinstance(observations, list) or not all(isinstance(o, str) for o in observations):
            raise InvalidInputError(f"{at}: 'observations' must be a list of strings")
        text = "\n".join([f"{name} ({kind})", *(f"- {o.strip()}" for o in observations if o.strip())])
        tag = kind.strip()[:MAX_TAG_CHARS].strip() or "entity"
        return _Item(
            text=_clean(text), tag=_clean(tag), metadata={"graph": "entity", "name": _clean(name)}, entity=name
        )
    source, relation, target = (_text(line, field, at) for field in ("from", "relationType", "to"))
    return _Item(
        text=_clean(f"{source} {relation} {target}"),
        tag=RELATION_TAG,
        metadata={"graph": "relation", "from": _clean(source), "relationType": _clean(relation), "to": _clean(target)},
        entity=None,
    )


def _text(line: dict[str, Any], field: str, at: str) -> str:
    value = line.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{at}: '{field}' must be a non-empty string")
    return value.strip()


def _clean(text: str) -> str:
    """PostgreSQL cannot store NUL characters."""
    return text.replace("\x00", "")
