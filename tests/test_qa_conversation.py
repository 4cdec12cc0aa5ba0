"""Channel Q&A that understands people (issue 12): follow-ups, deadlines in plain words, tags and filler,
Chinese, helpful abstention, the right fact first, and the evaluation format."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest
from test_cli import CHINADESK

from handlers import Desk, Request, qa
from handlers.qa.context import CONTEXT_TTL, MemoryContexts
from handlers.qa.evaluation import QuestionSetError

NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)  # Tue 1 Dec 2026, 17:30 in Shanghai
TUNING = Path(__file__).parent / "qa_tuning_c.yaml"


@pytest.fixture
def threaded(desk: Desk) -> Desk:
    """The desk with an in-memory conversation store (the real stores are tested in test_store.py)."""
    return dataclasses.replace(desk, store=MemoryContexts(), qa=qa.qa_index(desk))


async def turn(desk: Desk, text: str, thread: str | None = "T1", **kw) -> object:
    kw.setdefault("now", NOW)
    kw.setdefault("mode", "mention")
    return await desk.handle(Request(text=text, thread=thread, **kw))


# --------------------------------------------------------------------------------------- follow-ups


async def test_a_follow_up_uses_the_topic_just_discussed(threaded: Desk) -> None:
    first = await turn(threaded, "what's the facial recognition filing?")
    assert first.kind == "answer" and first.topic == "facial-recognition"
    reply = await turn(threaded, "what documents do they need?")
    assert reply.kind == "answer" and reply.topic == "facial-recognition", reply.text
    assert "power of attorney" in reply.text.casefold() or "pipia" in reply.text.casefold()
    # Without the conversation the same words are not enough to answer.
    alone = await turn(threaded, "what documents do they need?", thread=None)
    assert alone.kind == "no_answer" or alone.topic != "facial-recognition"


async def test_a_follow_up_made_only_of_a_question_word_uses_the_context(threaded: Desk) -> None:
    await turn(threaded, "tell me about the DPO reporting")
    reply = await turn(threaded, "who does it go to")
    assert reply.kind == "answer" and reply.topic == "pi-protection-officer"
    assert "city" in reply.text


async def test_a_follow_up_that_names_another_topic_wins_and_keeps_the_section(threaded: Desk) -> None:
    first = await turn(threaded, "how many monthly users does weibo have")
    assert first.topic == "weibo"
    reply = await turn(threaded, "and kuaishou?")
    assert reply.kind == "answer" and reply.topic == "kuaishou" and "731 million" in reply.text


async def test_a_follow_up_that_names_no_topic_is_never_answered_from_another(threaded: Desk) -> None:
    """Words that another topic's facts use ("a foreign brand ... without a Chinese company" is how Douyin's
    cross-border store is described) do not take the thread to that topic: the thread's own topic is asked,
    and where it has no such fact, the reply says so and points at its card."""
    question = "can a foreign brand open a store there without a chinese company?"
    alone = await turn(threaded, question, thread=None)
    assert alone.kind == "answer" and alone.topic != "weibo"  # on its own, another platform answers it
    first = await turn(threaded, "tell me about weibo")
    assert first.topic == "weibo"
    reply = await turn(threaded, question)
    assert reply.topic == "weibo" and reply.kind == "no_answer", reply.text
    assert "/china-platform weibo" in reply.text


async def test_a_topic_the_bot_could_not_answer_on_is_still_the_threads_topic(threaded: Desk) -> None:
    """"I cover Bilibili, but not this point" still says what the conversation is about: the next question
    ("how many users does it have?") follows Bilibili, as it would after an answer."""
    first = await turn(threaded, "does bilibili run a loyalty scheme for brands?")
    assert first.kind == "no_answer" and first.topic == "bilibili", first.text
    reply = await turn(threaded, "how many users does it have")
    assert reply.kind == "answer" and reply.topic == "bilibili" and "376 million" in reply.text, reply.text
    alone = await turn(threaded, "how many users does it have", thread="T2")
    assert alone.topic != "bilibili" or alone.kind == "no_answer"


@pytest.mark.parametrize("mode", ["watch", "mention"])
async def test_chatter_of_a_questions_form_in_a_thread_is_not_answered(threaded: Desk, mode: str) -> None:
    """"Who's going to the meeting?" has the form of a follow-up (who, when, what documents) but its words are
    not the thread topic's: no answer, whether the bot watches the thread or is mentioned."""
    await turn(threaded, "what's the MLPS filing?", thread_opener=True)
    for chatter in ("who's going to the meeting tomorrow?", "when is the deadline for the slides?",
                    "what documents should I bring to the workshop?", "how many people are coming to lunch?"):
        reply = await turn(threaded, chatter, mode=mode)
        assert reply.kind == "no_answer", (chatter, reply.text)


async def test_a_date_after_a_deadline_rule_answer_is_a_deadline_only_when_asked(threaded: Desk) -> None:
    """After "what's the MLPS filing deadline?" (the rule, no date), "and if we graded it on 1 March 2026?" to the
    bot is that date's deadline; in a watched thread, people's plans with a date are not."""
    first = await turn(threaded, "what's the deadline for the MLPS filing?", thread_opener=True)
    assert first.kind == "answer" and "30 calendar days" in first.summary, first.summary
    chatter = await turn(threaded, "and if we moved the review meeting to 1 March 2026?", mode="watch")
    assert chatter.kind == "no_answer", chatter.text
    reply = await turn(threaded, "and if we graded it on 1 March 2026?")
    assert reply.kind == "deadline" and reply.deadline.due == dt.date(2026, 3, 31), reply.text


async def test_a_follow_up_the_topic_cannot_answer_points_at_the_threads_card(threaded: Desk) -> None:
    """No fact says how often a PIPIA is redone: the reply says so about the PIPIA (its card), not the menu."""
    await turn(threaded, "hey, quick q on the PIPIA")
    reply = await turn(threaded, "how often do we need to redo it?")
    assert reply.kind == "no_answer" and reply.topic == "pipia", reply.text
    assert "/china-filing pipia" in reply.text


async def test_how_soon_is_answered_by_the_fact_stating_the_time_limit(threaded: Desk) -> None:
    await turn(threaded, "a product we sell injured a customer, we learnt of it on 30 November 2026: when to report?")
    reply = await turn(threaded, "<@U07XYZ99> and how soon does the recall plan have to go to the regulator?")
    assert reply.kind == "answer" and reply.topic == "product-recall", reply.text
    assert "10 working days" in reply.summary, reply.summary
    whole = await turn(threaded, "and how long does the whole thing take?", thread="CSR")
    assert whole.kind == "no_answer"  # no thread yet: "the whole thing" names nothing
    await turn(threaded, "what's a cybersecurity review in China?", thread="CSR")
    whole = await turn(threaded, "and how long does the whole thing take?", thread="CSR")
    assert whole.kind == "answer" and whole.topic == "cybersecurity-review", whole.text


@pytest.mark.parametrize(("first", "follow_up", "section"), [
    ("快手现在月活多少？", "那上面主要是哪些人在用？", "audience"),
    ("what's Bilibili, is it only anime stuff?", "and who's on it mostly?", "audience"),
    ("我们要跟英国总部签个人信息出境的标准合同，这个备案是咋回事？", "和谁报？", "authority"),
])
async def test_a_follow_up_of_form_alone_gets_the_section_it_asks(threaded: Desk, first: str, follow_up: str,
                                                                   section: str) -> None:
    opened = await turn(threaded, first)
    reply = await turn(threaded, follow_up)
    assert reply.kind == "answer" and reply.topic == opened.topic, reply.text
    index = qa.qa_index(threaded)
    lead = next(d for d in index.docs if d.topic.id == reply.topic and d.fact.text_zh and (
        d.fact.text_zh in reply.summary or d.fact.text in reply.summary))
    assert lead.section == section, (lead.section, reply.summary)


async def test_a_statement_naming_a_topic_opens_the_conversation_about_it(threaded: Desk) -> None:
    """"We're scoping the generative AI filing" asks nothing, but says what the thread is about (its name
    holds the AI sector's too): the next question follows it."""
    first = await turn(threaded, "We're scoping the generative AI filing for our customer-service assistant")
    assert first.topic == "generative-ai", first.text
    reply = await turn(threaded, "what are the core documents we'd have to hand in?")
    assert reply.kind == "answer" and reply.topic == "generative-ai" and "security assessment" in reply.text


async def test_a_follow_up_naming_the_wrong_body_gets_the_right_one(threaded: Desk) -> None:
    """"Do we file it with the CAC?" in an MLPS thread: the MLPS authority fact (public security) answers it."""
    await turn(threaded, "What's MLPS?")
    reply = await turn(threaded, "@Sam do we file it with the CAC or someone else?")
    assert reply.kind == "answer" and reply.topic == "mlps" and "public security" in reply.text.casefold(), reply.text
    await turn(threaded, "平台涉税信息报送规定是怎么回事？", thread="TAX")
    reply = await turn(threaded, "没按时报送会怎样？", thread="TAX")
    assert reply.kind == "answer" and reply.topic == "ecommerce-law" and "责令改正" in reply.summary, reply.summary


async def test_context_is_per_conversation_and_expires(threaded: Desk) -> None:
    await turn(threaded, "tell me about xiaohongshu", thread="A")
    assert (await turn(threaded, "how many users does it have?", thread="A")).topic == "xiaohongshu"
    other = await turn(threaded, "how many users does it have?", thread="B")
    assert other.topic != "xiaohongshu"
    later = NOW + CONTEXT_TTL + dt.timedelta(minutes=1)
    expired = await turn(threaded, "how many users does it have?", thread="A", now=later)
    assert expired.topic != "xiaohongshu"


async def test_a_deadline_follow_up_counts_from_the_new_date(threaded: Desk) -> None:
    first = await turn(threaded, "face filing deadline if we hit 100k faces on 20 sept 2025?")
    assert first.kind == "deadline" and first.deadline.due == dt.date(2025, 11, 6)
    reply = await turn(threaded, "and if we hit 100k on 3 March?")
    command = await threaded.handle(Request(text="/china-filing facial-recognition from 2026-03-03", now=NOW))
    assert reply.kind == "deadline" and reply.deadline.due == command.deadline.due


# --------------------------------------------------------------------------------- plain-word dates


@pytest.mark.parametrize(("question", "command"), [
    ("we hit 100k faces on 20 sept 2025, when's the FRT filing due?", "facial-recognition from 2025-09-20"),
    ("face data passed 100,000 people Sept 20 - when is the frt filing due", "facial-recognition from 2026-09-20"),
    ("scc signed 2026-9-20, filing deadline?", "standard-contract from 2026-09-20"),
    ("SCC took effect 20/9/2026, by when do we file?", "standard-contract from 2026-09-20"),
    ("标准合同2026年9月25日生效，最晚哪天要备案？", "standard-contract from 2026-09-25"),
    ("人脸识别数据9月20日超过10万人，最晚什么时候备案", "facial-recognition from 2026-09-20"),
    ("launched our recommendation algorithm yesterday, deadline for the algorithm filing?",
     "algorithm-filing from 2026-11-30"),
    ("new level 3 system went live last Monday, when is the mlps filing due", "mlps from 2026-11-30"),
    ("icp filing approved 3 weeks ago, when's the public security filing due", "icp-beian from 2026-11-10"),
    ("icp备案上个月15号批下来了，公安联网备案最晚哪天要弄完？", "icp-beian from 2026-11-15"),
    ("face data crossed 100,000 people on the 20th of last month, what's our FRT filing deadline?",
     "facial-recognition from 2026-11-20"),
    ("our personalised recommendation feed went live this Monday, last day for the algorithm filing?",
     "algorithm-filing from 2026-11-30"),
    # Names no filing: the deadline rule it asks about is the E-Commerce Law's refund of a returned order.
    ("a seven-day no-reason return reached our warehouse last Thursday, by when must we refund?",
     "ecommerce-law from 2026-11-26"),
])
async def test_deadlines_in_plain_words_give_the_commands_date(desk: Desk, question: str, command: str) -> None:
    reply = await desk.handle(Request(text=question, mode="mention", now=NOW))
    expected = await desk.handle(Request(text=f"/china-filing {command}", now=NOW))
    assert reply.kind == "deadline", reply.text
    assert (reply.topic, reply.deadline.due, reply.deadline.start) == (
        expected.topic, expected.deadline.due, expected.deadline.start)


async def test_relative_dates_follow_the_channels_time_zone(desk: Desk) -> None:
    # 23:30 UTC on 30 Nov is already 1 Dec in Shanghai, still 30 Nov in London.
    late = dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC)
    question = "launched the recommendation algorithm yesterday, when is the algorithm filing due?"
    shanghai = await desk.handle(Request(text=question, mode="direct", now=late, timezone="Asia/Shanghai"))
    london = await desk.handle(Request(text=question, mode="direct", now=late, timezone="Europe/London"))
    assert shanghai.deadline.start == dt.date(2026, 11, 30) and london.deadline.start == dt.date(2026, 11, 29)


async def test_a_date_about_something_else_is_not_a_deadline(desk: Desk) -> None:
    reply = await desk.handle(Request(text="when did the facial recognition rules kick in?", mode="direct", now=NOW))
    assert reply.kind == "answer" and "1 June 2025" in reply.text


# --------------------------------------------------------------------------------- tags and filler


@pytest.mark.parametrize("wrapped", [
    "<@U07ALICE> {q}", "@alice {q}", "<!channel> {q}", "<!here> {q} thanks!", "hey <@U1|bob>, {q} cheers",
    "{q} cc <!subteam^S0TEAM|@china-team>", "<at>Alice Smith</at> {q}", "hi team, {q}",
])
async def test_a_tagged_question_gets_exactly_the_untagged_reply(desk: Desk, wrapped: str) -> None:
    for q in ("what is xiaohongshu?", "How long does the CAC take to review a facial recognition filing?"):
        plain = await desk.handle(Request(text=q, mode="mention", now=NOW))
        tagged = await desk.handle(Request(text=wrapped.format(q=q), mode="mention", now=NOW))
        assert plain.kind == "answer" and (tagged.kind, tagged.text) == (plain.kind, plain.text)


async def test_chinese_greetings_do_not_change_the_answer(desk: Desk) -> None:
    plain = await desk.handle(Request(text="小红书是什么？", mode="direct", now=NOW))
    polite = await desk.handle(Request(text="你好，请问小红书是什么？谢谢", mode="direct", now=NOW))
    assert plain.kind == "answer" and polite.text == plain.text


@pytest.mark.parametrize("text", ["<@U07ALICE> lunch at 1?", "thanks @bob, that's great", "你好", "<!here>"])
async def test_chatter_with_tags_is_still_not_answered(desk: Desk, text: str) -> None:
    reply = await desk.handle(Request(text=text, mode="direct", now=NOW))
    assert reply.kind in ("no_answer", "help")
    assert (await desk.handle(Request(text=text, mode="watch", now=NOW))).text == ""


# ------------------------------------------------------------------------------------------ Chinese


async def test_dengbao_question_answers_from_mlps_in_chinese(desk: Desk) -> None:
    reply = await desk.handle(Request(text="等保备案要多久之内完成", mode="direct", now=NOW))
    assert reply.kind == "answer" and reply.topic == "mlps", reply.text
    assert reply.language == "zh" and "网络安全等级保护备案" in reply.title
    assert reply.sources  # sources unchanged


async def test_the_channels_language_choice_wins(desk: Desk) -> None:
    reply = await desk.handle(Request(text="等保备案找哪个部门", mode="direct", now=NOW, language="en"))
    assert reply.kind == "answer" and reply.language == "en" and reply.title.startswith("Multi-Level")


# ------------------------------------------------------------------------------------- abstaining


async def test_a_clear_topic_with_an_unclear_point_points_at_the_card(desk: Desk) -> None:
    # A question about the facial recognition filing whose every word the topic has, answered below the bar.
    match = qa.qa_index(desk).match("face filing handlers")
    assert match.topic.id == "facial-recognition"
    doubtful = dataclasses.replace(match, confidence=0.5)
    reply = qa.no_answer(desk, Request(text="face filing handlers", mode="direct"), 0.5, match=doubtful)
    assert reply.kind == "no_answer" and reply.suggestions == ["/china-filing facial-recognition"]
    assert reply.text.startswith("I'm not sure which part of the facial recognition technology application filing")
    assert "/china-filing facial-recognition shows all of it" in reply.text
    assert reply.as_json()["suggestions"] == ["/china-filing facial-recognition"]


async def test_a_point_the_packs_lack_is_said_to_be_missing(desk: Desk) -> None:
    reply = await desk.handle(Request(text="wechat and our loyalty scheme", mode="direct", now=NOW))
    assert reply.kind == "no_answer" and "/china-platform wechat" in reply.text
    assert reply.text.startswith("I cover WeChat, but I don't have a vetted answer on that point")


# ------------------------------------------------------------------------------ the right fact first


async def test_a_disputed_fact_never_leads(library) -> None:
    topic = library.topics["cross-border-ecommerce"]
    background = [f.model_copy(update={"status": "disputed"}) if "50,000" in f.text else f
                  for f in topic.sections["background"]]
    changed = topic.model_copy(update={"sections": {**topic.sections, "background": background}})
    lib = dataclasses.replace(library, topics={**library.topics, topic.id: changed})
    index = qa.QAIndex.build(lib)
    match = index.match("did the cbec annual allowance go up to RMB 50,000?")
    assert match.docs and "50,000" not in match.docs[0].fact.text
    assert match.docs[0].fact.status == "current"
    # Marked disputed, it is still shown after the current fact that answers, and marked so.
    assert any("50,000" in d.fact.text for d in match.docs[1:])


async def test_a_disputed_fact_that_is_the_whole_answer_is_shown_marked(desk: Desk) -> None:
    """A question about the disputed claim itself (and nothing current answers it) gets it, marked."""
    reply = await desk.handle(Request(text="What is the Hangzhou zoo case?", mode="direct"))
    assert reply.kind == "answer" and "Hangzhou" in reply.text
    assert "disputed" in reply.text.casefold()


async def test_another_topics_fact_is_shown_under_its_own_name(desk: Desk) -> None:
    reply = await desk.handle(Request(text="PIPL article 66 fines", mode="direct", now=NOW))
    for field in reply.fields:
        other = field.label.split(" · ")[0]
        assert field.label == reply.fields[0].label or other != reply.title.split(" · ")[0]


# --------------------------------------------------------------------------------------- CLI threads


def test_cli_turns_with_the_same_thread_share_context_across_processes(tmp_path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/chinadesk.sqlite3"}
    env = {k: v for k, v in env.items() if not k.startswith(("SLACK_", "MICROSOFT_APP"))}

    def ask(text: str, thread: str) -> dict:
        proc = subprocess.run([CHINADESK, "ask", text, "--thread", thread, "--json", "--now", NOW.isoformat()],
                              capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert ask("what is the standard contract route", "k1")["topic"] == "standard-contract"
    follow = ask("what documents do we need?", "k1")
    assert follow["kind"] == "answer" and follow["topic"] == "standard-contract"
    assert ask("what documents do we need?", "k2").get("topic") != "standard-contract"


# -------------------------------------------------------------------------------------- evaluation


async def test_the_tuning_batch_meets_its_bars(desk: Desk) -> None:
    questions = qa.read_question_set(TUNING)
    report = await qa.evaluate(desk, questions.items, now=questions.now)
    assert report.passed or report.accuracy >= 0.9, report.render()
    assert report.abstention == 1.0 and len(report.wrong_answers) <= 3, report.render()
    assert report._rate(report.deadlines) == 1.0 and report._rate(report.follow_ups) >= 0.9, report.render()
    asked, differ = await qa.tagged_differences(desk, questions.items, now=questions.now)
    assert asked > 100 and differ == [], differ[:5]


@pytest.mark.parametrize("name", ["qa_tuning_j.yaml", "qa_tuning_n.yaml"])
async def test_the_follow_up_batches_keep_their_figures(desk: Desk, name: str) -> None:
    """Batches J (follow-ups and Chinese) and N (36 conversations) as tuned: no wrong answer, every near miss
    abstained, follow-ups at 90 % or more (a regression guard; their first scores are in their headers)."""
    questions = qa.read_question_set(Path(__file__).parent / name)
    report = await qa.evaluate(desk, questions.items, now=questions.now)
    assert report.wrong_answers == [] and report.abstention == 1.0, report.render()
    assert report._rate(report.follow_ups) >= 0.9, report.render()


@pytest.mark.parametrize(("yaml", "message"), [
    ("answerable: [{q: x, regex: [y]}]", "unknown key"),
    ("surprise: 1", "unknown key"),
    ("deadlines: [{q: x}]", "missing"),
    ("conversations: [{turns: [{q: only one}]}]", "at least two"),
    ("answerable: [{q: x, lang: fr}]", "lang"),
    ("now: yesterday", "ISO-8601"),
])
def test_question_sets_outside_the_format_are_refused(tmp_path, yaml: str, message: str) -> None:
    path = tmp_path / "set.yaml"
    path.write_text(yaml)
    with pytest.raises(QuestionSetError, match=message):
        qa.read_question_set(path)


def test_cli_eval_reports_every_measure(tmp_path) -> None:
    proc = subprocess.run([CHINADESK, "eval", str(TUNING), "--json"], capture_output=True, text=True, timeout=300)
    out = json.loads(proc.stdout)
    assert set(out["measures"]) == {"answered right", "Chinese answered right", "follow-ups right", "deadlines right",
                                    "out of scope abstained"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("answerable: [{q: x, anyy: [y]}]")
    proc = subprocess.run([CHINADESK, "eval", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown key" in proc.stderr


# ------------------------------------------------------------------------------ alternate questions


def test_alternate_questions_that_find_another_topic_are_reported(library) -> None:
    from handlers.qa.checks import check_alternate_questions

    mlps = library.topics["mlps"]
    good = mlps.summary.model_copy(update={"questions": ["what is MLPS?", "等保是什么？"]})
    wrong = mlps.sections["authority"][0].model_copy(update={"questions": ["how many users does wechat have?"]})
    changed = mlps.model_copy(update={"summary": good, "sections": {**mlps.sections, "authority": [wrong]}})
    lib = dataclasses.replace(library, topics={**library.topics, "mlps": changed})
    warnings = check_alternate_questions(lib)
    assert any("how many users does wechat have?" in w and "finds wechat" in w for w in warnings), warnings
    assert not any("what is MLPS?" in w or "等保是什么" in w for w in warnings)


def test_an_alternate_question_is_strong_evidence_for_its_fact(library) -> None:
    wechat = library.topics["wechat"]
    fact = wechat.sections["formats"][0]
    asked = "how often can a subscription account post"
    changed = wechat.model_copy(update={"sections": {**wechat.sections, "formats": [
        fact.model_copy(update={"questions": [asked]}), *wechat.sections["formats"][1:]]}})
    lib = dataclasses.replace(library, topics={**library.topics, "wechat": changed})
    assert qa.QAIndex.build(lib).match(asked + "?").docs[0].fact.text == fact.text
