"""The scheduler's delivery against a real local Slack-compatible server, on SQLite and on PostgreSQL (the harness
of ``test_scheduler.py``): 429 + Retry-After delays and retries, a platform down for long posts each reminder once
when it is back or lets them expire, a removed channel or uninstalled workspace pauses and is listed, and a failing
deliverer, renderer or slow delivery loses no post."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from bot.scheduler import DeliveryResult, Outgoing, Scheduler, TextDeliverer
from bot.slack.delivery import SlackDeliverer
from handlers import Request
from tests import test_scheduler as scheduler_suite
from tests.test_scheduler import R0, R5, R10, SECOND, SET_AT, accepted_keys, make_scheduler, passes, remind

# The scheduler suite's fixtures, defined once in test_scheduler.py: ``store`` (on SQLite and on PostgreSQL, in
# place of conftest's), ``slack`` (the local Slack Web API) and ``sdesk`` (a Desk on that store).
store, slack, sdesk = scheduler_suite.store, scheduler_suite.slack, scheduler_suite.sdesk


# ---------------------------------------------------------------------------------- delivery


async def test_429_delays_and_retries(store, sdesk, slack):
    await remind(sdesk)
    slack.rate_limit("chat.postMessage", retry_after=1)
    sched = make_scheduler(store, sdesk, slack)
    report = await sched.run_due(R10)
    assert report.posted == 1 and report.retried == 0
    first, second = slack.calls_to("chat.postMessage")
    assert second.at - first.at >= 0.9  # Retry-After honoured
    assert (await store.list_posts("slack", "C1"))[0].status == "posted"


async def test_persistent_429_backs_off_then_posts(store, sdesk, slack):
    await remind(sdesk)
    slack.rate_limit("chat.postMessage", times=4, retry_after=0)  # more than the client's own retries
    sched = make_scheduler(store, sdesk, slack)
    report = await sched.run_due(R10)
    assert (report.posted, report.retried) == (0, 1)
    post = (await store.list_posts("slack", "C1"))[0]
    assert post.status == "pending" and post.last_error == "ratelimited" and post.lease_until > R10
    assert (await sched.run_due(R10)).posted == 0  # not before the back-off
    assert (await sched.run_due(post.lease_until)).posted == 1
    assert len([c for c in slack.calls_to("chat.postMessage") if c.params["channel"] == "C1"]) == 5


async def test_429_on_every_post_for_15_minutes_then_every_reminder_is_posted_once(store, sdesk, slack):
    for channel in ("C1", "C2", "C3"):
        await remind(sdesk, channel)
    slack.rate_limit("chat.postMessage", times=None, retry_after=30)
    sched = make_scheduler(store, sdesk, slack)
    reports = await passes(sched, R10, R10 + dt.timedelta(minutes=15), dt.timedelta(seconds=30))
    assert len(slack.calls_to("chat.postMessage")) >= 3 * 15  # tried again each time Retry-After allowed...
    assert accepted_keys(slack) == [] and sum(r.failed for r in reports) == 0  # ...and never given up
    due = [p for c in ("C1", "C2", "C3") for p in await store.list_posts("slack", c) if p.due_at == R10]
    assert {p.status for p in due} == {"pending"}
    slack.recover()
    await passes(sched, R10 + dt.timedelta(minutes=15, seconds=30), R10 + dt.timedelta(minutes=30),
                 dt.timedelta(seconds=30))
    assert sorted(accepted_keys(slack)) == sorted(p.key for p in due)  # each exactly once
    assert {(await store.get_post(p.id)).status for p in due} == {"posted"}


async def test_a_long_retry_after_is_honoured_between_passes_not_waited_out_inside_one(store, sdesk, slack):
    await remind(sdesk)
    slack.rate_limit("chat.postMessage", retry_after=120)
    sched = make_scheduler(store, sdesk, slack)
    report = await asyncio.wait_for(sched.run_due(R10), 10)  # the delivery does not sit out two minutes
    assert report.retried == 1
    post = (await store.list_posts("slack", "C1"))[0]
    assert post.status == "pending" and post.lease_until >= R10 + dt.timedelta(seconds=120)
    assert (await sched.run_due(R10 + dt.timedelta(seconds=119))).due == 0  # not before Retry-After
    assert (await sched.run_due(R10 + dt.timedelta(seconds=125))).posted == 1
    assert accepted_keys(slack) == [post.key]


async def test_503_for_90_minutes_then_recovery_posts_every_reminder_once(store, sdesk, slack):
    for channel in ("C1", "C2"):
        await remind(sdesk, channel)
    clock = [R10]
    slack.clock = lambda: clock[0].timestamp()
    for method in ("chat.postMessage", "conversations.history"):  # Slack is down, every method
        slack.fail_http(method, 503, times=None, body="<html><body>503 Service Unavailable</body></html>",
                        content_type="text/html")
    sched = make_scheduler(store, sdesk, slack)
    minute = dt.timedelta(minutes=1)
    reports = await passes(sched, R10, R10 + 90 * minute, minute, clock)
    assert accepted_keys(slack) == [] and sum(r.failed for r in reports) == 0
    assert len(slack.calls_to("chat.postMessage")) >= 2 * 8  # retried all along, backing off
    slack.recover()
    await passes(sched, R10 + 91 * minute, R10 + 150 * minute, minute, clock)
    due = [p for c in ("C1", "C2") for p in await store.list_posts("slack", c) if p.due_at == R10]
    assert sorted(accepted_keys(slack)) == sorted(p.key for p in due)  # each exactly once
    assert {(await store.get_post(p.id)).status for p in due} == {"posted"}


async def test_a_platform_down_until_the_deadline_expires_its_reminders_and_fails_none(store, sdesk, slack):
    await remind(sdesk)
    slack.fail_http("chat.postMessage", 500, times=None, body="upstream error", content_type="text/plain")
    sched = make_scheduler(store, sdesk, slack)
    reports = await passes(sched, R10, R0 + dt.timedelta(days=2), dt.timedelta(hours=6))
    assert sum(r.failed for r in reports) == 0 and sum(r.retried for r in reports) > 8
    statuses = [p.status for p in await store.list_posts("slack", "C1")]
    assert "failed" not in statuses and statuses[-1] == "expired"  # kept trying while it was useful
    assert accepted_keys(slack) == []


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "account_inactive"])
async def test_removed_channel_pauses_and_is_reported(store, sdesk, slack, error):
    await remind(sdesk, "C1")
    await remind(sdesk, "C2")
    await sdesk.handle(Request(text="/china-filing subscribe 618", platform="slack", channel="C1",
                               workspace="T0001", now=SET_AT))
    slack.fail("chat.postMessage", error, when=lambda call: call.params.get("channel") == "C1")
    paused_calls = []

    async def hook(post, reason):
        paused_calls.append((post.channel, reason))

    sched = make_scheduler(store, sdesk, slack)
    sched.on_paused.append(hook)
    report = await sched.run_due(R10)
    assert (report.paused, report.posted) == (1, 1)  # C1 paused, C2 still posted
    assert paused_calls == [("C1", error)]
    [item] = await store.list_paused("slack", "T0001")
    assert (item.kind, item.channel, item.reason) == ("deadline", "C1", error)
    # The channel's listing says so; later passes post nothing there.
    listing = await sdesk.handle(Request(text="/china-filing reminders", platform="slack", channel="C1", now=R10))
    assert f"PAUSED: {error}" in listing.text
    await sched.run_due(R5)
    assert [c.params["channel"] for c in slack.calls_to("chat.postMessage")].count("C1") == 1  # the failed try
    # Re-invited: resuming re-offers what is still useful, once: the 5-day reminder, which supersedes
    # the missed 10-day one.
    assert await store.resume("deadline", item.id)
    report = await sched.run_due(R5 + SECOND)
    assert (report.posted, report.skipped) == (1, 1)
    c1 = [c for c in slack.calls_to("chat.postMessage") if c.params["channel"] == "C1"]
    assert len(c1) == 2 and "Late reminder" not in c1[1].dumps() and "Thu 30 Oct" not in c1[1].dumps()


async def test_uninstalled_workspace_without_token_pauses(store, sdesk, slack):
    await remind(sdesk)
    sched = Scheduler(store, sdesk, {"slack": SlackDeliverer(store, default_token=None, api_url=slack.api_url)})
    report = await sched.run_due(R10)
    assert report.paused == 1 and slack.calls_to("chat.postMessage") == []


async def test_installation_token_is_used_per_workspace(store, sdesk, slack):
    from tests.slack_server import Workspace

    slack.add_workspace(Workspace(team_id="T0001"), "xoxb-installed")
    await store.save_installation("slack", "T0001", {"bot": {"bot_token": "xoxb-installed"}})
    await remind(sdesk)
    await make_scheduler(store, sdesk, slack).run_due(R10)
    [call] = slack.calls_to("chat.postMessage")
    assert call.token == "xoxb-installed"


async def test_deliverer_exception_and_render_failure_do_not_lose_posts(store, sdesk, slack):
    await remind(sdesk)

    class Flaky:
        calls = 0

        async def deliver(self, item: Outgoing) -> DeliveryResult:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("boom")
            return DeliveryResult.posted("ok-1")

    sched = Scheduler(store, sdesk, {"slack": Flaky()})
    assert (await sched.run_due(R10)).retried == 1
    post = (await store.list_posts("slack", "C1"))[0]
    assert (await sched.run_due(post.lease_until)).posted == 1


async def test_slow_delivery_gives_back_posts_before_the_lease_ends(store, sdesk):
    for i in range(4):  # four deadlines in one channel, their 10-day reminders due together
        await remind(sdesk, note=f"deadline {i}")
    seen: list[str] = []

    class Slow:
        async def deliver(self, item: Outgoing) -> DeliveryResult:
            seen.append(item.post.key)
            await asyncio.sleep(0.5)
            return DeliveryResult.posted(f"ts-{len(seen)}")

    sched = Scheduler(store, sdesk, {"slack": Slow()}, lease_seconds=1)
    report = await sched.run_due(R10)
    # 0.8 s into a 1 s lease the rest of the batch is released, then re-claimed with a fresh lease.
    assert report.posted == 4 and len(seen) == 4 and len(set(seen)) == 4
    assert [p.attempts for p in await store.list_posts("slack", "C1") if p.due_at == R10] == [1, 1, 1, 1]


async def test_posts_for_platforms_without_a_deliverer_wait(store, sdesk):
    await remind(sdesk)
    sched = Scheduler(store, sdesk, {"text": TextDeliverer()})  # this process cannot post to Slack
    assert (await sched.run_due(R10)).due == 0
    assert (await store.list_posts("slack", "C1"))[0].status == "pending"
