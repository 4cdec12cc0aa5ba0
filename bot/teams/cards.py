"""Adaptive Card rendering of a :class:`~handlers.request.Reply` (Microsoft Teams messages).

Everything here is presentation: the Reply already holds the advice. Rules this module keeps:

* **Version.** Cards declare ``"version": "1.5"`` (what Teams renders for bots) and use only elements
  of that schema; the tests validate every card against the official 1.5 JSON schema.
* **Inert text, no escapes.** TextBlocks and facts interpret a Markdown subset (bold, italic, lists,
  ``[t](url)`` links) and no HTML, and Teams mobile shows backslash escapes (``\\[1\\]``, ``\\-``) and
  backticks literally. So every string taken from a Reply is un-escaped from the HTML entities that
  :func:`handlers.request.echo` produced (``&lt;`` would show as four characters) and then made inert
  without backslashes: ``](`` gets a zero-width space (``[x](y)`` typed by a user stays text and looks
  the same), ``*`` becomes the look-alike ``∗`` (no bold or italic from user text), backticks (code spans,
  which cards do not render) go, a line's leading ``-`` bullet becomes ``•``, and ``<`` is followed by a
  zero-width space, so that ``<at>`` typed by someone can never be read as a mention. Only links we
  build ourselves are Markdown.
* **Limits.** Teams rejects bot messages over ~28 KB and shows FactSet values in a narrow column, so
  short values go in a FactSet, long ones become their own TextBlocks, and very long texts are cut
  with a pointer to the command that shows the full card.
* **Fallback.** The activity carries the plain-text rendering as ``summary`` (what a client that cannot
  render cards, and notifications, show) and the card carries it as ``fallbackText``.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from content.i18n import format_day, t
from handlers.request import Reply
from handlers.text import render_text

CARD_VERSION = "1.5"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"

FACT_MAX = 80  # longer values read badly in the FactSet's narrow value column
TEXT_MAX = 4000  # one TextBlock; longer field texts are a content problem, cut with a pointer
FALLBACK_MAX = 4000  # summary / fallbackText: enough for the gist, keeps the message well under 28 KB
TITLE_MAX = 200
BUTTON_MAX = 40  # Teams truncates long button titles; keep them readable
QUESTION_MAX = 1000  # how much of the question a feedback button carries back
MAX_COMMAND_BUTTONS = 3  # with 👍/👎 that keeps the action bar to five buttons
MENU_CHOICES_MAX = 100

# Replies people can usefully rate; errors, menus and help are not advice.
FEEDBACK_KINDS = frozenset({"filing", "deadline", "sector", "platform", "calendar", "answer", "no_answer", "reminder"})

# What could turn Reply text into markup in a card, and its inert stand-in (see the module docstring).
_LINK_OPEN = re.compile(r"\]\s*\(")
_BULLET = re.compile(r"^(\s*)[-+*](?=\s)", re.MULTILINE)


def md(text: str) -> str:
    """Plain Reply text made inert for an Adaptive Card TextBlock (see the module docstring)."""
    text = html.unescape(text)  # echo() made user text HTML-safe; cards need Markdown-safe instead
    text = _BULLET.sub(r"\1•", text)
    text = text.replace("`", "").replace("*", "\u2217").replace("<", "<\u200b")  # (no <at> tag, ever)
    return _LINK_OPEN.sub("]\u200b(", text)


def md_url(url: str) -> str | None:
    """A URL safe inside ``[title](url)``, or None for anything that is not http(s)/mailto."""
    url = url.strip()
    if not re.match(r"^(https?|mailto):", url, re.IGNORECASE):
        return None
    # Spaces, brackets and angle brackets would end or confuse the link; percent-encode them.
    return quote(url, safe=":/?#@!$&'*+,;=%~-._")


def link(title: str, url: str) -> str:
    safe = md_url(url)
    if not safe:
        return md(title)
    label = md(title).replace("[", "(").replace("]", ")")  # a bracket would end the link text early
    return f"[{label}]({safe})"


def shorten(text: str, limit: int, marker: str = "…") -> str:
    """Cut at a line or word break near ``limit`` (marker included)."""
    if len(text) <= limit:
        return text
    room = max(limit - len(marker), 0)
    cut = text[:room]
    for sep in ("\n", " "):
        at = cut.rfind(sep)
        if at >= room * 0.6:
            cut = cut[:at]
            break
    return cut.rstrip() + marker


def _day(value: dt.date | dt.datetime) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _text(text: str, **props: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **props}


def _heading(text: str) -> dict[str, Any]:
    return _text(text, weight="bolder", spacing="medium")


def _submit(title: str, data: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {"type": "Action.Submit", "title": shorten(title, BUTTON_MAX), "data": data, **props}


@dataclass(frozen=True)
class FeedbackContext:
    """What a 👍/👎 button carries back, so that the click can be stored without server-side state."""

    question: str
    kind: str

    def data(self, reply: Reply, vote: str) -> dict[str, Any]:
        return {
            "action": "feedback", "vote": vote, "topic": reply.topic, "kind": reply.kind,
            "question": self.question[:QUESTION_MAX],
        }


def _marker(reply: Reply) -> str:
    command = reply.full_card_command()
    lang = reply.language
    return f"… ({t('full_card', lang, command=md(command))})" if command else f"… ({t('shortened', lang)})"


def _lines(text: str, limit: int, marker: str, **props: Any) -> list[dict[str, Any]]:
    """One TextBlock per line of plain text.

    Markdown line-break handling differs between Teams clients (a single newline may be folded into a
    space), so lines are separate blocks; a blank line becomes extra spacing before the next block.
    """
    blocks: list[dict[str, Any]] = []
    used = 0
    gap = False
    for line in text.strip("\n").split("\n"):
        if not line.strip():
            gap = True
            continue
        if used >= limit:
            blocks.append(_text(marker, isSubtle=True, spacing="none"))
            break
        safe = shorten(md(line.strip()), limit - used, marker=marker)
        used += len(safe)
        extra = {"spacing": "medium"} if gap else {"spacing": "none"} if blocks else {}
        blocks.append(_text(safe, **{**extra, **props}))
        gap = False
    return blocks


def _fields(reply: Reply, marker: str) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = []
    facts: list[dict[str, str]] = []

    def flush() -> None:
        if facts:
            body.append({"type": "FactSet", "facts": list(facts), "spacing": "medium"})
            facts.clear()

    for field in reply.fields:
        label = md(field.label) + (f" ({t('unverified', reply.language)})" if field.unverified else "")
        value = field.value.strip()
        if len(value) <= FACT_MAX and "\n" not in value:
            facts.append({"title": label, "value": md(value)})
            continue
        flush()  # keep the content's order: a long field ends the FactSet before it
        body.append(_heading(label))
        body += _lines(value, TEXT_MAX, marker)
    flush()
    return body


def _deadline(reply: Reply) -> list[dict[str, Any]]:
    deadline = reply.deadline
    if deadline is None:
        return []
    due = _day(deadline.due)
    lang = reply.language
    heading = md(t("due_heading", lang, day=format_day(deadline.due, lang))) + f" ({due.isoformat()})"
    items = [
        _text(
            heading + (md(t("estimate_mark", lang)) if deadline.estimate else ""),
            weight="bolder", size="large", color="attention" if deadline.estimate else "accent",
        ),
        _text(md(deadline.rule), isSubtle=True, spacing="none"),
    ]
    if deadline.counted:
        items.append(_text(t("how_counted", lang), weight="bolder", spacing="small"))
        items += [_text(f"• {md(line)}", spacing="none") for line in deadline.counted]
    return [{"type": "Container", "id": "deadline", "style": "emphasis", "spacing": "medium", "items": items}]


def _steps(reply: Reply) -> list[dict[str, Any]]:
    if not reply.steps:
        return []
    lang = reply.language
    body = [_heading(t("then", lang))]
    for step in reply.steps:
        when = ""
        if step.date is not None:
            when = " — " + md(t("by_day", lang, day=format_day(step.date, lang)))
            when += md(t("estimate_mark", lang)) if step.estimate else ""
        body.append(_text(f"**{md(step.label)}**{when}: {md(step.text)}", spacing="small"))
    return body


def _checklist(reply: Reply) -> list[dict[str, Any]]:
    """"Next steps", numbered; each step its own TextBlock with the number escaped, so that every Teams
    client shows "1." as written rather than re-numbering a Markdown list."""
    if not reply.checklist:
        return []
    body = [_heading(t("next_steps", reply.language))]
    body += [_text(md(f"{number}. {step}"), spacing="small") for number, step in enumerate(reply.checklist, start=1)]
    return body


def _sources(reply: Reply) -> list[dict[str, Any]]:
    if not reply.sources:
        return []
    body = [_heading(t("sources", reply.language))]
    for number, src in enumerate(reply.sources, start=1):
        published = src.published_label or src.published.isoformat()
        body.append(_text(f"[{number}] {link(src.title, src.url)} ({md(published)})", spacing="small"))
    return body


def _caveats(reply: Reply) -> list[dict[str, Any]]:
    blocks = []
    for i, caveat in enumerate(reply.caveats):
        first = {"separator": True, "spacing": "medium"} if i == 0 else {"spacing": "small"}
        blocks.append(_text(md(caveat), isSubtle=True, size="small", **first))
    return blocks


def _same_language(command: str, reply: Reply) -> str:
    """What a picker or button of a Chinese reply runs: the command pinned to Chinese, so that the card it
    opens is in the language of the one clicked (a typed ``/china-filing mlps`` would be English)."""
    return f"{command} --lang zh" if reply.language == "zh" and "--lang" not in command else command


def _menu(reply: Reply) -> list[dict[str, Any]]:
    """A menu: the list as text, plus a picker that runs the chosen item's command."""
    if not reply.items:
        return []
    choices = [{"title": shorten(item.title, 120), "value": _same_language(item.command, reply)}
               for item in reply.items[:MENU_CHOICES_MAX]]
    return [{
        "type": "Input.ChoiceSet", "id": "command", "style": "compact", "label": t("open_one", reply.language),
        "value": choices[0]["value"], "choices": choices, "spacing": "medium",
    }]


def _title_and_body(reply: Reply) -> tuple[str, str]:
    """The heading and the text under it. Templates repeat the title on the text's first line: as a label
    (``Title:`` or the title alone) it goes; when the line goes on with the sentence (``I don't have a
    vetted answer to that, and I'd rather say so than guess.``) the whole line is the heading, so that
    no sentence is split between the heading and the block under it."""
    text = reply.text
    if not text.startswith(reply.title):
        return reply.title, text
    first, _, rest = text.partition("\n")
    after = first[len(reply.title):]
    if after.strip() and not after.lstrip().startswith(":"):
        return first.strip(), rest.lstrip("\n ")
    return reply.title, text[len(reply.title):].lstrip(":\n ")


def _actions(reply: Reply, feedback: FeedbackContext | None) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    lang = reply.language
    if reply.items:
        actions.append(_submit(t("open", lang), {"action": "command"}, style="positive"))
    commands: list[tuple[str, str]] = []
    labels = {"up": t("helpful", lang), "down": t("not_helpful", lang)}
    for action in reply.actions:
        # "share" is Slack's: there a slash-command answer is private. Teams replies are already visible.
        if action.kind == "command" and action.value:
            commands.append((action.label, action.value))
        elif action.kind in ("feedback_up", "feedback_down"):
            vote = action.kind.removeprefix("feedback_")
            labels[vote] = action.label or labels[vote]
    commands += [(t("try_command", lang, command=s), _same_language(s, reply)) for s in reply.suggestions]
    commands += [(t("open_command", lang, command=r), _same_language(r, reply)) for r in reply.related]
    seen: set[str] = set()
    for label, value in commands:
        if value in seen or len(seen) >= MAX_COMMAND_BUTTONS:
            continue
        seen.add(value)
        actions.append(_submit(label, {"action": "command", "text": value}))
    if feedback is not None and reply.kind in FEEDBACK_KINDS:
        # The core may word its own buttons ("👎 Not right"); the data is ours either way.
        actions.append(_submit(labels["up"], feedback.data(reply, "up")))
        actions.append(_submit(labels["down"], feedback.data(reply, "down")))
    return actions


def fallback_text(reply: Reply) -> str:
    """The plain-text rendering, cut for the activity summary and the card's fallbackText.

    ``fallbackText`` "may contain Markdown" (the Adaptive Cards schema), so a client that falls back to
    it could turn ``[x](https://evil)`` typed by a user into a link: a zero-width space between ``]``
    and ``(`` keeps it plain text everywhere and looks the same (our own sources are never Markdown here).
    """
    return shorten(render_text(reply).replace("](", "]\u200b("), FALLBACK_MAX)


def render_card(reply: Reply, *, feedback: FeedbackContext | None = None) -> dict[str, Any]:
    """A Reply as an Adaptive Card 1.5 (a plain dict, ready for ``CardFactory.adaptive_card``)."""
    marker = _marker(reply)
    title, text = (reply.title, "") if reply.is_structured else _title_and_body(reply)
    body: list[dict[str, Any]] = [
        _text(shorten(md(title), TITLE_MAX), weight="bolder", size="medium", style="heading"),
    ]
    if reply.is_structured:
        if reply.summary:
            body += _lines(reply.summary, TEXT_MAX, marker)
        body += _fields(reply, marker)
        body += _deadline(reply)
        body += _steps(reply)
        body += _checklist(reply)
        body += _sources(reply)
    else:
        body += _lines(text, TEXT_MAX, marker)
        body += _menu(reply)
    body += _caveats(reply)
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "fallbackText": fallback_text(reply),
        "body": body,
    }
    actions = _actions(reply, feedback)
    if actions:
        card["actions"] = actions
    return card


def render_notice(text: str) -> dict[str, Any]:
    """A one-line card for acknowledgements ("Thanks for the feedback")."""
    return {
        "type": "AdaptiveCard", "$schema": CARD_SCHEMA, "version": CARD_VERSION, "fallbackText": text,
        "body": [_text(md(text))],
    }
