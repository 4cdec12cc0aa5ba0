"""The CLI runs the same handlers; checked through the installed console script."""

from __future__ import annotations

import json
import os
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
        assert "49" not in out["text"]  # template syntax in user text is never evaluated
    # A terminal has no markup to inject into: the name is echoed as typed, inert, not as chat entities.
    out = ask_json("/china-filing <!channel>")
    assert "“<!channel>”" in out["text"] and "&lt;" not in out["text"]


def test_cli_output_is_plain_text_not_chat_markup():
    # The core escapes echoed user text for chat surfaces (R&amp;D &lt;tax&gt;); a terminal and a JSON
    # reader get it back as typed.
    proc = run("ask", "/china-filing R&D <tax>")
    assert proc.returncode == 0, proc.stderr
    assert "“R&D <tax>”" in proc.stdout
    assert "&amp;" not in proc.stdout and "&lt;" not in proc.stdout and "&gt;" not in proc.stdout
    out = ask_json("/china-filing R&D <tax>")
    assert "“R&D <tax>”" in out["text"] and "&amp;" not in json.dumps(out)
    # Someone who typed an entity sees the entity, not the character it stands for.
    assert "“&lt;b&gt;”" in ask_json("/china-filing &lt;b&gt;")["text"]


# What a command may import: the core, never a platform SDK or the web server (issue 14: a CLI that starts
# like a CLI). Checked in a fresh interpreter, in sys.modules after main() returned.
PLATFORM_MODULES = ("slack_bolt", "slack_sdk", "botbuilder", "microsoft_agents", "aiohttp", "bot.slack", "bot.teams",
                    "bot.app", "bot.server", "bot.platforms", "bot.observability", "prometheus_client")
IMPORTS = """
import contextlib, io, json, sys
from bot.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    status = main(sys.argv[1:])
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""


def imported_by(*argv: str, env: dict | None = None) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", IMPORTS, *argv], capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] in (0, 1), out["status"]
    return set(out["modules"])


def platform_modules(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in PLATFORM_MODULES))


@pytest.mark.parametrize("argv", [
    ("ask", "/china-filing"),
    ("ask", "/china-filing facial-recognition from 2025-09-20", "--json"),
    ("content", "stats"),
    ("content", "check"),
])
def test_ask_and_content_import_only_the_core(argv):
    modules = imported_by(*argv)
    assert "handlers.router" in modules  # the core did run
    assert platform_modules(modules) == []


def test_a_command_never_builds_the_qa_index_and_a_question_loads_it_from_the_cache(tmp_path):
    env = {**os.environ, "CHINADESK_CACHE_DIR": str(tmp_path / "cache")}
    modules = imported_by("ask", "/china-filing", env=env)
    assert not {"handlers.qa.index", "numpy", "bm25s", "jieba"} & modules  # a command needs no index
    assert not (tmp_path / "cache").exists()
    question = "how long does the facial recognition filing take?"
    modules = imported_by("ask", question, env=env)
    assert "handlers.qa.index" in modules and platform_modules(modules) == []
    (index,) = (tmp_path / "cache").glob("qa-index-*.pickle")
    first = subprocess.run([CHINADESK, "ask", question], capture_output=True, text=True, timeout=120, env=env)
    again = subprocess.run([CHINADESK, "ask", question], capture_output=True, text=True, timeout=120, env=env)
    assert first.returncode == again.returncode == 0 and first.stdout == again.stdout
    assert "30 working days" in first.stdout
    assert list((tmp_path / "cache").glob("qa-index-*.pickle")) == [index]


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
