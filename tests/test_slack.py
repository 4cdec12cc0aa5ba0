"""The Slack app end to end: the real aiohttp application over HTTP, signed Slack payloads, a local Web API.

Every request is built from Slack's documented formats (``tests/fixtures/slack/``), signed with
slack_sdk's ``SignatureVerifier`` and POSTed to ``/slack/events``; everything the bot says goes to
:class:`slack_server.FakeSlack` on 127.0.0.1, which records it. Background work (answers posted after
the acknowledgement) is awaited with ``adapter.drain()``, never with sleeps.

The app under test (:class:`tests.conftest.Bot`) and its ``bot`` fixture are in ``tests/conftest.py``, shared
with ``test_slack_retries.py`` (replays, rate limits, Slack errors) and ``test_slack_workspace.py`` (App Home,
uninstall).
"""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from prometheus_client import REGISTRY
from slack_server import FakeSlack, load_fixture

from bot.slack import listeners as slack_listeners
from bot.slack.blockkit import ACTION_FEEDBACK_DOWN, ACTION_FEEDBACK_UP, ACTION_SHARE, validate_blocks
from bot.slack.translate import slack_to_plain
from bot.store import Store
from handlers import Desk
from tests.conftest import CHANNEL, TEAM, USER, Bot, buttons, running, slack_env, texts

# ------------------------------------------------------------------------------ verification


async def test_url_verification_echoes_the_challenge(bot: Bot):
    payload = load_fixture("url_verification")
    response = await bot.send.event(payload)
    assert response.status == 200
    assert payload["challenge"] in await response.text()


async def test_forged_signature_is_refused_and_nothing_is_posted(bot: Bot):
    response = await bot.send.event(load_fixture("app_mention"), secret="not-the-signing-secret")
    assert response.status == 401
    response = await bot.command("facial-recognition", secret="not-the-signing-secret")
    assert response.status == 401
    await bot.settle()
    assert bot.api.posts() == []


async def test_stale_timestamp_is_refused_even_when_correctly_signed(bot: Bot):
    six_minutes_ago = int(time.time()) - 6 * 60
    response = await bot.send.event(load_fixture("app_mention"), timestamp=six_minutes_ago)
    assert response.status == 401
    response = await bot.command("facial-recognition", timestamp=six_minutes_ago)
    assert response.status == 401
    await bot.settle()
    assert bot.api.posts() == []


async def test_a_four_minute_old_request_is_still_accepted(bot: Bot):
    response = await bot.command("facial-recognition", timestamp=int(time.time()) - 4 * 60)
    assert response.status == 200


# ---------------------------------------------------------------------------- slash commands


async def test_slash_command_is_answered_in_the_ack_as_an_ephemeral_card(bot: Bot):
    started = time.monotonic()
    response = await bot.command("facial-recognition from 2025-09-20")
    elapsed = time.monotonic() - started
    assert response.status == 200
    assert elapsed < 2.0, f"ack took {elapsed:.2f}s; Slack gives up at 3s"
    body = await response.json()
    assert body["response_type"] == "ephemeral"
    blocks = validate_blocks(body["blocks"])
    assert blocks[0]["type"] == "header"
    assert "due Thu 6 Nov 2025" in blocks[0]["text"]["text"]
    dump = texts(blocks)
    assert ":date: *Due Thu 6 Nov 2025*" in dump
    assert "<https://" in dump  # sources are links
    assert "guidance, not legal advice" in dump  # caveat as context
    share = buttons(blocks)[ACTION_SHARE]
    assert share["value"] == "/china-filing facial-recognition from 2025-09-20"
    assert body["text"].startswith("Facial recognition")  # notification fallback
    await bot.settle()
    assert bot.api.posts() == []  # nothing public until someone shares it


@pytest.mark.parametrize("command, text", [("/china-sector", ""), ("/china-platform", ""), ("/china-filing", "help")])
async def test_every_command_answers(bot: Bot, command: str, text: str):
    response = await bot.command(text, command=command)
    assert response.status == 200
    body = await response.json()
    validate_blocks(body["blocks"])
    assert body["response_type"] == "ephemeral"


async def test_slow_answers_are_acked_at_once_and_delivered_through_response_url(
    slack_api: FakeSlack, store: Store, desk: Desk, monkeypatch
):
    import asyncio

    async def slow(request, desk, call_next):
        await asyncio.sleep(0.3)
        return await call_next(request)

    monkeypatch.setattr(slack_listeners, "ACK_BUDGET_SECONDS", 0.05)
    slow_desk = dataclasses.replace(desk, middleware=[slow])
    env = slack_env(slack_api, SLACK_BOT_TOKEN=slack_api.bot_token)
    async with running(env, slow_desk, store, slack_api) as bot:
        response = await bot.command("facial-recognition")
        assert response.status == 200
        assert (await response.text()) == ""  # the empty ack
        await bot.settle()
        [delivered] = slack_api.calls_to("response_url")
        assert delivered.params["response_type"] == "ephemeral"
        assert delivered.params["replace_original"] is False
        assert "Facial recognition" in texts(delivered.blocks)


async def test_channel_ping_in_a_command_is_never_sent_unescaped(bot: Bot):
    response = await bot.command("&lt;!channel&gt; <!channel> <!here> <@U999> &amp; co")
    body = await response.text()
    assert "<!channel>" not in body and "<!here>" not in body and "<@U999>" not in body
    assert "<!" not in body
    await bot.settle()
    for call in bot.api.calls:
        assert "<!" not in call.dumps()


# ------------------------------------------------------- repeated commands: one lane, through bolt


def counted(command: str, outcome: str) -> float:
    return REGISTRY.get_sample_value(
        "chinadesk_requests_total", {"platform": "slack", "command": command, "outcome": outcome}
    ) or 0.0


async def test_a_repeated_card_is_answered_the_same_and_still_counted(bot: Bot):
    before = counted("/china-filing", "deadline")
    first = await bot.command("facial-recognition from 2025-09-20")
    again = await bot.command("facial-recognition from 2025-09-20")
    assert again.status == 200
    assert again.headers["Content-Type"].startswith("application/json")
    assert await again.json() == await first.json()
    assert counted("/china-filing", "deadline") == before + 2
    assert bot.adapter.desk.replies.hits >= 1  # the core's reply cache answered the second, behind bolt's checks


async def test_a_forged_or_stale_copy_of_an_answered_command_is_refused(bot: Bot):
    assert (await bot.command("facial-recognition")).status == 200
    assert (await bot.command("facial-recognition", secret="not-the-signing-secret")).status == 401
    assert (await bot.command("facial-recognition", timestamp=int(time.time()) - 6 * 60)).status == 401


async def test_the_reminders_list_is_never_a_kept_copy(bot: Bot):
    empty = await (await bot.command("reminders")).json()
    assert (await bot.command("remind facial-recognition from today")).status == 200
    listed = await (await bot.command("reminders")).json()
    assert listed != empty
    assert "Facial recognition" in texts(listed["blocks"])


# ------------------------------------------------------------------------ mentions and DMs


async def test_mention_is_answered_in_a_thread_with_feedback_buttons(bot: Bot):
    payload = load_fixture("app_mention")
    response = await bot.event(payload)
    assert (await response.text()) == ""  # acknowledged straight away, answered after
    await bot.settle()
    [post] = bot.api.calls_to("chat.postMessage")
    assert post.params["channel"] == CHANNEL
    assert post.params["thread_ts"] == payload["event"]["ts"]
    assert post.token == bot.api.bot_token
    blocks = validate_blocks(post.blocks)
    assert "Facial recognition" in blocks[0]["text"]["text"]
    found = buttons(blocks)
    assert {ACTION_FEEDBACK_UP, ACTION_FEEDBACK_DOWN} <= set(found)
    assert ACTION_SHARE not in found  # already public
    assert json.loads(found[ACTION_FEEDBACK_UP]["value"])["topic"] == "facial-recognition"


async def test_direct_message_is_answered_in_a_thread(bot: Bot):
    payload = load_fixture("message_im")
    await bot.event(payload)
    await bot.settle()
    [post] = bot.api.calls_to("chat.postMessage")
    assert post.params["channel"] == payload["event"]["channel"]
    assert post.params["thread_ts"] == payload["event"]["ts"]


async def test_question_with_channel_ping_never_reaches_the_web_api_unescaped(bot: Bot):
    payload = load_fixture("app_mention")
    payload["event"]["text"] = "<@UBOT> <!channel> <!here|here> is the facial recognition filing &lt;!everyone&gt; due?"
    await bot.event(payload)
    await bot.settle()
    [post] = bot.api.calls_to("chat.postMessage")
    assert "<!" not in post.dumps()


async def test_a_retried_event_posts_exactly_one_answer(bot: Bot):
    payload = load_fixture("app_mention")
    await bot.event(payload)
    await bot.event(payload, retry_num=1)
    await bot.event(payload, retry_num=2)
    await bot.settle()
    assert len(bot.api.calls_to("chat.postMessage")) == 1


async def test_a_duplicated_event_id_posts_exactly_one_answer(bot: Bot):
    payload = load_fixture("message_im")
    await bot.event(payload)
    await bot.event(load_fixture("message_im"))  # same event_id, no retry header
    await bot.settle()
    assert len(bot.api.calls_to("chat.postMessage")) == 1


async def test_a_mention_in_a_watched_channel_is_answered_once(bot: Bot):
    await bot.store.set_channel_watch("slack", TEAM, CHANNEL, True)
    mention = load_fixture("app_mention")
    message = load_fixture("message_channels")  # the same message, as message.channels sees it
    message["event"].update(text=mention["event"]["text"], ts=mention["event"]["ts"])
    await bot.event(message)
    await bot.event(mention)
    await bot.settle()
    assert len(bot.api.calls_to("chat.postMessage")) == 1


async def test_other_bots_and_our_own_messages_are_ignored(bot: Bot):
    await bot.event(load_fixture("message_bot"))
    own = load_fixture("message_im")
    own["event_id"] = "Ev0OWN"
    own["event"].update(user="UBOT", bot_id="BBOT")
    await bot.event(own)
    edited = load_fixture("message_im")
    edited["event_id"] = "Ev0EDIT"
    edited["event"]["subtype"] = "message_changed"
    await bot.event(edited)
    bot_mention = load_fixture("app_mention")
    bot_mention["event_id"] = "Ev0BOTMENTION"
    bot_mention["event"]["bot_id"] = "B0OTHER"
    await bot.event(bot_mention)
    await bot.settle()
    assert bot.api.posts() == []


# ----------------------------------------------------------------------- watched channels


async def test_unwatched_channel_messages_are_left_alone(bot: Bot):
    await bot.event(load_fixture("message_channels"))
    await bot.settle()
    assert bot.api.posts() == []


async def test_watched_channel_gets_answers_only_to_questions_about_its_topics(bot: Bot):
    await bot.store.set_channel_watch("slack", TEAM, CHANNEL, True)
    question = load_fixture("message_channels")
    await bot.event(question)
    chatter = load_fixture("message_channels")
    chatter["event_id"] = "Ev0CHATTER"
    chatter["event"].update(text="Anyone up for lunch at noon?", ts="1355517999.000001")
    await bot.event(chatter)
    await bot.settle()
    [post] = bot.api.calls_to("chat.postMessage")
    assert post.params["thread_ts"] == question["event"]["ts"]


# ------------------------------------------------------------------------------------ buttons


async def test_share_posts_the_card_publicly_attributed_to_the_user(bot: Bot):
    await bot.action(load_fixture("block_actions_share"))
    await bot.settle()
    [post] = bot.api.calls_to("chat.postMessage")
    assert post.params["channel"] == CHANNEL
    assert "thread_ts" not in post.params
    blocks = validate_blocks(post.blocks)
    assert f"Shared by <@{USER}>" in texts(blocks)
    assert "due Thu 6 Nov 2025" in blocks[0]["text"]["text"]
    assert ACTION_SHARE not in buttons(blocks)


async def test_share_where_the_bot_is_not_a_member_explains_how_to_invite_it(bot: Bot):
    bot.api.fail("chat.postMessage", "not_in_channel")
    await bot.action(load_fixture("block_actions_share"))
    await bot.settle()
    [notice] = bot.api.calls_to("response_url")
    assert notice.params["response_type"] == "ephemeral"
    assert "/invite @China Desk" in notice.dumps()


async def test_feedback_is_stored_once_per_user_and_message(bot: Bot):
    payload = load_fixture("block_actions_feedback")
    await bot.action(payload)
    await bot.action(load_fixture("block_actions_feedback"))
    await bot.settle()
    [fb] = await bot.store.list_feedback("slack")
    assert (fb.vote, fb.topic, fb.user, fb.channel, fb.workspace) == ("up", "facial-recognition", USER, CHANNEL, TEAM)
    assert fb.question == "what does the facial recognition filing involve?"
    assert fb.message_ref == f"{CHANNEL}:1700000001.000101"
    answers = sorted(c.params["text"] for c in bot.api.calls_to("response_url"))
    assert answers[0].startswith("Thanks for the feedback") and answers[1].startswith("You already rated")


async def test_feedback_buttons_from_an_answer_round_trip(bot: Bot):
    await bot.event(load_fixture("app_mention"))
    await bot.settle()
    [post] = bot.api.calls_to("chat.postMessage")
    down = buttons(post.blocks)[ACTION_FEEDBACK_DOWN]
    click = load_fixture("block_actions_feedback")
    click["actions"] = [{**click["actions"][0], "action_id": down["action_id"], "value": down["value"]}]
    await bot.action(click)
    await bot.settle()
    [fb] = await bot.store.list_feedback("slack")
    assert fb.vote == "down" and fb.topic == "facial-recognition"


# ------------------------------------------------------------------------------------- misc


def test_slack_markup_becomes_plain_text():
    assert slack_to_plain("<@UBOT> is <https://x.cn/a?b=1&amp;c=2|this> ok &amp; &lt;b&gt;", "UBOT") == (
        "is this ok & <b>"
    )
    assert slack_to_plain("<!channel> <!here|here> <!subteam^S1|@legal> <@U2|ann> <#C1|general>") == (
        "@channel @here @legal @ann #general"
    )
    assert slack_to_plain("<https://example.com>") == "https://example.com"


async def test_healthz(bot: Bot):
    response = await bot.http.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


# ------------------------------------------------------------------------------- translation


async def test_slack_payloads_become_requests_with_the_channel_timezone(
    slack_api: FakeSlack, store: Store, desk: Desk
):
    seen = []

    async def capture(request, desk, call_next):
        seen.append(request)
        return await call_next(request)

    await store.set_channel_timezone("slack", TEAM, CHANNEL, "Europe/London")
    env = slack_env(slack_api, SLACK_BOT_TOKEN=slack_api.bot_token)
    async with running(env, dataclasses.replace(desk, middleware=[capture]), store, slack_api) as bot:
        await bot.command("&lt;b&gt; facial-recognition")
        await bot.event(load_fixture("app_mention"))
        await bot.event(load_fixture("message_im"))
        await bot.settle()
    command, mention, direct = seen
    assert (command.platform, command.mode, command.command, command.text) == (
        "slack", "command", "/china-filing", "<b> facial-recognition",  # Slack's entities decoded once
    )
    assert (command.user, command.channel, command.workspace, command.timezone) == (
        USER, CHANNEL, TEAM, "Europe/London",
    )
    assert (mention.mode, mention.text, mention.timezone) == (
        "mention", "what does the facial recognition filing involve?", "Europe/London",  # bot mention removed
    )
    assert (direct.mode, direct.channel, direct.timezone) == ("direct", "D024BE91L", "Asia/Shanghai")


async def test_a_command_button_runs_the_command_privately_for_the_clicker(bot: Bot):
    click = load_fixture("block_actions_share")
    click["actions"] = [{**click["actions"][0], "action_id": "chinadesk_command", "value": "/china-filing pipia"}]
    await bot.action(click)
    await bot.settle()
    [answer] = bot.api.calls_to("response_url")
    assert answer.params["response_type"] == "ephemeral" and answer.params["replace_original"] is False
    assert "PIPIA" in texts(validate_blocks(answer.blocks))
    assert bot.api.calls_to("chat.postMessage") == []


# ------------------------------------------------------------------------------- thread follow-ups


def _in_thread(root: dict, text: str, ts: str, event_id: str, mention: bool = False) -> dict:
    """A reply in ``root``'s thread, as Slack sends it (app_mention when it mentions the bot)."""
    payload = load_fixture("app_mention" if mention else "message_channels")
    payload["event_id"] = event_id
    payload["event"].update(text=text, ts=ts, thread_ts=root["event"]["ts"], channel=root["event"]["channel"])
    return payload


async def test_a_question_in_a_thread_begun_with_the_bot_is_a_follow_up(bot: Bot):
    root = load_fixture("app_mention")
    root["event"]["text"] = "<@UBOT> what's the facial recognition filing?"
    await bot.event(root)
    await bot.settle()
    follow = _in_thread(root, "what documents do they need?", "1355517700.000001", "Ev0FOLLOW1")
    await bot.event(follow)
    await bot.settle()
    _answer, second = bot.api.calls_to("chat.postMessage")
    assert second.params["thread_ts"] == root["event"]["ts"]
    blocks = texts(second.blocks)
    assert "Facial recognition" in blocks and ("power of attorney" in blocks or "PIPIA" in blocks)


async def test_chatter_between_people_in_the_bots_thread_is_left_alone(bot: Bot):
    root = load_fixture("app_mention")
    root["event"]["text"] = "<@UBOT> what's the facial recognition filing?"
    await bot.event(root)
    await bot.settle()
    for n, text in enumerate(("<@U0ALICE> can you send the documents over?", "great, thanks!",
                              "I'll check with legal tomorrow.", "<!here> what documents do they need?")):
        await bot.event(_in_thread(root, text, f"1355517800.00000{n}", f"Ev0CHAT{n}"))
    await bot.settle()
    assert len(bot.api.calls_to("chat.postMessage")) == 1  # only the answer to the question to the bot


async def test_a_thread_not_begun_with_a_question_to_the_bot_needs_a_mention(bot: Bot):
    root = load_fixture("message_channels")
    root["event"].update(text="We filed the SCC last week.", ts="1355517900.000001")
    await bot.event(root)
    mention = _in_thread(root, "<@UBOT> what is the standard contract route?", "1355517900.000002", "Ev0MID",
                         mention=True)
    await bot.event(mention)
    await bot.settle()
    assert len(bot.api.calls_to("chat.postMessage")) == 1  # the mention is answered, in the thread
    await bot.event(_in_thread(root, "who do we file it with?", "1355517900.000003", "Ev0NOMENTION"))
    await bot.settle()
    assert len(bot.api.calls_to("chat.postMessage")) == 1
    # ...and with a mention it is a follow-up: the thread's context answers it.
    await bot.event(_in_thread(root, "<@UBOT> who do we file it with?", "1355517900.000004", "Ev0MENTION2",
                               mention=True))
    await bot.settle()
    last = bot.api.calls_to("chat.postMessage")[-1]
    assert last.params["thread_ts"] == root["event"]["ts"] and "provincial" in texts(last.blocks)


@pytest.mark.parametrize("timestamp", ["", "abc", "１２３", "12.5", " 1"])
async def test_odd_signature_timestamps_get_401_not_500(bot: Bot, timestamp: str):
    # Regression (seen by test_fuzz): a signed-looking request whose timestamp header was empty or not a
    # number must be refused like any unsigned one, both for a command and for a body bolt cannot parse.
    headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": "v0=00"}
    for body in ("command=%2Fchina-filing&text=facial-recognition", "payload=%5B1%5D"):
        response = await bot.http.post("/slack/events", data=body.encode(), headers={
            "Content-Type": "application/x-www-form-urlencoded", **headers})
        assert response.status == 401
