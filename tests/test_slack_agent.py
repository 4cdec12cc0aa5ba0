"""Slack's agent experience and feedback that teaches, end to end over signed HTTP against the Slack stand-in.

* The app's DM: suggested prompts when a conversation starts, "Checking the packs…" before the answer is
  posted in the thread (the stand-in records the calls in order), the thread's context for follow-ups,
  and today's behaviour where a workspace cannot use the agent feature.
* 👎 opens a modal asking why (optional); the reason reaches the store; the App Home shows workspace
  admins (users.info is_admin/is_owner) the same review summary as ``chinadesk feedback report``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import pytest
from slack_server import FakeSlack, load_fixture

from bot.slack.blockkit import ACTION_FEEDBACK_DOWN, ACTION_FEEDBACK_UP, validate_blocks
from bot.slack.feedback import (
    ACTION_COMMENT,
    ACTION_REASON,
    BLOCK_COMMENT,
    BLOCK_REASON,
    CALLBACK_FEEDBACK_REASON,
)
from bot.store import Feedback, Store
from content.loader import Library
from handlers import Desk
from handlers.feedback import UnansweredQuestion
from handlers.prompts import starter_prompts
from tests.conftest import TEAM, USER, Bot, running, slack_env, texts

DM = "D024BE91L"
_OPENINGS = itertools.count()
THREAD = "1729999327.187299"


@pytest.fixture
async def bot(slack_api: FakeSlack, store: Store, desk: Desk) -> AsyncIterator[Bot]:
    async with running(slack_env(slack_api, SLACK_BOT_TOKEN=slack_api.bot_token), desk, store, slack_api) as b:
        yield b


def _dm(text: str, ts: str, *, thread_ts: str | None = THREAD, event_id: str) -> dict:
    payload = load_fixture("message_im_thread")
    payload["event"].update(text=text, ts=ts, event_ts=ts)
    if thread_ts is None:
        payload["event"].pop("thread_ts")
        payload["event"].pop("parent_user_id")
    else:
        payload["event"]["thread_ts"] = thread_ts
    payload["event_id"] = event_id
    return payload


# ----------------------------------------------------------------------------------- the agent DM


async def test_a_dm_thread_gets_prompts_then_a_status_before_its_answer(bot: Bot, library: Library):
    await bot.event(load_fixture("assistant_thread_started"))
    await bot.settle()
    await bot.event(load_fixture("message_im_thread"))
    await bot.settle()
    order = [c.method for c in bot.api.calls
             if c.method.startswith("assistant.") or c.method == "chat.postMessage"]
    assert order == ["assistant.threads.setSuggestedPrompts", "assistant.threads.setStatus", "chat.postMessage"]
    prompts, status, answer = (bot.api.calls_to(m)[0] for m in order)
    assert prompts.params["channel_id"] == DM
    assert "thread_ts" not in prompts.params  # an agent-view app names no thread (Slack ignores such calls)
    sent = [p["message"] for p in prompts.params["prompts"]]
    assert sent == [p.message for p in starter_prompts(library)] and 1 <= len(sent) <= 4
    assert status.params["channel_id"] == DM and status.params["thread_ts"] == THREAD
    assert status.params["status"] == "Checking the packs…"
    assert answer.params["channel"] == DM and answer.params["thread_ts"] == THREAD  # in the DM's thread
    assert "ICP" in answer.dumps()


async def test_the_messages_tab_opening_gets_the_prompts(bot: Bot):
    home = load_fixture("app_home_opened")
    home["event"]["tab"] = "messages"
    await bot.event(home)
    await bot.settle()
    [prompts] = bot.api.calls_to("assistant.threads.setSuggestedPrompts")
    assert prompts.params["channel_id"] == DM
    assert bot.api.calls_to("views.publish") == []  # the Home tab was not opened


async def test_a_follow_up_in_the_dm_thread_keeps_the_threads_topic(bot: Bot):
    await bot.event(_dm("what's the facial recognition filing?", "1729999340.000200", event_id="Ev0A1"))
    await bot.settle()  # people wait for the answer before they ask the next thing
    await bot.event(_dm("what documents do they need?", "1729999350.000300", event_id="Ev0A2"))
    await bot.settle()
    await bot.event(_dm("what documents do they need?", "1729999360.000400", thread_ts=None, event_id="Ev0A3"))
    await bot.settle()
    first, follow_up, elsewhere = bot.api.calls_to("chat.postMessage")
    assert "Facial recognition" in first.dumps()
    assert follow_up.params["thread_ts"] == THREAD  # answered in the DM's thread, about the thread's topic
    assert "power of attorney" in follow_up.dumps().casefold() or "pipia" in follow_up.dumps().casefold()
    assert elsewhere.params["thread_ts"] == "1729999360.000400"  # a new conversation: its own thread
    assert "Facial recognition" not in elsewhere.dumps()


@pytest.mark.parametrize("error", ["not_allowed", "missing_scope", "not_allowed_token_type"])
async def test_without_the_agent_feature_the_dm_is_answered_as_before(bot: Bot, error: str):
    bot.api.fail("assistant.threads.setStatus", error, times=None)
    bot.api.fail("assistant.threads.setSuggestedPrompts", error, times=None)
    await bot.event(load_fixture("assistant_thread_started"))
    await bot.settle()
    await bot.event(_dm("What is ICP bei'an?", "1729999340.000200", event_id="Ev0B1"))
    await bot.settle()
    await bot.event(_dm("who approves it?", "1729999350.000300", event_id="Ev0B2"))
    await bot.settle()
    assert len(bot.api.calls_to("chat.postMessage")) == 2  # both answered
    # The workspace is not asked again before every answer once Slack said it cannot.
    assert len(bot.api.calls_to("assistant.threads.setStatus", "assistant.threads.setSuggestedPrompts")) == 1


async def test_a_slow_status_call_does_not_hold_the_answer_back(bot: Bot, monkeypatch):
    from bot.slack import assistant

    monkeypatch.setattr(assistant, "CALL_BUDGET", 0.5)
    release = bot.api.hold("assistant.threads.setStatus")  # "Slack" does not answer the status call...
    await bot.event(_dm("What is ICP bei'an?", "1729999340.000200", event_id="Ev0C1"))
    [answer] = await bot.api.wait_for("chat.postMessage", within=60.0)
    assert not release.is_set()  # ...and the answer was posted all the same
    assert answer.params["thread_ts"] == THREAD
    release.set()
    await bot.settle()


# ------------------------------------------------------------------------------ 👎 asks for a reason


async def _answer_and_click(bot: Bot, action_id: str) -> tuple[dict, dict]:
    await bot.event(_dm("What is ICP bei'an?", "1729999340.000200", event_id="Ev0D1"))
    await bot.settle()
    [answer] = bot.api.calls_to("chat.postMessage")
    button = next(e for b in answer.blocks if b["type"] == "actions" for e in b["elements"]
                  if e["action_id"] == action_id)
    click = load_fixture("block_actions_feedback")
    click["actions"][0].update(action_id=action_id, value=button["value"])
    click["container"].update(channel_id=DM, message_ts="1729999341.000001")
    click["channel"]["id"] = DM
    await bot.action(click)
    await bot.settle()
    return click, button


def _submission(view: dict, reason: str | None, comment: str | None) -> dict:
    values: dict = {BLOCK_REASON: {ACTION_REASON: {"type": "radio_buttons", "selected_option": None}},
                    BLOCK_COMMENT: {ACTION_COMMENT: {"type": "plain_text_input", "value": comment}}}
    if reason is not None:
        values[BLOCK_REASON][ACTION_REASON]["selected_option"] = {"value": reason}
    return {
        "type": "view_submission", "team": {"id": TEAM, "domain": "acme"},
        "user": {"id": USER, "team_id": TEAM}, "api_app_id": "A0001", "token": "x", "trigger_id": "1.2.3",
        "view": {**view, "id": "V1", "team_id": TEAM, "state": {"values": values}},
    }


async def test_thumbs_down_opens_a_reason_modal_and_the_reason_is_stored(bot: Bot, library: Library):
    click, _ = await _answer_and_click(bot, ACTION_FEEDBACK_DOWN)
    [opened] = bot.api.calls_to("views.open")
    assert opened.params["trigger_id"] == click["trigger_id"]
    view = opened.view
    assert view["callback_id"] == CALLBACK_FEEDBACK_REASON
    validate_blocks(view["blocks"])
    [vote] = await bot.store.list_feedback("slack")
    assert vote.vote == "down" and vote.reason is None and vote.fact and vote.fact.startswith("icp-beian#")

    response = await bot.send.action(_submission(view, "outdated", "The <!channel> fee changed in 2026"))
    assert response.status == 200 and (await response.text()) in ("", "{}")  # closes the modal
    await bot.settle()
    [vote] = await bot.store.list_feedback("slack")
    assert vote.reason == "outdated" and vote.reason_text == "The <!channel> fee changed in 2026"


async def test_a_forged_reason_is_refused_in_the_modal_and_changes_nothing(bot: Bot):
    await _answer_and_click(bot, ACTION_FEEDBACK_DOWN)
    [opened] = bot.api.calls_to("views.open")
    response = await bot.send.action(_submission(opened.view, "DROP TABLE", None))
    assert response.status == 200
    body = json.loads(await response.text())
    assert body["response_action"] == "errors" and BLOCK_REASON in body["errors"]
    await bot.settle()
    assert (await bot.store.list_feedback("slack"))[0].reason is None


async def test_thumbs_up_opens_no_modal(bot: Bot):
    await _answer_and_click(bot, ACTION_FEEDBACK_UP)
    assert bot.api.calls_to("views.open") == []
    assert [f.vote for f in await bot.store.list_feedback("slack")] == ["up"]


# ------------------------------------------------------------------------ the App Home, for admins


async def _home(bot: Bot) -> str:
    opened = load_fixture("app_home_opened")
    opened["event_id"] = f"Ev0HOME{next(_OPENINGS)}"  # each opening is its own event
    await bot.event(opened)
    await bot.settle()
    [publish] = bot.api.calls_to("views.publish")
    validate_blocks(publish.view["blocks"])
    return texts(publish.view["blocks"])


async def _some_feedback(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    await store.record_feedback(Feedback("slack", TEAM, DM, "U9", f"{DM}:1.1", "icp-beian", "down", "beian?",
                                         created_at=now, fact="icp-beian#summary"))
    await store.record_feedback_reason("slack", f"{DM}:1.1", "U9", "outdated", "new rules since May")
    await store.record_feedback(Feedback("slack", "T0OTHER", "C9", "U9", "C9:1.1", "douyin", "down",
                                         created_at=now))
    await store.record_unanswered(UnansweredQuestion("slack", TEAM, "douyin", "douyin visa fee?", "en", now,
                                                     now + dt.timedelta(days=90)))


async def test_the_app_home_shows_admins_the_review_summary(bot: Bot, library: Library):
    bot.api.set_user(USER, is_admin=True)
    await _some_feedback(bot.store)
    dump = await _home(bot)
    assert "Feedback to review" in dump
    assert library.topics["icp-beian"].title in dump and "out of date" in dump and "new rules since May" in dump
    assert "douyin visa fee?" in dump
    assert "1 👎" in dump  # this workspace's only: the other workspace's 👎 on Douyin is not counted
    [info] = bot.api.calls_to("users.info")
    assert info.params["user"] == USER


async def test_the_app_home_shows_owners_the_summary_but_not_members(bot: Bot):
    await _some_feedback(bot.store)
    assert "Feedback to review" not in await _home(bot)
    bot.api.calls.clear()
    bot.api.set_user(USER, is_owner=True)
    assert "Feedback to review" in await _home(bot)


async def test_the_app_home_without_users_read_shows_no_summary_and_still_publishes(bot: Bot):
    await _some_feedback(bot.store)
    bot.api.fail("users.info", "missing_scope")
    dump = await _home(bot)
    assert "Feedback to review" not in dump and "Tracked deadlines" in dump


async def test_the_app_home_counts_working_days_left(bot: Bot):
    bot.api.set_members("C2147483705", {USER, "UBOT"})
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()  # the Home counts in the default time zone
    due = today + dt.timedelta(days=21)
    await bot.store.add_tracked(platform="slack", workspace=TEAM, channel="C2147483705", topic="facial-recognition",
                                start=today.isoformat(), due=due, note=None, created_by=USER, posts=[])
    dump = await _home(bot)
    from content.calendar import china_calendar

    working = china_calendar().working_days_between(today, due)
    assert f"{working} working days left" in dump and "days left)" not in dump.replace("working days left)", "")
