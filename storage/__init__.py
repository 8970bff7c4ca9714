"""Engram's storage: PostgreSQL schema, migrations, repositories and the embedded server."""

import hashlib
import importlib.util
import sys
from types import ModuleType


def sha256_hex(text: str) -> str:
    """The SHA-256 of `text` (UTF-8) in hex: passages' content hashes and stored bearer tokens."""
    return hashlib.sha256(text.encode()).hexdigest()


def lazy_module(name: str) -> ModuleType:
    """`name`, imported on first attribute access rather than now.

    The tool modules use it for the repositories, so that defining the tools (all `engram serve` needs to
    answer `initialize`) does not pay for importing SQLAlchemy (~0.25 s); the database opens meanwhile.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
