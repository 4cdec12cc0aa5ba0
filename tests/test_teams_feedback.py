"""Teams: 👎 asks why with an Adaptive Card; the reason reaches the same store call Slack's modal uses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.store import Store
from handlers import Desk
from tests.connector_server import USER_AAD, ConnectorServer, TeamsHarness, _harness, assert_valid_card, submit_data

ANSWER_ID = "1758506401000"  # the replyToId of submit_feedback.json: the answer the vote is on
DOWN = {"action": "feedback", "vote": "down", "topic": "icp-beian", "kind": "answer", "question": "beian?",
        "fact": "icp-beian#summary"}


@pytest.fixture
async def teams(desk: Desk, store: Store, connector: ConnectorServer) -> AsyncIterator[TeamsHarness]:
    server = await _harness(desk, store, connector, {"DATABASE_URL": "sqlite:///:memory:"})
    yield TeamsHarness(server, connector, store)
    await server.close()


async def test_thumbs_down_asks_why_and_the_reason_is_stored(teams: TeamsHarness):
    (card,) = await teams.say("submit_feedback.json", value=DOWN, id="down-1")
    assert_valid_card(card.card)
    inputs = {b["id"]: b for b in card.card["body"] if b["type"].startswith("Input.")}
    assert {c["value"] for c in inputs["reason"]["choices"]} == {"wrong", "outdated", "unclear", "missing"}
    [send] = submit_data(card.card)
    assert send == {"action": "feedback_reason", "message": ANSWER_ID}
    (vote,) = await teams.store.list_feedback("teams")
    assert (vote.vote, vote.fact, vote.reason) == ("down", "icp-beian#summary", None)

    # Teams merges the card's inputs into the submitted data.
    (thanks,) = await teams.say("submit_feedback.json", value={**send, "reason": "unclear", "comment": "too long"},
                                id="reason-1")
    assert "Thanks" in thanks.card["body"][0]["text"]
    (vote,) = await teams.store.list_feedback("teams")
    assert (vote.reason, vote.reason_text, vote.user) == ("unclear", "too long", USER_AAD)


async def test_a_forged_reason_is_refused_and_changes_nothing(teams: TeamsHarness):
    await teams.say("submit_feedback.json", value=DOWN, id="down-2")
    (notice,) = await teams.say("submit_feedback.json", id="reason-2",
                                value={"action": "feedback_reason", "message": ANSWER_ID, "reason": "<at>x</at>"})
    assert "pick one of the reasons" in notice.card["body"][0]["text"]
    (vote,) = await teams.store.list_feedback("teams")
    assert vote.reason is None


async def test_thumbs_up_just_thanks(teams: TeamsHarness):
    (sent,) = await teams.say("submit_feedback.json", id="up-1")
    assert "Thanks" in sent.card["body"][0]["text"] and not submit_data(sent.card)
