"""The PostgreSQL backend of :class:`bot.store.Store` (asyncpg, a connection pool).

For deployments with several replicas: migrations run under an advisory lock, so replicas starting
together apply each one once; due posts are claimed with ``FOR UPDATE SKIP LOCKED``, so concurrent
scheduler passes split the due rows between them instead of waiting for or repeating each other.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bot.store.base import Store
from bot.store.models import CLAIM_SET, Conn, ScheduledPost, StoreError, _aware, _post, _post_order
from bot.store.schedule import new_claim_token

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _strip_schema(url: str) -> str:
    """The URL without our own ``schema`` query parameter (asyncpg would pass it to the server)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode(query)))


class _PgConn:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Mapping[str, Any]]:
        return await self.conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Mapping[str, Any] | None:
        return await self.conn.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        status = await self.conn.execute(sql, *args)  # "UPDATE 3", "INSERT 0 1", "DELETE 0"
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0


class PostgresStore(Store):
    def __init__(
        self, url: str, *, schema: str | None = None, min_size: int = 1, max_size: int = 10,
    ) -> None:
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise StoreError(f"schema name {schema!r} must be lower-case letters, digits and _")
        self.url = url
        self.schema = schema
        self._dsn = _strip_schema(url)
        self._min, self._max = min_size, max_size
        self._pool: Any = None

    async def _init_conn(self, conn: Any) -> None:
        # jsonb in and out as Python values, so rows carry dicts, not JSON text.
        for typ in ("jsonb", "json"):
            await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")

    async def open(self) -> None:
        import asyncpg

        if self._pool is not None:
            return
        settings = {"search_path": self.schema} if self.schema else {}
        settings["application_name"] = "chinadesk"
        try:
            if self.schema:
                # The schema must exist before the pool's connections use it as their search_path.
                conn = await asyncpg.connect(self._dsn, timeout=10)
                try:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                except (asyncpg.UniqueViolationError, asyncpg.DuplicateSchemaError):
                    pass  # created concurrently by another replica
                finally:
                    await conn.close()
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=self._min, max_size=self._max, init=self._init_conn,
                server_settings=settings, timeout=10,
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {self._safe_url()}: {exc}") from exc
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    def _safe_url(self) -> str:
        parts = urlsplit(self._dsn)
        host = parts.hostname or "localhost"
        return f"{parts.scheme}://{host}:{parts.port or 5432}{parts.path}"

    _backend = "postgres"
    _migrations_table = (
        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
        "applied_at timestamptz NOT NULL)"
    )

    async def _lock_migrations(self, conn: Conn) -> None:
        # Transaction-scoped advisory lock: a second replica starting now waits here, then finds every
        # version recorded and applies nothing.
        lock_key = zlib.crc32(f"chinadesk-migrations:{self.schema or 'public'}".encode())
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def ping(self) -> bool:
        if self._pool is None:
            return False
        try:
            async with self._pool.acquire(timeout=5) as conn:
                return await conn.fetchval("SELECT 1") == 1
        except Exception:
            return False

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        if self._pool is None:
            raise StoreError("the store is not open: call `await store.open()` first")
        async with self._pool.acquire() as conn, conn.transaction():
            yield _PgConn(conn)

    def _dump(self, value: Any) -> Any:
        return value  # the jsonb codec encodes it

    async def claim_due(
        self, now: dt.datetime, *, limit: int = 500, lease_seconds: int = 300,
        platforms: Sequence[str] | None = None,
    ) -> list[ScheduledPost]:
        now = _aware(now)
        token = new_claim_token()
        # SKIP LOCKED: rows another pass is claiming right now are skipped, not waited for, so N replicas
        # split the due rows. The CTE runs once (a locking CTE is never inlined); a row that another pass
        # claimed and committed meanwhile fails the re-check of the WHERE and is left out, not repeated.
        # Two index ranges (pending, claimed) on (status, due_at): cost follows the number due.
        async with self._tx() as c:
            rows = await c.fetch(
                f"""
                WITH picked AS (
                    SELECT id FROM scheduled_posts
                     WHERE status IN ('pending', 'claimed') AND due_at <= $1 AND expires_at > $1
                       AND (lease_until IS NULL OR lease_until <= $1)
                       AND ($6::text[] IS NULL OR platform = ANY($6::text[]))
                     ORDER BY due_at, id
                     LIMIT $5
                       FOR UPDATE SKIP LOCKED)
                UPDATE scheduled_posts AS p
                   SET status = 'claimed', lease_until = $2, claim_token = $3, attempts = p.attempts + 1,
                       {CLAIM_SET}
                  FROM picked
                 WHERE p.id = picked.id
                RETURNING p.*
                """,
                now, now + dt.timedelta(seconds=lease_seconds), token, now, limit,
                None if platforms is None else list(platforms),
            )
        return sorted((_post(r) for r in rows), key=_post_order)
