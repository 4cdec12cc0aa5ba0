"""Teams proactive posts through stored conversation references (the harness of ``test_teams.py``): new
top-level posts, references stored by botbuilder, removed conversations forgotten, and the scheduler's
Teams deliverer retrying, pausing or failing on the Bot Connector's errors."""

from __future__ import annotations

import json

import pytest

from bot.teams.common import DeliveryError
from handlers import Desk
from handlers.request import Reply
from tests.connector_server import APP_ID, CHANNEL_ID, TENANT, USER_AAD, TeamsHarness, assert_valid_card

# ------------------------------------------------------------------------------ proactive posts


async def test_proactive_post_through_a_stored_reference(teams: TeamsHarness):
    await teams.say("channel_mention.json")
    teams.connector.clear()
    reply = Reply(kind="reminder", title="Reminder: facial recognition filing due Thu 6 Nov 2025", text="Due soon.")
    ref = await teams.endpoint.deliverer.deliver_reply(CHANNEL_ID, reply)
    (sent,) = teams.connector.sent
    # A new top-level post in the channel, not a reply into the thread it was set up from.
    assert sent.path == f"/v3/conversations/{CHANNEL_ID}/activities" and sent.reply_to_id is None
    assert sent.card["body"][0]["text"] == "Reminder: facial recognition filing due Thu 6 Nov 2025"
    assert ref.startswith("sent-")
    assert_valid_card(sent.card)


async def test_a_reference_stored_by_botbuilder_still_carries_reminders(teams: TeamsHarness):
    """Rows written before the move to the Agents SDK (botbuilder 4.17's ``ConversationReference.serialize()``:
    ``bot``, ``user``, no ``activityId``) post through whichever engine runs now."""
    stored = {"user": {"id": "29:1kXbz3mJ2pQ8vN5wR7tY0uI4oA6sD9fG", "name": "Alex Chen", "aadObjectId": USER_AAD},
              "bot": {"id": f"28:{APP_ID}", "name": "China Desk"},
              "conversation": {"isGroup": True, "conversationType": "channel", "id": CHANNEL_ID},
              "channelId": "msteams", "locale": "en-GB", "serviceUrl": teams.connector.url}
    await teams.store.save_conversation("teams", CHANNEL_ID, TENANT, stored)
    ref = await teams.endpoint.deliverer.deliver_reply(CHANNEL_ID, Reply(kind="reminder", title="Due soon", text="x"))
    (sent,) = teams.connector.sent
    assert sent.path == f"/v3/conversations/{CHANNEL_ID}/activities" and ref.startswith("sent-")
    assert sent.body["from"]["id"] == f"28:{APP_ID}" and sent.card["body"][0]["text"] == "Due soon"
    # A message in the channel refreshes the row (the Agents SDK's JSON has the same shape).
    await teams.say("channel_mention.json")
    refreshed = await teams.store.get_conversation("teams", CHANNEL_ID)
    assert refreshed["bot"]["id"] == f"28:{APP_ID}" and refreshed["conversation"]["id"] == CHANNEL_ID
    assert "activityId" not in refreshed and "requestId" not in refreshed


async def test_proactive_post_without_reference_is_a_permanent_failure(teams: TeamsHarness):
    with pytest.raises(DeliveryError) as info:
        await teams.endpoint.deliverer.deliver_reply(
            "19:nobody@thread.tacv2", Reply(kind="reminder", title="x", text="y")
        )
    assert info.value.permanent


async def test_proactive_post_after_the_bot_was_removed_forgets_the_conversation(teams: TeamsHarness):
    await teams.say("channel_mention.json")
    teams.connector.refuse(CHANNEL_ID, 403)
    with pytest.raises(DeliveryError) as info:
        await teams.endpoint.deliverer.deliver_reply(CHANNEL_ID, Reply(kind="reminder", title="x", text="x"))
    assert info.value.permanent
    assert await teams.store.get_conversation("teams", CHANNEL_ID) is None


async def test_scheduler_delivers_teams_reminders_through_the_registered_deliverer(teams: TeamsHarness):
    import datetime as dt

    from bot.platforms import build_deliverers
    from bot.scheduler import Outgoing
    from bot.store import ScheduledPost

    await teams.say("channel_mention.json")
    teams.connector.clear()
    deliverer = build_deliverers(teams.store, {})["teams"]  # what `chinadesk serve` / `worker` build
    now = dt.datetime(2025, 11, 3, 1, 0, tzinfo=dt.UTC)

    def post(channel: str) -> Outgoing:
        row = ScheduledPost(
            id=7, key=f"deadline:1:{channel}", platform="teams", workspace=TENANT, channel=channel, kind="deadline",
            deadline_id=1, subscription_id=None, due_at=now, expires_at=now + dt.timedelta(days=3), payload={},
            status="claimed", lease_until=now, claim_token="t", attempts=1, late=False, posted_ref=None,
            posted_at=None, last_error=None, created_at=now,
        )
        reply = Reply(kind="reminder", title="Facial recognition filing due in 3 working days", text="Due Thu 6 Nov.")
        return Outgoing(post=row, reply=reply, late=False)

    result = await deliverer.deliver(post(CHANNEL_ID))
    assert result.outcome == "posted" and result.ref.startswith("sent-")
    (sent,) = teams.connector.sent
    assert sent.conversation_id == CHANNEL_ID
    assert sent.card["body"][0]["text"] == "Facial recognition filing due in 3 working days"

    gone = await deliverer.deliver(post("19:removed@thread.tacv2"))
    assert gone.outcome == "paused" and "no stored Teams conversation" in gone.error

    teams.connector.refuse(CHANNEL_ID, 502)  # Teams having a bad moment: try again later
    assert (await deliverer.deliver(post(CHANNEL_ID))).outcome == "retry"
    teams.connector.refuse(CHANNEL_ID, 404)  # the conversation is gone: pause, and forget it
    assert (await deliverer.deliver(post(CHANNEL_ID))).outcome == "paused"
    assert await teams.store.get_conversation("teams", CHANNEL_ID) is None


@pytest.mark.parametrize(("status", "outcome"), [
    (401, "paused"),  # our credentials were refused: stop and show it, but keep the conversation
    (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"),
    (400, "failed"),  # Teams refused the message itself: sending it again cannot help
])
async def test_teams_delivery_errors_retry_pause_or_fail(teams: TeamsHarness, status: int, outcome: str):
    import datetime as dt

    from bot.scheduler import Outgoing
    from bot.store import ScheduledPost

    await teams.say("channel_mention.json")
    teams.connector.refuse(CHANNEL_ID, status, retry_after=7 if status == 429 else None)
    now = dt.datetime(2025, 11, 3, 1, 0, tzinfo=dt.UTC)
    row = ScheduledPost(
        id=7, key="d1:rem1", platform="teams", workspace=TENANT, channel=CHANNEL_ID, kind="deadline", deadline_id=1,
        subscription_id=None, due_at=now, expires_at=now + dt.timedelta(days=3), payload={}, status="claimed",
        lease_until=now, claim_token="t", attempts=1, late=False, posted_ref=None, posted_at=None, last_error=None,
        created_at=now,
    )
    result = await teams.endpoint.deliverer.deliver(
        Outgoing(row, Reply(kind="reminder", title="Reminder", text="Due soon."), late=False))
    assert result.outcome == outcome, result
    if status == 429:
        assert result.retry_after == 7
    assert await teams.store.get_conversation("teams", CHANNEL_ID) is not None  # only 403/404 forget it


@pytest.mark.parametrize(("status", "retry_after", "minutes"), [(429, 30, 15), (503, None, 90)])
async def test_teams_busy_or_down_then_back_posts_each_reminder_once(teams: TeamsHarness, library,
                                                                     status: int, retry_after: int | None,
                                                                     minutes: int):
    import datetime as dt

    from bot.scheduler import Scheduler
    from content.calendar import ChinaCalendar
    from handlers import Request
    from tests.test_scheduler import R10, SET_AT, passes

    await teams.say("channel_mention.json")  # the conversation reference reminders are posted through
    teams.connector.clear()
    desk = Desk(library=library, store=teams.store, calendar=ChinaCalendar(overrides_path=None))
    reply = await desk.handle(Request(text="/china-filing remind facial-recognition from 2025-09-20", now=SET_AT,
                                      platform="teams", channel=CHANNEL_ID, workspace=TENANT))
    assert reply.kind == "reminder", reply.text
    sched = Scheduler(teams.store, desk, {"teams": teams.endpoint.deliverer})
    teams.connector.refuse(CHANNEL_ID, status, retry_after=retry_after)
    reports = await passes(sched, R10, R10 + dt.timedelta(minutes=minutes), dt.timedelta(seconds=30))
    assert teams.connector.sent == [] and sum(r.failed for r in reports) == 0
    assert sum(r.retried for r in reports) >= 8
    teams.connector.allow(CHANNEL_ID)
    end = R10 + dt.timedelta(minutes=minutes + 30)
    await passes(sched, R10 + dt.timedelta(minutes=minutes, seconds=30), end, dt.timedelta(seconds=30))
    (sent,) = teams.connector.sent  # the 10-day reminder, once
    assert "Facial recognition" in json.dumps(sent.card)
    [posted] = [p for p in await teams.store.list_posts("teams", CHANNEL_ID) if p.due_at == R10]
    assert posted.status == "posted" and posted.posted_ref == "sent-" + posted.posted_ref.split("-")[1]
