"""Bilingual replies: a question or command in Chinese gets a Chinese card, with the same sources, and the
English wording one button (or one ``--lang`` flag) away; every fixed word has its Chinese version."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from conftest import NOW

from bot.slack.blockkit import render_reply, validate_blocks
from bot.teams.cards import FeedbackContext, render_card
from content.i18n import format_day, format_span, placeholders, strings, t
from content.loader import Library
from content.schema import SECTION_LABELS, SECTION_LABELS_ZH
from handlers import Request
from handlers.cards import topic_card
from handlers.request import LEGAL_CAVEAT
from handlers.router import help_reply, router
from tests.connector_server import assert_valid_card, texts


def switch(reply, lang: str) -> str:
    """The command behind the reply's other-language button."""
    found = [a.value for a in reply.actions if a.kind == "command" and a.value.endswith(f"--lang {lang}")]
    assert len(found) == 1, reply.actions
    return found[0]


# ------------------------------------------------------------------------------------- the table


def test_every_message_has_chinese_with_the_same_placeholders():
    for key, entry in strings().items():
        assert entry.get("en") and entry.get("zh"), key
        assert placeholders(entry["en"]) == placeholders(entry["zh"]), key


def test_every_registered_command_has_its_chinese_help_line():
    for name, summary in router.summaries.items():
        assert strings()[f"cmd:{name}"]["en"] == summary
        for usage, what in router.usages[name]:
            assert strings()[f"usage:{usage}"]["en"] == what, usage
        for sub in router.subcommands.get(name, {}).values():
            assert f"usage:{sub.usage}" in strings(), f"no Chinese help line for {sub.usage}"


def test_dates_read_naturally_in_each_language():
    day = dt.date(2025, 11, 6)
    assert format_day(day, "en") == "Thu 6 Nov 2025"
    assert format_day(day, "zh") == "2025年11月6日（周四）"
    assert format_day(dt.datetime(2025, 11, 6, 14, 30, tzinfo=dt.UTC), "zh") == "2025年11月6日（周四）14:30 UTC"
    assert format_span(dt.date(2025, 10, 1), dt.date(2025, 10, 8), "zh") == "2025年10月1日至8日"
    assert format_span(dt.date(2025, 1, 28), dt.date(2025, 2, 4), "zh") == "2025年1月28日至2月4日"


# ------------------------------------------------------------------------------------------ cards


async def test_a_chinese_command_gets_a_chinese_card_with_the_same_sources(ask, library):
    zh = await ask("/china-filing 等保")
    en = await ask("/china-filing mlps")
    assert (zh.kind, zh.topic, zh.language) == ("filing", "mlps", "zh")
    assert en.language == "en"
    topic = library.topics["mlps"]
    assert zh.title.startswith(topic.title_zh)
    section_labels = {f.label for f in zh.fields} & set(SECTION_LABELS_ZH["filing"].values())
    assert section_labels and not ({f.label for f in zh.fields} & set(SECTION_LABELS["filing"].values()))
    for label in ("来源：", "注意：", SECTION_LABELS_ZH["filing"]["authority"] + "："):
        assert label in zh.text
    for english in ("Sources:", "Note:", "Authority:", "Facts as of"):
        assert english not in zh.text
    assert t("legal_caveat", "zh") in zh.caveats and LEGAL_CAVEAT not in zh.caveats
    assert [s.url for s in zh.sources] == [s.url for s in en.sources]


async def test_the_english_button_gives_the_english_card_and_back(ask):
    zh = await ask("/china-filing 等保")
    english = await ask(switch(zh, "en"))
    assert english.language == "en" and english.topic == "mlps"
    assert "Sources:" in english.text and "来源" not in english.text
    assert [s.url for s in english.sources] == [s.url for s in zh.sources]
    chinese = await ask(switch(english, "zh"))
    assert chinese.language == "zh" and chinese.text == zh.text


def test_a_fact_s_chinese_text_is_what_a_chinese_card_shows(library):
    topic = library.topics["facial-recognition"]
    zh_text = "人脸识别技术应用备案：存储人脸信息达到10万人的个人信息处理者，应向省级网信部门备案。"
    summary = topic.summary.model_copy(update={"text_zh": zh_text})
    translated = topic.model_copy(update={"summary": summary})
    lib = Library(packs=library.packs, topics={**library.topics, topic.id: translated}, topic_pack=library.topic_pack)
    zh = topic_card(lib, translated, today=NOW.date(), lang="zh")
    en = topic_card(lib, translated, today=NOW.date(), lang="en")
    assert zh.summary.startswith(zh_text) and zh_text not in en.text
    assert topic.summary.text in en.summary


def test_a_fact_without_chinese_is_shown_in_english_and_the_card_says_so(library):
    topic = library.topics["facial-recognition"]
    untranslated = topic.model_copy(update={"summary": topic.summary.model_copy(update={"text_zh": None})})
    zh = topic_card(library, untranslated, today=NOW.date(), lang="zh")
    assert zh.summary.startswith(topic.summary.text)
    assert t("missing_zh_caveat", "zh") in zh.caveats


async def test_a_chinese_deadline_counts_the_same_days_and_explains_them_in_chinese(ask):
    zh = await ask("/china-filing 人脸识别 from 2025-09-20")
    en = await ask("/china-filing facial-recognition from 2025-09-20")
    assert zh.as_json()["deadline"] == en.as_json()["deadline"] == "2025-11-06"
    assert "2025年11月6日（周四）" in zh.title
    assert "计算方式：" in zh.text and "How it was counted" not in zh.text
    counted = "\n".join(zh.deadline.counted)
    assert "2025年10月1日至8日（国庆节、中秋节）" in counted
    assert "2025年9月28日（周日）" in counted  # the make-up working day, written the Chinese way
    assert [f.label for f in zh.fields] == ["规则", "起算日", "截止日期", "状态"]
    assert [s.url for s in zh.sources] == [s.url for s in en.sources]
    english = await ask(switch(zh, "en"))
    assert english.text == en.text


@pytest.mark.parametrize(("command", "title"), [
    ("/china-filing --lang zh", "可查询的中国备案与审批事项"),
    ("/china-sector --lang zh", "中国行业简报"),
    ("/china-platform --lang zh", "可查询的中国平台"),
])
async def test_menus_in_chinese(ask, library, command, title):
    reply = await ask(command)
    assert reply.kind == "menu" and reply.title == title and reply.language == "zh"
    titles_zh = {t.title_zh for t in library.topics.values() if t.title_zh}
    assert any(item.title in titles_zh for item in reply.items)
    assert "查看简报" in reply.text
    back = await ask(switch(reply, "en"))
    assert back.language == "en" and back.items and "Type" in back.text


async def test_help_in_chinese(ask, desk):
    reply = await ask("/china-filing help --lang zh")
    assert reply.kind == "help" and reply.title == "China Desk 能为您做什么"
    assert "备案与审批义务、期限和提醒" in reply.text
    assert "不构成法律意见" in reply.text
    assert "this help" not in reply.text
    assert help_reply(desk).language == "en"


@pytest.mark.parametrize(("text", "expected"), [
    ("/china-filing 不存在的备案", "没有名为“不存在的备案”的备案或审批事项"),
    ("/china-filing nothing-like-this", "I don't have a filing called “nothing-like-this”"),
    ("/china-filing facial-recognition from 2025-02-30 --lang zh", "不是有效日期：2025年2月只有 28 天"),
    ("/china-filing facial-recognition from 2025-02-30", "2025-02-30 is not a real date: February 2025 has 28 days"),
])
async def test_errors_speak_the_language_of_the_request(ask, text, expected):
    reply = await ask(text)
    assert reply.kind == "error"
    assert expected in reply.text


async def test_a_bad_language_flag_is_a_friendly_error(ask):
    reply = await ask("/china-filing mlps --lang fr")
    assert reply.kind == "error" and "--lang zh" in reply.text and "“fr”" in reply.text


async def test_the_same_command_in_two_languages_is_cached_apart(desk):
    # ReplyCache keys carry the answer language: a Chinese channel must never get the English card kept
    # for an English one (or the reverse).
    en = await desk.handle(Request(text="/china-filing mlps", now=NOW, language="en"))
    zh = await desk.handle(Request(text="/china-filing mlps", now=NOW, language="zh"))
    again = await desk.handle(Request(text="/china-filing mlps", now=NOW, language="en"))
    assert (en.language, zh.language) == ("en", "zh")
    assert again is en


async def test_a_chosen_language_beats_the_question_s(desk):
    reply = await desk.handle(Request(text="/china-filing 等保", now=NOW, language="en"))
    assert reply.language == "en" and "Sources:" in reply.text


# ------------------------------------------------------------------------------ Slack and Teams


@pytest.mark.parametrize("text", [
    "/china-filing 等保", "/china-filing 人脸识别 from 2025-09-20", "/china-platform 小红书", "/china-sector 半导体",
    "/china-filing --lang zh", "/china-filing help --lang zh", "/china-filing 不存在",
])
async def test_chinese_replies_are_valid_block_kit_and_adaptive_cards(ask, text):
    reply = await ask(text)
    assert reply.language == "zh"
    message = render_reply(reply, feedback=None)
    validate_blocks(message.blocks)
    card = render_card(reply, feedback=FeedbackContext(question=text, kind=reply.kind))
    assert_valid_card(card)
    dump = json.dumps(message.blocks, ensure_ascii=False) + json.dumps(card, ensure_ascii=False)
    for english in ("*Sources*", "How it was counted", "Share to channel", "\"Sources\"", "(unverified)"):
        assert english not in dump, english
    if reply.sources:
        assert "*来源*" in json.dumps(message.blocks, ensure_ascii=False)
        assert "来源" in texts(card)
    if reply.kind in ("filing", "sector", "platform", "deadline", "menu"):
        buttons = [a for a in card.get("actions", []) if a.get("data", {}).get("text", "").endswith("--lang en")]
        assert buttons and buttons[0]["title"] == "English version"
        slack_buttons = [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]
                         if e.get("value", "").endswith("--lang en")]
        assert slack_buttons


async def test_chinese_deadline_blocks_write_dates_the_chinese_way(ask):
    reply = await ask("/china-filing 人脸识别 from 2025-09-20")
    message = render_reply(reply)
    dump = json.dumps(message.blocks, ensure_ascii=False)
    assert "截止日期：2025年11月6日（周四）" in dump and "*计算方式*" in dump
    card = render_card(reply)
    assert any("截止日期：2025年11月6日（周四）" in text for text in texts(card))


async def test_teams_pickers_and_buttons_on_a_chinese_card_open_chinese_cards(ask):
    menu = render_card(await ask("/china-filing --lang zh"))
    picker = next(b for b in menu["body"] if b["type"] == "Input.ChoiceSet")
    assert all(c["value"].endswith(" --lang zh") for c in picker["choices"])
    opened = await ask(picker["choices"][0]["value"])
    assert opened.kind == "filing" and opened.language == "zh"
    error = render_card(await ask("/china-filing 人脸识 --lang zh"))  # "did you mean" buttons
    tries = [a["data"]["text"] for a in error.get("actions", []) if a["data"].get("action") == "command"]
    assert tries and all(value.endswith(" --lang zh") for value in tries)
    english = render_card(await ask("/china-filing"))
    picker = next(b for b in english["body"] if b["type"] == "Input.ChoiceSet")
    assert not any("--lang" in c["value"] for c in picker["choices"])
