"""Starter prompts (Slack's suggested prompts): real questions and commands, each one the bot answers."""

from __future__ import annotations

import datetime as dt

from content.loader import Library
from handlers import Desk, Request
from handlers.prompts import MAX_PROMPTS, PROMPT_TITLE_MAX, starter_prompts


async def test_every_starter_prompt_gets_a_real_answer(desk: Desk, library: Library) -> None:
    prompts = starter_prompts(library)
    assert 3 <= len(prompts) <= MAX_PROMPTS
    assert all(0 < len(p.title) <= PROMPT_TITLE_MAX and p.message for p in prompts)
    kinds = []
    for prompt in prompts:
        reply = await desk.handle(Request(text=prompt.message, mode="direct", platform="slack",
                                          now=dt.datetime(2026, 11, 20, tzinfo=dt.UTC)))
        kinds.append(reply.kind)
        assert reply.kind not in ("error", "no_answer"), (prompt, reply.text[:200])
    assert "answer" in kinds  # at least one is a question answered from the packs, not only commands


def test_prompt_questions_come_from_the_packs(library: Library) -> None:
    questions = {q.casefold().rstrip("?") for t in library.topics.values() for q in t.summary.questions}
    asked = [p for p in starter_prompts(library) if not p.message.startswith("/") and p.message != "help"]
    assert asked and all(p.message.casefold().rstrip("?") in questions for p in asked)
