"""Cards people can read on every client: what the core puts in a Reply, and what each renderer (Slack
Block Kit, Teams Adaptive Card, plain text) makes of it, each checked against its schema.

The replies come from a varied set: every question of our Q&A set (answered and not), every topic's
card, deadlines, menus, help, ``upcoming``, errors and Chinese versions.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from bot.slack.blockkit import FeedbackRef, escape, render_reply, validate_blocks
from bot.teams.cards import FeedbackContext, render_card
from handlers import Desk, Request, qa
from handlers.cards import topic_command
from handlers.request import Reply
from handlers.text import render_text
from tests.conftest import NOW
from tests.connector_server import assert_valid_card
from tests.test_slack_blockkit import all_texts

QUESTIONS = Path(__file__).parent / "qa_questions.yaml"
COMMANDS = (
    "/china-filing", "/china-sector", "/china-platform", "/china-filing help", "/china-filing nonsense",
    "/china-filing facial-recognition from 2025-02-30", "/china-filing facial-recognition from 2025-09-20",
    "/china-filing 人脸识别 from 2025-09-20", "/china-platform 小红书", "/china-filing upcoming 120",
    "/china-filing remind facial-recognition from 2025-09-20", "/china-bogus", "/china-filing frt --lang zh",
    "filing face from 2025-09-20", "tell me a joke", "小红书是什么？", "what is the 618 festival?",
    "[x](https://evil.example) <!channel> **bold** `code` # heading",
)


async def varied_replies(desk: Desk) -> list[tuple[str, Reply]]:
    """(what was asked, the reply) for the varied set, through the same handler chain as every surface."""
    texts = [*COMMANDS, *(item.question for item in qa.load_questions(QUESTIONS))]
    texts += [topic_command(topic) for topic in desk.library.topics.values()]
    out = []
    for text in dict.fromkeys(texts):
        mode = "command" if text.startswith("/") else "direct"
        out.append((text, await desk.handle(Request(text=text, mode=mode, platform="teams", now=NOW))))
    return out


@pytest.fixture(scope="module")
def replies(desk: Desk) -> list[tuple[str, Reply]]:
    return asyncio.run(varied_replies(desk))  # once for the module (an async fixture would be per test)


def test_the_set_is_varied(replies: list[tuple[str, Reply]]) -> None:
    kinds = {reply.kind for _, reply in replies}
    assert {"menu", "help", "filing", "deadline", "sector", "platform", "calendar", "answer", "no_answer",
            "upcoming", "error"} <= kinds, kinds
    assert any(reply.language == "zh" for _, reply in replies)


def test_no_answer_has_a_heading_and_a_whole_sentence(replies: list[tuple[str, Reply]]) -> None:
    """The title is a heading of its own; the text does not continue it mid-sentence (which left a card
    with ", and I'd rather say so than guess." under the heading)."""
    seen = 0
    for text, reply in replies:
        if reply.kind != "no_answer" or not reply.text:
            continue
        seen += 1
        first = reply.text.lstrip().splitlines()[0]
        assert first[0] not in ",，;；", (text, first)
        rest = reply.text[len(reply.title):] if reply.text.startswith(reply.title) else "\n"
        assert rest[:1] in ("\n", ":", ""), (text, reply.title, reply.text[:80])
        assert not reply.title.endswith((",", "，")), reply.title
    assert seen >= 10


def test_an_answer_states_its_lead_fact_once(replies: list[tuple[str, Reply]]) -> None:
    """The lead fact is the answer's summary; it is not shown again as a field (under "In short")."""
    answers = [(text, reply) for text, reply in replies if reply.kind == "answer"]
    assert len(answers) >= 40
    for text, reply in answers:
        assert reply.summary, text
        assert reply.summary not in [field.value for field in reply.fields], text
        assert reply.text.count(reply.summary) == 1, text  # the text rendering states it once too


# ------------------------------------------------------------------------------- on every surface


def _adaptive_texts(node: Any, out: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(element type, text) of every string a Teams client shows from a card, fallbackText included."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("text", "title", "value", "fallbackText", "label") and isinstance(value, str):
                out.append((key if key == "fallbackText" else str(node.get("type", key)), value))
            else:
                _adaptive_texts(value, out)
    elif isinstance(node, list):
        for value in node:
            _adaptive_texts(value, out)
    return out


def test_adaptive_cards_are_valid_and_carry_no_markdown_escapes_or_backticks(replies) -> None:
    """Teams mobile shows ``\\[1\\]`` and backticks literally: no card text carries either (text that
    Markdown would change goes in RichTextBlocks, which no client reads as Markdown)."""
    rich = 0
    for text, reply in replies:
        card = render_card(reply, feedback=FeedbackContext(question=text, kind=reply.kind))
        assert_valid_card(card)
        for kind, shown in _adaptive_texts(card, []):
            assert "`" not in shown, (text, kind, shown[:120])
            assert not re.search(r"\\[!-/:-@\[-`{-~]", shown), (text, kind, shown[:120])
            if kind != "fallbackText":  # (echo()'s entities stay in the fallback, like the plain-text rendering)
                assert "&lt;" not in shown and "&amp;" not in shown, (text, kind, shown[:120])
        rich += sum(1 for kind, _ in _adaptive_texts(card, []) if kind == "TextRun")
    assert rich > 0  # the set does hold text that Markdown would change (lists, "1." steps, user markup)


def _first_text_after_title(card: dict[str, Any]) -> str:
    texts = [shown for _kind, shown in _adaptive_texts(card["body"], [])]
    return texts[1] if len(texts) > 1 else ""


def test_no_card_begins_mid_sentence_or_states_the_lead_fact_twice(replies) -> None:
    for text, reply in replies:
        card = render_card(reply)
        assert _first_text_after_title(card)[:1] not in (",", "，", ";"), (text, _first_text_after_title(card))
        slack = render_reply(reply, feedback=FeedbackRef(topic=reply.topic, question=text))
        blocks = validate_blocks(slack.blocks)  # the Block Kit models' own checks (limits, types)
        slack_text = "\n".join(all_texts(blocks))
        assert not re.search(r"^,", slack_text, re.MULTILINE), text
        if reply.kind == "answer":
            lead = reply.summary.rsplit(" [", 1)[0]  # the fact without its source number
            assert sum(shown.count(lead) for _k, shown in _adaptive_texts(card["body"], [])) == 1, text
            assert slack_text.count(escape(lead)) == 1, text
            assert render_text(reply).count(lead) == 1, text


def test_the_no_answer_card_reads_as_a_heading_and_a_sentence(desk: Desk) -> None:
    reply = asyncio.run(desk.handle(Request(text="tell me a joke", mode="direct", platform="teams", now=NOW)))
    card = render_card(reply)
    assert card["body"][0]["text"] == "No vetted answer"
    assert card["body"][1]["text"] == "I don't have a vetted answer to that, and I'd rather say so than guess."
    blocks = render_reply(reply).blocks
    assert blocks[0]["text"]["text"] == "No vetted answer"
    assert blocks[1]["text"]["text"].startswith("I don't have a vetted answer to that, and I'd rather")
    assert render_text(reply).startswith("I don't have a vetted answer to that, and I'd rather say so")
