"""``chinadesk feedback report``: the editors' review queue, through the installed console script and a real
database file that the bot (here ``chinadesk ask`` in a channel) and the store wrote."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bot.store import Feedback, open_store

CHINADESK = shutil.which("chinadesk") or str(Path(sys.executable).with_name("chinadesk"))
UNANSWERABLE = "What is the visa fee for Douyin staff?"


def run(*args: str, db: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_APP", "DATABASE_URL",
                                                                       "FEEDBACK_", "UNANSWERED_"))}
    return subprocess.run([CHINADESK, *args], capture_output=True, text=True, timeout=120,
                          env={**base, "DATABASE_URL": f"sqlite:///{db}", **env})


def ask_in_channel(db: Path, text: str, **env: str) -> dict:
    proc = run("ask", text, "--json", "--platform", "slack", "--channel", "C1", "--workspace", "T1", db=db, **env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


async def _vote_down_with_reason(db: Path) -> None:
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        await store.record_feedback(Feedback("slack", "T1", "C1", "U1", "C1:1.1", "icp-beian", "down",
                                             "how long does beian take?", fact="icp-beian#summary"))
        assert await store.record_feedback_reason("slack", "C1:1.1", "U1", "outdated", "MIIT changed it")
    finally:
        await store.close()


async def test_report_lists_negative_feedback_and_unanswered_questions(tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite3"
    assert ask_in_channel(db, UNANSWERABLE)["kind"] == "no_answer"
    await _vote_down_with_reason(db)

    proc = run("feedback", "report", "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert {"negative", "unanswered"} <= set(report)
    [topic] = report["negative"]
    assert topic["topic"] == "icp-beian" and topic["reasons"] == {"outdated": 1}
    assert topic["facts"][0]["fact"] == "icp-beian#summary" and topic["facts"][0]["comments"] == ["MIIT changed it"]
    assert topic["facts"][0]["fact_text"]  # the fact as the packs say it now, for the editor to check
    [unanswered] = report["unanswered"]
    assert unanswered["topic"] == "douyin" and unanswered["questions"] == [UNANSWERABLE]

    text = run("feedback", "report", db=db)
    assert text.returncode == 0 and "It's out of date ×1" in text.stdout and UNANSWERABLE in text.stdout

    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    later = json.loads(run("feedback", "report", "--json", "--since", tomorrow, db=db).stdout)
    assert later["negative"] == [] and later["unanswered"] == []


async def test_question_text_is_not_kept_when_switched_off(tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite3"
    ask_in_channel(db, UNANSWERABLE, FEEDBACK_KEEP_QUESTION_TEXT="off")
    report = json.loads(run("feedback", "report", "--json", db=db).stdout)
    assert report["unanswered"][0]["count"] == 1 and report["unanswered"][0]["questions"] == []
    assert UNANSWERABLE not in (db.read_bytes().decode("utf-8", "replace"))  # not on disk either
    assert "not kept" in run("feedback", "report", db=db).stdout


def test_bad_arguments_and_settings_are_one_clear_line(tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite3"
    bad = run("feedback", "report", "--since", "last week", db=db)
    assert bad.returncode == 2 and "--since" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    for name, value in (("FEEDBACK_KEEP_QUESTION_TEXT", "maybe"), ("UNANSWERED_RETENTION_DAYS", "0")):
        proc = run("ask", UNANSWERABLE, "--channel", "C1", db=db, **{name: value})
        assert proc.returncode == 2 and name in proc.stderr, proc.stderr
