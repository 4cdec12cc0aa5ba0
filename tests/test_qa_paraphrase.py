"""Channel Q&A: the same question in other words (issue 12). Articles, times of day, hyphenated words and repeated
words do not change what a question is about; a date written against Chinese text is still a date; "how much is the
fee" needs a sum; a place that says who is asking is context."""

from __future__ import annotations

import datetime as dt

import pytest

from handlers import Desk, Request
from handlers.qa.deadlines import absolute_years, find_date, looks_dated
from handlers.qa.replies import qa_index

NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


async def ask(desk: Desk, text: str) -> object:
    return await desk.handle(Request(text=text, mode="mention", now=NOW))


def test_an_article_never_starts_a_compound(desk: Desk) -> None:
    primaries = [c.primary for c in qa_index(desk).analyse("how often is a PI audit needed").concepts]
    assert "pi" in primaries and "api" not in primaries


def test_a_time_of_day_is_the_askers_own_detail(desk: Desk) -> None:
    concepts = {c.word: c for c in qa_index(desk).analyse("we spotted a leak at 3pm, who do we tell").concepts}
    assert concepts["3pm"].idf == 0.0


def test_a_hyphenated_form_of_a_synonym_is_the_synonym(desk: Desk) -> None:
    concepts = {c.word: c for c in qa_index(desk).analyse("do face-scan gates need a filing").concepts}
    assert "facial" in concepts["facescan"].forms


def test_a_repeated_word_still_completes_a_phrase(desk: Desk) -> None:
    """"data" is asked twice; the second one belongs to "data protection lead" (the DPO)."""
    query = qa_index(desk).analyse("we hold data on staff, must we name our data protection lead?")
    assert any("dpo" in c.forms for c in query.concepts)


def test_a_date_written_against_chinese_text_is_found() -> None:
    text = "我们在2026.3.5开始存储人脸信息"
    assert looks_dated(text)
    assert find_date(text, dt.datetime(2026, 12, 1)) == dt.date(2026, 3, 5)
    assert not looks_dated("version v1.2.2025 of the app")


async def test_how_much_a_fee_is_needs_a_sum(desk: Desk) -> None:
    reply = await ask(desk, "what is the Tmall Global deposit fee")
    assert reply.kind == "no_answer", reply.text
    reply = await ask(desk, "how much does registering an imported Class II device cost")
    assert reply.kind == "answer" and "210,900" in reply.text, reply.text


def test_a_place_saying_who_asks_is_context(desk: Desk) -> None:
    index = qa_index(desk)
    query = index.analyse("do we need a standard contract to send HR data to our head office in Germany?")
    assert query.asker == frozenset(index.analyzer.phrase("germany"))
    assert index.match(query.text).features["elsewhere"] == 0.0
    assert not index.analyse("what are the fines under GDPR").asker  # the place asked about is not context


# Questions the packs cannot answer, each in a way that once got (or could get) an answer anyway.
DECLINED = [
    pytest.param("roughly how much does CCC certification cost per product?", id="a fine is not a price"),
    pytest.param("how much does a Bilibili creator typically charge for a sponsored video?", id="charge is a price"),
    pytest.param("抖音达人直播带货的坑位费一般多少钱？", id="a GMV is not a slot fee"),
    pytest.param("How many followers does an account need before it counts as a Weibo big V?",
                 id="how many needs a number"),
    pytest.param("How long is a commercial ICP licence valid before we have to renew it?",
                 id="validity needs a length of its own topic, not a trademark's ten years"),
    pytest.param("how long does a trademark take in the UK?", id="the UK framed is another jurisdiction"),
    pytest.param("what tariff does the US put on Chinese EVs?", id="the US acting on China is elsewhere"),
    pytest.param("美国现在对中国产电动车加征多少关税？", id="美国 acting on China is elsewhere"),
    pytest.param("日本的商标注册要多久？", id="日本 is another jurisdiction"),
    pytest.param("中国签证要多久能办下来？", id="an unseen Chinese subject still counts"),
    pytest.param("后年国庆黄金周放几天假？", id="后年 is 2028, a year the packs lack"),
    pytest.param("Our supplier's lunar new year shutdown in 2029: which date does it fall on?",
                 id="a fact naming no year is dated by its card"),
]


@pytest.mark.parametrize("question", DECLINED)
async def test_a_point_the_packs_lack_is_not_answered(desk: Desk, question: str) -> None:
    reply = await ask(desk, question)
    assert reply.kind == "no_answer", reply.text


# Questions answered in other words than the facts': (question, topic, text the reply holds, where, language).
ANSWERED = [
    pytest.param("滴滴被罚了多少钱", None, "80.26", "text", None, id="a fine asked is any sum"),
    pytest.param("how many followers does a B站 creator need before taking brand deals through Huahuo?", None,
                 "10,000", "text", "en", id="an English question naming a Chinese site is answered in English"),
    pytest.param("PIPL下的PIPIA报告要保存多久？", "pipia", None, "text", "zh", id="PIPL下的PIPIA is Chinese"),
    pytest.param("our UK biscuit plant is registered with GACC, how long is that registration good for?", None,
                 "five years", "text", None, id="our UK plant is who asks"),
    pytest.param("个保法最狠能罚到多少？", None, "5000万", "text", None, id="最狠 is filler, 罚 a fine"),
    pytest.param("店里卖没3C的充电宝，被查到一般罚多少？", "ccc", None, "text", None, id="店里, 被查到 are filler"),
    pytest.param("我们在国内没注册公司，能开抖店卖货吗？", "douyin", None, "text", None, id="抖店 is Douyin's shop"),
    pytest.param("欧盟对中国电动车征收多少反补贴税？", None, "35.3%", "text", None,
                 id="the EU's tariffs are in the packs"),
    pytest.param("我们要跟英国总部签个人信息出境的标准合同，这个备案是咋回事？", "standard-contract", None, "text",
                 None, id="where the data goes is context"),
    pytest.param("小红薯上女生占比大概多少？我们做女装想在上面投", "xiaohongshu", "70%", "text", None,
                 id="unseen chat words count half in Chinese"),
    pytest.param("We're weighing a New York IPO for our China platform business. Above what user count does a "
                 "cybersecurity review become compulsory before listing abroad?", None, "1 million", "text", None,
                 id="a listing abroad is China's rule"),
    pytest.param("阿斯利康说要在中国投多少钱？", None, "1000亿", "text", None, id="投 is invest"),
    pytest.param("how many monthly users does xiaohongshu have?", None, "300 million", "text", None,
                 id="a count with a number"),
    pytest.param("What's China's import tariff on Scotch whisky now, after the PM's visit in January?", None, "5%",
                 "text", None, id="a claim told under two topics is no rival to itself"),
    pytest.param("<@U02ABCDEF> 标准合同备案最核心的两份材料是什么？", None, "个人信息保护影响评估报告", "summary", None,
                 id="what is frames the documents asked"),
    pytest.param("去年国内手机出货量谁排第一啊？", None, "华为", "summary", None, id="谁排第一 asks who leads"),
    pytest.param("去年618各平台加起来一共卖了多少钱，有数吗？", "618", None, "text", None, id="a turnover is any sum"),
]


@pytest.mark.parametrize(("question", "topic", "holds", "where", "language"), ANSWERED)
async def test_a_question_in_other_words_is_answered(desk: Desk, question: str, topic: str | None, holds: str | None,
                                                      where: str, language: str | None) -> None:
    reply = await ask(desk, question)
    assert reply.kind == "answer", reply.text
    assert topic is None or reply.topic == topic, (reply.topic, reply.text)
    assert holds is None or holds in getattr(reply, where), getattr(reply, where)
    assert language is None or reply.language == language, reply.text


def test_relative_days_and_years_are_read_against_today() -> None:
    wednesday = dt.datetime(2026, 12, 2, 17, 0)
    assert find_date("went live this Monday", wednesday) == dt.date(2026, 11, 30)
    assert find_date("it launched this past Wednesday", wednesday) == dt.date(2026, 11, 25)
    assert find_date("上个月二十号", wednesday) == dt.date(2026, 11, 20)
    assert absolute_years("when is chinese new year next year?", 2026) == "when is chinese new year 2027?"
    assert absolute_years("明年端午节是哪天", 2026) == "2027年端午节是哪天"
