"""The bot's own words in English and Chinese: one strings table, dates written the way each reads them.

Facts carry their Chinese text in the packs (``Fact.text_zh``); everything else a reply says (card
labels, template lines, error messages, caveats, button labels) lives in ``content/strings.yaml``, one
key per message with an ``en`` and a ``zh`` version. Python code and the Jinja2 templates ask for a
message the same way, ``t("sources", lang)``, so a missing translation is one place to fix and a test
can check that every key has both languages and the same ``{placeholders}``.

Errors are raised before anyone knows which language the reply will be in, so they carry a
:class:`Text` (a key and its parameters) that the one place turning errors into replies renders.
"""

from __future__ import annotations

import datetime as dt
import functools
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import yaml

Language = Literal["en", "zh"]
LANGUAGES: tuple[Language, ...] = ("en", "zh")
STRINGS_PATH = Path(__file__).resolve().with_name("strings.yaml")

_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS_EN_LONG = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                   "October", "November", "December")
_WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


class StringsError(ValueError):
    """``strings.yaml`` is malformed (raised at first use, so a bad edit fails loudly, not mid-reply)."""


@functools.cache
def strings(path: Path = STRINGS_PATH) -> Mapping[str, Mapping[str, str]]:
    """key -> {"en": ..., "zh": ...}, read once. Every scalar is kept as the string it is written as."""
    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    if not isinstance(data, dict):
        raise StringsError(f"{path}: expected a mapping of keys to {{en, zh}}")
    out: dict[str, dict[str, str]] = {}
    for key, value in data.items():
        if not isinstance(value, dict) or not isinstance(value.get("en", ""), str):
            raise StringsError(f"{path}: {key!r} must map to {{en: ..., zh: ...}}")
        out[key] = {lang: text for lang, text in value.items() if lang in LANGUAGES}
    return out


def has(key: str) -> bool:
    return key in strings()


def t(key: str, lang: str = "en", /, **params: Any) -> str:
    """The message ``key`` in ``lang`` (English where a Chinese version is missing), with ``{params}``
    filled in; parameters that are :class:`Text` are rendered in the same language. Unknown keys raise
    ``KeyError``: a typo must fail in tests, not print a key to a user."""
    entry = strings()[key]
    template = entry.get(lang) or entry["en"]
    if not params:
        return template
    values = {name: value.render(lang) if _localised(value) else value for name, value in params.items()}
    return template.format_map(values)


def tn(key: str, n: int, lang: str = "en", /, **params: Any) -> str:
    """``t`` for a message about ``n`` things: ``key.one`` when ``n`` is 1 and the table has it (English
    singulars; Chinese has none), else ``key``; ``{n}`` is filled in."""
    singular = f"{key}.one"
    return t(singular if n == 1 and singular in strings() else key, lang, n=n, **params)


def placeholders(template: str) -> set[str]:
    """The ``{names}`` a message uses (for the test that both languages take the same parameters)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@runtime_checkable
class Localised(Protocol):
    """A message parameter written differently per language (a :class:`Text`, :class:`Day`, :class:`Both`...)."""

    def render(self, lang: str = "en") -> str: ...


_PLAIN = (str, int, float)


def _localised(value: object) -> bool:
    """``isinstance(value, Localised)`` without its cost: a check against a runtime-checkable Protocol
    walks the protocol's members on every call (tens of µs on 3.11), and a reply fills hundreds of
    message parameters. Plain values are most of them and answer at once."""
    return not isinstance(value, _PLAIN) and callable(getattr(value, "render", None))


@dataclass(frozen=True)
class Text:
    """A message not yet rendered: a key of the strings table and its parameters.

    ``str(text)`` is the English version (what logs and older callers see).
    """

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def render(self, lang: str = "en") -> str:
        return t(self.key, lang, **self.params)

    def __str__(self) -> str:
        return self.render("en")


def msg(key: str, **params: Any) -> Text:
    """``msg("unknown_topic", what=..., name=...)``: a :class:`Text` for an error or a deferred line."""
    if key not in strings():
        raise KeyError(key)
    return Text(key, params)


def render_text(value: str | Localised, lang: str) -> str:
    return value.render(lang) if _localised(value) else value


@dataclass(frozen=True)
class Day:
    """A date in a deferred message (an error): written as the message's language writes dates."""

    value: dt.date | dt.datetime

    def render(self, lang: str = "en") -> str:
        return format_day(self.value, lang)


@dataclass(frozen=True)
class Month:
    """A month in a deferred message: ``March 2025`` / ``2025年3月``."""

    value: dt.date

    def render(self, lang: str = "en") -> str:
        return format_month(self.value, lang)


# ------------------------------------------------------------------------------------------ dates


def format_day(value: dt.date | dt.datetime, lang: str = "en") -> str:
    """``Thu 6 Nov 2025`` / ``2025年11月6日（周四）``, with ``HH:MM zone`` for datetimes.

    Unambiguous for UK and Chinese readers alike (no 06/11 vs 11/06), and independent of the locale.
    """
    day = value.date() if isinstance(value, dt.datetime) else value
    if lang == "zh":
        out = f"{day.year}年{day.month}月{day.day}日（{_WEEKDAYS_ZH[day.weekday()]}）"
    else:
        out = f"{_WEEKDAYS_EN[day.weekday()]} {day.day} {_MONTHS_EN[day.month - 1]} {day.year}"
    if isinstance(value, dt.datetime):
        zone = value.strftime("%Z").strip()
        out += ("" if lang == "zh" else " ") + f"{value:%H:%M}" + (f" {zone}" if zone else "")
    return out


def format_month(value: dt.date, lang: str = "en") -> str:
    """``March 2025`` / ``2025年3月``: how old a fact is, without a false precision."""
    return f"{value.year}年{value.month}月" if lang == "zh" else f"{_MONTHS_EN_LONG[value.month - 1]} {value.year}"


def format_span(a: dt.date, b: dt.date, lang: str = "en") -> str:
    """``1–8 Oct 2025`` / ``2025年10月1日至8日``; ``28 Jan–4 Feb 2025`` / ``2025年1月28日至2月4日``."""
    if lang == "zh":
        first = f"{a.year}年{a.month}月{a.day}日"
        if a == b:
            return first
        if a.year != b.year:
            return f"{first}至{b.year}年{b.month}月{b.day}日"
        return f"{first}至{b.month}月{b.day}日" if a.month != b.month else f"{first}至{b.day}日"
    mon_a, mon_b = _MONTHS_EN[a.month - 1], _MONTHS_EN[b.month - 1]
    if a == b:
        return f"{a.day} {mon_a} {a.year}"
    if a.year != b.year:
        return f"{a.day} {mon_a} {a.year}–{b.day} {mon_b} {b.year}"
    if a.month != b.month:
        return f"{a.day} {mon_a}–{b.day} {mon_b} {b.year}"
    return f"{a.day}–{b.day} {mon_a} {a.year}"


def holiday_name(name: str, lang: str = "en") -> str:
    """A public holiday's name (``Spring Festival``, or several joined by ``, ``) in ``lang``."""
    if lang != "zh":
        return name
    parts = [t(f"holiday.{part}", "zh") if has(f"holiday.{part}") else part for part in name.split(", ")]
    return "、".join(parts)


@dataclass(frozen=True)
class Both:
    """Words known in both languages (a topic's title and ``title_zh``; a replayed error's message), for a
    deferred message."""

    en: str
    zh: str | None = None

    def render(self, lang: str = "en") -> str:
        return (self.zh or self.en) if lang == "zh" else self.en

    def __str__(self) -> str:
        return self.en
