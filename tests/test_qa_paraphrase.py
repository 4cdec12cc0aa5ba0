"""Channel Q&A: the same question in other words (issue 12). Articles, times of day, hyphenated words and repeated
words do not change what a question is about; a date written against Chinese text is still a date; "how much is the
fee" needs a sum; a place that says who is asking is context."""

from __future__ import annotations

import datetime as dt

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


async def test_a_fine_is_not_what_something_costs(desk: Desk) -> None:
    """CCC's fines state sums; none says what certification costs, so "how much does it cost" gets no answer
    from them, while "how much was Didi fined" is answered by the fine."""
    reply = await ask(desk, "roughly how much does CCC certification cost per product?")
    assert reply.kind == "no_answer", reply.text
    reply = await ask(desk, "how much does a Bilibili creator typically charge for a sponsored video?")
    assert reply.kind == "no_answer", reply.text
    reply = await ask(desk, "滴滴被罚了多少钱")
    assert reply.kind == "answer" and "80.26" in reply.text, reply.text


async def test_an_english_question_naming_a_chinese_site_is_answered_in_english(desk: Desk) -> None:
    reply = await ask(desk, "how many followers does a B站 creator need before taking brand deals through Huahuo?")
    assert reply.kind == "answer" and reply.language == "en" and "10,000" in reply.text, reply.text
    reply = await ask(desk, "PIPL下的PIPIA报告要保存多久？")
    assert reply.language == "zh", reply.text


async def test_the_askers_own_place_is_context_not_another_jurisdiction(desk: Desk) -> None:
    """"Our UK plant" says who asks, like "a UK company": the GACC registration it asks about is China's."""
    reply = await ask(desk, "our UK biscuit plant is registered with GACC, how long is that registration good for?")
    assert reply.kind == "answer" and "five years" in reply.text, reply.text
    assert (await ask(desk, "how long does a trademark take in the UK?")).kind == "no_answer"


async def test_colloquial_chinese_names_and_filler(desk: Desk) -> None:
    """小红薯 is 小红书, 抖店 is Douyin's shop; 最狠, 店里, 被查到 are filler around the question."""
    reply = await ask(desk, "个保法最狠能罚到多少？")
    assert reply.kind == "answer" and "5000万" in reply.text, reply.text
    reply = await ask(desk, "店里卖没3C的充电宝，被查到一般罚多少？")
    assert reply.kind == "answer" and reply.topic == "ccc", reply.text
    reply = await ask(desk, "我们在国内没注册公司，能开抖店卖货吗？")
    assert reply.kind == "answer" and reply.topic == "douyin", reply.text


async def test_another_country_acting_on_china_is_elsewhere(desk: Desk) -> None:
    """The packs give the EU's and the UK's EV tariffs, not the US's: "US tariffs on Chinese EVs" (in either
    language) is not answered with them, while the EU's and a transfer to a UK head office are."""
    for question in ("what tariff does the US put on Chinese EVs?", "美国现在对中国产电动车加征多少关税？",
                     "日本的商标注册要多久？"):
        assert (await ask(desk, question)).kind == "no_answer", question
    reply = await ask(desk, "欧盟对中国电动车征收多少反补贴税？")
    assert reply.kind == "answer" and "35.3%" in reply.text, reply.text
    reply = await ask(desk, "我们要跟英国总部签个人信息出境的标准合同，这个备案是咋回事？")
    assert reply.kind == "answer" and reply.topic == "standard-contract", reply.text


async def test_how_long_something_is_valid_needs_a_length_of_its_own_topic(desk: Desk) -> None:
    """The ICP licence facts state no validity; a trademark's ten years (another topic) does not answer it."""
    reply = await ask(desk, "How long is a commercial ICP licence valid before we have to renew it?")
    assert reply.kind == "no_answer", reply.text


async def test_chat_words_the_packs_never_use_count_half_in_chinese(desk: Desk) -> None:
    """"我们做女装想在上面投" is the asker's situation: the share of women among 小红薯 users is asked."""
    reply = await ask(desk, "小红薯上女生占比大概多少？我们做女装想在上面投")
    assert reply.kind == "answer" and reply.topic == "xiaohongshu" and "70%" in reply.text, reply.text
    # ...but a Chinese question about something the packs lack is still not answered.
    assert (await ask(desk, "中国签证要多久能办下来？")).kind == "no_answer"


async def test_a_listing_abroad_is_about_chinas_rule_and_invest_is_invest(desk: Desk) -> None:
    reply = await ask(desk, "We're weighing a New York IPO for our China platform business. Above what user count "
                            "does a cybersecurity review become compulsory before listing abroad?")
    assert reply.kind == "answer" and "1 million" in reply.text, reply.text
    reply = await ask(desk, "阿斯利康说要在中国投多少钱？")
    assert reply.kind == "answer" and "1000亿" in reply.text, reply.text


def test_this_weekday_is_this_weeks_and_this_past_is_the_last_one() -> None:
    wednesday = dt.datetime(2026, 12, 2, 17, 0)
    assert find_date("went live this Monday", wednesday) == dt.date(2026, 11, 30)
    assert find_date("it launched this past Wednesday", wednesday) == dt.date(2026, 11, 25)
    assert find_date("上个月二十号", wednesday) == dt.date(2026, 11, 20)


async def test_how_many_needs_a_number(desk: Desk) -> None:
    """No Weibo fact says how many followers make a "big V": the count asked is not answered by the badge."""
    reply = await ask(desk, "How many followers does an account need before it counts as a Weibo big V?")
    assert reply.kind == "no_answer", reply.text
    reply = await ask(desk, "how many monthly users does xiaohongshu have?")
    assert reply.kind == "answer" and "300 million" in reply.text, reply.text


async def test_a_claim_told_under_two_topics_is_not_a_rival_to_itself(desk: Desk) -> None:
    """The whisky tariff cut is told under food and drink and under UK-China trade: either answers it."""
    reply = await ask(desk, "What's China's import tariff on Scotch whisky now, after the PM's visit in January?")
    assert reply.kind == "answer" and "5%" in reply.text, reply.text


async def test_what_is_frames_a_more_specific_question(desk: Desk) -> None:
    """"…两份材料是什么" asks for the documents, not a definition; 谁排第一 asks who leads."""
    reply = await ask(desk, "<@U02ABCDEF> 标准合同备案最核心的两份材料是什么？")
    assert reply.kind == "answer" and "个人信息保护影响评估报告" in reply.summary, reply.summary
    reply = await ask(desk, "去年国内手机出货量谁排第一啊？")
    assert reply.kind == "answer" and "华为" in reply.summary, reply.summary


async def test_a_fee_needs_a_sum_paid_not_any_sum(desk: Desk) -> None:
    """Douyin's GMV is a sum, not what a livestream slot costs; "618卖了多少钱" asks for sales, so it is one."""
    assert (await ask(desk, "抖音达人直播带货的坑位费一般多少钱？")).kind == "no_answer"
    reply = await ask(desk, "去年618各平台加起来一共卖了多少钱，有数吗？")
    assert reply.kind == "answer" and reply.topic == "618", reply.text


async def test_a_year_ahead_is_a_year_the_packs_must_have(desk: Desk) -> None:
    """后年 (2028) and 2029 are years the packs have no holidays for: the 2026-27 cards do not answer them, while
    "next year" (2027) is asked of the cards that have it."""
    assert (await ask(desk, "后年国庆黄金周放几天假？")).kind == "no_answer"
    assert (await ask(desk, "Our supplier's lunar new year shutdown in 2029: which date does it fall on?")).kind == \
        "no_answer"
    assert absolute_years("when is chinese new year next year?", 2026) == "when is chinese new year 2027?"
    assert absolute_years("明年端午节是哪天", 2026) == "2027年端午节是哪天"
