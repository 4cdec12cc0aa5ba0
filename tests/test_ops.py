"""Operations: health and readiness, Prometheus metrics, structured logs without secrets or user text,
and a graceful SIGTERM of the real ``chinadesk serve`` process.

Everything runs against the real application: the aiohttp app over HTTP (``TestClient``), signed Slack
requests answered through :class:`slack_server.FakeSlack`, Teams activities answered through the local
Bot Connector (:class:`connector_server.ConnectorServer`), and, for the shutdown test, the ``chinadesk``
console script in a subprocess. No timing is asserted except the issue's 10 s shutdown bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import json
import logging
import os
import re
import secrets
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from slack_server import FakeSlack, SlackSender, load_fixture

from bot import observability
from bot.app import LIFECYCLE_KEY, SLACK_KEY, STORE_KEY, begin_drain, create_app
from bot.config import Settings
from bot.observability import JsonFormatter, TextFormatter, configure_logging, request_id_var
from bot.scheduler import PassReport, Scheduler
from bot.server import startup_lines
from bot.slack.delivery import SlackDeliverer
from bot.store import NewPost, Store, open_store
from content.loader import Library
from handlers import Desk, Request
from tests.conftest import restored_logging
from tests.connector_server import ConnectorServer

SECRET = "ops-signing-secret-" + "7" * 16
CHANNEL = "C2147483705"
CHINADESK = shutil.which("chinadesk") or str(Path(sys.executable).with_name("chinadesk"))


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@asynccontextmanager
async def serving(settings: Settings, desk: Desk, store: Store, **kw: Any) -> AsyncIterator[TestClient]:
    app = create_app(settings, desk, store, background=False, **kw)
    async with TestClient(TestServer(app)) as client:
        yield client


def slack_settings(api: FakeSlack, **extra: str) -> Settings:
    return Settings.from_env({"SLACK_SIGNING_SECRET": SECRET, "SLACK_BOT_TOKEN": api.bot_token,
                              "SLACK_API_URL": api.api_url, **extra})


# ---------------------------------------------------------------------------------- health, readiness


async def test_healthz_and_readyz_report_the_process_and_its_dependencies(desk: Desk, store: Store):
    async with serving(Settings.from_env({}), desk, store) as client:
        health = await client.get("/healthz")
        assert health.status == 200 and (await health.json())["status"] == "ok"

        ready = await client.get("/readyz")
        body = await ready.json()
        assert ready.status == 200, body
        assert body["status"] == "ready" and body["database"] is True and body["content"] is True
        assert body["topics"] == len(desk.library.topics)
        assert sample("chinadesk_ready") == 1.0

        # The database stops answering: not ready (the process is still alive).
        await store.close()
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["database"] is False
        assert sample("chinadesk_ready") == 0.0
        assert (await client.get("/healthz")).status == 200
        await store.open()

        # Shutdown has begun: not ready, whatever the database says.
        await begin_drain(client.app)
        ready = await client.get("/readyz")
        assert ready.status == 503 and (await ready.json())["status"] == "draining"
        assert client.app[LIFECYCLE_KEY].draining


async def test_readyz_needs_loaded_content(store: Store):
    empty = Library(packs={}, topics={}, topic_pack={})
    async with serving(Settings.from_env({}), Desk(library=empty), store) as client:
        ready = await client.get("/readyz")
        assert ready.status == 503 and (await ready.json())["content"] is False


# ------------------------------------------------------------------------------------------ metrics


async def test_metrics_count_requests_latency_and_qa_outcomes(desk: Desk, store: Store, slack_api: FakeSlack):
    before = {
        "deadline": sample("chinadesk_requests_total", platform="slack", command="/china-filing", outcome="deadline"),
        "error": sample("chinadesk_requests_total", platform="slack", command="/china-filing", outcome="error"),
        "http": sample("chinadesk_http_requests_total", route="/slack/events", status="200"),
        "latency": sample("chinadesk_request_seconds_count", platform="slack", command="/china-filing"),
        "answered": sample("chinadesk_qa_total", result="answered", mode="mention"),
        "abstained": sample("chinadesk_qa_total", result="abstained", mode="mention"),
        "unmatched": sample("chinadesk_http_requests_total", route="unmatched", status="404"),
    }
    async with serving(slack_settings(slack_api), desk, store) as client:
        send = SlackSender(client, SECRET)
        body = load_fixture("slash_command")
        body.update(command="/china-filing", text="facial-recognition from 2025-09-20",
                    response_url=slack_api.response_url())
        assert (await send.command(body)).status == 200
        body.update(text="remind")  # a usage mistake: a friendly error reply, counted as "error"
        assert (await send.command(body)).status == 200
        for n, question in enumerate(("how long does the CAC take to review a facial recognition filing?",
                                      "what is the best pizza topping in Naples?")):
            event = load_fixture("app_mention")
            event["event_id"] = f"EvMetrics{n}{secrets.token_hex(3)}"
            event["event"]["text"] = f"<@UBOT> {question}"
            event["event"]["ts"] = f"1758506400.00{n}"
            assert (await send.event(event)).status == 200
        await client.app[SLACK_KEY].drain()
        assert (await client.get("/no/such/route")).status == 404

        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()

    assert sample("chinadesk_requests_total", platform="slack", command="/china-filing",
                  outcome="deadline") == before["deadline"] + 1
    assert sample("chinadesk_requests_total", platform="slack", command="/china-filing",
                  outcome="error") == before["error"] + 1
    assert sample("chinadesk_request_seconds_count", platform="slack",
                  command="/china-filing") == before["latency"] + 2
    assert sample("chinadesk_http_requests_total", route="/slack/events", status="200") == before["http"] + 4
    assert sample("chinadesk_qa_total", result="answered", mode="mention") == before["answered"] + 1
    assert sample("chinadesk_qa_total", result="abstained", mode="mention") == before["abstained"] + 1
    assert sample("chinadesk_http_requests_total", route="unmatched", status="404") == before["unmatched"] + 1
    # The exposition itself: histograms with buckets, every family the issue names.
    for family in ("chinadesk_requests_total", "chinadesk_request_seconds_bucket", "chinadesk_qa_total",
                   "chinadesk_http_request_seconds_bucket", "chinadesk_reminders_total",
                   "chinadesk_web_api_retries_total", "chinadesk_ready"):
        assert family in text, family
    assert "_created" not in text


async def test_metric_labels_stay_low_cardinality(desk: Desk):
    """Whatever people type, the command label is one of a handful of values."""
    labels = set()
    for text in ("/china-filing x", "/china-sector", "filing face", "/evil-{i}", "what is PIPL?", "", "\x00" * 5):
        for i in range(3):
            labels.add(observability.command_label(Request(text=text.format(i=i))))
    labels.add(observability.command_label(Request(text="x", command="/made-up-command-123")))
    assert labels <= {"/china-filing", "/china-sector", "/china-platform", "qa", "unknown"}


async def test_reminder_passes_and_web_api_retries_are_counted(desk: Desk, store: Store, slack_api: FakeSlack):
    before = {e: sample("chinadesk_reminders_total", event=e) for e in observability.REMINDER_EVENTS}
    retries = sample("chinadesk_web_api_retries_total", platform="slack", reason="rate_limited")
    now = dt.datetime.now(dt.UTC)
    await store.add_posts(
        [NewPost(f"ops-test-{i}", now - dt.timedelta(minutes=30 * i), now + dt.timedelta(days=3),
                 {"topic": "facial-recognition", "due": (now + dt.timedelta(days=3)).date().isoformat(),
                  "tz": "Asia/Shanghai", "label": "test", "start": "2025-09-20"}) for i in range(2)],
        platform="slack", workspace="T0001", channel=CHANNEL, kind="deadline",
    )
    slack_api.rate_limit("chat.postMessage", retry_after=0)  # the first post is retried once by the client
    deliverer = SlackDeliverer(store, default_token=slack_api.bot_token, api_url=slack_api.api_url)
    scheduler = Scheduler(store, Desk(library=desk.library, store=store), {"slack": deliverer})
    report = await scheduler.run_due(now)
    assert (report.due, report.posted, report.late) == (2, 2, 1)
    assert sample("chinadesk_reminders_total", event="due") == before["due"] + 2
    assert sample("chinadesk_reminders_total", event="posted") == before["posted"] + 2
    assert sample("chinadesk_reminders_total", event="late") == before["late"] + 1
    assert sample("chinadesk_web_api_retries_total", platform="slack", reason="rate_limited") == retries + 1

    observability.count_reminder_pass(PassReport(now=now, failed=3))
    assert sample("chinadesk_reminders_total", event="failed") == before["failed"] + 3


async def test_the_slack_adapter_client_retries_a_timeout_and_counts_it(slack_api: FakeSlack):
    from bot.slack.adapter import web_client

    before = sample("chinadesk_web_api_retries_total", platform="slack", reason="connection_error")
    slack_api.delay("auth.test", 2.0)
    client = web_client(slack_settings(slack_api).slack, slack_api.bot_token)
    client.timeout = 1  # instead of waiting out the production timeout
    assert (await client.auth_test())["ok"]
    assert len(slack_api.calls_to("auth.test")) == 2
    assert sample("chinadesk_web_api_retries_total", platform="slack", reason="connection_error") == before + 1


async def test_the_slack_adapter_client_counts_retries_too(slack_api: FakeSlack):
    from bot.slack.adapter import web_client

    before = sample("chinadesk_web_api_retries_total", platform="slack", reason="rate_limited")
    slack_api.rate_limit("auth.test", times=2, retry_after=0)
    client = web_client(slack_settings(slack_api).slack, slack_api.bot_token)
    assert (await client.auth_test())["ok"]
    assert sample("chinadesk_web_api_retries_total", platform="slack", reason="rate_limited") == before + 2


async def test_metrics_token_guards_the_endpoint(desk: Desk, store: Store):
    async with serving(Settings.from_env({}), desk, store, metrics_token="scrape-me") as client:
        assert (await client.get("/metrics")).status == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})).status == 200
        assert (await client.get("/healthz")).status == 200  # the probes stay open


# --------------------------------------------------------------------------------------------- logs


async def test_request_ids_are_echoed_or_made_and_never_carry_markup(desk: Desk, store: Store):
    async with serving(Settings.from_env({}), desk, store) as client:
        given = await client.get("/healthz", headers={"X-Request-Id": "lb-1234.abc"})
        assert given.headers["X-Request-Id"] == "lb-1234.abc"
        made = await client.get("/healthz")
        assert re.fullmatch(r"[0-9a-f]{16}", made.headers["X-Request-Id"])
        hostile = await client.get("/healthz", headers={"X-Request-Id": "x\" level=error {evil}"})
        assert re.fullmatch(r"[0-9a-f]{16}", hostile.headers["X-Request-Id"])


def test_json_and_text_formats_carry_the_request_id_and_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(observability._RequestIdFilter())
    log = logging.getLogger("chinadesk.test.format")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    token = request_id_var.set("rid-42")
    try:
        log.info("answered", extra={"platform": "slack", "chars": 12})
    finally:
        request_id_var.reset(token)
        log.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["msg"] == "answered" and line["request_id"] == "rid-42"
    assert line["platform"] == "slack" and line["chars"] == 12 and line["level"] == "info"

    record = logging.LogRecord("chinadesk.x", logging.INFO, __file__, 1, "hello", None, None)
    record.request_id, record.kind = "rid-7", "deadline"
    assert TextFormatter().format(record).endswith("chinadesk.x: hello rid=rid-7 kind=deadline")


@dataclass
class Captured:
    records: list[logging.LogRecord] = field(default_factory=list)

    def text(self, min_level: int = logging.INFO) -> str:
        fmt = JsonFormatter()
        return "\n".join(fmt.format(r) for r in self.records if r.levelno >= min_level)


@pytest.fixture
def production_logging() -> Iterator[Captured]:
    """configure_logging as ``chinadesk serve`` does (JSON, INFO), plus a handler that keeps the records."""
    root = logging.getLogger()
    captured = Captured()

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            self.format(record)  # resolves the message and exception text, as a real handler would
            captured.records.append(record)

    with restored_logging():
        configure_logging("INFO", "json")
        keep = Keep()
        keep.setFormatter(JsonFormatter())
        keep.addFilter(observability._RequestIdFilter())
        root.handlers.append(keep)
        yield captured


async def test_info_logs_hold_neither_secrets_nor_what_people_wrote(production_logging: Captured, desk: Desk,
                                                                     store: Store, tmp_path):
    token = "xoxb-" + secrets.token_hex(12)
    signing = "sig-" + secrets.token_hex(16)
    marker = "zebraquokka" + secrets.token_hex(3)
    connector = await ConnectorServer().start()
    async with FakeSlack(bot_token=token) as api:
        settings = Settings.from_env({"SLACK_SIGNING_SECRET": signing, "SLACK_BOT_TOKEN": token,
                                      "SLACK_API_URL": api.api_url})
        async with serving(settings, desk, store, metrics_token="mt-" + marker) as client:
            send = SlackSender(client, signing)
            # A slash command, a channel question and a DM, all with the marker in them.
            body = load_fixture("slash_command")
            body.update(command="/china-filing", text=f"{marker} from 2025-09-20", response_url=api.response_url())
            assert (await send.command(body)).status == 200
            event = load_fixture("app_mention")
            event["event"]["text"] = f"<@UBOT> how long does the {marker} review take for facial recognition?"
            assert (await send.event(event)).status == 200
            api.rate_limit("chat.postMessage", retry_after=0)  # a retried call logs a warning: still no token
            dm = load_fixture("message_im")
            dm["event"]["text"] = f"what is {marker}?"
            assert (await send.event(dm)).status == 200
            # A forged request and a stale one are logged as refused, never with their body.
            forged = dict(event, event_id="EvForged1")
            assert (await send.event(forged, secret="not-the-secret")).status == 401
            await client.app[SLACK_KEY].drain()
            # Teams: a personal message and a channel mention carrying the marker.
            activity = json.loads((Path(__file__).parent / "fixtures/teams/personal_message.json").read_text())
            activity.update(text=f"filing {marker}", serviceUrl=connector.url)
            async with aiohttp.ClientSession() as http:
                async with http.post(client.make_url("/api/messages"), json=activity) as resp:
                    assert resp.status in (200, 201, 202)
                activity.update(text=f"what does {marker} cost in Shenzhen?", id="1758506400999")
                async with http.post(client.make_url("/api/messages"), json=activity) as resp:
                    assert resp.status in (200, 201, 202)
            assert (await client.get("/metrics", headers={"Authorization": f"Bearer mt-{marker}"})).status == 200
    await connector.close()
    assert connector.sent, "Teams answered"
    assert api.posts(), "Slack answered"

    info = production_logging.text(logging.INFO)
    assert "answered" in info  # the request log lines are there...
    for needle in (token, signing, marker, "mt-" + marker):
        assert needle not in info, f"{needle[:8]}... leaked into an INFO+ log line"
    # ...with what an operator needs: platform, command, outcome, size, time, request id.
    lines = [json.loads(line) for line in info.splitlines() if '"msg": "answered"' in line]
    assert {line["platform"] for line in lines} >= {"slack", "teams"}
    assert all({"command", "kind", "chars", "ms", "request_id"} <= line.keys() for line in lines)
    assert any(line["request_id"] != "-" for line in lines)


def test_the_startup_lines_never_show_a_database_password():
    settings = Settings.from_env({"DATABASE_URL": "postgresql://chinadesk:hunter2@db.internal:5432/prod"})
    text = "\n".join(startup_lines(settings, "0.0.0.0", 8080))
    assert "hunter2" not in text and "db.internal:5432/prod" in text


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


async def start_serve(env: dict[str, str], cwd: Path) -> tuple[asyncio.subprocess.Process, int, list[str]]:
    """``chinadesk serve --port 0`` in a subprocess; returns it, its port and its stderr lines so far."""
    proc = await asyncio.create_subprocess_exec(
        CHINADESK, "serve", "--host", "127.0.0.1", "--port", "0", env=env, cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    while True:
        raw = await asyncio.wait_for(proc.stderr.readline(), 60)
        if not raw:
            raise AssertionError("chinadesk serve exited before listening:\n" + "".join(lines))
        lines.append(raw.decode())
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", lines[-1])
        if found:
            return proc, int(found.group(1)), lines


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


# ----------------------------------------------------------------------------- channel settings cache


class CountingStore:
    """Just enough of a store to count reads and play another replica's writes."""

    def __init__(self) -> None:
        from bot.store import ChannelSettings

        self.settings = {("slack", "C1"): ChannelSettings("slack", "C1")}
        self.reads = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def get_channel_settings(self, platform: str, channel: str):
        from bot.store import ChannelSettings

        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("database down")
        return self.settings.get((platform, channel), ChannelSettings(platform, channel))

    async def set_channel_timezone(self, platform, workspace, channel, tz) -> None:
        from bot.store import ChannelSettings

        self.settings[(platform, channel)] = ChannelSettings(platform, channel, workspace, tz)

    async def set_channel_watch(self, platform, workspace, channel, on) -> None:
        from bot.store import ChannelSettings

        old = self.settings.get((platform, channel), ChannelSettings(platform, channel))
        self.settings[(platform, channel)] = ChannelSettings(platform, channel, workspace, old.timezone, on)

    async def delete_workspace(self, platform, workspace) -> None:
        self.settings.clear()

    async def ping(self) -> bool:
        return True


async def test_channel_settings_cache_reads_once_and_sees_its_own_writes_at_once():
    from bot.channel_cache import CachedSettingsStore

    raw = CountingStore()
    now = [0.0]
    cached = CachedSettingsStore(raw, ttl=5.0, clock=lambda: now[0])
    for _ in range(10):
        assert (await cached.get_channel_settings("slack", "C1")).timezone == "Asia/Shanghai"
    assert raw.reads == 1
    await cached.set_channel_timezone("slack", "T1", "C1", "Europe/London")  # through this process
    assert (await cached.get_channel_settings("slack", "C1")).timezone == "Europe/London"
    await cached.set_channel_watch("slack", "T1", "C1", True)
    assert (await cached.get_channel_settings("slack", "C1")).watch is True
    await cached.delete_workspace("slack", "T1")
    assert (await cached.get_channel_settings("slack", "C1")).watch is False
    assert await cached.ping() is True  # everything else is the store's
    assert cached.unwrap() is raw


async def test_another_replicas_write_is_seen_within_the_ttl():
    from bot.channel_cache import CachedSettingsStore

    raw = CountingStore()
    now = [0.0]
    cached = CachedSettingsStore(raw, ttl=5.0, clock=lambda: now[0])
    assert (await cached.get_channel_settings("slack", "C1")).timezone == "Asia/Shanghai"
    await raw.set_channel_timezone("slack", "T1", "C1", "Europe/Paris")  # another replica, same database
    now[0] = 4.9
    assert (await cached.get_channel_settings("slack", "C1")).timezone == "Asia/Shanghai"
    now[0] = 5.1
    assert (await cached.get_channel_settings("slack", "C1")).timezone == "Europe/Paris"


async def test_concurrent_misses_share_one_read_and_failures_are_not_cached():
    from bot.channel_cache import CachedSettingsStore

    raw = CountingStore()
    cached = CachedSettingsStore(raw)
    raw.gate = asyncio.Event()
    readers = [asyncio.ensure_future(cached.get_channel_settings("slack", "C9")) for _ in range(50)]
    await asyncio.sleep(0)
    raw.gate.set()
    results = await asyncio.gather(*readers)
    assert raw.reads == 1 and all(r.channel == "C9" for r in results)

    raw.gate, raw.fail = None, True
    cached.invalidate()
    with pytest.raises(RuntimeError):
        await cached.get_channel_settings("slack", "C9")
    raw.fail = False
    assert (await cached.get_channel_settings("slack", "C9")).channel == "C9"


async def test_a_read_racing_a_write_is_not_cached():
    from bot.channel_cache import CachedSettingsStore

    raw = CountingStore()
    cached = CachedSettingsStore(raw)
    raw.gate = asyncio.Event()
    read = asyncio.ensure_future(cached.get_channel_settings("slack", "C1"))
    await asyncio.sleep(0)
    await cached.set_channel_timezone("slack", "T1", "C1", "Europe/London")  # lands while the read waits
    raw.gate.set()
    await read
    raw.gate = None
    assert (await cached.get_channel_settings("slack", "C1")).timezone == "Europe/London"


async def test_a_timezone_set_in_slack_applies_to_the_next_command(desk: Desk, store: Store, slack_api: FakeSlack):
    seen: list[Request] = []

    async def capture(request, desk, call_next):
        seen.append(request)
        return await call_next(request)

    capturing = dataclasses.replace(desk, middleware=[capture])
    async with serving(slack_settings(slack_api), capturing, store) as client:
        send = SlackSender(client, SECRET)

        async def command(text: str) -> None:
            body = load_fixture("slash_command")
            body.update(command="/china-filing", text=text, channel_id="CTZ", response_url=slack_api.response_url())
            assert (await send.command(body)).status == 200

        await command("reminders")  # reads (and caches) the channel's settings
        await command("timezone Europe/London")
        await command("reminders")
    assert [r.timezone for r in seen] == ["Asia/Shanghai", "Asia/Shanghai", "Europe/London"]


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
