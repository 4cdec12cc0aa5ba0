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
    report = check_library(packs_copy, stale_days=30, today=dt.date(2026, 11, 23))
    assert report.ok
    assert any("stale" in w for w in report.warnings)
    fresh = check_library(packs_copy, stale_days=100_000, today=dt.date(2026, 11, 23))
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
