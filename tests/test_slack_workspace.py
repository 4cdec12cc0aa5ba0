"""The Slack app end to end (the harness of ``test_slack.py``), per workspace: the App Home lists the deadlines
of the channels the viewer is in, and an uninstall or token revocation deletes that workspace's data only."""

from __future__ import annotations

import datetime as dt

import pytest
from slack_server import load_fixture

from bot.slack.blockkit import validate_blocks
from bot.store import Store
from tests.conftest import CHANNEL, TEAM, USER, Bot, texts

# ---------------------------------------------------------------------------------- App Home


async def test_app_home_lists_the_workspace_deadlines(bot: Bot):
    bot.api.set_members(CHANNEL, {USER, "UBOT"})
    await bot.store.add_tracked(
        platform="slack", workspace=TEAM, channel=CHANNEL, topic="facial-recognition", start="2025-09-20",
        due=dt.date(2025, 11, 6), note=None, created_by=USER, posts=[],
    )
    await bot.store.add_tracked(
        platform="slack", workspace="T0OTHER", channel="C0OTHER", topic="pipia", start="2025-09-20",
        due=dt.date(2025, 11, 6), note=None, created_by=USER, posts=[],
    )
    await bot.event(load_fixture("app_home_opened"))
    await bot.settle()
    [publish] = bot.api.calls_to("views.publish")
    assert publish.params["user_id"] == USER
    view = publish.view
    assert view["type"] == "home"
    dump = texts(view["blocks"])
    assert "`D1`" in dump and "Facial recognition" in dump and "Thu 6 Nov 2025" in dump and f"<#{CHANNEL}>" in dump
    assert "C0OTHER" not in dump  # another workspace's deadline
    assert "/china-filing help" in dump
    validate_blocks(view["blocks"])


async def _track_in(store: Store, channel: str, topic: str, created_by: str = "UOTHER") -> None:
    await store.add_tracked(platform="slack", workspace=TEAM, channel=channel, topic=topic, start="2026-11-20",
                            due=dt.date(2027, 1, 6), note=None, created_by=created_by, posts=[])


async def test_app_home_shows_only_the_channels_the_viewer_is_in(bot: Bot):
    bot.api.set_members(CHANNEL, {USER, "UOTHER", "UBOT"})
    bot.api.set_members("CPUBLICOTHER", {"UOTHER", "UBOT"})
    bot.api.set_members("GMERGERS", {"UOTHER", "UBOT"}, private=True)  # a private channel the viewer is not in
    await _track_in(bot.store, CHANNEL, "facial-recognition")
    await _track_in(bot.store, "CPUBLICOTHER", "icp-licence")
    await _track_in(bot.store, "GMERGERS", "data-export-security-assessment")
    await bot.store.add_subscription(platform="slack", workspace=TEAM, channel="GMERGERS", topic="618",
                                     created_by="UOTHER")
    [secret] = await bot.store.list_tracked("slack", channel="GMERGERS")
    from bot.store import ScheduledPost

    await bot.store.pause_for_post(ScheduledPost(  # its reminders stopped: listed as paused, for members only
        id=0, key="x", platform="slack", workspace=TEAM, channel="GMERGERS", kind="deadline",
        deadline_id=secret.id, subscription_id=None, due_at=dt.datetime.now(dt.UTC),
        expires_at=dt.datetime.now(dt.UTC), payload={}, status="claimed", lease_until=None, claim_token=None,
        attempts=1, late=False, posted_ref=None, posted_at=None, last_error=None, created_at=dt.datetime.now(dt.UTC),
    ), reason="not_in_channel")
    await bot.event(load_fixture("app_home_opened"))
    await bot.settle()
    [publish] = bot.api.calls_to("views.publish")
    dump = texts(publish.view["blocks"])
    assert f"<#{CHANNEL}>" in dump and "Facial recognition" in dump
    assert "GMERGERS" not in dump and "Data export" not in dump and "`S1`" not in dump  # nothing of it leaks
    assert "Paused" not in dump
    assert "CPUBLICOTHER" not in dump  # only the viewer's channels
    [lookup] = bot.api.calls_to("users.conversations")
    assert lookup.params["user"] == USER


async def test_app_home_that_cannot_check_membership_shows_only_the_viewers_own(bot: Bot):
    bot.api.fail("users.conversations", "missing_scope", times=None)  # installed before channels:read
    await _track_in(bot.store, "GMERGERS", "data-export-security-assessment")
    await _track_in(bot.store, "CMINE", "facial-recognition", created_by=USER)
    await bot.event(load_fixture("app_home_opened"))
    await bot.settle()
    [publish] = bot.api.calls_to("views.publish")
    dump = texts(publish.view["blocks"])
    assert "<#CMINE>" in dump and "GMERGERS" not in dump
    assert "only the ones you set" in dump and "channels:read" in dump  # says why, and what fixes it


async def test_app_home_without_deadlines_says_how_to_track_one(bot: Bot):
    await bot.event(load_fixture("app_home_opened"))
    await bot.settle()
    [publish] = bot.api.calls_to("views.publish")
    assert "No deadlines tracked yet" in texts(publish.view["blocks"])


# --------------------------------------------------------------------------------- uninstall


async def _seed_workspace(store: Store, team: str) -> None:
    from bot.store import Feedback

    await store.save_installation("slack", team, {"installation": {"team_id": team, "user_id": "U1"}})
    await store.add_tracked(platform="slack", workspace=team, channel=f"C{team}", topic="pipia", start="2025-09-20",
                            due=dt.date(2025, 11, 6), note=None, created_by="U1", posts=[])
    await store.record_feedback(Feedback("slack", team, f"C{team}", "U1", "m", "pipia", "up"))


@pytest.mark.parametrize("fixture", ["app_uninstalled", "tokens_revoked"])
async def test_uninstall_deletes_that_workspace_data_only(bot: Bot, fixture: str):
    await _seed_workspace(bot.store, TEAM)
    await _seed_workspace(bot.store, "T0KEEP")
    await bot.event(load_fixture(fixture))
    await bot.settle()
    assert await bot.store.find_installation("slack", TEAM) is None
    assert await bot.store.list_tracked("slack", TEAM) == []
    assert [f.workspace for f in await bot.store.list_feedback("slack")] == ["T0KEEP"]
    assert await bot.store.find_installation("slack", "T0KEEP") is not None


async def test_revoking_only_user_tokens_keeps_the_workspace(bot: Bot):
    await _seed_workspace(bot.store, TEAM)
    payload = load_fixture("tokens_revoked")
    payload["event"]["tokens"] = {"oauth": ["U1"], "bot": []}
    await bot.event(payload)
    await bot.settle()
    assert await bot.store.find_installation("slack", TEAM) is not None
