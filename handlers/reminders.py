"""Reminders: tracked filing deadlines and calendar subscriptions for a channel (issue 6).

``/china-filing remind <filing> from YYYY-MM-DD [note]`` tracks a deadline for the channel it is typed
in and schedules its reminder posts (10, 5 and 1 working days before, and on the due day, at 09:00 in
the channel's time zone); ``subscribe <topic|all>`` posts a content pack's dated events ahead of time.
``reminders``, ``cancel``, ``timezone`` and ``unsubscribe`` manage them.

Platform-neutral like every handler: the schedule is computed here (pure functions, easy to test)
and stored as rows through ``desk.store``; bot/scheduler.py posts them when due and calls
:func:`render_post` for what each post says.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from content.calendar import ChinaCalendar
from content.i18n import Both, Day, format_day, msg, t, tn
from content.loader import Library
from content.schema import DatedEvent, Language, Topic
from handlers.cards import resolve, topic_command
from handlers.filing import EARLIEST, deadline_reply, parse_start
from handlers.request import (
    DEFAULT_TIMEZONE,
    NotAvailableError,
    Reply,
    ReplyField,
    ReplyStep,
    Request,
    UsageError,
    UserError,
    echo,
)
from handlers.router import Desk, router

# The default schedule: working days before the due day (0 = on the due day), posted at 09:00 local.
REMINDER_OFFSETS: tuple[int, ...] = (10, 5, 1, 0)
REMINDER_TIME = dt.time(9, 0)
# Subscriptions keep posts materialised this far ahead; the scheduler tops them up as time passes.
EVENT_HORIZON = dt.timedelta(days=400)
NOTE_MAX = 200
ALL = "all"

NEEDS_CHANNEL = t("reminders_need_channel", "en")
NEEDS_STORE = t("reminders_need_store", "en")

_DATE = r"\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?|today|yesterday"
_REMIND = re.compile(
    rf"^(?P<topic>.+?)\s+(?:(?:from|since|on|after|reached)\s+)?(?P<date>{_DATE})(?:\s+(?P<note>.*))?$",
    re.IGNORECASE | re.DOTALL,
)
_FROM_ANY = re.compile(r"^(?P<topic>.*?)\s*\b(?:from|since|on|after|reached)\b\s*(?P<rest>.*)$", re.IGNORECASE)
_REF = re.compile(r"^(?P<kind>[ds]?)#?(?P<id>\d{1,18})$", re.IGNORECASE)


# ------------------------------------------------------------------------------ pure scheduling


@dataclass(frozen=True)
class ReminderTime:
    """One reminder of a tracked deadline: which (``offset`` working days before) and when (UTC)."""

    offset: int
    day: dt.date
    at: dt.datetime  # aware, UTC

    @property
    def label(self) -> str:
        return offset_label(self.offset)


def offset_label(offset: int, lang: Language = "en") -> str:
    if offset == 0:
        return t("offset.due_day", lang)
    return tn("offset.before", offset, lang)


def local_instant(day: dt.date, tz: str, at: dt.time = REMINDER_TIME) -> dt.datetime:
    """``day`` at ``at`` wall-clock time in ``tz``, as an aware UTC datetime."""
    return dt.datetime.combine(day, at, tzinfo=ZoneInfo(tz)).astimezone(dt.UTC)


def reminder_schedule(
    cal: ChinaCalendar, due: dt.date, tz: str, offsets: Iterable[int] = REMINDER_OFFSETS,
) -> list[ReminderTime]:
    """The reminder instants for a deadline due on ``due``, earliest first, one per distinct day."""
    out: dict[dt.date, ReminderTime] = {}
    for n in sorted(set(offsets), reverse=True):
        day = cal.subtract_working_days(due, n)
        out.setdefault(day, ReminderTime(n, day, local_instant(day, tz)))
    return sorted(out.values(), key=lambda r: r.at)


def day_end(day: dt.date, tz: str) -> dt.datetime:
    """The first instant after ``day`` in ``tz`` (when a deadline on ``day`` has passed), UTC."""
    return local_instant(day + dt.timedelta(days=1), tz, dt.time(0, 0))


@dataclass(frozen=True)
class PlannedPost:
    """A post to schedule (the store's ``NewPost`` shape, kept free of bot imports)."""

    key: str
    due_at: dt.datetime
    expires_at: dt.datetime
    payload: dict
    status: str = "pending"


def deadline_posts(
    cal: ChinaCalendar, *, topic: Topic, start: str, due: dt.date, tz: str, note: str | None, now: dt.datetime,
) -> list[PlannedPost]:
    """The reminder posts of one tracked deadline.

    Reminder times already past when tracking starts are kept as ``skipped`` (so the list shows them)
    instead of being posted at once as "late" ones. (``remind`` refuses a deadline that has passed; a
    tracked deadline re-planned after it passed, by a time-zone change, keeps them pending, and the
    scheduler expires them.)
    """
    expires = day_end(due, tz)
    passed = now >= expires
    posts = []
    for r in reminder_schedule(cal, due, tz):
        payload = {
            "topic": topic.id, "title": topic.title, "start": start, "due": due.isoformat(), "offset": r.offset,
            "label": r.label, "tz": tz, "note": note,
        }
        status = "skipped" if r.at < now and not passed else "pending"
        posts.append(PlannedPost(f"rem{r.offset}", r.at, expires, payload, status))
    return posts


def events_of(library: Library, topic: str) -> list[tuple[Topic, DatedEvent]]:
    """Every dated event of ``topic`` (a topic id, or ``all``)."""
    topics = library.topics.values() if topic == ALL else [library.topics[topic]] if topic in library.topics else []
    return [(owner, e) for owner in topics for e in owner.events]


def event_posts(
    library: Library, *, platform: str, channel: str, topic: str, tz: str, start: dt.datetime, end: dt.datetime,
) -> list[PlannedPost]:
    """Posts for ``topic``'s events whose post time falls in ``[start, end)``.

    The key is (channel, event, occurrence, lead), so re-materialising, or being subscribed to the same
    event twice (``all`` and the topic itself), never schedules a post twice.
    """
    out = []
    for owner, event in events_of(library, topic):
        leads = sorted(set(event.lead_days), reverse=True)
        first = (start.date() - dt.timedelta(days=1))
        last = end.date() + dt.timedelta(days=max(leads, default=0) + 1)
        for day in event.occurrences(max(first, EARLIEST), last):
            for lead in leads:
                at = local_instant(day - dt.timedelta(days=lead), tz)
                if not start <= at < end:
                    continue
                payload = {
                    "topic": owner.id, "event": event.id, "title": event.title, "date": day.isoformat(), "lead": lead,
                    "tz": tz,
                }
                key = f"ev:{platform}:{channel}:{event.id}:{day.isoformat()}:{lead}"
                out.append(PlannedPost(key, at, day_end(day, tz), payload))
    return sorted(out, key=lambda p: p.due_at)


# ----------------------------------------------------------------------------------- time zones


@cache
def _zones() -> dict[str, str]:
    return {z.casefold(): z for z in available_timezones()}


def parse_timezone(text: str) -> str:
    """An IANA zone name (``Europe/London``), matched case-insensitively, or a friendly error."""
    raw = text.strip()
    name = _zones().get(raw.casefold().replace(" ", "_"))
    if name is None and raw.casefold() in ("utc", "gmt", "z"):
        name = "UTC"
    if name is None:
        close = [z for k, z in _zones().items() if raw.casefold() and raw.casefold() in k][:3]
        hint = msg("timezone_did_you_mean", names=", ".join(close)) if close else ""
        raise UserError(msg("unknown_timezone", name=echo(raw, 40), hint=hint))
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # listed but without data on this system
        raise UserError(msg("timezone_unavailable", name=name)) from None
    return name


# ------------------------------------------------------------------------------------ handlers


def _context(request: Request, desk: Desk) -> tuple[object, str]:
    if desk.store is None:
        raise NotAvailableError(msg("reminders_need_store"))
    if not request.channel:
        raise NotAvailableError(msg("reminders_need_channel"))
    return desk.store, request.channel


async def _channel_tz(request: Request, desk: Desk) -> str:
    store, channel = _context(request, desk)
    settings = await store.get_channel_settings(request.platform, channel)
    return settings.timezone or DEFAULT_TIMEZONE


def _new_posts(planned: Sequence[PlannedPost]) -> list[PlannedPost]:
    """Posts for the store: PlannedPost has the fields of ``bot.store.NewPost`` (handlers import no bot/)."""
    return list(planned)


def _reply(library: Library, template: str, reply: Reply, **context) -> Reply:
    text = library.render(template, lang=reply.language, reply=reply, **context)
    return reply.model_copy(update={"text": text})


def _status_line(cal: ChinaCalendar, today: dt.date, due: dt.date, lang: Language = "en") -> str:
    left = cal.working_days_between(today, due)
    if due == today:
        return t("status.due_today", lang)
    if due < today:
        return t("status.passed_on", lang, day=format_day(due, lang))
    return tn("status.working_days_from_today", left, lang, today=format_day(today, lang))


def _when(at: dt.datetime, tz: str, lang: Language = "en") -> str:
    return format_day(at.astimezone(ZoneInfo(tz)), lang)


def _topic_name(library: Library, topic_id: str, lang: Language) -> str:
    """A tracked or subscribed topic's title in ``lang`` (``all`` for every dated event; the id if it is gone)."""
    if topic_id == ALL:
        return t("all_dated_events", lang)
    topic = library.topics.get(topic_id)
    return topic.title_in(lang) if topic else topic_id


def _event_title(library: Library, payload: dict, lang: Language) -> str:
    """A scheduled event post's title in ``lang``: the event's, if the packs still have it."""
    topic = library.topics.get(payload.get("topic", ""))
    event = next((e for e in topic.events if e.id == payload.get("event")), None) if topic else None
    return event.title_in(lang) if event else payload.get("title", "")


@router.subcommand(
    "/china-filing", "remind", usage="/china-filing remind <filing> from YYYY-MM-DD [note]",
    summary="track a deadline in this channel, with reminders before it falls due",
    changes_state=True,
)
async def remind(request: Request, desk: Desk, args: str) -> Reply:
    store, channel = _context(request, desk)
    lang = request.answer_language()
    if not args:
        raise UsageError(msg("remind_usage"))
    match = _REMIND.match(args)
    if match:
        name, when, note = match["topic"].strip(), match["date"], (match["note"] or "").strip()
    else:
        loose = _FROM_ANY.match(args)
        if loose is None or not loose["topic"].strip():
            topic = resolve(desk.library, args, ("filing",), "/china-filing")  # a bare name: say what is missing
            raise UsageError(msg("remind_which_date", topic=topic.id))
        name, rest = loose["topic"].strip(), loose["rest"].strip()
        when, _, note = rest.partition(" ")
    topic = resolve(desk.library, name, ("filing",), "/china-filing")
    rule = topic.deadline
    title = Both(topic.title, topic.title_zh)
    if rule is None:
        raise UsageError(msg("remind_no_deadline", title=title, command=topic_command(topic)))
    if rule.unit == "hours":
        raise UsageError(msg("remind_hours", title=title, amount=rule.amount, command=topic_command(topic),
                             counted_from=Both(rule.counted_from, rule.counted_from_zh)))
    tz = await _channel_tz(request, desk)
    now = request.now.astimezone(dt.UTC)
    today = now.astimezone(ZoneInfo(tz)).date()
    start = parse_start(when, tz, today)
    computed = deadline_reply(desk.library, topic, start, today=today, cal=desk.calendar, lang=lang)
    assert computed.deadline is not None
    due_value = computed.deadline.due
    due = due_value.date() if isinstance(due_value, dt.datetime) else due_value
    if now >= day_end(due, tz):
        counted = f"{start:%Y-%m-%d}"
        raise UsageError(msg("remind_deadline_passed", title=Both(topic.title, topic.title_zh), start=counted,
                             day=Day(due), command=f"{topic_command(topic)} from {counted}"))
    start_text = start.isoformat()
    clean_note = note.strip()[:NOTE_MAX] or None
    planned = deadline_posts(desk.calendar, topic=topic, start=start_text, due=due, tz=tz, note=clean_note, now=now)
    tracked = await store.add_tracked(
        platform=request.platform, workspace=request.workspace, channel=channel, topic=topic.id, start=start_text,
        due=due, note=clean_note, created_by=request.user, posts=_new_posts(planned), now=now,
    )
    schedule = [
        ReplyStep(
            label=offset_label(p.payload["offset"], lang),
            text=_when(p.due_at, tz, lang) + (t("already_passed_skipped", lang) if p.status == "skipped" else ""),
            date=p.due_at.astimezone(ZoneInfo(tz)).date(),
        )
        for p in planned
    ]
    estimate = t("estimate_mark", lang) if computed.deadline.estimate else ""
    fields = [
        ReplyField(label=t("field.tracked_as", lang), value=tracked.ref),
        ReplyField(label=t("field.due", lang), value=format_day(due, lang) + estimate),
        ReplyField(label=t("field.status", lang), value=_status_line(desk.calendar, today, due, lang)),
        ReplyField(label=t("field.rule", lang), value=computed.deadline.rule),
        ReplyField(label=t("field.time_zone", lang), value=tz),
    ]
    if clean_note:
        fields.append(ReplyField(label=t("field.note", lang), value=echo(clean_note, NOTE_MAX)))
    caveats = list(computed.caveats)
    reply = Reply(
        kind="reminder",
        title=t("reminders_set_title", lang, title=topic.title_in(lang), day=format_day(due, lang)),
        text="",
        summary=computed.summary,
        topic=topic.id,
        fields=fields,
        steps=schedule,
        deadline=computed.deadline,
        sources=computed.sources,
        caveats=caveats,
        related=["/china-filing reminders", f"/china-filing cancel {tracked.ref}"],
        ephemeral=False,
        language=lang,
    )
    return _reply(desk.library, "reminder_set", reply, ref=tracked.ref, tz=tz, time=REMINDER_TIME.strftime("%H:%M"))


@router.subcommand(
    "/china-filing", "reminders", usage="/china-filing reminders",
    summary="list this channel's tracked deadlines and subscriptions, with their ids",
)
async def list_reminders(request: Request, desk: Desk, args: str) -> Reply:
    store, channel = _context(request, desk)
    lang = request.answer_language()
    tz = await _channel_tz(request, desk)
    today = request.now.astimezone(ZoneInfo(tz)).date()
    tracked = await store.list_tracked(request.platform, channel=channel)
    subs = await store.list_subscriptions(request.platform, channel=channel)
    pending = await store.list_posts(request.platform, channel, status="pending")
    paused_posts = await store.list_posts(request.platform, channel, status="paused")
    next_for: dict[tuple[str, int], dt.datetime] = {}
    for p in [*pending, *paused_posts]:
        key = ("d", p.deadline_id) if p.deadline_id is not None else ("s", p.subscription_id)
        if key not in next_for or p.due_at < next_for[key]:
            next_for[key] = p.due_at

    def title(topic_id: str) -> str:
        return _topic_name(desk.library, topic_id, lang)

    deadline_lines = []
    for d in tracked:
        line = t("list_deadline_line", lang, ref=d.ref, title=title(d.topic), day=format_day(d.due, lang),
                 status=_status_line(desk.calendar, today, d.due, lang))
        nxt = next_for.get(("d", d.id))
        line += t("list_next_reminder", lang, when=_when(nxt, tz, lang)) if nxt else t("list_no_reminders_left", lang)
        if d.note:
            line += t("list_note", lang, note=echo(d.note))
        if d.status == "paused":
            line += t("list_paused", lang, reason=d.paused_reason)
        deadline_lines.append(line)
    sub_lines = []
    for s in subs:
        line = t("list_subscription_line", lang, ref=s.ref, title=title(s.topic))
        nxt = next_for.get(("s", s.id))
        line += t("list_next_post", lang, when=_when(nxt, tz, lang)) if nxt else t("list_nothing_next_year", lang)
        if s.status == "paused":
            line += t("list_paused", lang, reason=s.paused_reason)
        sub_lines.append(line)
    fields = []
    if deadline_lines:
        fields.append(ReplyField(label=t("tracked_deadlines", lang), value="\n".join(deadline_lines)))
    if sub_lines:
        fields.append(ReplyField(label=t("subscriptions", lang), value="\n".join(sub_lines)))
    reply = Reply(
        kind="reminder",
        title=t("reminders_title", lang),
        text="",
        summary="" if fields else t("reminders_empty", lang),
        fields=fields,
        related=["/china-filing remind <filing> from YYYY-MM-DD", "/china-filing subscribe <topic|all>"],
        language=lang,
    )
    return _reply(desk.library, "reminder_list", reply, tz=tz, empty=not fields)


@router.subcommand(
    "/china-filing", "cancel", usage="/china-filing cancel <id>",
    summary="stop a tracked deadline (D12) or subscription (S3) in this channel",
    changes_state=True,
)
async def cancel(request: Request, desk: Desk, args: str) -> Reply:
    store, channel = _context(request, desk)
    lang = request.answer_language()
    match = _REF.match(args.strip())
    if match is None:
        raise UsageError(msg("cancel_usage"))
    kind, item = match["kind"].casefold(), int(match["id"])
    done = None
    if kind in ("d", ""):
        d = await store.get_tracked(item)
        if d is not None and d.channel == channel and d.platform == request.platform:
            if kind == "" and (s := await store.get_subscription(item)) and s.channel == channel:
                raise UsageError(msg("cancel_ambiguous", n=item))
            await store.delete_tracked(request.platform, channel, item)
            done = t("cancelled_deadline", lang, ref=d.ref, title=_topic_name(desk.library, d.topic, lang),
                     day=format_day(d.due, lang))
    if done is None and kind in ("s", ""):
        s = await store.get_subscription(item)
        if s is not None and s.channel == channel and s.platform == request.platform:
            await store.delete_subscription(request.platform, channel, item)
            await _rematerialise_channel(request, desk)
            done = t("cancelled_subscription", lang, ref=s.ref,
                     title=t("all_dated_events", lang) if s.topic == ALL else s.topic)
    if done is None:
        raise UsageError(msg("cancel_not_found", ref=echo(args.strip(), 20)))
    reply = Reply(kind="reminder", title=t("cancelled_title", lang), text="", summary=done,
                  related=["/china-filing reminders"], language=lang)
    return _reply(desk.library, "reminder_notice", reply)


@router.subcommand(
    "/china-filing", "timezone", usage="/china-filing timezone <Area/City>",
    summary="set the time zone this channel's reminders use (default Asia/Shanghai)",
    changes_state=True,
)
async def timezone(request: Request, desk: Desk, args: str) -> Reply:
    store, channel = _context(request, desk)
    lang = request.answer_language()
    if not args.strip():
        tz = await _channel_tz(request, desk)
        reply = Reply(kind="reminder", title=t("timezone_title", lang, tz=tz), text="",
                      summary=t("timezone_current", lang, tz=tz), language=lang)
        return _reply(desk.library, "reminder_notice", reply)
    tz = parse_timezone(args)
    await store.set_channel_timezone(request.platform, request.workspace, channel, tz)
    now = request.now.astimezone(dt.UTC)
    moved = 0
    for d in await store.list_tracked(request.platform, channel=channel):
        topic = desk.library.topics.get(d.topic)
        if topic is None:
            continue
        planned = deadline_posts(desk.calendar, topic=topic, start=d.start, due=d.due, tz=tz, note=d.note, now=now)
        moved += await store.reschedule_tracked(d.id, _new_posts(planned), now=now)
    await _rematerialise_channel(request, desk, drop_pending=True)
    summary = t("timezone_set", lang, tz=tz)
    if moved:
        summary += tn("timezone_moved", moved, lang)
    reply = Reply(kind="reminder", title=t("timezone_set_title", lang, tz=tz), text="", summary=summary,
                  related=["/china-filing reminders"], language=lang)
    return _reply(desk.library, "reminder_notice", reply)


@router.subcommand(
    "/china-filing", "subscribe", usage="/china-filing subscribe <topic|all>",
    summary="post a topic's dated events (rules taking effect, 618, Double 11...) here ahead of time",
    changes_state=True,
)
async def subscribe(request: Request, desk: Desk, args: str) -> Reply:
    store, channel = _context(request, desk)
    lang = request.answer_language()
    topic_id = _subscription_topic(desk.library, args)
    tz = await _channel_tz(request, desk)
    now = request.now.astimezone(dt.UTC)
    sub, created = await store.add_subscription(
        platform=request.platform, workspace=request.workspace, channel=channel, topic=topic_id,
        created_by=request.user, now=now,
    )
    await materialise_subscription(desk.library, store, sub, tz=tz, now=now)
    upcoming = [p for p in await store.list_posts(request.platform, channel, status="pending")
                if p.kind == "event" and (topic_id == ALL or p.payload.get("topic") == topic_id)]
    what = t("every_dated_event", lang) if topic_id == ALL else desk.library.topics[topic_id].title_in(lang)
    steps = [
        ReplyStep(label=_event_title(desk.library, p.payload, lang),
                  text=t("subscribed_step", lang, when=_when(p.due_at, tz, lang),
                         days=tn("n_days", p.payload["lead"], lang)),
                  date=p.due_at.astimezone(ZoneInfo(tz)).date())
        for p in upcoming[:6]
    ]
    state = t("subscribed" if created else "already_subscribed", lang)
    summary = t("subscribed_summary", lang, state=state, ref=sub.ref, what=what, tz=tz)
    reply = Reply(
        kind="reminder", title=t("subscribed_title", lang, what=what), text="", summary=summary,
        topic=None if topic_id == ALL else topic_id,
        steps=steps, related=["/china-filing reminders", f"/china-filing unsubscribe {topic_id}"], ephemeral=False,
        language=lang,
    )
    return _reply(desk.library, "reminder_subscribed", reply, upcoming=len(upcoming), topic_id=topic_id)


@router.subcommand(
    "/china-filing", "unsubscribe", usage="/china-filing unsubscribe <topic|all>",
    summary="stop posting a topic's dated events here",
    changes_state=True,
)
async def unsubscribe(request: Request, desk: Desk, args: str) -> Reply:
    store, channel = _context(request, desk)
    lang = request.answer_language()
    subs = await store.list_subscriptions(request.platform, channel=channel)
    if not args.strip():
        if len(subs) != 1:
            listed = ", ".join(f"`{s.topic}`" for s in subs) or msg("none")
            raise UsageError(msg("unsubscribe_what", listed=listed))
        topic_id = subs[0].topic
    else:
        match = _REF.match(args.strip())
        by_ref = [s for s in subs if match and match["kind"].casefold() in ("s", "") and s.id == int(match["id"])]
        topic_id = by_ref[0].topic if by_ref else _subscription_topic(desk.library, args, need_events=False)
    found = [s for s in subs if s.topic == topic_id]
    if not found:
        raise UsageError(msg("not_subscribed", topic=echo(topic_id, 40)))
    for s in found:
        await store.delete_subscription(request.platform, channel, s.id)
    await _rematerialise_channel(request, desk)
    what = _topic_name(desk.library, topic_id, lang)
    reply = Reply(kind="reminder", title=t("unsubscribed_title", lang, what=what), text="",
                  summary=t("unsubscribed_summary", lang, what=what), related=["/china-filing reminders"],
                  language=lang)
    return _reply(desk.library, "reminder_notice", reply)


def _subscription_topic(library: Library, args: str, *, need_events: bool = True) -> str:
    text = args.strip()
    if not text:
        raise UsageError(msg("subscribe_usage"))
    if text.casefold() in (ALL, "everything", "*"):
        return ALL
    topic = resolve(library, text, ("filing", "calendar", "sector", "platform"), "/china-filing subscribe")
    if need_events and not topic.events:
        with_events = sorted(found.id for found in library.topics.values() if found.events)
        raise UsageError(
            msg("no_events", title=Both(topic.title, topic.title_zh), topics=", ".join(with_events)),
            suggestions=[f"/china-filing subscribe {topic_id}" for topic_id in with_events[:3]],
        )
    return topic.id


async def materialise_subscription(library: Library, store, sub, *, tz: str, now: dt.datetime) -> int:
    """Schedule a subscription's event posts from ``now`` to the horizon (existing keys are left alone)."""
    end = now + EVENT_HORIZON
    planned = event_posts(library, platform=sub.platform, channel=sub.channel, topic=sub.topic, tz=tz, start=now,
                          end=end)
    return await store.add_subscription_posts(sub.id, _new_posts(planned), end, now=now)


async def _rematerialise_channel(request: Request, desk: Desk, *, drop_pending: bool = False) -> None:
    """Re-plan the channel's subscriptions: after an unsubscribe (posts shared by key may have gone with
    it) or a time-zone change (``drop_pending``: pending event posts move to the new 09:00)."""
    store, channel = _context(request, desk)
    tz = await _channel_tz(request, desk)
    now = request.now.astimezone(dt.UTC)
    for sub in await store.list_subscriptions(request.platform, channel=channel):
        if drop_pending:
            await store.delete_pending_posts(subscription_id=sub.id)
        await materialise_subscription(desk.library, store, sub, tz=tz, now=now)
