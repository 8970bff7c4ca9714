"""The first search of a session does not wait for the embedding model: a server loads it in the background
once its database is open (so neither `initialize` nor the first tool call shares the CPU with it), a hook
that will search loads it while the database opens, and other one-shot commands never load it unasked."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

import anyio
import pytest

from engram.server.runtime import Runtime, WarmUp, default_opener
from engram.server.settings import Settings
from engram.storage.database import Database
from engram.storage.embeddings import DEFAULT_MODEL, OnnxEmbedder, Vector
from engram.storage.errors import BackendUnavailableError

pytestmark = pytest.mark.anyio


class WatchedEmbedder:
    """The default model, telling when it is first asked for vectors (and failing instead, if told to)."""

    def __init__(self, *, fails: bool = False) -> None:
        self.asked = anyio.Event()
        self.answered = anyio.Event()
        self._fails = fails
        self._inner = OnnxEmbedder()

    @property
    def model(self) -> str:
        return DEFAULT_MODEL

    @property
    def loaded(self) -> bool:
        return self.answered.is_set()

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        self.asked.set()
        if self._fails:
            raise BackendUnavailableError("the model file is missing")
        vectors = await self._inner.embed(texts)
        self.answered.set()
        return vectors


def gated_runtime(
    settings: Settings, embedder: WatchedEmbedder, *, background: bool = False, warm_up: WarmUp | None = None
) -> tuple[Runtime, threading.Event]:
    """A runtime whose database opens only once the returned event is set."""
    gate = threading.Event()
    open_database = default_opener(settings)

    def opener() -> Database:
        assert gate.wait(60), "the test never let the database open"
        return open_database()

    runtime = Runtime.create(settings, opener, background=background, warm_up=warm_up)
    return dataclasses.replace(runtime, embedder=embedder), gate


async def test_a_server_loads_the_embedding_model_once_its_database_is_open(settings: Settings) -> None:
    embedder = WatchedEmbedder()
    runtime, gate = gated_runtime(settings, embedder, background=True)
    async with runtime.run():
        await anyio.wait_all_tasks_blocked()
        assert not embedder.asked.is_set()  # the database first: the first tool call needs it
        gate.set()
        with anyio.fail_after(60):
            await embedder.answered.wait()  # with no tool call made


async def test_a_hook_that_will_search_loads_the_model_while_the_database_opens(settings: Settings) -> None:
    embedder = WatchedEmbedder()
    runtime, gate = gated_runtime(settings, embedder, warm_up="at_once")
    async with runtime.run():
        with anyio.fail_after(60):
            await embedder.answered.wait()
        gate.set()


async def test_other_one_shot_commands_never_load_the_model_unasked(settings: Settings) -> None:
    embedder = WatchedEmbedder()
    runtime, gate = gated_runtime(settings, embedder)
    gate.set()
    async with runtime.run():
        with anyio.fail_after(60):
            await runtime.scope()
        await anyio.wait_all_tasks_blocked()
        assert not embedder.asked.is_set()


async def test_a_model_that_fails_to_load_in_advance_leaves_the_server_serving(settings: Settings) -> None:
    """The failure is the first search's to report (it says why); the server itself keeps running."""
    embedder = WatchedEmbedder(fails=True)
    runtime, gate = gated_runtime(settings, embedder, background=True)
    gate.set()
    async with runtime.run():
        with anyio.fail_after(60):
            await embedder.asked.wait()
            await runtime.scope()
        await anyio.wait_all_tasks_blocked()
