"""Feedback that teaches (core): reasons, unanswered questions recorded per the privacy policy, the report."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import pytest

from content.loader import Library
from handlers import Desk, Request
from handlers.feedback import (
    BadReasonError,
    FeedbackPolicy,
    UnansweredQuestion,
    build_report,
    check_reason,
    fact_ref,
    feedback_fact,
    render_report,
    resolve_fact,
)

NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Vote:  # the shape the report reads (bot.store.Feedback has these fields)
    topic: str | None
    vote: str
    question: str | None = None
    fact: str | None = None
    reason: str | None = None
    reason_text: str | None = None
    platform: str = "slack"
    created_at: dt.datetime = NOW


class Recorder:
    """A store that keeps what the core records (the real stores are tested in test_store.py)."""

    def __init__(self) -> None:
        self.unanswered: list[UnansweredQuestion] = []

    async def record_unanswered(self, row: UnansweredQuestion) -> None:
        self.unanswered.append(row)


def _desk(desk: Desk, store: Recorder, policy: FeedbackPolicy | None = None) -> Desk:
    settings = {**desk.settings, **({"feedback_policy": policy} if policy else {})}
    return dataclasses.replace(desk, store=store, settings=settings)


# ------------------------------------------------------------------------------------------ reasons


def test_reasons_are_checked_and_comments_cleaned() -> None:
    assert check_reason("outdated", None) == ("outdated", None)
    assert check_reason(None, "  the fee\nchanged  ") == ("other", "the fee changed")  # a comment alone is "other"
    assert check_reason(None, "   ") == (None, None)
    assert check_reason("wrong", "x" * 2000)[1] == "x" * 500
    with pytest.raises(BadReasonError):
        check_reason("<!channel>", None)


def test_policy_refuses_a_retention_out_of_range() -> None:
    with pytest.raises(ValueError):
        FeedbackPolicy(unanswered_retention_days=0)
    assert FeedbackPolicy(unanswered_retention_days=7).expires_at(NOW) == NOW + dt.timedelta(days=7)


# -------------------------------------------------------------------------------------- fact refs


async def test_an_answer_names_the_fact_its_feedback_is_about(desk: Desk, library: Library) -> None:
    reply = await desk.handle(Request(text="How long does the standard contract filing take?", mode="direct",
                                      now=NOW))
    assert reply.kind == "answer"
    ref = feedback_fact(reply)
    topic, fact = resolve_fact(library, ref)
    assert topic is not None and topic.id == reply.topic
    assert fact is not None and fact.text.split("[")[0][:30] in reply.summary  # the answer's leading fact


def test_fact_refs_round_trip_over_every_fact(library: Library) -> None:
    for topic in list(library.topics.values())[:40]:
        for section, fact in topic.all_facts():
            assert resolve_fact(library, fact_ref(topic, section, fact)) == (topic, fact)
    assert resolve_fact(library, "no-such-topic#summary") == (None, None)
    assert resolve_fact(library, "icp-beian#nonsense.9")[1] is None


# ---------------------------------------------------------------------------- unanswered questions


async def test_a_question_without_an_answer_is_recorded_with_its_closest_topic(desk: Desk) -> None:
    store = Recorder()
    d = _desk(desk, store, FeedbackPolicy(unanswered_retention_days=30))
    reply = await d.handle(Request(text="What is the visa fee for Douyin staff?", mode="direct", platform="slack",
                                   workspace="T1", now=NOW))
    assert reply.kind == "no_answer"
    [row] = store.unanswered
    assert row.question == "What is the visa fee for Douyin staff?"
    assert row.topic == "douyin" and row.platform == "slack" and row.workspace == "T1"
    assert row.expires_at == NOW + dt.timedelta(days=30)


async def test_question_text_is_not_kept_when_the_policy_says_so(desk: Desk) -> None:
    store = Recorder()
    d = _desk(desk, store, FeedbackPolicy(keep_question_text=False))
    await d.handle(Request(text="Who won the football last night?", mode="mention", now=NOW))
    [row] = store.unanswered
    assert row.question is None  # counted, but the words are gone


async def test_answers_and_watched_chatter_are_not_recorded(desk: Desk) -> None:
    store = Recorder()
    d = _desk(desk, store)
    assert (await d.handle(Request(text="Does the standard contract filing have a deadline?", mode="direct",
                                   now=NOW))).kind in ("answer", "deadline")
    await d.handle(Request(text="anyone up for lunch?", mode="watch", channel="C1", now=NOW))
    await d.handle(Request(text="what's the weather in Shanghai tomorrow?", mode="watch", channel="C1", now=NOW))
    assert store.unanswered == []


# ---------------------------------------------------------------------------------------- the report


def test_report_groups_negative_feedback_by_topic_and_fact_with_reasons(library: Library) -> None:
    topic = library.topics["icp-beian"]
    (s1, f1), (s2, f2) = topic.all_facts()[:2]
    r1, r2 = fact_ref(topic, s1, f1), fact_ref(topic, s2, f2)
    votes = [
        Vote("icp-beian", "down", "how long is beian?", r1, "outdated", "the MIIT page changed in 2026"),
        Vote("icp-beian", "down", "beian time?", r1, "outdated"),
        Vote("icp-beian", "down", "beian cost", r2, "wrong"),
        Vote("icp-beian", "up", "thanks", r1),
        Vote("douyin", "down", "douyin ads?", None, None),
        Vote("icp-beian", "down", "old", r1, "wrong", created_at=NOW - dt.timedelta(days=40)),
    ]
    report = build_report(votes, [], library=library, since=(NOW - dt.timedelta(days=30)).date())
    assert [t.topic for t in report.negative] == ["icp-beian", "douyin"]  # most 👎 first
    beian = report.negative[0]
    assert beian.count == 3 and beian.reasons == {"wrong": 1, "outdated": 2}
    assert [f.fact for f in beian.facts] == [r1, r2]
    assert beian.facts[0].reasons == {"outdated": 2} and beian.facts[0].fact_text == f1.text
    assert beian.facts[0].comments == ["the MIIT page changed in 2026"]
    assert report.helpful == 1 and report.negative_count == 4


def test_report_groups_unanswered_questions_by_topic_and_json_has_both_keys(library: Library) -> None:
    rows = [
        UnansweredQuestion("slack", "T1", "douyin", "douyin visa?", "en", NOW, NOW),
        UnansweredQuestion("teams", "t", "douyin", "Douyin  VISA?", "en", NOW, NOW),  # the same question
        UnansweredQuestion("slack", "T1", None, None, "en", NOW, NOW),  # text not kept
    ]
    report = build_report([], rows, library=library)
    data = report.as_json()
    assert {"negative", "unanswered"} <= set(data)
    assert data["unanswered"][0] == {"topic": "douyin", "title": library.topics["douyin"].title, "count": 2,
                                     "questions": ["douyin visa?"]}
    assert data["unanswered"][1]["topic"] is None and data["unanswered"][1]["count"] == 1
    assert data["totals"] == {"negative": 0, "helpful": 0, "unanswered": 3}


def test_report_text_lists_what_editors_need(library: Library) -> None:
    topic = library.topics["icp-beian"]
    section, fact = topic.all_facts()[0]
    ref = fact_ref(topic, section, fact)
    report = build_report(
        [Vote("icp-beian", "down", "beian?", ref, "outdated", "fee is now different")],
        [UnansweredQuestion("slack", "T1", "douyin", "douyin visa?", "en", NOW, NOW)],
        library=library, since=dt.date(2026, 11, 1),
    )
    text = render_report(report, library)
    assert "since 2026-11-01" in text
    assert f"{ref}: 1 👎 · It's out of date ×1" in text
    assert "fee is now different" in text and fact.text[:40] in text
    assert f"{library.topics['douyin'].title} (douyin): 1" in text and "douyin visa?" in text
    assert "Nothing to review" in render_report(build_report([], [], library=library), library)
