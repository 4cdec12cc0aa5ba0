"""Mainland China's official working-day calendar, for deadlines such as "within 30 working days".

Chinese rules count working days on the State Council's yearly holiday arrangement, not on a plain
Monday-Friday week: a break like National Day is stretched over a weekend by moving weekend days
around (调休), so some Saturdays and Sundays are *working* days (Sun 28 Sep and Sat 11 Oct 2025) and
some weekdays are off (1-8 Oct 2025). Counting Monday-Friday would be off by several days around
every long break.

Where the data comes from, per calendar year, in order of precedence:

1. ``content/calendar_overrides.yaml``: an editor's copy of a newly published notice, for the weeks
   before the ``chinesecalendar`` package carries that year (format documented in the file; read by
   :mod:`content.calendar_data`, like the packages below).
2. ``chinesecalendar`` (import name ``chinese_calendar``): the maintained official arrangements
   (2004-2026 in 1.11). It raises ``NotImplementedError`` for other years.
3. Otherwise an ESTIMATE: weekends plus the statutory public holidays from the ``holidays`` package,
   with no make-up working days, because the real arrangement is not known yet. Every result says
   which years were estimated so the bot can label the date.

Every supported year (:func:`supported_years`: the official data, the overrides file and a few
estimated years ahead) is built when the calendar is constructed, at start-up, into one sorted list of
working-day ordinals, so adding N working days is one binary search, never N calls into the packages
and never a table built in the request path. A date outside the supported years still works: its year
is built on first use (thread-safe), as before.

Counting convention (the one Chinese regulations use): the trigger day itself is not counted, so
``add_working_days(D, 30).due`` is the 30th working day strictly after D.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.metadata
import operator
import os
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

from content.calendar_data import (
    Arrangement,
    CalendarOverridesError,
    load_overrides,
    package_covers,
    package_range,
    package_year,
    statutory_year,
)
from content.i18n import format_day, format_span, holiday_name, t

__all__ = [
    "CHINA_TZ",
    "DEFAULT_OVERRIDES_PATH",
    "CalendarDayCount",
    "CalendarOverridesError",
    "ChinaCalendar",
    "WorkingDayCount",
    "china_calendar",
]

CHINA_TZ = ZoneInfo("Asia/Shanghai")
DEFAULT_OVERRIDES_PATH = Path(__file__).with_name("calendar_overrides.yaml")

Source = Literal["override", "package", "estimate"]

# Estimated years built ahead at start-up, past the last official one and the current year: a deadline of
# 400 working days (the longest the packs state is far shorter) ends within two years.
ESTIMATE_YEARS_AHEAD = 3


# --------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class WorkingDayCount:
    """The result of counting ``amount`` working days after ``start`` (``start`` itself not counted)."""

    start: dt.date
    amount: int
    due: dt.date
    holidays_skipped: tuple[tuple[dt.date, str], ...]  # weekday holidays in (start, due], with names
    makeup_days_counted: tuple[dt.date, ...]  # weekend days in (start, due] that were working days
    weekend_days_skipped: int  # Saturdays/Sundays in (start, due] that were not working days
    estimated_years: tuple[int, ...]  # years in (start, due] without an official arrangement
    # Holidays that fell on a weekend in (start, due] (already in weekend_days_skipped): only used to
    # show a break as the notice does, "1–8 Oct 2025" rather than "1–3 Oct; 6–8 Oct".
    weekend_holidays: tuple[tuple[dt.date, str], ...] = ()

    @property
    def estimate(self) -> bool:
        """True when part of the period falls in a year whose official arrangement we do not have."""
        return bool(self.estimated_years)

    def explain(self, lang: str = "en") -> list[str]:
        """Short lines saying what the count skipped and counted, for the deadline card (``lang``: en/zh)."""
        lines: list[str] = []
        days_off = sorted(self.holidays_skipped + self.weekend_holidays)
        breaks = [run for run in _runs(days_off) if any(d.weekday() < 5 for d, _ in run)]
        if breaks:
            open_, close = ("（", "）") if lang == "zh" else (" (", ")")
            parts = []
            for run in breaks:
                names = holiday_name(_names(n for _, n in run), lang)
                parts.append(f"{format_span(run[0][0], run[-1][0], lang)}{open_}{names}{close}")
            lines.append(t("count.holidays", lang, list=("；" if lang == "zh" else "; ").join(parts)))
        if self.makeup_days_counted:
            days = t("list_sep", lang).join(format_day(d, lang) for d in self.makeup_days_counted)
            lines.append(t("count.makeup_days", lang, list=days))
        if self.weekend_days_skipped:
            lines.append(t("count.weekend_days", lang, n=self.weekend_days_skipped))
        if self.estimated_years:
            lines.append(_estimate_line(self.estimated_years, lang))
        return lines


@dataclass(frozen=True)
class CalendarDayCount:
    """``amount`` calendar days after ``start``. The due day is never moved, only described."""

    start: dt.date
    amount: int
    due: dt.date
    working_day: bool  # is ``due`` a working day in China?
    holiday: str | None  # the public holiday ``due`` falls on, if any
    makeup_for: str | None  # set when ``due`` is a weekend make-up working day (the break's name)
    next_working_day: dt.date | None  # first working day after ``due`` when ``due`` is not one
    estimated_years: tuple[int, ...]  # ``due.year`` when its arrangement is not official

    @property
    def estimate(self) -> bool:
        """True when whether ``due`` is a working day comes from an estimated year."""
        return bool(self.estimated_years)

    def explain(self, lang: str = "en") -> list[str]:
        """Short lines for the card: what kind of day the due date is, and the next working day."""
        lines: list[str] = []
        if not self.working_day and self.next_working_day is not None:
            why = holiday_name(self.holiday, lang) if self.holiday else t("a_weekend", lang)
            lines.append(t("count.day_off", lang, day=format_day(self.due, lang), why=why,
                           next=format_day(self.next_working_day, lang)))
        elif self.makeup_for:
            lines.append(t("count.makeup_day", lang, day=format_day(self.due, lang),
                           name=holiday_name(self.makeup_for, lang)))
        if self.estimated_years:
            lines.append(_estimate_line(self.estimated_years, lang))
        return lines


# --------------------------------------------------------------------------------------------------
# Per-year data


@dataclass(frozen=True)
class _Year:
    year: int
    source: Source
    holidays: Mapping[dt.date, str]  # every day off other than an ordinary weekend (weekends in a break too)
    workdays: Mapping[dt.date, str]  # weekend make-up working days -> the break they make up for
    working: tuple[int, ...]  # ordinals of all working days of the year, ascending
    holiday_ords: tuple[int, ...]  # sorted ordinals of ``holidays`` (for range queries)
    holiday_items: tuple[tuple[dt.date, str], ...]  # the same, with names
    workday_ords: tuple[int, ...]


def _year_days(year: int) -> list[dt.date]:
    first = dt.date(year, 1, 1)
    return [first + dt.timedelta(days=i) for i in range((dt.date(year, 12, 31) - first).days + 1)]


# --------------------------------------------------------------------------------------------------
# The calendar


class ChinaCalendar:
    """Working days on mainland China's official calendar (official data, overrides, or an estimate).

    Construct once and share: the overrides file is read and every supported year's table is built
    in the constructor (start-up), so counting never builds a table in the request path. Years outside
    :func:`supported_years` are built on first use and cached on the instance (thread-safe).
    """

    def __init__(self, overrides_path: str | os.PathLike[str] | None = DEFAULT_OVERRIDES_PATH, *,
                 estimates_ahead: int = ESTIMATE_YEARS_AHEAD) -> None:
        """``overrides_path=None`` uses the packages only (what tests want for stable results).

        ``estimates_ahead``: estimated years to build now, after the official ones. The server builds
        :data:`ESTIMATE_YEARS_AHEAD`; a one-shot command line passes 0, because estimates need the
        ``holidays`` package (~0.4 s to import) and most commands never reach an unofficial year.
        """
        self._overrides = load_overrides(overrides_path)
        self._lock = threading.Lock()
        span = supported_years(self._overrides, estimates_ahead)
        self._years: dict[int, _Year] = {year: self._build_year(year) for year in span}
        # Every working day of the supported years in one ascending list: a count inside them is one bisect.
        self._first = dt.date(span.start, 1, 1).toordinal()  # first day of the table
        self._last = dt.date(span.stop - 1, 12, 31).toordinal()  # last day of the table
        self._working: list[int] = [o for year in span for o in self._years[year].working]

    @property
    def supported(self) -> range:
        """The years built at start-up (counting outside them works too, building the year on first use)."""
        return range(dt.date.fromordinal(self._first).year, dt.date.fromordinal(self._last).year + 1)

    # ---- single days

    def is_working_day(self, d: dt.date) -> bool:
        """Whether ``d`` is a working day: a make-up weekend day is, a holiday on a weekday is not."""
        day = _as_day(d)
        year = self._year(day.year)
        if day in year.workdays:
            return True
        return day.weekday() < 5 and day not in year.holidays

    def holiday_name(self, d: dt.date) -> str | None:
        """The public holiday ``d`` falls on ("National Day"), including weekend days inside a break.

        ``None`` for ordinary days, ordinary weekends and make-up working days (those are working
        days: see :meth:`makeup_workday_for`).
        """
        day = _as_day(d)
        return self._year(day.year).holidays.get(day)

    def makeup_workday_for(self, d: dt.date) -> str | None:
        """For a weekend make-up working day (调休上班), the break it makes up for; else ``None``."""
        day = _as_day(d)
        return self._year(day.year).workdays.get(day)

    def is_official(self, year: int) -> bool:
        """Whether ``year``'s official arrangement is known (package or overrides), not estimated."""
        return year in self._overrides or package_covers(year)

    def arrangement_source(self, year: int) -> str:
        """Where ``year``'s calendar comes from, for a card's footnote."""
        if year in self._overrides:
            src = self._overrides[year].source
            published = f", published {src.published.isoformat()}" if src.published else ""
            return f"{src.title} ({src.url}){published}"
        if package_covers(year):
            return f"chinesecalendar {_version('chinesecalendar')} (State Council arrangement for {year})"
        return (
            f"Estimate: weekends and statutory holidays (holidays {_version('holidays')}); "
            f"{year}'s official arrangement is not in our data"
        )

    def next_working_day(self, d: dt.date) -> dt.date:
        """The first working day strictly after ``d`` ("falls on a holiday; next working day is ...")."""
        return self._add(_as_day(d), 1)

    def previous_working_day(self, d: dt.date) -> dt.date:
        """The last working day strictly before ``d``."""
        return self._subtract(_as_day(d), 1)

    # ---- counting

    def add_working_days(self, d: dt.date, n: int) -> WorkingDayCount:
        """The ``n``-th working day strictly after ``d``, with what was skipped and counted.

        The trigger day is not counted, as in Chinese rules ("within 30 working days of D"), whether
        or not it is itself a working day. ``n == 0`` returns ``d`` unchanged; ``n < 0`` raises
        ``ValueError`` (use :meth:`subtract_working_days` to count backwards).
        """
        start = _as_day(d)
        amount = _amount(n)
        if amount == 0:
            return WorkingDayCount(start, 0, start, (), (), 0, ())
        due = self._add(start, amount)
        lo, hi = start.toordinal(), due.toordinal()
        weekday_off: list[tuple[dt.date, str]] = []
        weekend_off: list[tuple[dt.date, str]] = []
        makeup: list[dt.date] = []
        for y in range(start.year, due.year + 1):
            year = self._year(y)
            i, j = bisect_right(year.holiday_ords, lo), bisect_right(year.holiday_ords, hi)
            for day, name in year.holiday_items[i:j]:
                (weekday_off if day.weekday() < 5 else weekend_off).append((day, name))
            i, j = bisect_right(year.workday_ords, lo), bisect_right(year.workday_ords, hi)
            makeup += (dt.date.fromordinal(o) for o in year.workday_ords[i:j])
        weekends = _weekend_days_through(hi) - _weekend_days_through(lo)
        return WorkingDayCount(
            start=start,
            amount=amount,
            due=due,
            holidays_skipped=tuple(weekday_off),
            makeup_days_counted=tuple(makeup),
            weekend_days_skipped=weekends - len(makeup),
            estimated_years=self._estimated_years(start, due),
            weekend_holidays=tuple(weekend_off),
        )

    def subtract_working_days(self, d: dt.date, n: int) -> dt.date:
        """The ``n``-th working day strictly before ``d`` ("remind 5 working days before the due date").

        Mirror of :meth:`add_working_days`: ``d`` itself is not counted; ``n == 0`` returns ``d``.
        """
        day = _as_day(d)
        amount = _amount(n)
        return day if amount == 0 else self._subtract(day, amount)

    def working_days_between(self, a: dt.date, b: dt.date) -> int:
        """Number of working days in ``(a, b]``; negative (minus those in ``(b, a]``) when ``b < a``.

        So ``working_days_between(d, add_working_days(d, n).due) == n``, and "due in 3 working days"
        means today is not counted and the due day is.
        """
        start, end = _as_day(a), _as_day(b)
        if end < start:
            return -self.working_days_between(end, start)
        lo, hi = start.toordinal(), end.toordinal()
        if self._first - 1 <= lo and hi <= self._last:
            return bisect_right(self._working, hi) - bisect_right(self._working, lo)
        total = 0
        for y in range(start.year, end.year + 1):
            working = self._year(y).working
            total += bisect_right(working, hi) - bisect_right(working, lo)
        return total

    def add_calendar_days(self, d: dt.date, n: int) -> dt.date:
        """``d + n`` days. Not moved off weekends/holidays: a rule in calendar days means that day.

        See :meth:`calendar_day_count` for whether it is a working day and the next one if not.
        """
        return _as_day(d) + dt.timedelta(days=_amount(n))

    def calendar_day_count(self, d: dt.date, n: int) -> CalendarDayCount:
        """``add_calendar_days`` plus what kind of day the due date is (and the next working day)."""
        start = _as_day(d)
        amount = _amount(n)
        due = start + dt.timedelta(days=amount)
        working = self.is_working_day(due)
        return CalendarDayCount(
            start=start,
            amount=amount,
            due=due,
            working_day=working,
            holiday=self.holiday_name(due),
            makeup_for=self.makeup_workday_for(due),
            next_working_day=None if working else self.next_working_day(due),
            estimated_years=() if self.is_official(due.year) else (due.year,),
        )

    def add_hours(self, when: dt.datetime, n: float) -> dt.datetime:
        """``when`` plus ``n`` elapsed hours, in ``when``'s own timezone.

        Aware datetimes are added in UTC and converted back: plain ``when + timedelta`` is wall-clock
        arithmetic in Python, which is an hour off across a DST change (say a US-based start time).
        A naive datetime is taken as China time (no DST since 1991, so wall-clock arithmetic is
        exact) and returned naive.
        """
        if not isinstance(when, dt.datetime):
            raise TypeError(f"add_hours needs a datetime, got {type(when).__name__}")
        if isinstance(n, bool) or not isinstance(n, int | float):
            raise TypeError(f"hours must be a number, got {type(n).__name__}")
        if n < 0:
            raise ValueError(f"hours must be >= 0, got {n}")
        delta = dt.timedelta(hours=n)
        if when.tzinfo is None or when.utcoffset() is None:
            return when + delta
        return (when.astimezone(dt.UTC) + delta).astimezone(when.tzinfo)

    # ---- internals

    def _year(self, year: int) -> _Year:
        data = self._years.get(year)
        if data is None:
            with self._lock:
                data = self._years.get(year)
                if data is None:
                    data = self._years[year] = self._build_year(year)
        return data

    def _build_year(self, year: int) -> _Year:
        if year not in self._overrides and year + 1 not in self._overrides:
            return _plain_year(year)  # the same for every instance: built once per process
        return _make_year(year, self._overrides)

    def _add(self, start: dt.date, n: int) -> dt.date:
        """The n-th (n >= 1) working day after ``start``: one bisect inside the supported years."""
        after = start.toordinal()
        if self._first - 1 <= after <= self._last:
            k = bisect_right(self._working, after) + n - 1
            if k < len(self._working):
                return dt.date.fromordinal(self._working[k])
        return self._add_by_year(start, n)

    def _subtract(self, start: dt.date, n: int) -> dt.date:
        """The n-th (n >= 1) working day before ``start``: one bisect inside the supported years."""
        before = start.toordinal()
        if self._first <= before <= self._last + 1:
            k = bisect_left(self._working, before) - n  # working days < start, counted back
            if k >= 0:
                return dt.date.fromordinal(self._working[k])
        return self._subtract_by_year(start, n)

    def _add_by_year(self, start: dt.date, n: int) -> dt.date:
        """:meth:`_add` across years outside the table: a bisect per year crossed."""
        after, year = start.toordinal(), start.year
        while True:
            working = self._year(year).working
            i = bisect_right(working, after)  # first working day > start within this year
            if n <= len(working) - i:
                return dt.date.fromordinal(working[i + n - 1])
            n -= len(working) - i
            year += 1

    def _subtract_by_year(self, start: dt.date, n: int) -> dt.date:
        """:meth:`_subtract` across years outside the table."""
        before, year = start.toordinal(), start.year
        while True:
            working = self._year(year).working
            i = bisect_left(working, before)  # working days < start within this year
            if n <= i:
                return dt.date.fromordinal(working[i - n])
            n -= i
            year -= 1

    def _estimated_years(self, start: dt.date, due: dt.date) -> tuple[int, ...]:
        """Years touched by ``(start, due]`` that are not official (``due > start``)."""
        first = (start + dt.timedelta(days=1)).year
        return tuple(y for y in range(first, due.year + 1) if not self.is_official(y))


def supported_years(overrides: Mapping[int, object] = MappingProxyType({}),
                    estimates_ahead: int = ESTIMATE_YEARS_AHEAD) -> range:
    """The years a calendar builds at start-up: chinesecalendar's, the overrides file's, the current year,
    and ``estimates_ahead`` estimated years after the last of them."""
    first, last = package_range()
    last = max([last, *overrides, dt.date.today().year])
    first = min([first, *overrides])
    return range(first, last + estimates_ahead + 1)


@functools.cache
def _plain_year(year: int) -> _Year:
    """A year no overrides file touches (packages or estimate), shared by every calendar in the process."""
    return _make_year(year, {})


def _make_year(year: int, overrides: Mapping[int, Arrangement]) -> _Year:
    source: Source
    if year in overrides:
        source = "override"
        arrangement = overrides[year]
        days_off = {d: n for d, n in arrangement.holidays.items() if d.year == year}
        workdays = {d: n for d, n in arrangement.workdays.items() if d.year == year}
    elif package_covers(year):
        source = "package"
        days_off, workdays = (dict(m) for m in package_year(year))
    else:
        source = "estimate"
        days_off, workdays = dict(statutory_year(year)), {}
    # Next year's notice may move days in this December (e.g. a make-up Saturday before 1 Jan).
    spill = overrides.get(year + 1)
    if spill is not None:
        for day, name in spill.holidays.items():
            if day.year == year:
                days_off[day] = name
                workdays.pop(day, None)
        for day, name in spill.workdays.items():
            if day.year == year:
                workdays[day] = name
                days_off.pop(day, None)

    working = tuple(
        day.toordinal()
        for day in _year_days(year)
        if day in workdays or (day.weekday() < 5 and day not in days_off)
    )
    items = tuple(sorted(days_off.items()))
    return _Year(
        year=year,
        source=source,
        holidays=MappingProxyType(days_off),
        workdays=MappingProxyType(workdays),
        working=working,
        holiday_ords=tuple(day.toordinal() for day, _ in items),
        holiday_items=items,
        workday_ords=tuple(sorted(day.toordinal() for day in workdays)),
    )


@functools.cache
def china_calendar() -> ChinaCalendar:
    """The shared calendar with the shipped overrides file (built once per process)."""
    return ChinaCalendar()


# --------------------------------------------------------------------------------------------------
# Helpers


def _as_day(d: dt.date) -> dt.date:
    """A date; an aware datetime is first converted to China time (Chinese deadlines run on it)."""
    if isinstance(d, dt.datetime):
        return (d.astimezone(CHINA_TZ) if d.utcoffset() is not None else d).date()
    if isinstance(d, dt.date):
        return d
    raise TypeError(f"expected a date, got {type(d).__name__}")


def _amount(n: int) -> int:
    if isinstance(n, bool):
        raise TypeError("the number of days must be an int, not a bool")
    value = operator.index(n)
    if value < 0:
        raise ValueError(f"the number of days must be >= 0, got {value}")
    return value


def _weekend_days_through(ordinal: int) -> int:
    """Saturdays and Sundays from 0001-01-01 (a Monday, ordinal 1) through ``ordinal`` inclusive."""
    weeks, rest = divmod(ordinal, 7)
    return 2 * weeks + max(0, rest - 5)


@functools.cache
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _runs(days: list[tuple[dt.date, str]]) -> list[list[tuple[dt.date, str]]]:
    """Group sorted (date, name) pairs into runs of consecutive dates."""
    runs: list[list[tuple[dt.date, str]]] = []
    for item in days:
        if runs and (item[0] - runs[-1][-1][0]).days == 1:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _names(names: Iterable[str]) -> str:
    return ", ".join(dict.fromkeys(part for name in names for part in name.split(", ")))


def _estimate_line(years: tuple[int, ...], lang: str = "en") -> str:
    if len(years) == 1:
        return t("count.estimate_one", lang, year=years[0])
    listed = t("list_sep", lang).join(str(y) for y in years[:-1]) + t("and", lang) + str(years[-1])
    return t("count.estimate_many", lang, years=listed)
