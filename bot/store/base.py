"""Storage: one async interface (:class:`Store`), two backends (SQLite file, PostgreSQL).

``open_store(database_url)`` picks the backend from the URL:

* ``sqlite:///relative.db``, ``sqlite:////abs/path.db``, ``sqlite:///:memory:`` (tests): aiosqlite, one
  connection whose calls run on aiosqlite's thread, so the event loop never blocks on disk.
* ``postgresql://`` / ``postgres://``: asyncpg with a pool, for several replicas. A ``?schema=name``
  query parameter puts every table in that schema (tests use a random one per run).

Both backends run the *same* SQL (written with ``$1`` placeholders; SQLite gets ``?1``): only schema
migrations, the claim query (``FOR UPDATE SKIP LOCKED`` vs ``BEGIN IMMEDIATE``) and value conversion
differ. Rows cross the seam as dataclasses; only stored JSON payloads are dicts.

Scheduled posts and exactly-once delivery
-----------------------------------------
Every reminder a channel will receive is a row in ``scheduled_posts`` with a unique ``key``, made when
the deadline is tracked (or, for calendar subscriptions, materialised ahead for a rolling horizon).
A scheduler pass :meth:`Store.claim_due` flips due rows to ``claimed`` with a lease and a random claim
token in one statement, so concurrent passes (any number of processes) never get the same row. After
the platform acknowledges the post, :meth:`Store.mark_posted` records the message ref and status
``posted``: such a row is never offered again. A process that dies between claim and acknowledgement
leaves the row ``claimed``; once its lease expires the next pass re-offers it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from bot.token_cipher import TokenCipher

DEFAULT_TIMEZONE = "Asia/Shanghai"

Vote = Literal["up", "down"]
PostKind = Literal["deadline", "event"]
PostStatus = Literal["pending", "claimed", "posted", "failed", "paused", "expired", "skipped"]
ACTIVE_POST_STATUSES = ("pending", "claimed")
# How long finished rows are kept (Store.purge_expired): done posts after their deadline or event has
# passed, and tracked deadlines after their due day (the App Home and the lists stop showing them).
POST_RETENTION = dt.timedelta(days=30)
DEADLINE_RETENTION = dt.timedelta(days=90)


class StoreError(Exception):
    """The database URL is unusable or the database cannot be reached."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ------------------------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Feedback:
    platform: str
    workspace: str | None
    channel: str | None
    user: str | None
    message_ref: str | None
    topic: str | None
    vote: Vote
    question: str | None = None
    created_at: dt.datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class ChannelSettings:
    platform: str
    channel: str
    workspace: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    watch: bool = False
    language: str = "auto"  # "auto", "en" or "zh" (`/china-filing language`)


@dataclass(frozen=True)
class TrackedDeadline:
    id: int
    platform: str
    workspace: str | None
    channel: str
    topic: str
    start: str  # ISO date or date-time, as the user gave it
    due: dt.date
    note: str | None
    created_by: str | None
    created_at: dt.datetime
    status: Literal["active", "paused"] = "active"
    paused_reason: str | None = None
    paused_at: dt.datetime | None = None

    @property
    def ref(self) -> str:
        """The id people type (``/china-filing cancel D12``)."""
        return f"D{self.id}"


@dataclass(frozen=True)
class Subscription:
    id: int
    platform: str
    workspace: str | None
    channel: str
    topic: str  # a topic id, or "all"
    created_by: str | None
    created_at: dt.datetime
    status: Literal["active", "paused"] = "active"
    paused_reason: str | None = None
    paused_at: dt.datetime | None = None
    materialised_until: dt.datetime | None = None

    @property
    def ref(self) -> str:
        return f"S{self.id}"


@dataclass(frozen=True)
class NewPost:
    """A post to schedule; ``key`` makes scheduling it twice a no-op."""

    key: str
    due_at: dt.datetime
    expires_at: dt.datetime
    payload: dict[str, Any]
    status: PostStatus = "pending"  # "skipped" for reminder times already past when tracking starts


@dataclass(frozen=True)
class ScheduledPost:
    id: int
    key: str
    platform: str
    workspace: str | None
    channel: str
    kind: PostKind
    deadline_id: int | None
    subscription_id: int | None
    due_at: dt.datetime
    expires_at: dt.datetime
    payload: dict[str, Any]
    status: PostStatus
    lease_until: dt.datetime | None
    claim_token: str | None
    attempts: int
    late: bool
    posted_ref: str | None
    posted_at: dt.datetime | None
    last_error: str | None
    created_at: dt.datetime
    claimed_at: dt.datetime | None = None  # when the current (or last) claim began
    # Earlier tries that may have reached the platform unanswered (a crash, a timeout, a 5xx): the window
    # to look in before posting again. None: every earlier try certainly failed, or there was none.
    unconfirmed_since: dt.datetime | None = None
    unconfirmed_until: dt.datetime | None = None

    @property
    def unconfirmed(self) -> tuple[dt.datetime, dt.datetime] | None:
        if self.unconfirmed_since is None:
            return None
        return self.unconfirmed_since, self.unconfirmed_until or self.unconfirmed_since


@dataclass(frozen=True)
class PausedItem:
    """A deadline or subscription whose posts stopped because delivery failed (for the App Home)."""

    kind: Literal["deadline", "subscription"]
    id: int
    ref: str
    platform: str
    workspace: str | None
    channel: str
    topic: str
    reason: str | None
    paused_at: dt.datetime | None


@dataclass(frozen=True)
class ExpiredSummary:
    """What :meth:`Store.expire_overdue` did."""

    expired: int


# ------------------------------------------------------------------------------------ conversions


def _ts(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:  # we only ever write UTC; a naive value is one
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _day(value: Any) -> dt.date:
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    if isinstance(value, dt.datetime):
        return value.date()
    return value


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamps must be timezone-aware, got {value!r}")
    return value.astimezone(dt.UTC)


def _feedback(r: Mapping[str, Any]) -> Feedback:
    return Feedback(
        platform=r["platform"], workspace=r["workspace"], channel=r["channel"], user=r["user_id"],
        message_ref=r["message_ref"], topic=r["topic"], vote=r["vote"], question=r["question"],
        created_at=_ts(r["created_at"]),
    )


def _deadline(r: Mapping[str, Any]) -> TrackedDeadline:
    return TrackedDeadline(
        id=int(r["id"]), platform=r["platform"], workspace=r["workspace"], channel=r["channel"], topic=r["topic"],
        start=r["start_value"], due=_day(r["due_date"]), note=r["note"], created_by=r["created_by"],
        created_at=_ts(r["created_at"]), status=r["status"], paused_reason=r["paused_reason"],
        paused_at=_ts(r["paused_at"]),
    )


def _subscription(r: Mapping[str, Any]) -> Subscription:
    return Subscription(
        id=int(r["id"]), platform=r["platform"], workspace=r["workspace"], channel=r["channel"], topic=r["topic"],
        created_by=r["created_by"], created_at=_ts(r["created_at"]), status=r["status"],
        paused_reason=r["paused_reason"], paused_at=_ts(r["paused_at"]),
        materialised_until=_ts(r["materialised_until"]),
    )


def _post(r: Mapping[str, Any]) -> ScheduledPost:
    return ScheduledPost(
        id=int(r["id"]), key=r["key"], platform=r["platform"], workspace=r["workspace"], channel=r["channel"],
        kind=r["kind"], deadline_id=r["deadline_id"], subscription_id=r["subscription_id"],
        due_at=_ts(r["due_at"]), expires_at=_ts(r["expires_at"]), payload=_json(r["payload"]) or {},
        status=r["status"], lease_until=_ts(r["lease_until"]), claim_token=r["claim_token"],
        attempts=int(r["attempts"]), late=bool(r["late"]), posted_ref=r["posted_ref"],
        posted_at=_ts(r["posted_at"]), last_error=r["last_error"], created_at=_ts(r["created_at"]),
        claimed_at=_ts(r["claimed_at"]), unconfirmed_since=_ts(r["unconfirmed_since"]),
        unconfirmed_until=_ts(r["unconfirmed_until"]),
    )


# What a claim sets besides status, lease and token (both backends' claim_due): the claim's start ($4), and,
# when the row was still ``claimed`` (its lease ran out: the process died or stalled mid-delivery), that
# try's window as "may have posted" (from its claim, or its due time for rows claimed before 0002, to its
# lease end). SET expressions read the row as it was before the update.
CLAIM_SET = (
    "claimed_at = $4, "
    "unconfirmed_since = CASE WHEN status = 'claimed' THEN COALESCE(unconfirmed_since, claimed_at, due_at) "
    "ELSE unconfirmed_since END, "
    "unconfirmed_until = CASE WHEN status = 'claimed' THEN lease_until ELSE unconfirmed_until END"
)


def _post_order(p: ScheduledPost) -> tuple[dt.datetime, int]:
    return (p.due_at, p.id)


# ---------------------------------------------------------------------------------- the interface


class Conn(Protocol):
    """The few calls the shared SQL needs from a backend connection (inside a transaction)."""

    async def fetch(self, sql: str, *args: Any) -> list[Mapping[str, Any]]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Mapping[str, Any] | None: ...
    async def execute(self, sql: str, *args: Any) -> int: ...  # rows affected


_NO_KEY = ("the stored Slack installations are encrypted but TOKEN_ENCRYPTION_KEY is not set: set it to the key "
           "(or keys) they were encrypted with")
_WRONG_KEY = ("the stored Slack installations cannot be decrypted with TOKEN_ENCRYPTION_KEY: list the key they were "
              "encrypted with after the new one (comma-separated) until start-up has re-encrypted them")


class Store(abc.ABC):
    """Everything China Desk keeps: async, backend-neutral. Construct with :func:`open_store`.

    Methods take and return aware UTC datetimes and dataclasses. Each method is one transaction.
    """

    url: str
    cipher: TokenCipher | None = None  # OAuth installations encrypted at rest (TOKEN_ENCRYPTION_KEY)

    # ---- lifecycle (backend-specific)

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending schema migrations (idempotent; safe for concurrent replicas)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the database answers (for health checks); never raises."""

    @abc.abstractmethod
    def _tx(self) -> Any:
        """``async with self._tx() as conn``: one transaction on one connection."""

    # Set by each backend: which migrations folder it reads, and its DDL for the versions table.
    _backend: Literal["sqlite", "postgres"]
    _migrations_table: str

    async def _lock_migrations(self, conn: Conn) -> None:  # noqa: B027 (optional hook, not abstract)
        """Serialise concurrent start-ups; a no-op where transactions are already exclusive (SQLite)."""

    async def _migrate(self) -> None:
        """Apply every migration not yet recorded, in one transaction, each exactly once."""
        async with self._tx() as c:
            await self._lock_migrations(c)
            await c.execute(self._migrations_table)
            done = {int(r["version"]) for r in await c.fetch("SELECT version FROM schema_migrations")}
            for m in load_migrations(self._backend):
                if m.version in done:
                    continue
                for statement in split_sql(m.sql):
                    await c.execute(statement)
                await c.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    m.version, m.name, utcnow(),
                )
        await self._reseal_installations()  # (start-up's other duty to the stored data)

    @abc.abstractmethod
    async def claim_due(
        self, now: dt.datetime, *, limit: int = 500, lease_seconds: int = 300,
        platforms: Sequence[str] | None = None,
    ) -> list[ScheduledPost]:
        """Claim up to ``limit`` due posts (pending, or claimed with an expired lease) for this caller.

        Each returned row has a fresh ``claim_token``; concurrent callers never receive the same row.
        Rows whose ``expires_at`` has passed are not returned (see :meth:`expire_overdue`).
        ``platforms``: only posts for these (a process without a Teams deliverer leaves Teams posts).
        """

    async def schema_version(self) -> int:
        """The highest migration applied (tests and operators check upgrades with it)."""
        async with self._tx() as c:
            row = await c.fetchrow("SELECT MAX(version) AS v FROM schema_migrations")
        return int(row["v"] or 0)

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- at-most-once processing of platform events

    async def claim_once(self, key: str, ttl_seconds: int = 86400, *, now: dt.datetime | None = None) -> bool:
        """True only for the first caller with ``key`` within ``ttl_seconds`` (retried deliveries)."""
        now = _aware(now or utcnow())
        expires = now + dt.timedelta(seconds=ttl_seconds)
        async with self._tx() as c:
            row = await c.fetchrow(
                "INSERT INTO processed_events (key, expires_at) VALUES ($1, $2) "
                "ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, result = NULL "
                "WHERE processed_events.expires_at <= $3 RETURNING key",
                key, expires, now,
            )
        return row is not None

    async def save_claim_result(self, key: str, result: dict[str, Any]) -> None:
        """Keep what the first holder of a :meth:`claim_once` key produced (a command's reply)."""
        async with self._tx() as c:
            await c.execute("UPDATE processed_events SET result = $2 WHERE key = $1", key, self._dump(result))

    async def claim_result(self, key: str) -> dict[str, Any] | None:
        """What the holder of ``key`` saved; None while it is still at work (or saved nothing)."""
        async with self._tx() as c:
            row = await c.fetchrow("SELECT result FROM processed_events WHERE key = $1", key)
        return None if row is None or row["result"] is None else _json(row["result"])

    async def forget_claim(self, key: str) -> None:
        """Give a claim back (its work failed and changed nothing): the next caller with ``key`` runs it."""
        async with self._tx() as c:
            await c.execute("DELETE FROM processed_events WHERE key = $1", key)

    async def purge_expired(
        self, now: dt.datetime | None = None, *, batch: int = 5000, max_batches: int = 20,
        post_retention: dt.timedelta = POST_RETENTION, deadline_retention: dt.timedelta = DEADLINE_RETENTION,
    ) -> dict[str, int]:
        """Forget every row whose time is up; returns the rows deleted per table. The scheduler runs it.

        * ``processed_events``: past ``expires_at`` (Slack events and command results after a day,
          feedback votes after a year). First: every Slack event adds a row, channel chatter included.
        * ``oauth_states``: past ``expires_at`` (10 minutes after an install began).
        * ``qa_context``: past ``expires_at`` (a conversation's context, 24 hours after its last turn).
        * ``scheduled_posts`` that are done (posted, expired, failed, skipped), ``post_retention`` after
          their deadline or event.
        * ``tracked_deadlines`` ``deadline_retention`` after their due day, with their posts.

        In batches of ``batch`` rows, each its own short transaction (no long lock on a busy table), at
        most ``max_batches`` per table per call: a backlog is worked off over the following runs.
        """
        now = _aware(now or utcnow())
        posts_before, deadlines_before = now - post_retention, (now - deadline_retention).date()
        work: list[tuple[str, str, tuple[Any, ...]]] = [
            ("processed_events", "DELETE FROM processed_events WHERE key IN "
             "(SELECT key FROM processed_events WHERE expires_at <= $1 LIMIT $2)", (now,)),
            ("oauth_states", "DELETE FROM oauth_states WHERE state IN "
             "(SELECT state FROM oauth_states WHERE expires_at <= $1 LIMIT $2)", (now,)),
            ("qa_context", "DELETE FROM qa_context WHERE (platform, thread) IN "
             "(SELECT platform, thread FROM qa_context WHERE expires_at <= $1 LIMIT $2)", (now,)),
        ]
        work += [  # one index range (status, due_at) per finished status; due_at <= expires_at always
            ("scheduled_posts", "DELETE FROM scheduled_posts WHERE id IN (SELECT id FROM scheduled_posts "
             "WHERE status = $3 AND due_at <= $1 AND expires_at <= $1 LIMIT $2)", (posts_before, status))
            for status in ("posted", "expired", "failed", "skipped")
        ]
        work.append(("tracked_deadlines", "DELETE FROM tracked_deadlines WHERE id IN "
                     "(SELECT id FROM tracked_deadlines WHERE due_date < $1 LIMIT $2)", (deadlines_before,)))
        deleted: dict[str, int] = {}
        for table, sql, (first, *rest) in work:
            for _ in range(max_batches):
                async with self._tx() as c:  # ON DELETE CASCADE takes a deadline's posts with it
                    n = await c.execute(sql, first, batch, *rest)
                deleted[table] = deleted.get(table, 0) + n
                if n < batch:
                    break
        return deleted

    # ---- channel Q&A conversation context (handlers/qa/context.py)

    async def load_qa_context(self, platform: str, thread: str, now: dt.datetime) -> dict | None:
        """What the conversation ``thread`` was last about, unless that has expired."""
        async with self._tx() as c:
            row = await c.fetchrow(
                "SELECT data FROM qa_context WHERE platform = $1 AND thread = $2 AND expires_at > $3",
                platform, thread, _aware(now),
            )
        return None if row is None else _json(row["data"])

    async def save_qa_context(
        self, platform: str, thread: str, workspace: str | None, data: dict, expires_at: dt.datetime,
    ) -> None:
        """Keep a conversation's context until ``expires_at``; expired contexts go in the same transaction."""
        expires_at = _aware(expires_at)
        async with self._tx() as c:
            await c.execute(
                "INSERT INTO qa_context (platform, thread, workspace, data, expires_at) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (platform, thread) DO UPDATE SET workspace = excluded.workspace, data = excluded.data, "
                "expires_at = excluded.expires_at",
                platform, thread, workspace, self._dump(data), expires_at,
            )
            await c.execute("DELETE FROM qa_context WHERE expires_at <= $1", utcnow())

    # ---- feedback

    async def record_feedback(self, fb: Feedback) -> None:
        async with self._tx() as c:
            await c.execute(
                "INSERT INTO feedback (platform, workspace, channel, user_id, message_ref, topic, vote, question, "
                "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                fb.platform, fb.workspace, fb.channel, fb.user, fb.message_ref, fb.topic, fb.vote, fb.question,
                _aware(fb.created_at),
            )

    async def list_feedback(self, platform: str | None = None) -> list[Feedback]:
        async with self._tx() as c:
            rows = await c.fetch(
                "SELECT * FROM feedback WHERE ($1::text IS NULL OR platform = $1) ORDER BY created_at, id", platform,
            )
        return [_feedback(r) for r in rows]

    # ---- OAuth installations and state

    async def save_installation(self, platform: str, workspace: str, data: dict) -> None:
        """Store a workspace's installation (its bot token inside): encrypted when a key is configured."""
        if self.cipher is not None:
            data = self.cipher.seal(data)
        async with self._tx() as c:
            await c.execute(
                "INSERT INTO installations (platform, workspace, data, updated_at) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (platform, workspace) DO UPDATE SET data = excluded.data, "
                "updated_at = excluded.updated_at",
                platform, workspace, self._dump(data), utcnow(),
            )

    async def find_installation(self, platform: str, workspace: str) -> dict | None:
        async with self._tx() as c:
            row = await c.fetchrow(
                "SELECT data FROM installations WHERE platform = $1 AND workspace = $2", platform, workspace,
            )
        return None if row is None else self._unseal(_json(row["data"]))

    def _unseal(self, data: Any) -> Any:
        from bot.token_cipher import InvalidToken, is_sealed

        if not is_sealed(data):
            return data
        if self.cipher is None:
            raise StoreError(_NO_KEY)
        try:
            return self.cipher.unseal(data)
        except InvalidToken:
            raise StoreError(_WRONG_KEY) from None

    async def _reseal_installations(self) -> None:
        """At start-up: every stored installation encrypted with the first key (plain rows from before a key
        was set, rows under a key being retired); refuse to start when they cannot be read."""
        from bot.token_cipher import InvalidToken, is_sealed

        async with self._tx() as c:
            rows = await c.fetch("SELECT platform, workspace, data FROM installations")
            for r in rows:
                data = _json(r["data"])
                if self.cipher is None:
                    if is_sealed(data):
                        raise StoreError(_NO_KEY)
                    continue
                if self.cipher.is_current(data):
                    continue
                try:
                    sealed = self.cipher.reseal(data)
                except InvalidToken:
                    raise StoreError(_WRONG_KEY) from None
                await c.execute("UPDATE installations SET data = $3 WHERE platform = $1 AND workspace = $2",
                                r["platform"], r["workspace"], self._dump(sealed))

    async def delete_installation(self, platform: str, workspace: str) -> None:
        async with self._tx() as c:
            await c.execute("DELETE FROM installations WHERE platform = $1 AND workspace = $2", platform, workspace)

    async def issue_oauth_state(self, state: str, expires_at: dt.datetime) -> None:
        async with self._tx() as c:
            await c.execute(
                "INSERT INTO oauth_states (state, expires_at) VALUES ($1, $2) "
                "ON CONFLICT (state) DO UPDATE SET expires_at = excluded.expires_at",
                state, _aware(expires_at),
            )

    async def consume_oauth_state(self, state: str, now: dt.datetime) -> bool:
        """True once per issued state, and only before it expires (the row goes either way)."""
        async with self._tx() as c:
            row = await c.fetchrow("DELETE FROM oauth_states WHERE state = $1 RETURNING expires_at", state)
        return row is not None and _ts(row["expires_at"]) > _aware(now)

    # ---- Teams conversation references

    async def save_conversation(
        self, platform: str, conversation_id: str, workspace: str | None, reference: dict,
    ) -> None:
        async with self._tx() as c:
            await c.execute(
                "INSERT INTO conversations (platform, conversation_id, workspace, reference, updated_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (platform, conversation_id) DO UPDATE SET "
                "workspace = excluded.workspace, reference = excluded.reference, updated_at = excluded.updated_at",
                platform, conversation_id, workspace, self._dump(reference), utcnow(),
            )

    async def get_conversation(self, platform: str, conversation_id: str) -> dict | None:
        async with self._tx() as c:
            row = await c.fetchrow(
                "SELECT reference FROM conversations WHERE platform = $1 AND conversation_id = $2",
                platform, conversation_id,
            )
        return None if row is None else _json(row["reference"])

    async def delete_conversation(self, platform: str, conversation_id: str) -> None:
        async with self._tx() as c:
            await c.execute(
                "DELETE FROM conversations WHERE platform = $1 AND conversation_id = $2", platform, conversation_id,
            )

    # ---- uninstall

    async def delete_workspace(self, platform: str, workspace: str) -> None:
        """Forget everything of one workspace/tenant (uninstall, app removal, data-deletion request)."""
        async with self._tx() as c:
            # Posts first: they reference deadlines/subscriptions, and some may carry the workspace only.
            for table in (
                "scheduled_posts", "tracked_deadlines", "subscriptions", "channel_settings", "conversations",
                "installations", "feedback", "qa_context",
            ):
                await c.execute(f"DELETE FROM {table} WHERE platform = $1 AND workspace = $2", platform, workspace)

    # ---- channel settings

    async def get_channel_settings(self, platform: str, channel: str) -> ChannelSettings:
        async with self._tx() as c:
            row = await c.fetchrow(
                "SELECT * FROM channel_settings WHERE platform = $1 AND channel = $2", platform, channel,
            )
        if row is None:
            return ChannelSettings(platform=platform, channel=channel)
        return ChannelSettings(
            platform=platform, channel=channel, workspace=row["workspace"], timezone=row["timezone"],
            watch=bool(row["watch"]), language=row["language"] or "auto",
        )

    async def set_channel_timezone(self, platform: str, workspace: str | None, channel: str, tz: str) -> None:
        await self._set_channel_setting(platform, workspace, channel, "timezone", tz)

    async def set_channel_language(self, platform: str, workspace: str | None, channel: str, language: str) -> None:
        await self._set_channel_setting(platform, workspace, channel, "language", language)

    async def set_channel_watch(self, platform: str, workspace: str | None, channel: str, on: bool) -> None:
        await self._set_channel_setting(platform, workspace, channel, "watch", bool(on))

    async def _set_channel_setting(
        self, platform: str, workspace: str | None, channel: str, column: Literal["timezone", "language", "watch"],
        value: str | bool,
    ) -> None:
        """Upsert one setting of a channel, leaving its others as they are."""
        assert column in ("timezone", "language", "watch")  # a column name, never user text
        async with self._tx() as c:
            await c.execute(
                f"INSERT INTO channel_settings (platform, channel, workspace, {column}, updated_at) "
                f"VALUES ($1, $2, $3, $4, $5) ON CONFLICT (platform, channel) DO UPDATE SET "
                f"{column} = excluded.{column}, workspace = COALESCE(excluded.workspace, channel_settings.workspace), "
                "updated_at = excluded.updated_at",
                platform, channel, workspace, value, utcnow(),
            )

    async def watched_channels(self, platform: str, workspace: str | None = None) -> list[ChannelSettings]:
        async with self._tx() as c:
            rows = await c.fetch(
                "SELECT * FROM channel_settings WHERE platform = $1 AND watch = $2 "
                "AND ($3::text IS NULL OR workspace = $3) ORDER BY channel",
                platform, True, workspace,
            )
        return [
            ChannelSettings(platform=r["platform"], channel=r["channel"], workspace=r["workspace"],
                            timezone=r["timezone"], watch=True, language=r["language"] or "auto")
            for r in rows
        ]

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

    # ---- helpers

    def _dump(self, value: Any) -> Any:
        """How a JSON value is passed to the driver (text for SQLite; PostgreSQL overrides)."""
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


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


# ------------------------------------------------------------------------------------- migrations


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def load_migrations(backend: Literal["sqlite", "postgres"]) -> list[Migration]:
    """The migration files of one backend, in version order."""
    folder = resources.files("bot.migrations").joinpath(backend)
    out = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            out.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise StoreError(f"duplicate migration versions in bot/migrations/{backend}: {versions}")
    return out


def split_sql(script: str) -> list[str]:
    """Statements of a migration file (``;`` at line ends; no procedural bodies in our migrations)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";").strip()]


# ------------------------------------------------------------------------------------------ SQLite

_PG_CAST = re.compile(r"::[a-z]+")
_PG_PARAM = re.compile(r"\$(\d+)")


def _to_sqlite(sql: str) -> str:
    """The shared SQL in SQLite's dialect: ``$1`` -> ``?1``, casts dropped."""
    return _PG_PARAM.sub(r"?\1", _PG_CAST.sub("", sql))


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _aware(value).isoformat(timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


class _SqliteConn:
    def __init__(self, db: Any) -> None:
        self.db = db

    async def fetch(self, sql: str, *args: Any) -> list[Mapping[str, Any]]:
        async with self.db.execute(_to_sqlite(sql), [_sqlite_value(a) for a in args]) as cur:
            return list(await cur.fetchall())

    async def fetchrow(self, sql: str, *args: Any) -> Mapping[str, Any] | None:
        async with self.db.execute(_to_sqlite(sql), [_sqlite_value(a) for a in args]) as cur:
            # Read every row: with RETURNING, SQLite completes the statement only when stepped to the end.
            rows = await cur.fetchall()
            return rows[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> int:
        async with self.db.execute(_to_sqlite(sql), [_sqlite_value(a) for a in args]) as cur:
            return cur.rowcount


def _create_private(path: str) -> None:
    """Create the database file readable by its owner only (SQLite gives its -wal, -shm and journal files
    the database file's permissions); warn about an existing file that others can read."""
    file = Path(path).expanduser()
    file.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))  # an empty file is an empty database
    except FileExistsError:
        mode = stat.S_IMODE(file.stat().st_mode)
        if mode & 0o077:
            logging.getLogger("chinadesk.store").warning(
                "the database file is readable by other users (mode %o): chmod 600 it", mode, extra={"path": path})


class SqliteStore(Store):
    """The embedded default: one SQLite file (or ``:memory:``), through aiosqlite's worker thread.

    Several processes may share the file: writes take SQLite's write lock up front (``BEGIN IMMEDIATE``)
    and wait for it (busy timeout), so claims are serialised and never overlap.
    """

    BUSY_TIMEOUT_MS = 30_000

    def __init__(self, path: str, url: str | None = None) -> None:
        self.path = path
        self.url = url or f"sqlite:///{path}"
        self._db: Any = None
        # One connection is shared by every coroutine; transactions must not interleave on it.
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        import sqlite3

        import aiosqlite

        if self._db is not None:
            return
        if self.path != ":memory:":
            await asyncio.to_thread(_create_private, self.path)
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None, timeout=self.BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        self._db.row_factory = aiosqlite.Row
        await self._db.execute(f"PRAGMA busy_timeout = {self.BUSY_TIMEOUT_MS}")
        await self._db.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:":
            await self._db.execute("PRAGMA journal_mode = WAL")  # readers don't wait for the writer
            await self._db.execute("PRAGMA synchronous = NORMAL")
        await self._migrate()

    # BEGIN IMMEDIATE (see _tx) takes the write lock first, so two processes starting together apply
    # each migration once: the second waits, then sees the versions already recorded.
    _backend = "sqlite"
    _migrations_table = (
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at TEXT NOT NULL)"
    )

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def ping(self) -> bool:
        if self._db is None:
            return False
        try:
            async with self._lock:
                async with self._db.execute("SELECT 1") as cur:
                    await cur.fetchone()
            return True
        except Exception:
            return False

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        if self._db is None:
            raise StoreError("the store is not open: call `await store.open()` first")
        async with self._lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
            except BaseException:  # cancelled while aiosqlite's thread may still begin it: end it there too
                with contextlib.suppress(Exception):  # (queued after the BEGIN; "no transaction" if none began)
                    await asyncio.shield(self._db.execute("ROLLBACK"))
                raise
            try:
                yield _SqliteConn(self._db)
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            else:
                await self._db.execute("COMMIT")

    async def claim_due(
        self, now: dt.datetime, *, limit: int = 500, lease_seconds: int = 300,
        platforms: Sequence[str] | None = None,
    ) -> list[ScheduledPost]:
        now = _aware(now)
        lease = now + dt.timedelta(seconds=lease_seconds)
        claimed: list[ScheduledPost] = []
        if platforms is not None and not platforms:
            return []
        only = ""
        if platforms is not None:
            only = " AND platform IN (" + ", ".join(f"${i}" for i in range(4, 4 + len(platforms))) + ")"
        async with self._tx() as c:  # BEGIN IMMEDIATE: no other writer until we commit
            rows = []
            for status in ACTIVE_POST_STATUSES:  # one index range per status: cost follows the number due
                rows += await c.fetch(
                    "SELECT id, due_at FROM scheduled_posts WHERE status = $1 AND due_at <= $2 AND expires_at > $2 "
                    f"AND (lease_until IS NULL OR lease_until <= $2){only} ORDER BY due_at, id LIMIT $3",
                    status, now, limit, *(platforms or ()),
                )
            rows.sort(key=lambda r: (r["due_at"], r["id"]))
            token = new_claim_token()
            for r in rows[:limit]:
                row = await c.fetchrow(
                    "UPDATE scheduled_posts SET status = 'claimed', lease_until = $2, claim_token = $3, "
                    f"attempts = attempts + 1, {CLAIM_SET} WHERE id = $1 RETURNING *",
                    r["id"], lease, token, now,
                )
                if row is not None:
                    claimed.append(_post(row))
        return sorted(claimed, key=_post_order)[:limit]


# ------------------------------------------------------------------------------------------ factory


def sqlite_path(database_url: str) -> str:
    """``sqlite:///x.db`` -> ``x.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``; ``:memory:`` kept."""
    rest = database_url.split(":", 1)[1]
    if not rest.startswith("//"):
        raise StoreError(f"a SQLite URL looks like sqlite:///path/to/file.db, not {database_url!r}")
    path = rest[2:]
    if path.startswith("/"):  # sqlite:///x -> "x"; sqlite:////abs/x -> "/abs/x"
        path = path[1:]
    path = path.split("?", 1)[0]
    if not path:
        raise StoreError(f"the SQLite URL {database_url!r} names no file")
    # sqlite:///tmp/x.db is conventionally relative ("tmp/x.db"), but people mean /tmp/x.db; when the
    # relative form's folder does not exist and the absolute one does, take the absolute one.
    if not path.startswith("/") and path != ":memory:":
        rel, absolute = Path(path), Path("/" + path)
        if not rel.parent.exists() and absolute.parent.exists():
            path = str(absolute)
    return path


def open_store(database_url: str, *, token_keys: str | None = None) -> Store:
    """The store a ``DATABASE_URL`` names (not yet opened: ``await store.open()``).

    ``token_keys``: ``TOKEN_ENCRYPTION_KEY``'s value, to encrypt OAuth installations at rest
    (:mod:`bot.token_cipher`); checked by :class:`bot.config.Settings`.
    """
    from bot.token_cipher import TokenCipher

    store = _backend_for(database_url)
    store.cipher = TokenCipher.from_setting(token_keys)
    return store


def _backend_for(database_url: str) -> Store:
    scheme = urlsplit(database_url).scheme.lower()
    if scheme == "sqlite":
        return SqliteStore(sqlite_path(database_url), url=database_url)
    if scheme in ("postgresql", "postgres"):
        from bot.store_postgres import PostgresStore

        query = parse_qs(urlsplit(database_url).query)
        schema = (query.get("schema") or [None])[0]
        return PostgresStore(database_url, schema=schema)
    raise StoreError(
        f"DATABASE_URL must start with sqlite:/// or postgresql://, not {database_url.split(':', 1)[0]!r}"
    )
