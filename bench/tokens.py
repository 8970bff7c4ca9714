"""What Engram costs a host's context, in tokens: tools/list per tool profile, and the answers to a default
archival_memory_search, a default conversation_search and core_memory_view on the README's example session.

Tokens are litellm's `token_counter` with no model named, which is cl100k_base, counted offline (litellm is
imported lazily, with its local price table). What is counted is the text a host receives: the JSON of the
tools/list result as the server sends it (pydantic's compact JSON, by alias, without nulls), and the text
content of each tool result (hosts give a model the text; the structured content beside it is counted apart,
as `structured`, for hosts that pass that on instead).

The session is the README's `tool {arguments}` example (the one tests/test_readme.py runs), in order, on a
server offering the `full` profile, with an embedded PostgreSQL in a temporary directory. Two more answers
show what the answer budgets do: archival_memory_search at top_k 50 over 60 notes of 300-1,000 characters
(`archival_top_k_50`), and conversation_search at limit 50 over the same notes recorded as messages
(`conversation_limit_50`).

    python -m bench.tokens                    # JSON report
    python -m bench.tokens --compare ROOT     # also the same run with the engram package found under ROOT
                                              # (ROOT/engram/{server,tools,storage}, e.g. HEAD's code), in a
                                              # subprocess; each side reports where engram was loaded from

A profile's tools are listed without a database: the server is only built.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"
PROFILES = ("memory", "full")
MEASURED = ("archival_memory_search", "conversation_search", "core_memory_view")
NOTES = 60


@cache
def _counter() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # otherwise litellm fetches its price table
    import litellm

    return litellm.token_counter


def count_tokens(text: str) -> int:
    """Tokens of `text` as this bench counts them (litellm's token_counter: cl100k_base)."""
    return int(_counter()(text=text))


def cl100k_base() -> Any:
    """tiktoken's cl100k_base, for a bench that needs the tokens themselves (bench/context.py). tiktoken
    downloads its file on first use; litellm (the `llm` extra) ships a copy, used here when no cache is set,
    so that this counts offline (found without importing litellm, which would fetch its price list)."""
    import tiktoken

    litellm = importlib.util.find_spec("litellm")
    if "TIKTOKEN_CACHE_DIR" not in os.environ and litellm is not None and litellm.origin is not None:
        bundled = Path(litellm.origin).parent / "litellm_core_utils" / "tokenizers"
        if bundled.is_dir():
            os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)
    return tiktoken.get_encoding("cl100k_base")


async def listed_tools(profile: str) -> list[Any]:
    from engram.server.app import build_server
    from engram.server.settings import load_settings

    server = build_server(load_settings(overrides={"tool_profile": profile}, environ={}))
    return list(await server.list_tools())


def wire(tools: list[Any]) -> str:
    """The JSON of a tools/list result holding `tools`, as the server sends it."""
    from mcp_types import ListToolsResult

    return ListToolsResult(tools=tools).model_dump_json(by_alias=True, exclude_none=True)


def example_session() -> list[tuple[str, dict[str, Any]]]:
    """The README's tool examples, as (tool, arguments), in order."""
    block = re.findall(r"```text\n(.*?)```", README.read_text(), flags=re.DOTALL)[0]
    calls = []
    for line in block.splitlines():
        if line.strip():
            tool, _, arguments = line.partition(" ")
            calls.append((tool, json.loads(arguments)))
    return calls


def note(n: int) -> str:
    """A note of 300-1,000 characters about a train journey, different for every n."""
    places = ["Lisbon", "Porto", "Madrid", "Vienna", "Zurich", "Lyon", "Bologna", "Ghent", "Krakow", "Riga"]
    sentences = [
        f"Trip note {n}: the train from {places[n % 10]} to {places[(n * 3 + 1) % 10]} left at {6 + n % 14}:{n % 6}0.",
        f"Seat {n % 80 + 1} in coach {n % 12 + 1}, booked {n % 28 + 1} days ahead for {40 + n * 7 % 90} EUR.",
        "The dining car served soup and bread; the coffee was better than expected.",
        f"Delays: {n % 5 * 10} minutes near the border, announced in three languages.",
        "Next time, book the quiet coach and bring a power adapter; the sockets were loose.",
        f"Ada read {n % 4 + 1} chapters and slept through the mountains.",
        "The connection at the junction was tight but staff held the train for transfers.",
        "Scenery: vineyards, then river gorges, then a long flat stretch of sunflower fields.",
    ]
    return " ".join(sentences[: 3 + n % 6])


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def answers(data_dir: str) -> dict[str, Any]:
    """Tokens of each measured answer of the README session (the first call of each measured tool), and of
    archival_memory_search at top_k 50 and conversation_search at limit 50 over NOTES notes."""
    from mcp.client.client import Client

    from engram.server.app import build_server
    from engram.server.runtime import open_runtime
    from engram.server.settings import load_settings
    from engram.tools.memory.embedding_queue import embed_pending

    settings = load_settings(overrides={"data_dir": data_dir, "tool_profile": "full"}, environ={})
    measured: dict[str, Any] = {}
    async with Client(build_server(settings)) as client:
        for tool, arguments in example_session():
            result = await client.call_tool(tool, arguments)
            if result.is_error:
                raise RuntimeError(f"{tool} {arguments} failed: {text_of(result)}")
            if tool in MEASURED and tool not in measured:
                measured[tool] = measure(result, arguments)
        for n in range(NOTES):
            await client.call_tool("archival_memory_insert", {"content": note(n)})
            await client.call_tool("conversation_record", {"role": ("user", "assistant")[n % 2], "content": note(n)})
        async with open_runtime(settings) as runtime:  # every message embedded: the same ranking in every run
            scope = await runtime.scope()
            await embed_pending(scope.sessions, scope.embedder, exact_scan_limit=scope.exact_scan_limit)
        for name, tool, arguments in (
            ("archival_top_k_50", "archival_memory_search", {"query": "train journey delays", "top_k": 50}),
            ("conversation_limit_50", "conversation_search", {"query": "train journey delays", "limit": 50}),
        ):
            result = await client.call_tool(tool, arguments)
            hits = (result.structured_content or {}).get("results", [])
            measured[name] = measure(result, arguments) | {
                "hits": len(hits),
                "hits_cut": sum(1 for hit in hits if hit.get("truncated")),
            }
    return measured


def measure(result: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    text = text_of(result)
    structured = result.structured_content
    return {
        "arguments": arguments,
        "chars": len(text),
        "tokens": count_tokens(text),
        "structured": count_tokens(json.dumps(structured, separators=(",", ":"))) if structured else 0,
    }


async def report() -> dict[str, Any]:
    import engram.server

    profiles = {}
    for profile in PROFILES:
        tools = await listed_tools(profile)
        text = wire(tools)
        profiles[profile] = {"tools": len(tools), "chars": len(text), "tokens": count_tokens(text)}
    every = await listed_tools("full")
    per_tool = dict(sorted(((tool.name, count_tokens(wire([tool]))) for tool in every), key=lambda item: -item[1]))
    with tempfile.TemporaryDirectory(prefix="engram-bench-tokens-") as data_dir:
        measured = await answers(data_dir)
    return {
        "engram": str(Path(engram.server.__file__).parent.parent),
        "counted": "litellm.token_counter (cl100k_base) of the text a host receives",
        "tools_list": profiles,
        "answers": measured,
        "tools_list_per_tool": per_tool,
    }


def other_side(root: str) -> dict[str, Any]:
    """The same report from the engram package under `root`, run in a subprocess."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([root, str(Path(__file__).resolve().parents[1])])}
    done = subprocess.run(
        [sys.executable, "-m", "bench.tokens"], env=environment, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"the run under {root} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tokens", description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", metavar="ROOT", help="also run with the engram package under ROOT")
    options = parser.parse_args()
    result = asyncio.run(report())
    if options.compare:
        result = {"before": other_side(options.compare), "after": result}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
