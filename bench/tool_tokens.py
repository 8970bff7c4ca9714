"""What tools/list costs a host's context, per tool profile: the tools' names, descriptions and schemas.

Counts tokens with tiktoken's cl100k_base on the JSON text of the tools/list result as the server sends
it (pydantic's compact JSON, by alias, without nulls). The server is only built, never run: no database.

    python -m bench.tool_tokens   # JSON: per profile, its tools, characters and tokens; per tool, the tokens
                                  # of a tools/list holding that tool alone (its own cost, plus ~6)
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from mcp_types import ListToolsResult, Tool

from engram.server.app import FULL, MEMORY, build_server
from engram.server.settings import load_settings


def cl100k_base() -> Any:
    """tiktoken's cl100k_base. tiktoken downloads its file on first use; litellm (the `llm` extra) ships a
    copy, used here when no cache is set, so that this counts offline (found without importing litellm,
    which would fetch its price list)."""
    import tiktoken

    litellm = importlib.util.find_spec("litellm")
    if "TIKTOKEN_CACHE_DIR" not in os.environ and litellm is not None and litellm.origin is not None:
        bundled = Path(litellm.origin).parent / "litellm_core_utils" / "tokenizers"
        if bundled.is_dir():
            os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)
    return tiktoken.get_encoding("cl100k_base")


async def listed(profile: str) -> list[Tool]:
    server = build_server(load_settings(overrides={"tool_profile": profile}, environ={}))
    return await server.list_tools()


def wire(tools: list[Tool]) -> str:
    return ListToolsResult(tools=tools).model_dump_json(by_alias=True, exclude_none=True)


async def main() -> dict[str, Any]:
    encoding = cl100k_base()
    report: dict[str, Any] = {"counted": "cl100k_base tokens of the JSON of the tools/list result", "profiles": {}}
    for profile in (MEMORY, FULL):
        tools = await listed(profile)
        text = wire(tools)
        report["profiles"][profile] = {
            "tools": len(tools),
            "chars": len(text),
            "tokens": len(encoding.encode(text)),
        }
    every = await listed(FULL)
    report["per_tool"] = dict(
        sorted(((tool.name, len(encoding.encode(wire([tool])))) for tool in every), key=lambda item: -item[1])
    )
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
