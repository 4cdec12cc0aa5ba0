"""The reminder scheduler: one run-due pass over N due posts among M stored ones. Prints figures.

    python bench/bench_scheduler.py                         # PostgreSQL at $TEST_DATABASE_URL (or the default)
    python bench/bench_scheduler.py --sizes 100000:1000     # one configuration (stored:due)
    python bench/bench_scheduler.py --backends postgres sqlite

For each configuration, a fresh schema (PostgreSQL) or file (SQLite) gets M scheduled posts: the due ones
(pending, due in the last ten minutes, spread over 200 channels), half of the rest pending in the next
year, the other half already posted in the past year: what a busy deployment's table holds. Then one
``Scheduler.run_due`` pass is timed (the real scheduler, store and renderer) with two deliverers:

* ``no-op``: an in-process deliverer that accepts every post at once: the cost of the scheduler and the
  database alone;
* ``slack``: the real ``SlackDeliverer`` posting ``chat.postMessage`` over HTTP to a local Slack stand-in
  (``tests/slack_server.py`` in its own process on 127.0.0.1, as Slack is another machine).

The sizes show what the cost follows: 10,000 vs 100,000 stored with the same 1,000 due (should be
about equal) and 1,000 vs 2,000 due among 100,000 (should about double). Each pass is repeated
(``--repeat``) after resetting the due rows; the median is reported. The claim query the store actually
ran is captured and shown with ``EXPLAIN (ANALYZE, BUFFERS)`` (in a rolled-back transaction).

PostgreSQL unreachable: that backend is skipped with a message. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import FakeSlackProcess, machine

from bot.app import build_desk
from bot.config import Settings
from bot.scheduler import DeliveryResult, Scheduler
from bot.slack.delivery import SlackDeliverer
from bot.store import open_store

DEFAULT_PG = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
CHANNELS = 200
COLUMNS = ("key", "platform", "workspace", "channel", "kind", "due_at", "expires_at", "payload", "status",
           "created_at", "posted_at", "posted_ref")


class NoopDeliverer:
    async def deliver(self, item: Any) -> DeliveryResult:
        return DeliveryResult.posted(f"noop:{item.post.id}")


def rows(stored: int, due: int, now: dt.datetime, seed: int = 11) -> list[tuple]:
    rng = random.Random(seed)
    payload = json.dumps({"topic": "facial-recognition", "due": (now + dt.timedelta(days=20)).date().isoformat(),
                          "tz": "Asia/Shanghai", "label": "in 5 working days", "start": "2026-10-20", "offset": 5})
    out = []
    for i in range(stored):
        if i < due:
            status, due_at, posted_at, ref = "pending", now - dt.timedelta(seconds=rng.uniform(1, 600)), None, None
        elif i % 2:
            status, due_at, posted_at, ref = "pending", now + dt.timedelta(hours=rng.uniform(1, 24 * 365)), None, None
        else:
            due_at = now - dt.timedelta(hours=rng.uniform(24, 24 * 365))
            status, posted_at, ref = "posted", due_at, f"{due_at.timestamp():.6f}"
        out.append((f"{'due' if i < due else 'other'}-{i}", "slack", "T0001", f"C{i % CHANNELS:04d}", "deadline",
                    due_at, due_at + dt.timedelta(days=30) if i >= due else now + dt.timedelta(days=30), payload,
                    status, now - dt.timedelta(days=400), posted_at, ref))
    return out


# ------------------------------------------------------------------------------------------- backends


async def pg_reachable(url: str) -> str | None:
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=3)
    except Exception as exc:  # any reason is a reason to skip
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


class Postgres:
    name = "postgres"

    def __init__(self, base: str) -> None:
        self.base = base
        self.schema = f"bench_sched_{secrets.token_hex(4)}"
        sep = "&" if "?" in base else "?"
        self.url = f"{base}{sep}schema={self.schema}"

    async def load(self, data: list[tuple]) -> float:
        import asyncpg

        store = open_store(self.url)
        await store.open()  # creates the schema and runs the migrations
        await store.close()
        conn = await asyncpg.connect(self.base)
        try:
            started = time.perf_counter()
            await conn.copy_records_to_table("scheduled_posts", records=data, columns=COLUMNS,
                                             schema_name=self.schema)
            await conn.execute(f'ANALYZE "{self.schema}".scheduled_posts')
            return time.perf_counter() - started
        finally:
            await conn.close()

    async def reset_due(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.base)
        try:
            await conn.execute(
                f'UPDATE "{self.schema}".scheduled_posts SET status = \'pending\', lease_until = NULL, '
                "claim_token = NULL, attempts = 0, posted_ref = NULL, posted_at = NULL, late = false "
                "WHERE key LIKE 'due-%'")
            await conn.execute(f'VACUUM ANALYZE "{self.schema}".scheduled_posts')
        finally:
            await conn.close()

    async def explain(self, sql: str, args: tuple) -> str:
        import asyncpg

        conn = await asyncpg.connect(self.base, server_settings={"search_path": self.schema})
        try:
            tx = conn.transaction()
            await tx.start()
            try:
                plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, *args)
            finally:
                await tx.rollback()
            return "\n".join(r[0] for r in plan)
        finally:
            await conn.close()

    async def drop(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.base)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            await conn.close()


class Sqlite:
    name = "sqlite"

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-sched-")
        self.path = Path(self.tmp.name) / "sched.sqlite3"
        self.url = f"sqlite:///{self.path}"

    async def load(self, data: list[tuple]) -> float:
        import sqlite3

        store = open_store(self.url)
        await store.open()
        await store.close()
        started = time.perf_counter()
        db = sqlite3.connect(self.path)
        try:
            def value(v: Any) -> Any:
                return v.isoformat(timespec="microseconds") if isinstance(v, dt.datetime) else v

            db.executemany(f"INSERT INTO scheduled_posts ({', '.join(COLUMNS)}) VALUES "
                           f"({', '.join('?' for _ in COLUMNS)})", ([value(v) for v in row] for row in data))
            db.commit()
            db.execute("ANALYZE")
            db.commit()
        finally:
            db.close()
        return time.perf_counter() - started

    async def reset_due(self) -> None:
        import sqlite3

        db = sqlite3.connect(self.path)
        try:
            db.execute("UPDATE scheduled_posts SET status = 'pending', lease_until = NULL, claim_token = NULL, "
                       "attempts = 0, posted_ref = NULL, posted_at = NULL, late = 0 WHERE key LIKE 'due-%'")
            db.commit()
        finally:
            db.close()

    async def explain(self, sql: str, args: tuple) -> str:
        import sqlite3

        from bot.store.sqlite import _sqlite_value, _to_sqlite

        db = sqlite3.connect(self.path)
        try:
            plan = db.execute("EXPLAIN QUERY PLAN " + _to_sqlite(sql), [_sqlite_value(a) for a in args]).fetchall()
            return "\n".join(str(r[-1]) for r in plan)
        finally:
            db.close()

    async def drop(self) -> None:
        self.tmp.cleanup()


# ------------------------------------------------------------------------------------------ one pass


class ClaimCapture:
    """Records the SQL of the store's claim query (the first fetch that mentions ``scheduled_posts``
    with a lease), so that the plan shown is the one the store really ran."""

    def __init__(self) -> None:
        self.sql: str | None = None
        self.args: tuple = ()

    def install(self) -> None:
        from bot.store import sqlite as store_sqlite

        targets = [store_sqlite._SqliteConn]
        try:
            from bot.store import postgres as store_postgres

            targets.append(store_postgres._PgConn)
        except ImportError:
            pass
        capture = self
        for cls in targets:
            original = cls.fetch
            if getattr(original, "_captured", False):
                continue

            async def fetch(self: Any, sql: str, *args: Any, _original: Any = original) -> Any:
                if capture.sql is None and "scheduled_posts" in sql and "lease_until" in sql and "due_at <=" in sql:
                    capture.sql, capture.args = sql, args
                return await _original(self, sql, *args)

            fetch._captured = True  # type: ignore[attr-defined]
            cls.fetch = fetch  # type: ignore[method-assign]


async def one_pass(url: str, desk: Any, deliverer: Any, now: dt.datetime) -> tuple[float, Any]:
    store = open_store(url)
    await store.open()
    try:
        if isinstance(deliverer, SlackDeliverer):
            deliverer.store = store
        # The pass alone: the purge runs every 15 minutes, not every pass, and is timed on its own.
        scheduler = Scheduler(store, desk, {"slack": deliverer}, purge_every=None)
        started = time.perf_counter()
        report = await scheduler.run_due(now)
        return time.perf_counter() - started, report
    finally:
        await store.close()


async def one_purge(url: str, now: dt.datetime) -> tuple[float, int]:
    """What the scheduler's purge (every 15 minutes) costs on the loaded table: seconds, rows deleted."""
    store = open_store(url)
    await store.open()
    try:
        started = time.perf_counter()
        deleted = await store.purge_expired(now)
        return time.perf_counter() - started, sum(deleted.values())
    finally:
        await store.close()


async def run_backend(backend: Any, sizes: list[tuple[int, int]], repeat: int, desk: Any, slack: FakeSlackProcess,
                      capture: ClaimCapture) -> list[str]:
    lines = []
    for stored, due in sizes:
        now = dt.datetime.now(dt.UTC)
        try:
            load_s = await backend.load(rows(stored, due, now))
            figures: dict[str, list[float]] = {"no-op": [], "slack": []}
            report = None
            for kind in ("no-op", "slack"):
                for _ in range(repeat):
                    await backend.reset_due()
                    deliverer = NoopDeliverer() if kind == "no-op" else SlackDeliverer(
                        None, default_token=slack.bot_token, api_url=slack.api_url)  # type: ignore[arg-type]
                    seconds, report = await one_pass(backend.url, desk, deliverer, now)
                    assert report.posted == due, report.as_json()
                    figures[kind].append(seconds)
            med = {k: statistics.median(v) for k, v in figures.items()}
            purge_s, purged = await one_purge(backend.url, now)
            line = (f"  {backend.name:<8} stored {stored:>7,}  due {due:>5,}:  pass, no-op deliverer "
                    f"{med['no-op'] * 1000:7.0f} ms ({due / med['no-op']:6.0f} posts/s);  pass, Slack over HTTP "
                    f"{med['slack'] * 1000:7.0f} ms ({due / med['slack']:6.0f} posts/s);  bulk load {load_s:.1f} s"
                    f"  [median of {repeat}; runs {', '.join(f'{s * 1000:.0f}' for s in figures['slack'])} ms]"
                    f";  purge {purged:,} rows {purge_s * 1000:.0f} ms")
            print(line, flush=True)
            lines.append(line)
            if capture.sql and stored == max(s for s, _ in sizes) and due == min(d for s, d in sizes if s == stored):
                await backend.reset_due()
                plan = await backend.explain(capture.sql, capture.args)
                print(f"\n  {backend.name} claim query plan (stored {stored:,}, due {due:,}):")
                print("\n".join("    " + line for line in plan.splitlines()) + "\n", flush=True)
        finally:
            await backend.drop()
            if backend.name == "postgres":
                backend.__init__(backend.base)  # a fresh schema name for the next size
            else:
                backend.__init__()
        capture.sql = None
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["10000:1000", "100000:1000", "100000:2000"],
                        help="stored:due pairs (default 10000:1000 100000:1000 100000:2000)")
    parser.add_argument("--backends", nargs="+", default=["postgres"], choices=["postgres", "sqlite"])
    parser.add_argument("--repeat", type=int, default=3, help="passes per configuration and deliverer (3)")
    parser.add_argument("--database-url", default=DEFAULT_PG, help="PostgreSQL server (default $TEST_DATABASE_URL)")
    args = parser.parse_args()
    sizes = [tuple(int(x) for x in s.split(":")) for s in args.sizes]

    print(f"bench_scheduler: {machine()}")
    print(f"one Scheduler.run_due pass (batches of 200, 8 channels in parallel), {CHANNELS} channels; sizes "
          f"{', '.join(f'{s:,} stored / {d:,} due' for s, d in sizes)}")
    desk = build_desk(Settings.from_env({}))
    slack = FakeSlackProcess()
    capture = ClaimCapture()
    capture.install()
    try:
        for name in args.backends:
            if name == "postgres":
                problem = asyncio.run(pg_reachable(args.database_url))
                if problem:
                    print(f"  postgres: SKIPPED, no PostgreSQL at {args.database_url} ({problem})")
                    continue
                backend: Any = Postgres(args.database_url)
            else:
                backend = Sqlite()
            asyncio.run(run_backend(backend, sizes, args.repeat, desk, slack, capture))
    finally:
        slack.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
