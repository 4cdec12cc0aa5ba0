"""The Slack app end to end (the harness of ``test_slack.py``) when Slack sends again or fails: a 429 is retried
after its Retry-After, a replayed signed command answers the first answer and changes nothing twice, and an
answer outlives a Slack Web API that errs once or stays down."""

from __future__ import annotations

import time

import pytest
from slack_server import load_fixture

from bot.store import Store
from tests.conftest import CHANNEL, Bot

# ------------------------------------------------------------------------------- rate limits


async def test_rate_limited_post_is_retried_after_retry_after(bot: Bot):
    bot.api.rate_limit("chat.postMessage", retry_after=0)
    await bot.event(load_fixture("app_mention"))
    await bot.settle()
    first, second = bot.api.calls_to("chat.postMessage")
    assert first.params == second.params  # the same answer, sent again after the 429


# ----------------------------------------------------------------------------------- replays


async def _state(store: Store) -> tuple:
    settings = await store.get_channel_settings("slack", CHANNEL)
    return ([(d.topic, d.start) for d in await store.list_tracked("slack")],
            [s.topic for s in await store.list_subscriptions("slack")], settings.timezone, settings.watch)


@pytest.mark.parametrize(("first", "then"), [
    ("remind facial-recognition from today board pack", None),  # the attack seen: 3 deadlines from one request
    ("subscribe 618", "unsubscribe 618"),
    ("unsubscribe 618", "subscribe 618"),
    ("timezone Europe/London", "timezone Asia/Tokyo"),
    ("watch on", "watch off"),
    ("cancel D1", "remind facial-recognition from today"),
])
async def test_a_replayed_state_changing_command_changes_nothing_twice(bot: Bot, first: str, then: str | None):
    """The same signed request sent again (within Slack's five minutes) gets the first answer and changes nothing."""
    if first.startswith(("unsubscribe", "cancel")):  # something to undo first
        await bot.command("subscribe 618" if first.startswith("unsubscribe") else
                          "remind facial-recognition from today")
    body = load_fixture("slash_command")
    body.update(text=first, response_url=bot.api.response_url("replayed"), trigger_id="1334.7384.replayed")
    signed_at = int(time.time())
    answer = await (await bot.send.command(body, timestamp=signed_at)).json()
    if then:
        await bot.command(then)
    after = await _state(bot.store)
    for _ in range(2):  # the attacker's copies: byte for byte the same request, headers included
        response = await bot.send.command(body, timestamp=signed_at)
        assert response.status == 200
        assert await response.json() == answer  # the first answer, not a second change
    assert await _state(bot.store) == after
    if then is None:
        assert len(after[0]) == 1


async def test_a_replayed_mistake_stays_a_mistake(bot: Bot):
    """A command refused the first time is refused again on replay, even if it would now succeed."""
    body = load_fixture("slash_command")
    body.update(text="cancel D1", response_url=bot.api.response_url("replayed"))
    signed_at = int(time.time())
    refused = await (await bot.send.command(body, timestamp=signed_at)).json()
    assert "There is no reminder D1" in refused["text"]
    await bot.command("remind facial-recognition from today")  # D1 exists now
    assert await (await bot.send.command(body, timestamp=signed_at)).json() == refused
    assert len(await bot.store.list_tracked("slack")) == 1


async def test_two_real_invocations_of_the_same_command_both_count(bot: Bot):
    for _ in range(2):  # each has its own trigger_id and response_url, as Slack sends them
        assert (await bot.command("remind facial-recognition from today")).status == 200
    assert len(await bot.store.list_tracked("slack")) == 2


# ------------------------------------------------------------------------- transient failures


@pytest.mark.parametrize("fixture", ["app_mention", "message_im"])
@pytest.mark.parametrize(("status", "body", "content_type"), [
    (500, None, "application/json"),  # Slack's own JSON error
    (500, "upstream connect error or disconnect/reset before headers", "text/plain"),  # a proxy's bare 5xx
    (503, "<html><body>Service Unavailable</body></html>", "text/html"),
    (502, "{not json", "application/json"),  # a body that claims JSON and is not
])
async def test_an_answer_survives_one_server_error(bot: Bot, fixture: str, status: int, body: str | None,
                                                   content_type: str):
    payload = load_fixture(fixture)
    bot.api.fail_http("chat.postMessage", status, body=body, content_type=content_type)
    await bot.event(payload)
    await bot.settle()
    first, second = bot.api.calls_to("chat.postMessage")
    assert first.params == second.params  # the same answer, sent again after the failure
    channel = payload["event"]["channel"]
    [answer] = bot.api.history[channel]  # ...and it reached the conversation exactly once
    assert answer["text"] == second.params["text"] and answer["ts"]


async def test_an_answer_outlives_a_slack_that_stays_down_without_a_traceback(bot: Bot, caplog):
    bot.api.fail_http("chat.postMessage", 500, body="upstream error", content_type="text/plain", times=None)
    await bot.event(load_fixture("app_mention"))
    await bot.settle()
    assert len(bot.api.calls_to("chat.postMessage")) >= 2  # retried before giving up
    failures = [r for r in caplog.records if r.name.startswith("chinadesk.slack")]
    assert failures and all(r.exc_info is None for r in failures), [r.getMessage() for r in failures]
    assert any("http_500" in str(getattr(r, "error", "")) for r in failures)
