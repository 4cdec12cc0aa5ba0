"""Feedback that teaches: 👎 reasons, unanswered questions, and the editors' review queue.

Platform-neutral. Adapters record a vote (``Store.record_feedback``) and, when a person says why, its
reason (``Store.record_feedback_reason``, the same call from Slack's modal and Teams' card); the Q&A
fallback records questions it could not answer (:func:`record_unanswered`). :func:`build_report` turns the
stored rows into the review queue that ``chinadesk feedback report`` prints and the Slack App Home shows
workspace admins: negative feedback by topic and fact, with reasons, and unanswered questions by topic.

Privacy: whether an unanswered question's text is kept at all is :attr:`FeedbackPolicy.keep_question_text`
(``FEEDBACK_KEEP_QUESTION_TEXT``); kept or not, the row is forgotten after
:attr:`FeedbackPolicy.unanswered_retention_days` (``UNANSWERED_RETENTION_DAYS``) by ``Store.purge_expired``.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from content.loader import Library
from content.schema import Fact, Topic
from handlers.request import Reply, Request, clean_input

log = logging.getLogger("chinadesk.feedback")

Reason = Literal["wrong", "outdated", "unclear", "missing", "other"]
REASONS: tuple[Reason, ...] = ("wrong", "outdated", "unclear", "missing", "other")
# What a person picks from (Slack's modal, Teams' card); "other" is implied by a comment alone.
REASON_LABELS: dict[Reason, str] = {
    "wrong": "It's wrong",
    "outdated": "It's out of date",
    "unclear": "It's unclear",
    "missing": "Something is missing",
    "other": "Something else",
}
REASON_TEXT_MAX = 500  # a free-text reason is a sentence or two, not an essay
QUESTION_MAX = 1000  # how much of an unanswered question is kept (when kept at all)
DEFAULT_RETENTION_DAYS = 90
NO_TOPIC = "(no topic)"


class BadReasonError(ValueError):
    """A reason that is not one of :data:`REASONS` (a forged or stale payload)."""


@dataclass(frozen=True)
class FeedbackPolicy:
    """What is kept of questions the bot could not answer, and for how long."""

    keep_question_text: bool = True
    unanswered_retention_days: int = DEFAULT_RETENTION_DAYS

    def __post_init__(self) -> None:
        if not 1 <= self.unanswered_retention_days <= 3650:
            raise ValueError("the unanswered-question retention must be 1 to 3650 days")

    def expires_at(self, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(days=self.unanswered_retention_days)


def policy_of(settings: dict[str, Any] | None) -> FeedbackPolicy:
    """The deployment's policy from ``Desk.settings`` (the default when start-up put none there)."""
    found = (settings or {}).get("feedback_policy")
    return found if isinstance(found, FeedbackPolicy) else FeedbackPolicy()


def check_reason(reason: str | None, text: str | None) -> tuple[Reason | None, str | None]:
    """A stored reason from what a form sent: a known reason (or none) and the comment, cleaned and cut.

    A comment without a choice counts as "other"; nothing at all is (None, None). An unknown reason
    raises :class:`BadReasonError`: it did not come from our form.
    """
    comment = clean_input(text or "")[:REASON_TEXT_MAX] or None
    if reason is not None and reason not in REASONS:
        raise BadReasonError(f"unknown feedback reason {reason[:30]!r}")
    if reason is None and comment is not None:
        reason = "other"
    return reason, comment  # type: ignore[return-value]


# ----------------------------------------------------------------------------------- fact references


def fact_ref(topic: Topic, section: str, fact: Fact) -> str:
    """A fact's reference in feedback: ``topic#section`` with ``.N`` (1-based) when the section has several."""
    same = [f for s, f in topic.all_facts() if s == section]
    n = next((i for i, f in enumerate(same, 1) if f is fact), 1)
    return f"{topic.id}#{section}" if len(same) == 1 else f"{topic.id}#{section}.{n}"


def resolve_fact(library: Library | None, ref: str | None) -> tuple[Topic | None, Fact | None]:
    """The topic and fact a reference names today (None where content has moved on since the vote)."""
    if library is None or not ref:
        return None, None
    topic_id, _, rest = ref.partition("#")
    topic = library.topics.get(topic_id)
    if topic is None or not rest:
        return topic, None
    section, _, number = rest.partition(".")
    same = [f for s, f in topic.all_facts() if s == section]
    index = int(number) - 1 if number.isdigit() else 0
    return topic, same[index] if 0 <= index < len(same) else None


def feedback_fact(reply: Reply) -> str | None:
    """The fact an answer's 👍/👎 is about (the core puts its reference in the feedback actions)."""
    for action in reply.actions:
        if action.kind in ("feedback_up", "feedback_down") and action.value:
            return action.value
    return None


# ------------------------------------------------------------------------------- recording questions


@dataclass(frozen=True)
class UnansweredQuestion:
    """A question answered "no answer": where, the topic it seemed closest to, and (per policy) its text."""

    platform: str
    workspace: str | None
    topic: str | None
    question: str | None
    language: str
    created_at: dt.datetime
    expires_at: dt.datetime


async def record_unanswered(store: Any, request: Request, reply: Reply, topic: str | None,
                            policy: FeedbackPolicy) -> None:
    """Keep a question the bot could not answer, for the editors (never fails the answer itself).

    Ambient messages in a watched channel are not recorded: nobody asked the bot, and people's chatter is
    not the editors' business. ``topic``: the one the question seemed closest to, if any.
    """
    if request.mode == "watch" or store is None or not hasattr(store, "record_unanswered"):
        return
    text = clean_input(request.text)[:QUESTION_MAX] if policy.keep_question_text else None
    row = UnansweredQuestion(
        platform=request.platform, workspace=request.workspace, topic=reply.topic or topic, question=text or None,
        language=reply.language, created_at=request.now, expires_at=policy.expires_at(request.now),
    )
    try:
        result = store.record_unanswered(row)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("recording an unanswered question failed")


# ----------------------------------------------------------------------------------------- the report


class VoteRow(Protocol):
    """What the report reads of a stored vote (``bot.store.Feedback``)."""

    platform: str
    topic: str | None
    vote: str
    question: str | None
    created_at: dt.datetime

    @property
    def fact(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def reason_text(self) -> str | None: ...


class QuestionRow(Protocol):
    platform: str
    topic: str | None
    question: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class FactFeedback:
    """The 👎 on one fact (or on a topic's answers with no fact known)."""

    fact: str | None
    fact_text: str | None  # the fact as the packs say it today (None: moved or removed since)
    count: int
    reasons: dict[str, int]
    comments: list[str]
    questions: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"fact": self.fact, "fact_text": self.fact_text, "count": self.count, "reasons": dict(self.reasons),
                "comments": list(self.comments), "questions": list(self.questions)}


@dataclass(frozen=True)
class TopicFeedback:
    topic: str | None
    title: str
    count: int
    reasons: dict[str, int]
    facts: list[FactFeedback]

    def as_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "title": self.title, "count": self.count, "reasons": dict(self.reasons),
                "facts": [f.as_json() for f in self.facts]}


@dataclass(frozen=True)
class UnansweredTopic:
    topic: str | None  # the topic the questions seemed closest to; None: none at all
    title: str
    count: int
    questions: list[str]  # the kept texts (fewer than count when text is not kept)

    def as_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "title": self.title, "count": self.count, "questions": list(self.questions)}


@dataclass(frozen=True)
class FeedbackReport:
    """The editors' review queue: what people said was not right, and what the packs could not answer."""

    since: dt.date | None
    negative: list[TopicFeedback]
    unanswered: list[UnansweredTopic]
    helpful: int = 0  # 👍 in the same period, for scale
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def negative_count(self) -> int:
        return sum(t.count for t in self.negative)

    @property
    def unanswered_count(self) -> int:
        return sum(t.count for t in self.unanswered)

    @property
    def empty(self) -> bool:
        return not self.negative and not self.unanswered

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "generated_at": self.generated_at.isoformat(),
            "totals": {"negative": self.negative_count, "helpful": self.helpful, "unanswered": self.unanswered_count},
            "negative": [t.as_json() for t in self.negative],
            "unanswered": [t.as_json() for t in self.unanswered],
        }


def _title(library: Library | None, topic: str | None) -> str:
    if topic is None:
        return NO_TOPIC
    found = library.topics.get(topic) if library is not None else None
    return found.title if found is not None else topic


def _distinct(texts: Iterable[str | None], limit: int) -> list[str]:
    """The texts in first-seen order, each once (case and spacing aside), at most ``limit``."""
    seen: set[str] = set()
    out = []
    for text in texts:
        if not text:
            continue
        key = " ".join(text.casefold().split())
        if key in seen:
            continue
        seen.add(key)
        out.append(text)
        if len(out) >= limit:
            break
    return out


def _ordered(counts: Counter[str]) -> dict[str, int]:
    """Reasons in the form's order (wrong first), not by dictionary accident."""
    return {r: counts[r] for r in REASONS if counts[r]}


def build_report(
    votes: Iterable[VoteRow], questions: Iterable[QuestionRow], *, library: Library | None = None,
    since: dt.date | None = None, examples: int = 5,
) -> FeedbackReport:
    """Group 👎 by topic then fact (most first), unanswered questions by topic (most first).

    ``since``: only rows from that UTC day on. ``examples``: at most this many distinct questions and
    comments per group (the counts are always complete).
    """
    start = dt.datetime.combine(since, dt.time(), dt.UTC) if since else None

    def recent(row: Any) -> bool:
        return start is None or row.created_at >= start

    votes = [v for v in votes if recent(v)]
    down = [v for v in votes if v.vote == "down"]
    by_topic: dict[str | None, list[Any]] = {}
    for v in down:
        by_topic.setdefault(v.topic, []).append(v)
    negative = []
    for topic, rows in by_topic.items():
        by_fact: dict[str | None, list[Any]] = {}
        for v in rows:
            by_fact.setdefault(getattr(v, "fact", None), []).append(v)
        facts = []
        for ref, fact_rows in by_fact.items():
            _, fact = resolve_fact(library, ref)
            newest_first = sorted(fact_rows, key=lambda r: r.created_at, reverse=True)
            facts.append(FactFeedback(
                fact=ref, fact_text=fact.text if fact is not None else None, count=len(fact_rows),
                reasons=_ordered(Counter(r.reason for r in fact_rows if getattr(r, "reason", None))),
                comments=_distinct((getattr(r, "reason_text", None) for r in newest_first), examples),
                questions=_distinct((r.question for r in newest_first), examples),
            ))
        facts.sort(key=lambda f: (-f.count, f.fact or ""))
        negative.append(TopicFeedback(
            topic=topic, title=_title(library, topic), count=len(rows),
            reasons=_ordered(Counter(r.reason for r in rows if getattr(r, "reason", None))), facts=facts,
        ))
    negative.sort(key=lambda t: (-t.count, t.title.casefold()))

    by_question_topic: dict[str | None, list[Any]] = {}
    for q in questions:
        if recent(q):
            by_question_topic.setdefault(q.topic, []).append(q)
    unanswered = [
        UnansweredTopic(
            topic=topic, title=_title(library, topic), count=len(rows),
            questions=_distinct((r.question for r in sorted(rows, key=lambda r: r.created_at, reverse=True)), examples),
        )
        for topic, rows in by_question_topic.items()
    ]
    unanswered.sort(key=lambda t: (-t.count, t.topic is None, t.title.casefold()))
    return FeedbackReport(since=since, negative=negative, unanswered=unanswered,
                          helpful=sum(1 for v in votes if v.vote == "up"))


def render_report(report: FeedbackReport, library: Library, *, quote: Callable[[str], str] = str) -> str:
    """The report as plain text (``chinadesk feedback report``), from ``content/templates/feedback_report.j2``.

    ``quote``: how people's own words are shown (the CLI prints them as they are; other surfaces escape)."""
    return library.render("feedback_report", report=report, reason_labels=REASON_LABELS, quote=quote)
