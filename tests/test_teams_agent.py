"""The Teams ``AgentApplication`` driven in-process by Microsoft's own test harness
(``microsoft-agents-testing``: ``TestAdapter`` + ``TestFlow``): no HTTP, no token, no connector; the
replies are the activities the agent sends. The HTTP contract (the real endpoint, both engines, the
local Bot Connector stand-in) is in tests/test_teams.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from microsoft_agents.activity import (
    Activity,
    ChannelAccount,
    ConversationAccount,
    ConversationReference,
)
from microsoft_agents.testing import TestAdapter, TestFlow

from bot.config import TeamsSettings
from bot.store import Store
from bot.teams.agents import AgentsDeliverer, build_agent
from bot.teams.common import WELCOME_TITLE, TeamsDesk
from handlers import Desk
from handlers.request import Reply

BOT = ChannelAccount(id="28:3f1a7c2e-5b8d-4e6f-9a0b-1c2d3e4f5a6b", name="China Desk")
USER = ChannelAccount(id="29:1kXbz3mJ2pQ8vN5wR7tY0uI4oA6sD9fG", name="Alex Chen",
                      aad_object_id="6f1c8e2d-4b3a-4c5d-9e8f-0a1b2c3d4e5f")
TENANT = "9c4e2b7a-1d3f-4a5b-8c6d-7e8f9a0b1c2d"
CHANNEL = "19:8d4f2a6c1e3b5d7f9a0c2e4b6d8f1a3c@thread.tacv2"


def adapter_for(kind: str) -> TestAdapter:
    """A Teams conversation of ``kind`` (personal, groupChat, channel) for the test adapter."""
    conversation_id = {"personal": "a:1Ux3mW9qB5zK7nP2", "groupChat": "19:group@thread.v2",
                       "channel": f"{CHANNEL};messageid=1758506700456"}[kind]
    return TestAdapter(conversation=ConversationReference(
        channel_id="msteams", service_url="https://smba.trafficmanager.net/emea/", user=USER, agent=BOT,
        conversation=ConversationAccount(id=conversation_id, conversation_type=kind, tenant_id=TENANT,
                                         is_group=kind != "personal"),
    ))


@pytest.fixture
def teams_desk(desk: Desk, store: Store) -> TeamsDesk:
    return TeamsDesk(desk, store)


def card_of(reply: Activity) -> dict[str, Any]:
    (attachment,) = reply.attachments
    assert attachment.content_type == "application/vnd.microsoft.card.adaptive"
    return attachment.content


def title_of(reply: Activity) -> str:
    return card_of(reply)["body"][0]["text"]


def mention(text: str) -> Activity:
    """A channel or group message addressed to the bot, with the mention entity Teams sends."""
    return Activity(type="message", text=text, from_property=USER, entities=[
        {"type": "mention", "text": "<at>China Desk</at>", "mentioned": {"id": BOT.id, "name": BOT.name}}])


async def test_a_command_in_personal_chat_is_answered_with_a_card(teams_desk: TeamsDesk, store: Store):
    adapter = adapter_for("personal")
    agent = build_agent(teams_desk)

    def deadline_card(reply: Activity) -> None:
        assert title_of(reply).startswith("Facial recognition technology application filing")
        assert reply.summary.startswith("Facial recognition technology application filing")
        votes = [a["data"] for a in card_of(reply)["actions"] if a["data"].get("action") == "feedback"]
        assert {v["vote"] for v in votes} == {"up", "down"}

    flow = TestFlow(adapter, agent.on_turn)
    await flow.send("china-filing facial-recognition from 2025-09-20").assert_reply(deadline_card) \
        .assert_no_more_replies().start_test()
    # The conversation is remembered for proactive posts.
    assert (await store.get_conversation("teams", "a:1Ux3mW9qB5zK7nP2"))["serviceUrl"].startswith("https://smba")


@pytest.mark.parametrize("kind", ["channel", "groupChat"])
async def test_an_at_mention_is_removed_before_the_core_sees_the_text(teams_desk: TeamsDesk, store: Store, kind: str):
    adapter = adapter_for(kind)
    flow = TestFlow(adapter, build_agent(teams_desk).on_turn)
    await flow.send(mention("<at>China Desk</at> filing facial-recognition")) \
        .assert_reply(lambda r: title_of(r).startswith("Facial recognition technology application filing")) \
        .send(mention("<at>China Desk</at>")) \
        .assert_reply(lambda r: _equal(title_of(r), "China Desk: what I can do")).start_test()
    if kind == "channel":  # stored for the channel, not the reply chain
        assert (await store.get_conversation("teams", CHANNEL))["conversation"]["id"] == CHANNEL


async def test_card_actions_go_through_the_sdks_action_submit_handlers(teams_desk: TeamsDesk, store: Store):
    adapter = adapter_for("personal")
    flow = TestFlow(adapter, build_agent(teams_desk).on_turn)
    vote = {"action": "feedback", "vote": "down", "topic": "facial-recognition", "kind": "deadline",
            "question": "filing facial-recognition"}
    command = {"action": "command", "text": "/china-platform xiaohongshu"}
    await flow.send(Activity(type="message", value=vote, reply_to_id="m-1", from_property=USER)) \
        .assert_reply(lambda r: _contains(title_of(r), "If you tell us why")) \
        .send(Activity(type="message", value=vote, reply_to_id="m-1", from_property=USER)) \
        .assert_reply(lambda r: _contains(title_of(r), "already rated")) \
        .send(Activity(type="message", value=command, from_property=USER)) \
        .assert_reply(lambda r: _contains(json.dumps(card_of(r)), "Xiaohongshu")).start_test()
    (feedback,) = await store.list_feedback("teams")
    assert (feedback.vote, feedback.topic, feedback.user, feedback.message_ref) == (
        "down", "facial-recognition", USER.aad_object_id, "m-1")


async def test_installing_the_bot_welcomes_and_a_person_joining_does_not(teams_desk: TeamsDesk):
    adapter = adapter_for("channel")
    flow = TestFlow(adapter, build_agent(teams_desk).on_turn)
    await flow.send_conversation_update([ChannelAccount(id="29:someone-else", name="Sam")]) \
        .assert_no_more_replies() \
        .send_conversation_update([BOT]) \
        .assert_reply(lambda r: _equal(title_of(r), WELCOME_TITLE)).start_test()


async def test_a_reference_stored_by_botbuilder_posts_a_reminder_through_continue_conversation(store: Store):
    """A row exactly as botbuilder 4.17's ``ConversationReference.serialize()`` stored it (``bot``, not
    ``agent``; no ``activityId``) loads and carries a proactive post."""
    stored = {"user": {"id": USER.id, "name": "Alex Chen", "aadObjectId": USER.aad_object_id},
              "bot": {"id": BOT.id, "name": "China Desk"},
              "conversation": {"isGroup": True, "conversationType": "channel", "id": CHANNEL},
              "channelId": "msteams", "locale": "en-GB", "serviceUrl": "https://smba.trafficmanager.net/emea/"}
    await store.save_conversation("teams", CHANNEL, TENANT, stored)
    adapter = TestAdapter()
    deliverer = AgentsDeliverer(adapter, store, TeamsSettings())
    await deliverer.deliver_reply(CHANNEL, Reply(kind="reminder", title="Reminder: filing due Thu 6 Nov", text="Soon."))
    (posted,) = adapter.activity_queue
    assert posted.conversation.id == CHANNEL and not posted.reply_to_id
    assert posted.recipient.id == USER.id and posted.from_property.id == BOT.id
    assert title_of(posted) == "Reminder: filing due Thu 6 Nov"


def _equal(value: str, expected: str) -> None:
    assert value == expected


def _contains(value: str, part: str) -> None:
    assert part in value, value[:300]
