"""`python -m tests.typecheck`: mypy --strict over Engram's packages (by their installed names) and the tests.

The repository keeps `server/`, `tools/` and `storage/` at its top level and installs them as
`engram.server`, `engram.tools` and `engram.storage` (setuptools' package-dir). mypy cannot follow an
editable install's import hook, so this lays out `engram/` as links to the three folders in a temporary
directory and points mypy there. Extra arguments go to mypy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("server", "tools", "storage")


def main(arguments: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="engram-typecheck-") as folder:
        package = Path(folder) / "engram"
        package.mkdir()
        for layer in LAYERS:
            (package / layer).symlink_to(ROOT / layer, target_is_directory=True)
        environment = {**os.environ, "MYPYPATH": folder}
        command = [sys.executable, "-m", "mypy", "-p", "engram", "-p", "tests", *arguments]
        return subprocess.run(command, cwd=ROOT, env=environment, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
