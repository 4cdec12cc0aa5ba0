"""Computed deadlines, as a team would read them."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st


async def test_facial_recognition_counts_national_day_and_make_up_days(ask):
    # From Sat 20 Sep 2025: 22-26 Sep (5), Sun 28 Sep make-up day (6), 29-30 Sep (8), 1-8 Oct holiday,
    # 9-10 Oct (10), Sat 11 Oct make-up day (11), then 13 Oct.. 6 Nov weekdays (12..30).
    reply = await ask("/china-filing facial-recognition from 2025-09-20")
    assert reply.kind == "deadline"
    assert reply.as_json()["deadline"] == "2025-11-06"
    assert reply.deadline.estimate is False
    counted = " ".join(reply.deadline.counted)
    assert "National Day" in counted
    assert "28 Sep 2025" in counted and "11 Oct 2025" in counted
    assert "30 working days" in reply.text
    assert any("CAC" in s.title or "cac" in s.url for s in reply.sources)


async def test_reached_and_since_mean_from(ask):
    a = await ask("/china-filing frt from 2025-09-20")
    b = await ask("/china-filing face reached 2025-09-20")
    c = await ask("/china-filing 人脸识别 since 2025-09-20")
    assert a.as_json()["deadline"] == b.as_json()["deadline"] == c.as_json()["deadline"]


async def test_follow_on_steps_are_dated_after_the_deadline(ask):
    reply = await ask("/china-filing facial-recognition from 2025-09-20")
    dated = [s for s in reply.steps if s.date]
    assert dated, "the CAC review period should be dated"
    assert all(s.date > dt.date(2025, 11, 6) for s in dated)
    assert dated == sorted(dated, key=lambda s: s.date)
    assert "15 working days" in reply.text


async def test_range_past_the_official_data_is_an_estimate(ask):
    reply = await ask("/china-filing facial-recognition from 2026-12-15")
    assert reply.kind == "deadline"
    assert reply.deadline.estimate is True
    assert any("Estimate" in c for c in reply.caveats)
    assert "2027" in " ".join(reply.deadline.counted)


async def test_status_counts_working_days_from_today(ask):
    reply = await ask("/china-filing facial-recognition from 2025-09-20")  # "today" is 22 Sep 2025
    status = next(f.value for f in reply.fields if f.label == "Status")
    assert status.startswith("29 working days from today")


async def test_filing_without_a_fixed_deadline_says_so(ask, library):
    no_rule = [t for t in library.of_kind("filing") if t.deadline is None]
    if not no_rule:
        return
    reply = await ask(f"/china-filing {no_rule[0].id} from 2025-09-20")
    assert reply.kind == "error"
    assert "no fixed" in reply.text


async def test_hour_and_calendar_day_rules(ask, library):
    for topic in library.of_kind("filing"):
        if topic.deadline and topic.deadline.unit != "working_days":
            reply = await ask(f"/china-filing {topic.id} from 2025-09-20")
            assert reply.kind == "deadline", reply.text
            due = reply.deadline.due
            if topic.deadline.unit == "hours":
                assert isinstance(due, dt.datetime)
                assert due - reply.deadline.start == dt.timedelta(hours=topic.deadline.amount)
            else:
                assert due == dt.date(2025, 9, 20) + dt.timedelta(days=topic.deadline.amount)


@settings(max_examples=60, deadline=None)
@given(day=st.dates(min_value=dt.date(2010, 1, 1), max_value=dt.date(2030, 12, 31)))
def test_deadline_reply_always_lands_on_a_working_day(library, day):
    from content.calendar import china_calendar
    from handlers.filing import deadline_reply

    reply = deadline_reply(library, library.topics["facial-recognition"], day, today=dt.date(2025, 1, 1))
    assert china_calendar().is_working_day(reply.deadline.due)
    assert reply.deadline.due > day


async def test_a_date_without_leading_zeros_is_the_same_day(ask) -> None:
    """Regression (issue 12): ``from 2025-9-20`` was refused as "September 2025 has 30 days"."""
    padded = await ask("/china-filing facial-recognition from 2025-09-20")
    short = await ask("/china-filing facial-recognition from 2025-9-20")
    assert short.kind == "deadline", short.text
    assert short.deadline.due == padded.deadline.due and short.deadline.start == padded.deadline.start
    assert (await ask("/china-filing facial-recognition from 2025-2-30")).kind == "error"
