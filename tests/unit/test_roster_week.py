"""The roster's week grid: local days, nights owned by the day they begin, holidays, and
windows written back in the syntax they are typed in."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from telerad.workflow.roster.rules import CoverageWindow, DayKind, french_holidays, no_holidays
from telerad.workflow.roster.week import (
    Span,
    by_start_day,
    days_of,
    describe,
    monday_of,
    openings,
    week_span,
)
from telerad.workflow.sites.contracts import parse_window

PARIS = ZoneInfo("Europe/Paris")


def test_monday_of_any_day_and_the_seven_days() -> None:
    assert monday_of(dt.date(2026, 11, 24)) == dt.date(2026, 11, 23)
    assert monday_of(dt.date(2026, 11, 29)) == dt.date(2026, 11, 23)
    assert monday_of(dt.date(2026, 11, 23)) == dt.date(2026, 11, 23)
    assert days_of(dt.date(2026, 11, 23))[-1] == dt.date(2026, 11, 29)


def test_the_week_the_clocks_go_back_lasts_169_hours() -> None:
    start, end = week_span(dt.date(2026, 10, 19), PARIS)  # Sunday 25: clocks go back
    assert start == dt.datetime(2026, 10, 18, 22, 0, tzinfo=dt.UTC)  # Monday 00:00 CEST
    assert end - start == dt.timedelta(hours=169)
    start, end = week_span(dt.date(2026, 11, 23), PARIS)
    assert end - start == dt.timedelta(hours=168)


def test_a_night_belongs_to_the_day_it_begins() -> None:
    days = days_of(dt.date(2026, 11, 23))
    night = (dt.datetime(2026, 11, 24, 18, 30, tzinfo=PARIS),
             dt.datetime(2026, 11, 25, 8, 0, tzinfo=PARIS))
    sunday = (dt.datetime(2026, 11, 22, 18, 30, tzinfo=PARIS),
              dt.datetime(2026, 11, 23, 8, 0, tzinfo=PARIS))
    late = (dt.datetime(2026, 11, 30, 18, 30, tzinfo=PARIS),
            dt.datetime(2026, 12, 1, 8, 0, tzinfo=PARIS))
    grouped = by_start_day([night, late, sunday], start_of=lambda s: s[0], zone=PARIS,
                           days=days)
    assert grouped[dt.date(2026, 11, 24)] == [night]
    assert grouped[dt.date(2026, 11, 23)] == [sunday]  # still running on Monday
    assert sum(len(v) for v in grouped.values()) == 2  # next week's night is not shown


def test_span_labels_a_night_and_a_midnight_end() -> None:
    night = Span(start=dt.datetime(2026, 11, 24, 18, 30, tzinfo=PARIS),
                 end=dt.datetime(2026, 11, 25, 8, 0, tzinfo=PARIS))
    assert (night.label, night.next_day) == ("18:30\u201308:00", True)
    evening = Span(start=dt.datetime(2026, 11, 24, 18, 30, tzinfo=PARIS),
                   end=dt.datetime(2026, 11, 25, 0, 0, tzinfo=PARIS))
    assert (evening.label, evening.next_day) == ("18:30\u201324:00", False)


def test_openings_follow_day_kinds_and_holidays() -> None:
    windows = [parse_window("weekdays 08:00-18:30"), parse_window("weekends,holiday 08:00-08:00")]
    days = days_of(dt.date(2026, 12, 21))  # Christmas on Friday 25
    found = openings(windows, zone=PARIS, is_holiday=french_holidays(), days=days)
    assert [s.label for s in found[dt.date(2026, 12, 24)]] == ["08:00\u201318:30"]
    christmas = found[dt.date(2026, 12, 25)]
    assert [s.label for s in christmas] == ["08:00\u201308:00"]
    assert christmas[0].next_day
    assert [s.label for s in found[dt.date(2026, 12, 26)]] == ["08:00\u201308:00"]
    plain = openings(windows, zone=PARIS, is_holiday=no_holidays, days=days)
    assert [s.label for s in plain[dt.date(2026, 12, 25)]] == ["08:00\u201318:30"]


@pytest.mark.parametrize("text", ["every 18:30-08:00", "weekdays 08:00-18:30",
                                  "weekends,holiday 08:00-08:00", "mon,fri 07:00-19:00",
                                  "weekdays,sat 12:00-14:00", "holiday 00:00-00:00"])
def test_describe_gives_back_what_parse_window_reads(text: str) -> None:
    window = parse_window(text)
    assert describe(window) == text
    assert parse_window(describe(window)) == window


def test_describe_groups_what_it_can() -> None:
    window = CoverageWindow(days=frozenset({DayKind.SATURDAY, DayKind.SUNDAY,
                                            DayKind.MONDAY}),
                            start=dt.time(8), end=dt.time(20))
    assert describe(window) == "weekends,mon 08:00-20:00"
