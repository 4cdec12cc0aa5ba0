"""The local chat page (bot/web) over HTTP, into the real aiohttp app from :func:`bot.app.create_app`.

What a person trying the bot in a browser relies on: the page is served at ``/`` on a loopback server
(and only there unless WEB_CHAT=on), questions and commands come back as cards (sources, caveats,
related commands that run), a follow-up uses the conversation's context, and bad or cross-site
requests get a clear refusal that changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.config import ConfigError, Settings
from bot.server import startup_lines
from bot.store import Store
from bot.web import COOKIE, MAX_BODY, TOKEN_HEADER
from handlers import Desk
from handlers.request import MAX_INPUT_CHARS


@asynccontextmanager
async def serving(settings: Settings, desk: Desk, store: Store) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings, desk, store, background=False))) as client:
        yield client


def local(**env: str) -> Settings:
    """The settings ``chinadesk serve`` uses on its default address (127.0.0.1)."""
    return Settings.from_env(env).bound_to("127.0.0.1")


class Browser:
    """What the chat page's script does: keep the session cookie, send the token it was given."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.token = ""

    async def open(self) -> str:
        resp = await self.client.get("/")
        assert resp.status == 200
        page = await resp.text()
        self.token = re.search(r'name="chinadesk-token" content="([^"]+)"', page)[1]
        return page

    async def post(self, body: Any, *, headers: dict[str, str] | None = None, **kw: Any):
        base = {TOKEN_HEADER: self.token, "Origin": str(self.client.make_url("")).rstrip("/")}
        if not isinstance(body, (bytes, str)):
            kw["json"] = body
        else:
            kw["data"] = body
            base["Content-Type"] = "application/json"
        return await self.client.post("/chat/api", headers={**base, **(headers or {})}, **kw)

    async def ask(self, text: str, conversation: str = "c1", **extra: Any) -> dict[str, Any]:
        resp = await self.post({"text": text, "conversation": conversation, **extra})
        assert resp.status == 200, await resp.text()
        return (await resp.json())["reply"]


@pytest.fixture
async def browser(desk: Desk, store: Store) -> AsyncIterator[Browser]:
    async with serving(local(), desk, store) as client:
        b = Browser(client)
        await b.open()
        yield b


# ------------------------------------------------------------------------------------------ the page


async def test_the_page_is_served_at_the_root_with_its_script_and_no_outside_resources(desk: Desk, store: Store):
    async with serving(local(), desk, store) as client:
        resp = await client.get("/")
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
        assert "<title>China Desk</title>" in page and 'id="ask"' in page
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        cookie = resp.cookies[COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert f'content="{cookie.value}"' in page  # the double-submit token is the session cookie
        for name, kind in (("chat.js", "text/javascript"), ("chat.css", "text/css")):
            static = await client.get(f"/chat/static/{name}")
            assert static.status == 200 and static.content_type == kind
            assert not re.search(r"https?://", await static.text()), name  # no CDN, nothing from elsewhere
        assert not re.search(r"(src|href)=\"(https?:)?//", page)
        assert (await client.get("/chat/static/../__init__.py")).status == 404
        # Examples on the page are buttons that run their command; the same session keeps its cookie.
        assert 'data-command="/china-filing help"' in page
        again = await client.get("/")
        assert COOKIE not in again.cookies


async def test_a_command_comes_back_as_a_card_with_sources_caveats_and_buttons(browser: Browser):
    card = await browser.ask("/china-filing facial-recognition from 2025-09-20")
    assert card["kind"] == "deadline" and card["deadline"]["heading"].startswith("Due ")
    assert card["sources"]["items"] and all(s["url"].startswith("https://") for s in card["sources"]["items"])
    assert any("legal advice" in c for c in card["caveats"])
    filing = await browser.ask("/china-filing frt")
    assert filing["kind"] == "filing" and filing["checklist"]["items"] and filing["fields"]
    # A related-command button runs its command.
    assert filing["buttons"]
    for button in (await browser.ask("what is the standard contract route"))["buttons"]:
        opened = await browser.ask(button["command"])
        assert opened["kind"] in ("filing", "sector", "platform", "calendar"), button


async def test_a_question_is_answered_with_its_source_and_a_follow_up_uses_the_conversation(browser: Browser):
    first = await browser.ask("what is the standard contract route", conversation="a")
    assert first["kind"] == "answer" and first["topic"] == "standard-contract" and first["sources"]
    follow = await browser.ask("what documents do we need?", conversation="a")
    assert follow["kind"] == "answer" and follow["topic"] == "standard-contract"
    # Another conversation (the page's "New conversation") has no context to lean on.
    fresh = await browser.ask("what documents do we need?", conversation="b")
    assert fresh.get("topic") != "standard-contract"


async def test_another_browser_session_does_not_share_the_conversation(desk: Desk, store: Store):
    async with serving(local(), desk, store) as one, serving(local(), desk, store) as two:
        first, second = Browser(one), Browser(two)
        await first.open()
        await second.open()
        assert (await first.ask("what is the standard contract route"))["topic"] == "standard-contract"
        assert (await second.ask("what documents do we need?")).get("topic") != "standard-contract"


async def test_menus_errors_and_chinese_are_cards_too(browser: Browser):
    menu = await browser.ask("/china-filing")
    assert menu["kind"] == "menu" and menu["menu"]["items"][0]["command"].startswith("/china-filing ")
    error = await browser.ask("/china-filing facial-recognitoin")
    assert error["kind"] == "error" and any(b["command"] == "/china-filing facial-recognition"
                                            for b in error["buttons"])
    zh = await browser.ask("小红书是什么？")
    assert zh["language"] == "zh" and zh["kind"] == "answer"
    assert all(b["command"].endswith("--lang zh") for b in zh["buttons"])


async def test_user_text_comes_back_as_plain_text_never_markup(browser: Browser):
    card = await browser.ask("/china-platform <img src=x onerror=alert(1)>")
    shown = card["title"] + card["text"]
    assert "<img src=x" in shown and "&lt;" not in shown  # plain text: the page sets textContent


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("body", "says"), [
    ({"text": "x" * (MAX_INPUT_CHARS + 1)}, "too long"),
    ({"text": "a\x00b\x00c" * 10}, "binary"),
    ({"text": "   "}, "Type a command"),
    ({"question": "hi"}, "Type a command"),
    (["not", "an", "object"], "Type a command"),
    (b'{"text": "\xff\xfe caf\xe9"}', "not UTF-8"),
    (b'{"text": "unfinished', "one piece"),
    (b'{"text": "' + b"y" * (MAX_BODY + 10) + b'"}', "too long"),
])
async def test_bad_input_gets_a_friendly_400_and_changes_nothing(browser: Browser, body: Any, says: str):
    await browser.ask("what is the standard contract route", conversation="keep")
    resp = await browser.post(body)
    assert resp.status == 400
    assert says in (await resp.json())["error"]
    assert (await browser.ask("what documents do we need?", conversation="keep"))["topic"] == "standard-contract"


async def test_a_chunked_oversize_body_is_refused_without_reading_it_all(browser: Browser):
    async def chunks():
        for _ in range(20):
            yield b"z" * 4096

    resp = await browser.client.post("/chat/api", data=chunks(), headers={
        TOKEN_HEADER: browser.token, "Content-Type": "application/json"})
    assert resp.status == 400 and "too long" in (await resp.json())["error"]


# ------------------------------------------------------------------------------------------ same origin


@pytest.mark.parametrize(("headers", "status"), [
    ({"Origin": "http://evil.example"}, 403),  # another site's page posting to us
    ({"Origin": "null"}, 403),  # a sandboxed frame or a file:// page
    ({"Sec-Fetch-Site": "cross-site"}, 403),
    ({"Sec-Fetch-Site": "same-site"}, 403),
    ({TOKEN_HEADER: ""}, 403),  # no token: not our page's script
    ({TOKEN_HEADER: "x" * 43}, 403),  # a guessed token
    ({"Content-Type": "application/x-www-form-urlencoded"}, 400),  # what a cross-site <form> can send
    ({"Content-Type": "text/plain"}, 400),
])
async def test_cross_site_posts_are_refused(browser: Browser, headers: dict[str, str], status: int):
    resp = await browser.post(b'{"text": "/china-filing"}', headers=headers)
    assert resp.status == status
    assert (await resp.json())["error"]


async def test_a_post_without_the_session_cookie_is_refused(desk: Desk, store: Store):
    async with serving(local(), desk, store) as client:
        page = await (await client.get("/")).text()
        token = re.search(r'name="chinadesk-token" content="([^"]+)"', page)[1]
        client.session.cookie_jar.clear()
        resp = await client.post("/chat/api", json={"text": "/china-filing"}, headers={TOKEN_HEADER: token})
        assert resp.status == 403 and "Reload the page" in (await resp.json())["error"]


async def test_a_dns_rebinding_host_is_not_served(browser: Browser):
    """A page on evil.example that re-resolves its name to 127.0.0.1 sends Host: evil.example."""
    for host in ("evil.example", "evil.example:8080", "localhost.evil.example"):
        assert (await browser.client.get("/", headers={"Host": host})).status == 404
        resp = await browser.post({"text": "/china-filing"}, headers={"Host": host, "Origin": f"http://{host}"})
        assert resp.status == 404
    for host in ("localhost", "127.0.0.1:8080", "[::1]:8080"):
        assert (await browser.client.get("/", headers={"Host": host})).status == 200


# ------------------------------------------------------------------------------------------ on and off


@pytest.mark.parametrize(("env", "host", "on"), [
    ({}, "127.0.0.1", True),
    ({}, "::1", True),
    ({}, "0.0.0.0", False),  # every address: a server others can reach shows no unauthenticated page
    ({"WEB_CHAT": "off"}, "127.0.0.1", False),
    ({"WEB_CHAT": "on"}, "0.0.0.0", True),
    ({"WEB_CHAT": "ON "}, "10.0.0.5", True),
])
async def test_web_chat_is_on_by_default_only_on_loopback(desk: Desk, store: Store, env, host, on):
    settings = Settings.from_env(env).bound_to(host)
    assert settings.web_chat is on
    async with serving(settings, desk, store) as client:
        page = await client.get("/")
        assert page.status == (200 if on else 404)
        api = await client.post("/chat/api", json={"text": "/china-filing"})
        assert api.status == (403 if on else 404)  # on: refused without the page's session; off: not there
        assert (await client.get("/healthz")).status == 200
    lines = "\n".join(startup_lines(settings, host, 8080))
    assert ("Chat page: http://" in lines) is on


async def test_web_chat_on_any_host_when_switched_on(desk: Desk, store: Store):
    async with serving(Settings.from_env({"WEB_CHAT": "on"}).bound_to("0.0.0.0"), desk, store) as client:
        assert (await client.get("/", headers={"Host": "chinadesk.internal:8080"})).status == 200


def test_web_chat_setting_is_checked():
    with pytest.raises(ConfigError, match="WEB_CHAT"):
        Settings.from_env({"WEB_CHAT": "sometimes"})
    assert Settings.from_env({}).web_chat is None  # decided when the address is known (bound_to)
    assert Settings.from_env({}).bound_to("localhost").web_chat is True
