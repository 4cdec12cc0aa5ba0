"""Socket Mode fails clearly and stops when told (issue 11, item 9), on the real ``chinadesk serve``.

A rejected app token exits with status 2 naming ``SLACK_APP_TOKEN``; an unreachable Slack is retried with
capped back-off, one short log line per attempt, while the HTTP port serves; SIGTERM and SIGINT stop the
process within 10 s whatever state its Slack connection is in. Slack is :class:`slack_server.FakeSlack`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
from slack_server import FakeSlack, load_fixture

from tests.serving import Silent, closed_port, healthz, serve

APP_TOKEN = "xapp-1-A0001-" + "9" * 20


def socket_env(tmp_path: Path, api_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "MICROSOFT_APP", "DATABASE_URL", "TEAMS"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'socket.sqlite3'}", LOG_FORMAT="json", SCHEDULER="off",
               SLACK_SOCKET_MODE="true", SLACK_BOT_TOKEN="xoxb-test-token", SLACK_APP_TOKEN=APP_TOKEN,
               SLACK_API_URL=api_url)
    return env


async def test_a_rejected_app_token_exits_2_naming_slack_app_token(tmp_path: Path):
    async with FakeSlack() as slack:
        slack.fail("apps.connections.open", "invalid_auth", times=None)
        async with serve(socket_env(tmp_path, slack.api_url), tmp_path, listening=False) as server:
            _out, err = await asyncio.wait_for(server.proc.communicate(), 40)
            assert server.proc.returncode == 2, err.decode()[-2000:]
        text = err.decode()
        assert "SLACK_APP_TOKEN" in text and "invalid_auth" in text
        assert APP_TOKEN not in text
        assert "Traceback" not in text
        assert len(slack.calls_to("apps.connections.open")) == 1  # no retrying a token Slack refused


async def test_unreachable_slack_is_retried_with_one_line_each_while_http_serves(tmp_path: Path):
    async with serve(socket_env(tmp_path, f"http://127.0.0.1:{closed_port()}/api/"), tmp_path) as server:
        assert server.port is not None and await healthz(server.port) == 200
        first = time.monotonic()
        await server.read_until(r"Socket Mode: cannot connect", 10)
        await server.read_until(r"Socket Mode: cannot connect", 10)
        await server.read_until(r"Socket Mode: cannot connect", 10)
        assert time.monotonic() - first >= 2  # backing off (1 s, then 2 s...), not hammering
        assert await healthz(server.port) == 200
        code, took, log = await server.stop(signal.SIGTERM)
    assert code == 0 and took < 10, log[-2000:]
    attempts = [json.loads(line) for line in log.splitlines() if "cannot connect" in line]
    assert [a["attempt"] for a in attempts[:3]] == [1, 2, 3]
    assert all(len(line) < 400 for line in log.splitlines() if "cannot connect" in line)
    assert "Traceback" not in log


async def test_slack_down_then_back_connects_and_answers(tmp_path: Path):
    async with FakeSlack() as slack:
        slack.unavailable("apps.connections.open", times=2)
        async with serve(socket_env(tmp_path, slack.api_url), tmp_path) as server:
            await slack.wait_for_socket(within=15)
            body = load_fixture("slash_command")
            body["response_url"] = slack.response_url()
            ack = await slack.socket_send("slash_commands", body)
            assert ack["payload"]["response_type"] == "ephemeral"
            code, took, log = await server.stop(signal.SIGTERM)
    assert code == 0 and took < 10, log[-2000:]
    assert len(slack.calls_to("apps.connections.open")) == 3
    assert "Traceback" not in log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("state", ["unreachable", "unanswered", "connected"])
async def test_a_stop_signal_exits_within_10_s_in_every_state(tmp_path: Path, sig: signal.Signals, state: str):
    async with FakeSlack() as slack, Silent() as silent:
        api_url = {"unreachable": f"http://127.0.0.1:{closed_port()}/api/", "unanswered": silent.url,
                   "connected": slack.api_url}[state]
        async with serve(socket_env(tmp_path, api_url), tmp_path) as server:
            assert server.port is not None and await healthz(server.port) == 200
            if state == "connected":
                await slack.wait_for_socket(within=15)
            else:
                await asyncio.sleep(1.5)  # connecting: mid-attempt or backing off
            code, took, log = await server.stop(sig)
    assert code == 0, log[-2000:]
    assert took < 10, f"{sig.name} took {took:.1f}s"
