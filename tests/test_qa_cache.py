"""The Q&A index on disk: a loaded index answers exactly as a built one, is rebuilt when the content
changes, survives a damaged file, and concurrent processes can share one cache directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from content.loader import PACKS_DIR, load_library
from handlers.qa import QAIndex, load_questions
from handlers.qa.cache import index_key, load_index
from handlers.qa.index import _topic_docs
from handlers.qa.lexicon import default_lexicon

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [item.question for item in load_questions(REPO / "tests" / "qa_questions.yaml")[:60]]


@pytest.fixture(scope="module")
def library():
    return load_library()


@pytest.fixture(scope="module")
def built(library):
    return QAIndex.build(library)


def builds(monkeypatch) -> list[int]:
    """Count QAIndex.build calls (the real build still runs)."""
    calls: list[int] = []
    real = QAIndex.build.__func__

    def counting(cls, *args, **kwargs):
        calls.append(1)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(QAIndex, "build", classmethod(counting))
    return calls


def test_a_loaded_index_answers_exactly_as_a_built_one(tmp_path, library, built, monkeypatch):
    first = load_index(library, tmp_path)  # builds and saves
    assert list(tmp_path.glob("qa-index-*.pickle"))
    calls = builds(monkeypatch)
    loaded = load_index(library, tmp_path)
    assert calls == [], "the second load must come from the cache"
    assert loaded is not first
    for question in [*QUESTIONS, "人脸识别备案需要多久", "小红书有多少用户"]:
        a, b = built.match(question), loaded.match(question)
        assert [d.fact.text for d in a.docs] == [d.fact.text for d in b.docs], question
        # float32 sums over sets: the order of a set (and so the last bits) differs between processes anyway
        assert a.confidence == pytest.approx(b.confidence, abs=1e-5), question
    # The facts and topics are the library's own objects, not copies.
    match = loaded.match("how long does the facial recognition filing take")
    assert match.docs and match.docs[0].topic is library.topics[match.docs[0].topic.id]
    facts = [f for t in library.topics.values() for _, _, f in _topic_docs(t)]
    assert all(any(d.fact is f for f in facts) for d in match.docs)

def test_changed_content_is_a_new_key_and_a_fresh_build(tmp_path, monkeypatch):
    packs = tmp_path / "packs"
    shutil.copytree(PACKS_DIR, packs)
    cache = tmp_path / "cache"
    before = load_library(packs)
    load_index(before, cache)
    path = packs / "filings" / "facial-recognition.yaml"
    text = path.read_text(encoding="utf-8")
    assert "30 working days" in text
    path.write_text(text.replace("30 working days", "31 working days", 1), encoding="utf-8")
    after = load_library(packs)
    assert index_key(before, default_lexicon()) != index_key(after, default_lexicon())
    calls = builds(monkeypatch)
    index = load_index(after, cache)
    assert calls == [1], "changed content must not be answered from the old index"
    assert any("31 working days" in d.fact.text for d in index.docs)
    assert not any("31 working days" in d.fact.text for d in load_index(before, None).docs)
    assert len(list(cache.glob("qa-index-*.pickle"))) == 1  # the stale index was removed


def test_a_damaged_cache_file_is_rebuilt_not_an_error(tmp_path, library, monkeypatch):
    load_index(library, tmp_path)
    (path,) = tmp_path.glob("qa-index-*.pickle")
    path.write_bytes(path.read_bytes()[:1000])
    calls = builds(monkeypatch)
    index = load_index(library, tmp_path)
    assert calls == [1] and index.match("icp filing").docs
    assert path.stat().st_size > 1000  # and written again whole


def test_an_unwritable_cache_dir_only_costs_time(tmp_path, library):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert load_index(library, blocker / "cache").match("icp filing").docs


LOADER = """
import sys
from content.loader import load_library
from handlers.qa.cache import load_index
index = load_index(load_library(), sys.argv[1])
print(index.match("how long does the facial recognition filing take").docs[0].topic.id)
"""


def test_concurrent_processes_share_one_cache_dir(tmp_path):
    # Both start with an empty cache, both build and write; neither sees a half-written file.
    procs = [subprocess.Popen([sys.executable, "-c", LOADER, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert {o[0].strip() for o in outs} == {"facial-recognition"}
    assert not list(tmp_path.glob("*.tmp"))
    again = subprocess.run([sys.executable, "-c", LOADER, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert again.stdout.strip() == "facial-recognition"
