"""Block Kit rendering of a :class:`~handlers.request.Reply` (Slack messages) and of the App Home view.

Everything here is presentation: the Reply already holds the advice. Rules this module keeps:

* **Escaping.** Every string taken from a Reply is escaped for mrkdwn (``&``, ``<``, ``>``) before any
  markup of ours (links, bold) is put around it. The escaping is idempotent: user text arrives already
  escaped by :func:`handlers.request.echo`, and escaping ``&lt;`` again would show a literal ``&lt;``.
  So a question containing ``<!channel>`` reaches Slack as ``&lt;!channel&gt;``: shown, never a ping.
* **Limits.** Header plain_text ≤150 characters, section text ≤3000, ≤10 fields a section and ≤2000
  characters each, context ≤10 elements, button text ≤75 and value ≤2000, ≤50 blocks a message (100 in
  a Home tab). A reply that would break one is shortened, with a pointer to the command that shows
  the full card, instead of being rejected by Slack.
* **Validation in the tests, not per call.** Blocks are built as the plain dicts Slack takes. The tests
  round-trip what is rendered through ``slack_sdk.models.blocks`` (:func:`validate_blocks`: the SDK's
  validators, so a limit we forget is a failing test rather than a Slack error) and check that every
  rendered reply is exactly what the SDK's models would send. Building model objects and running their
  validators on every render cost more than the rest of the rendering.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_sdk.models.blocks import (
    Block,
)

from content.i18n import format_day, t
from handlers.request import Reply

if TYPE_CHECKING:  # only for type hints: the renderer never talks to the store
    from bot.store import PausedItem, Subscription, TrackedDeadline

MAX_BLOCKS = 50  # messages
MAX_HOME_BLOCKS = 100  # Home tab and modal views
HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_PER_SECTION = 10
CONTEXT_ELEMENTS_MAX = 10
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
FALLBACK_MAX = 3000  # notification text: Slack accepts more, but nobody reads more in a notification
SHORT_FIELD = 120  # values up to this long go in the two-column field grid; longer ones get a full-width section

# action_ids: bot/slack/listeners.py registers a listener for each (and the manifest test checks them).
ACTION_SHARE = "chinadesk_share"
ACTION_COMMAND = "chinadesk_command"
ACTION_FEEDBACK_UP = "chinadesk_feedback_up"
ACTION_FEEDBACK_DOWN = "chinadesk_feedback_down"
ACTION_IDS = (ACTION_SHARE, ACTION_COMMAND, ACTION_FEEDBACK_UP, ACTION_FEEDBACK_DOWN)

_UNESCAPED_AMP = re.compile(r"&(?!(?:amp|lt|gt);)")


def escape(text: str) -> str:
    """Escape ``& < >`` for Slack, leaving existing ``&amp;``/``&lt;``/``&gt;`` entities alone.

    Idempotent: ``escape(escape(x)) == escape(x)``. Slack decodes only these three entities, so they
    are the only ones we produce or preserve.
    """
    return _UNESCAPED_AMP.sub("&amp;", text).replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, title: str) -> str:
    """A mrkdwn link ``<url|title>`` built from untrusted parts.

    The title is escaped; in the URL, ``|`` and ``>`` would end the link early, so they are
    percent-encoded (``&`` is entity-escaped, which Slack decodes back).
    """
    safe_url = escape(url.strip()).replace("|", "%7C")
    label = escape(title).replace("|", "¦") or safe_url  # "|" in a label is shown, but keep it unambiguous
    if not re.match(r"^(https?|mailto):", url.strip(), re.IGNORECASE):
        return label  # never let content smuggle a slack:// or javascript: link; show the title only
    return f"<{safe_url}|{label}>"


def shorten(text: str, limit: int, marker: str = "…") -> str:
    """``text`` cut to ``limit`` characters (marker included), at a line or word break when one is near.

    Never cuts inside an entity (``&amp;``) or a ``<...>`` link of ours, which would break the markup.
    """
    if len(text) <= limit:
        return text
    room = max(limit - len(marker), 0)
    cut = text[:room]
    # Back off from a half-written entity or link.
    amp, lt = cut.rfind("&"), cut.rfind("<")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    if lt != -1 and ">" not in cut[lt:]:
        cut = cut[:lt]
    for sep in ("\n", " "):
        at = cut.rfind(sep)
        if at >= room * 0.6:
            cut = cut[:at]
            break
    return cut.rstrip() + marker


def split_text(text: str, limit: int) -> list[str]:
    """Split mrkdwn into chunks of at most ``limit`` characters, on line breaks where possible."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:  # one line longer than a whole chunk: hard-wrap it
            if current:
                chunks.append(current)
                current = ""
            head = shorten(line, limit, marker="")
            if not head:  # nothing sensible to cut at: cut anyway
                head = line[:limit]
            chunks.append(head)
            line = line[len(head):].lstrip()
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        chunks.append(current)
    return [c for c in chunks if c.strip()]


# The blocks are built as the dicts Slack takes, not as slack_sdk model objects: building those and
# serialising them again was a third of a card's rendering. The tests check that every rendered message
# is exactly what the SDK's models produce and accept (validate_blocks; the property test in test_fuzz).
Json = dict[str, Any]


def _mrkdwn(text: str) -> Json:
    return {"type": "mrkdwn", "text": text}


def _plain(text: str, *, emoji: bool | None = None) -> Json:
    out: Json = {"type": "plain_text", "text": text}
    if emoji is not None:
        out["emoji"] = emoji
    return out


def _section(text: str) -> Json:
    return {"type": "section", "text": _mrkdwn(text)}


def _context(lines: Sequence[str]) -> Json:
    return {"type": "context",
            "elements": [_mrkdwn(shorten(line, SECTION_MAX)) for line in lines[:CONTEXT_ELEMENTS_MAX]]}


def _header(text: str, *, emoji: bool | None = None) -> Json:
    return {"type": "header", "text": _plain(text, emoji=emoji)}


def _divider() -> Json:
    return {"type": "divider"}


# --------------------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class SlackMessage:
    """What ``chat.postMessage`` / ``respond`` / ``ack`` take: fallback text and the blocks."""

    text: str
    blocks: list[dict[str, Any]]

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


@dataclass(frozen=True)
class FeedbackRef:
    """What a 👍/👎 button must carry so that the click can be stored without any server-side state."""

    topic: str | None
    question: str
    fact: str | None = None  # the fact the answer led with (handlers.feedback.fact_ref), for the editors

    def value(self) -> str:
        payload = {"topic": self.topic, "q": self.question[:1200]}
        if self.fact:
            payload["f"] = self.fact[:200]
        out = _json_value(payload)
        while len(out) > BUTTON_VALUE_MAX:  # escaped or non-ASCII text can still be long after the cut above
            payload["q"] = payload["q"][: len(payload["q"]) * 3 // 4]
            out = _json_value(payload)
        return out

    @classmethod
    def parse(cls, value: str) -> FeedbackRef:
        try:
            data = json.loads(value)
            fact = data.get("f")
            return cls(topic=data.get("topic"), question=str(data.get("q", "")),
                       fact=fact if isinstance(fact, str) and fact else None)
        except (ValueError, AttributeError):
            return cls(topic=None, question="")


def _json_value(payload: dict[str, Any]) -> str:
    """JSON for a button value with ``& < >`` as ``\\u`` escapes: the user's question rides along, and
    even where Slack never renders it, no ``<!channel>`` is ever sent; ``json.loads`` restores it exactly."""
    out = json.dumps(payload, ensure_ascii=False)
    return out.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _truncation_marker(reply: Reply) -> str:
    command = reply.full_card_command()
    lang = reply.language
    return f"… ({t('full_card', lang, command=f'`{escape(command)}`')})" if command else f"… ({t('shortened', lang)})"


def _field_blocks(reply: Reply, marker: str) -> list[Json]:
    blocks: list[Json] = []
    grid: list[Json] = []

    def flush() -> None:
        if grid:
            blocks.append({"type": "section", "fields": list(grid)})
            grid.clear()

    for field in reply.fields:
        label = escape(field.label) + (f" _({t('unverified', reply.language)})_" if field.unverified else "")
        value = escape(field.value)
        if len(value) <= SHORT_FIELD and "\n" not in value:
            grid.append(_mrkdwn(shorten(f"*{label}*\n{value}", FIELD_MAX)))
            if len(grid) == FIELDS_PER_SECTION:
                flush()
            continue
        flush()  # keep the order the content gives: a long field ends the grid before it
        text = f"*{label}*\n{value}"
        chunks = split_text(text, SECTION_MAX)
        if len(chunks) > 2:  # a field this long is a content problem; show the start and point to the card
            chunks = [chunks[0], shorten(chunks[1], SECTION_MAX - len(marker), marker="") + marker]
        blocks.extend(_section(c) for c in chunks)
    flush()
    return blocks


def _deadline_blocks(reply: Reply) -> list[Json]:
    deadline = reply.deadline
    if deadline is None:
        return []
    lang = reply.language
    due = t("due_heading", lang, day=format_day(deadline.due, lang))
    lines = [f":date: *{escape(due)}*" + (f" _({t('estimate', lang)})_" if deadline.estimate else "")]
    lines.append(f"_{escape(deadline.rule)}_")
    if deadline.counted:
        lines.append(f"*{t('how_counted', lang)}*")
        lines.extend(f"• {escape(line)}" for line in deadline.counted)
    return [_section(c) for c in split_text("\n".join(lines), SECTION_MAX)]


def _step_blocks(reply: Reply) -> list[Json]:
    if not reply.steps:
        return []
    lang = reply.language
    lines = [f"*{t('then', lang)}*"]
    for step in reply.steps:
        when = ""
        if step.date is not None:
            when = " — " + escape(t("by_day", lang, day=format_day(step.date, lang)))
            when += t("estimate_mark", lang) if step.estimate else ""
        lines.append(f"• *{escape(step.label)}*{when}: {escape(step.text)}")
    return [_section(c) for c in split_text("\n".join(lines), SECTION_MAX)]


def _checklist_blocks(reply: Reply) -> list[Json]:
    """"Next steps": the numbered checklist that ends a filing card."""
    if not reply.checklist:
        return []
    lines = [f"*{t('next_steps', reply.language)}*"]
    lines += [f"{number}. {escape(step)}" for number, step in enumerate(reply.checklist, start=1)]
    return [_section(c) for c in split_text("\n".join(lines), SECTION_MAX)]


def _source_blocks(reply: Reply) -> list[Json]:
    if not reply.sources:
        return []
    lines = [f"*{t('sources', reply.language)}*"]
    for number, src in enumerate(reply.sources, start=1):
        published = src.published_label or src.published.isoformat()
        lines.append(f"[{number}] {link(src.url, src.title)} ({escape(published)})")
    return [_section(c) for c in split_text("\n".join(lines), SECTION_MAX)]


def _caveat_blocks(reply: Reply) -> list[Json]:
    caveats = [f":warning: {escape(c)}" if i == 0 else escape(c) for i, c in enumerate(reply.caveats)]
    if not caveats:
        return []
    if len(caveats) > CONTEXT_ELEMENTS_MAX:  # fold the tail into the last element
        caveats = [*caveats[: CONTEXT_ELEMENTS_MAX - 1], " ".join(caveats[CONTEXT_ELEMENTS_MAX - 1:])]
    return [_context(caveats)]


def _related_blocks(reply: Reply) -> list[Json]:
    if not reply.related:
        return []
    more = t("more", reply.language)
    return [_context([f"{more}: " + " · ".join(f"`{escape(c)}`" for c in reply.related)])]


def _button(text: str, action_id: str, value: str, *, style: str | None = None) -> Json:
    out: Json = {"type": "button", "text": _plain(shorten(text, BUTTON_TEXT_MAX), emoji=True), "action_id": action_id}
    if value:
        out["value"] = value[:BUTTON_VALUE_MAX]
    if style:
        out["style"] = style
    return out


def _action_blocks(reply: Reply, *, share: bool, feedback: FeedbackRef | None) -> list[Json]:
    buttons: list[Json] = []
    commands = 0
    lang = reply.language
    labels = {"feedback_up": t("helpful", lang), "feedback_down": t("not_helpful", lang)}
    for action in reply.actions:
        if action.kind == "share" and share and action.value:
            buttons.append(_button(action.label or t("share", lang), ACTION_SHARE, action.value, style="primary"))
        elif action.kind == "command" and action.value:
            # action_ids must be unique within a block: suffix all but the first.
            action_id = ACTION_COMMAND if commands == 0 else f"{ACTION_COMMAND}:{commands}"
            commands += 1
            buttons.append(_button(action.label, action_id, action.value))
        elif action.kind in labels:
            labels[action.kind] = action.label or labels[action.kind]  # the core's wording for its buttons
    if feedback is not None:
        # The click comes back with topic and question in the value: no server-side state to look up.
        buttons.append(_button(labels["feedback_up"], ACTION_FEEDBACK_UP, feedback.value()))
        buttons.append(_button(labels["feedback_down"], ACTION_FEEDBACK_DOWN, feedback.value()))
    return [{"type": "actions", "elements": buttons[:25]}] if buttons else []


def fallback_text(reply: Reply) -> str:
    """Notification / screen-reader text: the title and the gist, escaped like everything else."""
    gist = reply.summary or next((line for line in reply.text.splitlines() if line.strip()), "")
    text = escape(reply.title)
    if gist and gist.strip() != reply.title.strip():
        text += "\n" + escape(gist)
    return shorten(text, FALLBACK_MAX)


def render_reply(
    reply: Reply,
    *,
    share: bool = True,
    shared_by: str | None = None,
    feedback: FeedbackRef | None = None,
    max_blocks: int = MAX_BLOCKS,
) -> SlackMessage:
    """A Reply as a Block Kit message.

    ``share``: offer the "Share to channel" button (off once a card is public). ``shared_by``: a Slack
    user id for the "Shared by" line. ``feedback``: add 👍/👎 buttons (channel answers), worded as the
    Reply's own feedback actions when it has them; without ``feedback`` they are left out, since a
    click could not be tied to a question.
    """
    marker = _truncation_marker(reply)
    head: list[Json] = [_header(shorten(escape(reply.title), HEADER_MAX), emoji=True)]
    if shared_by:
        head.append(_context([t("shared_by", reply.language, user=f"<@{escape(shared_by)}>")]))

    body: list[Json] = []
    if reply.is_structured:
        if reply.summary:
            summary = escape(reply.summary)
            if len(summary) > SECTION_MAX:
                summary = shorten(summary, SECTION_MAX - len(marker), marker="") + marker
            body.append(_section(summary))
        body += _field_blocks(reply, marker)
        body += _deadline_blocks(reply)
        body += _step_blocks(reply)
        body += _checklist_blocks(reply)
        if body:
            body.append(_divider())
        body += _source_blocks(reply)
    else:
        text = reply.text
        # Templates repeat the title on the first line; a sentence that merely begins like it stays whole.
        if text.startswith(reply.title) and text[len(reply.title):][:1] in ("", "\n", ":"):
            text = text[len(reply.title):].lstrip(":\n ")
        body += [_section(c) for c in split_text(escape(text), SECTION_MAX)]
        if reply.suggestions and not any(s in reply.text for s in reply.suggestions):
            did_you_mean = t("did_you_mean", reply.language)
            body.append(_section(f"{did_you_mean}: " + ", ".join(f"`{escape(s)}`" for s in reply.suggestions)))

    tail: list[Json] = _caveat_blocks(reply) + _related_blocks(reply)
    actions = _action_blocks(reply, share=share, feedback=feedback)

    room = max_blocks - len(head) - len(tail) - len(actions)
    if len(body) > room:
        # Too long for one message: keep the start of the body, then say where the rest is.
        body = [*body[: max(room - 1, 0)], _context([marker])]
    blocks = [*head, *body, *tail, *actions]
    return SlackMessage(text=fallback_text(reply), blocks=blocks)


def render_notice(text: str) -> SlackMessage:
    """A one-line message of ours (not from a Reply), e.g. "invite me first"; ``text`` is mrkdwn we wrote."""
    return SlackMessage(text=text, blocks=[_section(shorten(text, SECTION_MAX))])


def validate_blocks(blocks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Round-trip dict blocks through the SDK models (raises ``SlackObjectFormationError`` when invalid)."""
    out = []
    for raw in blocks:
        block = Block.parse(raw)
        if block is None:
            raise ValueError(f"unknown block type {raw.get('type')!r}")
        out.append(block.to_dict())
    return out


# ---------------------------------------------------------------------------------------- App Home


@dataclass(frozen=True)
class HomeCommand:
    command: str
    summary: str
    usages: list[tuple[str, str]]


HOME_LIST_MAX = 25  # items a list shows before "and N more"


def render_home(
    *,
    commands: Sequence[HomeCommand],
    tracked: Sequence[TrackedDeadline] = (),
    subscriptions: Sequence[Subscription] = (),
    paused: Sequence[PausedItem] = (),
    topic_title: Callable[[str], str] = lambda topic: topic,
    today: dt.date | None = None,
    reminders_available: bool = True,
    notice: str | None = None,
    working_days: Callable[[dt.date, dt.date], int] | None = None,
    review: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The App Home tab: what the bot does, the viewer's deadlines and subscriptions, command help.

    ``notice``: a line under "Tracked deadlines" saying why the lists may be short (membership unknown).
    ``working_days``: China's working days between two days (``ChinaCalendar.working_days_between``), so
    that "N working days left" here says what the channel reminders say; without it, no count is shown.
    ``review``: blocks for workspace admins (the feedback review summary), shown above the help line.
    """
    blocks: list[Json] = [
        _header("China Desk"),
        _section(
            "Vetted, sourced and dated China market-entry advice: filings and their deadlines counted on "
            "China's official working-day calendar, sector briefings and Chinese platforms. "
            "Everything here is guidance, not legal advice."
        ),
        _divider(),
        _section("*What I can do*"),
    ]
    for cmd in commands:
        lines = [f"*`{escape(cmd.command)}`* — {escape(cmd.summary)}"]
        lines += [f"• `{escape(usage)}` {escape(what)}" for usage, what in cmd.usages]
        blocks += [_section(c) for c in split_text("\n".join(lines), SECTION_MAX)]
    blocks.append(_context([
        "Ask a question by mentioning me in a channel or in a direct message; I answer in a thread. "
        "Type `/china-filing help` for every command."
    ]))

    blocks += [_divider(), _section("*Tracked deadlines*")]
    if notice and reminders_available:
        blocks.append(_context([escape(notice)]))
    if not reminders_available:
        blocks.append(_context(["Deadline tracking and reminders are not available on this deployment yet."]))
    elif tracked:
        lines = []
        for d in list(tracked)[:HOME_LIST_MAX]:
            state = f" — _paused: {escape(d.paused_reason or 'delivery failed')}_" if d.status == "paused" else ""
            left = ""
            if today is not None and working_days is not None:
                if d.due > today:
                    n = working_days(today, d.due)
                    left = f" ({n} working day{'s' if n != 1 else ''} left)"
                else:
                    left = " (due today)" if d.due == today else " (passed)"
            lines.append(
                f"• `{escape(d.ref)}` *{escape(topic_title(d.topic))}* due {escape(format_day(d.due))}{left} "
                f"in <#{escape(d.channel)}>{state}"
            )
        if len(tracked) > HOME_LIST_MAX:
            lines.append(f"…and {len(tracked) - HOME_LIST_MAX} more")
        blocks += [_section(c) for c in split_text("\n".join(lines), SECTION_MAX)]
    else:
        blocks.append(_context([
            "No deadlines tracked yet. In a channel, `/china-filing remind <filing> from YYYY-MM-DD` "
            "posts reminders before it falls due."
        ]))

    blocks.append(_section("*Subscriptions*"))
    if subscriptions:
        lines = []
        for s in list(subscriptions)[:HOME_LIST_MAX]:
            name = "every topic" if s.topic == "all" else topic_title(s.topic)
            state = " — _paused_" if s.status == "paused" else ""
            lines.append(f"• `{escape(s.ref)}` *{escape(name)}* in <#{escape(s.channel)}>{state}")
        if len(subscriptions) > HOME_LIST_MAX:
            lines.append(f"…and {len(subscriptions) - HOME_LIST_MAX} more")
        blocks += [_section(c) for c in split_text("\n".join(lines), SECTION_MAX)]
    elif reminders_available:
        blocks.append(_context(["No subscriptions yet. `/china-filing help` shows how to subscribe a channel."]))

    if paused:
        lines = ["*Paused* (I could not post there; re-invite me to the channel, then resume):"]
        lines += [
            f"• `{escape(p.ref)}` {escape(topic_title(p.topic))} in <#{escape(p.channel)}>: "
            f"{escape(p.reason or 'delivery failed')}"
            for p in list(paused)[:HOME_LIST_MAX]
        ]
        blocks += [_section(c) for c in split_text("\n".join(lines), SECTION_MAX)]

    body = [*blocks, *review]
    tail = [_divider(), _context([
        "Help: `/china-filing help` · `/china-sector help` · `/china-platform help`"
    ])]
    blocks = [*body, *tail]
    if len(blocks) > MAX_HOME_BLOCKS:
        blocks = [*blocks[: MAX_HOME_BLOCKS - 1], _context(["… (shortened)"])]
    return {"type": "home", "blocks": blocks}
