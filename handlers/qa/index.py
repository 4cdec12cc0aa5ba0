"""Retrieval: every fact is a BM25 document on weighted fields; :class:`QAIndex` is built once.

Fields: the fact's own text, its editor ``keywords`` and its section label (fact level); its topic's
names (title, Chinese title, aliases) and the whole topic's text (topic level, shared by every fact of
the topic, so a question that names a topic finds it even in other words). A topic the question names
picks the topic; the question's other words pick the fact; an intent ("how long") boosts the sections
that answer it.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from content.loader import Library
from content.schema import SECTION_LABELS, SECTION_LABELS_ZH, Fact, Topic
from handlers.qa.confidence import INTENT_ONLY_CONFIDENCE, ConfidenceFeatures, calibrated
from handlers.qa.evidence import AMOUNT, DURATION, AlternateQuestions, year_mismatch, years
from handlers.qa.fields import Field, bm25_field
from handlers.qa.lexicon import Lexicon, default_lexicon
from handlers.qa.names import DISTINCT_OTHER, NameMentions
from handlers.qa.query import Query, QueryAnalysis
from handlers.qa.text import (
    Analyzer,
    cue_pattern,
    fold,
    has_cjk,
    has_cue,
    normalise_numbers,
    similar,
    strip_chatter,
)

# Field weights of the BM25 score. Fact text is the evidence; keywords are editor-chosen paraphrases;
# the section label ("Review time") helps short questions; topic fields decide *which topic*.
FIELD_WEIGHTS: dict[str, float] = {
    "text": 1.0, "text_zh": 1.0, "keywords": 0.8, "questions": 0.8, "section": 0.5, "names": 1.0, "topic": 0.4,
}
# A question this close (IDF-weighted share of words, see handlers.qa.evidence) to one of a fact's alternate
# questions is asked in the words editors expected: strong evidence for that fact, worth this share of the
# best score.
QUESTION_MATCH = 0.8
QUESTION_MATCH_BOOST = 0.5
YEAR_MISMATCH = 0.5  # score factor of a fact dated only by years other than the one asked about
# A disputed fact leads only when it is the clear answer (this many times the best current fact's score),
# as when a question asks about the disputed claim itself; a superseded fact never leads.
DISPUTED_CLEAR = 2.0
NAME_BOOST = 0.5  # topic-level score of a topic the question names (by title or alias)
OUTSIDE_NAMED = 0.8  # score factor for facts outside the topics a question names
OUTSIDE_ASSUMED = 0.6  # ...or outside the topic a follow-up is about (the thread says so, more surely than a name)
RESIDUAL_WEIGHT = 1.0  # extra fact-level weight of the question's words that are not a named topic's name
RESIDUAL_OUTSIDE = 0.5  # ...for facts of other topics (the name may be an alias of a broader topic)
# A length of time asked for, whichever intent claimed the words ("how long is the licence valid" is "next").
LENGTH_ASKED = re.compile(r"\bhow long\b|多久|多长时间|几年|多少年")
# Words of paying: a sum near them is a price, a fee, a tax, a budget.
PAYING = re.compile(r"\b(?:fees?|costs?|costing|price[sd]?|pricing|charges?|charged|deposits?|tariffs?|tax(?:es)?|"
                    r"dut(?:y|ies)|free|pay(?:s|ing|ment)?|paid|spend(?:s|ing)?|spent|budget|subsid\w*|invest\w*|"
                    r"purchases?|allowance|fund(?:s|ing|ed)?|grant|worth|capital)\b|费|价|税|付|补贴|投资|资金|保证金|押金|额度",
                    re.IGNORECASE)
SALES_ASKED = re.compile(r"\b(?:sell|sold|sales|gmv|revenue|turnover|spent|spend)\b|卖|销售|销量|成交|营收|收入|交易额",
                         re.IGNORECASE)
# A count asked for, and a number stated (digits, or English number words: "valid for three years").
COUNT_ASKED = re.compile(r"\bhow many\b|多少(?!钱)|(?<!哪)几(?:个|家|位|款|次|万|千)")  # 哪几个: "which", not a count
NUMBER = re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
                    r"hundred|thousand|million|billion|dozen|half)\b", re.IGNORECASE)
# A time limit stated in a fact ("within 10 working days", "10个工作日内"): it answers "how long / how soon".
TIME_LIMIT = re.compile(r"\bwithin\s+(?:\d+|[a-z]+)\s+(?:working\s+|business\s+|calendar\s+)?"
                        r"(?:days?|weeks?|months?|hours?)\b|\d+\s*个?(?:工作日|日|天|小时|个月)(?:内|以内)")
INTENT_BOOST = 0.6  # a fact in the section the question asks for ("how long" -> review time)
SUPPORT_RATIO = 0.6  # a supporting fact must score at least this share of the best one
OTHER_TOPIC_RATIO = 0.9  # ...and one of another topic this share (it answers the question as well)
MAX_FACTS = 3

# -------------------------------------------------------------------------------------------- index


@dataclass(frozen=True)
class Doc:
    """One fact as a retrieval document."""

    topic: Topic
    section: str
    label: str
    fact: Fact


@dataclass
class Match:
    """The best facts for a question, and how sure we are."""

    query: Query
    docs: list[Doc]
    score: float
    confidence: float
    features: dict[str, float] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)  # the facts' positions in QAIndex.docs

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


class QAIndex(QueryAnalysis, ConfidenceFeatures):
    """Everything retrieval needs, built once from the library."""

    def __init__(self, library: Library, lexicon: Lexicon | None = None) -> None:
        self.library = library
        self.lexicon = lexicon = lexicon or default_lexicon()
        topics = list(library.topics.values())
        self.topics = topics
        cjk = [n for t in topics for n in library.names_of(t) if has_cjk(n)]
        cjk += [k for t in topics for _, _, f in _topic_docs(t) for k in f.keywords if has_cjk(k)]
        cjk += [label for labels in SECTION_LABELS_ZH.values() for label in labels.values()]
        cjk += [w for group in lexicon.synonyms for w in group if has_cjk(w)]
        # Chinese stop words and cues too, so that "多长时间" or "什么时候" stays one (stop) word.
        cjk += [w for w in lexicon.stopwords if has_cjk(w)]
        cjk += [c for i in lexicon.intents for c in i.cues if has_cjk(c) and "*" not in c]
        cjk += [c for c in (*lexicon.deadline_cues, *lexicon.question_cues) if has_cjk(c)]  # 最晚 is one word
        self.analyzer = an = Analyzer(lexicon, cjk)

        self.docs: list[Doc] = []
        doc_topic: list[int] = []
        text, text_zh, keywords, questions, section = [], [], [], [], []
        raw_words: set[str] = set()
        asked: list[tuple[str, int]] = []  # (alternate question, doc)
        self.topic_ids = {topic.id: ti for ti, topic in enumerate(topics)}
        for ti, topic in enumerate(topics):
            for sec, extra, fact in _topic_docs(topic):
                label = SECTION_LABELS[topic.kind].get(sec) or sec.replace("_", " ").capitalize()
                label_zh = SECTION_LABELS_ZH[topic.kind].get(sec, "")
                asked += [(strip_chatter(q), len(self.docs)) for q in fact.questions]
                self.docs.append(Doc(topic, sec, label, fact))
                doc_topic.append(ti)
                for source, out in ((fact.text, text), (fact.text_zh or "", text_zh),
                                    ("; ".join(fact.keywords), keywords), ("\n".join(fact.questions), questions),
                                    (f"{label} {label_zh} {sec.replace('_', ' ')} {extra}", section)):
                    words = an.words(source)
                    raw_words.update(w for w in words if an.keep(w))
                    out.append([an.stem(w) for w in words if an.keep(w)])
        names = []
        for topic in topics:
            words = an.words("; ".join([*library.names_of(topic), topic.id.replace("-", " ")]))
            raw_words.update(w for w in words if an.keep(w))
            names.append([an.stem(w) for w in words if an.keep(w)])
        self.doc_topic = np.asarray(doc_topic, dtype=np.int32)
        self.doc_section = np.asarray([d.section for d in self.docs])
        self.may_lead = np.asarray([d.fact.status == "current" for d in self.docs], dtype=np.float32)
        self.disputed = np.asarray([d.fact.status == "disputed" for d in self.docs], dtype=np.float32)
        bilingual = [f"{d.fact.text} {d.fact.text_zh or ''}" for d in self.docs]  # each fact in both languages
        self.doc_years = [years(both) for both in bilingual]
        self.topic_years = [years(f"{t.title} {t.title_zh or ''}") for t in topics]
        self.has_duration = [bool(DURATION.search(both)) for both in bilingual]
        self.has_amount = [bool(AMOUNT.search(both)) for both in bilingual]
        self.has_number = [bool(NUMBER.search(d.fact.text) or re.search(r"\d", d.fact.text_zh or ""))
                           for d in self.docs]
        # A fine is not what something costs: penalty facts answer "how much" only when a fine is asked about.
        # ...and a sum is a price only when the fact speaks of paying (a GMV or a market size is not what a
        # slot fee costs).
        self.has_price = [a and d.section != "penalties" and PAYING.search(both) is not None
                          for a, d, both in zip(self.has_amount, self.docs, bilingual, strict=True)]
        # Facts are stored topic by topic: where each topic's facts start (every topic has a summary).
        self.topic_starts = np.searchsorted(self.doc_topic, np.arange(len(topics))).astype(np.intp)
        self.name_tokens = [frozenset(n) for n in names]
        whole = [list(names[ti]) for ti in range(len(topics))]
        for di, ti in enumerate(doc_topic):
            whole[ti].extend(text[di] + text_zh[di] + keywords[di] + questions[di] + section[di])

        self.doc_fields = {
            "text": Field(bm25_field(text), FIELD_WEIGHTS["text"]),
            "text_zh": Field(bm25_field(text_zh), FIELD_WEIGHTS["text_zh"]),
            "keywords": Field(bm25_field(keywords), FIELD_WEIGHTS["keywords"]),
            "questions": Field(bm25_field(questions), FIELD_WEIGHTS["questions"]),
            "section": Field(bm25_field(section), FIELD_WEIGHTS["section"]),
        }
        self.topic_fields = {
            "names": Field(bm25_field(names), FIELD_WEIGHTS["names"]),
            "topic": Field(bm25_field(whole), FIELD_WEIGHTS["topic"]),
        }
        # Token sets for coverage (confidence) and document frequencies over topics (word weight).
        self.topic_tokens = [frozenset(w) for w in whole]
        self.doc_tokens = [frozenset(text[i] + text_zh[i] + keywords[i] + questions[i] + section[i])
                           | frozenset(names[doc_topic[i]])
                           for i in range(len(self.docs))]
        self.vocab = frozenset(t for ws in whole for t in ws)
        # What each fact is about, as editors said it (keywords, alternate questions, section), and each
        # topic's checklist words ("Appoint a PI protection officer"): see handlers.qa.confidence.
        self.focus_tokens = [frozenset(keywords[i] + questions[i] + section[i]) | frozenset(names[doc_topic[i]])
                             for i in range(len(self.docs))]
        self.step_tokens = [frozenset(an.tokens(" ; ".join(f"{s.text} {s.text_zh or ''}" for s in t.next_steps)))
                            for t in topics]
        # Word weights count what topics *say* (facts, keywords, names), not their section labels:
        # "Review time" on every filing card does not make "time" a common word of the packs.
        said = [set(names[ti]) for ti in range(len(topics))]
        for di, ti in enumerate(doc_topic):
            said[ti].update(text[di] + text_zh[di] + keywords[di] + questions[di])
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
        self.synonym_members = frozenset(fold(m) for g in lexicon.synonyms for m in g if has_cjk(m))
        for gi, group in enumerate(lexicon.synonyms):
            tokens: set[str] = set()
            for member in group:
                phrase = an.phrase(member)
                tokens.update(phrase)
                if phrase:
                    self.synonym_phrases.setdefault(phrase[0], []).append((phrase, gi))
                if len(phrase) > 1 and member.isascii():
                    # "face scan" is also written "face-scan" or "facescan": one word to the analyser.
                    joined = an.phrase(member.replace(" ", "-"))
                    if len(joined) == 1:
                        self.synonym_phrases.setdefault(joined[0], []).append((joined, gi))
                if has_cjk(member):
                    self.synonym_cjk.append((member, gi))
            self.group_tokens.append(frozenset(tokens))
        self.name_phrases: dict[str, list[tuple[tuple[str, ...], int, str]]] = {}
        self.name_cjk: list[tuple[str, int]] = []
        for ti, topic in enumerate(topics):
            for name in [*library.names_of(topic), topic.id.replace("-", " ")]:
                if fold(name) in lexicon.generic_names:
                    continue  # "备案" (filing) is an alias of the ICP filing, but says no more than "filing"
                phrase = an.phrase(name)
                if phrase:
                    self.name_phrases.setdefault(phrase[0], []).append((phrase, ti, fold(name)))
                if has_cjk(name):
                    self.name_cjk.append((fold(name), ti))

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
        # asking ("a UK company", "EU-based brands", "our HQ in London", "our UK plant": where the asker is).
        places = "|".join(re.escape(p) for p in sorted(lexicon.elsewhere, key=len, reverse=True))
        frames = "|".join(re.escape(f) for f in sorted(lexicon.frames, key=len, reverse=True))
        nouns = "|".join(re.escape(n) for n in sorted(lexicon.identity, key=len, reverse=True) if not has_cjk(n))
        nouns_zh = "|".join(re.escape(n) for n in sorted(lexicon.identity, key=len, reverse=True) if has_cjk(n))
        self._framed_re = (re.compile(rf"(?<![a-z0-9])(?:{frames})\s+(?:the\s+)?({places})(?![a-z0-9])")
                           if places and frames else None)
        self._identity_re = (re.compile(rf"(?<![a-z0-9])(?:({places})(?:-based|\s+based)?\s+(?:{nouns})"
                                        rf"|(?:{nouns})\s+(?:based\s+)?(?:in|at)\s+(?:the\s+)?({places})"
                                        # "our UK plant", "our EU customers' data": the asker's own place
                                        rf"|(?:our|my)\s+({places}))(?![a-z0-9])"
                                        + (rf"|({places})的?(?:{nouns_zh})" if nouns_zh else ""))
                             if places and nouns else None)
        # A place things move to or from ("send HR data to the UK", "传到英国总部"), beside China.
        self._moved_re = (re.compile(rf"(?<![a-z0-9])(?:to|from|into|out to|with|between|and)\s+(?:the\s+|our\s+)?"
                                     rf"({places})(?![a-z0-9])|(?:到|给|往|向|和|跟|与|从|回)({places})")
                          if places else None)
        # Platforms are China's own: naming one puts a question in China's market.
        self.china_topics = frozenset(ti for ti, t in enumerate(topics) if t.kind == "platform")

        # Which documents answer each intent: by section, or by a cue among the fact's own keywords.
        self.intent_docs: dict[str, np.ndarray] = {}
        self._intent_cues: list[tuple[str, re.Pattern[str]]] = []
        folded_keywords = [[fold(k) for k in doc.fact.keywords] for doc in self.docs]
        for intent in lexicon.intents:
            # One pattern per intent, any of its cues (faster than a search per cue and keyword).
            any_cue = (re.compile("|".join(f"(?:{cue_pattern(c).pattern})" for c in intent.cues))
                       if intent.cues else None)
            mask = np.zeros(len(self.docs), dtype=bool)
            for di, doc in enumerate(self.docs):
                mask[di] = doc.section in intent.sections or (
                    any_cue is not None and any(any_cue.search(k) for k in folded_keywords[di]))
            if intent.name == "duration":
                # "How soon must the recall plan reach the regulator?": a fact stating a time limit answers it in
                # any section but the summary (which restates the topic's main deadline in general terms).
                mask |= np.asarray([d.section != "summary" and TIME_LIMIT.search(both) is not None
                                    for d, both in zip(self.docs, bilingual, strict=True)])
            self.intent_docs[intent.name] = mask
            if any_cue is not None:
                self._intent_cues.append((intent.name, any_cue))
        self.names = NameMentions(library, topics, [d.fact for d in self.docs], doc_topic, an, lexicon)
        # Alternate questions are read as questions are: chat shorthand written out ("rep office").
        self.alternate_questions = AlternateQuestions(an, [(self.expand(q), di) for q, di in asked], self.idf,
                                                      self.max_idf, self.question_kinds)

    def question_kinds(self, text: str) -> frozenset[str]:
        """The intents whose cues a question holds ("how long", "who"): what :meth:`analyse` finds, without
        giving way to longer cues (a cheap pass for the packs' alternate questions at build time)."""
        folded = normalise_numbers(self.expand(strip_chatter(text)))
        return frozenset(name for name, cue in self._intent_cues if cue.search(folded))

    @classmethod
    def build(cls, library: Library, lexicon: Lexicon | None = None) -> QAIndex:
        return cls(library, lexicon)

    # ---------------------------------------------------------------------------------- questions

    def _fact_scores(self, concepts: Sequence[dict[str, float]]) -> np.ndarray:
        total = np.zeros(len(self.docs), dtype=np.float32)
        for f in self.doc_fields.values():
            total += f.weight * f.scores(concepts, len(self.docs))
        return total

    def scores(self, query: Query, sections: Sequence[str] = ()) -> np.ndarray:
        """Every fact's score for the question. ``sections``: the section a conversation was last about,
        standing in for an intent when the question states none ("and kuaishou?" after a user count)."""
        concepts = [c.forms for c in query.concepts]
        n_docs, n_topics = len(self.docs), len(self.topics)
        total = self._fact_scores(concepts)
        inside = self.inside_named(query)
        if query.named:
            # A topic's name in the question picks the topic; the question's *other* words pick the
            # fact ("positive list" among the CBEC facts, not the summary that repeats "cross-border
            # e-commerce" most often). So those words count twice.
            names = frozenset().union(*(self.name_tokens[ti] for ti in query.named))
            residual = [c.forms for c in query.concepts if c.primary not in names]
            total += RESIDUAL_WEIGHT * self._fact_scores(residual) * np.where(inside, 1.0, RESIDUAL_OUTSIDE)
        topic_total = np.zeros(n_topics, dtype=np.float32)
        for f in self.topic_fields.values():
            topic_total += f.weight * f.scores(concepts, n_topics)
        for ti in query.named:  # a topic the question names outright
            topic_total[ti] *= 1.0 + NAME_BOOST
        total += topic_total[self.doc_topic]
        if query.named and OUTSIDE_NAMED < 1.0:
            # The user named a topic: its facts are preferred unless another topic's fact fits much
            # better (a named topic's aliases are often absent from its own fact texts: "DPO"). A fact that
            # says the asked name in its own words counts as inside (see handlers.qa.names).
            total *= np.where(inside, 1.0, OUTSIDE_ASSUMED if query.assumed else OUTSIDE_NAMED).astype(np.float32)
        if query.intents:
            # Additive: a fact that answers two of the question's intents ("when is a PIPIA required":
            # a date, or the circumstances) beats one that answers one.
            hits = np.zeros(n_docs, dtype=np.float32)
            for intent in query.intents:
                hits += self.intent_docs[intent.name]
            total *= 1.0 + INTENT_BOOST * hits
        elif sections:
            total *= 1.0 + INTENT_BOOST * np.isin(self.doc_section, list(sections))
        top = float(total.max())
        found = self.alternate_questions.best(query, self.intent_docs) if top > 0 else None
        if (found is not None and found[1] >= QUESTION_MATCH and self.may_lead[found[0]]
                and (not sections or self.docs[found[0]].section in sections)):
            # Asked (almost) as editors wrote one of a fact's alternate questions (and, in a follow-up that
            # states no intent, of the kind the conversation was about). Not for a disputed or superseded
            # fact: it may lead only on the strength of its own words (see DISPUTED_CLEAR).
            total[found[0]] += QUESTION_MATCH_BOOST * top
        if self.lexicon.distinct:  # "max PIPL fine": not the fact about the Cybersecurity Law's fines
            total *= 1.0 - (1.0 - DISTINCT_OTHER) * self.names.other_things(query.text)
        asked_years = years(query.text)
        if asked_years:  # "dragon boat festival 2026": not the 2027 estimate
            total *= 1.0 - (1.0 - YEAR_MISMATCH) * year_mismatch(self.doc_years, asked_years)
        return total

    def inside_named(self, query: Query) -> np.ndarray:
        """Facts that count as inside the topics the question names (see :mod:`handlers.qa.names`)."""
        if not query.named:
            return np.zeros(len(self.docs), dtype=bool)
        return self.names.inside(self.doc_topic, {ti: query.name_hits.get(ti, set()) for ti in query.named})

    def match(self, text: str, *, assume: Sequence[int] = (), sections: Sequence[str] = (),
              only_sections: bool = False, only_assumed: bool = False) -> Match:
        """The best facts for ``text``. ``assume``: topics the conversation is about, treated as named
        when the question names none (a follow-up); ``sections``: see :meth:`scores`; ``only_sections``:
        nothing outside them ("and weibo?" after a user count asks Weibo's user count); ``only_assumed``:
        nothing outside the assumed topics."""
        query = self.analyse(text)
        assumed = query.assumed = bool(assume) and not query.named
        if assumed:
            query.named = set(assume)
        if not query.concepts:
            return Match(query, [], 0.0, 0.0, {"concepts": 0})
        scores = self.scores(query, sections)
        if only_sections and sections:
            scores = scores * np.isin(self.doc_section, list(sections))
        if only_assumed and assumed:
            scores = scores * np.isin(self.doc_topic, list(query.named))
        # A fact the pack marks disputed or superseded does not lead an answer, unless (disputed only) it
        # is clearly what the question asks about: then it is shown, marked as disputed.
        best = int(np.argmax(scores * self.may_lead))
        top = float(scores[best] * self.may_lead[best])
        doubt = int(np.argmax(scores * self.disputed))
        if self.disputed[doubt] and scores[doubt] >= DISPUTED_CLEAR * top:
            best, top = doubt, float(scores[doubt])
        if top <= 0:
            return Match(query, [], 0.0, 0.0, {"concepts": len(query.concepts)})
        ti = int(self.doc_topic[best])
        support = self._support(scores, best, ti, top)
        answer_tokens = self.doc_tokens[best].union(*(self.doc_tokens[i] for i in support))
        steps = self.step_tokens[ti] if ti in query.named else frozenset()
        named_tokens = frozenset().union(*(self.name_tokens[t] for t in query.named))  # "618" is a name
        asks_length = any(i.name == "duration" for i in query.intents) or LENGTH_ASKED.search(query.text) is not None
        # A fine or a turnover asked ("how much was Didi fined", "618卖了多少钱") is any sum; a fee or cost, a price.
        priced = (self.has_amount if any(i.name == "penalty" for i in query.intents) or SALES_ASKED.search(query.text)
                  else self.has_price)
        features = {
            "topic_coverage": self.coverage(query, self.topic_tokens[ti], best),
            "fact_coverage": self.coverage(query, self.doc_tokens[best], best, steps),
            "answer_coverage": self.coverage(query, answer_tokens, best, steps),
            "names_topic": float(ti in query.named),
            # The question is about another jurisdiction that the answer's facts do not mention.
            "elsewhere": float(self._elsewhere(query, answer_tokens)),
            # The question asks about a year the leading fact is not about ("dragon boat festival 2028").
            # (A fact that names no year is dated by its card's title: "Chinese New Year 2026-27" is not 2029.)
            "other_year": float(year_mismatch([self.doc_years[best] or self.topic_years[ti]], years(query.text))[0]),
            # "How long ..." answered by facts that state no length of time answers something else.
            "no_duration": float(asks_length and not any(
                self.has_duration[i] for i in (best, *support) if self.doc_topic[i] == ti)),
            # "How much is the fee / deposit" answered by facts of its topic that state no sum of money either.
            # ...and "how many followers does a big V need" by facts of its topic that state no number at all.
            "no_amount": float((any(has_cue(query.text, cue) for cue in self.lexicon.amount_cues) and not any(
                priced[i] for i in (best, *support) if self.doc_topic[i] == ti)) or (
                COUNT_ASKED.search(query.text) is not None and not any(
                    self.has_number[i] for i in (best, *support) if self.doc_topic[i] == ti))),
            # The question uses the packs' own domain language: names a topic, or uses a word of a
            # synonym group or a domain term. Everyday questions ("is the stock market open today")
            # can touch pack words by accident, but rarely this vocabulary.
            "anchor": float(bool(query.named) or self._anchored(query)),
            # How much distinctive evidence the fact itself matched (IDF mass, saturating).
            "evidence": self.evidence(query, self.doc_tokens[best], steps),
            # "How do we X" answered by a fact that mentions X only in passing.
            "in_passing": float(self.in_passing(query, best)),
            # How many of the question's words (not bare numbers) the answer matched, up to three: one
            # word that happens to be in the packs ("channel", "7") is not a question we can answer;
            # a number counts only as a topic's name ("618").
            "matched_words": min(3, sum(
                1 for c in query.concepts
                if (not c.primary.replace(".", "").isdigit() or c.primary in named_tokens)
                and any(t in answer_tokens for t in c.credit)
            )) / 3,
            "cohesion": self.cohesion(query),
            "unmatched": self.unmatched(query, answer_tokens, best, steps),
            # In a follow-up the conversation says which topic: how clearly it beats the others says nothing.
            "margin": 1.0 if assumed and ti in query.named else self.margin(scores, ti, top, best),
            "concepts": float(len(query.concepts)),
        }
        confidence = calibrated(features)
        ids = [best, *support]
        return Match(query, [self.docs[i] for i in ids], top, confidence, features, ids)

    def intent_match(self, query: Query, ti: int) -> Match | None:
        """A follow-up made only of a question's form ("who does it go to?", "how long?") about topic
        ``ti``: the topic's first fact that answers the first intent. Confidence: the conversation says
        which topic, the form which section, so nothing is guessed but which of its facts leads."""
        docs = np.flatnonzero(self.doc_topic == ti)
        for intent in query.intents:
            hits = [int(i) for i in docs if self.intent_docs[intent.name][i] and self.may_lead[i]]
            # The intent's own section first ("who's on it": audience before user numbers), in the pack's order.
            order = {section: n for n, section in enumerate(intent.sections)}
            hits.sort(key=lambda i: order.get(self.docs[i].section, len(order)))
            if hits:
                return Match(query, [self.docs[hits[0]]], 1.0, INTENT_ONLY_CONFIDENCE,
                             {"concepts": 0.0, "names_topic": 1.0, "topic_coverage": 1.0}, [hits[0]])
        return None

    def _support(self, scores: np.ndarray, best: int, ti: int, top: float) -> list[int]:
        """Up to two more facts of the same topic that score nearly as well (they add detail)."""
        same = np.flatnonzero(self.doc_topic == ti)
        ranked = sorted((int(i) for i in same if i != best), key=lambda i: -scores[i])
        seen = {self.docs[best].fact.text}
        out: list[int] = []
        for i in ranked:
            if scores[i] < SUPPORT_RATIO * top or len(out) >= MAX_FACTS - 1:
                break
            if self.docs[i].fact.status == "superseded":
                continue
            text = self.docs[i].fact.text
            # Two sources saying the same thing ("reviews within 15 working days") is one fact to a reader.
            if text not in seen and not any(similar(text, other) for other in seen):
                seen.add(text)
                out.append(i)
        # A fact of another topic that fits (almost) as well as the best one answers the question too
        # (PIPL fines are stated under both the SCC and the data-export topics): shown as well, under its
        # own topic's name (see handlers.qa.replies), never as if it were the first topic's.
        k = min(len(scores), 8)
        for i in np.argpartition(-scores, k - 1)[:k] if k else ():
            i = int(i)
            text = self.docs[i].fact.text
            if (self.doc_topic[i] != ti and scores[i] >= OTHER_TOPIC_RATIO * top and self.may_lead[i]
                    and text not in seen and not any(similar(text, other) for other in seen)):
                return [*out[: MAX_FACTS - 2], i]
        return out


