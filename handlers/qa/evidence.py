"""Evidence beyond BM25: a question asked as editors wrote one of a fact's alternate questions, and the
year a question asks about.

Alternate questions (``Fact.questions``) are compared with the question as analysed words, not as
strings: the share of the two questions' distinctive words (IDF-weighted, synonyms and a Chinese word's
parts counting as in confidence) that they have in common. A string ratio counts a question whose
words are all inside an alternate question as the same question ("dragon boat festival 2026" and "when
is the dragon boat festival in 2027"), and Chinese, written without spaces, as one long word.

A year in a question ("dragon boat festival 2026", "2027年国庆放假安排") is part of what is asked: a fact
that is dated by other years only ("ESTIMATE: ... 9 June 2027") answers another question.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from handlers.qa.query import Query
    from handlers.qa.text import Analyzer

# A length of time, as "how long" needs one: "15 working days", "3 to 6 months", "for weeks", "30个工作日".
DURATION = re.compile(
    r"\b(?:\d+(?:\.\d+)?|an?|one|two|three|four|five|six|seven|eight|nine|ten|twelve|several|few)"
    r"(?:[\s-]+(?:to|or|-)[\s-]+\d+)?[\s-]+(?:working[\s-]+|business[\s-]+|calendar[\s-]+)?"
    r"(?:days?|weeks?|months?|years?|hours?|minutes?)\b|\b(?:days|weeks|months|years|hours)\b"
    r"|(?<!\d)(?:\d{1,3}|[一二三四五六七八九十两几]+)\s*(?:个)?(?:工作日|天|日内|周|星期|个月|月内|年|小时|分钟)",
    re.IGNORECASE,
)

# A sum of money or a rate, as "how much is the fee" needs one: "RMB 210,900", "US$1.2 billion", "5%", "20万元",
# or that there is no charge ("free", "免费").
AMOUNT = re.compile(
    r"(?:rmb|cny|usd|gbp|eur|hk\$|us\$|\$|£|€)\s?\d|\d[\d,.]*\s*(?:%|per\s?cent|yuan|pounds?|dollars?|元|万元|亿元|美元|英镑|欧元)"
    r"|\bfree\b|\bno (?:fee|charge)\b|免费|不收费|不收取",
    re.IGNORECASE,
)

_YEAR = re.compile(r"(?<![\d.:\-])(20[0-4]\d)(?![\d.:])")


def years(text: str) -> frozenset[str]:
    """The calendar years a text names (2000-2049); not digits inside other numbers, nor the year in a
    standard's code ("GB 7718-2025", "CNCA-C09-02:2025"), which is part of a name."""
    return frozenset(_YEAR.findall(text))


def year_mismatch(doc_years: list[frozenset[str]], asked: frozenset[str]) -> np.ndarray:
    """1.0 for facts dated only by years other than the ones asked about, else 0.0."""
    if not asked:
        return np.zeros(len(doc_years), dtype=np.float32)
    return np.asarray([1.0 if ys and not (ys & asked) else 0.0 for ys in doc_years], dtype=np.float32)


class AlternateQuestions:
    """Every fact's alternate questions as analysed words, with an inverted index for lookup."""

    def __init__(self, analyzer: Analyzer, questions: Iterable[tuple[str, int]], idf: dict[str, float],
                 max_idf: float, kinds: Callable[[str], frozenset[str]]) -> None:
        self.idf, self.max_idf = idf, max_idf
        self.doc: list[int] = []
        self.kinds: list[frozenset[str]] = []  # the intents it asks ("how long", "who"), see Query.intents
        self.words: list[dict[str, float]] = []  # the question's own words (token -> IDF)
        self.tokens: list[frozenset[str]] = []  # ...and their parts ("人脸识别" -> 人脸, 识别)
        self.postings: dict[str, list[int]] = {}
        for text, di in questions:
            units = [u for u in analyzer.units(text) if analyzer.keep(u[0])]
            own = {analyzer.stem(u[0]): idf.get(analyzer.stem(u[0]), max_idf) for u in units}
            every = frozenset(analyzer.stem(w) for u in units for w in u if analyzer.keep(w))
            qi = len(self.doc)
            self.doc.append(di)
            self.kinds.append(kinds(text))
            self.words.append(own)
            self.tokens.append(every)
            for token in every:
                self.postings.setdefault(token, []).append(qi)

    def similarity(self, query: Query, qi: int, intent_docs: dict[str, np.ndarray]) -> float:
        """IDF-weighted overlap of the question and alternate question ``qi``: the words both have over
        the words either has (0-1). A word of the question's form ("是什么", "how old") counts as shared
        when the alternate question's fact is of that kind, as in confidence."""
        tokens, own, doc = self.tokens[qi], self.words[qi], self.doc[qi]
        shared = total = 0.0
        covered: set[str] = set()
        for c in query.concepts:
            if c.idf <= 0:
                continue
            if c.intents:
                credit = float(any(intent_docs[name][doc] for name in c.intents))
                covered.update(t for t in c.credit if t in tokens)
                shared += c.idf * credit
                total += c.idf
                continue
            credit = max((w for t, w in c.credit.items() if t in tokens), default=0.0)
            covered.update(t for t in c.credit if t in tokens)
            if credit <= 0 and c.weak:
                continue
            shared += c.idf * credit
            total += c.idf
        total += sum(w for t, w in own.items() if t not in covered)
        return shared / total if total > 0 else 0.0

    def best(self, query: Query, intent_docs: dict[str, np.ndarray]) -> tuple[int, float] | None:
        """(fact, similarity) of the alternate question closest to ``query`` that asks the same kinds of
        thing, or more ("where do we file the standard contract" is not "what do we submit for it", "what's
        the penalty for X" is not "what is X"), or None."""
        candidates: set[int] = set()
        for c in query.concepts:
            for token in c.credit:
                candidates.update(self.postings.get(token, ()))
        asked = frozenset(i.name for i in query.intents)
        best: tuple[int, float] | None = None
        for qi in candidates:
            if asked != self.kinds[qi] and not (asked and asked <= self.kinds[qi]):
                continue
            sim = self.similarity(query, qi, intent_docs)
            if best is None or sim > best[1]:
                best = (self.doc[qi], sim)
        return best
