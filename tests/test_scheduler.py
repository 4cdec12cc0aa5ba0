"""The scheduler against a real local Slack-compatible server, on SQLite and on PostgreSQL.

Exactly once: each reminder reaches the channel once, in order, whatever the number of concurrent
passes or processes; a crash between claim and post is re-offered after the lease, never repeated
once posted. Delivery: 429 + Retry-After delays and retries; a removed channel pauses and is listed.

Here: each reminder once, concurrent passes and replicas, purging, subscriptions. The delivery tests are in
``test_scheduler_delivery.py`` and those on real ``chinadesk`` processes in ``test_scheduler_processes.py``;
both use the fixtures and helpers defined here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.scheduler import Scheduler
from bot.slack.delivery import SlackDeliverer
from bot.store import Store, open_store
from content.calendar import ChinaCalendar
from content.loader import Library
from handlers import Desk, Request
from tests.slack_server import FakeSlack, _Rule

SET_AT = dt.datetime(2025, 9, 22, 2, 0, tzinfo=dt.UTC)
# facial-recognition from 2025-09-20 is due Thu 6 Nov 2025; reminders at 09:00 Shanghai (01:00 UTC) on:
R10, R5, R1, R0 = (dt.datetime(2025, m, d, 1, tzinfo=dt.UTC) for m, d in ((10, 23), (10, 30), (11, 5), (11, 6)))
SECOND = dt.timedelta(seconds=1)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = open_store(db_url)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as api:
        yield api


@pytest.fixture
def sdesk(library: Library, store: Store) -> Desk:
    return Desk(library=library, store=store, calendar=ChinaCalendar(overrides_path=None))


def make_scheduler(store: Store, desk: Desk, slack: FakeSlack, **kw) -> Scheduler:
    deliverer = SlackDeliverer(store, default_token=slack.bot_token, api_url=slack.api_url)
    return Scheduler(store, desk, {"slack": deliverer}, **kw)


async def remind(desk: Desk, channel: str = "C1", start: str = "2025-09-20", note: str = "board pack",
                 now: dt.datetime = SET_AT):
    reply = await desk.handle(Request(text=f"/china-filing remind facial-recognition from {start} {note}",
                                      platform="slack", channel=channel, workspace="T0001", now=now))
    assert reply.kind == "reminder", reply.text
    return reply


def posted_keys(slack: FakeSlack) -> list[str]:
    out = []
    for call in slack.calls_to("chat.postMessage"):
        meta = call.params.get("metadata")
        meta = __import__("json").loads(meta) if isinstance(meta, str) else meta
        out.append(meta["event_payload"]["key"])
    return out


def accepted_keys(slack: FakeSlack, channel: str | None = None) -> list[str]:
    """The reminders that reached a channel (the stand-in's history), however many calls it took."""
    return [m["metadata"]["event_payload"]["key"] for c, messages in slack.history.items() if channel in (None, c)
            for m in messages if m.get("metadata")]


async def passes(sched: Scheduler, start: dt.datetime, end: dt.datetime, every: dt.timedelta,
                 clock: list[dt.datetime] | None = None) -> list:
    """Scheduler passes from ``start`` to ``end`` on simulated time (``clock[0]`` follows it)."""
    reports, now = [], start
    while now <= end:
        if clock is not None:
            clock[0] = now
        reports.append(await sched.run_due(now))
        now += every
    return reports


# --------------------------------------------------------------------------- each reminder once


async def test_reminders_posted_once_in_order_in_the_right_channel(store, sdesk, slack):
    await remind(sdesk, "C1")
    await remind(sdesk, "C2", start="2025-09-22", note="other team")  # a different channel, later dates
    sched = make_scheduler(store, sdesk, slack)
    # Advance the clock across every reminder time (and a few instants in between), passes repeated.
    instants = [SET_AT, R10 - SECOND, R10, R10 + SECOND, R10 + dt.timedelta(minutes=5), R5, R5, R1, R0,
                R0 + dt.timedelta(hours=3), dt.datetime(2025, 12, 1, tzinfo=dt.UTC)]
    instants += [p.due_at for p in await store.list_posts("slack", "C2")]
    for now in sorted(instants):
        await sched.run_due(now)
    c1 = [c for c in slack.calls_to("chat.postMessage") if c.params["channel"] == "C1"]
    assert len(c1) == 4  # each once
    texts = [c.dumps() for c in c1]
    for text, left in zip(texts, ("10", "5", "1", "0 (due today)"), strict=True):
        assert "Facial recognition technology application filing" in text  # what is due
        assert "Thu 6 Nov 2025" in text  # when
        assert f"Working days left*\\n{left}" in text or f"Working days left: {left}" in text  # how many left
        assert "Next step" in text  # the next step
        assert "cac.gov.cn" in text  # the source (the CAC announcement, on the CAC's own site)
        assert "board pack" in text and "Late" not in text
    assert "Prepare the filing documents" in texts[0] and "File by Thu 6 Nov 2025" in texts[2]
    # In order, and the posted refs are Slack's ts.
    posts = await store.list_posts("slack", "C1")
    assert [p.payload["offset"] for p in posts] == [10, 5, 1, 0]
    refs = [p.posted_ref for p in posts]
    assert all(refs) and len(set(refs)) == 4  # Slack's ts of each message
    assert all(p.status == "posted" and not p.late for p in posts)
    assert [k.split(":", 1)[1] for k in posted_keys(slack)[:1]] == ["rem10"]
    assert sched.posted == len(slack.calls_to("chat.postMessage")) and sched.late == 0
    c2 = [c for c in slack.calls_to("chat.postMessage") if c.params["channel"] == "C2"]
    assert len(c2) == 4 and all("other team" in c.dumps() for c in c2)


async def test_catch_up_posts_one_late_reminder_per_deadline_then_expires(store, sdesk, slack):
    await remind(sdesk, "C1")
    await remind(sdesk, "C1", note="second deadline, same dates")
    await remind(sdesk, "C2")
    sched = make_scheduler(store, sdesk, slack)
    # Down from before the first reminder until the day before the due day, 10:30: the 10-, 5- and
    # 1-day reminders were all missed. Each deadline gets the most recent one, marked late.
    report = await sched.run_due(R1 + dt.timedelta(hours=1, minutes=30))
    assert (report.posted, report.late, report.skipped) == (3, 3, 6)
    calls = slack.calls_to("chat.postMessage")
    assert sorted(c.params["channel"] for c in calls) == ["C1", "C1", "C2"]  # one per deadline
    for call in calls:
        text = call.dumps()
        assert "Late reminder" in text and "due Wed 5 Nov 2025 09:00" in text  # when it should have come
        assert "Working days left*\\n1" in text or "Working days left: 1" in text
    posts = await store.list_posts("slack", "C2")
    assert [p.status for p in posts] == ["skipped", "skipped", "posted", "pending"]
    # Down again until after the deadline: the due-day reminder is pointless now, so it is never posted.
    report = await sched.run_due(R0 + dt.timedelta(days=1))
    assert report.posted == 0 and report.expired == 3
    assert len(slack.calls_to("chat.postMessage")) == 3
    statuses = [p.status for p in await store.list_posts("slack", "C2")]
    assert statuses == ["skipped", "skipped", "posted", "expired"]


async def test_a_reminder_still_retrying_when_the_next_falls_due_gives_way_to_it(store, sdesk, slack):
    await remind(sdesk)
    slack.rate_limit("chat.postMessage", times=None, retry_after=3600)
    sched = make_scheduler(store, sdesk, slack)
    await sched.run_due(R10)  # the 10-day reminder is refused and waits an hour...
    slack.recover()
    report = await sched.run_due(R5)  # ...but by then the 5-day one is due: only that one is posted
    assert (report.posted, report.skipped) == (1, 1)
    assert [p.status for p in (await store.list_posts("slack", "C1"))[:2]] == ["skipped", "posted"]


async def test_late_only_past_the_grace(store, sdesk, slack):
    await remind(sdesk)
    sched = make_scheduler(store, sdesk, slack, late_after=dt.timedelta(minutes=15))
    await sched.run_due(R10 + dt.timedelta(minutes=10))
    await sched.run_due(R5 + dt.timedelta(minutes=20))
    assert [p.late for p in (await store.list_posts("slack", "C1"))[:2]] == [False, True]


# ------------------------------------------------------------------------------- concurrency


async def test_two_schedulers_one_database_post_each_exactly_once(db_url, store, sdesk, slack, library):
    for i in range(15):
        await remind(sdesk, f"C{i}", note=f"n{i}")
    second = open_store(db_url)
    await second.open()
    try:
        other_desk = Desk(library=library, store=second, calendar=sdesk.calendar)
        a = make_scheduler(store, sdesk, slack, batch_size=7)
        b = make_scheduler(second, other_desk, slack, batch_size=5)
        for now in (R10, R5, R1, R0 + dt.timedelta(hours=2)):
            ra, rb = await asyncio.gather(a.run_due(now), b.run_due(now))
            assert ra.posted + rb.posted > 0
    finally:
        await second.close()
    keys = posted_keys(slack)
    assert len(keys) == 15 * 4 and Counter(keys).most_common(1)[0][1] == 1
    assert a.posted + b.posted == 60
    # Each channel still saw its own reminders once each.
    per_channel = Counter(c.params["channel"] for c in slack.calls_to("chat.postMessage"))
    assert set(per_channel.values()) == {4}


async def test_a_slow_delivery_keeps_its_lease_so_another_replica_never_repeats_it(db_url, store, sdesk, slack,
                                                                                  library):
    """A post that takes longer than the lease to reach Slack is not re-claimed and posted again meanwhile."""
    await remind(sdesk)
    slack.delay("chat.postMessage", 2.5)  # the first post reaches Slack 2.5 s late (a slow network)
    second = open_store(db_url)
    await second.open()
    try:
        a = make_scheduler(store, sdesk, slack, lease_seconds=1)
        b = make_scheduler(second, Desk(library=library, store=second, calendar=sdesk.calendar), slack,
                           lease_seconds=1)
        started = time.monotonic()

        def instant() -> dt.datetime:  # one clock for both replicas: simulated, running at real speed
            return R10 + dt.timedelta(seconds=time.monotonic() - started)

        first = asyncio.create_task(a.run_due(R10))
        await slack.wait_for("chat.postMessage", 1)  # A has claimed it and is posting
        while not first.done():  # the other replica polls all along, as every replica's scheduler does
            await b.run_due(instant())
            await asyncio.sleep(0.2)
        assert (await first).posted == 1
        await b.run_due(instant() + dt.timedelta(seconds=5))
    finally:
        await second.close()
    [post] = [p for p in await store.list_posts("slack", "C1") if p.due_at == R10]
    assert accepted_keys(slack) == [post.key]  # posted once
    assert post.status == "posted" and post.attempts == 1


async def test_crash_between_claim_and_post_is_reoffered_after_the_lease(store, sdesk, slack):
    await remind(sdesk)
    # A process claims the first reminder and dies before posting it.
    [claimed] = await store.claim_due(R10, lease_seconds=60)
    sched = make_scheduler(store, sdesk, slack)
    assert (await sched.run_due(R10 + dt.timedelta(seconds=30))).posted == 0  # still leased: not taken
    assert slack.calls_to("chat.postMessage") == []
    report = await sched.run_due(R10 + dt.timedelta(seconds=61))  # lease over: re-offered
    assert report.posted == 1 and len(slack.calls_to("chat.postMessage")) == 1
    # The dead process's claim cannot mark it again, and later passes never repeat it.
    assert not await store.mark_posted(claimed.id, claimed.claim_token, ref="x", late=False)
    for now in (R10 + dt.timedelta(minutes=10), R10 + dt.timedelta(hours=5)):
        await sched.run_due(now)
    assert len(slack.calls_to("chat.postMessage")) == 1
    post = await store.get_post(claimed.id)
    assert post.status == "posted" and post.attempts == 2


async def test_crash_after_slack_accepted_is_not_repeated(store, sdesk, slack):
    """Slack took the message but the process died before recording it: the re-offer finds it, posts nothing."""
    await remind(sdesk)
    [claimed] = await store.claim_due(R10, lease_seconds=60)
    earlier = {"ts": "1700000000.999999", "metadata": {"event_type": "chinadesk_reminder",
                                                        "event_payload": {"key": claimed.key}}}
    slack._rules.append(_Rule("conversations.history", None,
                              lambda call: web.json_response({"ok": True, "messages": [earlier]})))
    sched = make_scheduler(store, sdesk, slack)
    report = await sched.run_due(R10 + dt.timedelta(seconds=61))
    assert report.posted == 1
    assert slack.calls_to("chat.postMessage") == []
    assert (await store.get_post(claimed.id)).posted_ref == "1700000000.999999"


async def slack_accepts(slack: FakeSlack, post, channel: str = "C1") -> str:
    """What a process that died after Slack took its post leaves behind: the message, with its key."""
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    resp = await client.chat_postMessage(channel=channel, text="Reminder", metadata={
        "event_type": "chinadesk_reminder", "event_payload": {"key": post.key}})
    return resp["ts"]


async def test_a_re_offer_finds_its_earlier_post_among_250_newer_messages(store, sdesk, slack):
    """The history check reads the claim's time window, not the newest page of a busy channel."""
    await remind(sdesk)
    clock = [R10]
    slack.clock = lambda: clock[0].timestamp()
    slack.limit_history()  # 1 call a minute, 15 messages a page (non-Marketplace apps since 2025-05-29)
    [claimed] = await store.claim_due(R10, lease_seconds=300)
    clock[0] = R10 + dt.timedelta(seconds=2)
    ts = await slack_accepts(slack, claimed)  # ...and the process died before recording it
    for i in range(250):  # the channel goes on talking
        clock[0] = R10 + dt.timedelta(minutes=20, seconds=i)
        slack.add_message("C1", f"message {i}")
    clock[0] = R10 + dt.timedelta(hours=1)
    sched = make_scheduler(store, sdesk, slack)
    report = await sched.run_due(clock[0])
    assert report.posted == 1
    assert len(slack.calls_to("chat.postMessage")) == 1 and accepted_keys(slack) == [claimed.key]
    assert (await store.get_post(claimed.id)).posted_ref == ts
    [check] = slack.calls_to("conversations.history")
    assert float(check.params["oldest"]) <= float(ts) <= float(check.params["latest"])
    assert float(check.params["latest"]) < (R10 + dt.timedelta(minutes=20)).timestamp()


async def test_a_rate_limited_history_check_waits_for_its_turn_and_posts_once(store, sdesk, slack):
    await remind(sdesk, "C1")
    await remind(sdesk, "C2")
    clock = [R10]
    slack.clock = lambda: clock[0].timestamp()
    slack.limit_history()
    claimed = {p.channel: p for p in await store.claim_due(R10, lease_seconds=60)}
    await slack_accepts(slack, claimed["C1"], "C1")  # C1's post got through before the crash; C2's did not
    sched = make_scheduler(store, sdesk, slack)
    clock[0] = R10 + dt.timedelta(seconds=61)
    first = await asyncio.wait_for(sched.run_due(clock[0]), 20)  # no minute-long wait inside the pass
    # One channel's check ran (C1: found and recorded; or C2: not there, posted); the other waits a minute.
    assert (first.posted, first.retried) == (1, 1)
    assert len(accepted_keys(slack)) in (1, 2) and len(set(accepted_keys(slack))) == len(accepted_keys(slack))
    for minutes in (1, 2, 3):
        clock[0] = R10 + dt.timedelta(seconds=61, minutes=minutes)
        await asyncio.wait_for(sched.run_due(clock[0]), 20)
    assert sorted(accepted_keys(slack)) == sorted(p.key for p in claimed.values())  # each once
    assert {(await store.get_post(p.id)).status for p in claimed.values()} == {"posted"}


async def test_a_try_that_certainly_failed_costs_no_history_check(store, sdesk, slack):
    await remind(sdesk)
    slack.rate_limit("chat.postMessage", retry_after=30)  # Slack refused it: nothing was posted
    sched = make_scheduler(store, sdesk, slack)
    assert (await sched.run_due(R10)).retried == 1
    assert (await sched.run_due(R10 + dt.timedelta(seconds=31))).posted == 1
    assert slack.calls_to("conversations.history") == []  # the scarce history budget is kept for doubt
    assert len(accepted_keys(slack)) == 1


async def test_a_try_that_may_have_posted_is_looked_for_before_the_next(store, sdesk, slack):
    await remind(sdesk)
    clock = [R10]
    slack.clock = lambda: clock[0].timestamp()
    slack.fail_http("chat.postMessage", 500, accept=True)  # Slack posted it, then answered 500
    sched = make_scheduler(store, sdesk, slack)
    assert (await sched.run_due(R10)).retried == 1
    clock[0] = R10 + dt.timedelta(minutes=5)
    assert (await sched.run_due(clock[0])).posted == 1
    assert len(accepted_keys(slack)) == 1 and len(slack.calls_to("chat.postMessage")) == 1


async def test_when_history_cannot_be_read_the_reminder_is_posted_rather_than_lost(store, sdesk, slack):
    """Which way the check errs: unable to look (no history scope...), it posts; a repeat beats a loss."""
    await remind(sdesk)
    await store.claim_due(R10, lease_seconds=60)  # a process died holding it: did it post? can't tell
    slack.fail("conversations.history", "missing_scope", times=None)
    sched = make_scheduler(store, sdesk, slack)
    assert (await sched.run_due(R10 + dt.timedelta(seconds=61))).posted == 1
    assert len(slack.calls_to("conversations.history")) == 1 and len(accepted_keys(slack)) == 1


async def test_stop_finishes_the_pass_in_flight(store, sdesk, slack):
    await remind(sdesk)
    clock = [R10 - SECOND]
    sched = make_scheduler(store, sdesk, slack, interval=0.05, jitter=0.0, clock=lambda: clock[0])
    await sched.start()
    assert sched.running
    await asyncio.sleep(0.15)
    assert slack.calls_to("chat.postMessage") == []
    clock[0] = R10 + SECOND
    await slack.wait_for("chat.postMessage", 1)
    await sched.stop()
    assert not sched.running
    assert sched.passes >= 2 and sched.posted == 1
    assert (await store.list_posts("slack", "C1"))[0].status == "posted"


# ------------------------------------------------------------------------------------ purging


async def rows(store: Store, table: str) -> int:
    async with store._tx() as c:
        return int((await c.fetchrow(f"SELECT COUNT(*) AS n FROM {table}"))["n"])


async def test_the_running_scheduler_purges_what_has_outlived_its_ttl(store, sdesk, slack):
    """processed_events gets a row for every Slack event (ordinary channel messages too): the scheduler
    loop forgets them once expired, and every other table with a TTL likewise."""
    clock = [R10]
    for i in range(40):  # a day of channel traffic, each event claimed for a day
        await store.claim_once(f"slack:event:Ev{i:04d}", 86400, now=R10)
    await store.claim_once("slack:feedback:C1:1.2:U1", 365 * 86400, now=R10)  # kept for a year
    await store.issue_oauth_state("state-1", R10 + dt.timedelta(minutes=10))
    await remind(sdesk)  # due Thu 6 Nov 2025: its posts are done by 7 Nov
    sched = make_scheduler(store, sdesk, slack, interval=0.02, jitter=0.0, clock=lambda: clock[0])
    await sched.start()
    try:
        async def settle(check) -> None:
            for _ in range(250):
                if await check():
                    return
                await asyncio.sleep(0.02)
            raise AssertionError("the scheduler loop did not get there")

        await settle(lambda: _posted_one(store))
        assert await rows(store, "processed_events") == 41 and await rows(store, "oauth_states") == 1
        clock[0] = R10 + dt.timedelta(days=2)  # the events' day is over

        async def expired_gone() -> bool:  # one purge pass deletes table by table: wait for the whole pass
            return await rows(store, "processed_events") == 1 and await rows(store, "oauth_states") == 0

        await settle(expired_gone)
        assert await rows(store, "scheduled_posts") == 4 and await rows(store, "tracked_deadlines") == 1
        clock[0] = R0 + dt.timedelta(days=120)  # long after the deadline: its record is forgotten too

        async def deadline_gone() -> bool:
            return await rows(store, "tracked_deadlines") == 0

        await settle(deadline_gone)
        assert await rows(store, "scheduled_posts") == 0
        assert await rows(store, "processed_events") == 1  # the feedback vote's year is not over
    finally:
        await sched.stop()
    assert sched.purged >= 40 + 1 + 1 + 4


async def _posted_one(store: Store) -> bool:
    return any(p.status == "posted" for p in await store.list_posts("slack", "C1"))


# ------------------------------------------------------------------------------ subscriptions


async def test_subscription_posts_each_event_once(store, sdesk, slack):
    now = dt.datetime(2026, 1, 1, 2, tzinfo=dt.UTC)
    for topic in ("618", "all"):
        await sdesk.handle(Request(text=f"/china-filing subscribe {topic}", platform="slack", channel="C1",
                                   workspace="T0001", now=now))
    sched = make_scheduler(store, sdesk, slack)
    at = dt.datetime(2026, 4, 19, 1, tzinfo=dt.UTC)  # 60 days before 618
    for t in (at - SECOND, at, at + SECOND, at + dt.timedelta(hours=1)):
        await sched.run_due(t)
    six18 = [c for c in slack.calls_to("chat.postMessage") if "618 shopping festival" in c.dumps()]
    assert len(six18) == 1
    assert "Thu 18 Jun 2026" in six18[0].dumps() and "in 60 days" in six18[0].dumps()
    assert "caixin" in six18[0].dumps()  # the source


async def test_subscriptions_are_topped_up_as_time_passes(store, sdesk, slack):
    now = dt.datetime(2026, 1, 1, 2, tzinfo=dt.UTC)
    await sdesk.handle(Request(text="/china-filing subscribe 618", platform="slack", channel="C1",
                               workspace="T0001", now=now))
    sched = make_scheduler(store, sdesk, slack)
    later = now + dt.timedelta(days=380)  # inside the refresh window: the next year's 618 gets planned
    report = await sched.run_due(later)
    assert report.materialised >= 3
    dates = {p.payload["date"] for p in await store.list_posts("slack", "C1")}
    assert "2027-06-18" in dates
    again = await sched.run_due(later + SECOND)
    assert again.materialised == 0
