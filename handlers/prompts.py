"""Starter prompts: a few real questions and commands to show someone opening a conversation with the bot.

Platform-neutral (Slack's agent DM shows them as suggested prompts; another surface may show them as
buttons). The questions come from the packs themselves, each topic's own alternate questions, so they
are ones the packs answer, and they follow the content as editors change it.
"""

from __future__ import annotations

from dataclasses import dataclass

from content.loader import Library
from handlers.request import has_han

PROMPT_TITLE_MAX = 75  # Slack cuts longer prompt titles; the message is sent whole
MAX_PROMPTS = 4  # Slack shows at most four suggested prompts


@dataclass(frozen=True)
class Prompt:
    title: str  # what the button says
    message: str  # what is sent, as if typed


# Commands worth one tap in a fresh conversation (the menu of filings is one card away from either).
COMMAND_PROMPTS = (
    Prompt("What's coming up in the next 90 days?", "/china-filing upcoming"),
    Prompt("What can you help with?", "help"),
)


def _shorten(text: str) -> str:
    return text if len(text) <= PROMPT_TITLE_MAX else text[: PROMPT_TITLE_MAX - 1].rstrip() + "…"


def _first_question(library: Library, kind: str) -> str | None:
    """The first English alternate question of a topic's summary in the pack of ``kind`` (packs' order)."""
    for topic in library.of_kind(kind):
        for question in topic.summary.questions:
            if not has_han(question):
                question = question[:1].upper() + question[1:]
                return question if question.endswith("?") else question + "?"
    return None


def starter_prompts(library: Library, *, limit: int = MAX_PROMPTS) -> list[Prompt]:
    """A filing question and a platform question from the packs, then the commands; at most ``limit``."""
    questions = [q for q in (_first_question(library, kind) for kind in ("filing", "platform")) if q]
    prompts = [Prompt(_shorten(q), q) for q in questions] + list(COMMAND_PROMPTS)
    return prompts[:limit]
