"""The roster's week as a coordinator reads it: seven local days of one site, each day with
the shifts that begin on it, the coverage windows that open on it and the gaps that begin
on it. Pure: the caller fetches shifts and gaps (``service.roster_gaps``).

A night belongs to the day it begins (18:30 Tuesday to 08:00 Wednesday is Tuesday's
night), as rosters and contracts say it. Something already running when the week begins
(Sunday's night) shows on its Monday.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar
from zoneinfo import ZoneInfo

from telerad.workflow.roster.rules import (
    EVERY_DAY,
    WEEKDAYS,
    CoverageWindow,
    DayKind,
    HolidayCalendar,
    day_kind,
)

T = TypeVar("T")
_WEEKENDS = frozenset({DayKind.SATURDAY, DayKind.SUNDAY})


def monday_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def days_of(monday: dt.date) -> list[dt.date]:
    return [monday + dt.timedelta(days=n) for n in range(7)]


def week_span(monday: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """From Monday's local midnight to the next Monday's (a DST week lasts 167 or 169 h)."""
    start = dt.datetime.combine(monday, dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(monday + dt.timedelta(days=7), dt.time(0), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


@dataclass(frozen=True, kw_only=True)
class Span:
    """Two instants in the site's local time."""

    start: dt.datetime
    end: dt.datetime

    @property
    def next_day(self) -> bool:
        """Ends on a later local day than it begins (a night)."""
        return self.end.date() > self.start.date() and self.end.time() != dt.time(0)

    @property
    def label(self) -> str:
        """``18:30-08:00`` with an en dash (24:00 for a midnight end on the day after)."""
        end = "24:00" if (self.end.time() == dt.time(0) and self.end.date() > self.start.date()
                          ) else self.end.strftime("%H:%M")
        return f"{self.start:%H:%M}\u2013{end}"  # an en dash


def local_span(start: dt.datetime, end: dt.datetime, zone: ZoneInfo) -> Span:
    return Span(start=start.astimezone(zone), end=end.astimezone(zone))


def by_start_day(items: Iterable[T], *, start_of: Callable[[T], dt.datetime],
                 zone: ZoneInfo, days: list[dt.date]) -> dict[dt.date, list[T]]:
    """Each item under the local day it begins on, by start; before the first day: on it."""
    grouped: dict[dt.date, list[T]] = {day: [] for day in days}
    for item in sorted(items, key=start_of):
        day = max(start_of(item).astimezone(zone).date(), days[0])
        if day in grouped:
            grouped[day].append(item)
    return grouped


def openings(windows: Iterable[CoverageWindow], *, zone: ZoneInfo,
             is_holiday: HolidayCalendar, days: list[dt.date]) -> dict[dt.date, list[Span]]:
    """The coverage each day opens (as ``rules.intervals`` counts it: a holiday is a day of
    kind HOLIDAY, not its weekday), by start."""
    windows = list(windows)
    found: dict[dt.date, list[Span]] = {}
    for day in days:
        kind = day_kind(day, is_holiday)
        spans = [local_span(*w.interval(day, zone), zone) for w in windows if kind in w.days]
        found[day] = sorted(spans, key=lambda s: s.start)
    return found


def day_groups(days: frozenset[DayKind]) -> list[str]:
    """A window's days as ``parse_window`` reads them: "every", "weekdays", "weekends",
    then single kinds (mon..sun, holiday) — so what a page shows can be typed back."""
    if days == EVERY_DAY:
        return ["every"]
    rest = set(days)
    groups: list[str] = []
    for name, group in (("weekdays", WEEKDAYS), ("weekends", _WEEKENDS)):
        if group <= rest:
            groups.append(name)
            rest -= group
    return groups + [kind.value for kind in DayKind if kind in rest]


def describe(window: CoverageWindow) -> str:
    """The window in ``parse_window``'s syntax: ``"weekends,holiday 08:00-18:30"``."""
    return f"{','.join(day_groups(window.days))} {window.start:%H:%M}-{window.end:%H:%M}"
