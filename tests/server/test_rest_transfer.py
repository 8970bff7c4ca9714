"""Agent files over REST: Letta's client still gets its .af from /v1/agents/{id}/export; `format=engram` streams
Engram's zip; /v1/agents/import tells each format from the uploaded content."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator

import httpx2
import pytest
from letta_client import AsyncLetta

from tests.conftest import engram_http

pytestmark = pytest.mark.anyio

TOKEN = "transfer-token-0123456789"


@pytest.fixture
async def base_url(database_url: str) -> AsyncIterator[str]:
    async with engram_http(database_url, environment={"ENGRAM_TOKENS": f"ada={TOKEN}"}) as url:
        yield url


async def test_export_as_engrams_zip_and_import_it_back_under_another_name(base_url: str) -> None:
    async with (
        AsyncLetta(base_url=base_url, api_key=TOKEN) as letta,
        httpx2.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http,
    ):
        agent = await letta.agents.create(name="walker", memory_blocks=[{"label": "human", "value": "Walks at six."}])
        await letta.agents.passages.create(agent.id, text="The dog is called Rex.", tags=["pets"])

        letta_file = json.loads(await letta.agents.export_file(agent.id))  # the default stays Letta's .af
        assert [a["name"] for a in letta_file["agents"]] == ["walker"]

        response = await http.get(f"/v1/agents/{agent.id}/export", params={"format": "engram", "with_vectors": "true"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/zip"
        assert response.headers["content-disposition"] == 'attachment; filename="walker.engram.zip"'
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            [passage] = [json.loads(line) for line in archive.read("passages.jsonl").splitlines()]
        assert (passage["text"], passage["tags"], passage["vector"] is not None) == (
            "The dog is called Rex.",
            ["pets"],
            True,
        )

        imported = await letta.agents.import_file(file=("walker.engram.zip", response.content), name="walker-2")
        [copy_id] = imported.agent_ids
        passages = await letta.agents.passages.list(copy_id)
        assert [p.text for p in passages] == ["The dog is called Rex."]
        taken = await http.post(
            "/v1/agents/import", files={"file": ("walker.engram.zip", response.content, "application/zip")}
        )
        assert taken.status_code == 409
        assert "agent 'walker' already exists" in taken.json()["detail"]

        wrong = await http.get(f"/v1/agents/{agent.id}/export", params={"with_vectors": "true"})
        assert wrong.status_code == 422
        assert wrong.json() == {"detail": "with_vectors is for format=engram: Letta's agent files carry no vectors"}


async def test_a_memory_graph_uploads_into_the_named_agent(base_url: str) -> None:
    graph = (
        json.dumps({"type": "entity", "name": "Rex", "entityType": "dog", "observations": ["Barks at the post"]}) + "\n"
    ).encode()
    async with httpx2.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        nameless = await http.post("/v1/agents/import", files={"file": ("memory.jsonl", graph)})
        assert nameless.status_code == 422
        assert nameless.json()["detail"].startswith("'memory.jsonl' is a memory graph, which names no agent")
        named = await http.post("/v1/agents/import", files={"file": ("memory.jsonl", graph)}, data={"name": "pets"})
        assert named.status_code == 200, named.text
        [agent_id] = named.json()["agent_ids"]
        passages = (await http.get(f"/v1/agents/{agent_id}/archival-memory")).json()
        assert [(p["text"], p["tags"]) for p in passages] == [("Rex (dog)\n- Barks at the post", ["dog"])]
        garbage = await http.post("/v1/agents/import", files={"file": ("x.bin", b"\x00\x01\x02")})
        assert garbage.status_code == 422
        assert garbage.json()["detail"].startswith("'x.bin' is neither a zip archive nor JSON")
