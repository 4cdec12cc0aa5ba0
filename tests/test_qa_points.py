"""Channel Q&A: the point asked for decides the answer (the fact that says the law asked about leads, a topic's
own checklist words are its language, "how do we X" is not answered by a fact that mentions X in passing)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from handlers import Desk, Request, qa
from handlers.qa.context import MemoryContexts

NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


async def ask(desk: Desk, text: str) -> object:
    return await desk.handle(Request(text=text, mode="mention", now=NOW))


@pytest.mark.parametrize("question", ["what's the max PIPL fine for a serious breach", "违反个人信息保护法最高罚多少"])
async def test_a_question_about_one_law_gets_that_laws_fine(desk: Desk, question: str) -> None:
    """"PIPL" also names the data-protection framework, whose own fine fact is about the Cybersecurity Law: the
    fact that says the PIPL (on the PIPIA card) answers, with its own card's name, not another law's fine."""
    reply = await ask(desk, question)
    assert reply.kind == "answer", reply.text
    assert "50 million" in reply.summary or "5000万" in reply.summary, reply.summary
    assert "Cybersecurity Law" not in reply.summary and "网络安全法" not in reply.summary


async def test_the_other_law_is_still_found_when_asked_by_name(desk: Desk) -> None:
    reply = await ask(desk, "cybersecurity law fine")
    assert reply.kind == "answer" and "Cybersecurity Law" in reply.summary, reply.text


async def test_a_word_of_the_topics_own_checklist_is_not_a_missing_point(desk: Desk) -> None:
    """"Appoint" is no fact's word on the officer card, but its checklist says "Appoint a personal information
    protection officer": the question is about the card, and who must report is the answer."""
    reply = await ask(desk, "who has to appoint a DPO and report it")
    assert reply.kind == "answer" and reply.topic == "pi-protection-officer", reply.text
    assert "1 million" in reply.text


async def test_how_to_do_something_a_fact_only_mentions_is_not_answered(desk: Desk) -> None:
    """The representative-office fact says an office must be registered "before it can ... open a bank account":
    it does not say how to open one, so the bot says the topic is covered but this point is not."""
    reply = await ask(desk, "how do we set up a chinese bank account for the WFOE")
    assert reply.kind == "no_answer", reply.text
    assert reply.text.startswith("I cover Setting up in China"), reply.text
    assert "don't have a vetted answer on that point" in reply.text
    assert reply.suggestions == ["/china-filing foreign-investment"]
    assert reply.as_json()["suggestions"] == ["/china-filing foreign-investment"]


async def test_how_to_questions_about_what_a_fact_is_about_are_answered(desk: Desk) -> None:
    for question, expected in [("how do we register as an overseas food manufacturer with GACC", "food-import"),
                               ("How do brands get verified on Weibo?", "weibo")]:
        reply = await ask(desk, question)
        assert reply.kind == "answer" and reply.topic == expected, (question, reply.text)


def test_in_passing_is_a_confidence_feature(desk: Desk) -> None:
    index = qa.qa_index(desk)
    passing = index.match("how do we set up a chinese bank account for the WFOE")
    about = index.match("should we open a rep office or a WFOE in China?")
    assert passing.features["in_passing"] == 1.0 and passing.confidence < qa.ANSWER_BAR
    assert about.features["in_passing"] == 0.0 and about.confidence >= qa.ANSWER_BAR


def test_distinct_things_of_one_topic_are_read_from_the_synonyms_file(desk: Desk) -> None:
    """content/synonyms.yaml says which names of one topic are different things; a fact about another of them
    counts for less, whichever card it is on, and a fact naming the asked one (or none of them) does not."""
    index = qa.qa_index(desk)
    other = index.names.other_things("what's the max PIPL fine")
    texts = {d.fact.text: other[i] for i, d in enumerate(index.docs)}
    assert any(v == 1.0 and "Cybersecurity Law" in t and "PIPL" not in t for t, v in texts.items())
    assert all(v == 0.0 for t, v in texts.items() if "PIPL" in t)
    assert not index.names.other_things("icp filing how long").any()


# ------------------------------------------------------------------------------------------ follow-ups


@pytest.fixture
def threaded(desk: Desk) -> Desk:
    return dataclasses.replace(desk, store=MemoryContexts(), qa=qa.qa_index(desk))


@pytest.mark.parametrize(("first", "follow", "topic", "expected"), [
    # The thread says which topic: a short follow-up is not unsure just because its words fit other topics too.
    ("tell me about the standard contract filing", "how long do they take to check it?", "standard-contract",
     "15 working days"),
    # Only the question's form and a common word: the topic's fact of that kind that fits best, not its first.
    ("whats a PIPIA", "how long do we have to keep the report?", "pipia", "three years"),
    # "how long does it last" asks how long something stays valid; another topic's fact saying "once" is not it.
    ("how long does trademark registration take in china", "and once registered how long does it last",
     "trademark", "10 years"),
    ("抖音是什么？", "用户年龄结构怎么样", "douyin", "22.2%"),
])
async def test_follow_ups_stay_with_the_thread(threaded: Desk, first: str, follow: str, topic: str,
                                                expected: str) -> None:
    await threaded.handle(Request(text=first, thread="T", mode="mention", now=NOW))
    reply = await threaded.handle(Request(text=follow, thread="T", mode="mention", now=NOW))
    assert reply.kind == "answer" and reply.topic == topic, reply.text
    assert expected in reply.summary, reply.summary


# ------------------------------------------------------------------------------------------ Chinese


@pytest.mark.parametrize(("question", "topic", "expected"), [
    ("2026年国庆放假是哪几天", "public-holidays", "10月1日至7日"),  # 哪几天 asks which days, not how many
    ("外资在增值电信企业里最多能占多少股份？", "icp-licence", "50%"),  # 股份 is ownership
    ("海关预裁定要提前多久申请", "customs-registration", "3个月"),  # 提前多久: how far ahead
])
async def test_chinese_question_forms_and_words(desk: Desk, question: str, topic: str, expected: str) -> None:
    reply = await ask(desk, question)
    assert reply.kind == "answer" and reply.topic == topic and reply.language == "zh", reply.text
    assert expected in reply.summary, reply.summary


async def test_a_question_about_one_thing_of_a_card_is_not_answered_by_another(desk: Desk) -> None:
    """WeChat Pay, official accounts and Mini Programs are different things of the WeChat card: how to open a
    WeChat Pay merchant account is not answered by the fact on registering an official account."""
    reply = await ask(desk, "how do we open a wechat pay merchant account")
    assert reply.kind == "no_answer", reply.text
    assert reply.suggestions == ["/china-platform wechat"] and "on that point" in reply.text


async def test_online_retail_sales_are_not_all_retail_sales(desk: Desk) -> None:
    online = await ask(desk, "china online retail sales 2025?")
    assert online.kind == "answer" and "15.97 trillion" in online.summary, online.text
    total = await ask(desk, "china retail sales 2025")
    assert total.kind == "answer" and "50.1 trillion" in total.summary, total.text


async def test_a_phone_charger_is_a_charger_for_telecom_terminals(desk: Desk) -> None:
    reply = await ask(desk, "do phone chargers need 3C now?")
    assert reply.kind == "answer" and reply.topic == "ccc" and "1 August 2024" in reply.summary, reply.text


async def test_a_card_that_lists_a_platform_in_passing_is_not_about_another_thing(desk: Desk) -> None:
    """Only a card that covers the distinct things by name (Taobao and Tmall) treats a fact naming the other one
    as about something else: the E-Commerce Law's "merchants on platforms such as Taobao" still answers Tmall."""
    reply = await ask(desk, "does the e-commerce law apply to our Tmall store?")
    assert reply.kind == "answer" and reply.topic == "ecommerce-law", reply.text


@pytest.mark.parametrize(("said", "today", "day"), [
    ("上周一", dt.datetime(2026, 12, 1, 10), dt.date(2026, 11, 23)),  # a Tuesday: last week's Monday, not yesterday
    ("上星期五", dt.datetime(2026, 12, 1, 10), dt.date(2026, 11, 27)),
    ("上周日", dt.datetime(2026, 11, 30, 10), dt.date(2026, 11, 29)),  # weeks run Monday to Sunday
    ("上个礼拜一", dt.datetime(2026, 11, 23, 10), dt.date(2026, 11, 16)),  # on a Monday: a week ago
])
def test_a_weekday_of_last_week_in_chinese_is_that_day_of_the_week_before(said: str, today: dt.datetime,
                                                                          day: dt.date):
    from handlers.qa.deadlines import read_date

    assert read_date(said, today) == day
