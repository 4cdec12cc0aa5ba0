"""Channel Q&A: free-text questions answered from the packs, or an honest "I don't know".

The package, by job: :mod:`~handlers.qa.text` (text analysis), :mod:`~handlers.qa.lexicon` (the domain
language of ``content/synonyms.yaml``), :mod:`~handlers.qa.query` (question analysis),
:mod:`~handlers.qa.index` (retrieval), :mod:`~handlers.qa.confidence`, :mod:`~handlers.qa.replies` (the
router's fallback and watch mode), :mod:`~handlers.qa.evaluation` (question sets and their scores).

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

from handlers.qa.confidence import ANSWER_BAR, CONFIDENCE_COEF, CONFIDENCE_FEATURES, WATCH_BAR, calibrated
from handlers.qa.evaluation import (
    ACCURACY_BAR,
    EvalItem,
    EvalReport,
    EvalResult,
    evaluate,
    half,
    load_questions,
    patterns_match,
    read_question_set,
    tagged_differences,
)
from handlers.qa.lexicon import Intent, Lexicon, default_lexicon
from handlers.qa.query import Query
from handlers.qa.replies import answer, answer_reply, looks_like_question, mentions_domain, no_answer, qa_index
from handlers.qa.text import Analyzer, base_jieba, normalise_numbers

_LAZY = {"Doc", "Match", "QAIndex"}  # handlers.qa.index: numpy and bm25s, imported when first asked for


def __getattr__(name: str):
    # PEP 562: `from handlers.qa import QAIndex` works as before, but importing the package (which every
    # command does, to register the Q&A fallback) does not import the index and its numerical libraries.
    if name in _LAZY:
        from handlers.qa import index

        return getattr(index, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ACCURACY_BAR", "ANSWER_BAR", "CONFIDENCE_COEF", "CONFIDENCE_FEATURES", "WATCH_BAR", "Analyzer", "Doc",
    "EvalItem", "EvalReport", "EvalResult", "Intent", "Lexicon", "Match", "QAIndex", "Query", "answer",
    "answer_reply", "base_jieba", "calibrated", "default_lexicon", "evaluate", "half", "load_questions",
    "looks_like_question", "mentions_domain", "no_answer", "normalise_numbers", "patterns_match", "qa_index",
    "read_question_set", "tagged_differences",
]
