"""Which of a topic's names a question uses, and which names each fact itself says.

A broad topic has several names that stand for different things: the data-protection framework is named by
"PIPL", "Cybersecurity Law" and "数据安全法" alike. A question that names one of them ("max PIPL fine") picks
that topic, and its facts are preferred over other topics' facts (see ``OUTSIDE_NAMED`` in
:mod:`handlers.qa.index`). But a fact of another topic that says the asked name in its own words ("When a
PIPL breach is serious...", on the PIPIA card) is about what was asked as much as the named topic's facts
are: it counts as inside the named topics, so the fact that answers the point leads, not the named topic's
fact about another law ("the amended Cybersecurity Law raises the maximum fine...").

Some names stand for different things that one card covers together (``distinct`` in
``content/synonyms.yaml``: the PIPL, the Cybersecurity Law and the Data Security Law; Taobao and Tmall). A fact
of a card that covers such things by name, naming another of them and not the one the question names, is about
that other thing: it scores :data:`DISTINCT_OTHER` of its score. A card that only lists one of them ("merchants
on platforms such as Taobao") is not affected.

Names stand with their synonyms ("PIPL" = "个人信息保护法" = "personal information protection law", from
``content/synonyms.yaml``), so a Chinese question finds the English fact that says "PIPL". A topic's id and
titles count as its names too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from handlers.qa.text import fold, has_cjk

if TYPE_CHECKING:
    from content.loader import Library
    from content.schema import Fact, Topic
    from handlers.qa.lexicon import Lexicon
    from handlers.qa.text import Analyzer

MAX_NAME_WORDS = 6  # longer names are not looked for inside facts (none of the packs' aliases is longer)
DISTINCT_OTHER = 0.5  # score factor of a fact about another thing than the one the question names


class NameMentions:
    """For every fact, the names (of any topic, with their synonyms) its own text, Chinese text and keywords say."""

    def __init__(self, library: Library, topics: list[Topic], facts: list[Fact], fact_topics: list[int],
                 analyzer: Analyzer, lexicon: Lexicon) -> None:
        groups = [frozenset(fold(m) for m in g) for g in lexicon.synonyms]
        self.equivalents: dict[str, frozenset[str]] = {}
        candidates: set[str] = set()
        for topic in topics:
            for name in library.names_of(topic):
                key = fold(name)
                if key in lexicon.generic_names:
                    continue
                same = {key}.union(*(g for g in groups if key in g))
                self.equivalents[key] = frozenset(same)
                candidates |= same
        cjk = [c for c in candidates if has_cjk(c)]
        phrases = {analyzer.phrase(c): c for c in candidates if not has_cjk(c)}
        phrases.pop((), None)
        # Distinct things: (entry, thing) for each of their names, as phrases (English) or strings (Chinese).
        self._analyzer = analyzer
        self._thing_phrases: dict[tuple[str, ...], tuple[int, int]] = {}
        self._thing_cjk: list[tuple[str, tuple[int, int]]] = []
        for ei, entry in enumerate(lexicon.distinct):
            for ki, thing in enumerate(entry):
                for name in thing:
                    if has_cjk(name):
                        self._thing_cjk.append((name, (ei, ki)))
                    elif analyzer.phrase(name):
                        self._thing_phrases[analyzer.phrase(name)] = (ei, ki)
        # Which entries each topic covers by name (the data-protection card is named "pipl" and "cybersecurity
        # law"): only a fact of such a card is about one of those things rather than mentioning it in a list.
        entry_names = [{n for thing in entry for n in thing} for entry in lexicon.distinct]
        covers = [{ei for ei, names in enumerate(entry_names) if names & {fold(n) for n in library.names_of(t)}}
                  for t in topics]
        self.fact_entries = [frozenset(covers[ti]) for ti in fact_topics]
        self.doc_says: list[frozenset[str]] = []
        self.doc_things: list[frozenset[tuple[int, int]]] = []
        for fact in facts:
            english = " ; ".join([fact.text, *fact.keywords])
            chinese = fold(" ; ".join([fact.text_zh or "", *(k for k in fact.keywords if has_cjk(k))]))
            grams = _grams(analyzer.phrase(english))
            said = {c for p, c in phrases.items() if p in grams} | {c for c in cjk if c in chinese}
            self.doc_says.append(frozenset(said))
            self.doc_things.append(self._things(grams, chinese))

    def _things(self, grams: set[tuple[str, ...]], chinese: str) -> frozenset[tuple[int, int]]:
        return frozenset({k for p, k in self._thing_phrases.items() if p in grams}
                         | {k for name, k in self._thing_cjk if name in chinese})

    def other_things(self, text: str) -> np.ndarray:
        """1.0 for facts of a card that covers distinct things by name and that name another of them than the
        one ``text`` names, and not that one."""
        asked = self._things(_grams(self._analyzer.phrase(text)), fold(text))
        out = np.zeros(len(self.doc_things), dtype=np.float32)
        if not asked:
            return out
        entries = {ei for ei, _ in asked}
        for di, things in enumerate(self.doc_things):
            if (things and not (things & asked)
                    and any(ei in entries and ei in self.fact_entries[di] for ei, _ in things)):
                out[di] = 1.0
        return out

    def inside(self, doc_topic: np.ndarray, named: dict[int, set[str]]) -> np.ndarray:
        """Which facts count as inside the topics a question names: the named topics' facts, and any fact
        that says an asked name in its own words."""
        inside = np.isin(doc_topic, np.fromiter(named, dtype=np.int32))
        asked = frozenset().union(*(self.equivalents.get(k, frozenset((k,))) for keys in named.values() for k in keys))
        if asked:
            inside |= np.fromiter((bool(said & asked) for said in self.doc_says), dtype=bool, count=len(inside))
        return inside


def _grams(tokens: tuple[str, ...]) -> set[tuple[str, ...]]:
    return {tokens[i:j] for i in range(len(tokens)) for j in range(i + 1, min(len(tokens), i + MAX_NAME_WORDS) + 1)}
