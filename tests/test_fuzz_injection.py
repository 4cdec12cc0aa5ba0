"""Adversarial tests: injection of ``<!channel>``, ``<!here>``, ``<@U123>``, ``<https://evil|click>``,
``[x](https://evil)`` and ``<at>Bob</at>`` into every field the bot echoes (topic names, dates, notes, questions,
reminders, the App Home), checked in the bytes that reach the local Slack Web API and Bot Connector: nothing
is ever sent as a live mention or link. The app under test is the harness of ``test_fuzz.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_server import load_fixture

from bot.scheduler import Scheduler
from bot.slack.delivery import SlackDeliverer
from bot.store import NewPost
from tests import test_fuzz as fuzz_suite
from tests.test_fuzz import SECRET, TEAMS_FIXTURES, Harness, assert_no_internal_errors, mention_event, slack_signature

# The fuzz suite's app on a loopback port (module-scoped: one for this file), defined in test_fuzz.py.
harness = fuzz_suite.harness


# ---------------------------------------------------------------------------------------- injection

INJECTIONS = ["<!channel>", "<!here>", "<!everyone>", "<@U123>", "<https://evil|click>", "[x](https://evil)",
              "<at>Bob</at>", "<!subteam^S123|@team>", "<#C123|general>"]
ALL_AT_ONCE = " ".join(INJECTIONS)
# What would be live in the bytes we send: Slack mention/link markup, Teams markup, Markdown links to evil.
LIVE_SLACK = re.compile(r"<(?:!|@U123|#C123|https?://evil)", re.IGNORECASE)
LIVE_TEAMS = re.compile(r"<at>|(?<!\\)\[x(?<!\\)\]\(https://evil", re.IGNORECASE)


def slack_forms(text: str) -> list[str]:
    """The text as Slack might deliver it: markup as typed (tokens) and HTML-escaped (typed literally)."""
    return [text, text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")]


def echo_fields(inj: str) -> dict[str, str]:
    """A command line per echoed field; each puts ``inj`` where the bot repeats it back."""
    return {
        "topic": f"{inj}",
        "date": f"facial-recognition from {inj}",
        "note": f"remind facial-recognition from today {inj}",
        "sector": f"{inj} sector",
    }


def assert_inert_slack(payload: str) -> None:
    found = LIVE_SLACK.search(payload)
    assert not found, payload[max(found.start() - 80, 0): found.end() + 80]
    assert "<at>" not in payload.lower()


def displayed(value: Any, *, markdown_only: bool = False) -> list[str]:
    """Every string Teams shows from an activity or card (``data`` of a submit action is not shown);
    ``markdown_only``: those a client reads as Markdown (not TextRuns, whose text is shown as it is)."""
    out: list[str] = []
    if isinstance(value, dict):
        if markdown_only and value.get("type") == "TextRun":
            return out
        for key, item in value.items():
            if key == "data":
                continue
            if isinstance(item, str) and key in ("text", "title", "value", "summary", "fallbackText", "speak",
                                                 "altText", "label", "placeholder"):
                out.append(item)
            else:
                out += displayed(item, markdown_only=markdown_only)
    elif isinstance(value, list):
        for item in value:
            out += displayed(item, markdown_only=markdown_only)
    return out


def assert_inert_teams(body: dict[str, Any]) -> None:
    for text in displayed(body, markdown_only=True):
        found = LIVE_TEAMS.search(text)
        assert not found, text[max(found.start() - 80, 0): found.end() + 80]
    for text in displayed(body):  # no <at> anywhere, Markdown or not
        assert "<at>" not in text.lower(), text
    entities = json.dumps(body.get("entities") or [])
    assert '"mention"' not in entities  # no mention entities, so nobody is notified


@pytest.mark.parametrize("inj", [*INJECTIONS, ALL_AT_ONCE])
def test_slack_never_sends_a_live_mention_or_link(harness: Harness, inj: str):
    api = harness.slack
    first = len(api.calls)
    replies: list[str] = []
    for raw in slack_forms(inj):
        for field_name, line in echo_fields(raw).items():
            command = "/china-sector" if field_name == "sector" else "/china-filing"
            body = urlencode({"command": command, "text": line, "team_id": "T0001", "user_id": "U1",
                              "channel_id": "CINJ", "response_url": api.response_url()}).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded",
                       **slack_signature(body, SECRET, int(time.time()))}
            status, answer = harness.post("/slack/events", body, headers)
            assert status == 200
            replies.append(answer)
        # The note comes back in the channel's listing and in the App Home...
        body = urlencode({"command": "/china-filing", "text": "reminders", "team_id": "T0001", "user_id": "U1",
                          "channel_id": "CINJ", "response_url": api.response_url()}).encode()
        replies.append(harness.post("/slack/events", body, {"Content-Type": "application/x-www-form-urlencoded",
                                                            **slack_signature(body, SECRET, int(time.time()))})[1])
        # ...and questions are answered in a thread.
        for n, question in enumerate((f"{raw} how long does the CAC take to review a facial recognition filing?",
                                      f"what is {raw}?")):
            body = mention_event(f"EvInj{time.monotonic_ns()}{n}", f"<@UBOT> {question}")
            assert harness.post("/slack/events", body, {"Content-Type": "application/json",
                                                        **slack_signature(body, SECRET, int(time.time()))})[0] == 200
        home = load_fixture("app_home_opened")
        home["event_id"] = f"EvHome{time.monotonic_ns()}"
        body = json.dumps(home).encode()
        harness.post("/slack/events", body, {"Content-Type": "application/json",
                                             **slack_signature(body, SECRET, int(time.time()))})
    harness.drain()
    # The reminder post itself, when it falls due, repeats the note too.
    now = dt.datetime.now(dt.UTC)
    harness.run(harness.store.add_posts(
        [NewPost(f"inj-{time.monotonic_ns()}", now - dt.timedelta(minutes=1), now + dt.timedelta(days=2),
                 {"topic": "facial-recognition", "due": (now + dt.timedelta(days=2)).date().isoformat(),
                  "tz": "Asia/Shanghai", "label": "in 2 working days", "start": "2026-10-01", "note": inj})],
        platform="slack", workspace="T0001", channel="CINJPOST", kind="deadline"))
    deliverer = SlackDeliverer(harness.store, default_token=api.bot_token, api_url=api.api_url)
    harness.run(Scheduler(harness.store, harness.desk, {"slack": deliverer}).run_due(now))

    sent = [c.dumps() for c in api.calls[first:]]
    assert any('"channel": "CINJPOST"' in s for s in sent), "the reminder was posted"
    assert len(sent) >= 4
    for payload in [*replies, *sent]:
        assert_inert_slack(payload)
    assert_no_internal_errors(harness)


@pytest.mark.parametrize("inj", [*INJECTIONS, ALL_AT_ONCE])
def test_teams_never_sends_a_live_mention_or_link(harness: Harness, inj: str):
    activity = json.loads((TEAMS_FIXTURES / "personal_message.json").read_text(encoding="utf-8"))
    channel = json.loads((TEAMS_FIXTURES / "channel_mention.json").read_text(encoding="utf-8"))
    before = len(harness.connector.sent)
    lines = [f"filing {line}" if name != "sector" else f"sector {line}" for name, line in echo_fields(inj).items()]
    lines += ["filing reminders", f"{inj} how long does the CAC take to review a facial recognition filing?",
              f"what is {inj}?"]
    for n, line in enumerate(lines):
        for base in (activity, channel):
            message = {**base, "text": line if base is activity else f"<at>China Desk</at> {line}",
                       "serviceUrl": harness.connector.url, "id": f"inj-{time.monotonic_ns()}-{n}"}
            status, answer = harness.post("/api/messages", json.dumps(message).encode(),
                                          {"Content-Type": "application/json"})
            assert status in (200, 201, 202), answer[:300]
    sent = harness.connector.sent[before:]
    assert len(sent) == 2 * len(lines)
    for item in sent:
        assert_inert_teams(item.body)
    assert_no_internal_errors(harness)
