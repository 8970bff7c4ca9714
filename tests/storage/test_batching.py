"""Concurrent embedding requests share model calls, and each caller still gets its own vectors or the error."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import numpy
import pytest

from engram.storage.batching import BatchingEmbedder
from engram.storage.embeddings import DEFAULT_MODEL, FastEmbedder, Vector
from engram.storage.errors import BackendUnavailableError

pytestmark = pytest.mark.anyio


class GatedEmbedder:
    """An embedder whose calls each wait for `open_gate` and record their texts; a text's vector is [its
    length, its last word as a number], so every caller can check it got its own. A text 'fail' fails the
    call it is in."""

    model = "gated"
    loaded = True

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = anyio.Event()
        self.gated = True

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        self.calls.append(list(texts))
        if self.gated:
            await self.gate.wait()
        if "fail" in texts:
            raise BackendUnavailableError("the embedding model failed")
        return [[float(len(text)), float(text.split()[-1]) if text[-1].isdigit() else 0.0] for text in texts]

    def open_gate(self) -> None:
        """Let the running call finish (the next one waits for the next gate)."""
        self.gate.set()
        self.gate = anyio.Event()


async def wait_until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until `condition()` holds (no timing: it only yields to them)."""
    with anyio.fail_after(10):
        while not condition():
            await anyio.lowlevel.checkpoint()


async def test_requests_that_arrive_while_the_model_is_busy_share_one_call_and_each_get_their_own_vectors() -> None:
    inner = GatedEmbedder()
    batching = BatchingEmbedder(inner)
    results: dict[int, list[Vector]] = {}

    async def ask(number: int) -> None:
        results[number] = await batching.embed([f"text {number}", f"more {number}"])

    async with anyio.create_task_group() as group:
        group.start_soon(ask, 0)
        await wait_until(lambda: len(inner.calls) == 1)  # the first request runs alone: the model was idle
        for number in range(1, 6):
            group.start_soon(ask, number)
        await wait_until(lambda: len(batching._waiting) == 5)
        inner.open_gate()
        await wait_until(lambda: len(inner.calls) == 2)
        inner.open_gate()
    assert inner.calls == [
        ["text 0", "more 0"],
        [text for number in range(1, 6) for text in (f"text {number}", f"more {number}")],
    ]
    assert results == {
        number: [[float(len(f"text {number}")), float(number)], [float(len(f"more {number}")), float(number)]]
        for number in range(6)
    }
    assert not batching._busy


async def test_a_call_takes_whole_requests_up_to_its_size_and_the_rest_run_next() -> None:
    inner = GatedEmbedder()
    batching = BatchingEmbedder(inner, max_batch_texts=3)
    results: dict[str, list[Vector]] = {}

    async def ask(*texts: str) -> None:
        results[texts[0]] = await batching.embed(texts)

    async with anyio.create_task_group() as group:
        group.start_soon(ask, "a 1")
        await wait_until(lambda: len(inner.calls) == 1)
        group.start_soon(ask, "b 2", "c 3")
        group.start_soon(ask, "d 4", "e 5")
        await wait_until(lambda: len(batching._waiting) == 2)
        inner.open_gate()
        await wait_until(lambda: len(inner.calls) == 2)
        inner.open_gate()
        await wait_until(lambda: len(inner.calls) == 3)
        inner.open_gate()
    assert inner.calls == [["a 1"], ["b 2", "c 3"], ["d 4", "e 5"]]
    assert results["d 4"] == [[3.0, 4.0], [3.0, 5.0]]


async def test_a_failed_call_gives_its_error_to_every_request_in_it_and_the_next_call_runs() -> None:
    inner = GatedEmbedder()
    batching = BatchingEmbedder(inner)
    outcomes: dict[str, str] = {}

    async def ask(text: str) -> None:
        try:
            await batching.embed([text])
            outcomes[text] = "vectors"
        except BackendUnavailableError as exc:
            outcomes[text] = str(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(ask, "first 1")
        await wait_until(lambda: len(inner.calls) == 1)
        group.start_soon(ask, "fail")
        group.start_soon(ask, "second 2")
        await wait_until(lambda: len(batching._waiting) == 2)
        inner.open_gate()  # "first 1" alone
        await wait_until(lambda: len(inner.calls) == 2)
        inner.open_gate()  # "fail" and "second 2" together: both get the error
    assert inner.calls[1] == ["fail", "second 2"]
    assert outcomes == {
        "first 1": "vectors",
        "fail": "the embedding model failed",
        "second 2": "the embedding model failed",
    }
    inner.gated = False
    assert await batching.embed(["after 3"]) == [[7.0, 3.0]]


def asker(batching: BatchingEmbedder, results: dict[str, list[Vector]]) -> Callable[..., Coroutine[Any, Any, None]]:
    """A request for one text's vector, stored in `results` when it comes, cancellable through `scope`."""

    async def ask(text: str, scope: anyio.CancelScope | None = None) -> None:
        with scope or anyio.CancelScope():
            results[text] = await batching.embed([text])

    return ask


async def test_a_request_cancelled_while_its_call_runs_hands_its_batch_mates_to_the_next_call() -> None:
    inner = GatedEmbedder()
    batching = BatchingEmbedder(inner)
    results: dict[str, list[Vector]] = {}
    leader = anyio.CancelScope()

    ask = asker(batching, results)

    async with anyio.create_task_group() as group:
        group.start_soon(ask, "busy 0")
        await wait_until(lambda: len(inner.calls) == 1)
        group.start_soon(ask, "a 1", leader)
        await wait_until(lambda: len(batching._waiting) == 1)
        group.start_soon(ask, "b 2")
        await wait_until(lambda: len(batching._waiting) == 2)
        inner.open_gate()
        await wait_until(lambda: len(inner.calls) == 2)  # "a 1" leads a call holding "b 2" too
        leader.cancel()
        await wait_until(lambda: len(inner.calls) == 3)
        inner.open_gate()
    assert inner.calls == [["busy 0"], ["a 1", "b 2"], ["b 2"]]
    assert set(results) == {"busy 0", "b 2"}
    assert results["b 2"] == [[3.0, 2.0]]
    assert not batching._busy


async def test_a_request_cancelled_while_waiting_leaves_the_queue_and_the_rest_are_served() -> None:
    inner = GatedEmbedder()
    batching = BatchingEmbedder(inner)
    results: dict[str, list[Vector]] = {}
    gone = anyio.CancelScope()

    ask = asker(batching, results)

    async with anyio.create_task_group() as group:
        group.start_soon(ask, "first 1")
        await wait_until(lambda: len(inner.calls) == 1)
        group.start_soon(ask, "gone 2", gone)
        await wait_until(lambda: len(batching._waiting) == 1)
        group.start_soon(ask, "kept 3")
        await wait_until(lambda: len(batching._waiting) == 2)
        gone.cancel()
        await wait_until(lambda: len(batching._waiting) == 1)
        inner.open_gate()
        await wait_until(lambda: len(inner.calls) == 2)
        inner.open_gate()
    assert inner.calls == [["first 1"], ["kept 3"]]
    assert results == {"first 1": [[7.0, 1.0]], "kept 3": [[6.0, 3.0]]}


async def test_batched_vectors_of_the_real_model_equal_the_vectors_of_each_text_alone(tmp_path: Path) -> None:
    model = FastEmbedder(DEFAULT_MODEL, models_dir=tmp_path)
    batching = BatchingEmbedder(model)
    texts = ["Where does Alice live?", "tea", "What did we decide about the launch date of the new website?"]
    alone = [(await model.embed([text]))[0] for text in texts]
    together: dict[str, list[Vector]] = {}

    async def ask(text: str) -> None:
        together[text] = await batching.embed([text])

    async with anyio.create_task_group() as group:
        for text in texts:
            group.start_soon(ask, text)
    for text, vector in zip(texts, alone, strict=True):
        numpy.testing.assert_allclose(together[text][0], vector, atol=1e-5)
