"""Channel Q&A: free-text questions answered from the packs, or an honest "I don't know".

How a question is answered
--------------------------
:class:`QAIndex` is built once from the :class:`~content.loader.Library` (``build_desk`` does it at
start-up; the fallback handler builds and caches one lazily for the CLI and tests). Every fact is a
document. BM25 (``bm25s``) scores it on five fields, combined with weights:

* the fact's own text, its editor ``keywords`` and its section label (fact level);
* its topic's names (title, Chinese title, aliases) and the whole topic's text (topic level, shared by
  every fact of the topic, so a question that names a topic finds it even in other words).

Text is analysed the same way for facts and questions: NFKC + case-folding, numbers normalised
(``100k`` = ``100,000`` = ``10万``), English stemmed (Snowball), Chinese segmented with jieba (its common
words, plus topic names, Chinese keywords, synonyms, stop words and cues, so ``小红书`` stays whole), stop
words dropped. Questions additionally get chat shorthand written out (``regs``, ``ppl``, ``mau``), typo
correction against the index vocabulary (rapidfuzz; not a one-letter substitution in a short word, which
is as likely another real word: "patent" is not "parent"), joined compounds
(``red note`` -> ``rednote``), synonym expansion from ``content/synonyms.yaml`` and intent detection
(``how long`` -> deadline/review-time sections...), which boosts the facts that answer that kind of
question.

Confidence is a logistic model of "the top fact answers the question" over a few features: how much
of the question (IDF-weighted) the answer's facts account for, whether the question uses the packs'
own vocabulary (a topic name, a synonym of one, a domain term, or a company editors keyed), how much
distinctive evidence matched, how many of its words, whether its neighbouring words also stand together
in the packs, how distinctive the most distinctive word is that the answer lacks entirely ("visa", "WFOE"),
how clearly the best topic beats the runner-up, and whether it asks about another jurisdiction (a place
framed as the one asked about, "under GDPR", "in the UK", unlike one saying who asks, "a UK company").
``python bench/bench_qa.py --calibrate`` fits it on half 1 of every question set and reports reliability
on the halves 2 (see :data:`CONFIDENCE_COEF` for the shipped fit). Below :data:`ANSWER_BAR` the
bot says it does not know; in watch mode the bar is :data:`WATCH_BAR` and the message must also look
like a question about the packs' topics.
"""

from __future__ import annotations

import functools
import inspect
import io
import itertools
import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bm25s
import jieba
import numpy as np
import snowballstemmer
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from content.loader import CONTENT_DIR, Library, parse_yaml
from content.schema import SECTION_LABELS, Fact, Topic
from handlers.cards import SourceList, caveats_for, topic_command
from handlers.request import Action, NotAvailableError, Reply, ReplyField, Request, UsageError
from handlers.router import Desk, router

log = logging.getLogger("chinadesk.qa")

SYNONYMS_PATH = CONTENT_DIR / "synonyms.yaml"

# Bars on the calibrated confidence (the estimated chance that the top fact answers the question).
# A confident wrong answer costs more than an honest "I don't know" (about three times as much), so
# the bot answers only from 0.75. Ambient messages in a watched channel interrupt people who did not
# ask the bot, so they need a clearly higher bar.
ANSWER_BAR = 0.75
WATCH_BAR = 0.9

# Field weights of the BM25 score. Fact text is the evidence; keywords are editor-chosen paraphrases;
# the section label ("Review time") helps short questions; topic fields decide *which topic*.
FIELD_WEIGHTS: dict[str, float] = {"text": 1.0, "keywords": 0.8, "section": 0.5, "names": 1.0, "topic": 0.4}
NAME_BOOST = 0.5  # topic-level score of a topic the question names (by title or alias)
OUTSIDE_NAMED = 0.8  # score factor for facts outside the topics a question names
RESIDUAL_WEIGHT = 1.0  # extra fact-level weight of the question's words that are not a named topic's name
RESIDUAL_OUTSIDE = 0.5  # ...for facts of other topics (the name may be an alias of a broader topic)
INTENT_BOOST = 0.6  # a fact in the section the question asks for ("how long" -> review time)
SYNONYM_WEIGHT = 0.6  # query weight of a synonym's words: evidence, but weaker than the user's own word
SYNONYM_CREDIT = 0.9  # how far a synonym counts as covering the user's word, for confidence
FUZZY_CUTOFF = 80  # rapidfuzz ratio for typo correction (xiaohngshu -> xiaohongshu is 95)
SHORT_WORD = 7  # up to this length a one-letter substitution is not taken for a typo (patent != parent)
SUPPORT_RATIO = 0.6  # a supporting fact must score at least this share of the best one
OTHER_TOPIC_RATIO = 0.9  # ...and one of another topic this share (it answers the question as well)
MAX_FACTS = 3
EVIDENCE_SCALE = 4.0  # IDF mass at which matched evidence counts as 63% "strong"

# Confidence = sigmoid(bias + sum(coef * feature)), a logistic model of "the top fact answers the
# question". `python bench/bench_qa.py --calibrate` fits it on half 1 of every question set (ours, the
# blind batches, the public dev set) and prints its reliability on the halves 2. These values are the
# fit on every set but the held-out half of blind batch A (`--fit-on all --exclude qa_blind.yaml:2`),
# made before that half was scored; refitting on it as well moved no out-of-scope question below the
# bar and cost a point of accuracy on our set, so it was kept. "elsewhere" is fixed by hand (FIXED).
CONFIDENCE_FEATURES = (
    "answer_coverage", "fact_coverage", "elsewhere", "anchor", "evidence", "matched_words", "cohesion", "unmatched",
    "margin",
)
CONFIDENCE_COEF: dict[str, float] = {
    "bias": -8.66, "answer_coverage": 2.24, "fact_coverage": 3.30, "elsewhere": -4.00, "anchor": 1.68,
    "evidence": 2.73, "matched_words": 2.20, "cohesion": 0.57, "unmatched": -1.44, "margin": 3.13,
}

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK}]")
_NUMBER = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(k|m|mn|bn|thousand|million|billion|万|亿)?(?![a-z])"
)
_MULTIPLIER = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9,
               "万": 1e4, "亿": 1e8}
_WORD = re.compile(rf"[{_CJK}]+|[a-z0-9]+(?:[-.'’&][a-z0-9]+)*")
_QUESTION_MARK = re.compile(r"[?？]")


# ------------------------------------------------------------------------------------------- lexicon


@dataclass(frozen=True)
class Intent:
    """A kind of question ("how long", "what documents") and the sections that answer it."""

    name: str
    cues: tuple[str, ...]
    sections: frozenset[str]


@dataclass(frozen=True)
class Lexicon:
    """The domain language from ``content/synonyms.yaml``: synonyms, stop words, intents, cues."""

    synonyms: tuple[tuple[str, ...], ...]
    stopwords: frozenset[str]
    intents: tuple[Intent, ...]
    question_cues: tuple[str, ...]
    domain_terms: tuple[str, ...]
    elsewhere: tuple[str, ...] = ()  # places and laws outside mainland China
    home: tuple[str, ...] = ()  # words that put a question in China
    china_terms: tuple[str, ...] = ()  # China's own institutions, laws, platforms and companies
    identity: tuple[str, ...] = ()  # "UK <company>": the asker's own place, not the question's
    frames: tuple[str, ...] = ()  # "<under> GDPR", "<in> the UK": the place whose rules the question asks
    protected: frozenset[str] = frozenset()  # never stemmed
    abbreviations: tuple[tuple[str, str], ...] = ()  # chat shorthand -> the words it stands for

    @classmethod
    def load(cls, path: Path | str = SYNONYMS_PATH) -> Lexicon:
        # Every value is a word: the base loader keeps "on", "no", "618" and "11.11" as the strings they
        # are (the safe loader reads the stop words "on" and "no" as booleans, 618 as a number).
        raw = parse_yaml(Path(path).read_text(encoding="utf-8"), strings_only=True) or {}

        def words(items: Iterable[Any]) -> tuple[str, ...]:
            return tuple(_fold(str(w)) for w in items or ())

        stop = raw.get("stopwords") or {}
        cues = raw.get("question_cues") or {}
        return cls(
            synonyms=tuple(words(g) for g in raw.get("synonyms") or ()),
            stopwords=frozenset(words(stop.get("en")) + words(stop.get("zh"))),
            intents=tuple(
                Intent(name, words(spec.get("cues")), frozenset(spec.get("sections") or ()))
                for name, spec in (raw.get("intents") or {}).items()
            ),
            question_cues=words(cues.get("en")) + words(cues.get("zh")),
            domain_terms=words(raw.get("domain_terms")),
            elsewhere=words(raw.get("elsewhere")),
            home=words(raw.get("home")),
            china_terms=words(raw.get("china_terms")),
            identity=words(raw.get("identity")),
            frames=words(raw.get("frames")),
            protected=frozenset(words(raw.get("protected"))),
            abbreviations=tuple((_fold(k), _fold(v)) for k, v in (raw.get("abbreviations") or {}).items()),
        )


@functools.lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    return Lexicon.load()


# ------------------------------------------------------------------------------------------ analysis


_US = re.compile(r"(?<![A-Za-z])U\.?S\.?A?(?![A-Za-z])")


def _fold(text: str) -> str:
    # "US" the country, not "us" the pronoun: only the capitalised form is kept apart before case-folding.
    text = _US.sub(" usa ", unicodedata.normalize("NFKC", text))
    return text.casefold().strip()


def _number(match: re.Match[str]) -> str:
    value = float(match[1].replace(",", "")) * _MULTIPLIER.get(match[2] or "", 1)
    text = str(int(value)) if value == int(value) else match[1]
    return f" {text} "


def normalise_numbers(text: str) -> str:
    """``100k``, ``100,000`` and ``10万`` all become ``100000`` so that they match one another."""
    return _NUMBER.sub(_number, text)


def has_cjk(text: str) -> bool:
    return bool(_CJK_RE.search(text))


_STEMMER = snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Snowball stem for English words; numbers, short words and Chinese pass through."""
    if len(word) > 3 and word.isascii() and word.isalpha():
        return _STEMMER.stemWord(word)
    return word


# jieba's dictionary holds 349,000 words, most of them rare (frequency under 10) and in no question about
# China market entry; loading it all takes about half a second, a third of start-up. The words of the
# packs and of content/synonyms.yaml are added on top, and jieba's HMM still segments words it lacks.
_JIEBA_LINE = re.compile(rb"^[^ \n]+ [1-9][0-9]+(?: [^\n]*)?$", re.M)  # "word freq [tag]" with freq >= 10


@functools.lru_cache(maxsize=1)
def _base_jieba() -> jieba.Tokenizer:
    # One dictionary load per process; own instance so that our added words do not change segmentation
    # for any other code using the global jieba.
    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    try:
        data = Path(jieba.__file__).with_name("dict.txt").read_bytes()
    except OSError:  # an unusual install: jieba's own loader finds (and caches) its dictionary
        tokenizer.initialize()
        return tokenizer
    tokenizer.FREQ, tokenizer.total = tokenizer.gen_pfdict(io.BytesIO(b"\n".join(_JIEBA_LINE.findall(data))))
    tokenizer.initialized = True
    return tokenizer


class Analyzer:
    """Text -> words -> index tokens, identical for facts and questions."""

    def __init__(self, lexicon: Lexicon, cjk_words: Iterable[str] = ()) -> None:
        self.lexicon = lexicon
        self.stopwords = lexicon.stopwords
        self.jieba = _base_jieba()
        for word in sorted(set(cjk_words)):
            if has_cjk(word) and len(word) > 1 and " " not in word:
                self.jieba.add_word(word)

    def units(self, text: str) -> list[list[str]]:
        """Folded words in order, stop words included (callers need them to join ``we chat``).

        Each unit is one word as a person wrote it, with its alternative forms after it: a compound's
        parts (``non-personal`` -> ``nonpersonal``, ``non``, ``personal``), a Chinese word's shorter
        dictionary words (``人脸识别`` -> ``人脸``, ``识别``). A question counts a unit once.
        """
        text = normalise_numbers(_fold(text))
        out: list[list[str]] = []
        for match in _WORD.finditer(text):
            w = match[0]
            if has_cjk(w):
                for word in self.jieba.cut(w, HMM=True):
                    if word.strip():
                        subs = [t for t in self.jieba.cut_for_search(word, HMM=True) if t != word and len(t) > 1]
                        out.append([word, *subs])
                continue
            if w in self.stopwords:
                out.append([w])
                continue
            w = re.split(r"['’]", w)[0]  # china's -> china
            parts = [p for p in re.split(r"[-.&]", w) if p]
            if len(parts) > 1 and all(p.isdigit() for p in parts):
                out.append([w])  # 11.11, 6.18: dates people use as names
            elif len(parts) > 1:
                out.append(["".join(parts), *parts])  # e-commerce: ecommerce, e, commerce
            elif parts:
                out.append(parts)
        return out

    def words(self, text: str) -> list[str]:
        return [w for unit in self.units(text) for w in unit]

    def keep(self, word: str) -> bool:
        if word in self.stopwords:
            return False
        return not (len(word) == 1 and word.isascii() and not word.isdigit())

    def tokens(self, text: str) -> list[str]:
        return [self.stem(w) for w in self.words(text) if self.keep(w)]

    def phrase(self, text: str) -> tuple[str, ...]:
        """One token per unit, as a question's words are matched against names and synonyms."""
        return tuple(self.stem(unit[0]) for unit in self.units(text) if self.keep(unit[0]))

    def stem(self, word: str) -> str:
        # Protected words are acronyms the stemmer would turn into other words (VATS -> vat).
        return word if word in self.lexicon.protected else stem(word)


# -------------------------------------------------------------------------------------------- index


@dataclass(frozen=True)
class Doc:
    """One fact as a retrieval document."""

    topic: Topic
    section: str
    label: str
    fact: Fact


@dataclass
class _Field:
    bm25: bm25s.BM25
    weight: float

    def scores(self, concepts: Sequence[dict[str, float]], size: int) -> np.ndarray:
        """BM25 of a question given as concepts, each a set of alternative tokens with weights.

        A concept contributes its *best* form, not the sum of them: a fact that says "application",
        "registration" and "filed" answers "filing" once, not three times (synonym groups are long).
        """
        out = np.zeros(size, dtype=np.float32)
        vocab = self.bm25.vocab_dict
        data, indices, indptr = (self.bm25.scores[k] for k in ("data", "indices", "indptr"))
        for forms in concepts:
            ids = [(vocab[t], w) for t, w in forms.items() if t in vocab]
            if len(ids) == 1:
                tid, w = ids[0]
                sl = slice(indptr[tid], indptr[tid + 1])
                out[indices[sl]] += w * data[sl]
            elif ids:
                best = np.zeros(size, dtype=np.float32)
                for tid, w in ids:
                    sl = slice(indptr[tid], indptr[tid + 1])
                    idx = indices[sl]
                    best[idx] = np.maximum(best[idx], w * data[sl])
                out += best
        return out


def _bm25(corpus: list[list[str]]) -> bm25s.BM25:
    retriever = bm25s.BM25(k1=1.2, b=0.75)
    # bm25s needs at least one token overall; an empty field of one document is fine.
    retriever.index(corpus if any(corpus) else [["\x00"]], show_progress=False)
    return retriever


@dataclass
class Concept:
    """One content word of a question, with the index tokens that stand for it and their weights."""

    word: str
    primary: str  # the index token it stands for (the corrected one for a typo)
    forms: dict[str, float]  # token -> weight in the query (1.0 own word, lower for fuzzy/synonym)
    credit: dict[str, float]  # token -> how far finding it covers this word (for confidence)
    idf: float
    intents: set[str] = field(default_factory=set)  # intents whose cue this word is part of
    fuzzy: bool = False  # the word was corrected as a typo
    expanded: bool = False  # the word is a synonym of a topic's name ("semiconductor" for chips)


@dataclass(frozen=True)
class Place:
    """A place or law outside mainland China named in a question, and how it is used."""

    phrase: tuple[str, ...]
    framed: bool = False  # "under GDPR", "in the UK": the question asks about that place's rules
    identity: bool = False  # "a UK company", "British brands": who is asking, not where


@dataclass
class Query:
    text: str
    words: list[str]
    concepts: list[Concept]
    intents: list[Intent]
    named: set[int]  # indexes of topics the question names
    asks: bool = False  # it is phrased as a question (question mark, question word, or a known intent)
    elsewhere: list[Place] = field(default_factory=list)  # mentions of another jurisdiction
    home: bool = False  # names China itself ("China", "PRC", "中国")
    china: bool = False  # ...or one of China's own institutions, laws or platforms (CAC, PIPL, WeChat)

    def weights(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in self.concepts:
            for token, w in c.forms.items():
                out[token] = max(out.get(token, 0.0), w)
        return out


@dataclass
class Match:
    """The best facts for a question, and how sure we are."""

    query: Query
    docs: list[Doc]
    score: float
    confidence: float
    features: dict[str, float] = field(default_factory=dict)

    @property
    def topic(self) -> Topic | None:
        return self.docs[0].topic if self.docs else None


def _topic_docs(topic: Topic) -> list[tuple[str, str, Fact]]:
    """(section, extra label words, fact) for every fact of a topic, steps and events named."""
    out: list[tuple[str, str, Fact]] = [("summary", "", topic.summary)]
    for name, facts in topic.sections.items():
        out.extend((name, "", f) for f in facts)
    if topic.deadline:
        out.append(("deadline", topic.deadline.counted_from, topic.deadline.fact))
    out.extend(("follow_on", step.name, step.fact) for step in topic.follow_on)
    out.extend(("dates", event.title, event.fact) for event in topic.events)
    return out


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def calibrated(features: dict[str, float], coef: dict[str, float] | None = None) -> float:
    """The confidence for a match's features: a logistic model fitted on the question set."""
    coef = coef or CONFIDENCE_COEF
    return sigmoid(coef["bias"] + sum(coef[name] * features.get(name, 0.0) for name in CONFIDENCE_FEATURES))


class QAIndex:
    """Everything retrieval needs, built once from the library."""

    def __init__(self, library: Library, lexicon: Lexicon | None = None) -> None:
        self.library = library
        self.lexicon = lexicon = lexicon or default_lexicon()
        topics = list(library.topics.values())
        self.topics = topics
        cjk = [n for t in topics for n in library.names_of(t) if has_cjk(n)]
        cjk += [k for t in topics for _, _, f in _topic_docs(t) for k in f.keywords if has_cjk(k)]
        cjk += [w for group in lexicon.synonyms for w in group if has_cjk(w)]
        # Chinese stop words and cues too, so that "多长时间" or "什么时候" stays one (stop) word.
        cjk += [w for w in lexicon.stopwords if has_cjk(w)]
        cjk += [c for i in lexicon.intents for c in i.cues if has_cjk(c) and "*" not in c]
        self.analyzer = an = Analyzer(lexicon, cjk)

        self.docs: list[Doc] = []
        doc_topic: list[int] = []
        text, keywords, section = [], [], []
        raw_words: set[str] = set()
        for ti, topic in enumerate(topics):
            for sec, extra, fact in _topic_docs(topic):
                label = SECTION_LABELS[topic.kind].get(sec) or sec.replace("_", " ").capitalize()
                self.docs.append(Doc(topic, sec, label, fact))
                doc_topic.append(ti)
                for source, out in ((fact.text, text), ("; ".join(fact.keywords), keywords),
                                    (f"{label} {sec.replace('_', ' ')} {extra}", section)):
                    words = an.words(source)
                    raw_words.update(w for w in words if an.keep(w))
                    out.append([an.stem(w) for w in words if an.keep(w)])
        names = []
        for topic in topics:
            words = an.words("; ".join([*library.names_of(topic), topic.id.replace("-", " ")]))
            raw_words.update(w for w in words if an.keep(w))
            names.append([an.stem(w) for w in words if an.keep(w)])
        self.doc_topic = np.asarray(doc_topic, dtype=np.int32)
        # Facts are stored topic by topic: where each topic's facts start (every topic has a summary).
        self.topic_starts = np.searchsorted(self.doc_topic, np.arange(len(topics))).astype(np.intp)
        self.name_tokens = [frozenset(n) for n in names]
        whole = [list(names[ti]) for ti in range(len(topics))]
        for di, ti in enumerate(doc_topic):
            whole[ti].extend(text[di] + keywords[di] + section[di])

        self.doc_fields = {
            "text": _Field(_bm25(text), FIELD_WEIGHTS["text"]),
            "keywords": _Field(_bm25(keywords), FIELD_WEIGHTS["keywords"]),
            "section": _Field(_bm25(section), FIELD_WEIGHTS["section"]),
        }
        self.topic_fields = {
            "names": _Field(_bm25(names), FIELD_WEIGHTS["names"]),
            "topic": _Field(_bm25(whole), FIELD_WEIGHTS["topic"]),
        }
        # Token sets for coverage (confidence) and document frequencies over topics (word weight).
        self.topic_tokens = [frozenset(w) for w in whole]
        self.doc_tokens = [frozenset(text[i] + keywords[i] + section[i]) | frozenset(names[doc_topic[i]])
                           for i in range(len(self.docs))]
        self.vocab = frozenset(t for ws in whole for t in ws)
        # Word weights count what topics *say* (facts, keywords, names), not their section labels:
        # "Review time" on every filing card does not make "time" a common word of the packs.
        said = [set(names[ti]) for ti in range(len(topics))]
        for di, ti in enumerate(doc_topic):
            said[ti].update(text[di] + keywords[di])
        df: dict[str, int] = {}
        for tokens in said:
            for t in tokens:
                df[t] = df.get(t, 0) + 1
        n = len(topics)
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        self.max_idf = math.log(1 + (n + 0.5) / 0.5)

        # Words a typo may be corrected to, bucketed by length (a typo rarely changes length by more
        # than one or two letters, and this keeps correction fast on a large corpus).
        targets = raw_words | {w for g in lexicon.synonyms for m in g for w in an.words(m)}
        targets |= {w for w in lexicon.stopwords if w.isascii()}
        targets |= {w for i in lexicon.intents for c in i.cues for w in an.words(c)}
        self.raw_vocab = frozenset(w for w in targets if w.isascii() and w.isalpha())
        self._abbrev_map = dict(lexicon.abbreviations)
        self._abbrev = re.compile(
            r"(?<![\w.])(" + "|".join(re.escape(k) for k in sorted(self._abbrev_map, key=len, reverse=True))
            + r")(?![\w])") if self._abbrev_map else None
        self._by_length: dict[int, list[str]] = {}
        for w in self.raw_vocab:
            self._by_length.setdefault(len(w), []).append(w)

        # Synonym groups as token phrases; names of topics as token phrases (for "names the topic").
        self.synonym_phrases: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        self.synonym_cjk: list[tuple[str, int]] = []
        self.group_tokens: list[frozenset[str]] = []
        for gi, group in enumerate(lexicon.synonyms):
            tokens: set[str] = set()
            for member in group:
                phrase = an.phrase(member)
                tokens.update(phrase)
                if phrase:
                    self.synonym_phrases.setdefault(phrase[0], []).append((phrase, gi))
                if has_cjk(member):
                    self.synonym_cjk.append((member, gi))
            self.group_tokens.append(frozenset(tokens))
        self.name_phrases: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        self.name_cjk: list[tuple[str, int]] = []
        for ti, topic in enumerate(topics):
            for name in [*library.names_of(topic), topic.id.replace("-", " ")]:
                phrase = an.phrase(name)
                if phrase:
                    self.name_phrases.setdefault(phrase[0], []).append((phrase, ti))
                if has_cjk(name):
                    self.name_cjk.append((_fold(name), ti))

        # Word pairs that occur side by side in the packs (facts, keywords, names, synonyms): a question
        # whose neighbouring words never do ("time zones", "driving licence") is likely about something
        # else that merely shares words with the packs.
        pairs: set[tuple[str, str]] = set()
        for text_ in (*(d.fact.text for d in self.docs), *(k for d in self.docs for k in d.fact.keywords),
                      *(n for t in topics for n in library.names_of(t)), *(m for g in lexicon.synonyms for m in g)):
            phrase = an.phrase(text_)
            pairs.update(itertools.pairwise(phrase))
        self.pairs = frozenset(pairs | {(b, a) for a, b in pairs})
        # Names editors gave facts as keywords (capitalised: a company, a programme, a law) that belong
        # to at most three topics: "SMIC", "Alibaba", "ByteDance".
        keyword_df: dict[str, set[int]] = {}
        for di, doc in enumerate(self.docs):
            for keyword in doc.fact.keywords:
                for word in re.findall(r"[A-Za-z][A-Za-z0-9.&'-]*", keyword):
                    if any(ch.isupper() for ch in word):
                        for token in an.tokens(word):
                            keyword_df.setdefault(token, set()).add(doc_topic[di])
        self.entity_tokens = frozenset(
            t for t, ts in keyword_df.items() if len(ts) <= 3 and not t.replace(".", "").isdigit() and len(t) > 2
        )
        # Synonym groups that hold a topic's name or alias: using one of their words names the topic.
        names = {an.phrase(n) for t in topics for n in library.names_of(t)}
        self.name_groups = frozenset(
            gi for gi, g in enumerate(lexicon.synonyms) if any(an.phrase(m) in names for m in g)
        )
        self.domain_tokens = frozenset(t for term in lexicon.domain_terms for t in an.phrase(term))
        # Each place with its other names ("united states": usa, america...), as whole phrases, so that
        # "State Taxation Administration" does not count as mentioning the United States.
        member_phrases = [[an.phrase(m) for m in g] for g in lexicon.synonyms]
        self.elsewhere_alts: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        self.elsewhere_phrases: dict[str, list[tuple[str, ...]]] = {}
        for place in lexicon.elsewhere:
            phrase = an.phrase(place)
            if phrase:
                self.elsewhere_phrases.setdefault(phrase[0], []).append(phrase)
                alts = {phrase} | {p for g in member_phrases if phrase in g for p in g if p}
                self.elsewhere_alts[phrase] = sorted(alts)

        # How a foreign place is used in a question: framed ("under GDPR", "in the UK") or as who is
        # asking ("a UK company", "EU-based brands").
        places = "|".join(re.escape(p) for p in sorted(lexicon.elsewhere, key=len, reverse=True))
        frames = "|".join(re.escape(f) for f in sorted(lexicon.frames, key=len, reverse=True))
        nouns = "|".join(re.escape(n) for n in sorted(lexicon.identity, key=len, reverse=True))
        self._framed_re = (re.compile(rf"(?<![a-z0-9])(?:{frames})\s+(?:the\s+)?({places})(?![a-z0-9])")
                           if places and frames else None)
        self._identity_re = (re.compile(rf"(?<![a-z0-9])({places})(?:-based|\s+based)?\s+(?:{nouns})(?![a-z0-9])")
                             if places and nouns else None)
        # Platforms are China's own: naming one puts a question in China's market.
        self.china_topics = frozenset(ti for ti, t in enumerate(topics) if t.kind == "platform")

        # Which documents answer each intent: by section, or by a cue among the fact's own keywords.
        self.intent_docs: dict[str, np.ndarray] = {}
        folded_keywords = [[_fold(k) for k in doc.fact.keywords] for doc in self.docs]
        for intent in lexicon.intents:
            # One pattern per intent, any of its cues (faster than a search per cue and keyword).
            any_cue = (re.compile("|".join(f"(?:{_cue_pattern(c).pattern})" for c in intent.cues))
                       if intent.cues else None)
            mask = np.zeros(len(self.docs), dtype=bool)
            for di, doc in enumerate(self.docs):
                mask[di] = doc.section in intent.sections or (
                    any_cue is not None and any(any_cue.search(k) for k in folded_keywords[di]))
            self.intent_docs[intent.name] = mask

    @classmethod
    def build(cls, library: Library, lexicon: Lexicon | None = None) -> QAIndex:
        return cls(library, lexicon)

    # ---------------------------------------------------------------------------------- questions

    def _correct(self, word: str) -> tuple[str, float] | None:
        """The vocabulary word a typo most likely meant, with similarity in [0, 1]."""
        n = len(word)
        spread = 1 if n <= 7 else 2
        best: tuple[str, float] | None = None
        for length in range(n - spread, n + spread + 1):
            bucket = self._by_length.get(length)
            if not bucket:
                continue
            for target, score, _ in process.extract(word, bucket, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF,
                                                    limit=3):
                if n <= SHORT_WORD and _substitution(word, target):
                    continue
                if best is None or score > best[1] * 100:
                    best = (target, score / 100)
                break
        return best

    def _join(self, units: list[list[str]]) -> list[list[str]]:
        """``red note`` -> ``rednote``, ``we chat`` -> ``wechat`` when the joined word is in the packs."""
        out: list[list[str]] = []
        i = 0
        while i < len(units):
            if i + 1 < len(units) and len(units[i]) == len(units[i + 1]) == 1:
                a, b = units[i][0], units[i + 1][0]
                joined = a + b
                # Only when the split form is not already two words of the packs ("facial recognition"
                # must stay two words so that it still matches facts and names word by word).
                split_known = all(w in self.raw_vocab and self.analyzer.keep(w) for w in (a, b))
                if (a.isalpha() and b.isalpha() and joined in self.raw_vocab
                        and joined not in self.lexicon.stopwords and not split_known):
                    out.append([joined])
                    i += 2
                    continue
            out.append(units[i])
            i += 1
        return out

    def expand(self, text: str) -> str:
        """The question with chat shorthand written out ("regs" -> "regulations", "ppl" -> "people"),
        so that the words, the synonyms and the intent cues ("how many people") all see the full form."""
        folded = _fold(text)
        if self._abbrev is None or not folded:
            return folded
        return self._abbrev.sub(lambda m: self._abbrev_map[m[0]], folded)

    def analyse(self, text: str) -> Query:
        an = self.analyzer
        text = self.expand(text)
        folded = normalise_numbers(text)
        concepts: list[Concept] = []
        seen: set[str] = set()
        for unit in self._join(an.units(text)):
            w = unit[0]
            token = an.stem(w)
            fuzzy: tuple[str, float] | None = None
            # Only words of six letters or more: one edit in a shorter word is as likely another
            # English word ("lunch", not "launch") as a typo.
            if (token not in self.vocab and len(unit) == 1 and w.isascii() and w.isalpha() and len(w) >= 6
                    and w not in an.stopwords):
                fuzzy = self._correct(w)
                if fuzzy and fuzzy[0] in an.stopwords:
                    if OSA.distance(w, fuzzy[0]) <= 1:
                        continue  # "whihc", "shoudl": a misspelt question word
                    fuzzy = None  # "weather" is not a typo of "whether"
            if not an.keep(w):
                continue
            forms = {token: 1.0}
            credit = {token: 1.0}
            primary = token
            if fuzzy:
                primary = an.stem(fuzzy[0])
                forms[primary] = credit[primary] = fuzzy[1]
            for alt in unit[1:]:  # a compound's parts, a Chinese word's shorter words
                if an.keep(alt):
                    forms.setdefault(an.stem(alt), 1.0)
                    credit.setdefault(an.stem(alt), 0.8)
            if primary in seen:
                continue  # "BYD vs NIO vs Li Auto": a repeated word is one word
            seen.add(primary)
            # A number the packs never mention is the asker's own figure ("50,000 customers"), not a
            # sign that the question is about something else: it does not count against coverage.
            own_number = primary.replace(".", "").isdigit() and primary not in self.vocab
            idf = 0.0 if own_number else self.idf.get(primary, self.max_idf)
            concepts.append(Concept(w, primary, forms, credit, idf, fuzzy=fuzzy is not None))

        # Synonyms: phrases over the concepts' primary tokens, and Chinese members by substring.
        primaries = [c.primary for c in concepts]
        hits: list[tuple[int, int, int]] = []  # (start, end, group)
        for i, token in enumerate(primaries):
            for phrase, gi in self.synonym_phrases.get(token, ()):
                if tuple(primaries[i : i + len(phrase)]) == phrase:
                    hits.append((i, i + len(phrase), gi))
        for member, gi in self.synonym_cjk:
            if member in folded:
                for i, c in enumerate(concepts):
                    if has_cjk(c.word) and (c.word in member or member in c.word):
                        hits.append((i, i + 1, gi))
        for start, end, gi in hits:
            for c in concepts[start:end]:
                c.expanded = c.expanded or gi in self.name_groups
                for token in self.group_tokens[gi]:
                    if token not in c.forms:
                        c.forms[token] = SYNONYM_WEIGHT
                        c.credit[token] = SYNONYM_CREDIT
        for c in concepts:
            # A word the packs never use whose synonyms they do ("外国" for foreign, "kicks in" for takes
            # effect) is a domain word in other words: it weighs as its commonest synonym, not as a word
            # from outside the packs.
            if c.primary not in self.vocab and c.idf > 0:
                known = [self.idf[t] for t in c.forms if t != c.primary and t in self.idf]
                if known:
                    c.idf = min(c.idf, min(known))

        named: set[int] = set()
        for i, token in enumerate(primaries):
            for phrase, ti in self.name_phrases.get(token, ()):
                if tuple(primaries[i : i + len(phrase)]) == phrase:
                    named.add(ti)
        for name, ti in self.name_cjk:
            if name in folded:
                named.add(ti)

        framed = {self.analyzer.phrase(m[1]) for m in self._framed_re.finditer(folded)} if self._framed_re else set()
        identity = ({self.analyzer.phrase(m[1]) for m in self._identity_re.finditer(folded)}
                    if self._identity_re else set())
        elsewhere = []
        for i, token in enumerate(primaries):
            for phrase in self.elsewhere_phrases.get(token, ()):
                if tuple(primaries[i : i + len(phrase)]) == phrase:
                    elsewhere.append(Place(phrase, framed=phrase in framed, identity=phrase in identity))
        home = any(_has_cue(folded, w) for w in self.lexicon.home)
        china = home or bool(named & self.china_topics) or any(_has_cue(folded, w) for w in self.lexicon.china_terms)

        # The question's form ("how long", "fine", "how old") is answered by a fact of the right kind;
        # its words are marked so that such a fact counts them as accounted for.
        # A cue inside a longer cue of another intent gives way to it: in "when do the rules start
        # applying", "when do * apply" (a date) wins over "when do" (the circumstances).
        found = [(m.start(), m.end(), intent, cue) for intent in self.lexicon.intents for cue in intent.cues
                 for m in _cue_pattern(cue).finditer(folded)]
        kept = [f for f in found if not any(o[0] <= f[0] and f[1] <= o[1] and (o[1] - o[0]) > (f[1] - f[0])
                                            and o[2] is not f[2] for o in found)]
        intents: list[Intent] = []
        for _start, _end, intent, cue in kept:
            if intent not in intents:
                intents.append(intent)
            # Only the cue's own words are the question's form: in "how long does * take" the words the
            # "*" stands for ("a USPTO trademark") are what the question is about, and must be matched.
            cue_tokens = set(an.tokens(cue.replace("*", " ")))
            for c in concepts:
                if c.primary in cue_tokens:
                    c.intents.add(intent.name)
        first = folded.split()[0] if folded.split() else ""
        asks = bool(_QUESTION_MARK.search(folded)) or bool(intents) or first in self.lexicon.question_cues
        return Query(text=folded, words=[w for u in an.units(text) for w in u], concepts=concepts,
                     intents=intents, named=named, elsewhere=elsewhere, asks=asks, home=home, china=china)

    def _fact_scores(self, concepts: Sequence[dict[str, float]]) -> np.ndarray:
        total = np.zeros(len(self.docs), dtype=np.float32)
        for f in self.doc_fields.values():
            total += f.weight * f.scores(concepts, len(self.docs))
        return total

    def scores(self, query: Query) -> np.ndarray:
        concepts = [c.forms for c in query.concepts]
        n_docs, n_topics = len(self.docs), len(self.topics)
        total = self._fact_scores(concepts)
        if query.named:
            # A topic's name in the question picks the topic; the question's *other* words pick the
            # fact ("positive list" among the CBEC facts, not the summary that repeats "cross-border
            # e-commerce" most often). So those words count twice.
            names = frozenset().union(*(self.name_tokens[ti] for ti in query.named))
            residual = [c.forms for c in query.concepts if c.primary not in names]
            inside = np.isin(self.doc_topic, np.fromiter(query.named, dtype=np.int32))
            total += RESIDUAL_WEIGHT * self._fact_scores(residual) * np.where(inside, 1.0, RESIDUAL_OUTSIDE)
        topic_total = np.zeros(n_topics, dtype=np.float32)
        for f in self.topic_fields.values():
            topic_total += f.weight * f.scores(concepts, n_topics)
        for ti in query.named:  # a topic the question names outright
            topic_total[ti] *= 1.0 + NAME_BOOST
        total += topic_total[self.doc_topic]
        if query.named and OUTSIDE_NAMED < 1.0:
            # The user named a topic: its facts are preferred unless another topic's fact fits much
            # better (a named topic's aliases are often absent from its own fact texts: "DPO").
            inside = np.isin(self.doc_topic, np.fromiter(query.named, dtype=np.int32))
            total *= np.where(inside, 1.0, OUTSIDE_NAMED).astype(np.float32)
        if query.intents:
            # Additive: a fact that answers two of the question's intents ("when is a PIPIA required":
            # a date, or the circumstances) beats one that answers one.
            hits = np.zeros(n_docs, dtype=np.float32)
            for intent in query.intents:
                hits += self.intent_docs[intent.name]
            total *= 1.0 + INTENT_BOOST * hits
        return total

    def coverage(self, query: Query, tokens: frozenset[str], doc: int) -> float:
        """IDF-weighted share of the question's content words that ``tokens`` (or the kind of fact that
        ``doc`` is, for intent words such as "how old") account for."""
        total = sum(c.idf for c in query.concepts)
        if total <= 0:
            return 0.0
        got = 0.0
        for c in query.concepts:
            if any(self.intent_docs[name][doc] for name in c.intents):
                got += c.idf
                continue
            got += c.idf * max((w for t, w in c.credit.items() if t in tokens), default=0.0)
        return got / total

    def _elsewhere(self, query: Query, answer_tokens: frozenset[str]) -> bool:
        """The question is about another jurisdiction's rules or market, not China's.

        Not when it names China itself. A place that says who is asking ("a UK company", "British
        brands") is context when the question is about one of China's own institutions, laws or
        platforms ("can a UK company open a WeChat service account"). A place framed as the one whose
        rules are asked about ("under GDPR", "in the UK") is elsewhere unless the question is about
        something of China's ("do we need an ICP filing if we host in HK") and the answer speaks of
        that place. Any other place is elsewhere unless the question names a topic whose answer
        mentions it ("Is PIPL similar to GDPR?")."""
        if not query.elsewhere or query.home:
            return False
        for place in query.elsewhere:
            if place.identity and query.china:
                continue
            if place.framed and not query.china:
                return True
            if not query.named:
                return True
            if not any(answer_tokens.issuperset(alt) for alt in self.elsewhere_alts[place.phrase]):
                return True
        return False

    def _anchored(self, query: Query) -> bool:
        """A word of the user's own (not a typo guess) is a domain term or a synonym of a topic name, or
        the message is a question about a distinctive search term editors gave a fact ("What is SMIC?")."""
        own = [c for c in query.concepts if not c.fuzzy]
        if any(c.primary in self.domain_tokens or c.expanded for c in own):
            return True
        if any(_has_cue(query.text, term) for term in self.lexicon.domain_terms):
            return True
        return query.asks and any(c.primary in self.entity_tokens for c in own)

    def cohesion(self, query: Query) -> float:
        """Share of the question's neighbouring content words that also stand together in the packs."""
        primaries = [c.primary for c in query.concepts]
        pairs = list(itertools.pairwise(primaries))
        return sum(p in self.pairs for p in pairs) / len(pairs) if pairs else 1.0

    def margin(self, scores: np.ndarray, ti: int, top: float) -> float:
        """How clearly the best topic wins: 1 minus the runner-up topic's best score over the best one.
        A question about something the packs do not cover matches generic words of many topics alike."""
        per_topic = np.maximum.reduceat(scores, self.topic_starts)
        per_topic[ti] = 0.0
        return float(max(0.0, 1.0 - per_topic.max() / top)) if len(per_topic) > 1 else 1.0

    def unmatched(self, query: Query, tokens: frozenset[str], doc: int) -> float:
        """How distinctive the most distinctive word is that the answer does not account for at all
        (IDF over the largest IDF there is): "zones" in "how many time zones does China have", "WFOE",
        "visa". A question that everything but one rare word of matches is still about that word."""
        worst = 0.0
        for c in query.concepts:
            if c.idf <= 0 or any(self.intent_docs[name][doc] for name in c.intents):
                continue
            if max((w for t, w in c.credit.items() if t in tokens), default=0.0) <= 0:
                worst = max(worst, c.idf)
        return worst / self.max_idf

    def evidence(self, query: Query, tokens: frozenset[str]) -> float:
        mass = sum(c.idf * max((w for t, w in c.credit.items() if t in tokens), default=0.0) for c in query.concepts)
        return 1.0 - math.exp(-mass / EVIDENCE_SCALE)

    def match(self, text: str) -> Match:
        query = self.analyse(text)
        if not query.concepts:
            return Match(query, [], 0.0, 0.0, {"concepts": 0})
        scores = self.scores(query)
        best = int(np.argmax(scores))
        top = float(scores[best])
        if top <= 0:
            return Match(query, [], 0.0, 0.0, {"concepts": len(query.concepts)})
        ti = int(self.doc_topic[best])
        support = self._support(scores, best, ti, top)
        answer_tokens = self.doc_tokens[best].union(*(self.doc_tokens[i] for i in support))
        named_tokens = frozenset().union(*(self.name_tokens[t] for t in query.named))  # "618" is a name
        features = {
            "topic_coverage": self.coverage(query, self.topic_tokens[ti], best),
            "fact_coverage": self.coverage(query, self.doc_tokens[best], best),
            "answer_coverage": self.coverage(query, answer_tokens, best),
            "names_topic": float(ti in query.named),
            # The question is about another jurisdiction that the answer's facts do not mention.
            "elsewhere": float(self._elsewhere(query, answer_tokens)),
            # The question uses the packs' own domain language: names a topic, or uses a word of a
            # synonym group or a domain term. Everyday questions ("is the stock market open today")
            # can touch pack words by accident, but rarely this vocabulary.
            "anchor": float(bool(query.named) or self._anchored(query)),
            # How much distinctive evidence the fact itself matched (IDF mass, saturating).
            "evidence": self.evidence(query, self.doc_tokens[best]),
            # How many of the question's words (not bare numbers) the answer matched, up to three: one
            # word that happens to be in the packs ("channel", "7") is not a question we can answer;
            # a number counts only as a topic's name ("618").
            "matched_words": min(3, sum(
                1 for c in query.concepts
                if (not c.primary.replace(".", "").isdigit() or c.primary in named_tokens)
                and any(t in answer_tokens for t in c.credit)
            )) / 3,
            "cohesion": self.cohesion(query),
            "unmatched": self.unmatched(query, answer_tokens, best),
            "margin": self.margin(scores, ti, top),
            "concepts": float(len(query.concepts)),
        }
        confidence = calibrated(features)
        docs = [self.docs[i] for i in (best, *support)]
        return Match(query, docs, top, confidence, features)

    def _support(self, scores: np.ndarray, best: int, ti: int, top: float) -> list[int]:
        """Up to two more facts of the same topic that score nearly as well (they add detail)."""
        same = np.flatnonzero(self.doc_topic == ti)
        ranked = sorted((int(i) for i in same if i != best), key=lambda i: -scores[i])
        seen = {self.docs[best].fact.text}
        out: list[int] = []
        for i in ranked:
            if scores[i] < SUPPORT_RATIO * top or len(out) >= MAX_FACTS - 1:
                break
            text = self.docs[i].fact.text
            # Two sources saying the same thing ("reviews within 15 working days") is one fact to a reader.
            if text not in seen and not any(_similar(text, other) for other in seen):
                seen.add(text)
                out.append(i)
        # A fact of another topic that fits (almost) as well as the best one answers the question too
        # (PIPL fines are stated under both the SCC and the data-export topics): show it as well.
        k = min(len(scores), 8)
        for i in np.argpartition(-scores, k - 1)[:k] if k else ():
            i = int(i)
            text = self.docs[i].fact.text
            if (self.doc_topic[i] != ti and scores[i] >= OTHER_TOPIC_RATIO * top and text not in seen
                    and not any(_similar(text, other) for other in seen)):
                return [*out[: MAX_FACTS - 2], i]
        return out


def _substitution(a: str, b: str) -> bool:
    """``b`` is ``a`` with one letter replaced: in a short word that is as likely another real word
    ("patent" / "parent", "policy" / "police") as a typo, so it is not corrected. Swapped, missing or
    doubled letters ("facail", "xiaohngshu") are typos."""
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1


def _similar(a: str, b: str) -> bool:
    """Near-duplicate fact texts (same words, slightly different order or wording)."""
    return fuzz.token_set_ratio(a, b) >= 85


@functools.lru_cache(maxsize=4096)
def _cue_pattern(cue: str) -> re.Pattern[str]:
    """A cue as a regex: whole words in English, a substring in Chinese; ``*`` stands for a few words
    ("how long does * take")."""
    if has_cjk(cue):
        return re.compile(re.escape(cue).replace(r"\*", ".{0,12}?"))
    body = r"(?:\s+\S+){1,5}?\s+".join(re.escape(part.strip()) for part in cue.split("*"))
    return re.compile(rf"(?<![a-z0-9]){body}(?![a-z0-9])")


def _has_cue(text: str, cue: str) -> bool:
    return _cue_pattern(cue).search(text) is not None


# -------------------------------------------------------------------------------------- watch mode


def looks_like_question(index: QAIndex, text: str) -> bool:
    """A question mark, a question word (English or Chinese), or "tell me about"."""
    folded = _fold(text)
    if _QUESTION_MARK.search(folded):
        return True
    words = folded.split()
    if words and words[0] in index.lexicon.question_cues:
        return True
    return any(_has_cue(folded, cue) for cue in index.lexicon.question_cues if has_cjk(cue) or " " in cue)


def mentions_domain(index: QAIndex, query: Query) -> bool:
    """Names a topic, uses a synonym-list term, or a China/regulatory word."""
    if query.named:
        return True
    tokens = {t for c in query.concepts for t in c.forms if c.forms[t] == 1.0}
    if tokens & {t for g in index.group_tokens for t in g}:
        return True
    return any(_has_cue(query.text, term) for term in index.lexicon.domain_terms)


# ------------------------------------------------------------------------------------------ replies


def qa_index(desk: Desk) -> QAIndex:
    """The desk's index, built on first use (``build_desk`` builds it at start-up)."""
    if desk.qa is None:
        desk.qa = QAIndex.build(desk.library)
    return desk.qa


def no_answer(desk: Desk, request: Request, confidence: float = 0.0) -> Reply:
    reply = Reply(kind="no_answer", title="I don't have a vetted answer to that", text="", confidence=confidence)
    if request.mode == "watch":
        return reply  # ambient messages we cannot answer get no reply at all
    kinds: dict[str, dict[str, Any]] = {}
    for kind in ("filing", "sector", "platform", "calendar"):
        titles = sorted((t.title for t in desk.library.of_kind(kind)), key=str.casefold)
        if titles:
            kinds[kind] = {"count": len(titles), "examples": titles[:4]}
    return reply.model_copy(update={"text": desk.library.render("no_answer", kinds=kinds)})


def answer_reply(library: Library, match: Match, *, today: Any) -> Reply:
    """The best fact (and up to two that add to it) with sources, dates, caveats and the full card."""
    topic = match.docs[0].topic
    sources = SourceList(library, topic)
    facts = [d.fact for d in match.docs]
    lines = [sources.cite(d.fact, d.topic) for d in match.docs]
    command = topic_command(topic)
    first = match.docs[0]
    ref = f"{topic.id}#{first.section}"
    reply = Reply(
        kind="answer",
        title=f"{topic.title} · {first.label}",
        text="",
        summary=lines[0],
        topic=topic.id,
        fields=[ReplyField(label=d.label, value=line, unverified=not d.fact.verified)
                for d, line in zip(match.docs, lines, strict=True)],
        sources=sources.refs,
        caveats=caveats_for(facts, regulatory=any(d.topic.kind == "filing" for d in match.docs), today=today),
        related=[command],
        actions=[
            Action(kind="command", label="Full card", value=command),
            Action(kind="feedback_up", label="👍 Helpful", value=ref),
            Action(kind="feedback_down", label="👎 Not right", value=ref),
        ],
        confidence=match.confidence,
        ephemeral=False,
    )
    dates = sorted({f.as_of for f in facts})
    text = library.render("answer", reply=reply, lines=lines, as_of=dates, command=command)
    return reply.model_copy(update={"text": text})


@router.fallback
async def answer(request: Request, desk: Desk) -> Reply:
    """Free text from a mention, DM, the CLI or a watched channel."""
    index = qa_index(desk)
    watch = request.mode == "watch"
    if watch and not looks_like_question(index, request.text):
        return no_answer(desk, request)
    match = index.match(request.text)
    if watch and not mentions_domain(index, match.query):
        return no_answer(desk, request, match.confidence)
    bar = WATCH_BAR if watch else ANSWER_BAR
    if not match.docs or match.confidence < bar:
        return no_answer(desk, request, match.confidence)
    return answer_reply(desk.library, match, today=request.today())


# ------------------------------------------------------------------------------------ watch command


@router.subcommand(
    "/china-filing", "watch", usage="/china-filing watch on|off",
    summary="answer questions about these topics in this channel (in a thread)", changes_state=True,
)
async def watch(request: Request, desk: Desk, args: str) -> Reply:
    word = args.strip().casefold()
    if word not in ("on", "off"):
        raise UsageError("Say `/china-filing watch on` or `/china-filing watch off`.")
    on = word == "on"
    store = desk.store
    if store is None or not hasattr(store, "set_channel_watch"):
        raise NotAvailableError("Question watching needs the bot's storage, which this deployment doesn't have.")
    if not request.channel:
        raise NotAvailableError("Question watching works in a channel: run this command in the channel to watch.")
    result = store.set_channel_watch(request.platform, request.workspace, request.channel, on)
    if inspect.isawaitable(result):
        await result
    if on:
        text = ("Question watching is on in this channel. When someone asks a question about China filings, "
                "sectors, platforms or the trading calendar that I can answer from vetted sources, I'll reply "
                "in a thread. Turn it off with /china-filing watch off.")
    else:
        text = "Question watching is off in this channel. You can still mention me or send me a direct message."
    # A channel setting, like reminders and subscriptions: kind "reminder", not a Q&A answer.
    return Reply(kind="reminder", title="Question watching " + ("on" if on else "off"), text=text, ephemeral=False)


# ----------------------------------------------------------------------------------------- evaluation

ACCURACY_BAR = 0.95
ABSTENTION_BAR = 1.0


@dataclass(frozen=True)
class EvalItem:
    question: str
    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    answerable: bool = True


def load_questions(path: Path | str) -> list[EvalItem]:
    """The ``dev_questions.yaml`` format: ``answerable`` (q, any, all) and ``out_of_scope`` lists."""
    raw = parse_yaml(Path(path).read_text(encoding="utf-8")) or {}
    items = [
        EvalItem(str(a["q"]), tuple(a.get("any") or ()), tuple(a.get("all") or ()))
        for a in raw.get("answerable") or ()
    ]
    items += [EvalItem(str(q), answerable=False) for q in raw.get("out_of_scope") or ()]
    return items


def half(items: Sequence[EvalItem], which: int) -> list[EvalItem]:
    """Hold-out split: half 1 (tuning) is every even-numbered item, half 2 (checking) every odd one."""
    return [it for i, it in enumerate(items) if i % 2 == which - 1]


def patterns_match(item: EvalItem, text: str) -> bool:
    flags = re.IGNORECASE
    ok_any = not item.any or any(re.search(p, text, flags) for p in item.any)
    return ok_any and all(re.search(p, text, flags) for p in item.all)


@dataclass
class EvalResult:
    item: EvalItem
    kind: str
    confidence: float
    first_line: str
    correct: bool  # answerable: answered and right; out of scope: abstained
    candidate_right: bool  # the top candidate would be right, whatever the bar (for calibration)


@dataclass
class EvalReport:
    results: list[EvalResult]

    @property
    def answerable(self) -> list[EvalResult]:
        return [r for r in self.results if r.item.answerable]

    @property
    def out_of_scope(self) -> list[EvalResult]:
        return [r for r in self.results if not r.item.answerable]

    @property
    def accuracy(self) -> float:
        a = self.answerable
        return sum(r.correct for r in a) / len(a) if a else 1.0

    @property
    def abstention(self) -> float:
        o = self.out_of_scope
        return sum(r.correct for r in o) / len(o) if o else 1.0

    @property
    def false_abstentions(self) -> int:
        return sum(r.kind == "no_answer" for r in self.answerable)

    @property
    def passed(self) -> bool:
        return self.accuracy >= ACCURACY_BAR and self.abstention >= ABSTENTION_BAR

    def reliability(self, bins: int = 5) -> list[dict[str, Any]]:
        """Per confidence bin: how many questions, and how often the top candidate was right."""
        out = []
        for b in range(bins):
            lo, hi = b / bins, (b + 1) / bins
            inside = [r for r in self.results if lo <= r.confidence < hi or (b == bins - 1 and r.confidence == 1)]
            right = sum(r.candidate_right for r in inside)
            mean = sum(r.confidence for r in inside) / len(inside) if inside else 0.0
            out.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": len(inside), "mean_confidence": round(mean, 3),
                        "right": round(right / len(inside), 3) if inside else None})
        return out

    def failures(self) -> list[EvalResult]:
        return [r for r in self.results if not r.correct]

    def as_json(self) -> dict[str, Any]:
        return {
            "answerable": len(self.answerable),
            "out_of_scope": len(self.out_of_scope),
            "accuracy": round(self.accuracy, 4),
            "abstention_rate": round(self.abstention, 4),
            "false_abstentions": self.false_abstentions,
            "passed": self.passed,
            "bars": {"accuracy": ACCURACY_BAR, "abstention": ABSTENTION_BAR},
            "reliability": self.reliability(),
            "failures": [
                {"q": r.item.question, "expected": "answer" if r.item.answerable else "no_answer", "kind": r.kind,
                 "confidence": round(r.confidence, 3), "first_line": r.first_line}
                for r in self.failures()
            ],
        }

    def render(self) -> str:
        a, o = self.answerable, self.out_of_scope
        lines = [
            f"Answered right: {sum(r.correct for r in a)}/{len(a)} = {self.accuracy:.1%} (bar {ACCURACY_BAR:.0%})",
            f"Out of scope abstained: {sum(r.correct for r in o)}/{len(o)} = {self.abstention:.1%} "
            f"(bar {ABSTENTION_BAR:.0%})",
            f"False abstentions (answerable, said no answer): {self.false_abstentions}",
            "Reliability (confidence bin: questions, top candidate right):",
        ]
        lines += [f"  {b['bin']}: n={b['n']:3d}  right={b['right'] if b['right'] is not None else '-'}"
                  for b in self.reliability()]
        failures = self.failures()
        if failures:
            lines.append(f"Failures ({len(failures)}):")
            for r in failures:
                want = "answer" if r.item.answerable else "no_answer"
                lines.append(f"  - {r.item.question!r}: wanted {want}, got {r.kind} "
                             f"(confidence {r.confidence:.2f}): {r.first_line}")
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)


async def evaluate(desk: Desk, items: Sequence[EvalItem], *, mode: str = "direct") -> EvalReport:
    """Ask every question through the full handler chain, as a DM would, and score the replies."""
    index = qa_index(desk)
    results = []
    for item in items:
        reply = await desk.handle(Request(text=item.question, mode=mode))  # type: ignore[arg-type]
        match = index.match(item.question)
        candidate = ""
        if match.docs:
            candidate = answer_reply(desk.library, match, today=Request(text="").today()).text
        right = item.answerable and bool(candidate) and patterns_match(item, candidate)
        if item.answerable:
            correct = reply.kind != "no_answer" and reply.kind != "error" and patterns_match(item, reply.text)
        else:
            correct = reply.kind == "no_answer"
        first = next((ln for ln in reply.text.splitlines() if ln.strip()), reply.title)
        if reply.kind == "answer" and reply.summary:
            first = f"{first} | {reply.summary}"
        confidence = reply.confidence if reply.confidence is not None else match.confidence
        results.append(EvalResult(item, reply.kind, confidence, first[:200], correct, right))
    return EvalReport(results)
