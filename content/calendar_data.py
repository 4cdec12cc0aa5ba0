"""Where the China working-day calendar's data comes from: chinesecalendar's tables, the statutory
holidays of the ``holidays`` package (for estimated years), and the editors' overrides file.

Kept apart from :mod:`content.calendar` (the arithmetic) so that each stays short; nothing here counts
days. See :mod:`content.calendar` for the order of precedence between the three.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import chinese_calendar
import yaml

from content.loader import parse_yaml

# chinese_calendar's Holiday enum (by member name, so a renamed English value does not break us) to
# the English names the bot shows. Unknown members fall back to the package's own English value.
_PACKAGE_NAMES: dict[str, str] = {
    "new_years_day": "New Year's Day",
    "spring_festival": "Spring Festival",
    "tomb_sweeping_day": "Qingming Festival",
    "labour_day": "Labour Day",
    "dragon_boat_festival": "Dragon Boat Festival",
    "national_day": "National Day",
    "mid_autumn_festival": "Mid-Autumn Festival",
    "anti_fascist_70th_day": "WWII Victory 70th Anniversary",
}

# The statutory days in holidays.China (language en_US). This is a whitelist on purpose: the package
# also returns "X (observed)" guesses (a weekend holiday moved to Monday, which is not how China
# works) and "Day off (substituted from ...)" swaps whose matching make-up working day it does not
# return as a working day; an estimate that took the day off without the make-up day would be wrong
# in one direction only. One-off specials (2015 Victory Day, the 2020 extension) are in years the
# official data covers anyway.
_STATUTORY_NAMES: dict[str, str] = {
    "New Year's Day": "New Year's Day",
    "Chinese New Year's Eve": "Spring Festival",
    "Chinese New Year (Spring Festival)": "Spring Festival",
    "Tomb-Sweeping Day": "Qingming Festival",
    "Labor Day": "Labour Day",
    "Dragon Boat Festival": "Dragon Boat Festival",
    "Mid-Autumn Festival": "Mid-Autumn Festival",
    "National Day": "National Day",
}

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MAX_RANGE_DAYS = 31  # a longer "holiday" range in the overrides file is certainly a typo


class CalendarOverridesError(ValueError):
    """The overrides file is malformed; raised at load so a bad edit cannot silently skew deadlines."""


@dataclass(frozen=True)
class _ArrangementSource:
    title: str
    url: str
    published: dt.date | None


@dataclass(frozen=True)
class Arrangement:
    """One year's notice from the overrides file. Dates may spill into the previous December."""

    year: int
    holidays: Mapping[dt.date, str]
    workdays: Mapping[dt.date, str]
    source: _ArrangementSource


# --------------------------------------------------------------------------------------------------
# chinesecalendar and holidays


@functools.cache
def _package_tables() -> dict[int, tuple[dict[dt.date, str], dict[dt.date, str]]]:
    """chinesecalendar's whole data, by year: (days off, weekend make-up working days).

    Read from the package's two tables in one pass (a few ms for every year): ``get_holiday_detail``
    re-validates each date against the whole table (~8 ms a year), too slow to build every year at
    start-up. Same meaning as ``get_holiday_detail``: a date in ``workdays`` is worked (checked first),
    one in ``holidays`` is off; a named *weekday* workday changes nothing and is left out.
    """
    from chinese_calendar.constants import holidays as package_holidays
    from chinese_calendar.constants import workdays as package_workdays

    out: dict[int, tuple[dict[dt.date, str], dict[dt.date, str]]] = {}
    for day, raw in package_holidays.items():
        if day not in package_workdays:
            out.setdefault(day.year, ({}, {}))[0][day] = _package_name(raw)
    for day, raw in package_workdays.items():
        if day.weekday() >= 5:
            out.setdefault(day.year, ({}, {}))[1][day] = _package_name(raw)
    return out


@functools.cache
def package_range() -> tuple[int, int]:
    """The first and last year chinesecalendar has (its own check: the years of its holiday table)."""
    from chinese_calendar.constants import holidays as package_holidays

    return min(package_holidays).year, max(package_holidays).year


def package_covers(year: int) -> bool:
    """Whether chinesecalendar has ``year`` (it raises NotImplementedError outside these years)."""
    first, last = package_range()
    return first <= year <= last


def _package_name(raw: str) -> str:
    try:
        member = chinese_calendar.Holiday(raw)
    except ValueError:
        return raw
    return _PACKAGE_NAMES.get(member.name, raw)


def package_year(year: int) -> tuple[dict[dt.date, str], dict[dt.date, str]]:
    """(days off, make-up working days) for a year chinesecalendar covers (copies: callers amend them)."""
    days_off, workdays = _package_tables().get(year, ({}, {}))
    return dict(days_off), dict(workdays)


STATUTORY_PATH = Path(__file__).with_name("calendar_statutory.yaml")


@functools.cache
def _statutory_file(path: Path = STATUTORY_PATH) -> dict[int, dict[dt.date, str]]:
    """The statutory days of the years ahead, as :func:`holidays_statutory_year` computed them (the file is
    written by ``python -m content.calendar_data``, and a test checks it against the package)."""
    if not path.exists():
        return {}
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return {int(year): {dt.date.fromisoformat(str(day)): name for day, name in (days or {}).items()}
            for year, days in (data.get("years") or {}).items()}


def statutory_year(year: int) -> dict[dt.date, str]:
    """The statutory public holidays of ``year`` per holidays.China, no observed/substituted days.

    The years ahead come from calendar_statutory.yaml: the package and the China entity it loads take
    ~17 MiB of resident memory and ~0.4 s (302 modules), for a table of a dozen days a year that the
    server builds once at start-up. Other years ask the package."""
    found = _statutory_file().get(year)
    return dict(found) if found is not None else holidays_statutory_year(year)


@functools.cache
def holidays_statutory_year(year: int) -> dict[dt.date, str]:
    """:func:`statutory_year` computed by the ``holidays`` package (imported here, on first use)."""
    import holidays as holidays_lib

    table = holidays_lib.China(years=year, observed=False, language="en_US")
    out: dict[dt.date, str] = {}
    for day, raw in table.items():
        names = [_STATUTORY_NAMES[p] for p in str(raw).split("; ") if p in _STATUTORY_NAMES]
        if names and day.year == year:
            out[day] = ", ".join(dict.fromkeys(names))
    return out


# --------------------------------------------------------------------------------------------------
# Overrides file


def load_overrides(path: str | os.PathLike[str] | None) -> dict[int, Arrangement]:
    if path is None:
        return {}
    path = Path(path)
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CalendarOverridesError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or set(data) - {"years"}:
        raise CalendarOverridesError(f"{path}: expected a mapping with a single key `years`")
    years = data.get("years") or {}
    if not isinstance(years, dict):
        raise CalendarOverridesError(f"{path}: `years` must map a year to its arrangement")
    out: dict[int, Arrangement] = {}
    for key, body in years.items():
        try:
            year = int(key)
        except (TypeError, ValueError):
            raise CalendarOverridesError(f"{path}: `{key}` is not a year") from None
        if not 1950 <= year <= 2200:
            raise CalendarOverridesError(f"{path}: year {year} is out of range")
        out[year] = _parse_arrangement(year, body, f"{path}: {year}")
    return out


def _parse_arrangement(year: int, body: Any, where: str) -> Arrangement:
    if not isinstance(body, dict):
        raise CalendarOverridesError(f"{where}: expected `holidays`, `workdays` and `source`")
    unknown = set(body) - {"holidays", "workdays", "source"}
    if unknown:
        raise CalendarOverridesError(f"{where}: unknown key(s) {sorted(unknown)}")
    source = _parse_source(body.get("source"), where)

    holidays: dict[dt.date, str] = {}
    for entry in body.get("holidays") or []:
        days, name = _parse_entry(entry, year, where + ": holidays")
        # Unnamed: each day takes its own statutory name, the other days of the break the first one's.
        statutory = [statutory_year(d.year).get(d) for d in days]
        default = name or next((s for s in statutory if s), "Public holiday")
        for day, own in zip(days, statutory, strict=True):
            holidays[day] = name or own or default

    workdays: dict[dt.date, str] = {}
    for entry in body.get("workdays") or []:
        days, name = _parse_entry(entry, year, where + ": workdays")
        for day in days:
            if day.weekday() < 5:
                raise CalendarOverridesError(
                    f"{where}: workday {day} is a {_WEEKDAYS[day.weekday()]}; make-up working days are "
                    "Saturdays or Sundays (a weekday is a working day already)"
                )
            if day in holidays:
                raise CalendarOverridesError(f"{where}: {day} is listed as both a holiday and a workday")
            nearest = min(holidays, key=lambda h, d=day: (abs((h - d).days), h), default=None)
            workdays[day] = name or (holidays[nearest] if nearest else "Public holiday")
    return Arrangement(year, MappingProxyType(holidays), MappingProxyType(workdays), source)


def _parse_source(raw: Any, where: str) -> _ArrangementSource:
    if not isinstance(raw, dict) or not raw.get("title") or not raw.get("url"):
        raise CalendarOverridesError(f"{where}: `source` with `title` and `url` is required")
    url = str(raw["url"])
    if not url.startswith(("https://", "http://")):
        raise CalendarOverridesError(f"{where}: source url must start with https://")
    published = raw.get("published")
    if published is not None:
        published = _parse_date(published, where + ": source.published")
    return _ArrangementSource(str(raw["title"]), url, published)


def _parse_entry(entry: Any, year: int, where: str) -> tuple[list[dt.date], str | None]:
    """One list item: a date, ``A..B``, ``{date: ..}`` or ``{from: .., to: ..}``, optional ``name``."""
    name: str | None = None
    if isinstance(entry, dict):
        unknown = set(entry) - {"date", "from", "to", "name"}
        if unknown:
            raise CalendarOverridesError(f"{where}: unknown key(s) {sorted(unknown)} in {entry!r}")
        name = str(entry["name"]).strip() if entry.get("name") else None
        if "date" in entry:
            first = last = _parse_date(entry["date"], where)
        elif "from" in entry and "to" in entry:
            first, last = _parse_date(entry["from"], where), _parse_date(entry["to"], where)
        else:
            raise CalendarOverridesError(f"{where}: {entry!r} needs `date` or `from` and `to`")
    elif isinstance(entry, str) and ".." in entry:
        left, _, right = entry.partition("..")
        first, last = _parse_date(left.strip(), where), _parse_date(right.strip(), where)
    else:
        first = last = _parse_date(entry, where)
    if last < first or (last - first).days >= _MAX_RANGE_DAYS:
        raise CalendarOverridesError(f"{where}: bad range {first}..{last}")
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    for day in days:
        # A notice for year Y may move days in December of Y-1 (New Year make-up days); nothing else.
        if day.year != year and not (day.year == year - 1 and day.month == 12):
            raise CalendarOverridesError(f"{where}: {day} is outside the {year} arrangement")
    return days, name


def _parse_date(raw: Any, where: str) -> dt.date:
    if isinstance(raw, dt.datetime):
        raise CalendarOverridesError(f"{where}: {raw} has a time; write a date (YYYY-MM-DD)")
    if isinstance(raw, dt.date):
        return raw
    try:
        return dt.date.fromisoformat(str(raw).strip())
    except ValueError:
        raise CalendarOverridesError(f"{where}: {raw!r} is not a date (YYYY-MM-DD)") from None


def write_statutory_file(years: range, path: Path = STATUTORY_PATH) -> None:
    """Write calendar_statutory.yaml for ``years`` from the ``holidays`` package."""
    lines = ["# Statutory public holidays of China for the years ahead, as holidays.China computes them (no",
             "# observed or substituted days; see content/calendar_data.py). Generated, not edited by hand:",
             f"#   python -m content.calendar_data {years.start} {years.stop - 1}",
             "# tests/test_calendar.py checks every year here against the installed package.",
             "years:"]
    for year in years:
        lines.append(f"  {year}:")
        lines += [f'    {day.isoformat()}: "{name}"' for day, name in sorted(holidays_statutory_year(year).items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    import sys

    first, last = (int(a) for a in sys.argv[1:3])
    write_statutory_file(range(first, last + 1))
