"""Socket Mode: the same listeners over a WebSocket, for teams without a public URL.

The local :class:`slack_server.FakeSlack` answers ``apps.connections.open`` with a ``ws://127.0.0.1``
URL and speaks Slack's envelope protocol on it (``hello``, envelopes, acknowledgements by envelope id).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from slack_server import FakeSlack, load_fixture

from bot.app import SLACK_KEY, create_app
from bot.config import Settings
from bot.slack.blockkit import validate_blocks
from bot.store import Store
from handlers import Desk


@pytest.fixture
async def socket_app(slack_api: FakeSlack, store: Store, desk: Desk) -> AsyncIterator[TestClient]:
    settings = Settings.from_env(
        {"SLACK_BOT_TOKEN": slack_api.bot_token, "SLACK_APP_TOKEN": "xapp-1-A0001-test",
         "SLACK_API_URL": slack_api.api_url},
        socket_mode=True,
    )
    async with TestClient(TestServer(create_app(settings, desk, store, background=False))) as client:
        yield client


async def test_socket_mode_connects_with_the_app_token(socket_app: TestClient, slack_api: FakeSlack):
    await slack_api.wait_for_socket()  # it connects in the background: the HTTP port does not wait for Slack
    [opened] = slack_api.calls_to("apps.connections.open")
    assert opened.token == "xapp-1-A0001-test"


async def test_mention_over_socket_mode_is_acked_and_answered_once(socket_app: TestClient, slack_api: FakeSlack):
    payload = load_fixture("app_mention")
    ack = await slack_api.socket_send("events_api", payload)
    assert ack["envelope_id"]
    again = await slack_api.socket_send("events_api", payload, retry_attempt=1)  # Slack's redelivery
    assert again["envelope_id"]
    await socket_app.app[SLACK_KEY].drain()
    [post] = slack_api.calls_to("chat.postMessage")
    assert post.params["thread_ts"] == payload["event"]["ts"]
    validate_blocks(post.blocks)


async def test_slash_command_over_socket_mode_answers_in_the_ack(socket_app: TestClient, slack_api: FakeSlack):
    body = load_fixture("slash_command")
    body["response_url"] = slack_api.response_url()
    ack = await slack_api.socket_send("slash_commands", body)
    assert ack["payload"]["response_type"] == "ephemeral"
    validate_blocks(ack["payload"]["blocks"])


async def test_no_http_events_endpoint_without_a_signing_secret(socket_app: TestClient):
    response = await socket_app.post("/slack/events", data=b"{}")
    assert response.status in (404, 405)


async def test_a_malformed_payload_over_socket_mode_is_acknowledged_and_dropped_quietly(
    socket_app: TestClient, slack_api: FakeSlack, caplog: pytest.LogCaptureFixture,
):
    home = load_fixture("app_home_opened")
    del home["event"]["user"]
    mention = load_fixture("app_mention")
    mention["event"]["text"] = ["<@UBOT>", "hello"]
    for payload in (home, mention):
        assert (await slack_api.socket_send("events_api", payload))["envelope_id"]
    await socket_app.app[SLACK_KEY].drain()
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert slack_api.posts() == []

