"""The reminder rows of the store: tracked deadlines, subscriptions, pausing and scheduled posts.

A mixin of :class:`bot.store.base.Store` (same SQL for both backends); kept apart so each file reads as one concern."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from bot.store.models import (
    ACTIVE_POST_STATUSES,
    Conn,
    ExpiredSummary,
    NewPost,
    PausedItem,
    PostKind,
    ScheduledPost,
    Subscription,
    TrackedDeadline,
    _aware,
    _deadline,
    _post,
    _subscription,
    _ts,
    utcnow,
)

if TYPE_CHECKING:
    pass



class ScheduleRows:
    """Tracked deadlines, subscriptions and their posts (one transaction per method, like the rest of Store)."""

    # ---- tracked deadlines

    async def add_tracked(
        self, *, platform: str, workspace: str | None, channel: str, topic: str, start: str, due: dt.date,
        note: str | None, created_by: str | None, posts: Sequence[NewPost], now: dt.datetime | None = None,
    ) -> TrackedDeadline:
        """Track a deadline and schedule its reminder posts, atomically.

        Post keys are made unique per deadline here (``d<id>:<key>``), so callers name posts by role
        ("rem10") and :meth:`reschedule_tracked` with the same names finds the same rows.
        """
        now = _aware(now or utcnow())
        async with self._tx() as c:
            row = await c.fetchrow(
                "INSERT INTO tracked_deadlines (platform, workspace, channel, topic, start_value, due_date, note, "
                "created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
                platform, workspace, channel, topic, start, due, note, created_by, now,
            )
            deadline = _deadline(row)
            for post in posts:
                post = _deadline_key(post, deadline.id)
                await self._insert_post(c, post, platform, workspace, channel, "deadline", deadline.id, None, now)
        return deadline

    async def get_tracked(self, deadline_id: int) -> TrackedDeadline | None:
        async with self._tx() as c:
            row = await c.fetchrow("SELECT * FROM tracked_deadlines WHERE id = $1", deadline_id)
        return None if row is None else _deadline(row)

    async def list_tracked(
        self, platform: str, workspace: str | None = None, channel: str | None = None,
    ) -> list[TrackedDeadline]:
        async with self._tx() as c:
            rows = await c.fetch(
                "SELECT * FROM tracked_deadlines WHERE platform = $1 AND ($2::text IS NULL OR workspace = $2) "
                "AND ($3::text IS NULL OR channel = $3) ORDER BY due_date, id",
                platform, workspace, channel,
            )
        return [_deadline(r) for r in rows]

    async def delete_tracked(self, platform: str, channel: str, deadline_id: int) -> bool:
        """Stop tracking (and forget its posts); False when no such deadline in that channel."""
        async with self._tx() as c:
            await c.execute("DELETE FROM scheduled_posts WHERE deadline_id = $1 AND platform = $2 AND channel = $3",
                            deadline_id, platform, channel)
            n = await c.execute(
                "DELETE FROM tracked_deadlines WHERE id = $1 AND platform = $2 AND channel = $3",
                deadline_id, platform, channel,
            )
        return n > 0

    async def reschedule_tracked(
        self, deadline_id: int, posts: Sequence[NewPost], now: dt.datetime | None = None,
    ) -> int:
        """Replace a deadline's not-yet-claimed posts (after a time-zone change); returns posts scheduled.

        Posted or in-flight rows keep their key, so re-inserting them is a no-op: nothing is repeated.
        """
        now = _aware(now or utcnow())
        async with self._tx() as c:
            row = await c.fetchrow("SELECT * FROM tracked_deadlines WHERE id = $1", deadline_id)
            if row is None:
                return 0
            d = _deadline(row)
            await c.execute(
                "DELETE FROM scheduled_posts WHERE deadline_id = $1 AND status IN ('pending', 'skipped', 'paused')",
                deadline_id,
            )
            n = 0
            for post in posts:
                status = "paused" if d.status == "paused" and post.status == "pending" else post.status
                post = _deadline_key(NewPost(post.key, post.due_at, post.expires_at, post.payload, status), d.id)
                n += await self._insert_post(c, post, d.platform, d.workspace, d.channel, "deadline", d.id, None, now)
        return n

    # ---- subscriptions

    async def add_subscription(
        self, *, platform: str, workspace: str | None, channel: str, topic: str, created_by: str | None,
        now: dt.datetime | None = None,
    ) -> tuple[Subscription, bool]:
        """Subscribe a channel to a topic's dated events (``topic="all"`` for every pack); (row, created?)."""
        now = _aware(now or utcnow())
        async with self._tx() as c:
            row = await c.fetchrow(
                "INSERT INTO subscriptions (platform, workspace, channel, topic, created_by, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (platform, channel, topic) DO NOTHING RETURNING *",
                platform, workspace, channel, topic, created_by, now,
            )
            if row is not None:
                return _subscription(row), True
            row = await c.fetchrow(
                "SELECT * FROM subscriptions WHERE platform = $1 AND channel = $2 AND topic = $3",
                platform, channel, topic,
            )
        return _subscription(row), False

    async def get_subscription(self, subscription_id: int) -> Subscription | None:
        async with self._tx() as c:
            row = await c.fetchrow("SELECT * FROM subscriptions WHERE id = $1", subscription_id)
        return None if row is None else _subscription(row)

    async def list_subscriptions(
        self, platform: str, workspace: str | None = None, channel: str | None = None,
    ) -> list[Subscription]:
        async with self._tx() as c:
            rows = await c.fetch(
                "SELECT * FROM subscriptions WHERE platform = $1 AND ($2::text IS NULL OR workspace = $2) "
                "AND ($3::text IS NULL OR channel = $3) ORDER BY channel, id",
                platform, workspace, channel,
            )
        return [_subscription(r) for r in rows]

    async def delete_subscription(self, platform: str, channel: str, subscription_id: int) -> bool:
        async with self._tx() as c:
            await c.execute(
                "DELETE FROM scheduled_posts WHERE subscription_id = $1 AND platform = $2 AND channel = $3",
                subscription_id, platform, channel,
            )
            n = await c.execute(
                "DELETE FROM subscriptions WHERE id = $1 AND platform = $2 AND channel = $3",
                subscription_id, platform, channel,
            )
        return n > 0

    async def subscriptions_to_refresh(self, before: dt.datetime, *, limit: int = 200) -> list[Subscription]:
        """Active subscriptions whose posts are materialised only up to a point earlier than ``before``."""
        async with self._tx() as c:
            rows = await c.fetch(
                "SELECT * FROM subscriptions WHERE status = 'active' "
                "AND (materialised_until IS NULL OR materialised_until < $1) "
                "ORDER BY materialised_until NULLS FIRST, id LIMIT $2",
                _aware(before), limit,
            )
        return [_subscription(r) for r in rows]

    async def add_subscription_posts(
        self, subscription_id: int, posts: Sequence[NewPost], materialised_until: dt.datetime,
        now: dt.datetime | None = None,
    ) -> int:
        """Schedule event posts for a subscription (keys already present are left alone); returns new rows."""
        now = _aware(now or utcnow())
        async with self._tx() as c:
            row = await c.fetchrow("SELECT * FROM subscriptions WHERE id = $1", subscription_id)
            if row is None:  # unsubscribed meanwhile
                return 0
            s = _subscription(row)
            n = 0
            for post in posts:
                if s.status == "paused" and post.status == "pending":  # stays quiet until resumed
                    post = NewPost(post.key, post.due_at, post.expires_at, post.payload, "paused")
                n += await self._insert_post(c, post, s.platform, s.workspace, s.channel, "event", None, s.id, now)
            await c.execute(
                "UPDATE subscriptions SET materialised_until = $2 WHERE id = $1",
                subscription_id, _aware(materialised_until),
            )
        return n

    # ---- pausing (delivery failures)

    async def list_paused(self, platform: str, workspace: str | None = None) -> list[PausedItem]:
        out: list[PausedItem] = []
        for d in await self.list_tracked(platform, workspace):
            if d.status == "paused":
                out.append(PausedItem("deadline", d.id, d.ref, d.platform, d.workspace, d.channel, d.topic,
                                      d.paused_reason, d.paused_at))
        for s in await self.list_subscriptions(platform, workspace):
            if s.status == "paused":
                out.append(PausedItem("subscription", s.id, s.ref, s.platform, s.workspace, s.channel, s.topic,
                                      s.paused_reason, s.paused_at))
        return out

    async def resume(self, kind: Literal["deadline", "subscription"], item_id: int) -> bool:
        """Resume a paused deadline/subscription (say after the bot is re-invited); its posts are re-offered."""
        table, column = _source_table(kind)
        async with self._tx() as c:
            n = await c.execute(
                f"UPDATE {table} SET status = 'active', paused_reason = NULL, paused_at = NULL "
                "WHERE id = $1 AND status = 'paused'", item_id,
            )
            await c.execute(
                f"UPDATE scheduled_posts SET status = 'pending', lease_until = NULL, claim_token = NULL "
                f"WHERE {column} = $1 AND status = 'paused'", item_id,
            )
        return n > 0

    # ---- scheduled posts

    async def add_posts(
        self, posts: Sequence[NewPost], *, platform: str, workspace: str | None, channel: str, kind: PostKind,
        deadline_id: int | None = None, subscription_id: int | None = None, now: dt.datetime | None = None,
    ) -> int:
        """Schedule posts directly (keys already present are ignored); returns how many are new."""
        now = _aware(now or utcnow())
        async with self._tx() as c:
            n = 0
            for post in posts:
                n += await self._insert_post(c, post, platform, workspace, channel, kind, deadline_id,
                                             subscription_id, now)
        return n

    async def _insert_post(
        self, c: Conn, post: NewPost, platform: str, workspace: str | None, channel: str, kind: PostKind,
        deadline_id: int | None, subscription_id: int | None, now: dt.datetime,
    ) -> int:
        return await c.execute(
            "INSERT INTO scheduled_posts (key, platform, workspace, channel, kind, deadline_id, subscription_id, "
            "due_at, expires_at, payload, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
            "$12) ON CONFLICT (key) DO NOTHING",
            post.key, platform, workspace, channel, kind, deadline_id, subscription_id, _aware(post.due_at),
            _aware(post.expires_at), self._dump(post.payload), post.status, now,
        )

    async def delete_pending_posts(
        self, *, deadline_id: int | None = None, subscription_id: int | None = None,
    ) -> int:
        """Forget the not-yet-claimed posts of one deadline or subscription (before re-planning them)."""
        if (deadline_id is None) == (subscription_id is None):
            raise ValueError("give exactly one of deadline_id or subscription_id")
        column, item = ("deadline_id", deadline_id) if deadline_id is not None else ("subscription_id", subscription_id)
        async with self._tx() as c:
            return await c.execute(
                f"DELETE FROM scheduled_posts WHERE {column} = $1 AND status IN ('pending', 'paused')", item,
            )

    async def list_posts(
        self, platform: str | None = None, channel: str | None = None, *, status: str | None = None,
        deadline_id: int | None = None, subscription_id: int | None = None,
    ) -> list[ScheduledPost]:
        async with self._tx() as c:
            rows = await c.fetch(
                "SELECT * FROM scheduled_posts WHERE ($1::text IS NULL OR platform = $1) "
                "AND ($2::text IS NULL OR channel = $2) AND ($3::text IS NULL OR status = $3) "
                "AND ($4::bigint IS NULL OR deadline_id = $4) AND ($5::bigint IS NULL OR subscription_id = $5) "
                "ORDER BY due_at, id",
                platform, channel, status, deadline_id, subscription_id,
            )
        return [_post(r) for r in rows]

    async def get_post(self, post_id: int) -> ScheduledPost | None:
        async with self._tx() as c:
            row = await c.fetchrow("SELECT * FROM scheduled_posts WHERE id = $1", post_id)
        return None if row is None else _post(row)

    async def next_due_at(self) -> dt.datetime | None:
        """When the earliest pending post falls due (lets the scheduler sleep less when one is near)."""
        async with self._tx() as c:
            row = await c.fetchrow("SELECT MIN(due_at) AS due FROM scheduled_posts WHERE status = 'pending'")
        return None if row is None else _ts(row["due"])

    async def expire_overdue(self, now: dt.datetime) -> ExpiredSummary:
        """Mark due posts whose deadline/event has already passed ``expired``: they are never posted.

        Touches only due rows (index on status, due_at), so its cost follows the number due.
        """
        now = _aware(now)
        async with self._tx() as c:
            n = 0
            for status in ACTIVE_POST_STATUSES:
                n += await c.execute(
                    "UPDATE scheduled_posts SET status = 'expired', claim_token = NULL, lease_until = NULL "
                    "WHERE status = $1 AND due_at <= $2 AND expires_at <= $2 "
                    "AND (status = 'pending' OR lease_until IS NULL OR lease_until <= $2)",
                    status, now,
                )
        return ExpiredSummary(expired=n)

    async def count_due(self, now: dt.datetime, *, exclude: Sequence[str] = ()) -> dict[str, int]:
        """Due posts a pass could claim at ``now``, by platform, leaving out ``exclude`` (the platforms the
        caller can post to): what is waiting for a process with the right credentials."""
        now = _aware(now)
        async with self._tx() as c:
            rows = await c.fetch(
                "SELECT platform, COUNT(*) AS n FROM scheduled_posts WHERE status = 'pending' AND due_at <= $1 "
                "AND expires_at > $1 AND (lease_until IS NULL OR lease_until <= $1) GROUP BY platform",
                now,
            )
        return {r["platform"]: int(r["n"]) for r in rows if r["platform"] not in exclude}

    async def skip_superseded(self, now: dt.datetime) -> int:
        """Mark ``skipped`` each due, unclaimed post of a deadline when a later post of that deadline is due
        too (pending, in flight or posted): after downtime, or behind a long retry, a deadline gets its most
        recent missed reminder, not every one of them. Returns how many were skipped.

        Touches only due pending rows (index on status, due_at) and their deadline's rows.
        """
        now = _aware(now)
        async with self._tx() as c:
            return await c.execute(
                "UPDATE scheduled_posts SET status = 'skipped', lease_until = NULL, claim_token = NULL "
                "WHERE status = 'pending' AND due_at <= $1 AND deadline_id IS NOT NULL AND EXISTS ("
                "SELECT 1 FROM scheduled_posts later WHERE later.deadline_id = scheduled_posts.deadline_id "
                "AND later.due_at > scheduled_posts.due_at AND later.due_at <= $1 "
                "AND later.status IN ('pending', 'claimed', 'posted'))",
                now,
            )

    async def mark_posted(
        self, post_id: int, claim_token: str, *, ref: str | None, late: bool, now: dt.datetime | None = None,
    ) -> bool:
        """Record the platform's acknowledgement; from here on the post is never offered again.

        False when the claim is no longer ours (lease expired and someone else claimed it): the caller
        logs it, because only a lease shorter than a delivery can cause a repeat.
        """
        now = _aware(now or utcnow())
        async with self._tx() as c:
            n = await c.execute(
                "UPDATE scheduled_posts SET status = 'posted', posted_ref = $3, posted_at = $4, late = $5, "
                "lease_until = NULL, last_error = NULL WHERE id = $1 AND claim_token = $2 AND status = 'claimed'",
                post_id, claim_token, ref, now, bool(late),
            )
        return n > 0

    async def renew_claims(self, post_ids: Sequence[int], claim_token: str, until: dt.datetime) -> set[int]:
        """Renew to ``until`` the lease of each of ``post_ids`` still claimed with ``claim_token`` (one
        claimed batch); returns those ids. The others were done meanwhile, or taken over."""
        if not post_ids:
            return set()
        listed = ", ".join(f"${i}" for i in range(3, 3 + len(post_ids)))
        async with self._tx() as c:
            rows = await c.fetch(
                "UPDATE scheduled_posts SET lease_until = $1 WHERE claim_token = $2 AND status = 'claimed' "
                f"AND id IN ({listed}) RETURNING id",
                _aware(until), claim_token, *post_ids,
            )
        return {int(r["id"]) for r in rows}

    async def extend_lease(self, post_id: int, claim_token: str, until: dt.datetime) -> bool:
        """Renew our claim's lease to ``until`` (just before sending, and while the platform answers).

        False when the claim is no longer ours: another pass took the post over after our lease ran out,
        and it is its to deliver. The claim token makes this exclusive whatever the lease said.
        """
        async with self._tx() as c:
            n = await c.execute(
                "UPDATE scheduled_posts SET lease_until = $3 WHERE id = $1 AND claim_token = $2 AND status = 'claimed'",
                post_id, claim_token, _aware(until),
            )
        return n > 0

    async def mark_retry(
        self, post_id: int, claim_token: str, *, error: str, retry_at: dt.datetime,
        unconfirmed: tuple[dt.datetime, dt.datetime] | None = None,
    ) -> bool:
        """Transient failure: back to pending, not offered again before ``retry_at``.

        ``unconfirmed``: the window of tries that may have posted after all (this one included, when it
        timed out or got a 5xx), for the next try to look in first; None keeps the row's window as it is.
        """
        since, until = unconfirmed if unconfirmed is not None else (None, None)
        async with self._tx() as c:
            n = await c.execute(
                "UPDATE scheduled_posts SET status = 'pending', lease_until = $3, claim_token = NULL, "
                "last_error = $4, unconfirmed_since = COALESCE($5, unconfirmed_since), "
                "unconfirmed_until = COALESCE($6, unconfirmed_until) "
                "WHERE id = $1 AND claim_token = $2 AND status = 'claimed'",
                post_id, claim_token, _aware(retry_at), error[:500],
                since and _aware(since), until and _aware(until),
            )
        return n > 0

    async def mark_failed(self, post_id: int, claim_token: str, *, error: str) -> bool:
        """Permanent failure of one post (the platform refused the message itself): never offered again."""
        async with self._tx() as c:
            n = await c.execute(
                "UPDATE scheduled_posts SET status = 'failed', lease_until = NULL, last_error = $3 "
                "WHERE id = $1 AND claim_token = $2 AND status = 'claimed'",
                post_id, claim_token, error[:500],
            )
        return n > 0

    async def release(self, post_id: int, claim_token: str) -> bool:
        """Give a claimed post back unposted (scheduler stopping before delivering it)."""
        async with self._tx() as c:
            n = await c.execute(
                "UPDATE scheduled_posts SET status = 'pending', lease_until = NULL, claim_token = NULL, "
                "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END "
                "WHERE id = $1 AND claim_token = $2 AND status = 'claimed'",
                post_id, claim_token,
            )
        return n > 0

    async def pause_for_post(self, post: ScheduledPost, *, reason: str, now: dt.datetime | None = None) -> None:
        """The channel is gone or the app was removed: pause the post's deadline/subscription and its posts.

        The post itself goes back to ``paused`` (not failed) so that resuming re-offers it.
        """
        now = _aware(now or utcnow())
        kind: Literal["deadline", "subscription"] = "deadline" if post.deadline_id is not None else "subscription"
        item_id = post.deadline_id if post.deadline_id is not None else post.subscription_id
        table, column = _source_table(kind)
        async with self._tx() as c:
            await c.execute(
                "UPDATE scheduled_posts SET status = 'paused', lease_until = NULL, claim_token = NULL, "
                "last_error = $2 WHERE id = $1 AND status IN ('pending', 'claimed')",
                post.id, reason[:500],
            )
            if item_id is None:
                return
            await c.execute(
                f"UPDATE {table} SET status = 'paused', paused_reason = $2, paused_at = $3 WHERE id = $1",
                item_id, reason[:500], now,
            )
            await c.execute(
                f"UPDATE scheduled_posts SET status = 'paused', lease_until = NULL, claim_token = NULL "
                f"WHERE {column} = $1 AND status = 'pending'",
                item_id,
            )


def _deadline_key(post: NewPost, deadline_id: int) -> NewPost:
    prefix = f"d{deadline_id}:"
    if post.key.startswith(prefix):
        return post
    return NewPost(prefix + post.key, post.due_at, post.expires_at, post.payload, post.status)


def _source_table(kind: str) -> tuple[str, str]:
    if kind == "deadline":
        return "tracked_deadlines", "deadline_id"
    if kind == "subscription":
        return "subscriptions", "subscription_id"
    raise ValueError(f"unknown kind {kind!r}")


def new_claim_token() -> str:
    return secrets.token_hex(12)


