"""``/china-filing upcoming [days]``: every dated event of the packs in the next N days, soonest first.

Rules taking effect, filing cut-offs, festivals (yearly ones by ``month_day``) and holidays: whatever a
topic lists under ``events``, counted from the request's local today. Each line gives the date, the
title, whether the date is an estimate, the sourced fact, and the command that subscribes the channel
to it. Read-only: the reply depends only on the window, the time zone's day and the language, so the
router caches it per day like the cards.
"""

from __future__ import annotations

import datetime as dt
import re

from content.i18n import format_day, msg, t
from content.loader import Library
from content.schema import DatedEvent, Language, Topic
from handlers.cards import SourceList, caveats_for, language_switch, share_action
from handlers.request import Action, Reply, ReplyField, Request, UsageError, echo
from handlers.router import Desk, router

DEFAULT_DAYS = 90
MIN_DAYS, MAX_DAYS = 1, 730
MAX_SHOWN = 30  # events listed; a longer window says how many more there are
SUBSCRIBE_BUTTONS = 3
_DAYS = re.compile(r"^(?P<n>\d{1,6})\s*(?:d|days?|天)?$", re.IGNORECASE)


def parse_days(text: str) -> int:
    raw = text.strip()
    if not raw:
        return DEFAULT_DAYS
    match = _DAYS.match(raw)
    days = int(match["n"]) if match else 0
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise UsageError(msg("upcoming_bad_days", min=MIN_DAYS, max=MAX_DAYS, value=echo(raw, 20)))
    return days


def upcoming_events(library: Library, start: dt.date, end: dt.date) -> list[tuple[dt.date, Topic, DatedEvent]]:
    """Every event occurrence in ``[start, end]``, soonest first (then by topic and event, for a stable order)."""
    found = [
        (day, topic, event)
        for topic in library.topics.values()
        for event in topic.events
        for day in event.occurrences(start, end)
    ]
    return sorted(found, key=lambda item: (item[0], item[1].title.casefold(), item[2].id))


def subscribe_command(topic: Topic) -> str:
    return f"/china-filing subscribe {topic.id}"


def upcoming_reply(library: Library, *, today: dt.date, days: int, lang: Language = "en") -> Reply:
    end = today + dt.timedelta(days=days)
    events = upcoming_events(library, today, end)
    shown = events[:MAX_SHOWN]
    sources = SourceList(library, shown[0][1] if shown else next(iter(library.topics.values())), lang=lang,
                         today=today)
    fields = []
    for day, topic, event in shown:
        mark = t("estimate_mark", lang) if event.estimate else ""
        fields.append(ReplyField(
            label=t("upcoming_line", lang, day=format_day(day, lang), title=event.title_in(lang)) + mark,
            value=sources.cite(event.fact, topic) + "\n" + t("upcoming_subscribe", lang,
                                                              command=subscribe_command(topic)),
            unverified=not event.fact.verified,
        ))
    span = {"start": format_day(today, lang), "end": format_day(end, lang)}
    summary = t("upcoming_summary", lang, count=len(events), **span) if events else t("upcoming_none", lang, **span)
    facts = [event.fact for _, _, event in shown]
    caveats = caveats_for(facts, regulatory=any(topic.kind == "filing" for _, topic, _ in shown), today=today,
                          lang=lang)
    if any(event.estimate for _, _, event in shown):
        caveats.append(t("event_estimate_caveat", lang))
    if sources.missing_zh:
        caveats.append(t("missing_zh_caveat", lang))
    command = f"/china-filing upcoming {days}"
    subscribe = []
    for _, topic, _ in shown:
        button = Action(kind="command", label=t("subscribe_button", lang, title=topic.title_in(lang)),
                        value=subscribe_command(topic))
        if button not in subscribe:
            subscribe.append(button)
    reply = Reply(
        kind="upcoming",
        title=t("upcoming_title", lang, days=days),
        text="",
        summary=summary,
        fields=fields,
        sources=sources.refs,
        caveats=caveats,
        actions=[share_action(command, lang), language_switch(command, lang), *subscribe[:SUBSCRIBE_BUTTONS]],
        language=lang,
    )
    text = library.render("upcoming", lang=lang, reply=reply, more=len(events) - len(shown))
    return reply.model_copy(update={"text": text})


@router.subcommand(
    "/china-filing", "upcoming", usage="/china-filing upcoming [days]",
    summary="dated events and rules taking effect in the next N days (default 90), soonest first",
    read_only=True,
)
async def upcoming(request: Request, desk: Desk, args: str) -> Reply:
    return upcoming_reply(desk.library, today=request.today(), days=parse_days(args), lang=request.answer_language())
