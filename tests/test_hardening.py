"""Faults and attacks found on 2026-12-01 (issue 11): what must hold afterwards, over real HTTP.

Unparseable bodies are the client's error; signed but malformed Slack payloads are refused quietly;
readiness is set without a probe; smaller rough edges (a lone surrogate, a bad ``--timezone``, a second
Teams vote, ``TEAMS=off``, local mode, the start-up banner).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from slack_server import FakeSlack, SlackSender

from bot.app import create_app
from bot.config import Settings
from bot.store import Store
from handlers import Desk

SECRET = "hardening-signing-secret-" + "3" * 12
TEAMS_APP = {"MICROSOFT_APP_ID": "3f1a7c2e-5b8d-4e6f-9a0b-1c2d3e4f5a6b", "MICROSOFT_APP_PASSWORD": "not-a-secret"}


def deeply_nested(depth: int = 1000) -> bytes:
    """About 4 KB of JSON nested ``depth`` deep: more than Python's parser will recurse into."""
    return ('{"type": "message", "value": ' + "[" * depth + "]" * depth + "}").encode()


@pytest.fixture
async def slack_client(slack_api: FakeSlack, store: Store, desk: Desk) -> AsyncIterator[TestClient]:
    settings = Settings.from_env({"SLACK_SIGNING_SECRET": SECRET, "SLACK_BOT_TOKEN": slack_api.bot_token,
                                  "SLACK_API_URL": slack_api.api_url})
    async with TestClient(TestServer(create_app(settings, desk, store, background=False))) as client:
        yield client


def lines_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def assert_one_short_line(caplog: pytest.LogCaptureFixture) -> None:
    logged = lines_logged(caplog)
    assert len(logged) <= 1, [r.getMessage() for r in logged]
    for record in logged:
        assert record.exc_info is None, "a traceback was logged"
        assert len(record.getMessage()) < 200


# ------------------------------------------------------------------------------- unparseable bodies


@pytest.mark.parametrize("depth", [1000, 5000])
async def test_a_deeply_nested_slack_body_is_a_400_with_one_short_log_line(
    slack_client: TestClient, caplog: pytest.LogCaptureFixture, depth: int,
):
    send = SlackSender(slack_client, SECRET)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        response = await send.post(deeply_nested(depth).decode(), "application/json")
    assert response.status == 400
    assert_one_short_line(caplog)
    # Unsigned, it is refused like any unsigned request, before anyone reads it.
    caplog.clear()
    response = await slack_client.post("/slack/events", data=deeply_nested(depth),
                                       headers={"Content-Type": "application/json"})
    assert response.status == 401
    assert all(r.exc_info is None for r in caplog.records)


@pytest.mark.parametrize("env", [{}, TEAMS_APP], ids=["local-mode", "with-app-id"])
@pytest.mark.parametrize("depth", [1000, 5000])
async def test_a_deeply_nested_teams_body_is_a_400_with_one_short_log_line(
    store: Store, desk: Desk, caplog: pytest.LogCaptureFixture, env: dict[str, str], depth: int,
):
    app = create_app(Settings.from_env(env), desk, store, background=False)
    async with TestClient(TestServer(app)) as client:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            response = await client.post("/api/messages", data=deeply_nested(depth),
                                         headers={"Content-Type": "application/json"})
        assert response.status == 400
        assert (await response.json())["error"]
        assert_one_short_line(caplog)


async def test_a_nested_value_inside_a_valid_activity_is_answered_or_refused_never_a_500(
    store: Store, desk: Desk,
):
    app = create_app(Settings.from_env({}), desk, store, background=False)
    async with TestClient(TestServer(app)) as client:
        for depth in (100, 900):
            body = json.dumps({"type": "message", "id": f"deep-{depth}", "serviceUrl": "http://127.0.0.1:9/",
                               "conversation": {"id": "a:1"}, "from": {"id": "u"}, "recipient": {"id": "b"},
                               "text": "help", "value": json.loads("[" * depth + "]" * depth)})
            response = await client.post("/api/messages", data=body, headers={"Content-Type": "application/json"})
            assert response.status < 500, (depth, response.status)


# ------------------------------------------------------------------------------------- readiness


def ready_gauge() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("chinadesk_ready") or 0.0


async def test_ready_is_set_when_the_server_is_ready_and_cleared_when_it_drains(store: Store, desk: Desk):
    from bot.observability import READY

    READY.set(0)
    server = TestServer(create_app(Settings.from_env({}), desk, store))
    await server.start_server()
    try:
        assert ready_gauge() == 1  # nobody asked /readyz
    finally:
        await server.close()
    assert ready_gauge() == 0

