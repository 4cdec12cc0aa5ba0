"""The SQLite backend: aiosqlite, one connection whose calls run on its own thread."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import re
import stat
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.store.base import Store
from bot.store.models import (
    ACTIVE_POST_STATUSES,
    CLAIM_SET,
    ChannelSettings,
    Conn,
    ScheduledPost,
    StoreError,
    _aware,
    _post,
    _post_order,
    channel_settings_of,
)
from bot.store.schedule import new_claim_token

if TYPE_CHECKING:
    pass



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

    async def get_channel_settings(self, platform: str, channel: str) -> ChannelSettings:
        # One round trip to aiosqlite's thread (one SELECT, atomic on its own) instead of four (BEGIN
        # IMMEDIATE, SELECT, fetch, COMMIT): each trip waits for a turn of the event loop, which under load
        # is tens of ms, and every other transaction queues behind the lock meanwhile. Same row, same result.
        if self._db is None:
            raise StoreError("the store is not open: call `await store.open()` first")
        async with self._lock:
            rows = await self._db.execute_fetchall(
                "SELECT workspace, timezone, watch, language FROM channel_settings WHERE platform = ? AND channel = ?",
                (platform, channel),
            )
        return channel_settings_of(platform, channel, rows[0] if rows else None)

    async def _channel_settings_rows(self, platform: str, channels: list[str]) -> list[Mapping[str, Any]]:
        if self._db is None:
            raise StoreError("the store is not open: call `await store.open()` first")
        async with self._lock:  # one round trip, as get_channel_settings
            return list(await self._db.execute_fetchall(
                "SELECT channel, workspace, timezone, watch, language FROM channel_settings "
                f"WHERE platform = ? AND channel IN ({', '.join('?' * len(channels))})", (platform, *channels),
            ))

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


