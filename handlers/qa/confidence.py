"""Confidence: a logistic model of "the top fact answers the question", over a few features.

How much of the question (IDF-weighted) the answer's facts account for, whether the question uses the
packs' own vocabulary (a topic name, a synonym of one, a domain term, or a company editors keyed), how
much distinctive evidence matched, how many of its words, whether its neighbouring words also stand
together in the packs, how distinctive the most distinctive word is that the answer lacks entirely
("visa", "WFOE"), how clearly the best topic beats the runner-up, and whether it asks about another
jurisdiction (a place framed as the one asked about, "under GDPR", "in the UK", unlike one saying who
asks, "a UK company"). ``python bench/bench_qa.py --calibrate`` fits it.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

from handlers.qa.text import has_cjk, has_cue

if TYPE_CHECKING:
    import numpy as np

    from handlers.qa.query import Concept, Query

# Bars on the calibrated confidence (the estimated chance that the top fact answers the question).
# A confident wrong answer costs more than an honest "I don't know" (about three times as much), so
# the bot answers only from 0.75. Ambient messages in a watched channel interrupt people who did not
# ask the bot, so they need a clearly higher bar.
ANSWER_BAR = 0.75
WATCH_BAR = 0.9
INTENT_ONLY_CONFIDENCE = 0.9  # see QAIndex.intent_match
UNSEEN_CJK_WEIGHT = 0.5  # see ConfidenceFeatures.unmatched
SAME_CLAIM_SHARE = 0.4  # see ConfidenceFeatures.same_claim
EVIDENCE_SCALE = 4.0  # IDF mass at which matched evidence counts as 63% "strong"
# A word of the question that the named topic's own checklist uses ("appoint" in "Appoint a PI protection
# officer") is the topic's language, not a sign of another subject: it counts this far as accounted for.
STEP_CREDIT = 0.5
COMMON_IDF = 1.0  # a word this common in the packs ("file", "china") says nothing about what is asked

# Confidence = sigmoid(bias + sum(coef * feature)), a logistic model of "the top fact answers the
# question". `python bench/bench_qa.py --calibrate` fits it on half 1 of every question set (ours, the
# blind batches, the public dev set) and prints its reliability on the halves 2. These values are the
# fit on every set but the held-out half of blind batch A (`--fit-on all --exclude qa_blind.yaml:2`),
# made before that half was scored; refitting on it as well moved no out-of-scope question below the
# bar and cost a point of accuracy on our set, so it was kept. "elsewhere", "other_year" and "no_duration"
# are fixed by hand (FIXED), as is "no_amount" (how much a fee is, or how many, answered by facts that state no sum
# or number):
# a question about another place, another year, or how long something takes,
# answered by facts about none of that, is not answered; nor is "how do we X" answered by a fact that mentions
# X only in passing ("in_passing", see ConfidenceFeatures.in_passing; stronger, since such a question matches
# every word of its fact and would otherwise look certain). Refitting on the rewritten packs (2026-12, with
# the tuning batches C-E) gave a better Brier score but fewer right answers above the bar, so the fit
# above was kept (README, "How good it is").
CONFIDENCE_FEATURES = (
    "answer_coverage", "fact_coverage", "elsewhere", "other_year", "no_duration", "no_amount", "in_passing", "anchor",
    "evidence", "matched_words", "cohesion", "unmatched", "margin",
)
CONFIDENCE_COEF: dict[str, float] = {
    "bias": -8.66, "answer_coverage": 2.24, "fact_coverage": 3.30, "elsewhere": -4.00, "other_year": -4.00,
    "no_duration": -4.00, "no_amount": -4.00, "in_passing": -6.00, "anchor": 1.68, "evidence": 2.73,
    "matched_words": 2.20, "cohesion": 0.57, "unmatched": -1.44, "margin": 3.13,
}



def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def calibrated(features: dict[str, float], coef: dict[str, float] | None = None) -> float:
    """The confidence for a match's features: a logistic model fitted on the question set."""
    coef = coef or CONFIDENCE_COEF
    return sigmoid(coef["bias"] + sum(coef[name] * features.get(name, 0.0) for name in CONFIDENCE_FEATURES))


class ConfidenceFeatures:
    """The confidence features of :class:`~handlers.qa.index.QAIndex` (a mixin: it reads the index's tables)."""

    def coverage(self, query: Query, tokens: frozenset[str], doc: int, steps: frozenset[str] = frozenset()) -> float:
        """IDF-weighted share of the question's content words that ``tokens`` (or the kind of fact that
        ``doc`` is, for intent words such as "how old") account for; ``steps``: the named topic's checklist
        words (see :data:`STEP_CREDIT`)."""
        total = got = 0.0
        asker = query.asker
        for c in query.concepts:
            if any(self.intent_docs[name][doc] for name in c.intents):
                got += c.idf
                total += c.idf
                continue
            credit = _credit(c, tokens, steps)
            if credit <= 0 and (c.weak or c.figure or c.primary in asker):
                continue
            got += c.idf * credit
            total += c.idf
        return got / total if total > 0 else 0.0

    def _elsewhere(self, query: Query, answer_tokens: frozenset[str]) -> bool:
        """The question is about another jurisdiction's rules or market, not China's.

        Not when it names China itself. A place that says who is asking ("a UK company", "British
        brands") is context when the question is about one of China's own institutions, laws or
        platforms ("can a UK company open a WeChat service account"). A place framed as the one whose
        rules are asked about ("under GDPR", "in the UK") is elsewhere unless the question is about
        something of China's ("do we need an ICP filing if we host in HK") and the answer speaks of
        that place. Any other place is elsewhere unless the question names a topic whose answer
        mentions it ("Is PIPL similar to GDPR?")."""
        if not query.elsewhere:
            return False
        if query.home:
            # China named too: about China ("EU tariffs on Chinese EVs", "send data from China to the UK",
            # "a New York IPO for our China business"), unless the question asks about a place's own measures
            # the answer says nothing of ("US tariffs on Chinese EVs": the answer speaks of the UK and the EU).
            if not any(has_cue(query.text, cue) for cue in self.lexicon.foreign_measures):
                return False
            return any(not place.identity and not place.moved and not any(
                answer_tokens.issuperset(alt) for alt in self.elsewhere_alts[place.phrase])
                for place in query.elsewhere)
        for place in query.elsewhere:
            if (place.identity and query.china) or (place.moved and (query.china or query.named)):
                continue  # who asks, or where the data goes ("签给英国总部的标准合同")
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
        if any(has_cue(query.text, term) for term in self.lexicon.domain_terms):
            return True
        return query.asks and any(c.primary in self.entity_tokens for c in own)

    def cohesion(self, query: Query) -> float:
        """Share of the question's neighbouring content words that also stand together in the packs."""
        primaries = [c.primary for c in query.concepts]
        pairs = list(itertools.pairwise(primaries))
        return sum(p in self.pairs for p in pairs) / len(pairs) if pairs else 1.0

    def margin(self, scores: np.ndarray, ti: int, top: float, best: int | None = None) -> float:
        """How clearly the best topic wins: 1 minus the runner-up topic's best score over the best one.
        A question about something the packs do not cover matches generic words of many topics alike.
        A runner-up whose best fact makes the same claim as ``best`` (the whisky tariff cut, told under
        food and drink and under UK-China trade) is no rival: either answer is the answer."""
        import numpy as np  # here: importing this module (the answer bars) must not load numpy

        per_topic = np.maximum.reduceat(scores, self.topic_starts)
        per_topic[ti] = 0.0
        if best is not None:
            for _ in range(3):
                rival = int(np.argmax(per_topic))
                if per_topic[rival] <= 0:
                    break
                ends = self.topic_starts[rival + 1] if rival + 1 < len(self.topic_starts) else len(scores)
                rival_best = int(self.topic_starts[rival] + np.argmax(scores[self.topic_starts[rival]:ends]))
                if not self.same_claim(best, rival_best):
                    break
                per_topic[rival] = 0.0
        return float(max(0.0, 1.0 - per_topic.max() / top)) if len(per_topic) > 1 else 1.0

    def same_claim(self, a: int, b: int) -> bool:
        """Two facts state the same figures (at least one) and share most of their words."""
        figures_a = {t for t in self.doc_tokens[a] if any(ch.isdigit() for ch in t)}
        figures_b = {t for t in self.doc_tokens[b] if any(ch.isdigit() for ch in t)}
        if not figures_a or not figures_a <= figures_b | {t for t in figures_a if len(t) == 4}:  # years aside
            return False
        shared = len(self.doc_tokens[a] & self.doc_tokens[b])
        return shared >= SAME_CLAIM_SHARE * min(len(self.doc_tokens[a]), len(self.doc_tokens[b]))

    def unmatched(self, query: Query, tokens: frozenset[str], doc: int, steps: frozenset[str] = frozenset()) -> float:
        """How distinctive the most distinctive word is that the answer does not account for at all
        (IDF over the largest IDF there is): "zones" in "how many time zones does China have", "WFOE",
        "visa". A question that everything but one rare word of matches is still about that word."""
        worst = 0.0
        asker = query.asker
        for c in query.concepts:
            if (c.idf <= 0 or c.weak or c.figure or c.primary in asker
                    or any(self.intent_docs[name][doc] for name in c.intents)):
                continue
            if _credit(c, tokens, steps) <= 0:
                # A Chinese word the packs never use is as often chat ("女装", "拿", "就算") as a subject
                # of its own: half as telling as an English one.
                # (Not a fee, tax, rate or price: "坑位费" is what is asked.)
                unseen_cjk = c.idf >= self.max_idf and has_cjk(c.primary) and c.primary[-1] not in "费税率价金"
                worst = max(worst, c.idf * (UNSEEN_CJK_WEIGHT if unseen_cjk else 1.0))
        return worst / self.max_idf

    def evidence(self, query: Query, tokens: frozenset[str], steps: frozenset[str] = frozenset()) -> float:
        mass = sum(c.idf * _credit(c, tokens, steps) for c in query.concepts)
        return 1.0 - math.exp(-mass / EVIDENCE_SCALE)

    def in_passing(self, query: Query, doc: int) -> bool:
        """A question asking how to do something ("how do we set up a bank account for the WFOE") whose
        distinctive words (not a name of the topic it names, not its form) the fact has only in passing: in
        its text, but none of them among its keywords, alternate questions or section label. Such a fact
        mentions the thing ("...before it can open a bank account") without saying how to do it."""
        if not any(has_cue(query.text, cue) for cue in self.lexicon.how_to_cues):
            return False
        if any(self.intent_docs[i.name][doc] for i in query.intents):
            return False
        names = frozenset().union(*(self.name_tokens[ti] for ti in query.named))
        need = [c for c in query.concepts if not c.intents and c.idf > COMMON_IDF and c.primary not in names]
        focus = self.focus_tokens[doc]
        return bool(need) and not any(w >= 0.8 and t in focus for c in need for t, w in c.credit.items())


def _credit(concept: Concept, tokens: frozenset[str], steps: frozenset[str]) -> float:
    """How far ``tokens`` (or, at :data:`STEP_CREDIT`, the named topic's checklist words) account for a word."""
    own = max((w for t, w in concept.credit.items() if t in tokens), default=0.0)
    if own <= 0 and steps:
        return STEP_CREDIT * max((w for t, w in concept.credit.items() if t in steps), default=0.0)
    return own

