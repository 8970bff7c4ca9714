"""Claude Code's hooks: the conversation recorded, and memory given to the model on every prompt.

One handler serves both ways Claude Code runs a hook: `engram hook claude-code` (a command: the event on
stdin, the answer on stdout) and `POST /hooks/claude-code` on `engram serve --transport http` (an http hook:
the event as the body, the answer as the response). Per event:

- SessionStart: core memory and recent activity, within context_session_tokens. After `clear` or `compact`
  the session's context holds none of what it was given, so everything may be given again.
- UserPromptSubmit: the prompt is recorded (in the conversation named by the session id, as `engram record
  --hook claude-code` does) and the memory for it returned, within context_prompt_tokens: nothing the session
  was given already, and none of the session's own messages.
- Stop: the reply is recorded.

The answer is `{"hookSpecificOutput": {"hookEventName": …, "additionalContext": …}}`, never over Claude Code's
10,000-character cap, or nothing at all.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Any

from engram.storage.errors import InvalidInputError
from engram.tools.arguments import DEFAULT_CONVERSATION
from engram.tools.ingest.claude_code import claude_code_message
from engram.tools.memory.context import ContextBudget, forget_session, memory_context
from engram.tools.memory.recall import record_message

if TYPE_CHECKING:
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.types import ASGIApp

    from engram.server.runtime import Runtime
    from engram.server.settings import Settings
    from engram.tools.scope import Scope

log = logging.getLogger(__name__)

HOOK_PATH = "/hooks/claude-code"
OUTPUT_CHARS = 10_000  # Claude Code replaces longer hook output with a preview and a file path
CONTEXT_CHARS = 9_000  # the context's own text: its JSON (escaped line breaks and quotes) must fit OUTPUT_CHARS
SOURCE = "claude-code"


async def handle_claude_code(scope: Scope, event_text: str, agent: str | None, budget: ContextBudget) -> str:
    """The hook's answer to one Claude Code event: its JSON output, or '' when there is nothing to give.

    Raises InvalidInputError for input that is not a hook event; events it has no use for get ''.
    """
    event = _event(event_text)
    name = event.get("hook_event_name")
    session = event.get("session_id") if isinstance(event.get("session_id"), str) else None
    conversation = session or DEFAULT_CONVERSATION

    async def context_for(prompt: str) -> str:
        found = await memory_context(
            scope,
            prompt,
            agent,
            session=session,
            conversation=conversation,
            budget=budget,
            max_chars=CONTEXT_CHARS,
            create_agent=True,
        )
        return found.text

    if name == "SessionStart":
        if session and event.get("source") in ("clear", "compact"):
            await forget_session(scope, agent, session, create_agent=True)
        return hook_output(name, await context_for(""))
    if name not in ("UserPromptSubmit", "Stop"):
        return ""
    message = claude_code_message(event_text)
    if message is None:
        return ""
    if name == "Stop":
        await record_message(scope, agent, conversation, message.role, message.text, source=SOURCE, create_agent=True)
        return ""
    # The embedding worker (a server's) embeds the recorded prompt once its context is found: run together, the
    # two embeddings and the search shared the CPU and the answer waited.
    recorded: list[bool] = []
    quiet = dataclasses.replace(scope, recorded=lambda: recorded.append(True))
    try:
        await record_message(quiet, agent, conversation, message.role, message.text, source=SOURCE, create_agent=True)
        text = await context_for(message.text)
    finally:
        if recorded:
            scope.recorded()
    return hook_output(name, text)


def searches_by_meaning(event_text: str) -> bool:
    """Whether answering this event embeds text: a prompt's memory is searched by meaning (a session's
    start gets core memory and recent activity; a reply is only recorded)."""
    try:
        return _event(event_text).get("hook_event_name") == "UserPromptSubmit"
    except InvalidInputError:
        return False


def _event(event_text: str) -> dict[str, Any]:
    try:
        event = json.loads(event_text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"the hook's input is not JSON ({exc.msg}); is this a Claude Code hook?") from None
    if not isinstance(event, dict):
        raise InvalidInputError("the hook's input is not a JSON object; is this a Claude Code hook?")
    return event


def hook_output(event: str, text: str) -> str:
    """`text` as the event's additionalContext, cut if its JSON would pass OUTPUT_CHARS ('' for no text)."""
    while text:
        output = json.dumps(
            {"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}, ensure_ascii=False
        )
        if len(output) <= OUTPUT_CHARS:
            return output
        # escaping makes the JSON longer than the text: cut in proportion (again, if the rest escapes more)
        keep = min(len(text), len(text) * (OUTPUT_CHARS - 100) // len(output)) - 1
        text = text[:keep].rstrip() + "…" if keep > 0 else ""
    return ""


def build_hook_app(settings: Settings, runtime: Runtime, security: TransportSecuritySettings) -> ASGIApp:
    """`POST /hooks/claude-code[?agent=NAME]` for Claude Code's http hooks, with the Host/Origin checks and the
    body limit of the other routes; the caller's principal is its bearer token's, as for /mcp and /v1."""
    from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecurityMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.types import Receive, Send
    from starlette.types import Scope as AsgiScope

    from engram.server.rest.app import error, status_of
    from engram.server.runtime import principal_of
    from engram.storage.errors import EngramError

    guard = TransportSecurityMiddleware(security)
    budget = settings.context_budget()

    async def app(scope: AsgiScope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response: Response
        if request.method != "POST":
            response = error(405, f"POST a Claude Code hook event to {HOOK_PATH}")
        elif (rejected := await guard.validate_request(request, is_post=False)) is not None:
            response = rejected
        else:
            try:
                memory = await runtime.scope(principal_of(request))
                body = (await request.body()).decode("utf-8", errors="replace")
                output = await handle_claude_code(memory, body, request.query_params.get("agent"), budget)
                response = Response(output, media_type="application/json") if output else Response(status_code=200)
            except EngramError as exc:
                response = error(status_of(exc), str(exc))
            except Exception as exc:  # the hook never blocks Claude Code: say what failed, give no context
                log.exception("the Claude Code hook failed")
                response = JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500)
        await response(scope, receive, send)

    return RequestBodyLimitMiddleware(app, settings.max_request_bytes)
