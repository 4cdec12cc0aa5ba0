"""What a card shows beyond its facts: the numbered next-steps checklist, links between filings and the
sectors/platforms they concern (both ways), the date of facts over a year old, estimated dates, and
`/china-filing upcoming`. Against the fixture packs (tests/fixtures/packs), whose content is known."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from bot.slack.blockkit import render_reply, validate_blocks
from bot.teams.cards import render_card
from content.loader import load_library
from handlers import Desk, Request
from handlers.cards import topic_card
from handlers.upcoming import upcoming_events
from tests.connector_server import assert_valid_card, texts

FIXTURES = Path(__file__).parent / "fixtures" / "packs"
TODAY = dt.date(2026, 12, 1)
NOW = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai, still 1 December


@pytest.fixture(scope="module")
def fixture_desk() -> Desk:
    return Desk(library=load_library(FIXTURES))


def card(desk: Desk, topic: str, lang: str = "en"):
    return topic_card(desk.library, desk.library.topics[topic], today=TODAY, lang=lang)


def field(reply, label: str) -> str:
    return next(f.value for f in reply.fields if f.label == label)


# --------------------------------------------------------------------------------------- checklist


def test_a_filing_card_ends_with_its_numbered_checklist_apart_from_the_review_times(fixture_desk: Desk):
    reply = card(fixture_desk, "alpha-filing")
    assert reply.checklist[0] == "Prepare the product dossier and the test report."
    assert reply.checklist[1] == "File in the Example Authority's online system. [1]"  # a step with its source
    text = reply.text
    checklist = text.index("Next steps:\n1. Prepare the product dossier and the test report.\n2. File in")
    assert "4. Keep the filing number on record for inspections." in text
    assert text.index("After filing:\n• Authority review: The Example Authority reviews") < checklist
    assert checklist < text.index("Sources:")
    assert "Authority review" not in "\n".join(reply.checklist)


def test_the_checklist_in_chinese_slack_and_teams(fixture_desk: Desk):
    zh = card(fixture_desk, "alpha-filing", "zh")
    assert "下一步：\n1. 准备产品档案和检测报告。\n2. 通过示例主管机关的在线系统提交备案。 [1]" in zh.text
    assert "提交之后：\n• 主管机关审核：示例主管机关在15个工作日内完成阿尔法备案审核。" in zh.text
    blocks = validate_blocks(render_reply(card(fixture_desk, "alpha-filing")).blocks)
    dump = json.dumps(blocks)
    assert "*Next steps*\\n1. Prepare the product dossier and the test report.\\n2. File in" in dump
    assert dump.index("*Next steps*") < dump.index("*Sources*")
    teams = render_card(card(fixture_desk, "alpha-filing"))
    assert_valid_card(teams)
    shown = texts(teams)
    heading = shown.index("Next steps")
    assert shown[heading + 1] == "1. Prepare the product dossier and the test report."  # as written, no escapes
    assert shown[heading + 4] == "4. Keep the filing number on record for inspections."
    assert not {"1. Prepare the product dossier and the test report."} & set(texts(teams, markdown_only=True))


# ------------------------------------------------------------------------------------------- links


def test_links_are_derived_once_both_ways(fixture_desk: Desk):
    links = fixture_desk.library.links
    assert links["alpha-filing"] == ("beta-sector", "delta-platform")  # its own, then delta's link to it
    assert links["beta-sector"] == ("alpha-filing",)  # alpha lists beta
    assert links["delta-platform"] == ("alpha-filing",)  # delta lists alpha
    assert links["gamma-filing"] == ()


def test_sector_and_platform_cards_show_the_filings_that_apply(fixture_desk: Desk):
    sector = card(fixture_desk, "beta-sector")
    assert field(sector, "Filings that apply") == "• Alpha product filing: /china-filing alpha-filing"
    platform = card(fixture_desk, "delta-platform", "zh")
    assert field(platform, "适用的备案与审批") == "• 阿尔法产品备案：/china-filing alpha-filing"


def test_a_filing_card_shows_the_sectors_and_platforms_it_concerns(fixture_desk: Desk):
    filing = card(fixture_desk, "alpha-filing")
    assert field(filing, "Sectors and platforms it concerns") == (
        "• Beta sector: /china-sector beta-sector\n• Delta: /china-platform delta-platform"
    )
    assert "Sectors and platforms it concerns:" in filing.text
    assert not any(f.label.startswith("Sectors and platforms") for f in card(fixture_desk, "gamma-filing").fields)


# --------------------------------------------------------------------------------- dates and estimates


def test_facts_over_a_year_old_show_their_date(fixture_desk: Desk):
    reply = card(fixture_desk, "alpha-filing")
    assert "Importers of alpha products file as well as makers. (unverified) (as of March 2025) [1]" in reply.text
    assert "(as of" not in field(reply, "Authority")  # from 2026-03-10: under a year old
    assert any("the oldest as of March 2025" in c for c in reply.caveats)
    zh = card(fixture_desk, "alpha-filing", "zh")
    assert "（未经核实）（截至2025年3月） [1]" in zh.text
    fresh = card(fixture_desk, "beta-sector")
    assert "as of" not in fresh.summary and not any("more than a year old" in c for c in fresh.caveats)


def test_estimated_events_are_labelled(fixture_desk: Desk):
    reply = card(fixture_desk, "spring-sale")
    dates = field(reply, "Dates")
    assert "• Spring sale 2027: Sat 6 Feb 2027 (estimate) — The 2027 spring sale" in dates
    assert "• Mid-year sale (18 June): every year on 18 Jun — The mid-year sale" in dates
    assert "Dates marked (estimate) are not official yet: check the authority's notice once it is published." in (
        reply.caveats)
    zh = card(fixture_desk, "spring-sale", "zh")
    assert "2027年春季促销：2027年2月6日（周六）（预估）" in field(zh, "日期")


# ---------------------------------------------------------------------------------------- upcoming


async def test_upcoming_lists_events_soonest_first_with_subscribe_commands(fixture_desk: Desk):
    reply = await fixture_desk.handle(Request(text="/china-filing upcoming 400", now=NOW))
    assert reply.kind == "upcoming" and reply.title == "Coming up in the next 400 days"
    assert [f.label for f in reply.fields] == [
        "Fri 15 Jan 2027: Alpha rules take effect",
        "Sat 6 Feb 2027: Spring sale 2027 (estimate)",
        "Fri 18 Jun 2027: Mid-year sale (18 June)",
    ]
    assert reply.fields[0].value == (
        "The alpha rules take effect on 15 January 2027. [1]\nSubscribe: /china-filing subscribe alpha-filing"
    )
    assert reply.fields[1].value.endswith("Subscribe: /china-filing subscribe spring-sale")
    assert [s.url for s in reply.sources] == [
        "https://www.example.gov.cn/alpha-notice", "https://www.example.cn/spring-sale"]
    assert "3 dated events from Tue 1 Dec 2026 to Wed 5 Jan 2028, soonest first" in reply.text
    assert any("(estimate) are not official" in c for c in reply.caveats)
    buttons = [a.value for a in reply.actions if a.kind == "command"]
    assert "/china-filing subscribe alpha-filing" in buttons and "/china-filing upcoming 400 --lang zh" in buttons


async def test_upcoming_defaults_to_90_days_and_has_a_chinese_version(fixture_desk: Desk):
    reply = await fixture_desk.handle(Request(text="/china-filing upcoming", now=NOW))
    # 90 days: to 1 March 2027, so the alpha rules (45 days ahead) and the spring sale, not June's sale.
    assert [f.label for f in reply.fields] == [
        "Fri 15 Jan 2027: Alpha rules take effect", "Sat 6 Feb 2027: Spring sale 2027 (estimate)"]
    zh = await fixture_desk.handle(Request(text="/china-filing upcoming 400 --lang zh", now=NOW))
    assert zh.title == "未来 400 天的重要日期"
    assert zh.fields[1].label == "2027年2月6日（周六）：2027年春季促销（预估）"
    assert zh.fields[0].value.endswith("订阅：/china-filing subscribe alpha-filing")


@pytest.mark.parametrize("days", ["0", "731", "abc", "-5", "99999"])
async def test_upcoming_refuses_windows_it_cannot_show(fixture_desk: Desk, days: str):
    reply = await fixture_desk.handle(Request(text=f"/china-filing upcoming {days}", now=NOW))
    assert reply.kind == "error" and "from 1 to 730" in reply.text


async def test_upcoming_is_read_only_and_cached_per_day(fixture_desk: Desk):
    request = Request(text="upcoming 200", command="/china-filing", platform="slack", now=NOW)
    assert fixture_desk.is_read_only(request)
    assert not fixture_desk.is_read_only(request.model_copy(update={"text": "subscribe all"}))
    first = await fixture_desk.handle(request)
    assert await fixture_desk.handle(request) is first
    tomorrow = await fixture_desk.handle(request.model_copy(update={"now": NOW + dt.timedelta(days=1)}))
    assert tomorrow is not first and "from Wed 2 Dec 2026" in tomorrow.text


async def test_upcoming_on_the_real_packs_renders_for_slack_and_teams(desk: Desk):
    reply = await desk.handle(Request(text="/china-filing upcoming 730", now=NOW))
    dates = [day for day, _, _ in upcoming_events(desk.library, TODAY, TODAY + dt.timedelta(days=730))]
    assert dates == sorted(dates) and len(reply.fields) == min(len(dates), 30)
    assert all("/china-filing subscribe " in f.value for f in reply.fields)
    validate_blocks(render_reply(reply).blocks)
    assert_valid_card(render_card(reply))


async def test_answers_and_deadlines_date_their_old_facts_too(ask):
    # The stale caveat points at "as of" marks: every reply that carries it must show them.
    for reply in (await ask("how many users does douyin have?", mode="direct"),
                  await ask("/china-filing facial-recognition from 2025-09-20", now=NOW)):
        if any("more than a year old" in c for c in reply.caveats):
            assert "(as of " in reply.text, reply.text
