"""`content check` rules and `content stats`, against the fixture packs in tests/fixtures/packs (whose
figures are known) and copies of them with one thing broken."""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_cli import CHINADESK

from bot.cli import run_content_check
from content.loader import CONTENT_DIR, check_library, content_stats, load_library

FIXTURES = Path(__file__).parent / "fixtures" / "packs"
TODAY = dt.date(2026, 12, 1)

# What the fixture packs are built to give on TODAY (see tests/fixtures/packs/README.md).
FIXTURE_STATS = {
    "filings": 2, "sectors": 1, "platforms": 1, "calendar": 1,
    "facts": 17,  # alpha 6 (summary, 2 section facts, deadline rule, follow-on, event), gamma 2, beta 3, delta 2,
    #               spring sale 4 (summary, 3 events)
    "unverified": 1,  # alpha's who_must_file
    "zh_facts": 15,  # all but alpha's who_must_file and gamma's summary
    "sources": 5, "sources_http": 1,  # gamma's old guide
    "as_of_within_365_days": 14,  # all but alpha's 2025-03-01 fact and gamma's two 2024 facts
    "future_events": 3,  # alpha rules 2027-01-15, spring sale 2027-02-06, mid-year sale 2027-06-18 (not last-sale 2025)
}


def rules(lines: list[str]) -> set[str]:
    return {m[1] for line in lines if (m := re.match(r"\[([a-z-]+)\]", line))}


@pytest.fixture
def packs(tmp_path: Path) -> Path:
    dest = tmp_path / "packs"
    shutil.copytree(FIXTURES, dest, ignore=shutil.ignore_patterns("*.md"))
    return dest


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# -------------------------------------------------------------------------------------------- stats


def test_stats_of_the_fixture_packs():
    assert content_stats(load_library(FIXTURES), today=TODAY) == FIXTURE_STATS


def test_stats_are_relative_to_today():
    later = content_stats(load_library(FIXTURES), today=dt.date(2027, 12, 1))
    assert later["as_of_within_365_days"] == 0  # the newest fixture fact is from 2026-11-01
    assert later["future_events"] == 1  # only the yearly mid-year sale, on 2028-06-18


def test_stats_from_the_command_line():
    proc = subprocess.run([CHINADESK, "content", "stats", "--packs", str(FIXTURES), "--today", "2026-12-01", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {**FIXTURE_STATS, "today": "2026-12-01"}
    table = subprocess.run([CHINADESK, "content", "stats", "--packs", str(FIXTURES), "--today", "2026-12-01"],
                           capture_output=True, text=True, timeout=60).stdout
    assert "| `zh_facts` | 15 (88.2 %) |" in table
    assert "| `sources_http` | 1 (20.0 %) |" in table
    bad = subprocess.run([CHINADESK, "content", "stats", "--today", "1 Dec"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--today" in bad.stderr


# --------------------------------------------------------------------------------------------- check


def test_fixture_packs_report_the_quality_rules_as_warnings_and_an_http_source_as_an_error():
    report = run_content_check(str(FIXTURES), today=TODAY)
    assert rules(report.errors) == {"http-source"}
    assert "http://www.example.org/gamma-guide" in report.render()
    assert rules(report.warnings) == {
        "no-text-zh", "few-next-steps", "unlinked-filing", "platform-no-entry", "duplicate-question",
    }
    assert any("gamma-filing" in w and "0 next_steps" in w for w in report.warnings)
    assert any("delta-platform" in w and "foreign_brands" in w for w in report.warnings)
    assert any("What is gamma registration" in w for w in report.warnings)  # same question, other case and "?"


def test_strict_turns_the_quality_rules_and_the_pending_ones_into_errors():
    report = run_content_check(str(FIXTURES), today=TODAY, strict=True)
    assert rules(report.errors) == {
        "no-text-zh", "few-next-steps", "unlinked-filing", "platform-no-entry", "duplicate-question", "http-source",
    }
    proc = subprocess.run([CHINADESK, "content", "check", "--packs", str(FIXTURES), "--today", "2026-12-01",
                           "--strict"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "[few-next-steps]" in proc.stdout
    proc = subprocess.run([CHINADESK, "content", "check", "--packs", str(FIXTURES), "--today", "2026-12-01"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "ERROR   [http-source]" in proc.stdout
    assert "ERROR   [few-next-steps]" not in proc.stdout and "warning [few-next-steps]" in proc.stdout


def test_a_source_without_publisher_is_an_error(packs: Path):
    edit(packs / "sectors" / "pack.yaml", "    publisher: Example Research\n", "")
    report = check_library(packs, today=TODAY)
    assert not report.ok and rules(report.errors) == {"no-publisher", "http-source"}  # the fixtures' http source
    assert any("sector-report" in e for e in report.errors if e.startswith("[no-publisher]"))


def test_a_calendar_with_no_future_event_fails(packs: Path):
    path = packs / "calendar" / "spring-sale.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: text.index("events:")] + text[text.index("- id: last-sale"):].replace(
        "- id: last-sale", "events:\n- id: last-sale"), encoding="utf-8")
    report = check_library(packs, today=TODAY)
    assert "no-future-event" in rules(report.errors) and "spring-sale" in report.render()


def test_a_related_id_that_does_not_exist_is_an_error(packs: Path):
    edit(packs / "filings" / "alpha-filing.yaml", "related: [beta-sector]", "related: [beta-sector, no-such-topic]")
    report = check_library(packs, today=TODAY)
    assert not report.ok and any("no-such-topic" in e and "does not exist" in e for e in report.errors)


def test_a_sector_or_platform_no_filing_links_to_is_reported(packs: Path):
    edit(packs / "filings" / "alpha-filing.yaml", "related: [beta-sector]", "related: []")
    report = check_library(packs, today=TODAY)
    assert any(w.startswith("[unlinked-topic] sectors/beta-sector") for w in report.warnings)
    # Delta links to alpha itself, so alpha still concerns a platform and delta has its filing.
    assert not any("delta-platform" in w for w in report.warnings if w.startswith("[unlinked"))
    assert not any("alpha-filing" in w for w in report.warnings if w.startswith("[unlinked"))


def test_real_packs_pass_even_the_strict_check():
    # Bilingual, linked, with checklists and no duplicated alternate questions: CI runs `--strict`.
    report = run_content_check(strict=True)
    assert report.ok, report.render()


def test_content_imports_nothing_from_handlers_or_bot():
    for path in sorted(CONTENT_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(("handlers", "bot")), f"{path.name} imports {name}"


def test_too_many_unverified_facts_fail_the_strict_check(packs: Path):
    import yaml

    path = packs / "sectors" / "beta-sector.yaml"
    topic = yaml.safe_load(path.read_text(encoding="utf-8"))
    for fact in [topic["summary"], *(f for facts in topic["sections"].values() for f in facts)]:
        fact["verified"] = False
    path.write_text(yaml.safe_dump(topic, allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert "too-unverified" in rules(check_library(packs, today=TODAY).warnings)
    strict = check_library(packs, today=TODAY, strict=True)
    assert "too-unverified" in rules(strict.errors) and "at most 15%" in strict.render()
