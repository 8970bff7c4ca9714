"""The web memory browser in a real Chromium (Debian's, driven by Playwright): what a person sees and does,
against `engram serve --transport http` with tokens and `engram ui` without, each on a real database.

The first test also saves the README's screenshots (docs/ui-*.png, 1280 by 800)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
from mcp.client.client import Client
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Request,
    Response,
    ViewportSize,
    async_playwright,
    expect,
)

from engram.server.send_message import NO_LLM
from engram.server.ui import CONTENT_SECURITY_POLICY
from tests.conftest import call, engram_command, engram_http, free_port, http_client, minimal_environment

CHROMIUM = Path("/usr/lib/chromium/chromium")
DOCS = Path(__file__).parents[2] / "docs"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}: apt-get install -y --no-install-recommends chromium (as .ci/run does)",
    ),
]

ALICE = "alice-token-0123456789abcdef"
TOKENS = {"ENGRAM_TOKENS": f"alice={ALICE}"}
REPLY = "Noted: Dana prefers email."
MOCKED_MODEL = {"ENGRAM_LLM_MODEL": "openai/gpt-4o-mini", "ENGRAM_LLM_OPTIONS": json.dumps({"mock_response": REPLY})}
HOSTILE = 'Pasted from a web page: <img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script>'
PASSAGES = [
    ("Dana's order #1042 shipped on 3 March from the Porto warehouse.", ["orders"]),
    ("Dana prefers email over phone calls, and answers within a day.", ["preferences"]),
    ("The Pro plan renews every January; Dana asked for invoices in EUR.", ["billing"]),
    ("Dana is planning a trip to Lisbon in May with her sister.", ["travel"]),
    (HOSTILE, ["untrusted"]),
]
TRIP = [
    ("user", "I'm going to Lisbon in May. Any tips for the Alfama district?"),
    ("assistant", "Alfama is best on foot, early in the morning; tram 28 climbs to the castle."),
    ("user", "Great. And where can we hear fado?"),
    ("assistant", "Try a small tasca in Alfama for fado, and book ahead on weekends."),
    ("user", "Thanks, I'll book the Saturday."),
]


@dataclass
class Watched:
    """What the page asked for and what went wrong in it, recorded from the first request on."""

    requests: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "METHOD /path STATUS" of each answer >= 400
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def unexpected_console_errors(self) -> list[str]:
        """Console errors, less Chromium's own line for each refused request (its 'Failed to load resource'):
        those requests are checked one by one through `refused`."""
        return [text for text in self.console_errors if not text.startswith("Failed to load resource")]


def watch(page: Page) -> Watched:
    watched = Watched()

    def requested(request: Request) -> None:
        watched.requests.append(request.url)

    def answered(response: Response) -> None:
        if response.status >= 400:
            watched.refused.append(f"{response.request.method} {urlsplit(response.url).path} {response.status}")

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.console_errors.append(message.text)

    def crashed(error: Exception) -> None:
        watched.page_errors.append(str(error))

    page.on("request", requested)
    page.on("response", answered)
    page.on("console", console)
    page.on("pageerror", crashed)
    return watched


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


async def screenshot(page: Page, name: str) -> None:
    """A screenshot for the README, of what the viewport shows (1280 by 800)."""
    DOCS.mkdir(exist_ok=True)
    await page.screenshot(path=DOCS / f"ui-{name}.png")


async def seed(mcp: Client) -> None:
    await call(
        mcp,
        "agent_create",
        name="support-bot",
        description="Acme's support agent for Dana's account",
        blocks=[
            {"label": "persona", "value": "I am Acme's support agent. I keep answers short and friendly."},
            {"label": "human", "value": "Name: Dana. Plan: Pro.", "limit": 200},
            {"label": "policies", "value": "Refunds within 30 days of delivery.", "read_only": True},
        ],
    )
    for text, tags in PASSAGES:
        await call(mcp, "archival_memory_insert", agent="support-bot", content=text, tags=tags)
    for role, text in TRIP:
        await call(
            mcp, "conversation_record", agent="support-bot", conversation="trip-planning", role=role, content=text
        )


def block(page: Page, label: str) -> Locator:
    return page.locator(f"article.block[data-label='{label}']")


async def core_memory(mcp: Client) -> str:
    return str((await call(mcp, "core_memory_view", agent="support-bot"))["text"])


async def test_a_person_signs_in_and_curates_an_agents_memory(database_url: str) -> None:
    async with (
        engram_http(database_url, environment=TOKENS | MOCKED_MODEL) as base_url,
        http_client(base_url, ALICE) as mcp,
        chromium() as browser,
    ):
        await seed(mcp)
        page = await browser.new_page(viewport=DESKTOP)
        watched = watch(page)

        # Tokens are configured: the page asks for one, and refuses a wrong one with the API's words.
        await page.goto(base_url)
        await expect(page.get_by_role("heading", name="Sign in to Engram")).to_be_visible()
        await page.get_by_label("Token").fill("not-a-token")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_have_text("invalid or revoked token")
        await page.get_by_label("Token").fill(ALICE)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Agents")).to_be_visible()
        assert await page.evaluate("sessionStorage.getItem('engram.token')") == ALICE

        # Agents: counts from the statistics route; create one.
        support = page.locator("li.agent", has=page.get_by_role("link", name="support-bot"))
        await expect(support.locator("dd").nth(1)).to_have_text(str(len(PASSAGES)))  # passages
        await expect(support.locator("dd").nth(3)).to_have_text(str(len(TRIP)))  # messages
        await page.get_by_label("Name").fill("scratch")
        await page.get_by_label("Human").fill("Someone trying the memory browser.")
        await page.get_by_role("button", name="Create agent").click()
        await expect(page.get_by_role("link", name="scratch")).to_be_visible()
        await expect(page.locator("li.agent")).to_have_count(2)
        await expect(page.locator("li.agent dd", has_text="counting…")).to_have_count(0)
        await screenshot(page, "agents")

        # Core memory: edit a block (its limit holds as one types), read it back through MCP, see the diff, undo.
        await page.get_by_role("link", name="support-bot").click()
        human = block(page, "human")
        await expect(human.locator(".text")).to_have_text("Name: Dana. Plan: Pro.")
        await expect(block(page, "policies").get_by_text("read-only")).to_be_visible()
        await expect(block(page, "policies").get_by_role("button", name="Edit", exact=True)).to_be_disabled()
        await human.get_by_role("button", name="Edit", exact=True).click()
        editor = human.get_by_label("Text of human")
        await editor.fill("x" * 201)  # past the block's limit of 200: not taken
        await expect(editor).to_have_value("Name: Dana. Plan: Pro.")
        await expect(human.get_by_role("alert")).to_have_text(
            "The limit is 200 characters; shorten the text to add more."
        )
        await editor.fill("Name: Dana. Plan: Pro. Prefers email.")
        await human.get_by_role("button", name="Save").click()
        await expect(human.get_by_role("status")).to_have_text(re.compile(r"Saved as version \d+\."))
        assert "Name: Dana. Plan: Pro. Prefers email." in await core_memory(mcp)
        await human.get_by_role("button", name="History").click()
        await expect(human.locator(".diff ins")).to_have_text(" Prefers email.")
        await human.evaluate("element => element.scrollIntoView()")
        await screenshot(page, "core-memory")
        await human.get_by_role("button", name="Undo").click()
        await expect(human.locator(".block-body .text")).to_have_text("Name: Dana. Plan: Pro.")
        memory = await core_memory(mcp)
        assert "Name: Dana. Plan: Pro." in memory and "Prefers email" not in memory

        # Archival memory: hostile text is shown as text; a search finds the expected passage first.
        await page.get_by_role("link", name="Archival memory").click()
        await expect(page.locator("li.passage")).to_have_count(len(PASSAGES))
        await expect(page.locator("li.passage .text").first).to_have_text(HOSTILE)  # newest first
        assert await page.locator("li.passage img, li.passage script").count() == 0
        assert await page.evaluate("window.__pwned") is None
        await page.get_by_label("Search archival memory").fill("when did order 1042 ship?")
        await page.get_by_role("button", name="Search", exact=True).click()
        first = page.locator("ol.hits li.passage").first
        await expect(first.locator(".text")).to_have_text(PASSAGES[0][0])
        await expect(first.locator(".score")).to_have_text(re.compile(r"relevance (0\.\d\d|1\.00)"))
        await expect(first.locator(".badge.leg-words")).to_have_text("words")
        await screenshot(page, "archival")

        # Conversations: search across them (the hit marked, its neighbours around it), open a transcript.
        await page.get_by_role("link", name="Conversations").click()
        await page.get_by_label("Search all conversations").fill("fado")
        await page.get_by_role("button", name="Search").click()
        hit = page.locator("li.hit").first
        await expect(hit.locator("mark").first).to_have_text(re.compile("fado", re.IGNORECASE))
        await expect(hit.locator(".around").first).to_be_visible()
        await screenshot(page, "conversation-search")
        await hit.get_by_role("link", name="trip-planning").click()
        await expect(page.locator(".transcript li.message")).to_have_count(len(TRIP))
        await expect(page.locator(".transcript li.message .text").last).to_have_text(TRIP[-1][1])
        await expect(page.locator(".summary")).to_contain_text("No summary yet")
        await screenshot(page, "conversation")

        # Chat: the built-in agent's answer arrives streamed.
        await page.get_by_role("link", name="Chat").click()
        await page.get_by_role("textbox", name="Message").fill("Please remember that I prefer email.")
        await page.get_by_role("button", name="Send").click()
        # (the first turn imports litellm in the server, which takes seconds)
        await expect(page.locator(".chat-log li.assistant .text").last).to_have_text(REPLY, timeout=60_000)
        await expect(page.get_by_role("status")).to_have_text("Done.")
        await screenshot(page, "chat")

        # Activity: memory growth as a chart, the embedding queue, health.
        await page.get_by_role("link", name="Activity").click()
        await expect(page.locator(".chart svg rect.passages")).to_have_count(30)
        await expect(page.get_by_text("Healthy: the database answers with the current schema.")).to_be_visible()
        await expect(page.get_by_text("Embedding queue")).to_be_visible()
        await screenshot(page, "activity")

        # Delete an agent, confirmed in a dialog.
        await page.get_by_role("link", name="Agents", exact=True).click()
        await page.get_by_role("button", name="Delete agent scratch").click()
        await page.get_by_role("dialog").get_by_role("button", name="Delete agent").click()
        await expect(page.get_by_role("status").first).to_have_text("Deleted scratch and 2 blocks.")
        await expect(page.locator("li.agent")).to_have_count(1)
        listed = await call(mcp, "agent_list")
        assert [agent["name"] for agent in listed["agents"]] == ["support-bot"]

        # A phone's width: nothing wider than the screen.
        await page.set_viewport_size(PHONE)
        for tab in ("Core memory", "Archival memory", "Conversations", "Activity", "Chat"):
            await page.goto(f"{base_url}/#/agents")
            await page.get_by_role("link", name="support-bot").click()
            await page.get_by_role("link", name=tab).click()
            await expect(page.locator("section.tab .loading")).to_have_count(0)
            assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], tab

    assert all(urlsplit(url).hostname == "127.0.0.1" for url in watched.requests), watched.requests
    assert watched.page_errors == []
    assert watched.unexpected_console_errors() == []
    # The only refused requests: the token check without a token and with the wrong one.
    assert watched.refused == ["GET /v1/agents/ 401", "GET /v1/agents/ 401"]


@asynccontextmanager
async def engram_ui(database_url: str, folder: Path) -> AsyncIterator[tuple[str, str, str]]:
    """`engram ui` with a stand-in for the default browser (BROWSER: a script that prints the address it is
    asked to open, to the stdout it shares with `engram ui`); yields the address, and what was printed to
    stdout and to stderr."""
    opener = folder / "open-browser"
    opener.write_text('#!/bin/sh\necho "browser opened $1"\n')
    opener.chmod(0o755)
    port = free_port()
    env = {**minimal_environment(), "ENGRAM_DATABASE_URL": database_url, "BROWSER": str(opener)}
    process = await anyio.open_process([engram_command(), "ui", "--port", str(port)], env=env, stdin=subprocess.DEVNULL)
    assert process.stdout is not None and process.stderr is not None
    try:
        with anyio.fail_after(60):
            printed = logged = ""
            while "browser opened" not in printed:
                printed += (await process.stdout.receive()).decode()
            while "memory browser" not in logged:
                logged += (await process.stderr.receive()).decode()
            base_url = f"http://127.0.0.1:{port}"
            async with httpx2.AsyncClient() as probe:
                # The socket listens before the app starts: this waits in its backlog until the app answers.
                assert (await probe.get(f"{base_url}/healthz", timeout=60)).status_code == 200
        yield base_url, printed, logged
    finally:
        process.terminate()
        with anyio.move_on_after(30):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_engram_ui_opens_the_browser_on_loopback_without_a_token(database_url: str, tmp_path: Path) -> None:
    async with engram_ui(database_url, tmp_path) as (base_url, printed, logged), chromium() as browser:
        announcement = f"Engram's memory browser: {base_url}/ (Ctrl+C stops it)\n"
        assert printed == f"{announcement}browser opened {base_url}/\n"
        assert announcement in logged

        page = await browser.new_page(viewport=DESKTOP)
        watched = watch(page)
        response = await page.goto(base_url)
        assert response is not None
        headers = response.headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"

        # No tokens on loopback: straight to the agents, nothing to sign in with.
        await expect(page.get_by_role("heading", name="Agents")).to_be_visible()
        await expect(page.get_by_text("local user")).to_be_visible()
        await expect(page.get_by_text("No agents yet.")).to_be_visible()
        await page.get_by_label("Name").fill("offline")
        await page.get_by_role("button", name="Create agent").click()

        await expect(page.get_by_role("link", name="offline")).to_be_visible()

        # Keyboard only: a view starts with its heading focused; Tab reaches the agent's link, Enter opens it.
        await page.reload()
        await expect(page.get_by_role("heading", name="Agents")).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("link", name="offline")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="offline")).to_be_focused()
        await expect(page.locator("article.block")).to_have_count(2)  # Engram's default persona and human

        # Chat without a model: the API's message, as it gave it.
        await page.get_by_role("link", name="Chat").click()
        await expect(page.get_by_text("No model is configured for the built-in agent")).to_be_visible()
        await page.get_by_role("textbox", name="Message").fill("Hello?")
        await page.get_by_role("button", name="Send").click()
        await expect(page.get_by_role("alert")).to_have_text(
            NO_LLM.replace("or call it from a host that supports MCP sampling", "for REST")
        )

        await page.set_viewport_size(PHONE)
        await page.goto(f"{base_url}/#/agents")
        await expect(page.get_by_role("link", name="offline")).to_be_visible()
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

        async with httpx2.AsyncClient(base_url=base_url) as http:
            for path in ("/ui/../http.py", "/ui/%2e%2e/http.py", "/ui/__init__.py", "/ui/nothing.js"):
                assert (await http.get(path)).status_code == 404, path
            refused = await http.post("/", content=b"{}")
            assert (refused.status_code, refused.headers["content-security-policy"]) == (405, CONTENT_SECURITY_POLICY)
            assert (await http.get("/ui/app.js")).headers["content-type"] == "text/javascript; charset=utf-8"
            assert (await http.get("/", headers={"Host": "evil.example"})).status_code == 421

    assert all(urlsplit(url).hostname == "127.0.0.1" for url in watched.requests), watched.requests
    assert watched.page_errors == []
    assert watched.unexpected_console_errors() == []
    # The only refused request: the message no model could answer.
    assert len(watched.refused) == 1
    assert re.fullmatch(r"POST /v1/agents/agent-[0-9a-f-]{36}/messages 400", watched.refused[0]), watched.refused
