"""Cards people can read on every client: what the core puts in a Reply, and what each renderer makes of it.

The replies come from a varied set: every question of our Q&A set (answered and not), every topic's
card, deadlines, menus, help, ``upcoming``, errors and Chinese versions.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from handlers import Desk, Request, qa
from handlers.cards import topic_command
from handlers.request import Reply
from tests.conftest import NOW

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
