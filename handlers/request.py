"""The seam between platforms and advice: a :class:`Request` in, a structured :class:`Reply` out.

Adapters (Slack, Teams, CLI) translate to and from these types and nothing else. Reply fields hold
plain text; each renderer escapes for its own surface. Text a user typed is only ever echoed through
:func:`echo`, which makes it inert everywhere (no pings, no markup, no template syntax evaluated).
"""

from __future__ import annotations

import datetime as dt
import html
import re
import unicodedata
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from content.i18n import Localised, render_text, t

Platform = Literal["slack", "teams", "text", "web"]  # web: the local chat page (bot/web)
Language = Literal["en", "zh"]
LanguageChoice = Literal["auto", "en", "zh"]
Mode = Literal["command", "mention", "direct", "watch"]
ReplyKind = Literal[
    "menu", "help", "filing", "deadline", "sector", "platform", "calendar", "answer", "no_answer",
    "reminder", "upcoming", "error",
]

DEFAULT_TIMEZONE = "Asia/Shanghai"
MAX_INPUT_CHARS = 4000  # longer messages are refused politely, never parsed
LEGAL_CAVEAT = t("legal_caveat", "en")  # content/strings.yaml has it in Chinese too


class Request(BaseModel):
    """What someone asked, and where."""

    model_config = ConfigDict(frozen=True)

    text: str
    command: str | None = None  # "/china-filing" when the platform hands the command separately
    platform: Platform = "text"
    mode: Mode = "command"
    user: str | None = None
    channel: str | None = None
    workspace: str | None = None  # Slack team id / Teams tenant id
    timezone: str = DEFAULT_TIMEZONE
    # The conversation a message belongs to (a Slack thread or DM, a Teams reply chain or chat, a CLI
    # --thread key): follow-ups share its context. None: a message on its own.
    thread: str | None = None
    thread_opener: bool = False  # this message began the conversation (the thread's first message)
    # The channel's or user's choice (`/china-filing language`); "auto" answers in the question's language.
    language: LanguageChoice = "auto"
    now: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.UTC))
    # The platform's identity of this request, the same when the very same request arrives again (a
    # replay, a redelivery): commands that change state run once per key. None: no such identity (CLI).
    idempotency_key: str | None = None

    def answer_language(self, text: str | None = None) -> Language:
        """The language to answer in: the chosen one, else Chinese when what was asked is written in it."""
        if self.language != "auto":
            return self.language
        return "zh" if written_in_chinese(self.text if text is None else text) else "en"

    def local_now(self) -> dt.datetime:
        return self.now.astimezone(ZoneInfo(self.timezone))

    def today(self) -> dt.date:
        return self.local_now().date()


class SourceRef(BaseModel):
    title: str
    url: str
    published: dt.date
    published_label: str = ""  # "2025", "undated, read 2026-11-22"... when the day is not known


class ReplyField(BaseModel):
    label: str
    value: str
    unverified: bool = False


class ReplyStep(BaseModel):
    label: str
    text: str
    date: dt.date | None = None
    estimate: bool = False


class ReplyDeadline(BaseModel):
    start: dt.date | dt.datetime
    due: dt.date | dt.datetime
    rule: str  # "30 working days from the day stored facial data first reaches 100,000 people"
    unit: str
    amount: int
    counted: list[str] = Field(default_factory=list)  # what the count skipped or used, for people
    estimate: bool = False  # True when a year's official arrangement is not in the calendar data


class MenuItem(BaseModel):
    id: str
    title: str
    command: str  # what to type to open it


class Action(BaseModel):
    """A button or suggestion: re-run a command, share a card, give feedback."""

    kind: Literal["command", "share", "feedback_up", "feedback_down"]
    label: str
    value: str = ""


class Reply(BaseModel):
    """Everything a surface needs to render an answer; no platform markup inside.

    Frozen: a reply may be cached and shared between requests (see ``handlers.router.ReplyCache``);
    change one with ``model_copy(update=...)``.
    """

    model_config = ConfigDict(frozen=True)

    kind: ReplyKind
    title: str
    text: str  # full plain-text rendering, from the content templates
    summary: str = ""
    topic: str | None = None
    fields: list[ReplyField] = Field(default_factory=list)
    steps: list[ReplyStep] = Field(default_factory=list)
    deadline: ReplyDeadline | None = None
    items: list[MenuItem] = Field(default_factory=list)
    sources: list[SourceRef] = Field(default_factory=list)
    caveats: list[str] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)
    related: list[str] = Field(default_factory=list)  # commands that show more
    checklist: list[str] = Field(default_factory=list)  # "Next steps", shown as a numbered list
    actions: list[Action] = Field(default_factory=list)
    confidence: float | None = None
    ephemeral: bool = True  # slash-command answers are private until shared
    language: Language = "en"  # the language the reply's text is written in

    @property
    def is_structured(self) -> bool:
        """Cards, deadlines and answers have structure to lay out; menus, help and errors are their text."""
        return bool(self.summary or self.fields or self.deadline or self.steps or self.checklist)

    def full_card_command(self) -> str | None:
        """The command that shows this reply in full (where a shortened rendering points to)."""
        for action in self.actions:
            if action.kind == "share" and action.value:
                return action.value
        return self.related[0] if self.related else None

    def as_json(self) -> dict:
        """The CLI's ``--json`` object (and what tests and logs compare)."""
        out: dict = {
            "kind": self.kind,
            "title": self.title,
            "text": self.text,
            "sources": [s.model_dump(mode="json", include={"title", "url", "published"}) for s in self.sources],
            "topic": self.topic,
            "caveats": list(self.caveats),
        }
        if self.deadline is not None:
            due = self.deadline.due
            out["deadline"] = (due.date() if isinstance(due, dt.datetime) else due).isoformat()
            out["deadline_detail"] = self.deadline.model_dump(mode="json")
        if self.confidence is not None:
            out["confidence"] = round(self.confidence, 3)
        if self.suggestions:
            out["suggestions"] = list(self.suggestions)
        if self.items:
            out["items"] = [i.model_dump() for i in self.items]
        if self.steps:
            out["steps"] = [s.model_dump(mode="json") for s in self.steps]
        if self.checklist:
            out["checklist"] = list(self.checklist)
        if self.fields:
            out["fields"] = [f.model_dump() for f in self.fields]
        out["language"] = self.language
        return out


# ---------------------------------------------------------------------------------------- user errors


class UserError(Exception):
    """A mistake in what the user typed; becomes a friendly ``error`` reply in one place (the router).

    ``message`` and ``hint`` may be a :class:`~content.i18n.Text` (a key of content/strings.yaml and its
    parameters), rendered in the reply's language there; ``.message`` is always the English text.
    """

    kind: ReplyKind = "error"

    def __init__(
        self, message: str | Localised, *, suggestions: list[str] | None = None, hint: str | Localised = "",
    ) -> None:
        super().__init__(str(message))
        self.text = message
        self.hint_text = hint
        self.message = str(message)
        self.suggestions = suggestions or []
        self.hint = str(hint)

    def render(self, lang: str) -> tuple[str, str]:
        """(message, hint) in ``lang``."""
        return render_text(self.text, lang), render_text(self.hint_text, lang)


class UsageError(UserError):
    """The command is malformed (missing topic, missing date, unknown sub-command)."""


class UnknownTopicError(UserError):
    """No topic matches what was typed; carries "did you mean" suggestions."""


class BadDateError(UserError):
    """A date that does not exist or cannot be read."""


class InputTooLargeError(UserError):
    """Huge or binary input: refused before any parsing."""


class NotAvailableError(UserError):
    """The feature needs something this deployment or context lacks (a channel, storage...)."""


# ----------------------------------------------------------------------------------------- echoing

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def has_han(text: str) -> bool:
    """Whether the text holds Chinese characters (what "asked in Chinese" means for choosing a language)."""
    return _HAN.search(text) is not None


_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_COMMAND_WORD = re.compile(r"(?:^|\s)[/-]+[\w-]+")  # "/china-filing", "--lang": the command, not the language


def written_in_chinese(text: str) -> bool:
    """Whether a message is written in Chinese, not merely naming something Chinese: more Chinese characters
    than English words ("B站 creators' fees?" is English; "PIPL下的PIPIA要保存多久" is Chinese)."""
    han = len(_HAN.findall(text))
    return han > 0 and han > len(_LATIN_WORD.findall(_COMMAND_WORD.sub(" ", text)))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean_input(text: str) -> str:
    """Normalise incoming text: NFKC, control and bidi characters removed, whitespace folded."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    return " ".join(text.split())


def echo(text: str, limit: int = 60) -> str:
    """Make user text safe to show back on any surface.

    Shortened, control characters removed, and ``& < >`` turned into entities so that neither Slack
    (``<!channel>``, ``<@U123>``, ``<http://x|y>``) nor Teams (``<at>``) sees markup in it. Template
    syntax stays literal because user text is only ever a template *variable*, never a template.
    """
    text = clean_input(text)
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return html.escape(text, quote=False)
