"""Adversarial tests: property-based parsing, fuzzed HTTP endpoints, signature replay and forgery, and
mention/link injection in every field the bot echoes.

* Parser properties (hypothesis): :func:`handlers.router.split_command`, :func:`handlers.filing.parse_start`
  and the whole :meth:`Desk.handle` on arbitrary text never raise anything but a user error, and always
  answer with a valid Reply that is not the "something went wrong on our side" apology. (The working-day
  calendar's own properties are in ``tests/test_calendar.py``.)
* HTTP fuzzing of the real application (``create_app`` on a loopback port): random, huge and binary
  bodies and headers, signed and unsigned, at ``/slack/events`` and ``/api/messages``. Every request has
  a timeout (a hang fails), the answer is never a 5xx, an unsigned Slack request never gets past 401,
  and nothing is logged as an internal error.
* Replay and forgery of Slack signatures; injection of ``<!channel>``, ``<!here>``, ``<@U123>``,
  ``<https://evil|click>``, ``[x](https://evil)`` and ``<at>Bob</at>`` into topic names, dates, notes and
  questions, checked in the bytes that reach the local Slack Web API and Bot Connector.

Example counts are bounded (``max_examples``, ``FUZZ_EXAMPLES`` to raise them) and ``deadline=None``:
these are correctness tests, never timing tests.

The injection tests are in ``test_fuzz_injection.py``, on the harness and helpers defined here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from slack_server import FakeSlack, load_fixture

from bot.app import SLACK_KEY, create_app
from bot.config import Settings
from bot.store import open_store
from handlers import Desk, Request
from handlers.filing import parse_start
from handlers.request import ReplyKind, UserError
from handlers.router import _WORDS, COMMANDS, split_command
from tests.connector_server import ConnectorServer

SECRET = "fuzz-signing-secret-0123456789abcdef"
TEAMS_FIXTURES = Path(__file__).parent / "fixtures" / "teams"
KINDS = set(ReplyKind.__args__)  # type: ignore[attr-defined]
APOLOGY = "Something went wrong on our side"
REQUEST_TIMEOUT = 15.0  # a hang fails the example

# FUZZ_EXAMPLES=2000 for a deeper run than the suite's bounded default.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FAST = settings(max_examples=max(EXAMPLES * 3, 400), deadline=None)


# ------------------------------------------------------------------------------------- strategies

_words = st.sampled_from([
    "facial-recognition", "face", "pipl", "xiaohongshu", "小红书", "人脸识别", "from", "reached", "since", "today",
    "yesterday", "remind", "reminders", "cancel", "D1", "S1", "watch", "on", "off", "timezone", "Europe/London",
    "subscribe", "unsubscribe", "all", "help", "?", "2025-09-20", "2025-02-30", "9999-12-99", "2025-09-20 14:30",
    "0000-00-00", "<!channel>", "<@U123>", "%s", "{{ 7*7 }}", "{% raw %}", "\x00", "\u202e", "🙂", " ", "\n",
])
# Text that often looks like our commands, and sometimes is anything at all.
texts = st.one_of(
    st.text(max_size=300),
    st.lists(_words, max_size=8).map(" ".join),
    st.tuples(st.sampled_from(["/china-filing", "china-filing", "filing", "/china-sector", "sector", "/platform",
                               "/china-platform", "/unknown", "/", ""]),
              st.lists(st.one_of(_words, st.text(max_size=20)), max_size=6)).map(lambda t: " ".join([t[0], *t[1]])),
)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40))
    return st.recursive(leaves, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                       st.dictionaries(st.text(max_size=10), kids, max_size=4)),
                        max_leaves=max_leaves)


_slack_keys = st.sampled_from(["type", "event", "event_id", "team_id", "api_app_id", "command", "text", "payload",
                               "user_id", "channel_id", "response_url", "actions", "token", "challenge", "user",
                               "channel", "container", "view", "callback_id", "authorizations", "trigger_id"])


def slack_shaped() -> st.SearchStrategy[dict]:
    """Bodies shaped like Slack's, with the wrong types and values in the right places."""
    event = st.fixed_dictionaries({"type": st.sampled_from(["app_mention", "message", "app_home_opened",
                                                            "app_uninstalled", "tokens_revoked", "x"])},
                                  optional={"text": st.one_of(texts, json_values(4)), "user": json_values(2),
                                            "channel": st.one_of(st.text(max_size=12), json_values(2)),
                                            "ts": st.one_of(st.text(max_size=12), json_values(2)),
                                            "channel_type": st.sampled_from(["im", "channel", "group", "mpim"]),
                                            "subtype": st.sampled_from(["bot_message", "message_changed", None]),
                                            "tab": st.text(max_size=5), "tokens": json_values(3)})
    return st.fixed_dictionaries(
        {"type": st.sampled_from(["event_callback", "url_verification", "block_actions", "view_submission",
                                  "shortcut", "x"])},
        optional={"event": st.one_of(event, json_values(3)), "event_id": st.text(max_size=12),
                  "team_id": st.one_of(st.text(max_size=10), json_values(2)),
                  "challenge": st.text(max_size=10), "actions": st.one_of(
                      st.lists(st.fixed_dictionaries({}, optional={
                          "action_id": st.sampled_from(["chinadesk_share", "chinadesk_command:1", "chinadesk_up",
                                                        "chinadesk_down", "x"]),
                          "value": st.one_of(texts, json_values(2))}), max_size=3), json_values(3)),
                  "user": json_values(3), "channel": json_values(3), "container": json_values(3),
                  "authorizations": json_values(3), "view": json_values(3)},
    )


def slack_bodies() -> st.SearchStrategy[tuple[bytes, str]]:
    """(body, content type) pairs: binary, text, JSON, forms, payload= forms, and big ones."""
    form = st.dictionaries(st.one_of(_slack_keys, st.text(max_size=8)), st.one_of(texts, st.text(max_size=50)),
                           max_size=8).map(urlencode)
    command = st.tuples(st.sampled_from([*COMMANDS, "/other", ""]), texts).map(
        lambda t: urlencode({"command": t[0], "text": t[1], "team_id": "T0001", "user_id": "U1", "channel_id": "C1",
                             "response_url": "http://127.0.0.1:9/response/x"}))
    payload = st.one_of(slack_shaped(), json_values()).map(lambda p: urlencode({"payload": json.dumps(p)}))
    return st.one_of(
        st.tuples(st.binary(max_size=3000), st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                                             "application/octet-stream"])),
        st.tuples(st.text(max_size=3000).map(lambda s: s.encode("utf-8", "surrogatepass")),
                  st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain"])),
        st.tuples(st.one_of(slack_shaped(), json_values()).map(lambda v: json.dumps(v).encode()),
                  st.just("application/json")),
        st.tuples(st.one_of(form, command, payload).map(str.encode), st.just("application/x-www-form-urlencoded")),
        st.tuples(st.integers(1_048_577, 1_300_000).map(lambda n: b"a" * n), st.just("application/json")),
        st.tuples(st.binary(max_size=200), header_text),  # any content type at all
    )


def slack_signature(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """Slack's v0 signature over the raw bytes (what Slack sends, even for bytes that are not UTF-8)."""
    digest = hmac.new(secret.encode(), b"v0:%d:" % timestamp + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


# ------------------------------------------------------------------------------------------ harness


class Harness:
    """The real app on a loopback port, driven from synchronous hypothesis tests through one event loop."""

    def __init__(self, tmp: Path, library) -> None:
        self.runner = asyncio.Runner()
        self.tmp = tmp
        self.library = library
        self.errors: list[logging.LogRecord] = []
        self.runner.run(self._start())

    async def _start(self) -> None:
        self.slack = await FakeSlack().start()
        self.connector = await ConnectorServer().start()
        self.store = open_store(f"sqlite:///{self.tmp / 'fuzz.sqlite3'}")
        await self.store.open()
        settings_ = Settings.from_env({"SLACK_SIGNING_SECRET": SECRET, "SLACK_BOT_TOKEN": self.slack.bot_token,
                                       "SLACK_API_URL": self.slack.api_url})
        self.desk = Desk(library=self.library, store=self.store)
        self.app = create_app(settings_, self.desk, self.store, background=False)
        self.server = TestServer(self.app, host="127.0.0.1")
        await self.server.start_server()
        self.http = aiohttp.ClientSession()

    def close(self) -> None:
        async def stop() -> None:
            await self.http.close()
            await self.server.close()
            await self.store.close()
            await self.slack.close()
            await self.connector.close()

        self.runner.run(stop())
        self.runner.close()

    def run(self, coro: Any, timeout: float = REQUEST_TIMEOUT) -> Any:
        return self.runner.run(asyncio.wait_for(coro, timeout))

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        async def go() -> tuple[int, str]:
            async with self.http.post(self.server.make_url(path), data=body, headers=headers) as resp:
                return resp.status, await resp.text(errors="replace")

        return self.run(go())

    def drain(self) -> None:
        self.run(self.app[SLACK_KEY].drain(REQUEST_TIMEOUT))


@pytest.fixture(scope="module")
def harness(tmp_path_factory, library) -> Iterator[Harness]:
    h = Harness(tmp_path_factory.mktemp("fuzz"), library)

    class Errors(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith("chinadesk") and record.levelno >= logging.ERROR \
                    and not connector_refused(record):
                h.errors.append(record)

    handler = Errors(level=logging.ERROR)
    logging.getLogger().addHandler(handler)
    try:
        yield h
    finally:
        logging.getLogger().removeHandler(handler)
        h.close()


def connector_refused(record: logging.LogRecord) -> bool:
    """A reply the Bot Connector stand-in refused (a fuzzed activity id makes a reply URL it cannot route):
    a failed delivery, logged by the turn-error handler as designed, not a failure of ours."""
    exc = record.exc_info[1] if record.exc_info else None
    return record.getMessage() == "Teams turn failed" and exc is not None and \
        type(exc).__module__.split(".")[0] in ("azure", "msrest", "aiohttp", "botframework")


def assert_no_internal_errors(h: Harness) -> None:
    errors, h.errors[:] = list(h.errors), []
    assert not errors, "\n".join(f"{r.name}: {r.getMessage()}" for r in errors)


# ---------------------------------------------------------------------------------- parser properties


@FAST
@given(texts)
def test_split_command_reads_any_text_or_refuses_it_politely(text: str):
    try:
        command, args, explicit = split_command(text)
    except UserError as exc:
        assert text.startswith("/")  # only an unknown "/something" is refused
        assert exc.message
        return
    if command is None:
        assert (args, explicit) == (text, False)
    else:
        assert command in COMMANDS
        assert args == args.strip()


@FAST
@given(st.sampled_from(sorted(_WORDS)), st.booleans(), st.text(max_size=80))
def test_split_command_finds_every_command_word(word: str, slash: bool, rest: str):
    assume(rest.strip() and not rest[0].isspace() and "\n" not in rest and "\r" not in rest)
    command, args, explicit = split_command(f"{'/' if slash else ''}{word} {rest}")
    assert command == _WORDS[word]
    assert args == rest.strip()
    assert explicit == (slash or word.startswith("china-"))


@FAST
@given(st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)), st.sampled_from(["Asia/Shanghai", "Europe/London"]))
def test_parse_start_reads_every_iso_date_back(day: dt.date, tz: str):
    assert parse_start(day.isoformat(), tz, dt.date(2025, 9, 22)) == day
    assert parse_start(f"  {day.isoformat()} ", tz, dt.date(2025, 9, 22)) == day


@FAST
@given(st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)), st.times(), st.sampled_from(["Asia/Shanghai", "UTC"]))
def test_parse_start_keeps_the_wall_clock_time_in_the_channel_zone(day: dt.date, at: dt.time, tz: str):
    value = parse_start(f"{day.isoformat()} {at:%H:%M}", tz, day)
    assert isinstance(value, dt.datetime) and value.tzinfo is not None
    assert (value.date(), value.hour, value.minute) == (day, at.hour, at.minute)
    assert str(value.tzinfo) == tz


@FAST
@given(st.one_of(st.text(max_size=40), st.from_regex(r"\A\d{4}-\d{1,2}-\d{1,2}.{0,12}\Z"),
                 st.tuples(st.integers(0, 9999), st.integers(0, 99), st.integers(0, 99))
                 .map(lambda t: f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}")))
@example("9999-12-99")
@example("0000-00-00")
@example("2025-02-30")
@example("٢٠٢٥-٠٩-٢٠")
def test_parse_start_refuses_what_is_not_a_date_with_a_user_error(text: str):
    today = dt.date(2025, 9, 22)
    try:
        value = parse_start(text, "Asia/Shanghai", today)
    except UserError as exc:
        assert exc.message
        return
    day = value.date() if isinstance(value, dt.datetime) else value
    assert dt.date(2000, 1, 1) <= day <= dt.date(2099, 12, 31)


@FUZZ
@given(text=texts,
       command=st.one_of(st.none(), st.sampled_from([*COMMANDS, "/CHINA-FILING", "filing", "/bogus", ""]),
                         st.text(max_size=15)),
       platform=st.sampled_from(["slack", "teams", "text"]),
       mode=st.sampled_from(["command", "mention", "direct", "watch"]),
       channel=st.one_of(st.none(), st.sampled_from(["C1", "C2"])))
def test_the_whole_core_answers_anything_with_a_valid_reply(harness: Harness, text, command, platform, mode, channel):
    request = Request(text=text, command=command, platform=platform, mode=mode, channel=channel,
                      workspace="T0001" if channel else None, now=dt.datetime(2025, 9, 22, 2, tzinfo=dt.UTC))
    reply = harness.run(harness.desk.handle(request))
    assert reply.kind in KINDS
    assert reply.title
    # Every reply has its text, except the non-answer to an ambient (watched-channel) message: never shown.
    assert reply.text.strip() or (mode == "watch" and reply.kind == "no_answer")
    assert APOLOGY not in reply.title, reply.text
    assert_no_internal_errors(harness)


# ---------------------------------------------------------------------------------------- HTTP fuzz


@FUZZ
@given(body=slack_bodies(), signed=st.booleans(),
       extra=st.dictionaries(st.sampled_from(["X-Slack-Request-Timestamp", "X-Slack-Signature", "X-Slack-Retry-Num",
                                              "X-Slack-Retry-Reason", "X-Request-Id", "Content-Encoding", "Accept"]),
                             header_text, max_size=3))
def test_slack_endpoint_never_fails_or_hangs(harness: Harness, body: tuple[bytes, str], signed: bool,
                                             extra: dict[str, str]):
    raw, content_type = body
    headers = {"Content-Type": content_type, **extra}
    if signed:
        headers.update(slack_signature(raw, SECRET, int(time.time())))
    status, text = harness.post("/slack/events", raw, headers)
    assert status < 500, (status, text[:300])
    if not signed and len(raw) <= 1_048_576:
        assert status == 401, (status, text[:300])  # nothing unsigned gets past the signature check
    harness.drain()
    assert_no_internal_errors(harness)


@FUZZ
@given(text=texts, command=st.sampled_from(COMMANDS))
def test_signed_slash_commands_always_get_a_friendly_card(harness: Harness, text: str, command: str):
    body = urlencode({"command": command, "text": text, "team_id": "T0001", "user_id": "U1", "channel_id": "C1",
                      "response_url": harness.slack.response_url()}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **slack_signature(body, SECRET, int(time.time()))}
    status, answer = harness.post("/slack/events", body, headers)
    assert status == 200, answer[:300]
    if answer:  # empty: acknowledged, the card follows through response_url
        message = json.loads(answer)
        assert message["text"] and message["blocks"]
        assert APOLOGY not in message["text"]
    harness.drain()
    assert_no_internal_errors(harness)


def teams_activities(harness: Harness) -> st.SearchStrategy[bytes]:
    base = json.loads((TEAMS_FIXTURES / "personal_message.json").read_text(encoding="utf-8"))
    fixtures = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(TEAMS_FIXTURES.glob("*.json"))
                if p.name != "adaptive-card-1.5.schema.json"]

    def mutate(fixture: dict, changes: dict, loopback: bool) -> bytes:
        activity = {**fixture, **changes}
        if loopback:
            activity["serviceUrl"] = harness.connector.url
        return json.dumps(activity).encode()

    changes = st.dictionaries(
        st.sampled_from(["text", "type", "value", "conversation", "from", "recipient", "entities", "channelData",
                         "id", "replyToId", "membersAdded", "name", "textFormat", "attachments", "serviceUrl"]),
        st.one_of(texts, json_values(6)), max_size=4)
    return st.one_of(
        st.builds(mutate, st.sampled_from(fixtures), changes, st.booleans()),
        st.builds(mutate, st.just(base), st.fixed_dictionaries({"text": texts}), st.just(True)),
        st.binary(max_size=2000),
        st.text(max_size=2000).map(lambda s: s.encode("utf-8", "surrogatepass")),
        json_values().map(lambda v: json.dumps(v).encode()),
        st.integers(1_048_577, 1_300_000).map(lambda n: b"{" * n),
    )


@FUZZ
@given(data=st.data(), content_type=st.one_of(st.just("application/json"), header_text),
       extra=st.dictionaries(st.sampled_from(["Authorization", "X-Request-Id", "Accept"]), header_text, max_size=2))
def test_teams_endpoint_never_fails_or_hangs(harness: Harness, data, content_type: str, extra: dict[str, str]):
    raw = data.draw(teams_activities(harness))
    status, text = harness.post("/api/messages", raw, {"Content-Type": content_type, **extra})
    assert status < 500, (status, text[:300])
    assert_no_internal_errors(harness)


@FUZZ
@given(text=texts)
def test_teams_messages_always_get_a_friendly_card(harness: Harness, text: str):
    activity = json.loads((TEAMS_FIXTURES / "personal_message.json").read_text(encoding="utf-8"))
    activity.update(text=text, serviceUrl=harness.connector.url, id=f"fuzz-{time.monotonic_ns()}")
    before = len(harness.connector.sent)
    status, answer = harness.post("/api/messages", json.dumps(activity).encode(), {"Content-Type": "application/json"})
    assert status in (200, 201, 202), answer[:300]
    sent = harness.connector.sent[before:]
    assert len(sent) == 1 and sent[0].cards, "one Adaptive Card per message"
    assert APOLOGY not in json.dumps(sent[0].body)
    assert_no_internal_errors(harness)


# ------------------------------------------------------------------------------ replay and forgery


def mention_event(event_id: str, text: str = "<@UBOT> how long does the CAC take to review a filing?") -> bytes:
    event = load_fixture("app_mention")
    event["event_id"] = event_id
    event["event"]["text"] = text
    event["event"]["ts"] = f"{time.time():.6f}"
    return json.dumps(event).encode()


def test_a_replayed_request_older_than_five_minutes_is_refused(harness: Harness):
    body = mention_event("EvReplayOld")
    headers = {"Content-Type": "application/json", **slack_signature(body, SECRET, int(time.time()) - 301)}
    posts = len(harness.slack.calls_to("chat.postMessage"))
    assert harness.post("/slack/events", body, headers)[0] == 401
    command = urlencode({"command": "/china-filing", "text": "face", "team_id": "T0001"}).encode()
    stale = {"Content-Type": "application/x-www-form-urlencoded",
             **slack_signature(command, SECRET, int(time.time()) - 6 * 60)}
    assert harness.post("/slack/events", command, stale)[0] == 401
    harness.drain()
    assert len(harness.slack.calls_to("chat.postMessage")) == posts


def test_a_replay_within_the_window_is_answered_once(harness: Harness):
    body = mention_event("EvReplayFresh")
    headers = {"Content-Type": "application/json", **slack_signature(body, SECRET, int(time.time()))}
    posts = len(harness.slack.calls_to("chat.postMessage"))
    for _ in range(3):  # the captured request sent again, byte for byte
        assert harness.post("/slack/events", body, headers)[0] == 200
        harness.drain()
    assert len(harness.slack.calls_to("chat.postMessage")) == posts + 1


@FUZZ
@given(flip=st.integers(0, 10_000), skew=st.integers(-10, 10),
       forgery=st.sampled_from(["wrong_secret", "tampered_body", "moved_timestamp", "v1", "truncated", "missing_sig",
                                "missing_ts", "upper_hex", "empty_secret", "future"]))
def test_forged_signatures_are_refused(harness: Harness, flip: int, skew: int, forgery: str):
    body = mention_event(f"EvForged{flip}")
    now = int(time.time()) + skew
    headers = {"Content-Type": "application/json", **slack_signature(body, SECRET, now)}
    if forgery == "wrong_secret":
        headers.update(slack_signature(body, SECRET + "x", now))
    elif forgery == "tampered_body":
        i = flip % len(body)
        body = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]
    elif forgery == "moved_timestamp":
        headers["X-Slack-Request-Timestamp"] = str(now + 1)
    elif forgery == "v1":
        headers["X-Slack-Signature"] = "v1=" + headers["X-Slack-Signature"][3:]
    elif forgery == "truncated":
        headers["X-Slack-Signature"] = headers["X-Slack-Signature"][:-1]
    elif forgery == "missing_sig":
        del headers["X-Slack-Signature"]
    elif forgery == "missing_ts":
        del headers["X-Slack-Request-Timestamp"]
    elif forgery == "upper_hex":
        headers["X-Slack-Signature"] = "v0=" + headers["X-Slack-Signature"][3:].upper()
    elif forgery == "empty_secret":
        headers.update(slack_signature(body, "", now))
    elif forgery == "future":
        headers.update(slack_signature(body, SECRET, now + 6 * 60))
    posts = len(harness.slack.calls_to("chat.postMessage"))
    assert harness.post("/slack/events", body, headers)[0] == 401
    harness.drain()
    assert len(harness.slack.calls_to("chat.postMessage")) == posts


# ------------------------------------------------------------------------- Block Kit serialisation


def test_slack_limits_are_enforced_where_rendered_blocks_are_validated():
    """The request path builds blocks as dicts without the SDK's per-call validators; validation happens in
    the tests (``validate_blocks``), so it must catch every broken limit."""
    from slack_sdk.errors import SlackObjectFormationError
    from slack_sdk.models.blocks import ActionsBlock, ButtonElement, HeaderBlock, PlainTextObject, SectionBlock

    from bot.slack.blockkit import validate_blocks

    for broken in (HeaderBlock(text=PlainTextObject(text="x" * 151)), SectionBlock(text="x" * 3001),
                   ActionsBlock(elements=[ButtonElement(text="x" * 76, action_id="a")]),
                   SectionBlock(fields=["x"] * 11)):
        with pytest.raises(SlackObjectFormationError):
            broken.to_dict()
        raw = _unvalidated_dict(broken)
        with pytest.raises(SlackObjectFormationError):
            validate_blocks([raw])


def _unvalidated_dict(obj):
    """What a renderer without validation would send for ``obj``: its attributes as dicts, no checks."""
    from slack_sdk.models.basic_objects import JsonObject

    if isinstance(obj, list):
        return [_unvalidated_dict(v) for v in obj]
    if not isinstance(obj, JsonObject):
        return obj
    return {key: _unvalidated_dict(getattr(obj, key)) for key in obj.attributes if getattr(obj, key, None) is not None}


@FUZZ
@given(text=texts, command=st.sampled_from(COMMANDS), share=st.booleans())
def test_every_rendered_reply_is_exactly_what_the_sdk_would_send(harness: Harness, text: str, command: str,
                                                                 share: bool):
    from bot.slack.blockkit import FeedbackRef, render_reply, validate_blocks

    reply = harness.run(harness.desk.handle(Request(text=text, command=command, platform="slack")))
    message = render_reply(reply, share=share, shared_by="U1" if share else None,
                           feedback=FeedbackRef(topic=reply.topic, question=text[:50]))
    assert validate_blocks(message.blocks) == message.blocks  # the SDK's own round trip is a fixpoint
