"""The domain language of channel Q&A, from ``content/synonyms.yaml``: synonyms, stop words, intents, cues."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from content.loader import CONTENT_DIR, parse_yaml
from handlers.qa.text import fold

SYNONYMS_PATH = CONTENT_DIR / "synonyms.yaml"



@dataclass(frozen=True)
class Intent:
    """A kind of question ("how long", "what documents") and the sections that answer it."""

    name: str
    cues: tuple[str, ...]
    sections: tuple[str, ...]  # in order of preference (the first is the intent's own section)


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
    foreign_measures: tuple[str, ...] = ()  # "tariff", "制裁": with one, a place beside China is the actor
    protected: frozenset[str] = frozenset()  # never stemmed
    abbreviations: tuple[tuple[str, str], ...] = ()  # chat shorthand -> the words it stands for
    generic_names: frozenset[str] = frozenset()  # a topic's alias too generic to name it alone ("备案")
    deadline_cues: tuple[str, ...] = ()  # "due", "by when", "最晚": a question asking for a deadline
    how_to_cues: tuple[str, ...] = ()  # "how do we", "怎么": a question asking how to do something
    amount_cues: tuple[str, ...] = ()  # "fee", "deposit", "多少钱": a question asking how much money
    distinct: tuple[tuple[tuple[str, ...], ...], ...] = ()  # different things one topic covers, by their names

    @classmethod
    def load(cls, path: Path | str = SYNONYMS_PATH) -> Lexicon:
        # Every value is a word: the base loader keeps "on", "no", "618" and "11.11" as the strings they
        # are (the safe loader reads the stop words "on" and "no" as booleans, 618 as a number).
        raw = parse_yaml(Path(path).read_text(encoding="utf-8"), strings_only=True) or {}

        def words(items: Iterable[Any]) -> tuple[str, ...]:
            return tuple(fold(str(w)) for w in items or ())

        stop = raw.get("stopwords") or {}
        cues = raw.get("question_cues") or {}
        deadline = raw.get("deadline_cues") or {}
        how_to = raw.get("how_to_cues") or {}
        amount = raw.get("amount_cues") or {}
        return cls(
            synonyms=tuple(words(g) for g in raw.get("synonyms") or ()),
            stopwords=frozenset(words(stop.get("en")) + words(stop.get("zh"))),
            intents=tuple(
                Intent(name, words(spec.get("cues")), tuple(spec.get("sections") or ()))
                for name, spec in (raw.get("intents") or {}).items()
            ),
            question_cues=words(cues.get("en")) + words(cues.get("zh")),
            domain_terms=words(raw.get("domain_terms")),
            elsewhere=words(raw.get("elsewhere")),
            home=words(raw.get("home")),
            china_terms=words(raw.get("china_terms")),
            identity=words(raw.get("identity")),
            frames=words(raw.get("frames")),
            foreign_measures=words(raw.get("foreign_measures")),
            protected=frozenset(words(raw.get("protected"))),
            generic_names=frozenset(words(raw.get("generic_names"))),
            deadline_cues=words(deadline.get("en")) + words(deadline.get("zh")),
            how_to_cues=words(how_to.get("en")) + words(how_to.get("zh")),
            amount_cues=words(amount.get("en")) + words(amount.get("zh")),
            distinct=tuple(tuple(words(thing) for thing in entry) for entry in raw.get("distinct") or ()),
            abbreviations=tuple((fold(k), fold(v)) for k, v in (raw.get("abbreviations") or {}).items()),
        )


@functools.lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    return Lexicon.load()

