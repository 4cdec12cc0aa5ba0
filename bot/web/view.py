"""A :class:`~handlers.request.Reply` as the JSON the local chat page lays out (``bot/web/static/chat.js``).

Everything here is presentation, like the Block Kit and Adaptive Card renderers: the Reply already holds
the advice. The page builds its elements with ``textContent`` only, so strings here are plain text, not
HTML: the entities that :func:`handlers.request.echo` put into echoed user text are decoded (the page
then shows ``<b>`` typed by a user as those three characters). Headings come from
``content/strings.yaml`` in the reply's language, so the script holds no wording of its own for a card.
Links are only ever http(s) URLs; anything else shows as its title without a link.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

from content.i18n import format_day, t
from handlers.request import Reply

MAX_COMMAND_BUTTONS = 4
_WEB_URL = re.compile(r"^https?://[^\s<>\"']+$", re.IGNORECASE)


def plain(text: str) -> str:
    """Reply text as a person reads it (echo()'s HTML entities decoded; the page never parses HTML)."""
    return html.unescape(text)


def web_url(url: str) -> str | None:
    """``url`` when it is an http(s) URL a link may point to, else None (no javascript:, data:...)."""
    url = url.strip()
    return url if _WEB_URL.match(url) else None


def _day(value: dt.date | dt.datetime) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _same_language(command: str, reply: Reply) -> str:
    """A button on a Chinese reply runs its command in Chinese (what the other renderers do too)."""
    return f"{command} --lang zh" if reply.language == "zh" and "--lang" not in command else command


def body_text(reply: Reply) -> str:
    """The text of a reply without structure (menus, help, errors), without the title it repeats."""
    text = reply.text
    if text.startswith(reply.title) and text[len(reply.title):][:1] in ("", "\n", ":"):
        text = text[len(reply.title):].lstrip(":\n ")
    return text


def buttons(reply: Reply) -> list[dict[str, str]]:
    """The related-command buttons: the reply's own command actions, its "did you mean" suggestions and
    the commands that show more, each once."""
    lang = reply.language
    found: list[tuple[str, str]] = [(a.label, _same_language(a.value, reply)) for a in reply.actions
                                    if a.kind == "command" and a.value]
    found += [(t("try_command", lang, command=s), _same_language(s, reply)) for s in reply.suggestions]
    found += [(t("open_command", lang, command=r), _same_language(r, reply)) for r in reply.related]
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for label, command in found:
        if command in seen or len(out) >= MAX_COMMAND_BUTTONS:
            continue
        seen.add(command)
        out.append({"label": plain(label), "command": plain(command)})
    return out


def reply_view(reply: Reply) -> dict[str, Any]:
    """The JSON object for one reply (see the module docstring)."""
    lang = reply.language
    view: dict[str, Any] = {
        "kind": reply.kind,
        "topic": reply.topic,
        "language": lang,
        "title": plain(reply.title),
        "summary": plain(reply.summary) if reply.is_structured else "",
        "text": "" if reply.is_structured else plain(body_text(reply)),
        "fields": [
            {"label": plain(f.label), "value": plain(f.value),
             "note": t("unverified", lang) if f.unverified else ""}
            for f in (reply.fields if reply.is_structured else [])
        ],
        "deadline": None,
        "steps": None,
        "checklist": None,
        "sources": None,
        "menu": None,
        "caveats": [plain(c) for c in reply.caveats],
        "buttons": buttons(reply),
    }
    if reply.is_structured and reply.deadline is not None:
        d = reply.deadline
        view["deadline"] = {
            "heading": plain(t("due_heading", lang, day=format_day(d.due, lang))) + f" ({_day(d.due).isoformat()})"
            + (t("estimate_mark", lang) if d.estimate else ""),
            "rule": plain(d.rule),
            "counted_heading": t("how_counted", lang) if d.counted else "",
            "counted": [plain(line) for line in d.counted],
            "estimate": d.estimate,
        }
    if reply.is_structured and reply.steps:
        items = []
        for step in reply.steps:
            when = ""
            if step.date is not None:
                when = t("by_day", lang, day=format_day(step.date, lang)) + (t("estimate_mark", lang) if step.estimate
                                                                            else "")
            items.append({"label": plain(step.label), "when": when, "text": plain(step.text)})
        view["steps"] = {"heading": t("then", lang), "items": items}
    if reply.is_structured and reply.checklist:
        view["checklist"] = {"heading": t("next_steps", lang), "items": [plain(s) for s in reply.checklist]}
    if reply.is_structured and reply.sources:
        view["sources"] = {"heading": t("sources", lang), "items": [
            {"number": n, "title": plain(s.title), "url": web_url(s.url),
             "published": s.published_label or s.published.isoformat()}
            for n, s in enumerate(reply.sources, start=1)
        ]}
    if not reply.is_structured and reply.items:
        view["menu"] = {"heading": t("open_one", lang), "items": [
            {"title": plain(i.title), "command": plain(_same_language(i.command, reply))} for i in reply.items
        ]}
    return view
