"""What a due reminder says: the deadline and calendar-event posts the scheduler renders when they are due."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from content.i18n import format_day, t, tn
from content.schema import Language, Topic
from handlers.cards import SourceList, caveats_for, topic_command
from handlers.filing import rule_text
from handlers.reminders import (  # the helpers the reminder replies share
    NOTE_MAX,
    _event_title,
    _reply,
    _when,
    offset_label,
)
from handlers.request import (
    DEFAULT_TIMEZONE,
    Reply,
    ReplyField,
    ReplyStep,
    echo,
)
from handlers.router import Desk

# ---------------------------------------------------------------------------------- the posts


def render_post(desk: Desk, post, *, now: dt.datetime, late: bool, lang: Language = "en") -> Reply:
    """What a due post says (``post`` is a ``bot.store.ScheduledPost``), in ``lang``; called by the scheduler."""
    if post.kind == "deadline":
        return _deadline_post(desk, post, now=now, late=late, lang=lang)
    return _event_post(desk, post, now=now, late=late, lang=lang)


def _next_step(topic: Topic, sources: SourceList, offset: int, due: dt.date, lang: Language) -> ReplyStep:
    documents = topic.sections.get("documents", [])
    if offset >= 5 and documents:
        return ReplyStep(label=t("next_step", lang), text=t("prepare_documents", lang, fact=sources.cite(documents[0])))
    fact = topic.deadline.fact if topic.deadline else topic.summary
    return ReplyStep(label=t("next_step", lang), text=t("file_by", lang, day=format_day(due, lang),
                                                        fact=sources.cite(fact)), date=due)


def _deadline_post(desk: Desk, post, *, now: dt.datetime, late: bool, lang: Language) -> Reply:
    p = post.payload
    tz = p.get("tz") or DEFAULT_TIMEZONE
    due = dt.date.fromisoformat(p["due"])
    today = now.astimezone(ZoneInfo(tz)).date()
    left = desk.calendar.working_days_between(today, due)
    topic = desk.library.topics.get(p["topic"])
    title = topic.title_in(lang) if topic else p.get("title", p["topic"])
    ref = f"D{post.deadline_id}"
    when = t("today", lang) if due == today else tn("in_working_days", left, lang)
    fields = [
        ReplyField(label=t("field.what_is_due", lang), value=title),
        ReplyField(label=t("field.when", lang), value=format_day(due, lang)),
        ReplyField(label=t("field.working_days_left", lang),
                   value=t("zero_due_today", lang) if due == today else str(left)),
    ]
    steps: list[ReplyStep] = []
    sources: list = []
    caveats: list[str] = []
    summary = t("post_due_summary", lang, title=title, day=format_day(due, lang), when=when)
    if topic is not None and topic.deadline is not None:
        cite = SourceList(desk.library, topic, lang=lang, today=today)
        summary += " " + cite.cite(topic.deadline.fact)  # cited first, so the rule's source is [1]
        fields.insert(1, ReplyField(label=t("field.rule", lang), value=rule_text(topic, lang)))
        steps.append(_next_step(topic, cite, int(p.get("offset", 0)), due, lang))
        steps += [ReplyStep(label=s.name_in(lang), text=cite.cite(s.fact)) for s in topic.follow_on[:1]]
        sources = cite.refs
        caveats = caveats_for([topic.deadline.fact], regulatory=True, today=today, lang=lang)
    if p.get("note"):
        fields.append(ReplyField(label=t("field.note", lang), value=echo(p["note"], NOTE_MAX)))
    fields.append(ReplyField(label=t("field.tracked_as", lang),
                             value=t("tracked_started", lang, ref=ref, start=p.get("start", "?"))))
    if late:
        caveats.insert(0, t("late_reminder", lang, when=_when(post.due_at, tz, lang)))
    reply = Reply(
        kind="reminder",
        title=t("late_reminder_title" if late else "reminder_title", lang, title=title, day=format_day(due, lang)),
        text="",
        summary=summary,
        topic=p["topic"],
        fields=fields,
        steps=steps,
        sources=sources,
        caveats=caveats,
        related=[f"/china-filing cancel {ref}"] + ([topic_command(topic)] if topic else []),
        ephemeral=False,
        language=lang,
    )
    label = offset_label(int(p["offset"]), lang) if "offset" in p else p.get("label", "")
    return _reply(desk.library, "reminder", reply, late=late, label=label, ref=ref)


def _event_post(desk: Desk, post, *, now: dt.datetime, late: bool, lang: Language) -> Reply:
    p = post.payload
    tz = p.get("tz") or DEFAULT_TIMEZONE
    day = dt.date.fromisoformat(p["date"])
    today = now.astimezone(ZoneInfo(tz)).date()
    days = (day - today).days
    working = desk.calendar.working_days_between(today, day)
    topic = desk.library.topics.get(p["topic"])
    event = next((e for e in topic.events if e.id == p["event"]), None) if topic else None
    title = _event_title(desk.library, p, lang)
    ref = f"S{post.subscription_id}"
    time_left = t("time_left_line", lang, days=tn("n_days", days, lang), working=tn("n_working_days", working, lang))
    fields = [
        ReplyField(label=t("field.what", lang), value=title),
        ReplyField(label=t("field.when", lang), value=format_day(day, lang)),
        ReplyField(label=t("field.time_left", lang), value=t("today", lang) if days == 0 else time_left),
    ]
    steps: list[ReplyStep] = []
    sources: list = []
    when = t("today", lang) if days == 0 else tn("in_days", days, lang)
    summary = t("event_summary", lang, title=title, day=format_day(day, lang), when=when)
    caveats: list[str] = []
    if topic is not None and event is not None:
        cite = SourceList(desk.library, topic, lang=lang, today=today)
        summary += " " + cite.cite(event.fact)
        prep = topic.sections.get("preparation", [])
        step = cite.cite(prep[0]) if prep else t("check_briefing", lang, command=topic_command(topic))
        steps.append(ReplyStep(label=t("next_step", lang), text=step))
        sources = cite.refs
        caveats = caveats_for([event.fact], regulatory=topic.kind == "filing", today=today, lang=lang)
        if event.estimate:
            caveats.append(t("event_estimate_caveat", lang))
    if late:
        caveats.insert(0, t("late_event", lang, when=_when(post.due_at, tz, lang)))
    reply = Reply(
        kind="reminder",
        title=t("late_event_title" if late else "event_title", lang, title=title, day=format_day(day, lang)),
        text="",
        summary=summary,
        topic=p["topic"],
        fields=fields,
        steps=steps,
        sources=sources,
        caveats=caveats,
        related=[f"/china-filing unsubscribe {ref}"] + ([topic_command(topic)] if topic else []),
        ephemeral=False,
        language=lang,
    )
    return _reply(desk.library, "reminder_event", reply, late=late, ref=ref)
