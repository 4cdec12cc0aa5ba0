"""Deadlines asked in plain words: "we hit 100k faces on 20 sept 2025, when's the FRT filing due?",
"标准合同2026年9月25日生效，最晚哪天要备案？", "and if we hit 100k on 3 March?" (after a deadline).

A question that names a filing with a deadline rule (or follows one in a conversation) and gives a
trigger date is answered with exactly the reply ``/china-filing <filing> from <date>`` gives. Dates are
read by ``dateparser`` (day-first, as in the UK; relative dates such as "yesterday", "last Monday" or
"3 weeks ago" from the request's local now in its time zone), not by our own rules. It costs about a
millisecond a date (a fifth of a second the first time, so it is warmed when the index is built), so
it only runs when the question names or follows a filing *and* holds something that looks like a date;
:data:`DATE_SPAN` only finds such spans, dateparser reads them.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Any

from content.schema import Topic
from handlers.qa.text import fold, has_cjk, has_cue

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          r"sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_WEEKDAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?"
_CN_NUM = "一二两三四五六七八九十"
_START = r"(?<![A-Za-z0-9./-])"
_END = r"(?![A-Za-z0-9]|[-/.]\d)"
# Spans that look like a date, for dateparser to read (it reads them; this only finds them).
DATE_SPAN = re.compile(
    "|".join((
        # Digits are bounded by what is not a letter or digit (not \b: Chinese characters are word characters,
        # and "在2026.10.9刚超过" holds a date).
        rf"{_START}\d{{4}}[-/.]\d{{1,2}}[-/.]\d{{1,2}}{_END}",  # 2025-9-20, 2025/09/20
        rf"{_START}\d{{1,2}}[/.]\d{{1,2}}[/.]\d{{2,4}}{_END}",  # 20/9/2025 (day first)
        rf"{_START}\d{{1,2}}/\d{{1,2}}{_END}(?!/)",  # 20/9
        rf"(?:上个?月|本月|这个?月)\s*[\d{_CN_NUM}]{{1,3}}\s*[日号]",  # 上个月15号, 本月3日
        rf"\b(?:the\s+)?{_DAY}\s+of\s+(?:last|this)\s+month\b",  # the 20th of last month
        r"(?:\d{4}\s*年\s*)?\d{1,2}\s*月\s*\d{1,2}\s*[日号]?",  # 2025年9月20日, 9月20号
        rf"\b{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?\b",  # 20 sept 2025, 3rd of March
        rf"\b{_MONTH}\s+{_DAY}(?:,?\s+\d{{4}})?\b",  # Sept 20, March 3rd, 2026
        r"\b(?:the\s+day\s+before\s+yesterday|yesterday|today)\b",
        rf"\b(?:last|this\s+past|this|on)\s+{_WEEKDAY}\b",  # last Monday, this Monday
        r"\b(?:\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten)\s+(?:days?|weeks?|months?)\s+ago\b",
        r"前天|昨天|今天",
        r"上(?:个)?(?:周|星期|礼拜)[一二三四五六日天]",  # 上周一
        rf"[\d{_CN_NUM}]+\s*(?:天|周|个?星期|个?月)(?:以)?前",  # 3天前, 三周前
    )),
    re.IGNORECASE,
)
_CN_WEEKDAY = {"一": "monday", "二": "tuesday", "三": "wednesday", "四": "thursday", "五": "friday", "六": "saturday",
               "日": "sunday", "天": "sunday"}
_CN_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}  # Monday = 0
_CN_DIGIT = {c: str(i) for i, c in enumerate("零一二三四五六七八九")} | {"两": "2", "十": "10"}


def _chinese_for_dateparser(span: str, year: int) -> str:
    """The few Chinese forms dateparser does not read, rewritten into ones it does (9月20号 -> 2026年9月20日,
    上周一 -> last monday, 三天前 -> 3天前)."""
    span = re.sub(r"\s+", "", span).replace("号", "日")
    if "月" in span and "年" not in span:
        span = f"{year}年{span}"
    if "月" in span and not span.endswith("日"):
        span += "日"
    weekday = re.fullmatch(r"上个?(?:周|星期|礼拜)(.)", span)
    if weekday:
        return f"last {_CN_WEEKDAY[weekday[1]]}"
    return re.sub(f"[{_CN_NUM}]+", lambda m: _chinese_number(m[0]), span)


@functools.lru_cache(maxsize=1)
def _dateparser() -> Any:
    import dateparser  # imported on first use: only questions that need it pay for it

    return dateparser


def warm_up() -> None:
    """Load dateparser's language data now (about 0.2 s once), so that no question pays for it."""
    read_date("20 sept 2025", dt.datetime(2026, 1, 1))
    read_date("2025年9月20日", dt.datetime(2026, 1, 1))


_DAY_OF_MONTH = re.compile(rf"(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\s+of\s+(last|this)\s+month"
                           rf"|(上个?月|本月|这个?月)([\d{_CN_NUM}]{{1,3}})[日号]", re.IGNORECASE)


_THIS_WEEKDAY = re.compile(rf"this (past )?({_WEEKDAY})", re.IGNORECASE)
_WEEKDAY_INDEX = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


def _day_of_month(span: str, today: dt.date) -> dt.date | None:
    """"the 20th of last month", "上个月15号": a day of this month or the one before (dateparser reads neither)."""
    match = _DAY_OF_MONTH.fullmatch(re.sub(r"\s+", "" if has_cjk(span) else " ", span.strip()))
    if match is None:
        return None
    day_text, which = (match[1], match[2].casefold()) if match[1] else (match[4], match[3])
    day = int(_chinese_number(day_text))
    last = which == "last" or which.startswith("上")
    year, month = (today.year, today.month - 1) if last else (today.year, today.month)
    if month == 0:
        year, month = year - 1, 12
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _chinese_number(text: str) -> str:
    """一 -> 1, 十 -> 10, 十五 -> 15, 二十 -> 20, 三十一 -> 31 (days of a month, counts of days and weeks)."""
    tens, ten, ones = text.partition("十")
    if not ten:
        return "".join(_CN_DIGIT.get(c, c) for c in text)
    return str(int(_CN_DIGIT[tens] if tens else "1") * 10 + int(_CN_DIGIT[ones] if ones else "0"))


def read_date(span: str, local_now: dt.datetime) -> dt.date | None:
    """One date-like span as a date, day first, relative to ``local_now`` (naive local time); or None."""
    of_month = _day_of_month(span, local_now.date())
    if of_month is not None:
        return of_month
    this_week = _THIS_WEEKDAY.fullmatch(re.sub(r"\s+", " ", span.strip()))
    if this_week:
        today, wanted = local_now.date(), _WEEKDAY_INDEX[this_week[2][:3].casefold()]
        if this_week[1]:  # "this past Friday": the last Friday before today
            return today - dt.timedelta(days=(today.weekday() - wanted - 1) % 7 + 1)
        # "this Monday" is the Monday of this week (Monday first), whether it has passed or not.
        return today + dt.timedelta(days=wanted - today.weekday())
    last_week = re.fullmatch(r"上个?(?:周|星期|礼拜)(.)", re.sub(r"\s+", "", span))
    if last_week and last_week[1] in _CN_WEEKDAY:
        # 上周一 is the Monday of last week (the calendar week before this one), never this week's Monday:
        # dateparser's "last monday" would be the most recent Monday, which on a Tuesday is yesterday.
        today = local_now.date()
        return today - dt.timedelta(days=today.weekday() + 7) + dt.timedelta(days=_CN_WEEKDAYS[last_week[1]])
    if re.search("[\u4e00-\u9fff]", span):
        span = _chinese_for_dateparser(span, local_now.year)
    settings = {"DATE_ORDER": "DMY", "RELATIVE_BASE": local_now.replace(tzinfo=None), "PREFER_DAY_OF_MONTH": "first",
                "RETURN_AS_TIMEZONE_AWARE": False, "STRICT_PARSING": False}
    value = _dateparser().parse(span, languages=["en", "zh"], settings=settings)
    if value is None or not dt.date(2000, 1, 1) <= value.date() <= dt.date(2099, 12, 31):
        return None
    return value.date()


def find_date(text: str, local_now: dt.datetime) -> dt.date | None:
    """The first date the text gives, or None (nothing date-like, or nothing dateparser can read)."""
    for match in DATE_SPAN.finditer(text):
        day = read_date(match[0], local_now)
        if day is not None:
            return day
    return None


# Years ahead only: "this year" and "last year" usually mean the latest figures, which the packs may date a
# year earlier, while a year ahead must be one the packs have (or the question is not answered).
_RELATIVE_YEAR = re.compile(r"\b(?:(the year after next)|(next year))(?:'s)?\b|(后年)|(明年)", re.IGNORECASE)
_YEAR_OFFSET = (2, 1, 2, 1)


def absolute_years(text: str, this_year: int) -> str:
    """"next year" -> "2027", 后年 -> 2028年 (against the asker's local year): the year a question means,
    as the packs write it."""
    def year(match: re.Match[str]) -> str:
        n = next(i for i, g in enumerate(match.groups()) if g)
        value = this_year + _YEAR_OFFSET[n]
        return f"{value}年" if n >= 2 else str(value)

    return _RELATIVE_YEAR.sub(year, text)


def looks_dated(text: str) -> bool:
    """Cheap check before any parsing: does the text hold something that looks like a date?"""
    return DATE_SPAN.search(text) is not None


@dataclass(frozen=True)
class DeadlineAsk:
    topic: Topic
    start: dt.date


def deadline_question(
    text: str, *, named: list[Topic], context_filing: Topic | None, follows_deadline: bool,
    cues: tuple[str, ...], local_now: dt.datetime,
) -> DeadlineAsk | None:
    """The filing and trigger date a question asks the deadline for, or None.

    ``named``: filings with a deadline rule the question names (best first); ``context_filing``: the
    filing the conversation is about. A question must name or follow a filing, give a date, and ask
    for a deadline (a cue such as "due", "by when", "最晚"), unless it follows a computed deadline
    ("and if we hit 100k on 3 March?").
    """
    topic = named[0] if named else context_filing
    if topic is None or topic.deadline is None or not looks_dated(text):
        return None
    folded = fold(text)
    if not (follows_deadline or any(has_cue(folded, cue) for cue in cues)):
        return None
    start = find_date(text, local_now)
    return DeadlineAsk(topic, start) if start is not None else None
