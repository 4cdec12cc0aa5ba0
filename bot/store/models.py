"""What crosses the store's seam: rows as dataclasses, the errors, and the row conversions both backends share."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from handlers.feedback import UnansweredQuestion

if TYPE_CHECKING:
    pass

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
    fact: str | None = None  # the fact the answer led with (handlers.feedback.fact_ref)
    reason: str | None = None  # why not (a 👎 only): handlers.feedback.REASONS
    reason_text: str | None = None  # the person's own words, if any


@dataclass(frozen=True)
class ChannelSettings:
    platform: str
    channel: str
    workspace: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    watch: bool = False
    language: str = "auto"  # "auto", "en" or "zh" (`/china-filing language`)


CHANNELS_PER_QUERY = 500  # get_channel_settings_many: channels a query (SQLite's 999-variable limit)


def channel_settings_of(platform: str, channel: str, row: Mapping[str, Any] | None) -> ChannelSettings:
    """A channel_settings row as ChannelSettings; the defaults when the channel has no row."""
    if row is None:
        return ChannelSettings(platform=platform, channel=channel)
    return ChannelSettings(
        platform=platform, channel=channel, workspace=row["workspace"], timezone=row["timezone"],
        watch=bool(row["watch"]), language=row["language"] or "auto",
    )


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
        created_at=_ts(r["created_at"]), fact=r["fact"], reason=r["reason"], reason_text=r["reason_text"],
    )


def _unanswered(r: Mapping[str, Any]) -> UnansweredQuestion:
    return UnansweredQuestion(
        platform=r["platform"], workspace=r["workspace"], topic=r["topic"], question=r["question"],
        language=r["language"], created_at=_ts(r["created_at"]), expires_at=_ts(r["expires_at"]),
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


