"""Storage: one async interface (:class:`Store`, ``base.py`` + ``schedule.py``), two backends (``sqlite.py``,
``postgres.py``), rows as dataclasses (``models.py``), versioned SQL (``migrations/``).

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

from urllib.parse import parse_qs, urlsplit

from bot.store.base import Store
from bot.store.migrations import Migration, load_migrations, split_sql
from bot.store.models import (
    ACTIVE_POST_STATUSES,
    DEFAULT_TIMEZONE,
    ChannelSettings,
    ExpiredSummary,
    Feedback,
    NewPost,
    PausedItem,
    PostKind,
    PostStatus,
    ScheduledPost,
    StoreError,
    Subscription,
    TrackedDeadline,
    Vote,
    utcnow,
)
from bot.store.sqlite import SqliteStore, sqlite_path

__all__ = [
    "ACTIVE_POST_STATUSES", "DEFAULT_TIMEZONE", "ChannelSettings", "ExpiredSummary", "Feedback", "Migration",
    "NewPost", "PausedItem", "PostKind", "PostStatus", "ScheduledPost", "SqliteStore", "Store", "StoreError",
    "Subscription", "TrackedDeadline", "Vote", "load_migrations", "open_store", "split_sql", "sqlite_path", "utcnow",
]


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
        from bot.store.postgres import PostgresStore

        query = parse_qs(urlsplit(database_url).query)
        schema = (query.get("schema") or [None])[0]
        return PostgresStore(database_url, schema=schema)
    raise StoreError(
        f"DATABASE_URL must start with sqlite:/// or postgresql://, not {database_url.split(':', 1)[0]!r}"
    )
