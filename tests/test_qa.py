"""Channel Q&A: retrieval quality bars, answer shape, abstention, watch mode, the watch command."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers import Desk, Request, qa
from handlers.request import LEGAL_CAVEAT

OUR_SET = Path(__file__).parent / "qa_questions.yaml"
DEV_SET = Path(__file__).parents[2] / "shared" / "dev_questions.yaml"


@pytest.fixture(scope="module")
def index(desk: Desk) -> qa.QAIndex:
    return qa.qa_index(desk)


# ------------------------------------------------------------------------------------------- the bars


def _assert_bars(report: qa.EvalReport) -> None:
    assert report.abstention == 1.0, report.render()
    assert report.accuracy >= qa.ACCURACY_BAR, report.render()


async def test_our_question_set_meets_the_bars(desk: Desk) -> None:
    items = qa.load_questions(OUR_SET)
    assert sum(it.answerable for it in items) >= 80
    assert sum(not it.answerable for it in items) >= 25
    _assert_bars(await qa.evaluate(desk, items))


@pytest.mark.parametrize("name", ["qa_blind.yaml", "qa_blind_b.yaml"])
async def test_blind_batches_meet_the_bars(desk: Desk, name: str) -> None:
    """Batches written blind (before the tuning they were then used for), folded in once scored."""
    items = qa.load_questions(Path(__file__).parent / name)
    assert sum(it.answerable for it in items) >= 40 and sum(not it.answerable for it in items) >= 15
    _assert_bars(await qa.evaluate(desk, items))


@pytest.mark.skipif(not DEV_SET.exists(), reason=f"public dev set not found at {DEV_SET}")
async def test_public_dev_set_meets_the_bars(desk: Desk) -> None:
    _assert_bars(await qa.evaluate(desk, qa.load_questions(DEV_SET)))


@pytest.mark.xfail(reason="known misses of the lexical method, kept in view (see the file's comments)", strict=False)
async def test_known_misses(desk: Desk) -> None:
    _assert_bars(await qa.evaluate(desk, qa.load_questions(Path(__file__).parent / "qa_known_misses.yaml")))


def test_eval_report_counts_failures_both_ways() -> None:
    item = qa.EvalItem("q", any=("x",))
    oos = qa.EvalItem("o", answerable=False)
    report = qa.EvalReport([
        qa.EvalResult(item, "answer", 0.9, "x", True, True),
        qa.EvalResult(item, "no_answer", 0.1, "-", False, False),
        qa.EvalResult(oos, "answer", 0.7, "y", False, False),
    ])
    assert report.accuracy == 0.5 and report.abstention == 0.0 and report.false_abstentions == 1
    assert not report.passed
    assert "FAILED" in report.render() and len(report.as_json()["failures"]) == 2


# ------------------------------------------------------------------------------------ done means


async def test_review_time_question_is_answered_with_its_source(ask) -> None:
    reply = await ask("How long does the CAC take to review a facial recognition filing?", mode="direct")
    out = reply.as_json()
    assert out["kind"] == "answer"
    assert "15 working days" in out["text"]
    assert any("cbbc" in s["url"] for s in out["sources"])
    assert 0.0 <= out["confidence"] <= 1.0


async def test_world_cup_question_gets_no_answer(ask) -> None:
    reply = await ask("Who won the 2022 World Cup?", mode="direct")
    assert reply.kind == "no_answer"
    assert reply.confidence is not None and reply.confidence < qa.ANSWER_BAR
    assert "filing" in reply.text.casefold()  # says what it *can* answer


# ---------------------------------------------------------------------------------- answer shape


async def test_answer_carries_sources_dates_related_command_and_feedback(ask) -> None:
    reply = await ask("what is the threshold for facial recognition filing?", mode="mention")
    assert reply.kind == "answer" and reply.topic == "facial-recognition"
    assert reply.sources and all(s.url.startswith("http") for s in reply.sources)
    assert "[1]" in reply.text and str(reply.sources[0].url) in reply.text
    assert "As of 20" in reply.text
    assert reply.related == ["/china-filing facial-recognition"]
    assert "/china-filing facial-recognition" in reply.text
    assert {a.kind for a in reply.actions} >= {"feedback_up", "feedback_down"}
    assert reply.ephemeral is False


async def test_filing_answers_carry_the_legal_caveat_and_platform_answers_do_not(ask) -> None:
    filing = await ask("deadline to file the standard contract", mode="direct")
    assert filing.kind == "answer" and filing.topic == "standard-contract"
    assert LEGAL_CAVEAT in filing.caveats and LEGAL_CAVEAT in filing.text
    platform = await ask("how many monthly active users does WeChat have?", mode="direct")
    assert platform.kind == "answer" and platform.topic == "wechat"
    assert LEGAL_CAVEAT not in platform.caveats


async def test_unverified_facts_are_marked(ask) -> None:
    reply = await ask("How long does the CAC take to review a facial recognition filing?", mode="direct")
    assert "(unverified)" in reply.text
    assert any("unverified" in c for c in reply.caveats)


async def test_chinese_questions(ask) -> None:
    for text, topic in (("小红书是什么？", "xiaohongshu"), ("人脸识别备案需要多久", "facial-recognition"),
                        ("微信小程序", "wechat"), ("商标注册要多久", "trademark")):
        reply = await ask(text, mode="direct")
        assert reply.kind == "answer" and reply.topic == topic, (text, reply.title)


async def test_typos_are_corrected(ask) -> None:
    for text, topic in (("how many monthly users does xiaohngshu have", "xiaohongshu"),
                        ("facail recogntion filing deadline", "facial-recognition"),
                        ("semiconducter big fund", "semiconductors")):
        reply = await ask(text, mode="direct")
        assert reply.kind == "answer" and reply.topic == topic, (text, reply.title)


async def test_synonyms_and_aliases_reach_the_same_topic(ask) -> None:
    for text in ("what is rednote", "what is little red book", "what is RED app", "what's xhs"):
        reply = await ask(text, mode="direct")
        assert reply.topic == "xiaohongshu", text


async def test_intent_steers_the_section(index: qa.QAIndex) -> None:
    cases = {
        "facial recognition filing: what documents?": {"documents"},
        "who regulates facial recognition filing?": {"authority"},
        "what's the penalty for not doing the facial recognition filing": {"penalties"},
        # The review period is stated as a review-time fact and as the follow-on step after filing.
        "how long does the CAC take to review the facial recognition filing": {"review_time", "follow_on"},
    }
    for text, sections in cases.items():
        match = index.match(text)
        assert match.docs[0].section in sections, (text, match.docs[0].section)


@pytest.mark.parametrize("text", ["Tell me a joke", "asdfghjkl qwerty", "What are the CCPA penalties in California?",
                                  "How big are GDPR fines in France?", "What's the capital of Japan?", "", "???"])
async def test_out_of_scope_and_empty_get_no_answer(ask, text: str) -> None:
    reply = await ask(text or " ", mode="direct")
    assert reply.kind in ("no_answer", "error", "help")  # an empty message gets the help card


# ------------------------------------------------------------------------------------------ watch


async def test_watch_mode_ignores_statements(ask) -> None:
    reply = await ask("We filed the facial recognition paperwork yesterday.", mode="watch")
    assert reply.kind == "no_answer" and reply.text == ""


async def test_watch_mode_answers_clear_questions_about_its_topics(ask) -> None:
    reply = await ask("How long does the CAC take to review a facial recognition filing?", mode="watch")
    assert reply.kind == "answer" and reply.confidence >= qa.WATCH_BAR


async def test_watch_mode_needs_a_domain_question(ask) -> None:
    reply = await ask("what time is lunch?", mode="watch")
    assert reply.kind == "no_answer" and reply.text == ""


async def test_watch_mode_is_stricter_than_a_mention(desk: Desk, index: qa.QAIndex) -> None:
    """Over the whole question set: watch answers a subset of what a mention answers, all above the
    higher bar; and some question between the two bars shows the difference."""
    between = 0
    for item in qa.load_questions(OUR_SET):
        mention = await desk.handle(Request(text=item.question, mode="mention"))
        watch = await desk.handle(Request(text=item.question, mode="watch"))
        if watch.kind == "answer":
            assert mention.kind == "answer", item.question
            assert watch.confidence >= qa.WATCH_BAR
        if mention.kind == "answer" and mention.confidence < qa.WATCH_BAR:
            assert watch.kind != "answer", item.question
            between += 1
    assert qa.ANSWER_BAR < qa.WATCH_BAR


def test_looks_like_question(index: qa.QAIndex) -> None:
    for text in ("what is wechat", "Douyin?", "小红书是什么", "人脸识别备案需要多久", "tell me about 618",
                 "does the SCC need a PIPIA", "anyone know the ICP deadline"):
        assert qa.looks_like_question(index, text), text
    for text in ("We filed the SCC yesterday.", "great work team", "lunch at 1"):
        assert not qa.looks_like_question(index, text), text


# ------------------------------------------------------------------------------------ the command


class _Store:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def set_channel_watch(self, platform, workspace, channel, on) -> None:
        self.calls.append((platform, workspace, channel, on))


async def test_watch_command_stores_the_setting(library) -> None:
    store = _Store()
    desk = Desk(library=library, store=store)
    reply = await desk.handle(Request(text="/china-filing watch on", platform="slack", workspace="T1", channel="C1"))
    assert reply.kind == "reminder" and "on" in reply.text  # a channel setting, like reminders
    assert store.calls == [("slack", "T1", "C1", True)]
    reply = await desk.handle(Request(text="/china-filing watch off", platform="slack", workspace="T1", channel="C1"))
    assert reply.kind == "reminder"
    assert store.calls[-1] == ("slack", "T1", "C1", False) and "off" in reply.text


async def test_watch_command_without_store_or_channel_is_a_friendly_error(library) -> None:
    no_store = await Desk(library=library).handle(Request(text="/china-filing watch on", channel="C1"))
    assert no_store.kind == "error" and "storage" in no_store.text
    no_channel = await Desk(library=library, store=_Store()).handle(Request(text="/china-filing watch on"))
    assert no_channel.kind == "error" and "channel" in no_channel.text
    bad = await Desk(library=library, store=_Store()).handle(Request(text="/china-filing watch maybe", channel="C"))
    assert bad.kind == "error" and "watch on" in bad.text


# ----------------------------------------------------------------------------------- the index


async def test_index_is_built_once_and_cached_on_the_desk(library) -> None:
    desk = Desk(library=library)
    await desk.handle(Request(text="what is wechat", mode="direct"))
    first = desk.qa
    assert isinstance(first, qa.QAIndex)
    await desk.handle(Request(text="what is douyin", mode="direct"))
    assert desk.qa is first


def test_numbers_are_normalised() -> None:
    assert qa.normalise_numbers("100k").split() == qa.normalise_numbers("100,000").split() == ["100000"]
    assert qa.normalise_numbers("10万").split() == ["100000"]
    assert qa.normalise_numbers("1.5 million").split() == ["1500000"]
    assert qa.normalise_numbers("30 minutes").split() == ["30", "minutes"]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_a_confidence_in_range(index: qa.QAIndex, text: str) -> None:
    match = index.match(text)
    assert 0.0 <= match.confidence <= 1.0
    assert all(d.topic.id in index.library.topics for d in match.docs)
