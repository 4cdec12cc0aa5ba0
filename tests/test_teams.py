"""Teams over real HTTP: Bot Framework Activity JSON is POSTed to ``/api/messages`` on the aiohttp app,
the bot answers through botbuilder's ConnectorClient to a local Bot Connector-compatible server
(:mod:`tests.connector_server`), and the tests assert on the Adaptive Cards that server received.

Fixtures in ``tests/fixtures/teams/`` are Teams payloads as Teams sends them (personal chat, channel
@mention with its mention entity, group chat, install, removal, Action.Submit, Action.Execute invoke);
each test only points ``serviceUrl`` at the local connector.

The harness (:class:`tests.connector_server.TeamsHarness`, the card helpers) is in ``tests/connector_server.py``
and the ``teams``, ``connector`` and ``engine`` fixtures in ``tests/conftest.py``, shared with
``test_teams_install.py``, ``test_teams_proactive.py`` and ``test_teams_auth.py``.
"""

from __future__ import annotations

import json

import pytest

from bot.teams.common import channel_key
from tests.connector_server import (
    ACCEPTED,
    CHANNEL_ID,
    TENANT,
    USER_AAD,
    TeamsHarness,
    assert_valid_card,
    facts,
    find,
    fixture,
    submit_data,
    texts,
)

# ------------------------------------------------------------------------------------ answering


async def test_personal_chat_deadline_card(teams: TeamsHarness):
    (sent,) = await teams.say("personal_message.json")
    # A reply to the user's message, in their personal conversation.
    assert sent.path.endswith("/activities/1758506400123")
    assert sent.conversation_id.startswith("a:1Ux3mW9qB5zK7nP2vT8yR4cL6hJ0dF3gS5aQ7wE9rY1uI3oP5lK7jH9gF2dS4aZ6xC")
    assert sent.authorization is None  # local mode: no token on replies either
    card = sent.card
    assert_valid_card(card)
    title = card["body"][0]
    assert title["text"].startswith("Facial recognition technology application filing: due Thu 6 Nov 2025")
    assert (title["weight"], title["size"], title["wrap"]) == ("bolder", "medium", True)
    assert facts(card)["Due"] == "Thu 6 Nov 2025"
    assert facts(card)["Triggered"] == "Sat 20 Sep 2025"
    deadline = find(card, "deadline")
    assert "2025-11-06" in deadline["items"][0]["text"]
    assert any("make-up working days" in t for t in texts(deadline))
    body = texts(card)
    assert any("[What Are China's New Facial Recognition Regulations?](https://focus.cbbc.org/" in t for t in body)
    assert any("(2025-06-27)" in t for t in body)
    caveat = next(b for b in card["body"] if b.get("isSubtle") and "not legal advice" in b["text"])
    assert caveat["size"] == "small"
    votes = [d for d in submit_data(card) if d["action"] == "feedback"]
    assert [(d["vote"], d["topic"], d["kind"]) for d in votes] == [
        ("up", "facial-recognition", "deadline"), ("down", "facial-recognition", "deadline")]
    # That deadline has passed (Thu 6 Nov 2025): no "Set reminders" button that could only be refused.
    assert not [d for d in submit_data(card) if d["action"] == "command" and " remind " in d["text"]]
    # The plain-text fallback travels with the card.
    assert sent.body["summary"].startswith("Facial recognition technology application filing: due Thu 6 Nov 2025")
    assert card["fallbackText"].startswith("Facial recognition technology application filing")


async def test_channel_mention_is_stripped_and_answered_in_the_thread(teams: TeamsHarness):
    (sent,) = await teams.say("channel_mention.json")
    assert sent.conversation_id == f"{CHANNEL_ID};messageid=1758506700456"
    assert sent.reply_to_id == "1758506700456"
    assert facts(sent.card)["Due"] == "Thu 6 Nov 2025"
    assert "2025-11-06" in find(sent.card, "deadline")["items"][0]["text"]
    # The reference is stored for the channel (not the thread), for later proactive posts.
    stored = await teams.store.get_conversation("teams", CHANNEL_ID)
    assert stored is not None and stored["conversation"]["id"] == CHANNEL_ID
    assert "activityId" not in stored


@pytest.mark.parametrize("text", [
    "<at>China Desk</at> china-filing facial-recognition",
    "<at>China Desk</at> /china-filing facial-recognition",
    "<at>China Desk</at> filing facial-recognition",
])
async def test_every_command_form_works_in_a_channel(teams: TeamsHarness, text: str):
    (sent,) = await teams.say("channel_mention.json", text=text, id=f"m-{abs(hash(text))}")
    assert sent.card["body"][0]["text"].startswith("Facial recognition technology application filing")
    assert_valid_card(sent.card)


async def test_group_chat_mention(teams: TeamsHarness):
    (sent,) = await teams.say("group_chat_mention.json")
    card = sent.card
    assert_valid_card(card)
    assert "Xiaohongshu" in card["body"][0]["text"] or "RED" in card["body"][0]["text"]


async def test_other_text_goes_to_channel_qa(teams: TeamsHarness):
    text = "<at>China Desk</at> how do we sell on xiaohongshu?"
    (sent,) = await teams.say("channel_mention.json", text=text, id="qa-1")
    assert_valid_card(sent.card)
    kinds = {d.get("kind") for d in submit_data(sent.card) if d["action"] == "feedback"}
    assert kinds == {"answer"}


# --------------------------------------------------------------------- friendly odd messages


@pytest.mark.parametrize("text", ["<at>China Desk</at>", "<at>China Desk</at>   \n", ""])
async def test_mention_only_and_empty_messages_get_the_help_card(teams: TeamsHarness, text: str):
    (sent,) = await teams.say("channel_mention.json", text=text, id=f"e-{len(text)}")
    card = sent.card
    assert_valid_card(card)
    assert card["body"][0]["text"] == "China Desk: what I can do"
    assert any("/china-filing" in t for t in texts(card))


async def test_personal_message_without_text_gets_help(teams: TeamsHarness):
    activity = fixture("personal_message.json", serviceUrl=teams.connector.url, id="no-text")
    del activity["text"]
    status, _ = await teams.post(activity)
    assert status in ACCEPTED
    assert teams.connector.cards[-1]["body"][0]["text"] == "China Desk: what I can do"


async def test_100_kb_message_gets_a_polite_refusal(teams: TeamsHarness):
    (sent,) = await teams.say("personal_message.json", text="x" * 100_000, id="big")
    card = sent.card
    assert_valid_card(card)
    assert card["body"][0]["text"] == "I couldn't do that"
    assert any("100,000 characters" in t and "Please shorten it" in t for t in texts(card))
    assert len(json.dumps(sent.body)) < 28_000  # Teams' message size limit


async def test_user_text_never_becomes_a_link_or_mention(teams: TeamsHarness):
    evil = "china-filing [click me](https://evil.example/x) <b>hi</b> <at>Everyone</at> **bold**"
    (sent,) = await teams.say("personal_message.json", text=evil, id="evil")
    card = sent.card
    assert_valid_card(card)
    shown = "\n".join(texts(card))
    markdown = "\n".join(texts(card, markdown_only=True))  # what a client reads as Markdown
    assert "[click me](" not in markdown and "<b>" not in markdown and "**bold**" not in markdown
    # Shown as typed, in text no client reads as Markdown (a RichTextBlock): no link, no bold, no escapes.
    assert "[click me](https://evil.example/x) <b>hi</b>" in shown and "**bold**" in shown
    assert "\\" not in shown
    assert "<at>" not in shown  # a mention of someone else is dropped, markup and all
    assert "&lt;" not in shown  # HTML entities are not Markdown: they would show literally


# --------------------------------------------------------------------------------- card actions


async def test_feedback_submit_is_stored(teams: TeamsHarness):
    (sent,) = await teams.say("submit_feedback.json")
    assert_valid_card(sent.card)
    assert "Thanks" in sent.card["body"][0]["text"]
    (fb,) = await teams.store.list_feedback("teams")
    assert (fb.vote, fb.topic, fb.user, fb.workspace, fb.message_ref) == (
        "up", "facial-recognition", USER_AAD, TENANT, "1758506401000")
    assert fb.question == "filing facial-recognition from 2025-09-20"


async def test_command_button_reruns_through_the_core(teams: TeamsHarness):
    (sent,) = await teams.say("submit_command.json")
    assert sent.card["body"][0]["text"].startswith("Facial recognition technology application filing (人脸识别")
    assert_valid_card(sent.card)


async def test_menu_picker_submits_the_chosen_command(teams: TeamsHarness):
    (menu,) = await teams.say("personal_message.json", text="china-platform", id="menu")
    picker = next(b for b in menu.card["body"] if b["type"] == "Input.ChoiceSet")
    choice = next(c["value"] for c in picker["choices"] if "xiaohongshu" in c["value"])
    assert {"action": "command"} in submit_data(menu.card)
    # Teams merges the inputs into the submitted data.
    (sent,) = await teams.say("submit_command.json", value={"action": "command", "command": choice}, id="pick")
    assert "RED" in sent.card["body"][0]["text"] or "Xiaohongshu" in sent.card["body"][0]["text"]


async def test_action_execute_invoke_records_feedback(teams: TeamsHarness):
    status, body = await teams.post(fixture("invoke_adaptive_card_action.json", serviceUrl=teams.connector.url))
    assert status == 200
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.activity.message"
    (fb,) = await teams.store.list_feedback("teams")
    assert fb.vote == "down" and fb.topic == "facial-recognition"
    # Teams retrying the same invoke: acknowledged, not stored twice.
    status, _ = await teams.post(fixture("invoke_adaptive_card_action.json", serviceUrl=teams.connector.url))
    assert status == 200
    assert len(await teams.store.list_feedback("teams")) == 1


async def test_redelivered_activity_is_answered_once(teams: TeamsHarness):
    first = await teams.say("personal_message.json")
    again = await teams.say("personal_message.json")
    assert len(first) == 1 and again == []


# ------------------------------------------------------------------------------ bad requests


async def test_not_json_is_415_and_garbage_is_400(teams: TeamsHarness):
    status, _ = await teams.post({}, headers={"Content-Type": "text/plain"}, raw=b"hello")
    assert status == 415
    status, _ = await teams.post({}, raw=b"{not json")
    assert status == 400
    status, _ = await teams.post({"text": "no type"})
    assert status == 400
    assert teams.connector.sent == []


def test_channel_key_drops_the_thread_suffix():
    assert channel_key(f"{CHANNEL_ID};messageid=1758506700456") == CHANNEL_ID
    assert channel_key("a:personal") == "a:personal"


# ------------------------------------------------------------------------------------- follow-ups


async def test_a_follow_up_in_the_personal_chat_uses_the_last_answer(teams: TeamsHarness):
    (first,) = await teams.say("personal_message.json", text="what is the standard contract route", id="f-1")
    assert first.card["body"][0]["text"].startswith("Personal information export standard contract")
    (sent,) = await teams.say("personal_message.json", text="who do we file it with?", id="f-2")
    assert_valid_card(sent.card)
    assert "provincial" in "\n".join(texts(sent.card))


async def test_a_follow_up_in_a_channel_reply_chain_uses_that_chain_only(teams: TeamsHarness):
    chain = {"id": f"{CHANNEL_ID};messageid=1758506799000", "conversationType": "channel", "isGroup": True,
             "tenantId": TENANT}
    other = {**chain, "id": f"{CHANNEL_ID};messageid=1758506799999"}
    await teams.say("channel_mention.json", text="<at>China Desk</at> tell me about xiaohongshu", id="c-1",
                    conversation=chain)
    (sent,) = await teams.say("channel_mention.json", text="<at>China Desk</at> how many users does it have?",
                              id="c-2", conversation=chain)
    assert "300 million" in "\n".join(texts(sent.card))
    (elsewhere,) = await teams.say("channel_mention.json", text="<at>China Desk</at> how many users does it have?",
                                   id="c-3", conversation=other)
    assert "300 million" not in "\n".join(texts(elsewhere.card))


async def test_a_colleague_tagged_in_teams_changes_nothing(teams: TeamsHarness):
    (plain,) = await teams.say("personal_message.json", text="what is xiaohongshu?", id="t-1")
    (tagged,) = await teams.say("personal_message.json", text="<at>Alice Smith</at> what is xiaohongshu?", id="t-2")
    assert texts(tagged.card)[:3] == texts(plain.card)[:3]
