"""The local chat page in a real headless browser (Debian's Chromium, driven by Playwright).

Skipped, saying why, where Playwright (``pip install -e ".[browser]"``) or a Chromium binary
(``apt-get install chromium``) is missing; everything else about the page is tested over HTTP in
tests/test_web_chat.py.
"""

from __future__ import annotations

import os
import shutil

import pytest
from aiohttp.test_utils import TestServer

from bot.app import create_app
from bot.config import Settings
from bot.store import Store
from handlers import Desk

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="Playwright is not installed (pip install -e '.[browser]'): no browser test")

CHROMIUM = os.environ.get("CHROMIUM") or next(
    (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium installed (apt-get install chromium, or set CHROMIUM=/path): no browser test")


async def test_a_conversation_in_the_browser(desk: Desk, store: Store) -> None:
    app = create_app(Settings.from_env({}).bound_to("127.0.0.1"), desk, store, background=False)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    problems: list[str] = []
    try:
        async with playwright_api.async_playwright() as p:
            try:
                browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
            except playwright_api.Error as exc:  # a binary that cannot start here (libraries, sandbox): say so
                pytest.skip(f"Chromium at {CHROMIUM} could not start: {str(exc)[:200]}")
            page = await browser.new_page()
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))  # an alert() would be XSS
            page.on("request", lambda r: None if r.url.startswith(base) else problems.append(f"outside: {r.url}"))
            cards = page.locator("#log article.card")

            async def ask(text: str, count: int) -> playwright_api.Locator:
                await page.fill("#text", text)
                await page.press("#text", "Enter")
                await cards.nth(count - 1).wait_for(timeout=30_000)
                return cards.nth(count - 1)

            await page.goto(base + "/")
            await page.wait_for_selector("body[data-ready=true]")

            first = await ask("what is the standard contract route", 1)
            assert await first.get_attribute("data-topic") == "standard-contract"
            assert await first.locator("h2").inner_text()
            sources = first.locator("ol.sources a")
            assert await sources.count() >= 1
            assert (await sources.first.get_attribute("href")).startswith("https://")
            assert await first.locator(".caveat").count() >= 1

            # A follow-up in the same conversation leans on it.
            follow = await ask("what documents do we need?", 2)
            assert await follow.get_attribute("data-topic") == "standard-contract"

            # A related-command button runs its command and its card comes back.
            await follow.locator(".actions button.command").first.click()
            await cards.nth(2).wait_for(timeout=30_000)
            assert await cards.nth(2).get_attribute("data-topic") == "standard-contract"
            assert await cards.nth(2).locator("ol.checklist li").count() >= 1  # the full filing card

            # An example on the page runs too.
            await page.click('#examples button[data-command="/china-filing help"]')
            await cards.nth(3).wait_for(timeout=30_000)
            assert "kind-help" in (await cards.nth(3).get_attribute("class"))

            # What a user types is shown as text, never as markup.
            typed = "<img src=x onerror=alert(1)> **bold** `code`"
            await ask("/china-platform " + typed, 5)
            assert await page.locator("#log img").count() == 0
            assert (await page.locator("#log .mine").last.inner_text()) == "/china-platform " + typed

            # A new conversation has no context to lean on.
            await page.click("#new")
            assert await cards.count() == 0
            fresh = await ask("what documents do we need?", 1)
            assert await fresh.get_attribute("data-topic") != "standard-contract"
            await browser.close()
    finally:
        await server.close()
    assert not problems, problems
