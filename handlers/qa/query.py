"""Question analysis: a question's words as weighted concepts, with typos corrected, shorthand written
out, compounds joined, synonyms expanded, the topics it names, its intents and the places it mentions."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from handlers.qa.lexicon import Intent
from handlers.qa.text import (
    QUESTION_MARK,
    cue_pattern,
    fold,
    has_cjk,
    has_cue,
    normalise_numbers,
    strip_chatter,
    substitution,
)

FUZZY_CUTOFF = 80  # rapidfuzz ratio for typo correction (xiaohngshu -> xiaohongshu is 95)
SHORT_WORD = 7  # up to this length a one-letter substitution is not taken for a typo (patent != parent)
SYNONYM_WEIGHT = 0.6  # query weight of a synonym's words: evidence, but weaker than the user's own word
SYNONYM_CREDIT = 0.9  # how far a synonym counts as covering the user's word, for confidence
ARTICLES = frozenset({"a", "an", "the"})
# A time of day ("2am", "11:30pm") is the asker's own detail, like a number the packs never mention.
TIME_OF_DAY = re.compile(r"^\d{1,2}(?::\d{2})?(?:am|pm)$")


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

    @property
    def weak(self) -> bool:
        """A single Chinese character (报, 写, 分): too ambiguous on its own to show, by its absence from an
        answer, that the question is about something else; when the answer has it, it still counts."""
        return len(self.primary) == 1 and has_cjk(self.primary)

    @property
    def figure(self) -> bool:
        """A number ("40,000 customers", "15 million people"): when the answer lacks it, it is the asker's own
        figure (to compare with a threshold the answer states), not a sign the question is about something else."""
        return self.primary.replace(".", "").isdigit()


@dataclass(frozen=True)
class Place:
    """A place or law outside mainland China named in a question, and how it is used."""

    phrase: tuple[str, ...]
    framed: bool = False  # "under GDPR", "in the UK": the question asks about that place's rules
    identity: bool = False  # "a UK company", "British brands": who is asking, not where
    moved: bool = False  # "from China to the UK", "发到英国": where data or goods go, not whose rules


@dataclass
class Query:
    text: str
    words: list[str]
    concepts: list[Concept]
    intents: list[Intent]
    named: set[int]  # indexes of topics the question names
    name_hits: dict[int, set[str]] = field(default_factory=dict)  # ...and by which of their names (folded)
    assumed: bool = False  # ``named`` is the conversation's topic, the question names none (a follow-up)
    asks: bool = False  # it is phrased as a question (question mark, question word, or a known intent)
    elsewhere: list[Place] = field(default_factory=list)  # mentions of another jurisdiction
    home: bool = False  # names China itself ("China", "PRC", "中国")
    china: bool = False  # ...or one of China's own institutions, laws or platforms (CAC, PIPL, WeChat)

    @property
    def asker(self) -> frozenset[str]:
        """Tokens of places that say who is asking ("a UK company", "our HQ in London") in a question about
        China: context, so an answer that does not mention them is not missing what was asked."""
        if not self.china:
            return frozenset()
        return frozenset(t for p in self.elsewhere if p.identity for t in p.phrase)

    def weights(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in self.concepts:
            for token, w in c.forms.items():
                out[token] = max(out.get(token, 0.0), w)
        return out




class QueryAnalysis:
    """The question side of :class:`~handlers.qa.index.QAIndex` (a mixin: it reads the index's tables)."""

    @functools.cached_property
    def _stopword_stems(self) -> frozenset[str]:
        return frozenset(self.analyzer.stem(w) for w in self.analyzer.stopwords if w.isascii())

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
                if n <= SHORT_WORD and substitution(word, target):
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
                # An article never starts a compound: "a PI audit" is not an "api" audit.
                if (a not in ARTICLES and a.isalpha() and b.isalpha() and joined in self.raw_vocab
                        and joined not in self.lexicon.stopwords and not split_known):
                    out.append([joined])
                    i += 2
                    continue
            out.append(units[i])
            i += 1
        return out

    def _split_compounds(self, units: list[list[str]]) -> list[list[str]]:
        """A Chinese compound the packs never use whose parts they do (``等保备案`` -> ``等保``, ``备案``;
        ``春节放假`` -> ``春节``, ``放假``) is those words: counted as one unknown word it would look like a
        question about something else. Parts inside a longer kept part are dropped."""
        out: list[list[str]] = []
        for unit in units:
            word = unit[0]
            if len(unit) < 2 or not has_cjk(word) or word in self.vocab or word in self.synonym_members:
                out.append(unit)
                continue
            parts = [p for p in unit[1:] if p in self.vocab or p in self.synonym_members]
            parts = [p for p in parts if not any(p != q and p in q for q in parts)]
            if parts:
                out.extend([p] for p in sorted(parts, key=word.find))
            else:
                out.append(unit)
        return out

    def expand(self, text: str) -> str:
        """The question with chat shorthand written out ("regs" -> "regulations", "ppl" -> "people"),
        so that the words, the synonyms and the intent cues ("how many people") all see the full form."""
        folded = fold(text)
        if self._abbrev is None or not folded:
            return folded
        return self._abbrev.sub(lambda m: self._abbrev_map[m[0]], folded)

    def analyse(self, text: str) -> Query:
        an = self.analyzer
        text = self.expand(strip_chatter(text))  # tags and greetings are not words of the question
        folded = normalise_numbers(text)
        concepts: list[Concept] = []
        seen: dict[str, int] = {}  # primary token -> its concept
        order: list[int] = []  # the concept of every kept word in turn, repeats included (for phrases)
        for unit in self._split_compounds(self._join(an.units(text))):
            w = unit[0]
            token = an.stem(w)
            fuzzy: tuple[str, float] | None = None
            # Only words of six letters or more: one edit in a shorter word is as likely another
            # English word ("lunch", not "launch") as a typo.
            # Nor a form of a stopword ("looking" is not a typo of "blocking").
            if (token not in self.vocab and len(unit) == 1 and w.isascii() and w.isalpha() and len(w) >= 6
                    and w not in an.stopwords and token not in self._stopword_stems):
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
                order.append(seen[primary])
                continue  # "BYD vs NIO vs Li Auto": a repeated word is one word
            seen[primary] = len(concepts)
            order.append(len(concepts))
            # A number the packs never mention is the asker's own figure ("50,000 customers"), not a
            # sign that the question is about something else: it does not count against coverage.
            own_number = ((primary.replace(".", "").isdigit() or TIME_OF_DAY.match(primary) is not None)
                          and primary not in self.vocab)
            idf = 0.0 if own_number else self.idf.get(primary, self.max_idf)
            concepts.append(Concept(w, primary, forms, credit, idf, fuzzy=fuzzy is not None))

        # Synonyms: phrases over the words' primary tokens in the order written (a word repeated earlier still
        # completes a phrase: "process data ... our data protection lead"), and Chinese members by substring.
        primaries = [concepts[k].primary for k in order]
        hits: list[tuple[set[int], int]] = []  # (concepts, group)
        for i, token in enumerate(primaries):
            for phrase, gi in self.synonym_phrases.get(token, ()):
                if tuple(primaries[i : i + len(phrase)]) == phrase:
                    hits.append(({order[j] for j in range(i, i + len(phrase))}, gi))
        for member, gi in self.synonym_cjk:
            if member in folded:
                for i, c in enumerate(concepts):
                    if has_cjk(c.word) and (c.word in member or member in c.word):
                        hits.append(({i}, gi))
        for members, gi in hits:
            for c in (concepts[k] for k in sorted(members)):
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

        name_hits: dict[int, set[str]] = {}
        for i, token in enumerate(primaries):
            for phrase, ti, key in self.name_phrases.get(token, ()):
                if tuple(primaries[i : i + len(phrase)]) == phrase:
                    name_hits.setdefault(ti, set()).add(key)
        for name, ti in self.name_cjk:
            if name in folded:
                name_hits.setdefault(ti, set()).add(name)
        named = set(name_hits)

        framed = {self.analyzer.phrase(m[1]) for m in self._framed_re.finditer(folded)} if self._framed_re else set()
        identity = ({self.analyzer.phrase(m[1] or m[2] or m[3] or m[4]) for m in self._identity_re.finditer(folded)}
                    if self._identity_re else set())
        moved = ({self.analyzer.phrase(m[1] or m[2]) for m in self._moved_re.finditer(folded)}
                 if self._moved_re else set())
        elsewhere = []
        for i, token in enumerate(primaries):
            for phrase in self.elsewhere_phrases.get(token, ()):
                if tuple(primaries[i : i + len(phrase)]) == phrase:
                    elsewhere.append(Place(phrase, framed=phrase in framed, identity=phrase in identity,
                                           moved=phrase in moved))
        home = any(has_cue(folded, w) for w in self.lexicon.home)
        china = home or bool(named & self.china_topics) or any(has_cue(folded, w) for w in self.lexicon.china_terms)

        # The question's form ("how long", "fine", "how old") is answered by a fact of the right kind;
        # its words are marked so that such a fact counts them as accounted for.
        # A cue inside a longer cue of another intent gives way to it: in "when do the rules start
        # applying", "when do * apply" (a date) wins over "when do" (the circumstances).
        found = [(m.start(), m.end(), intent, cue) for intent in self.lexicon.intents for cue in intent.cues
                 for m in cue_pattern(cue).finditer(folded)]
        found.sort(key=lambda f: f[0])  # in the order asked: "who do we submit to" is a "who" first
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
        if len(intents) > 1 and any(i.name == "definition" for i in intents):
            # "What's the fine for X", "最核心的两份材料是什么": "what is" is only the question's frame when
            # something more specific is asked.
            intents = [i for i in intents if i.name != "definition"]
        if any(i.name in ("duration", "date") for i in intents):
            # "How long after grading do we have to file?": "do we have to" is the modal of a question about
            # time, not one about whether the duty applies.
            intents = [i for i in intents if i.name != "applies"]
        first = folded.split()[0] if folded.split() else ""
        asks = bool(QUESTION_MARK.search(folded)) or bool(intents) or first in self.lexicon.question_cues
        return Query(text=folded, words=[w for u in an.units(text) for w in u], concepts=concepts,
                     intents=intents, named=named, name_hits=name_hits, elsewhere=elsewhere, asks=asks, home=home,
                     china=china)

