"""The scheduler in real ``chinadesk`` processes against a real local Slack-compatible server (the harness of
``test_scheduler.py``): two processes due at the same instant post once, a process killed mid-run loses and
repeats nothing, and the worker posts and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import sys
from contextlib import AsyncExitStack

import pytest
from aiohttp import web

from bot.store import open_store
from content.calendar import ChinaCalendar
from handlers import Desk
from tests import test_scheduler as scheduler_suite
from tests.test_reminders import CHINADESK, cli_env
from tests.test_scheduler import posted_keys, remind

# The scheduler suite's fixtures, defined once in test_scheduler.py: ``store`` (on SQLite and on PostgreSQL, in
# place of conftest's), ``slack`` (the local Slack Web API) and ``sdesk`` (a Desk on that store).
store, slack, sdesk = scheduler_suite.store, scheduler_suite.slack, scheduler_suite.sdesk


# ---------------------------------------------------------------------------- real processes


async def _spawn(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        CHINADESK, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def test_two_processes_run_due_at_the_same_instant_post_once(db_url, store, sdesk, slack):
    for i in range(12):
        await remind(sdesk, f"C{i}")
    env = cli_env(DATABASE_URL=db_url, SLACK_BOT_TOKEN=slack.bot_token, SLACK_API_URL=slack.api_url)
    for now in ("2025-10-23T01:00:00Z", "2025-10-30T01:00:00Z", "2025-11-05T01:00:00Z", "2025-11-06T02:00:00Z"):
        procs = [await _spawn("reminders", "run-due", "--now", now, env=env) for _ in range(2)]
        results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 90)
        for proc, (_out, err) in zip(procs, results, strict=True):
            assert proc.returncode == 0, err.decode()
    keys = posted_keys(slack)
    assert len(keys) == 12 * 4 and len(set(keys)) == len(keys)


async def test_process_killed_mid_run_loses_nothing_and_duplicates_nothing(store, sdesk, slack):
    """A worker dies while Slack is not answering: its claims are re-offered after the lease, once."""
    await remind(sdesk, "C1")
    await remind(sdesk, "C2")
    received = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        received.set()
        await asyncio.sleep(3600)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/api/{method}", hang)
    runner = web.AppRunner(app, shutdown_timeout=0.5)  # don't wait for the hung request at cleanup
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with AsyncExitStack() as stack:
        stack.push_async_callback(runner.cleanup)
        env = cli_env(DATABASE_URL=store.url, SLACK_BOT_TOKEN=slack.bot_token,
                      SLACK_API_URL=f"http://127.0.0.1:{port}/api/")
        proc = await _spawn("reminders", "run-due", "--now", "2025-10-23T01:00:00Z", "--lease", "120", env=env)
        await asyncio.wait_for(received.wait(), 60)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    claimed = await store.list_posts(status="claimed")
    assert claimed, "the killed process had claimed posts"
    # Before the lease ends nobody else takes them; after it, one pass posts each once.
    env = cli_env(DATABASE_URL=store.url, SLACK_BOT_TOKEN=slack.bot_token, SLACK_API_URL=slack.api_url)
    proc = await _spawn("reminders", "run-due", "--now", "2025-10-23T01:01:00Z", env=env)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "posted=0" in out.decode()
    proc = await _spawn("reminders", "run-due", "--now", "2025-10-23T01:03:00Z", env=env)
    out, err = await proc.communicate()
    assert "posted=2" in out.decode(), err.decode()
    keys = posted_keys(slack)
    assert sorted(c.params["channel"] for c in slack.calls_to("chat.postMessage")) == ["C1", "C2"]
    assert len(set(keys)) == 2
    assert {p.status for p in await store.list_posts(status=None) if p.payload["offset"] == 10} == {"posted"}


@pytest.mark.skipif(sys.platform == "win32", reason="signals")
async def test_worker_process_posts_and_stops_on_sigterm(tmp_path, slack, library):
    url = f"sqlite:///{tmp_path / 'worker.sqlite3'}"
    s = open_store(url)
    await s.open()
    desk = Desk(library=library, store=s, calendar=ChinaCalendar(overrides_path=None))
    # A deadline whose first reminder is already due (but not yet expired) in real time.
    now = dt.datetime.now(dt.UTC)
    await remind(desk, "CW", start=(now - dt.timedelta(days=35)).date().isoformat(),
                 now=now - dt.timedelta(days=35))
    # The most recent of those due now is posted; any earlier one it supersedes is skipped.
    due_now = [p for p in await s.list_posts("slack", "CW") if p.due_at <= now < p.expires_at][-1:]
    await s.close()
    env = cli_env(DATABASE_URL=url, SLACK_BOT_TOKEN=slack.bot_token, SLACK_API_URL=slack.api_url)
    proc = await _spawn("worker", "--interval", "0.2", env=env)
    try:
        if due_now:
            await slack.wait_for("chat.postMessage", count=len(due_now), within=30)
        else:
            await asyncio.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()  # a clean stop on SIGTERM
    assert len(slack.calls_to("chat.postMessage")) == len(due_now)
