"""Shared fixtures: the real content library and a Desk built on it (no mocks), the stores; the Slack app
over HTTP against the local Web API (:class:`Bot`, ``bot``: ``tests/test_slack*.py``); the Teams endpoint on
each engine with the local Bot Connector it answers to (``teams``: ``tests/test_teams*.py``)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest
from aiohttp.test_utils import TestClient, TestServer
from slack_server import FakeSlack, SlackSender, load_fixture

from bot.app import SLACK_KEY, create_app
from bot.config import Settings
from bot.slack.adapter import SlackAdapter
from bot.store import Store, open_store
from content.loader import Library, load_library
from handlers import Desk, Request
from tests.connector_server import ENGINES, ConnectorServer, TeamsHarness, _harness

# A fixed "now" so that "N working days from today" lines do not drift with the calendar.
NOW = dt.datetime(2025, 9, 22, 2, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def library() -> Library:
    return load_library()


@pytest.fixture(scope="session")
def desk(library: Library) -> Desk:
    return Desk(library=library)


@pytest.fixture
def ask(desk: Desk):
    """``await ask("/china-filing face")`` -> Reply, through the same handler chain as every surface."""

    async def _ask(text: str, **kw) -> object:
        kw.setdefault("now", NOW)
        return await desk.handle(Request(text=text, **kw))

    return _ask


def postgres_url() -> str | None:
    """The PostgreSQL URL tests may use, or None when no server answers (tests then skip, saying why)."""
    return os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def without_postgres(url: str, problem: str) -> NoReturn:
    """No PostgreSQL at ``url``: skip the test, saying why; but where the PostgreSQL tests must run
    (``CHINADESK_REQUIRE_POSTGRES=1``, which ``.ci/run`` sets), fail instead of passing quietly."""
    message = f"PostgreSQL not reachable at {url}: {problem}"
    if os.environ.get("CHINADESK_REQUIRE_POSTGRES", "").strip().lower() in ("1", "true", "yes", "on"):
        pytest.fail(message + " (CHINADESK_REQUIRE_POSTGRES is set: start PostgreSQL or set TEST_DATABASE_URL)")
    pytest.skip(message)


@pytest.fixture
async def slack_api() -> AsyncIterator[FakeSlack]:
    """A local Slack-compatible Web API on 127.0.0.1 that records what the bot sends."""
    async with FakeSlack() as api:
        yield api


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[Store]:
    """An opened SQLite store in a fresh file (suites that need other backends override this)."""
    s = open_store(f"sqlite:///{tmp_path}/chinadesk.sqlite3")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@contextmanager
def restored_logging() -> Iterator[None]:
    """Put the root handlers and every logger's level back afterwards (for tests that configure logging)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in logging.root.manager.loggerDict})
    try:
        yield
    finally:
        root.handlers[:], level, levels = saved
        root.setLevel(level)
        for name, lvl in levels.items():
            logging.getLogger(name).setLevel(lvl)


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request, tmp_path) -> AsyncIterator[str]:
    """A database URL that several stores may open (like replicas) or reopen (an upgrade): a SQLite file,
    and a fresh PostgreSQL schema (skipped, saying why, when no server answers)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite3'}"
    else:
        from tests.test_store import fresh_pg_schema

        async with fresh_pg_schema() as url:
            yield url


# -------------------------------------------------------------------- Slack (tests/test_slack*.py)


SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0001"
CHANNEL = "C2147483705"
USER = "U2147483697"


@dataclass
class Bot:
    """The running app, the way Slack sees it."""

    http: TestClient
    send: SlackSender
    adapter: SlackAdapter
    api: FakeSlack
    store: Store

    async def settle(self) -> None:
        """Wait for everything the bot started after acknowledging (posts, publishes)."""
        await self.adapter.drain()

    async def command(self, text: str, command: str = "/china-filing", **kw: Any) -> Any:
        body = load_fixture("slash_command")  # each invocation has its own trigger_id, as in Slack
        body.update(text=text, command=command, response_url=self.api.response_url("cmd"),
                    trigger_id=f"{time.time_ns()}.738474920.{secrets.token_hex(8)}")
        return await self.send.command(body, **kw)

    async def event(self, payload: dict, **kw: Any) -> Any:
        response = await self.send.event(payload, **kw)
        assert response.status == 200, await response.text()
        return response

    async def action(self, payload: dict) -> Any:
        payload["response_url"] = self.api.response_url("action")
        response = await self.send.action(payload)
        assert response.status == 200, await response.text()
        return response


def slack_env(api: FakeSlack, **extra: str) -> dict[str, str]:
    return {"SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": api.api_url, **extra}


@asynccontextmanager
async def running(env: dict[str, str], desk: Desk, store: Store, api: FakeSlack) -> AsyncIterator[Bot]:
    settings = Settings.from_env(env)
    app = create_app(settings, desk, store, background=False)
    async with TestClient(TestServer(app)) as http:
        yield Bot(http, SlackSender(http, SECRET), app[SLACK_KEY], api, store)


@pytest.fixture
async def bot(slack_api: FakeSlack, store: Store, desk: Desk) -> AsyncIterator[Bot]:
    async with running(slack_env(slack_api, SLACK_BOT_TOKEN=slack_api.bot_token), desk, store, slack_api) as b:
        yield b


def texts(blocks: list[dict]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def buttons(blocks: list[dict]) -> dict[str, dict]:
    return {e["action_id"]: e for b in blocks if b["type"] == "actions" for e in b["elements"]}


# -------------------------------------------------------------------- Teams (tests/test_teams*.py)


@pytest.fixture
async def connector() -> AsyncIterator[ConnectorServer]:
    server = await ConnectorServer().start()
    yield server
    await server.close()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Every contract test runs on both engines: the Agents SDK (default) and the deprecated botbuilder."""
    if request.param == "botbuilder":
        pytest.importorskip("botbuilder.core", reason="the botbuilder engine needs pip install -e '.[botbuilder]'")
    return request.param


@pytest.fixture
async def teams(desk: Desk, store: Store, connector: ConnectorServer, engine: str) -> AsyncIterator[TeamsHarness]:
    server = await _harness(desk, store, connector, {"DATABASE_URL": "sqlite:///:memory:"}, engine)
    yield TeamsHarness(server, connector, store)
    await server.close()
