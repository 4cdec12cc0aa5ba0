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
from content.loader import Library, format_day
from content.schema import DatedEvent, Topic
from handlers.cards import SourceList, caveats_for, resolve, topic_command
from handlers.filing import EARLIEST, UNIT_WORDS, deadline_reply, parse_start
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

NEEDS_CHANNEL = (
    "Reminders need a channel: use this in Slack/Teams or `chinadesk ask ... --channel C`."
)
NEEDS_STORE = (
    "Reminders need storage, and this deployment has none configured (set DATABASE_URL, or run "
    "`chinadesk ask ... --channel C`, which uses the default SQLite file)."
)

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


def offset_label(offset: int) -> str:
    if offset == 0:
        return "on the due day"
    return f"{offset} working day{'s' if offset != 1 else ''} before"


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
    return [(t, e) for t in topics for e in t.events]


def event_posts(
    library: Library, *, platform: str, channel: str, topic: str, tz: str, start: dt.datetime, end: dt.datetime,
) -> list[PlannedPost]:
    """Posts for ``topic``'s events whose post time falls in ``[start, end)``.

    The key is (channel, event, occurrence, lead), so re-materialising, or being subscribed to the same
    event twice (``all`` and the topic itself), never schedules a post twice.
    """
    out = []
    for t, event in events_of(library, topic):
        leads = sorted(set(event.lead_days), reverse=True)
        first = (start.date() - dt.timedelta(days=1))
        last = end.date() + dt.timedelta(days=max(leads, default=0) + 1)
        for day in event.occurrences(max(first, EARLIEST), last):
            for lead in leads:
                at = local_instant(day - dt.timedelta(days=lead), tz)
                if not start <= at < end:
                    continue
                payload = {
                    "topic": t.id, "event": event.id, "title": event.title, "date": day.isoformat(), "lead": lead,
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
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UserError(
            f"I don't know the time zone “{echo(raw, 40)}”. Use an IANA name such as Europe/London, "
            f"Asia/Shanghai or America/New_York.{hint}"
        )
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # listed but without data on this system
        raise UserError(f"The time zone {name} is not available on this server.") from None
    return name


# ------------------------------------------------------------------------------------ handlers


def _context(request: Request, desk: Desk) -> tuple[object, str]:
    if desk.store is None:
        raise NotAvailableError(NEEDS_STORE)
    if not request.channel:
        raise NotAvailableError(NEEDS_CHANNEL)
    return desk.store, request.channel


async def _channel_tz(request: Request, desk: Desk) -> str:
    store, channel = _context(request, desk)
    settings = await store.get_channel_settings(request.platform, channel)
    return settings.timezone or DEFAULT_TIMEZONE


def _new_posts(planned: Sequence[PlannedPost]) -> list[PlannedPost]:
    """Posts for the store: PlannedPost has the fields of ``bot.store.NewPost`` (handlers import no bot/)."""
    return list(planned)


def _reply(library: Library, template: str, reply: Reply, **context) -> Reply:
    return reply.model_copy(update={"text": library.render(template, reply=reply, **context)})


def _status_line(cal: ChinaCalendar, today: dt.date, due: dt.date) -> str:
    left = cal.working_days_between(today, due)
    if due == today:
        return "due today"
    if due < today:
        return f"passed {format_day(due)}"
    return f"{left} working day{'s' if left != 1 else ''} from today ({format_day(today)})"


def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def _when(at: dt.datetime, tz: str) -> str:
    return format_day(at.astimezone(ZoneInfo(tz)))


@router.subcommand(
    "/china-filing", "remind", usage="/china-filing remind <filing> from YYYY-MM-DD [note]",
    summary="track a deadline in this channel, with reminders before it falls due",
    changes_state=True,
)
async def remind(request: Request, desk: Desk, args: str) -> Reply:
    store, channel = _context(request, desk)
    if not args:
        raise UsageError(
            "Which filing, and from when? e.g. `/china-filing remind facial-recognition from 2025-09-20 board pack`."
        )
    match = _REMIND.match(args)
    if match:
        name, when, note = match["topic"].strip(), match["date"], (match["note"] or "").strip()
    else:
        loose = _FROM_ANY.match(args)
        if loose is None or not loose["topic"].strip():
            topic = resolve(desk.library, args, ("filing",), "/china-filing")  # a bare name: say what is missing
            raise UsageError(
                f"From which date? e.g. `/china-filing remind {topic.id} from 2025-09-20`."
            )
        name, rest = loose["topic"].strip(), loose["rest"].strip()
        when, _, note = rest.partition(" ")
    topic = resolve(desk.library, name, ("filing",), "/china-filing")
    rule = topic.deadline
    if rule is None:
        raise UsageError(
            f"{topic.title} has no fixed deadline to count from a date, so there is nothing to remind about. "
            f"`{topic_command(topic)}` shows what the rules do say."
        )
    if rule.unit == "hours":
        raise UsageError(
            f"{topic.title} is due within {rule.amount} hours of {rule.counted_from}: too soon for scheduled "
            f"reminders. `{topic_command(topic)} from <date and time>` shows the exact time."
        )
    tz = await _channel_tz(request, desk)
    now = request.now.astimezone(dt.UTC)
    today = now.astimezone(ZoneInfo(tz)).date()
    start = parse_start(when, tz, today)
    computed = deadline_reply(desk.library, topic, start, today=today, cal=desk.calendar)
    assert computed.deadline is not None
    due_value = computed.deadline.due
    due = due_value.date() if isinstance(due_value, dt.datetime) else due_value
    if now >= day_end(due, tz):
        raise UsageError(
            f"{topic.title}: counted from {start:%Y-%m-%d}, that deadline passed on {format_day(due)}, so there "
            f"is nothing to remind this channel about and I have not tracked it. "
            f"`{topic_command(topic)} from {start:%Y-%m-%d}` shows how it was counted."
        )
    start_text = start.isoformat()
    clean_note = note.strip()[:NOTE_MAX] or None
    planned = deadline_posts(desk.calendar, topic=topic, start=start_text, due=due, tz=tz, note=clean_note, now=now)
    tracked = await store.add_tracked(
        platform=request.platform, workspace=request.workspace, channel=channel, topic=topic.id, start=start_text,
        due=due, note=clean_note, created_by=request.user, posts=_new_posts(planned), now=now,
    )
    schedule = [
        ReplyStep(
            label=p.payload["label"],
            text=_when(p.due_at, tz) + (" (already passed, skipped)" if p.status == "skipped" else ""),
            date=p.due_at.astimezone(ZoneInfo(tz)).date(),
        )
        for p in planned
    ]
    fields = [
        ReplyField(label="Tracked as", value=tracked.ref),
        ReplyField(label="Due", value=format_day(due) + (" (estimate)" if computed.deadline.estimate else "")),
        ReplyField(label="Status", value=_status_line(desk.calendar, today, due)),
        ReplyField(label="Rule", value=computed.deadline.rule),
        ReplyField(label="Time zone", value=tz),
    ]
    if clean_note:
        fields.append(ReplyField(label="Note", value=echo(clean_note, NOTE_MAX)))
    caveats = list(computed.caveats)
    reply = Reply(
        kind="reminder",
        title=f"Reminders set: {topic.title}, due {format_day(due)}",
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
    )
    return _reply(desk.library, "reminder_set", reply, ref=tracked.ref, tz=tz, time=REMINDER_TIME.strftime("%H:%M"))


@router.subcommand(
    "/china-filing", "reminders", usage="/china-filing reminders",
    summary="list this channel's tracked deadlines and subscriptions, with their ids",
)
async def list_reminders(request: Request, desk: Desk, args: str) -> Reply:
    store, channel = _context(request, desk)
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
        if topic_id == ALL:
            return "all dated events"
        topic = desk.library.topics.get(topic_id)
        return topic.title if topic else topic_id

    deadline_lines = []
    for d in tracked:
        line = f"{d.ref}: {title(d.topic)}, due {format_day(d.due)} ({_status_line(desk.calendar, today, d.due)})"
        nxt = next_for.get(("d", d.id))
        line += f"; next reminder {_when(nxt, tz)}" if nxt else "; no reminders left"
        if d.note:
            line += f"; note: {echo(d.note)}"
        if d.status == "paused":
            line += f" [PAUSED: {d.paused_reason}]"
        deadline_lines.append(line)
    sub_lines = []
    for s in subs:
        line = f"{s.ref}: {title(s.topic)}"
        nxt = next_for.get(("s", s.id))
        line += f"; next post {_when(nxt, tz)}" if nxt else "; nothing scheduled in the next year"
        if s.status == "paused":
            line += f" [PAUSED: {s.paused_reason}]"
        sub_lines.append(line)
    fields = []
    if deadline_lines:
        fields.append(ReplyField(label="Tracked deadlines", value="\n".join(deadline_lines)))
    if sub_lines:
        fields.append(ReplyField(label="Subscriptions", value="\n".join(sub_lines)))
    reply = Reply(
        kind="reminder",
        title="Reminders in this channel",
        text="",
        summary="" if fields else "Nothing is tracked in this channel yet.",
        fields=fields,
        related=["/china-filing remind <filing> from YYYY-MM-DD", "/china-filing subscribe <topic|all>"],
    )
    return _reply(desk.library, "reminder_list", reply, tz=tz, empty=not fields)


@router.subcommand(
    "/china-filing", "cancel", usage="/china-filing cancel <id>",
    summary="stop a tracked deadline (D12) or subscription (S3) in this channel",
    changes_state=True,
)
async def cancel(request: Request, desk: Desk, args: str) -> Reply:
    store, channel = _context(request, desk)
    match = _REF.match(args.strip())
    if match is None:
        raise UsageError(
            "Which one? Give its id from `/china-filing reminders`, e.g. `/china-filing cancel D12`."
        )
    kind, item = match["kind"].casefold(), int(match["id"])
    done = None
    if kind in ("d", ""):
        d = await store.get_tracked(item)
        if d is not None and d.channel == channel and d.platform == request.platform:
            if kind == "" and (s := await store.get_subscription(item)) and s.channel == channel:
                raise UsageError(
                    f"Both D{item} and S{item} exist here: say which, e.g. `/china-filing cancel D{item}`."
                )
            await store.delete_tracked(request.platform, channel, item)
            topic = desk.library.topics.get(d.topic)
            done = f"Stopped tracking {d.ref}: {topic.title if topic else d.topic}, due {format_day(d.due)}."
    if done is None and kind in ("s", ""):
        s = await store.get_subscription(item)
        if s is not None and s.channel == channel and s.platform == request.platform:
            await store.delete_subscription(request.platform, channel, item)
            await _rematerialise_channel(request, desk)
            done = f"Cancelled subscription {s.ref} ({'all dated events' if s.topic == ALL else s.topic})."
    if done is None:
        raise UsageError(
            f"There is no reminder {echo(args.strip(), 20)} in this channel. `/china-filing reminders` lists them."
        )
    reply = Reply(kind="reminder", title="Cancelled", text="", summary=done, related=["/china-filing reminders"])
    return _reply(desk.library, "reminder_notice", reply)


@router.subcommand(
    "/china-filing", "timezone", usage="/china-filing timezone <Area/City>",
    summary="set the time zone this channel's reminders use (default Asia/Shanghai)",
    changes_state=True,
)
async def timezone(request: Request, desk: Desk, args: str) -> Reply:
    store, channel = _context(request, desk)
    if not args.strip():
        tz = await _channel_tz(request, desk)
        summary = (
            f"This channel's reminders are posted at 09:00 {tz}. "
            "Change it with `/china-filing timezone Europe/London`."
        )
        reply = Reply(kind="reminder", title=f"Time zone: {tz}", text="", summary=summary)
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
    summary = f"Reminders in this channel are now posted at 09:00 {tz}."
    if moved:
        summary += f" {moved} upcoming reminder{'s' if moved != 1 else ''} moved to the new time."
    reply = Reply(kind="reminder", title=f"Time zone set: {tz}", text="", summary=summary,
                  related=["/china-filing reminders"])
    return _reply(desk.library, "reminder_notice", reply)


@router.subcommand(
    "/china-filing", "subscribe", usage="/china-filing subscribe <topic|all>",
    summary="post a topic's dated events (rules taking effect, 618, Double 11...) here ahead of time",
    changes_state=True,
)
async def subscribe(request: Request, desk: Desk, args: str) -> Reply:
    store, channel = _context(request, desk)
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
    what = "every dated event in the content packs" if topic_id == ALL else desk.library.topics[topic_id].title
    steps = [
        ReplyStep(label=p.payload["title"], text=f"{_when(p.due_at, tz)} ({_days(p.payload['lead'])} ahead)",
                  date=p.due_at.astimezone(ZoneInfo(tz)).date())
        for p in upcoming[:6]
    ]
    summary = (
        f"{'Subscribed' if created else 'Already subscribed'} ({sub.ref}): I'll post {what} in this channel ahead "
        f"of time, at 09:00 {tz}."
    )
    reply = Reply(
        kind="reminder", title=f"Subscribed: {what}", text="", summary=summary,
        topic=None if topic_id == ALL else topic_id,
        steps=steps, related=["/china-filing reminders", f"/china-filing unsubscribe {topic_id}"], ephemeral=False,
    )
    return _reply(desk.library, "reminder_subscribed", reply, upcoming=len(upcoming))


@router.subcommand(
    "/china-filing", "unsubscribe", usage="/china-filing unsubscribe <topic|all>",
    summary="stop posting a topic's dated events here",
    changes_state=True,
)
async def unsubscribe(request: Request, desk: Desk, args: str) -> Reply:
    store, channel = _context(request, desk)
    subs = await store.list_subscriptions(request.platform, channel=channel)
    if not args.strip():
        if len(subs) != 1:
            listed = ", ".join(f"`{s.topic}`" for s in subs) or "none"
            raise UsageError(f"Unsubscribe from what? This channel's subscriptions: {listed}.")
        topic_id = subs[0].topic
    else:
        match = _REF.match(args.strip())
        by_ref = [s for s in subs if match and match["kind"].casefold() in ("s", "") and s.id == int(match["id"])]
        topic_id = by_ref[0].topic if by_ref else _subscription_topic(desk.library, args, need_events=False)
    found = [s for s in subs if s.topic == topic_id]
    if not found:
        raise UsageError(f"This channel is not subscribed to {echo(topic_id, 40)}. `/china-filing reminders` lists it.")
    for s in found:
        await store.delete_subscription(request.platform, channel, s.id)
    await _rematerialise_channel(request, desk)
    what = "all dated events" if topic_id == ALL else desk.library.topics[topic_id].title
    reply = Reply(kind="reminder", title=f"Unsubscribed: {what}", text="",
                  summary=f"I'll no longer post {what} in this channel.", related=["/china-filing reminders"])
    return _reply(desk.library, "reminder_notice", reply)


def _subscription_topic(library: Library, args: str, *, need_events: bool = True) -> str:
    text = args.strip()
    if not text:
        raise UsageError("Subscribe to what? e.g. `/china-filing subscribe 618` or `/china-filing subscribe all`.")
    if text.casefold() in (ALL, "everything", "*"):
        return ALL
    topic = resolve(library, text, ("filing", "calendar", "sector", "platform"), "/china-filing subscribe")
    if need_events and not topic.events:
        with_events = sorted(t.id for t in library.topics.values() if t.events)
        raise UsageError(
            f"{topic.title} has no dated events to post. Topics with events: {', '.join(with_events)} (or `all`).",
            suggestions=[f"/china-filing subscribe {t}" for t in with_events[:3]],
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


# ---------------------------------------------------------------------------------- the posts


def render_post(desk: Desk, post, *, now: dt.datetime, late: bool) -> Reply:
    """What a due post says (``post`` is a ``bot.store.ScheduledPost``); called by the scheduler."""
    if post.kind == "deadline":
        return _deadline_post(desk, post, now=now, late=late)
    return _event_post(desk, post, now=now, late=late)


def _next_step(topic: Topic, sources: SourceList, offset: int, due: dt.date) -> ReplyStep:
    documents = topic.sections.get("documents", [])
    if offset >= 5 and documents:
        return ReplyStep(label="Next step", text=f"Prepare the filing documents: {sources.cite(documents[0])}")
    fact = topic.deadline.fact if topic.deadline else topic.summary
    return ReplyStep(label="Next step", text=f"File by {format_day(due)}: {sources.cite(fact)}", date=due)


def _deadline_post(desk: Desk, post, *, now: dt.datetime, late: bool) -> Reply:
    p = post.payload
    tz = p.get("tz") or DEFAULT_TIMEZONE
    due = dt.date.fromisoformat(p["due"])
    today = now.astimezone(ZoneInfo(tz)).date()
    left = desk.calendar.working_days_between(today, due)
    topic = desk.library.topics.get(p["topic"])
    title = topic.title if topic else p.get("title", p["topic"])
    ref = f"D{post.deadline_id}"
    when = "today" if due == today else f"in {left} working day{'s' if left != 1 else ''}"
    fields = [
        ReplyField(label="What is due", value=title),
        ReplyField(label="When", value=format_day(due)),
        ReplyField(label="Working days left", value="0 (due today)" if due == today else str(left)),
    ]
    steps: list[ReplyStep] = []
    sources: list = []
    caveats: list[str] = []
    summary = f"{title} is due {format_day(due)}, {when}."
    if topic is not None and topic.deadline is not None:
        cite = SourceList(desk.library, topic)
        rule = topic.deadline
        rule_text = f"{rule.amount} {UNIT_WORDS[rule.unit]} from {rule.counted_from}"
        fields.insert(1, ReplyField(label="Rule", value=rule_text))
        summary += " " + cite.cite(rule.fact)  # cited first, so the rule's source is [1]
        steps.append(_next_step(topic, cite, int(p.get("offset", 0)), due))
        steps += [ReplyStep(label=s.name, text=cite.cite(s.fact)) for s in topic.follow_on[:1]]
        sources = cite.refs
        caveats = caveats_for([rule.fact], regulatory=True, today=today)
    if p.get("note"):
        fields.append(ReplyField(label="Note", value=echo(p["note"], NOTE_MAX)))
    fields.append(ReplyField(label="Tracked as", value=f"{ref} (started {p.get('start', '?')})"))
    if late:
        scheduled = _when(post.due_at, tz)
        caveats.insert(0, f"Late: this reminder was due {scheduled}, but I was offline then.")
    reply = Reply(
        kind="reminder",
        title=("Late reminder: " if late else "Reminder: ") + f"{title} due {format_day(due)}",
        text="",
        summary=summary,
        topic=p["topic"],
        fields=fields,
        steps=steps,
        sources=sources,
        caveats=caveats,
        related=[f"/china-filing cancel {ref}"] + ([topic_command(topic)] if topic else []),
        ephemeral=False,
    )
    return _reply(desk.library, "reminder", reply, late=late, label=p.get("label", ""), ref=ref)


def _event_post(desk: Desk, post, *, now: dt.datetime, late: bool) -> Reply:
    p = post.payload
    tz = p.get("tz") or DEFAULT_TIMEZONE
    day = dt.date.fromisoformat(p["date"])
    today = now.astimezone(ZoneInfo(tz)).date()
    days = (day - today).days
    working = desk.calendar.working_days_between(today, day)
    topic = desk.library.topics.get(p["topic"])
    event = next((e for e in topic.events if e.id == p["event"]), None) if topic else None
    ref = f"S{post.subscription_id}"
    fields = [
        ReplyField(label="What", value=p["title"]),
        ReplyField(label="When", value=format_day(day)),
        ReplyField(label="Time left", value="today" if days == 0 else
                   f"{days} day{'s' if days != 1 else ''} ({working} working day{'s' if working != 1 else ''})"),
    ]
    steps: list[ReplyStep] = []
    sources: list = []
    summary = f"{p['title']}: {format_day(day)}, {'today' if days == 0 else f'in {days} days'}."
    caveats: list[str] = []
    if topic is not None and event is not None:
        cite = SourceList(desk.library, topic)
        summary += " " + cite.cite(event.fact)
        prep = topic.sections.get("preparation", [])
        if prep:
            step = cite.cite(prep[0])
        else:
            step = f"Check what it means for you: `{topic_command(topic)}` has the full briefing."
        steps.append(ReplyStep(label="Next step", text=step))
        sources = cite.refs
        caveats = caveats_for([event.fact], regulatory=topic.kind == "filing", today=today)
    if late:
        caveats.insert(0, f"Late: this was due to be posted {_when(post.due_at, tz)}, but I was offline then.")
    reply = Reply(
        kind="reminder",
        title=("Late: " if late else "Coming up: ") + f"{p['title']} on {format_day(day)}",
        text="",
        summary=summary,
        topic=p["topic"],
        fields=fields,
        steps=steps,
        sources=sources,
        caveats=caveats,
        related=[f"/china-filing unsubscribe {ref}"] + ([topic_command(topic)] if topic else []),
        ephemeral=False,
    )
    return _reply(desk.library, "reminder_event", reply, late=late, ref=ref)
