"""Content pack validation: what `chinadesk content check` promises editors."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from bot.cli import run_content_check
from content.loader import PACKS_DIR, ContentError, check_library, load_library


def test_real_packs_meet_the_minimums(library):
    kinds = [t.kind for t in library.topics.values()]
    assert kinds.count("filing") >= 8
    assert kinds.count("sector") >= 6
    assert kinds.count("platform") >= 6


def test_every_fact_is_sourced_and_dated(library):
    for topic in library.topics.values():
        for _section, fact in topic.all_facts():
            src = library.source(topic, fact)
            assert src.url.scheme in ("http", "https") and src.title
            assert src.published <= dt.date.today()
            assert fact.as_of <= dt.date.today()


def test_real_packs_check_clean():
    report = check_library()
    assert report.ok, report.render()


@pytest.fixture
def packs_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "packs"
    shutil.copytree(PACKS_DIR, dest)
    return dest


def test_duplicate_alias_is_an_error(packs_copy: Path):
    path = packs_copy / "platforms" / "douyin.yaml"
    text = path.read_text(encoding="utf-8").replace("aliases:\n", "aliases:\n- rednote\n", 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ContentError) as exc:
        load_library(packs_copy)
    assert any("rednote" in p and "xiaohongshu" in p for p in exc.value.problems)


def test_unknown_source_is_an_error(packs_copy: Path):
    path = packs_copy / "platforms" / "wechat.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("source: ", "source: nope-", 1), encoding="utf-8")
    report = check_library(packs_copy)
    assert not report.ok
    assert any("unknown source" in e for e in report.errors)


def test_stale_facts_are_warnings_not_errors(packs_copy: Path):
    report = check_library(packs_copy, stale_days=30, today=dt.date.today())
    assert report.ok
    assert any("stale" in w for w in report.warnings)
    fresh = check_library(packs_copy, stale_days=100_000, today=dt.date.today())
    assert not any("stale" in w for w in fresh.warnings)


def test_broken_template_is_reported_per_topic(packs_copy: Path, tmp_path: Path):
    from content.loader import TEMPLATES_DIR

    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, templates)
    (templates / "platform.j2").write_text("{{ reply.no_such_field.x }}")
    # Rendering every card is the handlers' half of `content check` (content imports nothing above it).
    report = run_content_check(str(packs_copy), templates_dir=str(templates))
    assert not report.ok
    assert any("douyin (en)" in e and "template" in e for e in report.errors)
    assert any("douyin (zh)" in e and "template" in e for e in report.errors)


# ------------------------------------------------------------- the platform and calendar packs (issue 13)

MIRROR_HOSTS = ("uvozizkine.com", "pbbu.cn", "hainanjubao.cn", "healinghandsltd.com", "yyjob.cn", "glarity.app")


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.mark.parametrize("pack", ["platforms", "calendar"])
def test_platform_and_calendar_facts_are_bilingual_and_askable(library, pack):
    for topic in (t for t in library.topics.values() if library.topic_pack[t.id] == pack):
        assert topic.title_zh, topic.id
        for section, fact in topic.all_facts():
            where = f"{topic.id}/{section}: {fact.text[:50]}"
            assert fact.text_zh and _has_cjk(fact.text_zh), where
            assert any(_has_cjk(q) for q in fact.questions), where
            assert any(not _has_cjk(q) for q in fact.questions), where
        for event in topic.events:
            assert event.title_zh, event.id


@pytest.mark.parametrize("pack", ["platforms", "calendar"])
def test_platform_and_calendar_sources_are_https_originals(library, pack):
    meta = library.packs[pack]
    sources = dict(meta.sources)
    for topic in (t for t in library.topics.values() if library.topic_pack[t.id] == pack):
        sources.update(topic.sources)
    for sid, src in sources.items():
        assert src.url.scheme == "https", sid
        assert src.publisher, sid
        assert not any(host in (src.url.host or "") for host in MIRROR_HOSTS), sid


def test_every_platform_says_how_a_foreign_brand_gets_on_and_sells(library):
    for topic in library.of_kind("platform"):
        for section in ("foreign_brands", "commerce", "what_to_do", "users"):
            assert topic.sections.get(section), f"{topic.id} has no {section}"
        assert any(other in library.topics and library.topics[other].kind == "filing" for other in topic.related), (
            f"{topic.id} links to no filing"
        )


def test_the_calendar_looks_ahead_and_labels_estimates(library):
    after = dt.date(2026, 12, 1)
    dated = [(t.id, e) for t in library.of_kind("calendar") for e in t.events if e.date and e.date > after]
    assert len(dated) >= 8
    # Each festival topic has something to subscribe to beyond its yearly date.
    for topic_id in ("618", "double-11", "chinese-new-year", "public-holidays", "trade-fairs"):
        assert sum(tid == topic_id for tid, _ in dated) >= 1, topic_id
    cny = {e.id: e for t in library.of_kind("calendar") for e in t.events}
    # The statutory 2027 holiday days stay estimates until the State Council's notice is published (and
    # added to content/calendar_overrides.yaml); the lunar date of New Year's Day itself is not one.
    assert cny["spring-festival-holiday-2027"].estimate and "ESTIMATE" in cny["spring-festival-holiday-2027"].fact.text
    assert not cny["chinese-new-year-2027"].estimate and cny["chinese-new-year-2027"].date == dt.date(2027, 2, 6)


def test_2026_holiday_facts_list_every_holiday(library):
    topic = library.topics["public-holidays"]
    text = " ".join(f.text for f in topic.sections["dates"] if "2026 public holidays" in f.text)
    for name in ("New Year's Day", "Spring Festival", "Qingming", "Labour Day", "Dragon Boat", "Mid-Autumn",
                 "National Day"):
        assert name in text, name


async def test_chinese_new_year_2027_is_answered_with_its_date(ask):
    reply = await ask("When is Chinese New Year 2027?", mode="direct")
    assert reply.kind == "answer" and reply.topic == "chinese-new-year"
    assert "6 February 2027" in reply.text
    zh = await ask("2027年春节是哪天？", mode="direct")
    assert zh.kind == "answer" and zh.topic == "chinese-new-year"
