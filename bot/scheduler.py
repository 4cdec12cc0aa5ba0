"""The reminder scheduler: posts due reminders and calendar events, exactly once, from any number of replicas.

A pass (:meth:`Scheduler.run_due`) does, at one instant ``now``:

1. tops up calendar subscriptions to a 400-day horizon, each about once a day, so new dates in the
   content packs are picked up (idempotent: every post has a unique key);
2. marks due posts whose deadline/event has already passed ``expired`` (never posted), and due posts of
   a deadline that a later due post of the same deadline supersedes ``skipped``: after downtime a
   deadline gets one late reminder, the most recent it missed, not each of them back to back;
3. claims due posts in batches with a lease (:meth:`bot.store.Store.claim_due`: ``FOR UPDATE SKIP
   LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so concurrent passes split the work;
4. renders each post (:func:`handlers.reminder_posts.render_post`) and hands it to the platform's
   :class:`Deliverer`, channel by channel in due order; a post more than ``late_after`` behind its time
   is labelled late;
5. records the outcome: ``posted`` with the platform's message ref (never offered again), back to
   ``pending`` with a back-off (see below), ``paused`` (channel gone, app removed: the deadline or
   subscription is paused and shown in the App Home), or ``failed`` (the message itself was refused).

A platform that is busy or down never loses a reminder: 429s, 5xx, timeouts and network errors are
retried, however many times, for as long as the post is useful (until its ``expires_at``: the deadline
or event has passed, when the pass marks it ``expired``). The wait before the next try is the platform's
``Retry-After`` when it gives one, else an exponential back-off (30 s, 1, 2, 4, 8 minutes) capped at
:data:`MAX_BACKOFF_SECONDS`, jittered; a ``Retry-After`` is never waited out inside a delivery beyond a few
seconds (:data:`MAX_CALL_WAIT_SECONDS`), so a delivery stays short and inside its lease.

A delivery stays inside its lease: while a batch is delivered its leases are renewed every third of the
lease (:class:`BatchLeases`), a post is sent only if its claim is still the batch's (a claim another pass
has taken over is left to it), and the outcome is recorded only with the claim token
(:meth:`bot.store.Store.mark_posted`). A process that dies between 3 and 5 leaves its rows ``claimed``;
the next pass after the lease re-offers them, as a try that may have posted (so may a timeout or a 5xx:
``DeliveryResult.uncertain``). The row keeps that try's time window, and the Slack deliverer
(:mod:`bot.slack.delivery`) looks there in the channel for its own earlier message (each post carries
its key in Slack message metadata) before posting again: a post Slack accepted just before the crash is
recorded, not repeated.

The loop (:meth:`Scheduler.start` / :meth:`Scheduler.stop`, or :meth:`Scheduler.cleanup_ctx` for
aiohttp) runs inside ``chinadesk serve`` and as ``chinadesk worker``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Literal, Protocol

from bot.store import ScheduledPost, Store, utcnow
from handlers.request import Reply

log = logging.getLogger("chinadesk.scheduler")

BASE_BACKOFF_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 600.0  # a platform back after an outage gets every waiting post within 10 minutes
MAX_RETRY_AFTER_SECONDS = 3600.0  # a Retry-After beyond an hour is taken as an hour
MAX_CALL_WAIT_SECONDS = 5.0  # longer Retry-After waits are the scheduler's, between passes, not the call's


# ------------------------------------------------------------------------------------------- seam


@dataclass(frozen=True)
class Outgoing:
    """One post to deliver: the stored row, what it says, whether it is late, and the pass's instant."""

    post: ScheduledPost
    reply: Reply
    late: bool
    now: dt.datetime | None = None

    @property
    def platform(self) -> str:
        return self.post.platform

    @property
    def channel(self) -> str:
        return self.post.channel

    @property
    def workspace(self) -> str | None:
        return self.post.workspace


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Literal["posted", "retry", "paused", "failed"]
    ref: str | None = None  # Slack ts / Teams activity id, when posted
    error: str | None = None
    retry_after: float | None = None  # seconds, for "retry"
    # For "retry": the platform may have posted it after all (timeout, 5xx): look before posting again.
    uncertain: bool = False

    @classmethod
    def posted(cls, ref: str | None) -> DeliveryResult:
        return cls("posted", ref=ref)

    @classmethod
    def retry(cls, error: str, after: float | None = None, *, uncertain: bool = False) -> DeliveryResult:
        return cls("retry", error=error, retry_after=after, uncertain=uncertain)

    @classmethod
    def paused(cls, reason: str) -> DeliveryResult:
        return cls("paused", error=reason)

    @classmethod
    def failed(cls, error: str) -> DeliveryResult:
        return cls("failed", error=error)


class Deliverer(Protocol):
    """Puts one post in front of a channel. Must not raise for platform errors: return a result."""

    async def deliver(self, item: Outgoing) -> DeliveryResult: ...


# Factories by platform: ``factory(store, env) -> Deliverer | None`` (None: not configured here).
# bot/slack/delivery.py and bot/teams/delivery.py register "slack" and "teams" with ``register_deliverer``
# when imported (bot/platforms.py imports them); the scheduler itself imports no platform.
DelivererFactory = Callable[[Store, Mapping[str, str]], "Deliverer | None"]
DELIVERER_FACTORIES: dict[str, DelivererFactory] = {}
# What a process needs to post to a platform, for "due but not sent" messages (run-due, the pass log).
DELIVERER_NEEDS: dict[str, str] = {}


def register_deliverer(platform: str, factory: DelivererFactory, *, needs: str | None = None) -> None:
    """``needs``: what to configure when ``factory`` returns None (said when that platform's posts wait)."""
    DELIVERER_FACTORIES[platform] = factory
    if needs:
        DELIVERER_NEEDS[platform] = needs


def undelivered_reason(platform: str) -> str:
    """Why this process did not send a due post for ``platform``: what it would need."""
    need = DELIVERER_NEEDS.get(platform)
    return f"this process cannot post to {platform}" + (f": set {need}" if need else " (not configured here)")


class TextDeliverer:
    """Platform ``text`` (reminders set up from the CLI without --platform): written to a stream or the log."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    async def deliver(self, item: Outgoing) -> DeliveryResult:
        line = f"[{item.channel}] {item.reply.text}"
        if self.stream is not None:
            print(line + "\n", file=self.stream, flush=True)
        else:
            log.info("reminder for text channel %s: %s", item.channel, item.reply.title)
        return DeliveryResult.posted(f"text:{item.post.id}")


register_deliverer("text", lambda store, env: TextDeliverer())


# -------------------------------------------------------------------------------------- scheduler


@dataclass
class PassReport:
    """What one pass did (also summed into the scheduler's counters)."""

    now: dt.datetime
    due: int = 0
    posted: int = 0
    late: int = 0
    retried: int = 0
    paused: int = 0
    failed: int = 0
    expired: int = 0
    skipped: int = 0  # due, but a later reminder of the same deadline is due too
    # Due posts for platforms this process has no deliverer for (no credentials): left for a process
    # that has one, and said (``reminders run-due`` prints why).
    waiting: dict[str, int] = field(default_factory=dict)
    stale: int = 0  # posted, but our lease had expired and someone else had claimed it meanwhile
    lost: int = 0  # claims another pass had taken over before we sent anything (left to it)
    materialised: int = 0
    posted_ids: list[int] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic, repr=False)  # monotonic clock when the pass began

    def instant(self) -> dt.datetime:
        """The pass's ``now`` moved on by the real time it has run: where leases and retries start from."""
        return self.now + dt.timedelta(seconds=time.monotonic() - self.started)


    def as_json(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(), "due": self.due, "posted": self.posted, "late": self.late,
            "retried": self.retried, "paused": self.paused, "failed": self.failed, "expired": self.expired,
            "skipped": self.skipped, "waiting": dict(self.waiting),
            "stale": self.stale, "lost": self.lost, "materialised": self.materialised,
            "posted_ids": list(self.posted_ids),
        }


PauseHook = Callable[[ScheduledPost, str], Awaitable[None]]
# What a pass counts (PassReport fields, Scheduler totals, chinadesk_reminders_total{event}).
COUNTED = ("due", "posted", "late", "retried", "paused", "failed", "expired", "skipped")


class Scheduler:
    """Posts due reminders; one instance per process, any number of processes per database."""

    def __init__(
        self, store: Store, desk: Any, deliverers: Mapping[str, Deliverer], *,
        interval: float = 30.0, jitter: float = 0.2, lease_seconds: int = 300, batch_size: int = 200,
        late_after: dt.timedelta = dt.timedelta(minutes=15), concurrency: int = 8,
        refresh_ahead: dt.timedelta = dt.timedelta(days=399), refresh_limit: int = 50,
        clock: Callable[[], dt.datetime] = utcnow,
        max_batches: int = 100, purge_every: dt.timedelta | None = dt.timedelta(minutes=15),
    ) -> None:
        self.store = store
        self.desk = desk
        self.deliverers = dict(deliverers)
        self.interval = interval
        self.jitter = jitter
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size
        self.late_after = late_after
        self.concurrency = concurrency
        # Subscriptions are topped up to the 400-day horizon about once a day (materialised < now+399d),
        # so events added to the content packs are picked up within a day; at most refresh_limit per pass
        # keeps a pass's cost bounded however many channels subscribe.
        self.refresh_ahead = refresh_ahead
        self.refresh_limit = refresh_limit
        self.max_batches = max_batches
        self.clock = clock
        # How often a pass also purges rows past their TTL (Store.purge_expired); None: never (benchmarks).
        self.purge_every = purge_every
        self._purged_at: dt.datetime | None = None
        self.on_paused: list[PauseHook] = []  # e.g. the Slack adapter republishing the App Home
        # Counters since start-up, for a metrics exporter to read.
        self.passes = 0
        self.due = 0
        self.posted = 0
        self.late = 0
        self.retried = 0
        self.paused = 0
        self.failed = 0
        self.expired = 0
        self.skipped = 0
        self.purged = 0  # rows purged
        self.errors = 0  # passes that raised
        self.last_pass: PassReport | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._pass_lock = asyncio.Lock()

    # ---- one pass

    async def run_due(self, now: dt.datetime | None = None) -> PassReport:
        """One scheduler pass at ``now`` (default: the clock). Safe to run concurrently with other processes."""
        now = (now or self.clock()).astimezone(dt.UTC)
        async with self._pass_lock:
            report = PassReport(now=now)
            report.materialised = await self._refresh_subscriptions(now)
            report.expired = (await self.store.expire_overdue(now)).expired
            report.skipped = await self.store.skip_superseded(now)
            platforms = sorted(self.deliverers)
            for _ in range(self.max_batches):  # bounded: a pass always ends, leftovers go to the next
                batch = await self.store.claim_due(now, limit=self.batch_size, lease_seconds=self.lease_seconds,
                                                   platforms=platforms)
                if not batch:
                    break
                report.due += len(batch)
                await self._deliver_batch(batch, now, report)
                if self._stopping.is_set():  # stop(): finish what we claimed, claim no more
                    break
            report.waiting = await self.store.count_due(now, exclude=platforms)
            await self._purge(now)
            self._count(report)
            if report.due or report.expired or report.skipped or report.waiting:
                log.info("scheduler pass", extra={**{name: getattr(report, name) for name in COUNTED},
                                                  **({"waiting": report.waiting} if report.waiting else {})})
            return report

    async def _purge(self, now: dt.datetime) -> None:
        """Every ``purge_every`` (by the pass clock), forget rows past their TTL: the tables never grow
        without bound. A failure is logged and retried at the next pass; reminders go on regardless."""
        if self.purge_every is None:
            return
        if self._purged_at is not None and self._purged_at <= now < self._purged_at + self.purge_every:
            return
        try:
            deleted = await self.store.purge_expired(now)
        except Exception:
            log.exception("purging expired rows failed; retrying next pass")
            return
        self._purged_at = now
        self.purged += sum(deleted.values())
        if any(deleted.values()):
            log.info("purged expired rows", extra={f"purged_{table}": n for table, n in deleted.items() if n})

    def _count(self, report: PassReport) -> None:
        self.passes += 1
        self.last_pass = report
        for name in COUNTED:
            setattr(self, name, getattr(self, name) + getattr(report, name))
        from bot.observability import count_reminder_pass  # Prometheus chinadesk_reminders_total

        count_reminder_pass(report)

    async def _refresh_subscriptions(self, now: dt.datetime) -> int:
        from handlers.reminders import materialise_subscription

        total = 0
        for sub in await self.store.subscriptions_to_refresh(now + self.refresh_ahead, limit=self.refresh_limit):
            settings = await self.store.get_channel_settings(sub.platform, sub.channel)
            try:
                total += await materialise_subscription(self.desk.library, self.store, sub, tz=settings.timezone,
                                                        now=now)
            except Exception:  # one bad subscription must not stop everyone's reminders
                log.exception("could not materialise subscription %s", sub.ref)
        return total

    async def _deliver_batch(self, batch: Sequence[ScheduledPost], now: dt.datetime, report: PassReport) -> None:
        # Channel by channel in due order (a channel sees its reminders in order); channels in parallel.
        by_channel: dict[tuple[str, str], list[ScheduledPost]] = {}
        for post in batch:
            by_channel.setdefault((post.platform, post.channel), []).append(post)
        gate = asyncio.Semaphore(self.concurrency)
        # Hand back what this batch has not started well before its first lease would have ended (a slow
        # channel, long waits): other passes, in other processes too, can take it over at once.
        deadline = time.monotonic() + self.lease_seconds * 0.8
        leases = BatchLeases(self.store, batch, self.lease_seconds, report)

        async def run(posts: list[ScheduledPost]) -> None:
            async with gate:
                for post in posts:
                    if time.monotonic() > deadline:
                        await self.store.release(post.id, post.claim_token or "")
                        continue
                    await self._deliver_one(post, now, report, leases)

        async with leases.kept():
            await asyncio.gather(*(run(posts) for posts in by_channel.values()))

    async def _deliver_one(self, post: ScheduledPost, now: dt.datetime, report: PassReport,
                           leases: BatchLeases) -> None:
        from handlers.reminder_posts import render_post

        token = post.claim_token or ""
        late = now - post.due_at > self.late_after
        try:
            reply = render_post(self.desk, post, now=now, late=late)
        except Exception as exc:
            log.exception("could not render post %s", post.key)
            await self.store.mark_failed(post.id, token, error=f"render: {type(exc).__name__}: {exc}")
            report.failed += 1
            return
        deliverer = self.deliverers.get(post.platform)
        if deliverer is None:  # claim_due filters by platform, so only if the mapping changed meanwhile
            await self.store.release(post.id, token)
            return
        if not await leases.still_ours(post):  # re-checked just before sending
            report.lost += 1
            log.info("post %s was taken over by another pass before it was sent; left to it", post.key)
            return
        try:
            result = await deliverer.deliver(Outgoing(post, reply, late, report.instant()))
        except Exception as exc:  # a deliverer bug must not lose the post: retry it later
            log.exception("deliverer for %s raised", post.platform)
            result = DeliveryResult.retry(f"{type(exc).__name__}: {exc}", uncertain=True)

        if result.outcome == "posted":
            if await self.store.mark_posted(post.id, token, ref=result.ref, late=late, now=now):
                report.posted += 1
                report.late += int(late)
                report.posted_ids.append(post.id)
            else:
                report.stale += 1
                log.warning("post %s delivered after its lease expired; another pass may repeat it", post.key)
        elif result.outcome == "retry":  # until the post expires: a busy or broken platform loses nothing
            ended = report.instant()
            # A try that may have posted joins the window the next try looks in first.
            unconfirmed = (post.unconfirmed_since or post.claimed_at or now, ended) if result.uncertain else None
            await self.store.mark_retry(post.id, token, error=result.error or "retry", unconfirmed=unconfirmed,
                                        retry_at=ended + dt.timedelta(seconds=retry_delay(post.attempts, result)))
            report.retried += 1
        elif result.outcome == "paused":
            reason = result.error or "paused"
            await self.store.pause_for_post(post, reason=reason, now=now)
            report.paused += 1
            log.warning("paused %s in %s/%s: %s", post.key, post.platform, post.channel, reason)
            for hook in self.on_paused:
                try:
                    await hook(post, reason)
                except Exception:
                    log.exception("pause hook failed")
        else:
            await self.store.mark_failed(post.id, token, error=result.error or "failed")
            report.failed += 1
            log.error("post %s refused for good: %s", post.key, result.error)

    # ---- the loop

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="chinadesk-scheduler")

    async def stop(self, grace: float = 60.0) -> None:
        """Stop polling; an in-flight pass finishes its claimed posts first (up to ``grace`` seconds)."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            # Whatever it had claimed is re-offered by another pass once the lease expires.
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_due()
            except Exception:
                self.errors += 1
                log.exception("scheduler pass failed; retrying next interval")
            delay = self.interval * (1 + random.uniform(-self.jitter, self.jitter))
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass

    async def cleanup_ctx(self, app: Any) -> AsyncIterator[None]:
        """For ``aiohttp.web.Application.cleanup_ctx``: runs while the server runs."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()


class BatchLeases:
    """The leases of one claimed batch, kept while it is delivered: one UPDATE every third of the lease
    renews every post of the batch still claimed by it (:meth:`bot.store.Store.renew_claims`), so that no
    other pass re-claims a post whose delivery is under way (a slow network, a timeout), and so that the
    check just before sending costs nothing while the renewals keep up."""

    def __init__(self, store: Store, batch: Sequence[ScheduledPost], seconds: int, report: PassReport) -> None:
        self.store, self.seconds, self.report = store, seconds, report
        self.token = batch[0].claim_token or "" if batch else ""
        self.ids = [p.id for p in batch]
        self.held = set(self.ids)  # still claimed by this batch, as of the last renewal
        self.renewed = time.monotonic()  # the claim itself set the lease

    def _until(self) -> dt.datetime:
        return self.report.instant() + dt.timedelta(seconds=self.seconds)

    async def renew(self) -> None:
        self.held = await self.store.renew_claims(self.ids, self.token, self._until())
        self.renewed = time.monotonic()

    async def still_ours(self, post: ScheduledPost) -> bool:
        """Whether ``post`` may be sent now: still claimed by this batch, with lease to spare. When the
        renewals have fallen behind (a slow database), the post's own claim is checked and renewed."""
        if post.id not in self.held:
            return False
        if time.monotonic() - self.renewed < self.seconds / 2:
            return True
        return await self.store.extend_lease(post.id, post.claim_token or "", self._until())

    @asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        done = asyncio.Event()

        async def beat() -> None:
            while not done.is_set():
                try:
                    await asyncio.wait_for(done.wait(), self.seconds / 3)
                    return
                except TimeoutError:
                    pass
                try:
                    await self.renew()
                except Exception:  # the database hiccuped: still_ours() checks post by post meanwhile
                    log.exception("could not renew the leases of a batch")

        task = asyncio.create_task(beat(), name="chinadesk-leases")
        try:
            yield
        finally:
            done.set()  # not cancelled: a renewal under way finishes its transaction
            await asyncio.gather(task, return_exceptions=True)


def retry_delay(attempts: int, result: DeliveryResult) -> float:
    """Seconds before the next try after ``attempts`` tries: the platform's ``Retry-After`` when it gave one
    (at most an hour), else 30 s, 1, 2, 4, 8 minutes... capped at :data:`MAX_BACKOFF_SECONDS`, jittered."""
    if result.retry_after is not None:
        return min(max(result.retry_after, 1.0), MAX_RETRY_AFTER_SECONDS)
    base = min(BASE_BACKOFF_SECONDS * 2 ** min(max(attempts - 1, 0), 16), MAX_BACKOFF_SECONDS)
    return base * random.uniform(0.8, 1.2)


# ------------------------------------------------------------------------------------ operations


async def format_listing(
    store: Store, *, platform: str | None = None, channel: str | None = None, as_json: bool = False,
) -> str:
    """``chinadesk reminders list``: every tracked deadline and subscription, with their posts."""
    import json

    platforms = [platform] if platform else ["slack", "teams", "text"]
    deadlines = [d for p in platforms for d in await store.list_tracked(p, channel=channel)]
    subs = [s for p in platforms for s in await store.list_subscriptions(p, channel=channel)]
    posts = [p for pl in platforms for p in await store.list_posts(pl, channel)]
    if as_json:
        def post_json(p: ScheduledPost) -> dict[str, Any]:
            return {"id": p.id, "key": p.key, "kind": p.kind, "channel": p.channel, "due_at": p.due_at.isoformat(),
                    "status": p.status, "late": p.late, "posted_ref": p.posted_ref, "attempts": p.attempts,
                    "last_error": p.last_error, "label": p.payload.get("label") or p.payload.get("title")}

        return json.dumps({
            "deadlines": [{"id": d.ref, "platform": d.platform, "workspace": d.workspace, "channel": d.channel,
                           "topic": d.topic, "start": d.start, "due": d.due.isoformat(), "note": d.note,
                           "status": d.status, "paused_reason": d.paused_reason} for d in deadlines],
            "subscriptions": [{"id": s.ref, "platform": s.platform, "workspace": s.workspace, "channel": s.channel,
                               "topic": s.topic, "status": s.status, "paused_reason": s.paused_reason} for s in subs],
            "posts": [post_json(p) for p in posts],
        }, ensure_ascii=False, indent=2)
    if not deadlines and not subs:
        return "No tracked deadlines or subscriptions" + (f" in {channel}." if channel else ".")
    lines: list[str] = []
    for d in deadlines:
        paused = f" PAUSED ({d.paused_reason})" if d.status == "paused" else ""
        lines.append(f"{d.ref} {d.platform}/{d.channel} {d.topic} from {d.start} due {d.due.isoformat()}"
                     f"{' note: ' + d.note if d.note else ''}{paused}")
        for p in posts:
            if p.deadline_id == d.id:
                lines.append(f"    {p.due_at.isoformat()} {p.payload.get('label', ''):<22} {p.status}"
                             f"{' (late)' if p.late else ''}{' ref ' + p.posted_ref if p.posted_ref else ''}"
                             f"{' error: ' + p.last_error if p.last_error else ''}")
    for s in subs:
        paused = f" PAUSED ({s.paused_reason})" if s.status == "paused" else ""
        mine = [p for p in posts if p.subscription_id == s.id]
        pending = [p for p in mine if p.status == "pending"]
        nxt = f", next {pending[0].due_at.isoformat()} {pending[0].payload.get('title')}" if pending else ""
        lines.append(f"{s.ref} {s.platform}/{s.channel} subscribed to {s.topic}: {len(pending)} pending, "
                     f"{sum(p.status == 'posted' for p in mine)} posted{nxt}{paused}")
    return "\n".join(lines)
