"""The storage contract, run against every backend: SQLite (memory and file) and PostgreSQL.

The PostgreSQL variant uses a fresh random schema per test (dropped afterwards), so parallel runs and
other test modules never collide; it skips, saying why, when no server answers at TEST_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.store import (
    ChannelSettings,
    Feedback,
    NewPost,
    SqliteStore,
    Store,
    StoreError,
    open_store,
    sqlite_path,
)
from tests.conftest import postgres_url, without_postgres

T0 = dt.datetime(2025, 10, 1, 1, 0, tzinfo=dt.UTC)


async def _pg_reachable(url: str) -> str | None:
    """None when PostgreSQL answers at ``url``, else why not."""
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=3)
    except Exception as exc:  # any reason to skip is reported as such
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


@asynccontextmanager
async def fresh_pg_schema() -> AsyncIterator[str]:
    """A PostgreSQL URL with a fresh schema (``?schema=``), dropped afterwards; skips when unreachable."""
    import asyncpg

    base = postgres_url()
    problem = await _pg_reachable(base)
    if problem:
        without_postgres(base, problem)
    schema = f"t_store_{secrets.token_hex(6)}"
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}schema={schema}"
    finally:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@pytest.fixture
async def pg_schema_url() -> AsyncIterator[str]:
    async with fresh_pg_schema() as url:
        yield url


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgres"])
async def store(request, tmp_path) -> AsyncIterator[Store]:
    async with AsyncExitStack() as stack:
        if request.param == "sqlite-memory":
            url = "sqlite:///:memory:"
        elif request.param == "sqlite-file":
            url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
        else:
            url = await stack.enter_async_context(fresh_pg_schema())
        s = open_store(url)
        await s.open()
        stack.push_async_callback(s.close)
        yield s


def post(key: str, due: dt.datetime, *, expires: dt.datetime | None = None, **payload) -> NewPost:
    return NewPost(key=key, due_at=due, expires_at=expires or due + dt.timedelta(days=30), payload=payload)


# ------------------------------------------------------------------------------------------ basics


async def test_open_is_idempotent_and_versioned(store: Store):
    assert await store.ping()
    v = await store.schema_version()
    assert v >= 1
    await store.open()  # a second open (or a restart) applies nothing new
    assert await store.schema_version() == v


async def test_claim_once(store: Store):
    assert await store.claim_once("slack:Ev1")
    assert not await store.claim_once("slack:Ev1")
    assert await store.claim_once("slack:Ev2")
    # After the TTL the key may be claimed again (and purge forgets it).
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    assert await store.claim_once("slack:Ev1", now=later)
    assert (await store.purge_expired(later + dt.timedelta(days=2)))["processed_events"] >= 1


async def test_a_claim_keeps_its_result_until_it_expires(store: Store):
    assert await store.claim_once("request:slack:abc", 60, now=T0)
    assert await store.claim_result("request:slack:abc") is None  # still at work
    await store.save_claim_result("request:slack:abc", {"reply": {"kind": "reminder", "title": "Subscribed"}})
    assert not await store.claim_once("request:slack:abc", 60, now=T0)
    assert await store.claim_result("request:slack:abc") == {"reply": {"kind": "reminder", "title": "Subscribed"}}
    # Expired: claimed afresh, without the old result.
    assert await store.claim_once("request:slack:abc", 60, now=T0 + dt.timedelta(minutes=2))
    assert await store.claim_result("request:slack:abc") is None
    await store.forget_claim("request:slack:abc")  # given back: the next caller runs it
    assert await store.claim_once("request:slack:abc", 60, now=T0 + dt.timedelta(minutes=2))


async def test_qa_context_is_kept_per_conversation_and_expires(store: Store):
    now = dt.datetime.now(dt.UTC)
    data = {"topic": "mlps", "section": "authority", "filing": None, "trigger": None, "opened_by_question": True}
    await store.save_qa_context("slack", "C1:1700000000.1", "T1", data, now + dt.timedelta(hours=24))
    assert await store.load_qa_context("slack", "C1:1700000000.1", now) == data
    assert await store.load_qa_context("slack", "C1:other", now) is None
    assert await store.load_qa_context("teams", "C1:1700000000.1", now) is None  # per platform
    changed = {**data, "topic": "wechat"}
    await store.save_qa_context("slack", "C1:1700000000.1", "T1", changed, now + dt.timedelta(hours=24))
    assert (await store.load_qa_context("slack", "C1:1700000000.1", now))["topic"] == "wechat"
    # A day later it has expired: not read back, and purged.
    later = now + dt.timedelta(hours=25)
    assert await store.load_qa_context("slack", "C1:1700000000.1", later) is None
    assert (await store.purge_expired(later))["qa_context"] >= 1
    # Uninstalling forgets the workspace's conversations too.
    await store.save_qa_context("slack", "C2:1", "T9", data, now + dt.timedelta(hours=1))
    await store.delete_workspace("slack", "T9")
    assert await store.load_qa_context("slack", "C2:1", now) is None


async def test_claim_once_concurrent_callers_one_winner(store: Store):
    results = await asyncio.gather(*(store.claim_once("teams:act-9") for _ in range(8)))
    assert results.count(True) == 1


async def test_feedback_round_trip(store: Store):
    fb = Feedback(platform="slack", workspace="T1", channel="C1", user="U1", message_ref="123.456",
                  topic="pipia", vote="up", question="what is a PIPIA?", created_at=T0)
    await store.record_feedback(fb)
    await store.record_feedback(Feedback(platform="teams", workspace="tn", channel="19:x", user="u", message_ref=None,
                                         topic=None, vote="down", created_at=T0 + dt.timedelta(minutes=1)))
    assert await store.list_feedback("slack") == [fb]
    assert [f.vote for f in await store.list_feedback()] == ["up", "down"]


async def test_installations_upsert_find_delete(store: Store):
    assert await store.find_installation("slack", "T1") is None
    await store.save_installation("slack", "T1", {"bot_token": "xoxb-1", "nested": {"scopes": ["chat:write"]}})
    await store.save_installation("slack", "T1", {"bot_token": "xoxb-2", "nested": {"scopes": ["chat:write"]}})
    assert await store.find_installation("slack", "T1") == {"bot_token": "xoxb-2",
                                                            "nested": {"scopes": ["chat:write"]}}
    await store.delete_installation("slack", "T1")
    assert await store.find_installation("slack", "T1") is None


async def test_oauth_state_consumed_once_and_expires(store: Store):
    await store.issue_oauth_state("s1", T0 + dt.timedelta(minutes=10))
    assert await store.consume_oauth_state("s1", T0)
    assert not await store.consume_oauth_state("s1", T0)
    await store.issue_oauth_state("s2", T0 + dt.timedelta(minutes=10))
    assert not await store.consume_oauth_state("s2", T0 + dt.timedelta(minutes=11))
    assert not await store.consume_oauth_state("never-issued", T0)


async def test_conversations(store: Store):
    ref = {"conversation": {"id": "19:abc"}, "serviceUrl": "https://smba.example/"}
    await store.save_conversation("teams", "19:abc", "tenant-1", ref)
    assert await store.get_conversation("teams", "19:abc") == ref
    await store.save_conversation("teams", "19:abc", "tenant-1", {**ref, "bot": {"id": "b"}})
    assert (await store.get_conversation("teams", "19:abc"))["bot"] == {"id": "b"}
    await store.delete_conversation("teams", "19:abc")
    assert await store.get_conversation("teams", "19:abc") is None


async def test_channel_settings_defaults_and_updates(store: Store):
    assert await store.get_channel_settings("slack", "C1") == ChannelSettings("slack", "C1")
    await store.set_channel_timezone("slack", "T1", "C1", "Europe/London")
    await store.set_channel_watch("slack", "T1", "C1", True)
    await store.set_channel_watch("slack", "T1", "C2", True)
    await store.set_channel_watch("slack", "T1", "C2", False)
    got = await store.get_channel_settings("slack", "C1")
    assert (got.timezone, got.watch, got.workspace) == ("Europe/London", True, "T1")
    assert [c.channel for c in await store.watched_channels("slack")] == ["C1"]
    assert (await store.get_channel_settings("slack", "C2")).timezone == "Asia/Shanghai"


async def test_several_channels_settings_in_one_read(store: Store):
    await store.set_channel_timezone("slack", "T1", "C1", "Europe/London")
    await store.set_channel_language("slack", "T1", "C3", "zh")
    await store.set_channel_timezone("teams", "T1", "C2", "Europe/Paris")  # another platform's C2: not ours
    got = await store.get_channel_settings_many("slack", ["C1", "C2", "C3", "C1"])
    assert list(got) == ["C1", "C2", "C3"]
    assert got == {c: await store.get_channel_settings("slack", c) for c in ("C1", "C2", "C3")}
    assert (got["C1"].timezone, got["C2"].timezone, got["C3"].language) == ("Europe/London", "Asia/Shanghai", "zh")
    assert await store.get_channel_settings_many("slack", []) == {}
    many = [f"C{n}" for n in range(1, 1201)]  # more than one query's worth
    got = await store.get_channel_settings_many("slack", many)
    assert list(got) == many and got["C1"].timezone == "Europe/London" and got["C1200"].timezone == "Asia/Shanghai"


async def test_channel_language_defaults_to_auto_and_is_kept_per_channel(store: Store):
    assert (await store.get_channel_settings("slack", "C1")).language == "auto"
    await store.set_channel_timezone("slack", "T1", "C1", "Europe/London")
    await store.set_channel_language("slack", "T1", "C1", "zh")
    await store.set_channel_language("slack", "T1", "D7", "en")  # a user's DM is a channel of its own
    await store.set_channel_watch("slack", "T1", "C1", True)
    got = await store.get_channel_settings("slack", "C1")
    assert (got.language, got.timezone, got.watch) == ("zh", "Europe/London", True)  # setters leave the rest
    assert (await store.get_channel_settings("slack", "D7")).language == "en"
    assert [c.language for c in await store.watched_channels("slack")] == ["zh"]
    await store.delete_workspace("slack", "T1")
    assert (await store.get_channel_settings("slack", "C1")).language == "auto"


# ----------------------------------------------------------------------------- deadlines and posts


async def _track(store: Store, channel: str = "C1", workspace: str | None = "T1", n: int = 3, **kw):
    posts = [post(f"{channel}:d:{i}:{secrets.token_hex(3)}", T0 + dt.timedelta(days=i), n=i) for i in range(n)]
    return await store.add_tracked(
        platform="slack", workspace=workspace, channel=channel, topic="facial-recognition", start="2025-09-20",
        due=dt.date(2025, 11, 6), note="board pack", created_by="U1", posts=posts, now=T0, **kw,
    )


async def test_tracked_deadline_round_trip_and_cancel(store: Store):
    d = await _track(store)
    assert d.ref == f"D{d.id}" and d.due == dt.date(2025, 11, 6) and d.note == "board pack"
    assert await store.get_tracked(d.id) == d
    assert await store.list_tracked("slack", channel="C1") == [d]
    assert await store.list_tracked("slack", channel="C9") == []
    posts = await store.list_posts("slack", "C1", deadline_id=d.id)
    assert [p.payload["n"] for p in posts] == [0, 1, 2]
    assert all(p.status == "pending" and p.kind == "deadline" for p in posts)
    assert not await store.delete_tracked("slack", "C2", d.id)  # only from its own channel
    assert await store.delete_tracked("slack", "C1", d.id)
    assert await store.list_tracked("slack") == [] and await store.list_posts("slack") == []


async def test_claim_lease_post_exactly_once(store: Store):
    d = await _track(store)
    now = T0 + dt.timedelta(days=1, minutes=1)
    first = await store.claim_due(now, lease_seconds=60)
    assert [p.payload["n"] for p in first] == [0, 1]  # due ones only, in order
    assert all(p.status == "claimed" and p.claim_token for p in first)
    assert await store.claim_due(now) == []  # leased: nobody else gets them
    assert await store.mark_posted(first[0].id, first[0].claim_token, ref="1700.1", late=False, now=now)
    # The second claim is abandoned (process died). After its lease it is offered again; the posted one never.
    again = await store.claim_due(now + dt.timedelta(seconds=61))
    assert [p.id for p in again] == [first[1].id]
    assert again[0].attempts == 2 and again[0].claim_token != first[1].claim_token
    assert not await store.mark_posted(first[1].id, first[1].claim_token, ref="x", late=False)  # stale claim
    assert await store.mark_posted(again[0].id, again[0].claim_token, ref="1700.2", late=True)
    rest = await store.claim_due(now + dt.timedelta(days=10))
    assert [p.payload["n"] for p in rest] == [2]  # never the posted ones
    posted = await store.list_posts("slack", "C1", status="posted", deadline_id=d.id)
    assert [(p.posted_ref, p.late) for p in posted] == [("1700.1", False), ("1700.2", True)]


async def test_concurrent_claims_never_overlap(store: Store, tmp_path):
    for ch in range(5):
        await _track(store, channel=f"C{ch}", n=20)
    now = T0 + dt.timedelta(days=25)
    batches = await asyncio.gather(*(store.claim_due(now, limit=7) for _ in range(20)))
    ids = [p.id for batch in batches for p in batch]
    assert len(ids) == len(set(ids)) == 100


async def test_retry_and_failure_and_release(store: Store):
    await _track(store, n=1)
    now = T0 + dt.timedelta(minutes=1)
    (p,) = await store.claim_due(now)
    assert await store.mark_retry(p.id, p.claim_token, error="ratelimited", retry_at=now + dt.timedelta(seconds=30))
    assert await store.claim_due(now + dt.timedelta(seconds=10)) == []  # backing off
    (p,) = await store.claim_due(now + dt.timedelta(seconds=31))
    assert await store.release(p.id, p.claim_token)
    (p,) = await store.claim_due(now + dt.timedelta(seconds=32))
    assert await store.mark_failed(p.id, p.claim_token, error="bad payload")
    assert (await store.get_post(p.id)).status == "failed"
    assert await store.claim_due(now + dt.timedelta(days=5)) == []


async def test_expired_posts_are_never_claimed(store: Store):
    d = await store.add_tracked(
        platform="slack", workspace="T1", channel="C1", topic="pipia", start="2025-09-20", due=dt.date(2025, 10, 2),
        note=None, created_by=None, now=T0,
        posts=[post("late-ok", T0, expires=T0 + dt.timedelta(days=2)),
               post("too-late", T0, expires=T0 + dt.timedelta(hours=1))],
    )
    now = T0 + dt.timedelta(hours=2)
    assert (await store.expire_overdue(now)).expired == 1
    claimed = await store.claim_due(now)
    assert [p.key for p in claimed] == [f"d{d.id}:late-ok"]
    assert {p.key: p.status for p in await store.list_posts(deadline_id=d.id)}[f"d{d.id}:too-late"] == "expired"


async def test_reschedule_keeps_posted_and_replaces_pending(store: Store):
    d = await store.add_tracked(
        platform="slack", workspace="T1", channel="C1", topic="pipia", start="2025-09-20", due=dt.date(2025, 11, 6),
        note=None, created_by=None, now=T0, posts=[post("d:a", T0), post("d:b", T0 + dt.timedelta(days=1))],
    )
    (p,) = await store.claim_due(T0)
    await store.mark_posted(p.id, p.claim_token, ref="1", late=False)
    moved = T0 + dt.timedelta(days=1, hours=8)
    n = await store.reschedule_tracked(d.id, [post("d:a", T0 + dt.timedelta(hours=8)), post("d:b", moved)])
    assert n == 1
    rows = {p.key.split(":", 1)[1]: p for p in await store.list_posts(deadline_id=d.id)}
    assert all(p.key.startswith(f"d{d.id}:") for p in rows.values())
    assert rows["d:a"].status == "posted" and rows["d:a"].due_at == T0
    assert rows["d:b"].status == "pending" and rows["d:b"].due_at == moved


# ---------------------------------------------------------------------------------- subscriptions


async def test_subscriptions_unique_materialise_and_refresh(store: Store):
    s, created = await store.add_subscription(platform="slack", workspace="T1", channel="C1", topic="all",
                                              created_by="U1", now=T0)
    assert created and s.ref == f"S{s.id}" and s.materialised_until is None
    again, created = await store.add_subscription(platform="slack", workspace="T1", channel="C1", topic="all",
                                                  created_by="U2")
    assert not created and again.id == s.id
    assert [x.id for x in await store.subscriptions_to_refresh(T0)] == [s.id]
    until = T0 + dt.timedelta(days=400)
    posts = [post("C1:ev:618:2026-06-18:14", T0 + dt.timedelta(days=5)), post("C1:ev:11:2026-11-11:14", until)]
    assert await store.add_subscription_posts(s.id, posts, until) == 2
    assert await store.add_subscription_posts(s.id, posts, until) == 0  # re-materialising never duplicates
    assert await store.subscriptions_to_refresh(T0 + dt.timedelta(days=399)) == []
    assert len(await store.subscriptions_to_refresh(T0 + dt.timedelta(days=401))) == 1
    assert [x.topic for x in await store.list_subscriptions("slack", channel="C1")] == ["all"]
    assert await store.delete_subscription("slack", "C1", s.id)
    assert await store.list_subscriptions("slack") == [] and await store.list_posts() == []


async def test_pause_and_resume(store: Store):
    d = await _track(store, n=3)
    s, _ = await store.add_subscription(platform="slack", workspace="T1", channel="C1", topic="pipia",
                                        created_by=None, now=T0)
    await store.add_subscription_posts(s.id, [post("ev1", T0)], T0 + dt.timedelta(days=400))
    claimed = await store.claim_due(T0 + dt.timedelta(minutes=1))
    dpost = next(p for p in claimed if p.deadline_id == d.id)
    await store.pause_for_post(dpost, reason="channel_not_found")
    paused = await store.list_paused("slack", "T1")
    assert [(i.kind, i.ref, i.reason) for i in paused] == [("deadline", d.ref, "channel_not_found")]
    assert {p.status for p in await store.list_posts(deadline_id=d.id)} == {"paused"}
    # Nothing of a paused deadline is claimed, even when due.
    later = await store.claim_due(T0 + dt.timedelta(days=5))
    assert all(p.deadline_id != d.id for p in later)
    assert await store.resume("deadline", d.id)
    assert await store.list_paused("slack") == []
    assert len(await store.claim_due(T0 + dt.timedelta(days=5))) == 3


async def test_delete_workspace_forgets_everything(store: Store):
    await _track(store, channel="C1", workspace="T1")
    await _track(store, channel="C2", workspace="T2")
    await store.add_subscription(platform="slack", workspace="T1", channel="C1", topic="all", created_by=None)
    await store.save_installation("slack", "T1", {"bot_token": "x"})
    await store.save_installation("slack", "T2", {"bot_token": "y"})
    await store.save_conversation("slack", "C1", "T1", {"a": 1})
    await store.set_channel_timezone("slack", "T1", "C1", "Europe/London")
    await store.record_feedback(Feedback("slack", "T1", "C1", "U", None, None, "up", created_at=T0))
    await store.delete_workspace("slack", "T1")
    assert [d.channel for d in await store.list_tracked("slack")] == ["C2"]
    assert await store.list_subscriptions("slack") == []
    assert {p.channel for p in await store.list_posts("slack")} == {"C2"}
    assert await store.find_installation("slack", "T1") is None
    assert await store.find_installation("slack", "T2") == {"bot_token": "y"}
    assert await store.get_conversation("slack", "C1") is None
    assert (await store.get_channel_settings("slack", "C1")).timezone == "Asia/Shanghai"
    assert await store.list_feedback() == []


async def test_next_due_at(store: Store):
    assert await store.next_due_at() is None
    await _track(store, n=2)
    assert await store.next_due_at() == T0


# ------------------------------------------------------------------------------- backend specifics


async def test_two_stores_one_database_restart_keeps_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    a, b = open_store(url), open_store(url)
    await asyncio.gather(a.open(), b.open())  # two "replicas" migrating at once
    await _track(a, n=10)
    now = T0 + dt.timedelta(days=25)
    got = await asyncio.gather(a.claim_due(now, limit=4), b.claim_due(now, limit=4), a.claim_due(now, limit=4))
    ids = [p.id for batch in got for p in batch]
    assert len(ids) == len(set(ids)) == 10
    await a.close()
    await b.close()
    c = open_store(url)
    await c.open()
    assert len(await c.list_tracked("slack")) == 1  # nothing lost on restart
    await c.close()


async def test_upgrading_a_release_1_database_keeps_its_posts_in_flight(db_url: str, monkeypatch):
    """0002_delivery is additive: a post the previous release claimed and died holding is re-offered by the
    new one, which treats that try as one that may have posted (from its due time to its lease end)."""
    import bot.store.base as store_module  # where Store.open looks the migrations up

    first_release = store_module.load_migrations
    monkeypatch.setattr(store_module, "load_migrations", lambda backend: first_release(backend)[:1])
    old = open_store(db_url)
    await old.open()
    assert await old.schema_version() == 1
    await old.add_posts([post("k1", T0)], platform="slack", workspace="T1", channel="C1", kind="deadline")
    async with old._tx() as c:  # what release 1's claim_due left: claimed, a lease, no claimed_at
        await c.execute("UPDATE scheduled_posts SET status = 'claimed', lease_until = $1, claim_token = 'x', "
                        "attempts = 1", T0 + dt.timedelta(minutes=5))
    await old.close()
    monkeypatch.undo()
    new = open_store(db_url)
    await new.open()
    try:
        assert await new.schema_version() >= 2  # 0002_delivery and every later migration applied
        [again] = await new.claim_due(T0 + dt.timedelta(minutes=6), lease_seconds=60)
        assert again.key == "k1" and again.attempts == 2 and again.claimed_at == T0 + dt.timedelta(minutes=6)
        assert again.unconfirmed == (T0, T0 + dt.timedelta(minutes=5))
    finally:
        await new.close()


async def test_a_try_in_doubt_is_remembered_until_the_post_is_done(store: Store):
    await store.add_posts([post("k1", T0)], platform="slack", workspace="T1", channel="C1", kind="deadline")
    [first] = await store.claim_due(T0, lease_seconds=60)
    assert first.unconfirmed is None and first.claimed_at == T0
    ended = T0 + dt.timedelta(seconds=20)  # timed out: it may have been posted
    assert await store.mark_retry(first.id, first.claim_token, error="timeout", retry_at=T0 + dt.timedelta(minutes=1),
                                  unconfirmed=(first.claimed_at, ended))
    [second] = await store.claim_due(T0 + dt.timedelta(minutes=1), lease_seconds=60)
    assert second.unconfirmed == (T0, ended)
    # A later try that certainly failed (429) keeps the doubt about the first.
    assert await store.mark_retry(second.id, second.claim_token, error="ratelimited",
                                  retry_at=T0 + dt.timedelta(minutes=2))
    [third] = await store.claim_due(T0 + dt.timedelta(minutes=2), lease_seconds=60)
    assert third.unconfirmed == (T0, ended) and third.attempts == 3


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_a_transaction_cancelled_as_it_begins_leaves_the_store_usable(store: Store, turns: int):
    """A pass cancelled at a bad moment (a stop past its grace) must not leave a transaction open."""
    for i in range(20):
        task = asyncio.create_task(store.claim_once(f"k{i}"))
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await store.claim_once("after")
    await store.add_posts([post("k1", T0)], platform="slack", workspace="T1", channel="C1", kind="deadline")
    assert len(await store.claim_due(T0)) == 1


async def test_postgres_replicas_migrate_concurrently(pg_schema_url: str):
    stores = [open_store(pg_schema_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    versions = [await s.schema_version() for s in stores]
    assert len(set(versions)) == 1 and versions[0] >= 1
    await asyncio.gather(*(s.close() for s in stores))


def test_urls():
    assert isinstance(open_store("sqlite:///:memory:"), SqliteStore)
    assert sqlite_path("sqlite:////abs/x.db") == "/abs/x.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    assert sqlite_path("sqlite:///tmp/chinadesk-test.db") == "/tmp/chinadesk-test.db"
    with pytest.raises(StoreError):
        open_store("mysql://x")
    with pytest.raises(StoreError):
        open_store("postgresql://localhost/test?schema=Robert'); DROP")


async def test_unreachable_postgres_is_a_clear_error():
    s = open_store("postgresql://postgres@127.0.0.1:1/test")
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL"):
        await s.open()


# ------------------------------------------------------------------- exactly once, as a property

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("claim"), st.integers(0, 2), st.integers(1, 4)),  # worker claims up to n
        st.tuples(st.just("post"), st.integers(0, 2), st.just(0)),  # worker posts everything it holds
        st.tuples(st.just("crash"), st.integers(0, 2), st.just(0)),  # worker dies, forgetting its claims
        st.tuples(st.just("advance"), st.just(0), st.integers(1, 90)),  # the clock moves on (seconds)
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS)
def test_any_interleaving_posts_each_exactly_once(ops):
    """Workers claiming, posting, crashing and a clock moving past leases: nothing twice, nothing lost."""

    async def scenario() -> None:
        s = open_store("sqlite:///:memory:")
        await s.open()
        try:
            await _track(s, n=6)
            now = T0 + dt.timedelta(days=10)
            held: dict[int, list] = {0: [], 1: [], 2: []}
            delivered: list[int] = []
            for op, worker, arg in ops:
                if op == "claim":
                    got = await s.claim_due(now, limit=arg, lease_seconds=60)
                    assert not {p.id for p in got} & set(delivered)  # a posted row is never offered again
                    held[worker] += got
                elif op == "post":
                    for p in held[worker]:
                        if await s.mark_posted(p.id, p.claim_token, ref=f"ts{p.id}", late=False, now=now):
                            delivered.append(p.id)
                    held[worker] = []
                elif op == "crash":
                    held[worker] = []
                else:
                    now += dt.timedelta(seconds=arg)
            # Recovery: after every lease has run out, one worker drains what is left.
            now += dt.timedelta(seconds=61)
            for p in await s.claim_due(now, limit=100, lease_seconds=60):
                assert await s.mark_posted(p.id, p.claim_token, ref=f"ts{p.id}", late=False, now=now)
                delivered.append(p.id)
            assert len(delivered) == len(set(delivered)) == 6
            assert {p.status for p in await s.list_posts()} == {"posted"}
        finally:
            await s.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------------------- feedback that teaches


async def test_a_reason_attaches_to_the_persons_down_vote_on_that_message(store: Store):
    down = Feedback("slack", "T1", "C1", "U1", "C1:1.1", "icp-beian", "down", "beian?", created_at=T0,
                    fact="icp-beian#summary")
    await store.record_feedback(down)
    await store.record_feedback(Feedback("slack", "T1", "C1", "U2", "C1:1.1", "icp-beian", "down", created_at=T0))
    assert await store.record_feedback_reason("slack", "C1:1.1", "U1", "outdated", "fee changed", now=T0)
    assert not await store.record_feedback_reason("slack", "C1:9.9", "U1", "wrong", None)  # no such vote
    assert not await store.record_feedback_reason("teams", "C1:1.1", "U1", "wrong", None)  # another platform
    mine, theirs = await store.list_feedback("slack")
    assert (mine.reason, mine.reason_text, mine.fact) == ("outdated", "fee changed", "icp-beian#summary")
    assert (theirs.reason, theirs.reason_text) == (None, None)
    with pytest.raises(ValueError):
        await store.record_feedback_reason("slack", "C1:1.1", "U1", "<script>", None)
    assert (await store.list_feedback("slack"))[0].reason == "outdated"  # a refused reason changes nothing


async def test_feedback_lists_by_workspace_and_day(store: Store):
    await store.record_feedback(Feedback("slack", "T1", "C1", "U", None, "a", "down", created_at=T0))
    await store.record_feedback(Feedback("slack", "T2", "C2", "U", None, "b", "down",
                                         created_at=T0 + dt.timedelta(days=3)))
    assert [f.topic for f in await store.list_feedback("slack", workspace="T2")] == ["b"]
    assert [f.topic for f in await store.list_feedback(since=(T0 + dt.timedelta(days=1)).date())] == ["b"]


async def test_unanswered_questions_are_kept_until_their_retention_ends(store: Store):
    from handlers.feedback import UnansweredQuestion

    keep = UnansweredQuestion("slack", "T1", "douyin", "douyin visa?", "en", T0, T0 + dt.timedelta(days=30))
    short = UnansweredQuestion("teams", "tn", None, None, "zh", T0, T0 + dt.timedelta(days=1))
    await store.record_unanswered(keep)
    await store.record_unanswered(short)
    assert await store.list_unanswered() == [keep, short]
    assert await store.list_unanswered("slack", workspace="T1") == [keep]
    assert await store.list_unanswered(since=(T0 + dt.timedelta(days=1)).date()) == []
    purged = await store.purge_expired(T0 + dt.timedelta(days=2))
    assert purged["unanswered_questions"] == 1
    assert await store.list_unanswered() == [keep]
    await store.delete_workspace("slack", "T1")
    assert await store.list_unanswered() == []
