"""The CLI runs the same handlers; checked through the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

CHINADESK = shutil.which("chinadesk") or str(__import__("pathlib").Path(sys.executable).with_name("chinadesk"))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHINADESK, *args], capture_output=True, text=True, timeout=60)


def ask_json(text: str, *extra: str) -> dict:
    proc = run("ask", text, "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_deadline_json_contract():
    out = ask_json("/china-filing facial-recognition from 2025-09-20")
    assert out["kind"] == "deadline"
    assert out["deadline"] == "2025-11-06"
    assert out["topic"] == "facial-recognition"
    assert any("CAC" in s["title"] for s in out["sources"])
    for s in out["sources"]:
        assert set(s) == {"title", "url", "published"}
    assert isinstance(out["caveats"], list) and out["caveats"]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("/china-filing", "menu"),
        ("/china-filing help", "help"),
        ("/china-filing face", "filing"),
        ("/china-sector", "menu"),
        ("/china-sector semiconductors", "sector"),
        ("/china-platform", "menu"),
        ("/china-platform 小红书", "platform"),
        ("/china-filing from", "error"),
    ],
)
def test_every_command_kind(text, kind):
    assert ask_json(text)["kind"] == kind


def test_plain_output_is_readable():
    proc = run("ask", "/china-platform rednote")
    assert proc.returncode == 0
    assert proc.stdout.startswith("Xiaohongshu")
    assert "Sources:" in proc.stdout
    assert "{" not in proc.stdout.splitlines()[0]


def test_bad_usage_exits_non_zero_with_one_line():
    proc = run("ask")
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run("ask", "x", "--platform", "fax")
    assert proc.returncode != 0


def test_hostile_input_through_the_cli():
    for text in ("/china-filing <!channel>", "/china-filing {{ 7*7 }}", "x" * 100_000):
        out = ask_json(text)
        assert out["kind"] in ("error", "no_answer")
        assert "<!channel>" not in out["text"] and "49" not in out["text"]


def test_content_check_is_clean():
    proc = run("content", "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: 0 error(s)" in proc.stdout


def test_content_check_fails_on_a_broken_pack(tmp_path):
    pack = tmp_path / "broken"
    pack.mkdir()
    (pack / "pack.yaml").write_text(
        "name: broken\nkind: platform\ndescription: x\n"
        "sources:\n  s1: {title: T1 title, url: 'not a url', published: 2025-01-01}\n"
    )
    (pack / "thing.yaml").write_text(
        "id: thing\nkind: platform\ntitle: Thing\nsummary: {text: abc, source: s2, as_of: 2025-01-01}\n"
    )
    proc = run("content", "check", "--packs", str(tmp_path))
    assert proc.returncode == 1
    assert "url" in proc.stdout and "FAILED" in proc.stdout
