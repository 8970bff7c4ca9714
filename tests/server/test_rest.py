"""The REST API at /v1 as Letta's own client (letta-client 1.x) uses it, against `engram serve --transport http`
(a real subprocess on a real database), with the model answering through litellm's mock_response."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from letta_client import (
    AsyncLetta,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    Omit,
    UnprocessableEntityError,
    omit,
)
from letta_client.types import Passage

from tests.conftest import engram_http

pytestmark = pytest.mark.anyio

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"
TOKENS = {"ENGRAM_TOKENS": f"alice={ALICE},bob={BOB}"}
MODEL = "openai/gpt-4o-mini"
REPLY = "Noted, I will remember that."
MOCKED_MODEL = {"ENGRAM_LLM_MODEL": MODEL, "ENGRAM_LLM_OPTIONS": json.dumps({"mock_response": REPLY})}


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[str]:
    """A server with tokens for alice and bob whose model answers REPLY (litellm's mock_response)."""
    async with engram_http(database_url, environment=TOKENS | MOCKED_MODEL) as base_url:
        yield base_url


@asynccontextmanager
async def letta(base_url: str, token: str = ALICE, *, strict: bool = False) -> AsyncIterator[AsyncLetta]:
    async with AsyncLetta(base_url=base_url, api_key=token, _strict_response_validation=strict) as client:
        yield client


@asynccontextmanager
async def raw(base_url: str, token: str | None = ALICE) -> AsyncIterator[httpx2.AsyncClient]:
    """Plain HTTP, for what Letta's client hides (headers, the SSE text) or has no call for (Engram's routes)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http:
        yield http


def values(blocks: Any) -> dict[str, str]:
    return {block.label: block.value for block in blocks}


def passage_id(passage: Passage) -> str:
    assert passage.id, passage  # Engram always sends it; Letta's model has it optional
    return passage.id


def texts(messages: Any) -> list[tuple[str, str]]:
    """(message_type, text) of each user and assistant message, in order."""
    return [
        (message.message_type, message.content)
        for message in messages
        if message.message_type in ("user_message", "assistant_message")
    ]


async def walk_every_letta_call(client: AsyncLetta, mode: str) -> None:
    """Every call of Letta's client that Engram serves, checking what each one returns and changes."""
    health = await client.health()
    assert health.status == "ok" and health.version

    agent = await client.agents.create(
        name=f"walker-{mode}",
        system="You keep a traveller's notes.",
        memory_blocks=[
            {"label": "human", "value": "Likes tea."},
            {"label": "persona", "value": "A careful note-taker.", "limit": 500, "description": "Who I am."},
        ],
        tags=["walk", mode],
        model=MODEL,
        description="Walks every route.",
    )
    assert agent.id.startswith("agent-") and agent.name == f"walker-{mode}"
    assert (agent.system, agent.description) == ("You keep a traveller's notes.", "Walks every route.")
    assert sorted(agent.tags) == sorted(["walk", mode])
    assert agent.llm_config.model == MODEL and agent.llm_config.api_model_endpoint_type == "openai"
    assert values(agent.memory.blocks) == {"human": "Likes tea.", "persona": "A careful note-taker."}
    persona = next(block for block in agent.blocks if block.label == "persona")
    assert (persona.limit, persona.description) == (500, "Who I am.")

    assert [found.id async for found in client.agents.list(tags=[mode])] == [agent.id]
    assert (await client.agents.retrieve(agent.id)).name == f"walker-{mode}"
    updated = await client.agents.update(
        agent.id, name=f"renamed-{mode}", system="You keep a diary.", tags=["diary"], model="openai/gpt-4.1-mini"
    )
    again = await client.agents.retrieve(agent.id)
    for state in (updated, again):
        assert (state.name, state.system, state.tags) == (f"renamed-{mode}", "You keep a diary.", ["diary"])
        assert state.llm_config.model == "openai/gpt-4.1-mini"
        assert values(state.blocks) == {"human": "Likes tea.", "persona": "A careful note-taker."}
    assert updated.description == "Walks every route."  # what is not sent stays

    # the agent's core-memory blocks
    with anyio.fail_after(30):  # iterating asks for pages until one is empty: it must end
        listed = [block async for block in client.agents.blocks.list(agent.id)]
    assert values(listed) == {"human": "Likes tea.", "persona": "A careful note-taker."}
    human = await client.agents.blocks.retrieve("human", agent_id=agent.id)
    assert (human.label, human.value) == ("human", "Likes tea.")
    changed = await client.agents.blocks.update("human", agent_id=agent.id, value="Likes coffee.", limit=300)
    assert (changed.id, changed.value, changed.limit) == (human.id, "Likes coffee.", 300)
    # a limit below the old text with a text within it, and back: both are stored together
    shorter = await client.agents.blocks.update("human", agent_id=agent.id, value="Tea.", limit=5)
    longer = await client.agents.blocks.update("human", agent_id=agent.id, value="Likes coffee.", limit=300)
    assert [(shorter.value, shorter.limit), (longer.value, longer.limit)] == [("Tea.", 5), ("Likes coffee.", 300)]
    assert (await client.agents.blocks.retrieve("human", agent_id=agent.id)).value == "Likes coffee."

    # standalone blocks, attached and detached
    team = await client.blocks.create(label="team", value="The team uses Postgres.", description="Shared facts.")
    assert team.id.startswith("block-") and (team.label, team.value) == ("team", "The team uses Postgres.")
    assert [block.id async for block in client.blocks.list(label="team")] == [team.id]
    assert (await client.blocks.retrieve(team.id)).value == "The team uses Postgres."
    assert (await client.blocks.update(team.id, value="The team uses pgvector.")).value == "The team uses pgvector."
    attached = await client.agents.blocks.attach(team.id, agent_id=agent.id)
    assert values(attached.blocks)["team"] == "The team uses pgvector."
    assert "team" in values((await client.agents.blocks.list(agent.id)).items)
    detached = await client.agents.blocks.detach(team.id, agent_id=agent.id)
    assert "team" not in values(detached.blocks) and "team" not in values(
        (await client.agents.retrieve(agent.id)).blocks
    )
    await client.blocks.delete(team.id)
    with pytest.raises(NotFoundError):
        await client.blocks.retrieve(team.id)

    # archival memory
    [lisbon] = await client.agents.passages.create(agent.id, text="The office is in Lisbon.", tags=["place"])
    [porto] = await client.agents.passages.create(agent.id, text="The warehouse is in Porto.")
    assert (lisbon.text, lisbon.tags) == ("The office is in Lisbon.", ["place"]) and lisbon.id
    listed_passages = await client.agents.passages.list(agent.id)
    assert [p.id for p in listed_passages] == [lisbon.id, porto.id]
    assert [p.text for p in await client.agents.passages.list(agent.id, search="Porto")] == [porto.text]
    found = await client.agents.passages.search(agent.id, query="where is the office")
    assert found.count == len(found.results) and found.results[0].content == lisbon.text
    tagged = await client.agents.passages.search(agent.id, query="warehouse in Porto", tags=["place"])
    assert [hit.content for hit in tagged.results] == [lisbon.text]  # only passages with the tag
    assert (await client.agents.passages.search(agent.id, query="Lisbon", tags=["nowhere"])).count == 0
    await client.agents.passages.delete(passage_id(porto), agent_id=agent.id)
    assert [p.id for p in await client.agents.passages.list(agent.id)] == [lisbon.id]

    # messages: plain and streamed
    answer = await client.agents.messages.create(agent.id, input="I moved to Lisbon.")
    assert texts(answer.messages) == [("assistant_message", REPLY)]
    assert answer.stop_reason.stop_reason == "end_turn"
    stream = await client.agents.messages.create(agent.id, input="And I like sardines.", streaming=True)
    chunks = [chunk async for chunk in stream]
    assert [chunk.message_type for chunk in chunks] == ["assistant_message", "stop_reason", "usage_statistics"]
    assert texts(chunks) == [("assistant_message", REPLY)]
    history = [m async for m in client.agents.messages.list(agent.id, order="asc")]
    assert texts(history) == [
        ("user_message", "I moved to Lisbon."),
        ("assistant_message", REPLY),
        ("user_message", "And I like sardines."),
        ("assistant_message", REPLY),
    ]
    newest_first = [m async for m in client.agents.messages.list(agent.id)]
    assert [m.id for m in newest_first] == [m.id for m in reversed(history)]

    # agent files: export, then import under another name
    exported = await client.agents.export_file(agent.id)
    assert json.loads(exported)["agents"][0]["name"] == f"renamed-{mode}"
    imported = await client.agents.import_file(file=("walker.af", exported.encode()), name=f"imported-{mode}")
    [imported_id] = imported.agent_ids
    copy = await client.agents.retrieve(imported_id)
    assert copy.name == f"imported-{mode}" and copy.id != agent.id and copy.system == "You keep a diary."
    assert values(copy.blocks) == values((await client.agents.retrieve(agent.id)).blocks)
    assert texts([m async for m in client.agents.messages.list(imported_id, order="asc")]) == texts(history)

    # summarize (the client calls it compact) and reset
    compacted = await client.agents.messages.compact(agent.id)
    assert compacted.num_messages_before == 4 and 0 < compacted.num_messages_after < 4
    assert compacted.summary == REPLY  # the model wrote it
    reset = await client.agents.messages.reset(agent.id)
    assert reset is not None and reset.id == agent.id
    after_reset = await client.agents.messages.compact(agent.id)
    assert after_reset.num_messages_before == after_reset.num_messages_after == 0
    assert texts([m async for m in client.agents.messages.list(agent.id, order="asc")]) == texts(history)  # kept

    await client.agents.delete(agent.id)
    with pytest.raises(NotFoundError):
        await client.agents.retrieve(agent.id)
    remaining = [found.name async for found in client.agents.list()]
    assert f"renamed-{mode}" not in remaining and f"imported-{mode}" in remaining


async def test_every_letta_call_works_with_letta_client_in_default_and_strict_mode(server: str) -> None:
    for strict in (False, True):
        async with letta(server, strict=strict) as client:
            await walk_every_letta_call(client, "strict" if strict else "default")

    # what the client parses from a stream, as plain text: `data:` lines only (the client drops named events)
    async with letta(server) as client:
        agent = await client.agents.create(name="streamer")
    async with raw(server) as http:
        response = await http.post(f"/v1/agents/{agent.id}/messages", json={"input": "Hello.", "streaming": True})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    body = response.text
    assert body.endswith("\n\ndata: [DONE]\n\n")
    assert not [line for line in body.splitlines() if line.startswith("event:")]
    lines = [line for line in body.splitlines() if line]
    assert all(line.startswith("data: ") for line in lines)
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert [event["message_type"] for event in events] == ["assistant_message", "stop_reason", "usage_statistics"]
    assert events[0]["content"] == REPLY and events[1]["stop_reason"] == "end_turn"


async def snapshot(base_url: str, agent_id: str, block_id: str) -> dict[str, Any]:
    """Everything alice can read of her agent and her shared block, as JSON."""
    paths = [
        f"/v1/agents/{agent_id}",
        f"/v1/agents/{agent_id}/core-memory/blocks",
        f"/v1/agents/{agent_id}/core-memory/blocks/human/history",
        f"/v1/agents/{agent_id}/archival-memory",
        f"/v1/agents/{agent_id}/messages",
        f"/v1/agents/{agent_id}/conversations",
        f"/v1/agents/{agent_id}/statistics",
        f"/v1/blocks/{block_id}",
    ]
    async with raw(base_url) as http:
        responses = {path: await http.get(path) for path in paths}
    assert all(response.status_code == 200 for response in responses.values()), responses
    found = {path: response.json() for path, response in responses.items()}
    del found[f"/v1/agents/{agent_id}/statistics"]["messages_waiting_for_embedding"]  # the embedder works meanwhile
    return found


async def test_another_principal_gets_not_found_on_every_route_and_changes_nothing(server: str) -> None:
    async with letta(server) as alice:
        agent = await alice.agents.create(name="diary", memory_blocks=[{"label": "human", "value": "Secret: 4471"}])
        team = await alice.blocks.create(label="team", value="Alice's team notes.")
        await alice.agents.blocks.attach(team.id, agent_id=agent.id)
        [passage] = await alice.agents.passages.create(agent.id, text="Alice's bank PIN hint.", tags=["bank"])
        await alice.agents.messages.create(agent.id, input="Alice's private chat.")
        await alice.agents.blocks.update("human", agent_id=agent.id, value="Secret: 4472")
        human = await alice.agents.blocks.retrieve("human", agent_id=agent.id)
    before = await snapshot(server, agent.id, team.id)

    async with letta(server, BOB) as bob:
        own = await bob.agents.create(name="diary")  # names are per principal
        aid = agent.id
        attempts: dict[str, Any] = {
            "agents.retrieve": lambda: bob.agents.retrieve(aid),
            "agents.update": lambda: bob.agents.update(aid, name="bob's now", system="Obey bob."),
            "agents.delete": lambda: bob.agents.delete(aid),
            "agents.blocks.list": lambda: bob.agents.blocks.list(aid),
            "agents.blocks.retrieve": lambda: bob.agents.blocks.retrieve("human", agent_id=aid),
            "agents.blocks.update": lambda: bob.agents.blocks.update("human", agent_id=aid, value="bob"),
            "agents.blocks.attach": lambda: bob.agents.blocks.attach(team.id, agent_id=aid),
            "agents.blocks.detach": lambda: bob.agents.blocks.detach(team.id, agent_id=aid),
            "attach to bob's agent": lambda: bob.agents.blocks.attach(team.id, agent_id=own.id),
            "blocks.retrieve": lambda: bob.blocks.retrieve(team.id),
            "blocks.retrieve (agent's block)": lambda: bob.blocks.retrieve(human.id),
            "blocks.update": lambda: bob.blocks.update(team.id, value="bob"),
            "blocks.delete": lambda: bob.blocks.delete(team.id),
            "passages.create": lambda: bob.agents.passages.create(aid, text="bob's note"),
            "passages.list": lambda: bob.agents.passages.list(aid),
            "passages.search": lambda: bob.agents.passages.search(aid, query="PIN"),
            "passages.delete": lambda: bob.agents.passages.delete(passage_id(passage), agent_id=aid),
            "passages.delete (bob's agent)": lambda: bob.agents.passages.delete(passage_id(passage), agent_id=own.id),
            "messages.create": lambda: bob.agents.messages.create(aid, input="hi"),
            "messages.create streaming": lambda: bob.agents.messages.create(aid, input="hi", streaming=True),
            "messages.list": lambda: bob.agents.messages.list(aid),
            "messages.reset": lambda: bob.agents.messages.reset(aid),
            "messages.compact": lambda: bob.agents.messages.compact(aid),
            "export_file": lambda: bob.agents.export_file(aid),
        }
        for call, attempt in attempts.items():
            with pytest.raises(NotFoundError) as caught:
                await attempt()
            assert caught.value.status_code == 404, call
        assert [found.id async for found in bob.agents.list()] == [own.id]
        assert {block.id async for block in bob.blocks.list()} == {b.id for b in own.blocks}
        assert (await bob.agents.passages.search(own.id, query="Alice's bank PIN hint")).count == 0

    # every route that names an agent, block or passage (Engram's own too), as the API describes them
    names = {
        "agent_id": aid,
        "block_id": team.id,
        "block_label": "human",
        "memory_id": passage_id(passage),
        "conversation": "default",
    }
    bodies = {
        "PATCH /v1/agents/{agent_id}": {"name": "bob's now"},
        "PATCH /v1/agents/{agent_id}/core-memory/blocks/{block_label}": {"value": "bob"},
        "PATCH /v1/blocks/{block_id}": {"value": "bob"},
        "POST /v1/agents/{agent_id}/archival-memory": {"text": "bob's note"},
        "POST /v1/agents/{agent_id}/messages": {"input": "hi"},
        "POST /v1/agents/{agent_id}/messages/stream": {"input": "hi"},
        "POST /v1/agents/{agent_id}/context": {"message": "PIN"},
    }
    async with raw(server, BOB) as http:
        paths: dict[str, dict[str, Any]] = (await http.get("/v1/openapi.json")).json()["paths"]
        routes = [(method.upper(), path) for path, methods in paths.items() for method in methods if "{" in path]
        assert len(routes) >= 25
        for method, template in routes:
            query = {"query": "PIN"} if template.endswith("/search") else None
            body = bodies.get(f"{method} {template}")
            refused(await http.request(method, template.format(**names), json=body, params=query), 404)

    assert await snapshot(server, agent.id, team.id) == before


async def passage_ids(client: AsyncLetta, agent_id: str, *, ascending: bool) -> list[str]:
    """Every passage, three a page, asking for the next page as Letta's client does: `after=<last id>` until
    a page is empty."""
    found: list[str] = []
    after: str | Omit = omit
    with anyio.fail_after(60):
        while page := await client.agents.passages.list(agent_id, limit=3, ascending=ascending, after=after):
            assert len(page) <= 3
            found += [passage_id(passage) for passage in page]
            after = found[-1]
    return found


async def test_lists_page_through_every_item_once_in_either_order(server: str) -> None:
    async with letta(server) as client:
        agents = [(await client.agents.create(name=f"agent-{n}")).id for n in range(7)]
        with anyio.fail_after(60):
            newest_first = [agent.id async for agent in client.agents.list(limit=3)]
            oldest_first = [agent.id async for agent in client.agents.list(limit=3, order="asc")]
            backwards = [agent.id async for agent in client.agents.list(limit=3, order="asc", before=agents[6])]
        assert newest_first == agents[::-1] and oldest_first == agents
        assert backwards == agents[3:6] + agents[0:3]  # each page in order, the pages walking back
        page = await client.agents.list(limit=3, order="asc", after=agents[2])
        assert [agent.id for agent in page.items] == agents[3:6]
        previous = await client.agents.list(limit=3, order="asc", before=agents[3])
        assert [agent.id for agent in previous.items] == agents[0:3]
        previous_newer = await client.agents.list(limit=3, order="desc", before=agents[3])
        assert [agent.id for agent in previous_newer.items] == agents[6:3:-1]

        owner = agents[0]
        passages = [(await client.agents.passages.create(owner, text=f"Fact number {n}."))[0].id for n in range(7)]
        assert await passage_ids(client, owner, ascending=True) == passages
        assert await passage_ids(client, owner, ascending=False) == passages[::-1]
        before = await client.agents.passages.list(owner, limit=3, before=passages[3])
        assert [passage.id for passage in before] == passages[0:3]
        before_newer = await client.agents.passages.list(owner, limit=3, before=passages[3], ascending=False)
        assert [passage.id for passage in before_newer] == passages[6:3:-1]
        between = await client.agents.passages.list(owner, after=passages[1], before=passages[5])
        assert [passage.id for passage in between] == passages[2:5]

        labels = ["human", "persona", "goals", "habits", "places"]
        many = await client.agents.create(
            name="many-blocks", memory_blocks=[{"label": label, "value": f"About {label}."} for label in labels]
        )
        in_order = [block.id for block in many.blocks]
        with anyio.fail_after(60):
            walked = [block.id async for block in client.agents.blocks.list(many.id, limit=2)]
            walked_back = [block.id async for block in client.agents.blocks.list(many.id, limit=2, order="desc")]
        assert walked == in_order and walked_back == in_order[::-1] and len(set(walked)) == len(labels)
        blocks_before = await client.agents.blocks.list(many.id, limit=2, before=in_order[4])
        assert [block.id for block in blocks_before.items] == in_order[2:4]


def assistant_ids(response: httpx2.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["messages"] if m["message_type"] == "assistant_message"]


async def test_a_message_sent_again_with_its_otid_runs_the_agent_once(server: str) -> None:
    async with letta(server) as client:
        agent = await client.agents.create(name="once")
    url = f"/v1/agents/{agent.id}/messages"

    def message(text: str, otid: str) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": text, "otid": otid}]}

    async with raw(server) as http:
        # a retry after the first request finished
        first, again = [await http.post(url, json=message("Tea at five.", "otid-retried")) for _ in range(2)]
        assert len(assistant_ids(first)) == 1 and assistant_ids(again) == assistant_ids(first)

        # duplicates that arrive together
        responses: list[httpx2.Response] = []

        async def post() -> None:
            responses.append(await http.post(url, json=message("Coffee at nine.", "otid-concurrent")))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for _ in range(4):
                    group.start_soon(post)
        assert len(responses) == 4
        [answered] = {tuple(assistant_ids(response)) for response in responses}
        assert len(answered) == 1

        # a streamed retry replays the stored answer
        streamed = await http.post(url, json=message("Tea at five.", "otid-retried") | {"streaming": True})
        replayed = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")]
        assert [m["id"] for m in replayed if m["message_type"] == "assistant_message"] == assistant_ids(first)

    async with letta(server) as client:
        # Letta's client sends the otid inside the message
        sent = [
            await client.agents.messages.create(
                agent.id, messages=[{"role": "user", "content": "Milk, no sugar.", "otid": "otid-client"}]
            )
            for _ in range(2)
        ]
        assert sent[0].messages[0].id == sent[1].messages[0].id
        history = [m async for m in client.agents.messages.list(agent.id, order="asc")]
    assert texts(history) == [
        ("user_message", "Tea at five."),
        ("assistant_message", REPLY),
        ("user_message", "Coffee at nine."),
        ("assistant_message", REPLY),
        ("user_message", "Milk, no sugar."),
        ("assistant_message", REPLY),
    ]


def refused(response: httpx2.Response, status: int, *named: str) -> str:
    """The detail of an error that says what to change (naming each of `named`) and that Letta's client must
    not retry."""
    assert response.status_code == status, (response.request.url, response.text)
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str), body
    assert all(name in body["detail"] for name in named), (named, body["detail"])
    assert response.headers["x-should-retry"] == "false"
    return str(body["detail"])


async def test_bad_input_on_every_route_is_refused_saying_what_to_change(server: str) -> None:
    async with letta(server) as client:
        agent = await client.agents.create(
            name="strictly", memory_blocks=[{"label": "human", "value": "Short.", "limit": 20}]
        )
        team = await client.blocks.create(label="team", value="Team notes.", limit=30)
        [passage] = await client.agents.passages.create(agent.id, text="A fact.")
        with pytest.raises(UnprocessableEntityError) as malformed:
            await client.agents.retrieve("agent-not-a-uuid")
        assert malformed.value.body == {
            "detail": "'agent-not-a-uuid' is not an agent id; agent ids look like 'agent-<uuid>'"
        }
    aid = agent.id
    unknown_fields = [
        ("POST", "/v1/agents/", {"name": "x", "colour": "red"}, "colour"),
        ("PATCH", f"/v1/agents/{aid}", {"nmae": "y"}, "nmae"),
        ("POST", "/v1/agents/", {"name": "x", "memory_blocks": [{"label": "a", "valu": "b"}]}, "valu"),
        ("PATCH", f"/v1/agents/{aid}/core-memory/blocks/human", {"valeu": "z"}, "valeu"),
        ("POST", "/v1/blocks/", {"label": "x", "value": "y", "colour": "red"}, "colour"),
        ("PATCH", f"/v1/blocks/{team.id}", {"vlaue": "z"}, "vlaue"),
        ("POST", f"/v1/agents/{aid}/archival-memory", {"text": "t", "tag": ["x"]}, "tag"),
        ("POST", f"/v1/agents/{aid}/messages", {"input": "hi", "stream": True}, "stream"),
        ("POST", f"/v1/agents/{aid}/messages", {"messages": [{"role": "user", "content": "hi", "oid": "1"}]}, "oid"),
    ]
    malformed_ids = [
        ("GET", "/v1/agents/agent-42", None, "'agent-42' is not an agent id"),
        ("PATCH", "/v1/agents/42", {"name": "x"}, "42"),
        ("DELETE", "/v1/agents/agent-xyz", None, "agent-xyz"),
        ("GET", "/v1/agents/nope/core-memory/blocks", None, "nope"),
        ("PATCH", f"/v1/agents/{aid}/core-memory/blocks/attach/block-1", None, "block-1"),
        ("PATCH", f"/v1/agents/{aid}/core-memory/blocks/detach/block-2", None, "block-2"),
        ("GET", "/v1/blocks/block-zzz", None, "'block-zzz' is not a block id"),
        ("PATCH", "/v1/blocks/zzz", {"value": "x"}, "zzz"),
        ("DELETE", "/v1/blocks/block-", None, "block-"),
        ("DELETE", f"/v1/agents/{aid}/archival-memory/passage-0", None, "passage-0"),
        ("GET", f"/v1/agents/{aid}/archival-memory?after=passage-x", None, "passage-x"),
        ("GET", f"/v1/agents/{aid}/messages?before=message-y", None, "message-y"),
        ("GET", "/v1/agents/?after=agent-z", None, "agent-z"),
        ("GET", "/v1/blocks/?after=block-q", None, "block-q"),
        ("GET", f"/v1/agents/{aid}/core-memory/blocks?after=block-w", None, "block-w"),
        ("POST", "/v1/agents/", {"name": "x", "block_ids": ["block-v"]}, "block-v"),
    ]
    missing = [
        ("POST", "/v1/blocks/", {"value": "no label"}, "'label' is required"),
        ("POST", f"/v1/agents/{aid}/archival-memory", {"tags": ["x"]}, "'text' is required"),
        ("GET", f"/v1/agents/{aid}/archival-memory/search", None, "'query' is required"),
        ("GET", f"/v1/agents/{aid}/conversations/search", None, "'query' is required"),
        ("POST", f"/v1/agents/{aid}/messages", {}, "send one message"),
        ("POST", f"/v1/agents/{aid}/messages", {"messages": [{"role": "user"}]}, "'messages.0.content' is required"),
        ("POST", f"/v1/agents/{aid}/messages", None, "this request needs a JSON body"),
    ]
    out_of_range = [
        ("GET", "/v1/agents/?limit=0", None, "'limit': Input should be greater than or equal to 1"),
        ("GET", "/v1/agents/?order=sideways", None, "'order': Input should be 'asc' or 'desc'"),
        ("GET", f"/v1/agents/{aid}/archival-memory/search?query=x&top_k=0", None, "top_k"),
        ("POST", "/v1/blocks/", {"label": "x", "limit": 0}, "limit"),
        ("POST", f"/v1/agents/{aid}/messages", {"input": "hi", "max_steps": 0}, "max_steps"),
        ("PATCH", f"/v1/agents/{aid}/core-memory/blocks/human", {"label": "other"}, "label"),
        ("POST", f"/v1/agents/{aid}/core-memory/blocks/human/undo", None, "nothing to undo"),
    ]
    async with raw(server) as http:
        for method, path, body, named in unknown_fields + malformed_ids + missing + out_of_range:
            refused(await http.request(method, path, json=body), 422, named)

        too_long = "x" * 21
        refused(await http.patch(f"/v1/agents/{aid}/core-memory/blocks/human", json={"value": too_long}), 422, "20")
        refused(await http.patch(f"/v1/blocks/{team.id}", json={"value": "y" * 31}), 422, "30")
        refused(await http.patch(f"/v1/blocks/{team.id}", json={"limit": 5}), 422, "limit")
        refused(await http.post("/v1/blocks/", json={"label": "big", "value": "z" * 11, "limit": 10}), 422, "10")
        refused(
            await http.post(
                "/v1/agents/", json={"name": "big", "memory_blocks": [{"label": "h", "value": "z" * 11, "limit": 10}]}
            ),
            422,
            "10",
        )
        refused(await http.post("/v1/agents/", json={"name": "strictly"}), 409, "strictly")
        refused(await http.get("/v1/agents/agent-00000000-0000-0000-0000-000000000000"), 404)
        refused(await http.get(f"/v1/agents/{aid}/core-memory/blocks/nosuch"), 404, "nosuch")

        human = await http.get(f"/v1/agents/{aid}/core-memory/blocks/human")
        assert (human.json()["value"], human.json()["limit"], human.json()["version"]) == ("Short.", 20, 1)
        shared = await http.get(f"/v1/blocks/{team.id}")
        assert (shared.json()["value"], shared.json()["limit"]) == ("Team notes.", 30)
        names = [found["name"] for found in (await http.get("/v1/agents/")).json()]
        assert names == ["strictly"]  # nothing refused was created
        passages = (await http.get(f"/v1/agents/{aid}/archival-memory")).json()
        assert [p["id"] for p in passages] == [passage.id]
        assert (await http.get(f"/v1/agents/{aid}/messages")).json() == []


async def test_a_shared_block_changes_for_every_agent_it_is_attached_to_and_keeps_an_undoable_history(
    server: str,
) -> None:
    async with letta(server) as client:
        shared = await client.blocks.create(label="project", value="Ship v1 in March.")
        planner = await client.agents.create(name="planner")
        writer = await client.agents.create(name="writer")
        for agent in (planner, writer):
            attached = await client.agents.blocks.attach(shared.id, agent_id=agent.id)
            assert values(attached.blocks)["project"] == "Ship v1 in March."

        await client.agents.blocks.update("project", agent_id=planner.id, value="Ship v1 in April.")
        seen = await client.agents.blocks.retrieve("project", agent_id=writer.id)
        assert (seen.id, seen.value) == (shared.id, "Ship v1 in April.")
        await client.agents.blocks.update("project", agent_id=writer.id, value="Ship v1 in May.")
        assert values((await client.agents.retrieve(planner.id)).blocks)["project"] == "Ship v1 in May."
        assert (await client.blocks.retrieve(shared.id)).value == "Ship v1 in May."

        async with raw(server) as http:

            async def history(agent_id: str) -> list[tuple[int, str]]:
                response = await http.get(f"/v1/agents/{agent_id}/core-memory/blocks/project/history")
                assert response.status_code == 200, response.text
                return [(v["version"], v["value"]) for v in response.json()["versions"]]

            async def undo(agent_id: str) -> str:
                response = await http.post(f"/v1/agents/{agent_id}/core-memory/blocks/project/undo")
                assert response.status_code == 200, response.text
                return str(response.json()["value"])

            versions = [(3, "Ship v1 in May."), (2, "Ship v1 in April."), (1, "Ship v1 in March.")]
            assert await history(planner.id) == await history(writer.id) == versions
            assert await undo(writer.id) == "Ship v1 in April."
            assert (await client.agents.blocks.retrieve("project", agent_id=planner.id)).value == "Ship v1 in April."
            assert await undo(planner.id) == "Ship v1 in May."  # the undo undone
            assert await history(writer.id) == [(5, "Ship v1 in May."), (4, "Ship v1 in April."), *versions]
            full = await http.get(f"/v1/agents/{planner.id}/core-memory/blocks/project/history?limit=2")
            assert [v["actor"] for v in full.json()["versions"]] == ["rest", "rest"] and full.json()["older"] == 3

        detached = await client.agents.blocks.detach(shared.id, agent_id=planner.id)
        assert "project" not in values(detached.blocks)
        assert (await client.agents.blocks.retrieve("project", agent_id=writer.id)).value == "Ship v1 in May."
        await client.blocks.delete(shared.id)
        assert "project" not in values((await client.agents.retrieve(writer.id)).blocks)


async def test_the_api_description_and_its_offline_docs_are_open_and_every_other_route_needs_a_token(
    database_url: str,
) -> None:
    async with engram_http(database_url, environment=TOKENS) as base_url, raw(base_url, token=None) as anonymous:
        description = await anonymous.get("/v1/openapi.json")
        assert description.status_code == 200 and description.headers["content-type"] == "application/json"
        document = description.json()
        assert document["openapi"].startswith("3.") and document["info"]["title"] == "Engram"
        paths: dict[str, dict[str, Any]] = document["paths"]
        assert "/v1/agents/{agent_id}/messages" in paths and "/v1/agents/{agent_id}/archival-memory" in paths
        assert sum(path.startswith("/v1/agents/") for path in paths) >= 10

        docs = await anonymous.get("/v1/docs")
        assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
        assert "http://" not in docs.text and "https://" not in docs.text  # nothing from a CDN
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", docs.text)
        assets += re.findall(r"""url:\s*["']([^"']+)["']""", docs.text)
        assert {asset for asset in assets if not asset.startswith("/v1/docs/assets/")} == {"/v1/openapi.json"}
        scripts = {asset for asset in assets if asset.endswith(".js")}
        styles = {asset for asset in assets if asset.endswith(".css")}
        assert scripts and styles
        for asset in {asset for asset in assets if asset.startswith("/v1/docs/assets/")}:
            served = await anonymous.get(asset)
            assert served.status_code == 200 and served.content, asset
            if asset in scripts:
                assert served.headers["content-type"].startswith("application/javascript")
            if asset in styles:
                assert served.headers["content-type"].startswith("text/css")
        assert (await anonymous.get("/v1/health/")).json()["status"] == "ok"

        routes = [(method.upper(), path) for path, methods in paths.items() for method in methods]
        routes += [("GET", "/v1/agents/"), ("POST", "/v1/agents/"), ("GET", "/v1/blocks/"), ("POST", "/v1/blocks/")]
        assert len(routes) >= 30
        for method, path in routes:
            if path.startswith("/v1/health"):
                continue
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            for headers in ({}, {"Authorization": "Bearer not-a-token"}):
                response = await anonymous.request(method, concrete, headers=headers)
                assert response.status_code == 401, (method, concrete, response.text)
        async with letta(base_url, "not-a-token") as stranger:
            with pytest.raises(AuthenticationError):
                await stranger.agents.list()


async def test_without_a_model_sending_a_message_is_refused_saying_how_to_configure_one(database_url: str) -> None:
    async with engram_http(database_url, environment=TOKENS) as base_url, letta(base_url) as client:
        agent = await client.agents.create(name="modelless")
        assert agent.llm_config.model == ""
        for streaming in (False, True):
            with pytest.raises(BadRequestError) as caught:
                await client.agents.messages.create(agent.id, input="Hello?", streaming=streaming)
            assert caught.value.status_code == 400
            assert caught.value.response.headers["x-should-retry"] == "false"
            detail = caught.value.body["detail"] if isinstance(caught.value.body, dict) else ""
            assert "ENGRAM_LLM_MODEL" in detail and "llm_model in config.toml" in detail, detail
        assert [m async for m in client.agents.messages.list(agent.id)] == []  # nothing was stored
