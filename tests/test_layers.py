"""The folders are the architecture: imports flow server → tools → storage, never back, and always by the
installed name (`engram.server`, `engram.tools`, `engram.storage`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
LAYERS = ("server", "tools", "storage")
FORBIDDEN = {
    "storage": {"engram.server", "engram.tools", "mcp", "mcp_types"},
    "tools": {"engram.server", "mcp", "mcp_types"},
}


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def layer_of(module: str) -> str:
    """'engram.tools.memory.core' -> 'engram.tools'; 'mcp.server' -> 'mcp'."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "engram" else parts[0]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            {layer_of(module) for module in imported_modules(path)} & FORBIDDEN[package]
        )
        for path in (ROOT / package).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


@pytest.mark.parametrize("folder", ["server", "tools", "storage", "tests", "bench"])
def test_engram_is_imported_by_its_installed_name_only(folder: str) -> None:
    bare = {
        str(path.relative_to(ROOT)): sorted(
            module for module in imported_modules(path) if module.split(".")[0] in LAYERS
        )
        for path in (ROOT / folder).rglob("*.py")
    }
    assert {path: modules for path, modules in bare.items() if modules} == {}
