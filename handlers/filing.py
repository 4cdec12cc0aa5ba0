"""``/china-filing``: the filings menu, filing cards and computed deadlines.

``/china-filing facial-recognition from 2025-09-20`` counts the rule's working days on China's
official calendar (holidays skipped, make-up working days counted), then dates each follow-on step
from the due date, so a team sees the whole timeline, not just the first date.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from zoneinfo import ZoneInfo

from dateutil.parser import isoparse

from content.calendar import ChinaCalendar, china_calendar
from content.i18n import Both, Month, format_day, msg, t
from content.loader import Library
from content.schema import DeadlineUnit, Language, Topic
from handlers.cards import (
    SourceList,
    caveats_for,
    language_switch,
    menu,
    resolve,
    share_action,
    topic_card,
    topic_command,
)
from handlers.request import (
    DEFAULT_TIMEZONE,
    Action,
    BadDateError,
    Reply,
    ReplyDeadline,
    ReplyField,
    ReplyStep,
    Request,
    UsageError,
    echo,
)
from handlers.router import Desk, router

FROM_WORDS = ("from", "reached", "since", "on", "after")
_FROM = re.compile(rf"^(?P<topic>.*?)\s*\b(?:{'|'.join(FROM_WORDS)})\b\s*(?P<date>.*)$", re.IGNORECASE)
_ISO_DATE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}")
_UNPADDED = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2099, 12, 31)

UNIT_WORDS = {unit: t(f"unit.{unit}", "en") for unit in ("working_days", "calendar_days", "hours")}


def parse_start(text: str, tz: str, today: dt.date) -> dt.date | dt.datetime:
    """Read the trigger date (``YYYY-MM-DD``, optionally with ``HH:MM``, or ``today``/``yesterday``)."""
    raw = text.strip()
    word = raw.casefold()
    if word in ("today", "yesterday"):
        return today - dt.timedelta(days=1 if word == "yesterday" else 0)
    if not raw:
        raise UsageError(msg("which_date"))
    if not _ISO_DATE.match(raw):
        raise BadDateError(msg("unreadable_date", text=echo(raw, 30)))
    # 2025-9-20 is how people type 2025-09-20; isoparse wants the zeros.
    raw = _UNPADDED.sub(lambda m: f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}", raw)
    try:
        value = isoparse(raw.replace(" ", "T", 1))
    except ValueError:
        y, m, *_ = (int(p) for p in re.findall(r"\d+", raw)[:3])
        if 1 <= m <= 12 and 1 <= y <= 9999:  # dt.date's range: 9999-12-99 must not overflow into year 10000
            days = calendar.monthrange(y, m)[1]
            month = Month(dt.date(y, m, 1))
            raise BadDateError(msg("not_a_date_month", text=echo(raw, 30), month=month, days=days)) from None
        raise BadDateError(msg("not_a_date", text=echo(raw, 30))) from None
    if not EARLIEST <= value.date() <= LATEST:
        raise BadDateError(msg("date_out_of_range", date=value.date().isoformat()))
    if len(raw) <= 10:  # a date only
        return value.date()
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))


def due_date(
    cal: ChinaCalendar, start: dt.date | dt.datetime, amount: int, unit: DeadlineUnit, lang: Language = "en",
):
    """Apply one rule: returns (due, lines explaining the count in ``lang``, estimate?)."""
    if unit == "hours":
        if not isinstance(start, dt.datetime):
            start = dt.datetime.combine(start, dt.time(0, 0), tzinfo=ZoneInfo(DEFAULT_TIMEZONE))
        line = t("count.hours", lang, amount=amount, start=format_day(start, lang))
        return cal.add_hours(start, amount), [line], False
    day = start.date() if isinstance(start, dt.datetime) else start
    if unit == "calendar_days":
        due = cal.add_calendar_days(day, amount)
        lines = [t("count.calendar_days", lang, amount=amount, start=format_day(day, lang))]
        if not cal.is_working_day(due):
            lines.append(t("count.not_working_day", lang, due=format_day(due, lang),
                           next=format_day(cal.next_working_day(due), lang)))
        return due, lines, not cal.is_official(due.year)
    count = cal.add_working_days(day, amount)
    lines = [t("count.working_days", lang, amount=amount, start=format_day(day, lang))]
    lines += count.explain(lang)
    return count.due, lines, count.estimate


def rule_text(topic: Topic, lang: Language = "en") -> str:
    """``30 working days from the day ...`` / ``自...起30个工作日``."""
    rule = topic.deadline
    assert rule is not None
    counted_from = (rule.counted_from_zh or rule.counted_from) if lang == "zh" else rule.counted_from
    return t("rule", lang, amount=rule.amount, unit=t(f"unit.{rule.unit}", lang), counted_from=counted_from)


def deadline_reply(
    library: Library, topic: Topic, start: dt.date | dt.datetime, *, today: dt.date,
    cal: ChinaCalendar | None = None, tz: str = DEFAULT_TIMEZONE, lang: Language = "en",
) -> Reply:
    """The computed deadline for a filing triggered on ``start``, with its follow-on steps dated, in ``lang``."""
    rule = topic.deadline
    if rule is None:
        raise UsageError(msg("no_deadline", title=Both(topic.title, topic.title_zh), command=topic_command(topic)))
    cal = cal or china_calendar()
    sources = SourceList(library, topic, lang=lang, today=today)
    assumed_midnight = rule.unit == "hours" and not isinstance(start, dt.datetime)
    if assumed_midnight:  # an hour rule needs a time of day; without one, count from the start of the day
        start = dt.datetime.combine(start, dt.time(0, 0), tzinfo=ZoneInfo(tz))
    due, counted, estimate = due_date(cal, start, rule.amount, rule.unit, lang)
    if assumed_midnight:
        counted.append(t("count.midnight", lang, tz=tz))
    rule_line = rule_text(topic, lang)
    summary = sources.cite(rule.fact)  # cited first, so the rule's own source is [1]
    shown = [rule.fact]

    steps: list[ReplyStep] = []
    previous = due
    for step in topic.follow_on:
        shown.append(step.fact)
        date = None
        step_estimate = False
        if step.amount is not None and step.unit is not None:
            base = due if step.after == "deadline" else previous
            date, _lines, step_estimate = due_date(cal, base, step.amount, step.unit)
            previous = date
        steps.append(
            ReplyStep(
                label=step.name_in(lang),
                text=sources.cite(step.fact),
                date=date.date() if isinstance(date, dt.datetime) else date,
                estimate=step_estimate,
            )
        )

    due_day = due.date() if isinstance(due, dt.datetime) else due
    if rule.unit == "working_days":
        left = cal.working_days_between(today, due_day)
        status = (
            t("status.working_days_left", lang, n=left, today=format_day(today, lang)) if left > 0
            else t("status.due_today", lang) if due_day == today
            else t("status.passed_working_days", lang, n=abs(left))
        )
    else:
        days = (due_day - today).days
        status = (
            t("status.calendar_days_left", lang, n=days) if days > 0
            else t("status.due_today", lang) if days == 0
            else t("status.passed_days", lang, n=-days)
        )

    caveats = caveats_for(shown, regulatory=True, today=today, lang=lang)
    if estimate or any(s.estimate for s in steps):
        caveats.insert(0, t("estimate_caveat", lang))
    if steps:
        caveats.append(t("follow_on_caveat", lang))
    if sources.missing_zh:
        caveats.append(t("missing_zh_caveat", lang))
    command = f"{topic_command(topic)} from {start:%Y-%m-%d}"
    reply = Reply(
        kind="deadline",
        title=t("deadline_title", lang, title=topic.title_in(lang), day=format_day(due, lang)),
        text="",
        summary=summary,
        topic=topic.id,
        deadline=ReplyDeadline(
            start=start, due=due, rule=rule_line, unit=rule.unit, amount=rule.amount, counted=counted,
            estimate=estimate,
        ),
        fields=[
            ReplyField(label=t("field.rule", lang), value=rule_line),
            ReplyField(label=t("field.triggered", lang), value=format_day(start, lang)),
            ReplyField(label=t("field.due", lang),
                       value=format_day(due, lang) + (t("estimate_mark", lang) if estimate else "")),
            ReplyField(label=t("field.status", lang), value=status),
        ],
        steps=steps,
        sources=sources.refs,
        caveats=caveats,
        related=[topic_command(topic)],
        actions=[
            share_action(command, lang),
            # Offered only when `remind` can take it: a deadline in days that has not passed yet.
            *([Action(kind="command", label=t("set_reminders", lang),
                      value=f"/china-filing remind {topic.id} from {start:%Y-%m-%d}")]
              if rule.unit != "hours" and due_day >= today else []),
            language_switch(command, lang),
        ],
        language=lang,
    )
    return reply.model_copy(update={"text": library.render("deadline", lang=lang, reply=reply)})


@router.command(
    "/china-filing",
    summary="filing obligations, their deadlines and reminders",
    usages=[
        ("/china-filing", "the menu of filings"),
        ("/china-filing <filing>", "the filing card, e.g. /china-filing facial-recognition"),
        ("/china-filing <filing> from YYYY-MM-DD", "the deadline on China's working days (or: reached, since)"),
    ],
    read_only=True,
)
async def china_filing(request: Request, desk: Desk, args: str) -> Reply:
    lang = request.answer_language()
    if not args:
        return menu(desk.library, "filing", lang=lang)
    match = _FROM.match(args)
    if match and desk.library.find(args, "filing") is None:  # a name may itself contain "on" or "after"
        name, when = match["topic"].strip(), match["date"].strip()
        if not name:
            raise UsageError(msg("which_filing"))
        topic = resolve(desk.library, name, ("filing",), "/china-filing")
        start = parse_start(when, request.timezone, request.today())
        return deadline_reply(desk.library, topic, start, today=request.today(), tz=request.timezone, lang=lang,
                              cal=desk.calendar)
    # "<topic> 2025-09-20" without the word "from" is common enough to accept.
    parts = args.rsplit(" ", 1)
    if len(parts) == 2 and _ISO_DATE.match(parts[1]):
        topic = resolve(desk.library, parts[0], ("filing",), "/china-filing")
        start = parse_start(parts[1], request.timezone, request.today())
        return deadline_reply(desk.library, topic, start, today=request.today(), tz=request.timezone, lang=lang,
                              cal=desk.calendar)
    topic = resolve(desk.library, args, ("filing",), "/china-filing")
    return topic_card(desk.library, topic, today=request.today(), lang=lang)
