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
from slack_server import FakeSlack, SlackSender, load_fixture

from bot.app import SLACK_KEY, create_app
from bot.config import Settings
from bot.store import Store
from handlers import Desk

SECRET = "hardening-signing-secret-" + "3" * 12
TEAMS_APP = {"MICROSOFT_APP_ID": "3f1a7c2e-5b8d-4e6f-9a0b-1c2d3e4f5a6b", "MICROSOFT_APP_PASSWORD": "not-a-secret",
             "MICROSOFT_APP_TENANT_ID": "9c4e2b7a-1d3f-4a5b-8c6d-7e8f9a0b1c2d"}


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



# ------------------------------------------------------------------------- malformed Slack payloads


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info is not None]


async def test_signed_but_malformed_slack_payloads_are_refused_quietly(
    slack_client: TestClient, slack_api: FakeSlack, caplog: pytest.LogCaptureFixture,
):
    send = SlackSender(slack_client, SECRET)
    home = load_fixture("app_home_opened")
    del home["event"]["user"]
    listed = load_fixture("app_mention")
    listed.update(event_id="EvList1")
    listed["event"]["text"] = ["<@UBOT>", "what is xiaohongshu?"]
    dm = load_fixture("message_im")
    dm.update(event_id="EvList2")
    dm["event"]["text"] = {"nested": "what is xiaohongshu?"}
    share = load_fixture("block_actions_share")
    del share["channel"], share["container"]["channel_id"]
    with caplog.at_level(logging.INFO):
        for payload in (home, listed, dm):
            assert (await send.event(payload)).status in (200, 400)
        assert (await send.action(share)).status in (200, 400)
        await slack_client.app[SLACK_KEY].drain()
    assert tracebacks(caplog) == []
    assert slack_api.posts() == []  # nothing was sent anywhere
    assert all(len(r.getMessage()) < 200 for r in caplog.records if r.levelno >= logging.WARNING)


async def test_a_lone_surrogate_never_reaches_outgoing_json(
    slack_client: TestClient, slack_api: FakeSlack, caplog: pytest.LogCaptureFixture,
):
    event = load_fixture("app_mention")
    event.update(event_id="EvSurrogate1")
    event["event"]["text"] = "<@UBOT> how many users does xiaohongshu have? \ud800"
    with caplog.at_level(logging.INFO):
        assert (await SlackSender(slack_client, SECRET).event(event)).status == 200
        await slack_client.app[SLACK_KEY].drain()
    assert tracebacks(caplog) == []
    [post] = slack_api.calls_to("chat.postMessage")
    sent = post.dumps()
    assert "\ud800" not in sent and "\\ud800" not in sent
    assert "Xiaohongshu" in sent or "RED" in sent


async def test_a_second_teams_vote_by_the_same_user_on_the_same_answer_is_refused(store: Store, desk: Desk):
    from tests.connector_server import ConnectorServer, TeamsHarness, fixture

    connector = await ConnectorServer().start()
    server = TestServer(create_app(Settings.from_env({}), desk, store, background=False))
    await server.start_server()
    try:
        teams = TeamsHarness(server, connector, store)
        (first,) = await teams.say("submit_feedback.json")
        (second,) = await teams.say("submit_feedback.json", id="another-delivery")  # a second click, not a retry
        other = fixture("submit_feedback.json")["from"] | {"id": "29:someone-else", "aadObjectId": "someone-else"}
        (third,) = await teams.say("submit_feedback.json", id="a-colleague", **{"from": other})
    finally:
        await server.close()
        await connector.close()
    assert "Thanks" in first.card["body"][0]["text"]
    assert "already rated" in second.card["body"][0]["text"]
    assert "Thanks" in third.card["body"][0]["text"]
    assert len(await store.list_feedback("teams")) == 2  # one vote each


# ------------------------------------------------------------------------------------------- CLI


def test_ask_with_an_unknown_timezone_prints_one_line_and_exits_2():
    import subprocess

    from tests.serving import CHINADESK

    proc = subprocess.run([CHINADESK, "ask", "--timezone", "Mars/Base", "/china-filing"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "Mars/Base" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------ Teams switch, local mode, banner


async def test_teams_off_serves_no_teams_endpoint(store: Store, desk: Desk):
    from bot.server import startup_lines

    settings = Settings.from_env({"TEAMS": "off"})
    async with TestClient(TestServer(create_app(settings, desk, store, background=False))) as client:
        response = await client.post("/api/messages", json={"type": "message"})
        assert response.status == 404
    assert not any("Teams" in line and "on" in line.split(":", 1)[-1] for line in startup_lines(settings, "h", 1)
                   if line.startswith("Platforms"))


@pytest.mark.parametrize("value", ["maybe", "local-ish"])
def test_a_bad_teams_switch_names_the_variable(value: str):
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match="TEAMS"):
        Settings.from_env({"TEAMS": value})


def test_local_mode_with_an_app_id_is_a_contradiction():
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match="TEAMS=local"):
        Settings.from_env({"TEAMS": "local", **TEAMS_APP})


@pytest.mark.parametrize(("teams", "mounted"), [(None, False), ("local", True)], ids=["default", "TEAMS=local"])
async def test_local_mode_on_a_public_address_only_when_asked_for_and_the_banner_is_logged(
    tmp_path, teams: str | None, mounted: bool,
):
    import asyncio
    import os
    import re
    import signal

    import aiohttp

    from tests.serving import CHINADESK

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "MICROSOFT_APP", "DATABASE_URL", "TEAMS"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'local.sqlite3'}", LOG_FORMAT="json", SCHEDULER="off")
    if teams:
        env["TEAMS"] = teams
    proc = await asyncio.create_subprocess_exec(
        CHINADESK, "serve", "--host", "0.0.0.0", "--port", "0", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        port = None
        while port is None:
            raw = await asyncio.wait_for(proc.stderr.readline(), 60)
            assert raw, "".join(lines)
            lines.append(raw.decode())
            found = re.search(r"listening on http://0\.0\.0\.0:(\d+)", lines[-1])
            port = int(found.group(1)) if found else None
        activity = {"type": "message", "id": "1", "serviceUrl": "http://127.0.0.1:9/", "text": "help",
                    "conversation": {"id": "a:1"}, "from": {"id": "u"}, "recipient": {"id": "b"}}
        async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/api/messages", json=activity) as response:
            assert (response.status != 404) is mounted, response.status
        proc.send_signal(signal.SIGTERM)
        _out, rest = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = [json.loads(line) for line in "".join(lines).splitlines() + rest.decode().splitlines()]  # JSON, every line
    messages = [entry["msg"] for entry in log]
    assert any("listening on http://0.0.0.0" in m for m in messages)
    if not mounted:
        assert any("TEAMS=local" in m for m in messages)  # says why Teams is off, and how to have it
