"""Reminder commands (issue 6) through the same handler chain as every surface, on a real store.

The scheduler and delivery are in test_scheduler.py; here: what the commands store and say, the
schedule's arithmetic (property-tested), and the CLI flow an operator uses.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.store import Store, open_store
from content.calendar import ChinaCalendar
from content.loader import Library
from handlers import Desk, Request
from handlers.reminder_posts import render_post
from handlers.reminders import (
    REMINDER_OFFSETS,
    event_posts,
    parse_timezone,
    reminder_schedule,
)
from handlers.request import UserError

NOW = dt.datetime(2025, 9, 22, 2, 0, tzinfo=dt.UTC)  # Mon 22 Sep 2025, 10:00 in Shanghai
FACE_DUE = dt.date(2025, 11, 6)  # facial-recognition from 2025-09-20: 30 working days (National Day skipped)
CHINADESK = shutil.which("chinadesk") or str(Path(sys.executable).with_name("chinadesk"))


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = open_store("sqlite:///:memory:")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def sdesk(library: Library, store: Store) -> Desk:
    return Desk(library=library, store=store, calendar=ChinaCalendar(overrides_path=None))


@pytest.fixture
def say(sdesk: Desk):
    async def _say(text: str, *, channel: str | None = "C1", platform: str = "slack", now: dt.datetime = NOW,
                   **kw):
        return await sdesk.handle(Request(text=text, platform=platform, channel=channel, workspace="T1", now=now,
                                          user="U1", **kw))

    return _say


# ------------------------------------------------------------------------------ tracked deadlines


async def test_remind_stores_deadline_and_default_schedule(say, store: Store):
    reply = await say("/china-filing remind facial-recognition from 2025-09-20 board pack")
    assert reply.kind == "reminder", reply.text
    assert "D1" in reply.text and "Thu 6 Nov 2025" in reply.text
    [d] = await store.list_tracked("slack", channel="C1")
    assert (d.topic, d.due, d.note, d.start, d.workspace) == ("facial-recognition", FACE_DUE, "board pack",
                                                               "2025-09-20", "T1")
    posts = await store.list_posts("slack", "C1", deadline_id=d.id)
    # 10, 5 and 1 working days before, and on the day, at 09:00 Shanghai (01:00 UTC).
    assert [p.due_at for p in posts] == [
        dt.datetime(2025, 10, 23, 1, tzinfo=dt.UTC), dt.datetime(2025, 10, 30, 1, tzinfo=dt.UTC),
        dt.datetime(2025, 11, 5, 1, tzinfo=dt.UTC), dt.datetime(2025, 11, 6, 1, tzinfo=dt.UTC),
    ]
    assert [p.payload["offset"] for p in posts] == [10, 5, 1, 0]
    assert all(p.status == "pending" and p.expires_at == dt.datetime(2025, 11, 6, 16, tzinfo=dt.UTC) for p in posts)
    for when in ("Thu 23 Oct 2025 09:00", "Thu 30 Oct 2025 09:00", "Wed 5 Nov 2025 09:00", "Thu 6 Nov 2025 09:00"):
        assert when in reply.text
    assert reply.sources and reply.sources[0].url in reply.text


async def test_remind_without_from_word_and_with_today(say, store: Store):
    assert (await say("/china-filing remind face 2025-09-20")).kind == "reminder"
    reply = await say("/china-filing remind facial recognition from today")
    assert reply.kind == "reminder", reply.text
    assert [d.start for d in await store.list_tracked("slack")] == ["2025-09-20", "2025-09-22"]


async def test_note_is_echoed_inert(say, sdesk: Desk, store: Store):
    reply = await say("/china-filing remind facial-recognition from 2025-09-20 <!channel> {{ 7*7 }} <@U123>")
    assert reply.kind == "reminder"
    [post] = (await store.list_posts("slack"))[:1]
    posted = render_post(sdesk, post, now=post.due_at, late=False)
    for text in (reply.text, posted.text):
        assert "<!channel>" not in text and "<@U123>" not in text
        assert "{{ 7*7 }}" in text and "49" not in text  # template syntax stays literal


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("/china-filing remind", "Which filing"),
        ("/china-filing remind facial-recognition", "From which date"),
        ("/china-filing remind facial-recognition from 2025-02-30", "not a real date"),
        ("/china-filing remind facial-recognition from soon", "couldn't read"),
        ("/china-filing remind facil-recogniton from 2025-09-20", "Did you mean"),
        ("/china-filing remind pipia from 2025-09-20", "no fixed deadline"),
        ("/china-filing remind cyber-incident-reporting from 2025-09-20", "too soon"),
    ],
)
async def test_remind_mistakes_are_friendly(say, store: Store, text: str, needle: str):
    reply = await say(text)
    assert reply.kind == "error"
    assert needle in reply.text, reply.text
    assert await store.list_tracked("slack") == []


async def test_reminders_need_a_channel_and_a_store(say, library: Library):
    reply = await say("/china-filing remind facial-recognition from 2025-09-20", channel=None)
    assert reply.kind == "error" and "Reminders need a channel" in reply.text and "--channel" in reply.text
    bare = Desk(library=library)
    reply = await bare.handle(Request(text="/china-filing reminders", channel="C1", now=NOW))
    assert reply.kind == "error" and "storage" in reply.text


async def test_times_already_past_are_skipped_not_posted_late(say, store: Store):
    reply = await say("/china-filing remind facial-recognition from 2025-09-20",
                      now=dt.datetime(2025, 11, 3, 2, tzinfo=dt.UTC))
    assert "already passed, skipped" in reply.text
    posts = await store.list_posts("slack")
    assert [p.status for p in posts] == ["skipped", "skipped", "pending", "pending"]


@pytest.mark.parametrize("now", [
    dt.datetime(2026, 1, 5, 2, tzinfo=dt.UTC),  # long after
    dt.datetime(2025, 11, 6, 16, 0, 1, tzinfo=dt.UTC),  # one second into Fri 7 Nov in Shanghai
])
async def test_remind_on_a_passed_deadline_refuses_and_stores_nothing(say, store: Store, now: dt.datetime):
    reply = await say("/china-filing remind facial-recognition from 2025-09-20", now=now)
    assert reply.kind == "error"
    assert "passed on Thu 6 Nov 2025" in reply.text and "nothing to remind" in reply.text
    assert await store.list_tracked("slack") == [] and await store.list_posts() == []
    listing = await say("/china-filing reminders", now=now)
    assert "Nothing is tracked" in listing.text


async def test_a_deadline_due_today_can_still_be_tracked(say, store: Store):
    reply = await say("/china-filing remind facial-recognition from 2025-09-20",
                      now=dt.datetime(2025, 11, 6, 0, 30, tzinfo=dt.UTC))  # 08:30 on the due day, Shanghai
    assert reply.kind == "reminder" and "due today" in reply.text
    assert [p.status for p in await store.list_posts("slack")] == ["skipped", "skipped", "skipped", "pending"]


async def test_set_reminders_is_offered_only_while_the_deadline_is_ahead(say):
    def buttons(reply) -> list[str]:  # command buttons other than the one showing the card in Chinese
        return [a.label for a in reply.actions if a.kind == "command" and "--lang" not in a.value]

    ahead = await say("/china-filing facial-recognition from 2025-09-20")
    assert buttons(ahead) == ["Set reminders"]
    passed = await say("/china-filing facial-recognition from 2025-09-20", now=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    assert "passed" in passed.text
    assert buttons(passed) == []  # no button that could only fail
    assert [a.kind for a in passed.actions if "--lang" not in a.value] == ["share"]


async def test_list_and_cancel(say, store: Store):
    await say("/china-filing remind facial-recognition from 2025-09-20 board pack")
    await say("/china-filing subscribe 618")
    await say("/china-filing remind facial-recognition from 2025-09-21", channel="C2")
    listing = await say("/china-filing reminders")
    assert "D1" in listing.text and "S1" in listing.text and "D2" not in listing.text
    assert "next reminder Thu 23 Oct 2025 09:00" in listing.text and "board pack" in listing.text
    assert (await say("/china-filing cancel D2")).kind == "error"  # another channel's
    assert (await say("/china-filing cancel D1")).kind == "reminder"
    assert (await say("/china-filing cancel s1")).kind == "reminder"
    assert (await say("/china-filing cancel D1")).kind == "error"
    assert "Nothing is tracked" in (await say("/china-filing reminders")).text
    assert await store.list_posts("slack", "C1") == []
    assert len(await store.list_tracked("slack", channel="C2")) == 1


async def test_timezone_moves_pending_reminders(say, store: Store):
    await say("/china-filing remind facial-recognition from 2025-09-20")
    reply = await say("/china-filing timezone europe/london")
    assert reply.kind == "reminder" and "Europe/London" in reply.text
    assert (await store.get_channel_settings("slack", "C1")).timezone == "Europe/London"
    posts = await store.list_posts("slack", "C1")
    local = [p.due_at.astimezone(ZoneInfo("Europe/London")) for p in posts]
    assert [(t.date(), t.hour, t.minute) for t in local] == [
        (dt.date(2025, 10, 23), 9, 0), (dt.date(2025, 10, 30), 9, 0), (dt.date(2025, 11, 5), 9, 0),
        (dt.date(2025, 11, 6), 9, 0),
    ]
    assert (await say("/china-filing timezone")).text.count("Europe/London") >= 1
    bad = await say("/china-filing timezone Mars/Olympus_Mons")
    assert bad.kind == "error" and "time zone" in bad.text
    # New deadlines use the channel's zone too.
    await say("/china-filing remind facial-recognition from 2025-09-21")
    latest = (await store.list_tracked("slack"))[-1]
    first = (await store.list_posts(deadline_id=latest.id))[0]
    assert first.due_at.astimezone(ZoneInfo("Europe/London")).hour == 9


def test_parse_timezone():
    assert parse_timezone("Europe/London") == "Europe/London"
    assert parse_timezone("asia/shanghai") == "Asia/Shanghai"
    assert parse_timezone("America/New York") == "America/New_York"
    assert parse_timezone("utc") == "UTC"
    for bad in ("Mars/Base", "", "../../etc/passwd", "Europe/"):
        with pytest.raises(UserError):
            parse_timezone(bad)


# ----------------------------------------------------------------------------------- subscriptions


async def test_subscribe_materialises_events_without_duplicates(say, store: Store, library: Library):
    now = dt.datetime(2026, 1, 1, 2, tzinfo=dt.UTC)
    reply = await say("/china-filing subscribe 618", now=now)
    assert reply.kind == "reminder" and "S1" in reply.text
    posts = await store.list_posts("slack", "C1")
    # 618 on 18 June 2026, posted 60, 36 and 7 days ahead at 09:00 Shanghai.
    assert [p.due_at for p in posts] == [
        dt.datetime(2026, 4, 19, 1, tzinfo=dt.UTC), dt.datetime(2026, 5, 13, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 6, 11, 1, tzinfo=dt.UTC),
    ]
    await say("/china-filing subscribe all", now=now)
    all_posts = await store.list_posts("slack", "C1")
    keys = [p.key for p in all_posts]
    assert len(keys) == len(set(keys))
    assert sum(p.payload["event"] == "618-festival" for p in all_posts) == 3  # not doubled by "all"
    assert (await say("/china-filing subscribe 618", now=now)).text.startswith("Subscribed")  # idempotent
    assert len(await store.list_subscriptions("slack", channel="C1")) == 2
    # Dropping "all" keeps 618's own posts (shared keys are re-planned for the remaining subscription).
    assert (await say("/china-filing unsubscribe all", now=now)).kind == "reminder"
    assert sum(p.payload["event"] == "618-festival" for p in await store.list_posts("slack", "C1")) == 3
    assert (await say("/china-filing unsubscribe", now=now)).kind == "reminder"  # the only one left
    assert await store.list_posts("slack", "C1") == []


async def test_subscribe_mistakes(say):
    reply = await say("/china-filing subscribe xiaohongshu")
    assert reply.kind == "error" and "no dated events" in reply.text and "618" in reply.text
    assert (await say("/china-filing subscribe")).kind == "error"
    assert (await say("/china-filing unsubscribe 618")).kind == "error"


def test_event_posts_window_and_keys(library: Library):
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    posts = event_posts(library, platform="slack", channel="C1", topic="618", tz="Asia/Shanghai", start=start,
                        end=start + dt.timedelta(days=800))
    # The yearly festival recurs; one-off events of the topic (the 2027 presales) come on top of it.
    festival = [p for p in posts if p.payload["event"] == "618-festival"]
    assert [p.payload["date"] for p in festival] == ["2026-06-18"] * 3 + ["2027-06-18"] * 3
    assert all(p.key.startswith("ev:slack:C1:618-festival:") for p in festival)
    assert {p.payload["date"] for p in posts if p.payload["event"] == "618-presales-2027"} == {"2027-05-13"}
    again = event_posts(library, platform="slack", channel="C1", topic="618", tz="Asia/Shanghai",
                        start=start + dt.timedelta(days=120), end=start + dt.timedelta(days=800))
    assert {p.key for p in again} < {p.key for p in posts}


# ---------------------------------------------------------------------------------- the schedule


@settings(max_examples=150, deadline=None)
@given(
    due=st.dates(min_value=dt.date(2025, 1, 1), max_value=dt.date(2027, 12, 31)),
    tz=st.sampled_from(["Asia/Shanghai", "Europe/London", "America/New_York", "Australia/Sydney", "UTC"]),
)
def test_schedule_properties(due: dt.date, tz: str):
    cal = ChinaCalendar(overrides_path=None)
    times = reminder_schedule(cal, due, tz)
    assert times == sorted(times, key=lambda r: r.at) and len({r.at for r in times}) == len(times)
    for r in times:
        local = r.at.astimezone(ZoneInfo(tz))
        assert (local.date(), local.hour, local.minute) == (r.day, 9, 0)  # 09:00 in the channel's zone
        assert r.day <= due
        if r.offset:
            assert cal.is_working_day(r.day)
            # "N working days before": N working days in (day, due], or N-1 when the due day is itself off.
            assert cal.working_days_between(r.day, due) == r.offset - (0 if cal.is_working_day(due) else 1)
    assert times[-1].day == due and {r.offset for r in times} <= set(REMINDER_OFFSETS)


# ------------------------------------------------------------------------------------------- CLI


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        CHINADESK, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_APP", "DATABASE_URL"))}
    env.update(extra)
    return env


async def test_cli_remind_list_and_run_due_against_local_slack(tmp_path):
    from tests.slack_server import FakeSlack

    async with FakeSlack() as api:
        env = cli_env(DATABASE_URL=f"sqlite:///{tmp_path / 'cli.sqlite3'}", SLACK_BOT_TOKEN=api.bot_token,
                      SLACK_API_URL=api.api_url)
        code, out, err = await _run("ask", "/china-filing remind facial-recognition from 2025-09-20 board pack",
                                    "--channel", "C1", "--platform", "slack", "--now", "2025-09-22T02:00:00Z",
                                    env=env)
        assert code == 0, err
        assert "Reminders set" in out and "D1" in out

        code, out, err = await _run("reminders", "list", "--channel", "C1", env=env)
        assert code == 0, err
        assert "D1 slack/C1 facial-recognition from 2025-09-20 due 2025-11-06" in out
        assert out.count("pending") == 4

        code, out, err = await _run("reminders", "run-due", "--now", "2025-10-24T01:00:00Z", env=env)
        assert code == 0, err
        assert "posted=1" in out and "late=1" in out
        [call] = api.calls_to("chat.postMessage")
        assert call.params["channel"] == "C1" and call.token == api.bot_token
        assert "Facial recognition" in call.dumps() and "Late" in call.dumps()

        code, out, err = await _run("reminders", "run-due", "--now", "2025-10-24T01:00:05Z", env=env)
        assert "posted=0" in out and len(api.calls_to("chat.postMessage")) == 1  # never twice

        code, out, err = await _run("reminders", "list", "--json", env=env)
        data = json.loads(out)
        assert [p["status"] for p in data["posts"]] == ["posted", "pending", "pending", "pending"]
        assert data["posts"][0]["posted_ref"] and data["posts"][0]["late"] is True


async def test_cli_run_due_without_credentials_says_what_it_could_not_send_and_why(tmp_path):
    env = cli_env(DATABASE_URL=f"sqlite:///{tmp_path / 'cli.sqlite3'}")  # no SLACK_* at all
    for channel in ("C1", "C2"):
        code, _out, err = await _run("ask", "/china-filing remind facial-recognition from 2025-09-20", "--channel",
                                     channel, "--platform", "slack", "--now", "2025-09-22T02:00:00Z", env=env)
        assert code == 0, err
    code, out, err = await _run("reminders", "run-due", "--now", "2025-10-24T01:00:00Z", env=env)
    assert code == 1  # a script (cron, CI) notices
    assert "posted=0" in out and "waiting=slack:2" in out
    [line] = [line for line in err.splitlines() if "not sent" in line]
    assert "2 reminder posts for slack are due but were not sent" in line
    assert "SLACK_BOT_TOKEN" in line and "SLACK_CLIENT_ID" in line  # what to set
    code, out, _err = await _run("reminders", "list", "--json", env=env)
    assert {p["status"] for p in json.loads(out)["posts"]} == {"pending"}  # kept for a process that can post


async def test_cli_channel_commands_without_store_url_use_default_file(tmp_path):
    env = cli_env()
    proc = await asyncio.create_subprocess_exec(
        CHINADESK, "ask", "/china-filing reminders", "--channel", "C9", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "Nothing is tracked" in out.decode()
    assert (tmp_path / "chinadesk.sqlite3").exists()


async def test_cli_text_platform_reminders_print_to_stdout(tmp_path):
    env = cli_env(DATABASE_URL=f"sqlite:///{tmp_path / 't.sqlite3'}")
    code, out, err = await _run("ask", "/china-filing remind facial-recognition from 2025-09-20", "--channel", "ops",
                                "--now", "2025-09-22T02:00:00Z", env=env)
    assert code == 0, err
    code, out, err = await _run("reminders", "run-due", "--now", "2025-10-23T01:00:00Z", env=env)
    assert code == 0, err
    assert re.search(r"^\[ops\] Reminder: Facial recognition", out, re.MULTILINE)
    assert "posted=1" in out and "late=0" in out


# ---------------------------------------------------------------------------------------- in Chinese


async def test_reminder_commands_answer_in_chinese(say, sdesk: Desk, store: Store):
    reply = await say("/china-filing remind 人脸识别 from 2025-09-20 董事会材料")
    assert reply.kind == "reminder" and reply.language == "zh"
    assert reply.title == "已设置提醒：人脸识别技术应用备案，截止日期 2025年11月6日（周四）"
    assert "我将在 09:00（Asia/Shanghai）提醒本频道：" in reply.text
    assert "- 提前 10 个工作日：2025年10月23日（周四）09:00 CST" in reply.text
    assert "跟踪编号：D1" in reply.text
    listed = await say("/china-filing reminders --lang zh")
    assert listed.title == "本频道的提醒"
    line = "D1：人脸识别技术应用备案，截止日期 2025年11月6日（周四）（距今天（2025年9月22日（周一））还有 29 个工作日）"
    assert line in listed.text
    subscribed = await say("/china-filing subscribe 618 --lang zh")
    assert subscribed.summary.startswith("已订阅（S1）：我会在 Asia/Shanghai 时间 09:00 提前在本频道发布")
    assert "`/china-filing unsubscribe 618` 可停止这些发布。" in subscribed.text
    error = await say("/china-filing cancel 哪个")
    assert error.kind == "error" and "请给出 `/china-filing reminders` 中的编号" in error.text
    bad_zone = await say("/china-filing timezone 火星 --lang zh")
    assert bad_zone.kind == "error" and "我不认识时区“火星”" in bad_zone.text
    # A scheduled post can be rendered in Chinese too (the scheduler passes the channel's language).
    [post] = (await store.list_posts("slack", "C1", status="pending"))[:1]
    posted = render_post(sdesk, post, now=post.due_at, late=True, lang="zh")
    assert posted.title == "延迟的提醒：人脸识别技术应用备案，截止日期 2025年11月6日（周四）"
    assert "这是提前 10 个工作日的提醒。`/china-filing cancel D1` 可停止这些提醒。" in posted.text
    assert render_post(sdesk, post, now=post.due_at, late=False).title.startswith("Reminder: Facial recognition")
