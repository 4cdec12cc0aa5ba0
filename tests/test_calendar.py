"""China working-day calendar: hand-checked deadlines, overrides, and invariants (hypothesis)."""

from __future__ import annotations

import datetime as dt
import functools
import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from content.calendar import (
    DEFAULT_OVERRIDES_PATH,
    CalendarOverridesError,
    ChinaCalendar,
    WorkingDayCount,
    china_calendar,
)

D = dt.date


def package_covers(year: int) -> bool:
    """Independent oracle: chinesecalendar raises NotImplementedError for years it has no data for."""
    try:
        chinese_calendar.is_workday(D(year, 7, 1))
    except NotImplementedError:
        return False
    return True


@pytest.fixture(scope="module")
def cal() -> ChinaCalendar:
    # Packages only, so a year an editor adds to the shipped overrides file cannot change these results.
    return ChinaCalendar(overrides_path=None)


# --------------------------------------------------------------------------------------------------
# Hand-checked working-day deadlines (official 2025/2026 State Council arrangements)


def test_facial_recognition_example_30_working_days_from_2025_09_20(cal: ChinaCalendar) -> None:
    # Trigger Sat 20 Sep 2025 (not counted). 2025 notice: 1-8 Oct off (National Day + Mid-Autumn),
    # Sun 28 Sep and Sat 11 Oct worked.
    #   Mon 22-Fri 26 Sep ........ 1-5
    #   Sun 28 Sep (make-up) ..... 6
    #   Mon 29, Tue 30 Sep ....... 7-8
    #   Wed 1-Wed 8 Oct .......... holiday
    #   Thu 9, Fri 10 Oct ........ 9-10
    #   Sat 11 Oct (make-up) ..... 11
    #   13-17 Oct ................ 12-16
    #   20-24 Oct ................ 17-21
    #   27-31 Oct ................ 22-26
    #   Mon 3, Tue 4, Wed 5 Nov .. 27-29
    #   Thu 6 Nov ................ 30  <- due (Tue 4 Nov is only the 28th)
    count = cal.add_working_days(D(2025, 9, 20), 30)
    assert count.due == D(2025, 11, 6)
    assert cal.working_days_between(D(2025, 9, 20), D(2025, 11, 4)) == 28
    assert count.makeup_days_counted == (D(2025, 9, 28), D(2025, 10, 11))
    assert [d for d, _ in count.holidays_skipped] == [D(2025, 10, d) for d in (1, 2, 3, 6, 7, 8)]
    assert dict(count.holidays_skipped)[D(2025, 10, 6)] == "Mid-Autumn Festival"
    # Weekends in (20 Sep, 6 Nov]: 21 Sep, 27/28 Sep, 4/5, 11/12, 18/19, 25/26 Oct, 1/2 Nov = 13,
    # of which 28 Sep and 11 Oct were worked.
    assert count.weekend_days_skipped == 11
    assert not count.estimate and count.estimated_years == ()
    assert count.explain() == [
        "Skipped public holidays: 1–8 Oct 2025 (National Day, Mid-Autumn Festival)",
        "Counted make-up working days: Sun 28 Sep 2025, Sat 11 Oct 2025",
        "Skipped weekend days: 11",
    ]


def test_spring_festival_2026_ten_working_days_from_2026_02_10(cal: ChinaCalendar) -> None:
    # 2026 notice: 15-23 Feb off (9 days), Sat 14 Feb and Sat 28 Feb worked.
    #   Wed 11, Thu 12, Fri 13 Feb .. 1-3
    #   Sat 14 Feb (make-up) ........ 4
    #   Sun 15-Mon 23 Feb ........... holiday
    #   Tue 24-Fri 27 Feb ........... 5-8
    #   Sat 28 Feb (make-up) ........ 9
    #   Sun 1 Mar ................... weekend
    #   Mon 2 Mar ................... 10 <- due
    count = cal.add_working_days(D(2026, 2, 10), 10)
    assert count.due == D(2026, 3, 2)
    assert count.makeup_days_counted == (D(2026, 2, 14), D(2026, 2, 28))
    assert [d for d, _ in count.holidays_skipped] == [D(2026, 2, d) for d in (16, 17, 18, 19, 20, 23)]
    assert count.explain()[:2] == [
        "Skipped public holidays: 15–23 Feb 2026 (Spring Festival)",
        "Counted make-up working days: Sat 14 Feb 2026, Sat 28 Feb 2026",
    ]


def test_spring_festival_2025_five_working_days_from_2025_01_24(cal: ChinaCalendar) -> None:
    # 2025 notice: 28 Jan-4 Feb off, Sun 26 Jan and Sat 8 Feb worked.
    #   Sat 25 Jan ............... weekend
    #   Sun 26 Jan (make-up) ..... 1
    #   Mon 27 Jan ............... 2
    #   Tue 28 Jan-Tue 4 Feb ..... holiday
    #   Wed 5, Thu 6, Fri 7 Feb .. 3-5 <- due Fri 7 Feb
    count = cal.add_working_days(D(2025, 1, 24), 5)
    assert count.due == D(2025, 2, 7)
    assert count.makeup_days_counted == (D(2025, 1, 26),)
    assert count.explain()[0] == "Skipped public holidays: 28 Jan–4 Feb 2025 (Spring Festival)"


def test_due_date_can_be_a_make_up_saturday(cal: ChinaCalendar) -> None:
    # From Tue 4 Feb 2025 (last holiday day): Wed 5, Thu 6, Fri 7 Feb = 1-3; Sat 8 Feb is a make-up
    # working day = 4. A plain Monday-Friday count would say Mon 10 Feb.
    count = cal.add_working_days(D(2025, 2, 4), 4)
    assert count.due == D(2025, 2, 8)
    assert count.due.weekday() == 5
    assert cal.makeup_workday_for(D(2025, 2, 8)) == "Spring Festival"


def test_new_year_2026(cal: ChinaCalendar) -> None:
    # 2026 notice: 1-3 Jan off, Sun 4 Jan worked.
    #   Wed 31 Dec 2025 ...... 1
    #   Thu 1-Sat 3 Jan ...... holiday
    #   Sun 4 Jan (make-up) .. 2
    #   Mon 5 Jan ............ 3 <- due
    count = cal.add_working_days(D(2025, 12, 30), 3)
    assert count.due == D(2026, 1, 5)
    assert count.explain()[:2] == [
        "Skipped public holidays: 1–3 Jan 2026 (New Year's Day)",
        "Counted make-up working days: Sun 4 Jan 2026",
    ]


@pytest.mark.skipif(package_covers(2027), reason="chinesecalendar now has 2027: re-check this case by hand")
def test_crossing_into_2027_is_an_estimate_naming_the_year(cal: ChinaCalendar) -> None:
    # From Sun 20 Dec 2026: 21-25 Dec = 1-5, 28-31 Dec = 6-9, Fri 1 Jan 2027 is the statutory New
    # Year's Day (estimate: no 2027 notice in the data), 4-8 Jan = 10-14, Mon 11 Jan = 15 <- due.
    count = cal.add_working_days(D(2026, 12, 20), 15)
    assert count.due == D(2027, 1, 11)
    assert count.estimate and count.estimated_years == (2027,)
    assert count.holidays_skipped == ((D(2027, 1, 1), "New Year's Day"),)
    assert count.explain()[-1] == (
        "Estimate: 2027's official holiday arrangement is not published in our data; "
        "computed from weekends and statutory holidays."
    )
    # Ending in 2026 is still official, even though the start is close to the unknown year.
    assert not cal.add_working_days(D(2026, 12, 20), 9).estimate


@pytest.mark.skipif(package_covers(2027), reason="chinesecalendar now has 2027")
def test_estimate_uses_statutory_days_only_not_observed_guesses(cal: ChinaCalendar) -> None:
    # holidays.China(2027) adds "(observed)" Mondays/Tuesdays after weekend holidays; China does not
    # work that way, so the estimate keeps them as working days.
    assert not cal.is_working_day(D(2027, 2, 8))  # Spring Festival day 3 (Mon), statutory
    assert cal.holiday_name(D(2027, 2, 5)) == "Spring Festival"  # New Year's Eve (statutory since 2025)
    assert cal.is_working_day(D(2027, 2, 9))  # "Chinese New Year (observed)" in holidays
    assert cal.is_working_day(D(2027, 5, 3))  # "Labor Day (observed)" in holidays
    assert cal.is_working_day(D(2027, 10, 4))  # "National Day (observed)" in holidays
    assert not cal.is_working_day(D(2027, 10, 1))
    assert cal.makeup_workday_for(D(2027, 9, 26)) is None  # no make-up days are guessed


def test_several_estimated_years_are_all_named(cal: ChinaCalendar) -> None:
    first_unknown = next(y for y in range(2026, 2100) if not package_covers(y))
    count = cal.add_working_days(D(first_unknown, 12, 1), 300)
    assert count.estimated_years == (first_unknown, first_unknown + 1, first_unknown + 2)
    assert f"{first_unknown}, {first_unknown + 1} and {first_unknown + 2}" in count.explain()[-1]


# --------------------------------------------------------------------------------------------------
# Calendar days and hours


def test_calendar_days_landing_on_a_holiday_are_not_moved(cal: ChinaCalendar) -> None:
    # Wed 24 Sep 2025 + 10 days = Sat 4 Oct 2025, inside the National Day break; next working day
    # is Thu 9 Oct.
    assert cal.add_calendar_days(D(2025, 9, 24), 10) == D(2025, 10, 4)
    count = cal.calendar_day_count(D(2025, 9, 24), 10)
    assert count.due == D(2025, 10, 4)
    assert not count.working_day and count.holiday == "National Day"
    assert count.next_working_day == D(2025, 10, 9) == cal.next_working_day(D(2025, 10, 4))
    assert count.explain() == [
        "Sat 4 Oct 2025 is not a working day in China (National Day); the next working day is Thu 9 Oct 2025."
    ]


def test_calendar_days_landing_on_a_make_up_sunday_or_a_plain_weekday(cal: ChinaCalendar) -> None:
    # Thu 18 Sep 2025 + 10 = Sun 28 Sep 2025, a make-up working day: nothing to move.
    count = cal.calendar_day_count(D(2025, 9, 18), 10)
    assert count.due == D(2025, 9, 28) and count.working_day and count.next_working_day is None
    assert count.makeup_for == "National Day"
    # Sat 20 Sep 2025 + 10 = Tue 30 Sep 2025, an ordinary working day.
    count = cal.calendar_day_count(D(2025, 9, 20), 10)
    assert count.due == D(2025, 9, 30) and count.working_day and count.explain() == []
    # A plain weekend: Mon 13 Oct 2025 + 5 = Sat 18 Oct; next working day Mon 20 Oct.
    count = cal.calendar_day_count(D(2025, 10, 13), 5)
    assert count.holiday is None and count.next_working_day == D(2025, 10, 20)
    assert "(a weekend)" in count.explain()[0]


def test_add_hours_keeps_the_timezone_and_counts_elapsed_time(cal: ChinaCalendar) -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    # 72 hours from 18:00 Tue 30 Sep 2025 Beijing time: 18:00 Fri 3 Oct (holidays do not matter).
    due = cal.add_hours(dt.datetime(2025, 9, 30, 18, 0, tzinfo=shanghai), 72)
    assert due == dt.datetime(2025, 10, 3, 18, 0, tzinfo=shanghai)
    assert due.tzinfo is shanghai
    # 24 elapsed hours across the US spring-forward (8-9 Mar 2025): 12:00 EST -> 13:00 EDT.
    new_york = ZoneInfo("America/New_York")
    due = cal.add_hours(dt.datetime(2025, 3, 8, 12, 0, tzinfo=new_york), 24)
    assert due.tzinfo is new_york
    assert (due.year, due.month, due.day, due.hour) == (2025, 3, 9, 13)
    assert due.astimezone(dt.UTC) == dt.datetime(2025, 3, 9, 17, 0, tzinfo=dt.UTC)
    # Naive datetimes are read as China time and stay naive.
    assert cal.add_hours(dt.datetime(2025, 1, 1, 9, 30), 1.5) == dt.datetime(2025, 1, 1, 11, 0)


# --------------------------------------------------------------------------------------------------
# Single-day queries and bad input


def test_single_day_queries(cal: ChinaCalendar) -> None:
    assert cal.holiday_name(D(2025, 10, 1)) == "National Day"
    assert cal.holiday_name(D(2025, 10, 4)) == "National Day"  # a weekend day inside the break
    assert cal.holiday_name(D(2025, 1, 29)) == "Spring Festival"
    assert cal.holiday_name(D(2025, 4, 4)) == "Qingming Festival"
    assert cal.holiday_name(D(2025, 5, 1)) == "Labour Day"
    assert cal.holiday_name(D(2015, 9, 3)) == "WWII Victory 70th Anniversary"
    assert cal.holiday_name(D(2025, 9, 28)) is None  # make-up day: a working day, not a holiday
    assert cal.makeup_workday_for(D(2025, 9, 28)) == "National Day"
    assert cal.holiday_name(D(2025, 9, 27)) is None  # ordinary Saturday
    assert cal.next_working_day(D(2025, 9, 30)) == D(2025, 10, 9)
    assert cal.previous_working_day(D(2025, 10, 9)) == D(2025, 9, 30)
    assert cal.is_official(2004) and cal.is_official(2025) and cal.is_official(2026)
    assert not cal.is_official(2003)
    # An aware datetime is read in China time: 20:00 on 30 Sep in New York is 1 Oct in Beijing.
    late = dt.datetime(2025, 9, 30, 20, 0, tzinfo=ZoneInfo("America/New_York"))
    assert not cal.is_working_day(late)


def test_working_days_between_is_signed(cal: ChinaCalendar) -> None:
    assert cal.working_days_between(D(2025, 9, 30), D(2025, 10, 9)) == 1
    assert cal.working_days_between(D(2025, 10, 9), D(2025, 9, 30)) == -1
    assert cal.working_days_between(D(2025, 10, 1), D(2025, 10, 8)) == 0
    assert cal.working_days_between(D(2025, 9, 20), D(2025, 9, 20)) == 0


def test_zero_returns_the_start_and_negative_raises(cal: ChinaCalendar) -> None:
    holiday = D(2025, 10, 3)
    zero = cal.add_working_days(holiday, 0)
    assert zero == WorkingDayCount(holiday, 0, holiday, (), (), 0, ())
    assert cal.subtract_working_days(holiday, 0) == holiday
    with pytest.raises(ValueError):
        cal.add_working_days(holiday, -1)
    with pytest.raises(ValueError):
        cal.subtract_working_days(holiday, -5)
    with pytest.raises(ValueError):
        cal.add_calendar_days(holiday, -1)
    with pytest.raises(ValueError):
        cal.add_hours(dt.datetime(2025, 1, 1, tzinfo=dt.UTC), -1)
    with pytest.raises(TypeError):
        cal.add_working_days(holiday, 2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cal.add_working_days("2025-10-03", 1)  # type: ignore[arg-type]


def test_every_day_2004_2026_matches_chinesecalendar(cal: ChinaCalendar) -> None:
    day = D(2004, 1, 1)
    while package_covers(day.year):
        assert cal.is_working_day(day) == chinese_calendar.is_workday(day), day
        day += dt.timedelta(days=1)
    assert day.year >= 2027


# --------------------------------------------------------------------------------------------------
# Overrides file

# A made-up 2027 arrangement (NOT the real one): off 1-3 Jan and 5-11 Feb, Sat 13 Feb worked, plus a
# make-up Saturday in the previous December (26 Dec 2026), as New Year notices sometimes have.
OVERRIDES_2027 = """\
years:
  2027:
    source:
      title: Test notice for 2027 (not real)
      url: https://www.gov.cn/example
      published: 2026-11-01
    holidays:
      - 2027-01-01..2027-01-03
      - 2027-02-05..2027-02-11
      - {from: 2027-10-01, to: 2027-10-07, name: National Day}
    workdays:
      - 2026-12-26
      - {date: 2027-02-13, name: Spring Festival}
      - 2027-09-26
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "overrides.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_overrides_make_a_year_official_and_change_the_count(tmp_path: Path, cal: ChinaCalendar) -> None:
    over = ChinaCalendar(write(tmp_path, OVERRIDES_2027))
    assert over.is_official(2027)
    assert "Test notice for 2027" in over.arrangement_source(2027)

    # From Thu 4 Feb 2027, 3 working days.
    # Override: 5-11 Feb off, Fri 12 = 1, Sat 13 (make-up) = 2, Sun 14 off, Mon 15 = 3.
    count = over.add_working_days(D(2027, 2, 4), 3)
    assert count.due == D(2027, 2, 15)
    assert count.makeup_days_counted == (D(2027, 2, 13),)
    assert not count.estimate
    assert over.holiday_name(D(2027, 2, 5)) == "Spring Festival"  # unnamed range: statutory name
    assert over.holiday_name(D(2027, 2, 10)) == "Spring Festival"  # ...and the break's name
    assert over.makeup_workday_for(D(2027, 9, 26)) == "National Day"  # unnamed: nearest break
    assert over.is_working_day(D(2027, 2, 13))
    if not package_covers(2027):
        # Estimate: statutory 5-8 Feb off, Tue 9 = 1, Wed 10 = 2, Thu 11 = 3.
        estimate = cal.add_working_days(D(2027, 2, 4), 3)
        assert estimate.due == D(2027, 2, 11) and estimate.estimated_years == (2027,)

    # The December spill-over: Sat 26 Dec 2026 becomes a working day (Thu 24 + 2 = Sat 26).
    assert over.is_working_day(D(2026, 12, 26)) and not cal.is_working_day(D(2026, 12, 26))
    assert over.add_working_days(D(2026, 12, 24), 2).due == D(2026, 12, 26)
    assert over.makeup_workday_for(D(2026, 12, 26)) == "New Year's Day"
    # The rest of 2026 still comes from the package.
    assert over.add_working_days(D(2026, 2, 10), 10).due == D(2026, 3, 2)


def test_overrides_take_precedence_over_the_package(tmp_path: Path) -> None:
    # A (fake) 2025 override with no holidays at all: 1 Oct 2025 becomes an ordinary Wednesday.
    path = write(
        tmp_path,
        """\
        years:
          2025:
            source: {title: fake, url: "https://example.org"}
            holidays: []
        """,
    )
    over = ChinaCalendar(path)
    assert over.is_working_day(D(2025, 10, 1))
    assert not over.is_working_day(D(2025, 9, 28))
    assert over.add_working_days(D(2025, 9, 30), 1).due == D(2025, 10, 1)


@pytest.mark.parametrize(
    "body, message",
    [
        ("years:\n  2027:\n    holidays: [2027-01-01]\n", "source"),
        (
            "years:\n  2027:\n    source: {title: t, url: 'https://x'}\n    workdays: [2027-01-04]\n",
            "Saturdays or Sundays",
        ),
        (
            "years:\n  2027:\n    source: {title: t, url: 'https://x'}\n"
            "    holidays: [2027-02-06]\n    workdays: [2027-02-06]\n",
            "both",
        ),
        ("years:\n  2027:\n    source: {title: t, url: 'https://x'}\n    holidays: [2072-01-01]\n", "outside"),
        (
            "years:\n  2027:\n    source: {title: t, url: 'https://x'}\n    holidays: ['2027-02-11..2027-02-05']\n",
            "bad range",
        ),
        ("years:\n  2027:\n    source: {title: t, url: 'https://x'}\n    holidays: [tomorrow]\n", "not a date"),
        ("years:\n  2027:\n    source: {title: t, url: 'https://x'}\n    holiday: []\n", "unknown"),
        ("2027: {}\n", "years"),
    ],
)
def test_bad_overrides_fail_loudly(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(CalendarOverridesError, match=message):
        ChinaCalendar(write(tmp_path, body))


def test_shipped_overrides_file_loads_and_default_calendar_is_shared() -> None:
    assert DEFAULT_OVERRIDES_PATH.exists()
    ChinaCalendar(DEFAULT_OVERRIDES_PATH)
    assert china_calendar() is china_calendar()


# --------------------------------------------------------------------------------------------------
# Properties over 2005-2030

starts = st.dates(min_value=D(2005, 1, 1), max_value=D(2030, 12, 31))
amounts = st.integers(min_value=1, max_value=400)
PROPERTY = settings(max_examples=300, deadline=None)


@PROPERTY
@given(start=starts, n=amounts)
def test_due_is_a_working_day_after_the_start_matching_a_day_by_day_count(start: D, n: int) -> None:
    cal = ChinaCalendar(overrides_path=None)
    count = cal.add_working_days(start, n)
    assert count.due > start
    assert cal.is_working_day(count.due)
    assert cal.working_days_between(start, count.due) == n
    # Independent of the bisect arithmetic: step one day at a time.
    day, seen = start, 0
    while seen < n:
        day += dt.timedelta(days=1)
        seen += cal.is_working_day(day)
    assert day == count.due
    # Every day in (start, due] is a working day, a weekday holiday, or a skipped weekend day.
    assert n + len(count.holidays_skipped) + count.weekend_days_skipped == (count.due - start).days
    assert all(d.weekday() >= 5 for d in count.makeup_days_counted)
    assert all(d.weekday() < 5 and start < d <= count.due for d, _ in count.holidays_skipped)


@PROPERTY
@given(start=starts, n=amounts)
def test_monotonic_in_n(start: D, n: int) -> None:
    cal = ChinaCalendar(overrides_path=None)
    assert cal.add_working_days(start, n + 1).due > cal.add_working_days(start, n).due
    assert cal.add_working_days(start, 1).due == cal.next_working_day(start)


@PROPERTY
@given(start=starts, n=amounts)
def test_subtract_inverts_add(start: D, n: int) -> None:
    # Provable: (start, due] holds exactly n working days, the last being due, so the n-th working
    # day before due is the last working day <= start: start itself when it is a working day.
    cal = ChinaCalendar(overrides_path=None)
    due = cal.add_working_days(start, n).due
    expected = start if cal.is_working_day(start) else cal.previous_working_day(start)
    assert cal.subtract_working_days(due, n) == expected
    # And the mirror: counting forward from n working days before start lands on the first working
    # day >= start.
    back = cal.subtract_working_days(start, n)
    expected = start if cal.is_working_day(start) else cal.next_working_day(start)
    assert cal.add_working_days(back, n).due == expected
    assert cal.working_days_between(start, back) == -cal.working_days_between(back, start)


@PROPERTY
@given(start=starts, n=amounts)
def test_estimate_iff_a_year_in_range_is_not_official(start: D, n: int) -> None:
    cal = ChinaCalendar(overrides_path=None)
    count = cal.add_working_days(start, n)
    first = (start + dt.timedelta(days=1)).year
    unknown = tuple(y for y in range(first, count.due.year + 1) if not package_covers(y))
    assert count.estimated_years == unknown
    assert count.estimate == bool(unknown)
    assert any(line.startswith("Estimate:") for line in count.explain()) == bool(unknown)


# --------------------------------------------------------------------------------------------------
# The start-up table: every supported year built once, counts equal to a plain day-by-day count


STATUTORY = {"New Year's Day", "Chinese New Year's Eve", "Chinese New Year (Spring Festival)", "Tomb-Sweeping Day",
             "Labor Day", "Dragon Boat Festival", "Mid-Autumn Festival", "National Day"}


@functools.cache
def oracle_is_working_day(day: D) -> bool:
    """Independent of our tables: chinesecalendar's own per-day answer where it has the year, else a
    plain weekend + statutory-holiday rule straight from the holidays package (the estimate). Cached per
    day only to keep the property test quick; each answer is still the packages' own."""
    if package_covers(day.year):
        return chinese_calendar.is_workday(day)
    names = str(statutory_year(day.year).get(day, "")).split("; ")
    return day.weekday() < 5 and not any(n in STATUTORY for n in names)


@functools.cache
def statutory_year(year: int):
    import holidays

    return holidays.China(years=year, observed=False, language="en_US")


def day_by_day(start: D, n: int) -> D:
    day, seen = start, 0
    while seen < n:
        day += dt.timedelta(days=1)
        seen += oracle_is_working_day(day)
    return day


wide_starts = st.dates(min_value=D(2004, 1, 1), max_value=D(2034, 12, 31))


@settings(max_examples=200, deadline=None)
@given(start=wide_starts, n=st.integers(min_value=0, max_value=600))
def test_bisect_arithmetic_equals_a_day_by_day_count(cal: ChinaCalendar, start: D, n: int) -> None:
    # Inside the start-up table, across its end, and past it (years built on first use) alike.
    due = cal.add_working_days(start, n).due
    assert due == day_by_day(start, n)
    assert cal.working_days_between(start, due) == n
    if n:
        # Back from due: the n-th working day before it is the last working day on or before start.
        back, seen = due, 0
        while seen < n:
            back -= dt.timedelta(days=1)
            seen += oracle_is_working_day(back)
        assert cal.subtract_working_days(due, n) == back


def test_every_supported_year_is_built_at_start_up_and_counting_builds_none(monkeypatch) -> None:
    cal = ChinaCalendar(overrides_path=None)
    first_package, last_package = min(chinese_calendar.constants.holidays).year, max(
        chinese_calendar.constants.holidays).year
    assert cal.supported.start == first_package
    assert cal.supported.stop - 1 >= max(last_package, dt.date.today().year) + 1  # some estimated years too

    def no_building(*_args):
        raise AssertionError("a year's table was built while counting")

    monkeypatch.setattr(ChinaCalendar, "_build_year", no_building)
    for year in cal.supported:
        count = cal.add_working_days(D(year, 1, 1), 30)
        assert cal.working_days_between(D(year, 1, 1), count.due) == 30
        assert cal.subtract_working_days(D(year, 12, 31), 5) < D(year, 12, 31)
        cal.is_working_day(D(year, 6, 1))
    # Outside the table a year is still built (once) on first use, not refused.
    monkeypatch.undo()
    assert cal.add_working_days(D(cal.supported.stop + 5, 3, 1), 1).due > D(cal.supported.stop + 5, 3, 1)


def test_package_tables_match_the_packages_per_day_answers(cal: ChinaCalendar) -> None:
    # The tables are read from chinesecalendar's data in one pass; every day of every year it has must
    # be what its own get_holiday_detail says.
    for year in cal.supported:
        if not package_covers(year):
            continue
        day = D(year, 1, 1)
        while day.year == year:
            is_off, raw = chinese_calendar.get_holiday_detail(day)
            assert cal.is_working_day(day) == (not is_off), day
            assert (cal.holiday_name(day) is not None) == (is_off and raw is not None), day
            assert (cal.makeup_workday_for(day) is not None) == (not is_off and raw is not None
                                                                 and day.weekday() >= 5), day
            day += dt.timedelta(days=1)


LAZY_ESTIMATES = ChinaCalendar(overrides_path=None, estimates_ahead=0)


@settings(max_examples=100, deadline=None)
@given(start=wide_starts, n=st.integers(min_value=0, max_value=600))
def test_a_calendar_that_builds_estimates_on_first_use_counts_the_same(cal: ChinaCalendar, start: D, n: int) -> None:
    # The command line's calendar (chinadesk ask) leaves estimated years to first use; same answers.
    assert LAZY_ESTIMATES.supported.stop <= cal.supported.stop
    a, b = cal.add_working_days(start, n), LAZY_ESTIMATES.add_working_days(start, n)
    assert a == b
    assert cal.subtract_working_days(start, n) == LAZY_ESTIMATES.subtract_working_days(start, n)


def test_statutory_file_matches_the_holidays_package() -> None:
    """calendar_statutory.yaml (read at run time instead of importing ``holidays``) says what the installed
    package computes, year by year; if a release of the package moves a day, regenerate the file."""
    from content.calendar_data import _statutory_file, holidays_statutory_year

    years = _statutory_file()
    assert len(years) >= 5 and min(years) <= dt.date.today().year + 1
    for year, days in years.items():
        assert days == holidays_statutory_year(year), f"{year}: run python -m content.calendar_data"


def test_the_server_calendar_does_not_import_holidays() -> None:
    """The years ahead are read from the file: building the server's calendar loads no ``holidays``
    module (302 of them and ~17 MiB once its China entity is built)."""
    import subprocess
    import sys

    code = ("import sys; from content.calendar import ChinaCalendar; ChinaCalendar(); "
            "print(sorted(m for m in sys.modules if m == 'holidays' or m.startswith('holidays.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
