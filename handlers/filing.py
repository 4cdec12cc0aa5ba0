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
from content.loader import Library, format_day
from content.schema import DeadlineUnit, Topic
from handlers.cards import SourceList, caveats_for, menu, resolve, topic_card, topic_command
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
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2099, 12, 31)

UNIT_WORDS = {"working_days": "working days", "calendar_days": "calendar days", "hours": "hours"}


def parse_start(text: str, tz: str, today: dt.date) -> dt.date | dt.datetime:
    """Read the trigger date (``YYYY-MM-DD``, optionally with ``HH:MM``, or ``today``/``yesterday``)."""
    raw = text.strip()
    word = raw.casefold()
    if word in ("today", "yesterday"):
        return today - dt.timedelta(days=1 if word == "yesterday" else 0)
    if not raw:
        raise UsageError("Which date? Add the date the obligation was triggered, e.g. `from 2025-09-20`.")
    if not _ISO_DATE.match(raw):
        raise BadDateError(
            f"I couldn't read “{echo(raw, 30)}” as a date. Please write it as YYYY-MM-DD, e.g. 2025-09-20."
        )
    try:
        value = isoparse(raw.replace(" ", "T", 1))
    except ValueError:
        y, m, *_ = (int(p) for p in re.findall(r"\d+", raw)[:3])
        if 1 <= m <= 12 and 1 <= y <= 9999:  # dt.date's range: 9999-12-99 must not overflow into year 10000
            days = calendar.monthrange(y, m)[1]
            raise BadDateError(
                f"{echo(raw, 30)} is not a real date: {dt.date(y, m, 1):%B %Y} has {days} days."
            ) from None
        raise BadDateError(f"{echo(raw, 30)} is not a real date. Please write it as YYYY-MM-DD.") from None
    if not EARLIEST <= value.date() <= LATEST:
        raise BadDateError(f"{value.date().isoformat()} is outside the years I can count (2000-2099).")
    if len(raw) <= 10:  # a date only
        return value.date()
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))


def due_date(cal: ChinaCalendar, start: dt.date | dt.datetime, amount: int, unit: DeadlineUnit):
    """Apply one rule: returns (due, lines explaining the count, estimate?)."""
    if unit == "hours":
        if not isinstance(start, dt.datetime):
            start = dt.datetime.combine(start, dt.time(0, 0), tzinfo=ZoneInfo(DEFAULT_TIMEZONE))
        return cal.add_hours(start, amount), [f"{amount} clock hours from {format_day(start)}."], False
    day = start.date() if isinstance(start, dt.datetime) else start
    if unit == "calendar_days":
        due = cal.add_calendar_days(day, amount)
        lines = [f"{amount} calendar days after {format_day(day)} (every day counts)."]
        if not cal.is_working_day(due):
            lines.append(
                f"{format_day(due)} is not a working day in China; the next working day is "
                f"{format_day(cal.next_working_day(due))}. Check whether the authority accepts it then."
            )
        return due, lines, not cal.is_official(due.year)
    count = cal.add_working_days(day, amount)
    lines = [f"Counted {amount} working days after {format_day(day)} (the trigger day itself is not counted)."]
    lines += count.explain()
    return count.due, lines, count.estimate


def deadline_reply(
    library: Library, topic: Topic, start: dt.date | dt.datetime, *, today: dt.date,
    cal: ChinaCalendar | None = None, tz: str = DEFAULT_TIMEZONE,
) -> Reply:
    """The computed deadline for a filing triggered on ``start``, with its follow-on steps dated."""
    rule = topic.deadline
    if rule is None:
        raise UsageError(
            f"{topic.title} has no fixed “within N days” deadline in our sources, so there is nothing to "
            f"count from a date. `{topic_command(topic)}` shows what the rules do say."
        )
    cal = cal or china_calendar()
    sources = SourceList(library, topic)
    assumed_midnight = rule.unit == "hours" and not isinstance(start, dt.datetime)
    if assumed_midnight:  # an hour rule needs a time of day; without one, count from the start of the day
        start = dt.datetime.combine(start, dt.time(0, 0), tzinfo=ZoneInfo(tz))
    due, counted, estimate = due_date(cal, start, rule.amount, rule.unit)
    if assumed_midnight:
        counted.append(f"No time was given, so the count starts at 00:00 ({tz}); add one, e.g. from 2025-09-20 14:30.")
    rule_text = f"{rule.amount} {UNIT_WORDS[rule.unit]} from {rule.counted_from}"
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
                label=step.name,
                text=sources.cite(step.fact),
                date=date.date() if isinstance(date, dt.datetime) else date,
                estimate=step_estimate,
            )
        )

    due_day = due.date() if isinstance(due, dt.datetime) else due
    if rule.unit == "working_days":
        left = cal.working_days_between(today, due_day)
        status = (
            f"{left} working days from today ({format_day(today)})" if left > 0
            else "due today" if due_day == today
            else f"passed {abs(left)} working days ago"
        )
    else:
        days = (due_day - today).days
        status = (
            f"{days} calendar days from today" if days > 0 else "due today" if days == 0 else f"passed {-days} days ago"
        )

    caveats = caveats_for(shown, regulatory=True, today=today)
    if estimate or any(s.estimate for s in steps):
        caveats.insert(
            0,
            "Estimate: part of this period falls in a year whose official holiday arrangement is not in "
            "our calendar data yet; it was counted from weekends and statutory holidays only.",
        )
    if steps:
        caveats.append("Follow-on dates assume you file on the due date; filing earlier moves them earlier.")
    reply = Reply(
        kind="deadline",
        title=f"{topic.title}: due {format_day(due)}",
        text="",
        summary=summary,
        topic=topic.id,
        deadline=ReplyDeadline(
            start=start, due=due, rule=rule_text, unit=rule.unit, amount=rule.amount, counted=counted,
            estimate=estimate,
        ),
        fields=[
            ReplyField(label="Rule", value=rule_text),
            ReplyField(label="Triggered", value=format_day(start)),
            ReplyField(label="Due", value=format_day(due) + (" (estimate)" if estimate else "")),
            ReplyField(label="Status", value=status),
        ],
        steps=steps,
        sources=sources.refs,
        caveats=caveats,
        related=[topic_command(topic)],
        actions=[
            Action(kind="share", label="Share to channel", value=f"{topic_command(topic)} from {start:%Y-%m-%d}"),
            # Offered only when `remind` can take it: a deadline in days that has not passed yet.
            *([Action(kind="command", label="Set reminders",
                      value=f"/china-filing remind {topic.id} from {start:%Y-%m-%d}")]
              if rule.unit != "hours" and due_day >= today else []),
        ],
    )
    return reply.model_copy(update={"text": library.render("deadline", reply=reply)})


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
    if not args:
        return menu(desk.library, "filing", intro="China filings I can brief you on")
    match = _FROM.match(args)
    if match and desk.library.find(args, "filing") is None:  # a name may itself contain "on" or "after"
        name, when = match["topic"].strip(), match["date"].strip()
        if not name:
            raise UsageError(
                "Which filing? Put its name before the date, e.g. `/china-filing facial-recognition from 2025-09-20`."
            )
        topic = resolve(desk.library, name, ("filing",), "/china-filing")
        start = parse_start(when, request.timezone, request.today())
        return deadline_reply(desk.library, topic, start, today=request.today(), tz=request.timezone)
    # "<topic> 2025-09-20" without the word "from" is common enough to accept.
    parts = args.rsplit(" ", 1)
    if len(parts) == 2 and _ISO_DATE.match(parts[1]):
        topic = resolve(desk.library, parts[0], ("filing",), "/china-filing")
        start = parse_start(parts[1], request.timezone, request.today())
        return deadline_reply(desk.library, topic, start, today=request.today(), tz=request.timezone)
    topic = resolve(desk.library, args, ("filing",), "/china-filing")
    return topic_card(desk.library, topic, today=request.today())
