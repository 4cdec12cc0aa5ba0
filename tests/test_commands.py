"""Every slash command through the real handler chain, asserting what a user would see."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import NOW

from content.i18n import t
from handlers import Desk, Request
from handlers.request import LEGAL_CAVEAT


async def test_filing_menu_lists_every_filing(ask, library):
    reply = await ask("/china-filing")
    assert reply.kind == "menu"
    assert {i.id for i in reply.items} == {t.id for t in library.of_kind("filing")}
    assert "/china-filing facial-recognition" in reply.text


@pytest.mark.parametrize("alias", ["facial-recognition", "face", "frt", "人脸识别", "Facial Recognition", "FRT"])
async def test_facial_recognition_aliases_open_the_same_card(ask, alias):
    reply = await ask(f"/china-filing {alias}")
    assert reply.kind == "filing"
    assert reply.topic == "facial-recognition"
    assert "100,000" in reply.text or "10万" in reply.text
    # Typed in Chinese, answered in Chinese (the caveat too); the English card is one button away.
    assert reply.language == ("zh" if alias == "人脸识别" else "en")
    assert (t("legal_caveat", "zh") if alias == "人脸识别" else LEGAL_CAVEAT) in reply.caveats
    assert reply.sources and all(s.url.startswith("http") for s in reply.sources)


@pytest.mark.parametrize(
    "alias", ["xiaohongshu", "rednote", "red", "little red book", "小红书", "RED", "Little-Red-Book"]
)
async def test_xiaohongshu_aliases_open_the_same_platform(ask, alias):
    reply = await ask(f"/china-platform {alias}")
    assert reply.kind == "platform"
    assert reply.topic == "xiaohongshu"


async def test_every_topic_resolves_by_every_name(ask, library):
    command = {"filing": "/china-filing", "sector": "/china-sector", "platform": "/china-platform",
               "calendar": "/china-sector"}
    for topic in library.topics.values():
        for name in library.names_of(topic):
            reply = await ask(f"{command[topic.kind]} {name}")
            assert reply.topic == topic.id, (name, reply.kind, reply.text[:200])


async def test_sector_and_platform_menus(ask, library):
    sectors = await ask("/china-sector")
    assert sectors.kind == "menu" and len(sectors.items) >= 6
    platforms = await ask("/china-platform")
    assert platforms.kind == "menu"
    assert {i.id for i in platforms.items} == {t.id for t in library.of_kind("platform")}


async def test_card_marks_unverified_facts_and_says_so(ask, library):
    topic = library.topics["facial-recognition"]
    assert any(not f.verified for _, f in topic.all_facts())
    reply = await ask("/china-filing facial-recognition")
    assert "(unverified)" in reply.text
    assert any("unverified" in c for c in reply.caveats)


async def test_card_cites_numbered_sources_with_dates(ask):
    reply = await ask("/china-platform xiaohongshu")
    assert "[1]" in reply.text
    first = reply.sources[0]
    assert first.url in reply.text and first.title in reply.text


async def test_help_lists_the_commands(ask):
    reply = await ask("/china-filing help")
    assert reply.kind == "help"
    for cmd in ("/china-filing", "/china-sector", "/china-platform"):
        assert cmd in reply.text
    assert "from YYYY-MM-DD" in reply.text or "from 2025" in reply.text


async def test_unknown_topic_suggests_close_names(ask):
    reply = await ask("/china-platform xiaohngshu")
    assert reply.kind == "error"
    assert "Did you mean" in reply.text and "/china-platform xiaohongshu" in reply.text
    assert reply.suggestions[0] == "/china-platform xiaohongshu"


async def test_unknown_topic_with_nothing_close_is_still_friendly(ask):
    reply = await ask("/china-sector zzzzqqqq")
    assert reply.kind == "error"
    assert "/china-sector" in reply.text
    assert "Traceback" not in reply.text


async def test_teams_style_commands_parse_like_slash_commands(ask):
    for text in ("china-filing facial-recognition", "filing face", "/china-filing frt", "Filing FRT"):
        reply = await ask(text, platform="teams", mode="direct")
        assert reply.topic == "facial-recognition", text


async def test_bare_word_question_goes_to_qa_not_an_error(ask):
    reply = await ask("platform for live streaming in china?", mode="direct")
    assert reply.kind in ("answer", "no_answer")


async def test_unknown_slash_command_is_a_friendly_error(ask):
    reply = await ask("/china-weather beijing")
    assert reply.kind == "error"
    assert "/china-filing" in reply.text


# ------------------------------------------------------------------------- cached replies (ReplyCache)


async def test_a_deadline_from_today_follows_the_day_and_time_zone_it_is_asked_in(library):
    """Read-only replies are cached per (command, text, time zone, local day): never a stale "today"."""
    desk = Desk(library=library)
    evening_utc = dt.datetime(2026, 11, 23, 20, 0, tzinfo=dt.UTC)  # already 24 Nov in Shanghai

    async def due(now: dt.datetime, timezone: str) -> str:
        reply = await desk.handle(Request(text="facial-recognition from today", command="/china-filing",
                                          now=now, timezone=timezone))
        return reply.as_json()["deadline"]

    shanghai = await due(evening_utc, "Asia/Shanghai")
    london = await due(evening_utc, "Europe/London")
    assert london != shanghai  # 30 working days from 23 Nov vs from 24 Nov
    assert await due(evening_utc + dt.timedelta(hours=1), "Europe/London") == london
    assert await due(evening_utc + dt.timedelta(days=1), "Europe/London") == shanghai
    assert desk.replies.hits >= 1


async def test_a_repeated_card_is_the_same_answer_and_a_repeated_typo_the_same_friendly_error(library):
    desk = Desk(library=library)
    first = await desk.handle(Request(text="/china-filing facial-recognition", now=NOW))
    again = await desk.handle(Request(text="/china-filing facial-recognition", now=NOW))
    assert again.as_json() == first.as_json()
    for _ in range(3):
        typo = await desk.handle(Request(text="/china-platform xiaohngshu", now=NOW))
        assert typo.kind == "error" and typo.suggestions[0] == "/china-platform xiaohongshu"
    for _ in range(2):  # a bare word that names no topic is still a question, cached or not
        reply = await desk.handle(Request(text="platform for live streaming in china?", mode="direct", now=NOW))
        assert reply.kind in ("answer", "no_answer")


@pytest.mark.parametrize("command, text, read_only", [
    ("/china-filing", "", True),
    ("/china-filing", "facial-recognition from 2025-09-20", True),
    ("/china-sector", "ev", True),
    ("/china-platform", "help", True),
    ("/china-filing", "reminders", False),
    ("/china-filing", "remind facial-recognition from 2025-09-20", False),
    ("/china-filing", "watch on", False),
    ("/china-filing", "timezone Europe/London", False),
])
def test_only_commands_that_read_nothing_but_content_are_read_only(desk, command, text, read_only):
    assert desk.is_read_only(Request(text=text, command=command)) is read_only
    assert not desk.is_read_only(Request(text=f"{command} {text}", mode="direct"))  # questions: never
