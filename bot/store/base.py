"""The store interface: lifecycle and migrations, event claims, Q&A context, feedback, installations,
conversation references and channel settings; the reminder rows come from :class:`ScheduleRows`."""

from __future__ import annotations

import abc
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from bot.store.migrations import load_migrations, split_sql
from bot.store.models import (
    _NO_KEY,
    _WRONG_KEY,
    CHANNELS_PER_QUERY,
    DEADLINE_RETENTION,
    POST_RETENTION,
    ChannelSettings,
    Conn,
    Feedback,
    ScheduledPost,
    StoreError,
    UnansweredQuestion,
    _aware,
    _feedback,
    _json,
    _ts,
    _unanswered,
    channel_settings_of,
    utcnow,
)
from bot.store.schedule import ScheduleRows

if TYPE_CHECKING:
    from bot.token_cipher import TokenCipher



class Store(ScheduleRows, abc.ABC):
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

    async def _lock_migrations(self, conn: Conn) -> None:
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
        * ``unanswered_questions``: past ``expires_at`` (``UNANSWERED_RETENTION_DAYS`` after being asked).
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
            ("unanswered_questions", "DELETE FROM unanswered_questions WHERE id IN "
             "(SELECT id FROM unanswered_questions WHERE expires_at <= $1 LIMIT $2)", (now,)),
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
                "created_at, fact, reason, reason_text) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                fb.platform, fb.workspace, fb.channel, fb.user, fb.message_ref, fb.topic, fb.vote, fb.question,
                _aware(fb.created_at), fb.fact, fb.reason, fb.reason_text,
            )

    async def record_feedback_reason(
        self, platform: str, message_ref: str, user: str | None, reason: str | None, text: str | None,
        *, now: dt.datetime | None = None,
    ) -> bool:
        """Why a person's 👎 on ``message_ref`` was given (Slack's modal, Teams' card: the same call).

        ``reason``/``text`` as :func:`handlers.feedback.check_reason` leaves them (an unknown reason raises
        ``ValueError`` and changes nothing). False when that person has no 👎 on that message (nothing stored).
        """
        from handlers.feedback import check_reason

        reason, text = check_reason(reason, text)
        async with self._tx() as c:
            n = await c.execute(
                "UPDATE feedback SET reason = $4, reason_text = $5, reason_at = $6 WHERE id IN (SELECT id FROM "
                "feedback WHERE platform = $1 AND message_ref = $2 AND user_id = $3 AND vote = 'down' "
                "ORDER BY created_at DESC, id DESC LIMIT 1)",
                platform, message_ref, user, reason, text, _aware(now or utcnow()),
            )
        return n > 0

    async def list_feedback(
        self, platform: str | None = None, *, workspace: str | None = None, since: dt.date | None = None,
    ) -> list[Feedback]:
        """Votes, oldest first; ``since``: from that UTC day on."""
        start = dt.datetime.combine(since or dt.date(1970, 1, 1), dt.time(), dt.UTC)
        async with self._tx() as c:
            rows = await c.fetch(
                "SELECT * FROM feedback WHERE ($1::text IS NULL OR platform = $1) AND "
                "($2::text IS NULL OR workspace = $2) AND created_at >= $3 ORDER BY created_at, id",
                platform, workspace, start,
            )
        return [_feedback(r) for r in rows]

    # ---- questions answered "no answer" (handlers.feedback.record_unanswered)

    async def record_unanswered(self, row: UnansweredQuestion) -> None:
        async with self._tx() as c:
            await c.execute(
                "INSERT INTO unanswered_questions (platform, workspace, topic, question, language, created_at, "
                "expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                row.platform, row.workspace, row.topic, row.question, row.language, _aware(row.created_at),
                _aware(row.expires_at),
            )

    async def list_unanswered(
        self, platform: str | None = None, *, workspace: str | None = None, since: dt.date | None = None,
    ) -> list[UnansweredQuestion]:
        """Unanswered questions still within their retention, oldest first; ``since``: from that UTC day on."""
        start = dt.datetime.combine(since or dt.date(1970, 1, 1), dt.time(), dt.UTC)
        async with self._tx() as c:
            rows = await c.fetch(
                "SELECT * FROM unanswered_questions WHERE ($1::text IS NULL OR platform = $1) AND "
                "($2::text IS NULL OR workspace = $2) AND created_at >= $3 ORDER BY created_at, id",
                platform, workspace, start,
            )
        return [_unanswered(r) for r in rows]

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
                "installations", "feedback", "qa_context", "unanswered_questions",
            ):
                await c.execute(f"DELETE FROM {table} WHERE platform = $1 AND workspace = $2", platform, workspace)

    # ---- channel settings

    async def get_channel_settings(self, platform: str, channel: str) -> ChannelSettings:
        async with self._tx() as c:
            row = await c.fetchrow(
                "SELECT * FROM channel_settings WHERE platform = $1 AND channel = $2", platform, channel,
            )
        return channel_settings_of(platform, channel, row)

    async def get_channel_settings_many(self, platform: str, channels: Sequence[str]) -> dict[str, ChannelSettings]:
        """Several channels' settings in one query: the settings cache refreshes the channels in use together,
        instead of one round trip per channel queueing on the database under load."""
        wanted = list(dict.fromkeys(channels))
        found: dict[str, Any] = {}
        for at in range(0, len(wanted), CHANNELS_PER_QUERY):
            rows = await self._channel_settings_rows(platform, wanted[at:at + CHANNELS_PER_QUERY])
            found.update((row["channel"], row) for row in rows)
        return {channel: channel_settings_of(platform, channel, found.get(channel)) for channel in wanted}

    async def _channel_settings_rows(self, platform: str, channels: list[str]) -> list[Mapping[str, Any]]:
        """The channel_settings rows of ``channels`` (at most CHANNELS_PER_QUERY) that exist."""
        marks = ", ".join(f"${n}" for n in range(2, len(channels) + 2))
        async with self._tx() as c:
            return await c.fetch(
                f"SELECT * FROM channel_settings WHERE platform = $1 AND channel IN ({marks})", platform, *channels,
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

    # ---- helpers

    def _dump(self, value: Any) -> Any:
        """How a JSON value is passed to the driver (text for SQLite; PostgreSQL overrides)."""
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


