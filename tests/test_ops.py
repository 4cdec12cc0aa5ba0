"""Operations: health and readiness, Prometheus metrics, structured logs without secrets or user text.

Everything runs against the real application: the aiohttp app over HTTP (``TestClient``), signed Slack
requests answered through :class:`slack_server.FakeSlack`, Teams activities answered through the local
Bot Connector (:class:`connector_server.ConnectorServer`). The graceful stop of the real ``chinadesk serve``
and ``worker`` processes is in ``test_ops_shutdown.py``, the channel settings cache in
``test_channel_settings_cache.py``; the latter uses :func:`serving` and :func:`slack_settings` from here.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from slack_server import FakeSlack, SlackSender, load_fixture

from bot import observability
from bot.app import LIFECYCLE_KEY, SLACK_KEY, begin_drain, create_app
from bot.config import Settings
from bot.observability import JsonFormatter, TextFormatter, configure_logging, request_id_var
from bot.scheduler import PassReport, Scheduler
from bot.server import startup_lines
from bot.slack.delivery import SlackDeliverer
from bot.store import NewPost, Store
from content.loader import Library
from handlers import Desk, Request
from tests.conftest import restored_logging
from tests.connector_server import ConnectorServer

SECRET = "ops-signing-secret-" + "7" * 16
CHANNEL = "C2147483705"


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
