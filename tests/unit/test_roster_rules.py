"""Coverage windows and duty: nights across midnight, daylight saving, French holidays."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telerad.workflow.roster.rules import (
    EVERY_DAY,
    WEEKDAYS,
    WEEKENDS_AND_HOLIDAYS,
    CoverageWindow,
    DayKind,
    Shift,
    french_holidays,
    gaps,
    intervals,
    is_covered_time,
    no_holidays,
    on_duty,
)

PARIS = ZoneInfo("Europe/Paris")
FRANCE = french_holidays()
CT_NIGHTS = CoverageWindow(days=EVERY_DAY, start=dt.time(18, 30), end=dt.time(8, 0))
CT_WEEKENDS = CoverageWindow(days=WEEKENDS_AND_HOLIDAYS, start=dt.time(0, 0), end=dt.time(0, 0))
MRI_DAYS = CoverageWindow(days=WEEKDAYS, start=dt.time(8, 0), end=dt.time(18, 30))


def paris(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS)


def covered(windows: list[CoverageWindow], instant: dt.datetime) -> bool:
    return is_covered_time(windows, instant, zone=PARIS, is_holiday=FRANCE)


@pytest.mark.parametrize(("instant", "expected"), [
    (paris(2026, 11, 24, 18, 29), False),
    (paris(2026, 11, 24, 18, 30), True),
    (paris(2026, 11, 24, 23, 59), True),
    (paris(2026, 11, 25, 0, 0), True),
    (paris(2026, 11, 25, 7, 59), True),
    (paris(2026, 11, 25, 8, 0), False),
])
def test_a_night_crosses_midnight(instant: dt.datetime, expected: bool) -> None:
    assert covered([CT_NIGHTS], instant) is expected


def test_nights_last_what_they_really_last_across_daylight_saving() -> None:
    def night(day: dt.date) -> dt.timedelta:
        ((opens, closes),) = intervals([CT_NIGHTS], zone=PARIS, is_holiday=no_holidays,
                                       start=paris(day.year, day.month, day.day, 12, 0),
                                       end=paris(day.year, day.month, day.day, 12, 0)
                                       + dt.timedelta(days=1))
        return closes - opens

    assert night(dt.date(2026, 11, 24)) == dt.timedelta(hours=13, minutes=30)
    assert night(dt.date(2026, 10, 24)) == dt.timedelta(hours=14, minutes=30)  # clocks back
    assert night(dt.date(2026, 3, 28)) == dt.timedelta(hours=12, minutes=30)  # clocks forward
    # 02:30 happens twice the night clocks go back: both are covered.
    first = dt.datetime(2026, 10, 25, 2, 30, tzinfo=PARIS, fold=0)
    second = dt.datetime(2026, 10, 25, 2, 30, tzinfo=PARIS, fold=1)
    assert first.astimezone(dt.UTC) != second.astimezone(dt.UTC)
    assert covered([CT_NIGHTS], first)
    assert covered([CT_NIGHTS], second)


def test_holidays_replace_their_weekday() -> None:
    christmas_noon = paris(2026, 12, 25, 12, 0)  # a Friday
    assert not covered([MRI_DAYS], christmas_noon)
    assert covered([CT_WEEKENDS], christmas_noon)
    assert covered([MRI_DAYS], paris(2026, 12, 24, 12, 0))
    assert covered([CT_WEEKENDS], paris(2026, 11, 28, 15, 0))  # a Saturday
    assert not covered([CT_WEEKENDS], paris(2026, 11, 27, 15, 0))  # a Friday
    # Alsace-Moselle keeps Saint Stephen's day.
    stephen = paris(2026, 12, 26, 12, 0)
    assert is_covered_time([CoverageWindow(days=frozenset({DayKind.HOLIDAY}), start=dt.time(0),
                                           end=dt.time(0))], stephen, zone=PARIS,
                           is_holiday=french_holidays("57"))
    assert not is_covered_time([MRI_DAYS], stephen, zone=PARIS, is_holiday=FRANCE)


def test_on_duty_and_back_ups() -> None:
    night = Shift(radiologist_id=1, team="imadis", start=paris(2026, 11, 24, 18, 30),
                  end=paris(2026, 11, 25, 8, 0))
    backup = Shift(radiologist_id=2, team="imadis", start=paris(2026, 11, 24, 18, 30),
                   end=paris(2026, 11, 25, 8, 0), backup=True)
    local = Shift(radiologist_id=3, team="local", start=paris(2026, 11, 24, 8, 0),
                  end=paris(2026, 11, 24, 18, 30))
    shifts = [backup, local, night]
    assert on_duty(shifts, paris(2026, 11, 25, 3, 0)) == [night, backup]
    assert on_duty(shifts, paris(2026, 11, 24, 12, 0)) == [local]
    assert on_duty(shifts, paris(2026, 11, 25, 3, 0), team="local") == []
    with pytest.raises(ValueError):
        Shift(radiologist_id=1, team="x", start=paris(2026, 1, 2, 0), end=paris(2026, 1, 1, 0))


def test_a_week_with_an_uncovered_night_is_reported() -> None:
    monday = dt.date(2026, 11, 23)
    shifts = [
        Shift(radiologist_id=1, team="imadis",
              start=dt.datetime.combine(monday + dt.timedelta(days=n), dt.time(18, 30),
                                        tzinfo=PARIS),
              end=dt.datetime.combine(monday + dt.timedelta(days=n + 1), dt.time(8, 0),
                                      tzinfo=PARIS))
        for n in range(7) if n != 3  # nobody on Thursday night
    ]
    found = list(gaps([CT_NIGHTS], shifts, zone=PARIS, is_holiday=FRANCE,
                      start=paris(2026, 11, 23, 12, 0), end=paris(2026, 11, 30, 12, 0)))
    assert found == [(paris(2026, 11, 26, 18, 30).astimezone(dt.UTC),
                      paris(2026, 11, 27, 8, 0).astimezone(dt.UTC))]
    # A back-up alone does not close the gap.
    backup = Shift(radiologist_id=9, team="imadis", start=paris(2026, 11, 26, 18, 30),
                   end=paris(2026, 11, 27, 8, 0), backup=True)
    assert len(list(gaps([CT_NIGHTS], [*shifts, backup], zone=PARIS, is_holiday=FRANCE,
                         start=paris(2026, 11, 23, 12, 0), end=paris(2026, 11, 30, 12, 0)))) == 1


@settings(max_examples=300, deadline=None)
@given(minutes=st.integers(min_value=0, max_value=366 * 24 * 60))
def test_covered_agrees_with_local_clock_reading(minutes: int) -> None:
    instant = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minutes)
    local = instant.astimezone(PARIS)
    clock = local.time()
    night = clock >= dt.time(18, 30) or clock < dt.time(8, 0)
    assert covered([CT_NIGHTS], instant) is night
    working_day = local.weekday() < 5 and not FRANCE(local.date())
    assert covered([MRI_DAYS], instant) is (working_day and dt.time(8) <= clock < dt.time(18, 30))
