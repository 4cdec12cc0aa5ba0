"""Checks of the content that need the handlers: every card, deadline, menu and the upcoming events
rendered, in English and Chinese, exactly as users would get them.

``chinadesk content check`` (bot/cli.py) runs these after :func:`content.loader.check_library`, which
checks the packs themselves: content imports nothing from the handlers, so this half lives here.
"""

from __future__ import annotations

import datetime as dt

from content.i18n import LANGUAGES
from content.loader import Library
from handlers.cards import menu, topic_card
from handlers.filing import deadline_reply
from handlers.upcoming import MAX_DAYS, upcoming_reply

SAMPLE_TRIGGER = dt.date(2025, 9, 20)


def render_samples(library: Library, *, today: dt.date) -> list[str]:
    """Render every card of every topic (and its deadline, and the menus) in each language; return the
    problems found, one per broken topic and language rather than just the first."""
    problems: list[str] = []
    for lang in LANGUAGES:
        for topic in library.topics.values():
            try:
                topic_card(library, topic, today=today, lang=lang)
                if topic.deadline is not None:
                    start: dt.date | dt.datetime = SAMPLE_TRIGGER
                    if topic.deadline.unit == "hours":
                        start = dt.datetime.combine(SAMPLE_TRIGGER, dt.time(9, 0), tzinfo=dt.UTC)
                    deadline_reply(library, topic, start, today=today, lang=lang)
            except Exception as exc:  # report every broken topic, not just the first
                problems.append(f"{topic.id} ({lang}): template failed: {type(exc).__name__}: {exc}")
        for kind in ("filing", "sector", "platform"):
            try:
                menu(library, kind, lang=lang)
            except Exception as exc:
                problems.append(f"menu for {kind} ({lang}): {type(exc).__name__}: {exc}")
        try:
            upcoming_reply(library, today=today, days=MAX_DAYS, lang=lang)
        except Exception as exc:
            problems.append(f"upcoming ({lang}): {type(exc).__name__}: {exc}")
    return problems
