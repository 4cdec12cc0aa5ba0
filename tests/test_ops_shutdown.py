"""Operations: the graceful stop of the real processes. SIGTERM to ``chinadesk serve`` finishes the Slack and
Teams work in flight, refuses new connections and exits 0 within the issue's 10 s; ``chinadesk worker`` serves
its metrics and stops on SIGTERM, even while starting. Real processes (the ``chinadesk`` console script), a
local Slack Web API and Bot Connector that answer slowly; no timing is asserted but that 10 s bound.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from slack_server import FakeSlack, load_fixture

from bot.app import STORE_KEY, create_app
from bot.config import Settings
from bot.store import NewPost, Store, open_store
from handlers import Desk
from tests.connector_server import ConnectorServer
from tests.serving import CHINADESK, start_serve
from tests.test_ops import SECRET

# ------------------------------------------------------------------------------------ graceful stop


class SlowSlack(FakeSlack):
    """FakeSlack whose ``chat.postMessage`` takes ``delay`` seconds (an answer or reminder in flight)."""

    def __init__(self, delay: float, **kw: Any) -> None:
        super().__init__(**kw)
        self.delay = delay
        self.in_flight = 0
        self.arrived = asyncio.Condition()

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["method"] == "chat.postMessage":
            async with self.arrived:
                self.in_flight += 1
                self.arrived.notify_all()
            await asyncio.sleep(self.delay)
        return await super()._api(request)

    async def wait_in_flight(self, n: int, within: float = 10.0) -> None:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: self.in_flight >= n), within)


@dataclass
class SlowConnector(ConnectorServer):
    """The Bot Connector, taking ``delay`` seconds to accept a reply (keeps a Teams request in flight)."""

    delay: float = 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def _activity(self, request: web.Request) -> web.Response:
        self.arrived.set()
        await asyncio.sleep(self.delay)
        return await super()._activity(request)


async def test_sigterm_finishes_in_flight_work_refuses_new_connections_and_exits_0(tmp_path, library):
    db = tmp_path / "serve.sqlite3"
    # A reminder that is due: the scheduler's first pass posts it, slowly, while we send SIGTERM.
    store = open_store(f"sqlite:///{db}")
    await store.open()
    now = dt.datetime.now(dt.UTC)
    await store.add_posts(
        [NewPost("sigterm-reminder", now - dt.timedelta(minutes=1), now + dt.timedelta(days=5),
                 {"topic": "facial-recognition", "due": (now + dt.timedelta(days=5)).date().isoformat(),
                  "tz": "Asia/Shanghai", "label": "in 3 working days", "start": "2026-10-01"})],
        platform="slack", workspace="T0001", channel="CREMIND", kind="deadline",
    )
    await store.close()

    connector = await SlowConnector(delay=2.5).start()
    async with SlowSlack(delay=2.5) as slack:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_APP", "DATABASE_URL"))}
        env.update(DATABASE_URL=f"sqlite:///{db}", SLACK_SIGNING_SECRET=SECRET, SLACK_BOT_TOKEN=slack.bot_token,
                   SLACK_API_URL=slack.api_url, LOG_FORMAT="json", LOG_LEVEL="INFO")
        proc, port, lines = await start_serve(env, tmp_path)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                assert (await http.get(f"{base}/readyz")).status == 200
                await slack.wait_in_flight(1)  # the scheduler's reminder post is in flight

                # A mention: acknowledged at once, answered in the background (slowly).
                event = load_fixture("app_mention")
                event["event"]["text"] = "<@UBOT> how long does the CAC take to review a facial recognition filing?"
                body = json.dumps(event)
                from slack_server import sign

                async with http.post(f"{base}/slack/events", data=body.encode(),
                                     headers={"Content-Type": "application/json", **sign(body, SECRET)}) as resp:
                    assert resp.status == 200
                await slack.wait_in_flight(2)

                # A Teams message whose request stays open while the connector takes its time.
                activity = json.loads((Path(__file__).parent / "fixtures/teams/personal_message.json").read_text())
                activity.update(serviceUrl=connector.url)
                teams = asyncio.ensure_future(http.post(f"{base}/api/messages", json=activity))
                await asyncio.wait_for(connector.arrived.wait(), 10)

                signalled = asyncio.get_running_loop().time()
                proc.send_signal(signal.SIGTERM)

                # New connections are refused promptly (the listening socket is closed first).
                refused = False
                for _ in range(100):
                    try:
                        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                        writer.close()
                    except OSError:
                        refused = True
                        break
                    await asyncio.sleep(0.02)
                assert refused, "the server still accepted new connections after SIGTERM"

                # The in-flight Teams request completes successfully.
                response = await asyncio.wait_for(teams, 10)
                assert response.status in (200, 201, 202), await response.text()
                response.release()

            rest = await asyncio.wait_for(proc.stderr.read(), 15)
            code = await asyncio.wait_for(proc.wait(), 15)
            elapsed = asyncio.get_running_loop().time() - signalled
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await connector.close()
        log = "".join(lines) + rest.decode()
        assert code == 0, log
        assert elapsed < 10, f"took {elapsed:.1f}s to exit after SIGTERM"

        # The background answer and the scheduler's reminder were both delivered before exiting...
        posts = slack.calls_to("chat.postMessage")
        assert len(posts) == 2, log
        assert {p.params.get("channel") for p in posts} == {"CREMIND", event["event"]["channel"]}
        assert connector.sent and connector.sent[0].body.get("attachments")

    # ...and the reminder is recorded as posted (never offered again).
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        [post] = await store.list_posts("slack", "CREMIND")
        assert post.status == "posted", post
    finally:
        await store.close()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(r["msg"] == "received SIGTERM" for r in records)
    assert any(r["msg"] == "stopped" for r in records)


async def test_serve_with_scheduler_off_runs_no_scheduler(desk: Desk, store: Store):
    app = create_app(Settings.from_env({}), desk, store, background=False)
    async with TestClient(TestServer(app)) as client:
        assert (await (await client.get("/readyz")).json())["scheduler"] is False
        assert client.app[STORE_KEY] is store



async def test_the_worker_serves_its_metrics_and_stops_on_sigterm_within_10_s(tmp_path):
    import socket

    with socket.socket() as probe:  # a free port for the worker's metrics
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_APP", "DATABASE_URL"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'worker.sqlite3'}", LOG_FORMAT="json")
    proc = await asyncio.create_subprocess_exec(
        CHINADESK, "worker", "--interval", "0.2", "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
        env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        text = ""
        async with aiohttp.ClientSession() as http:
            for _ in range(300):  # bounded: the worker loads the content first
                try:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                        text = await response.text()
                        if "chinadesk_reminders_total" in text:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        assert 'chinadesk_reminders_total{event="posted"}' in text
        assert proc.stderr is not None
        log = b""
        while b"reminder worker started" not in log:  # then a few passes run
            log += await asyncio.wait_for(proc.stderr.readline(), 60)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert "\nchinadesk_ready 1.0" in await response.text()  # ready, with no /readyz to probe
        await asyncio.sleep(0.5)
        signalled = asyncio.get_running_loop().time()
        proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, (log + err).decode()[-2000:]
        assert asyncio.get_running_loop().time() - signalled < 10
        assert "reminder worker stopped" in err.decode()

    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_worker_told_to_stop_while_starting_exits_cleanly(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_APP", "DATABASE_URL"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'worker.sqlite3'}", LOG_FORMAT="json")
    proc = await asyncio.create_subprocess_exec(
        CHINADESK, "worker", env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    log = b""
    while b"reminder worker starting" not in log:  # handlers in place; content still loading
        log += await asyncio.wait_for(proc.stderr.readline(), 60)
    proc.send_signal(signal.SIGTERM)
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, (log + err).decode()[-2000:]
    assert b"reminder worker started" not in log + err  # it never began polling
