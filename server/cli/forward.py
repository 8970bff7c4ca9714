"""`engram hook claude-code --url URL`: the hook command as a thin client of a running `engram serve --transport
http`, which keeps the database open and the embedding model loaded.

A hook runs on every prompt, and a process that opens the database itself spends most of a second importing
Engram's settings, SQLAlchemy and the model before it starts. This path needs only the standard library: it
posts the event on stdin to the server's /hooks/claude-code (with the bearer token in ENGRAM_HOOK_TOKEN, when
the server requires tokens) and prints the answer. When the server cannot be reached, the command answers in
process as it does without --url. Like every hook, it never blocks the host: whatever fails, the exit status
is 0.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlencode, urlsplit

TOKEN_VARIABLE = "ENGRAM_HOOK_TOKEN"
TIMEOUT = 15.0  # seconds; a server busy with another prompt still answers well within it
HOOK_PATH = "/hooks/claude-code"  # server/hooks.py's route (not imported: that module needs the whole server)


class Unreachable(Exception):
    """No server answered at the URL: the caller answers in process instead."""


def forwarded(arguments: list[str], event: str | None = None) -> int | None:
    """Answer `engram hook claude-code --url URL [--agent NAME]` through the server; None for any other command
    line (the full CLI parses it) or when the server cannot be reached (the event, read from stdin, is then put
    back on sys.stdin for the in-process hook)."""
    if arguments[:2] != ["hook", "claude-code"]:
        return None
    options = _options(arguments[2:])
    if options is None or "url" not in options:
        return None
    if event is None:
        event = sys.stdin.read()
    try:
        answer = post(options["url"], event, options.get("agent"))
    except Unreachable as exc:
        print(f"engram hook: {exc}; answering in process", file=sys.stderr)
        import io

        sys.stdin = io.StringIO(event)
        return None
    except Exception as exc:  # never block the host: say why on stderr and give no context
        print(f"engram hook: {exc}", file=sys.stderr)
        return 0
    if answer:
        sys.stdout.write(answer)
    return 0


def _options(rest: list[str]) -> dict[str, str] | None:
    """--url and --agent (as `--url U` or `--url=U`); None if anything else is there."""
    options: dict[str, str] = {}
    items = iter(rest)
    for item in items:
        name, equals, value = item.partition("=")
        if name not in ("--url", "--agent"):
            return None
        if not equals:
            value = next(items, "")
        if not value:
            return None
        options[name.removeprefix("--")] = value
    return options


def post(url: str, event: str, agent: str | None) -> str:
    """The server's answer to the event (an empty string when it gives no context)."""
    import urllib.error  # here: only this path needs them (tens of milliseconds for every other command)
    import urllib.request

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--url {url!r} is not an http(s) URL; give the server's address, e.g. http://127.0.0.1:8765")
    target = url.rstrip("/") + HOOK_PATH
    if agent:
        target += "?" + urlencode({"agent": agent})
    headers = {"Content-Type": "application/json"}
    token = os.environ.get(TOKEN_VARIABLE)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(target, data=event.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        hint = f" (set {TOKEN_VARIABLE} to a token of the server)" if exc.code == 401 else ""
        raise RuntimeError(f"{target} answered {exc.code}: {detail}{hint}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        raise Unreachable(f"no answer from {target} ({exc})") from None
