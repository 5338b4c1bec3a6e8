"""Who must be covered when, and who is on duty: pure rules, timezone-aware.

A contract's coverage windows are written in the site's local time ("CT every night
18:30-08:00; weekends and public holidays 24 h; MRI weekdays 08:00-18:30"). A window opens on
each day of the kinds it lists and closes at its end time, the next day if the end is not
after the start (a night), and 24 hours of wall-clock time later when start and end are
equal. A public holiday is a day of kind HOLIDAY instead of its weekday: a weekday window
does not open on Christmas, a holiday window does.

Windows become real intervals of instants only through the site's zone, so nights across
a daylight-saving change last what they really last (14 h 30 the night clocks go back from
18:30 to 08:00, 12 h 30 the night they go forward), and rules compare instants, never
local clock readings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

import holidays as holiday_calendars


class DayKind(StrEnum):
    """The kind of a local calendar day, as coverage windows name them."""

    MONDAY = "mon"
    """A Monday that is not a public holiday (likewise for the other weekdays)."""
    TUESDAY = "tue"
    """A Tuesday that is not a public holiday."""
    WEDNESDAY = "wed"
    """A Wednesday that is not a public holiday."""
    THURSDAY = "thu"
    """A Thursday that is not a public holiday."""
    FRIDAY = "fri"
    """A Friday that is not a public holiday."""
    SATURDAY = "sat"
    """A Saturday that is not a public holiday."""
    SUNDAY = "sun"
    """A Sunday that is not a public holiday."""
    HOLIDAY = "holiday"
    """A public holiday of the site's calendar, whatever its weekday."""


WEEKDAYS = frozenset({DayKind.MONDAY, DayKind.TUESDAY, DayKind.WEDNESDAY, DayKind.THURSDAY,
                      DayKind.FRIDAY})
EVERY_DAY = frozenset(DayKind)
WEEKENDS_AND_HOLIDAYS = frozenset({DayKind.SATURDAY, DayKind.SUNDAY, DayKind.HOLIDAY})
_BY_WEEKDAY = (DayKind.MONDAY, DayKind.TUESDAY, DayKind.WEDNESDAY, DayKind.THURSDAY,
               DayKind.FRIDAY, DayKind.SATURDAY, DayKind.SUNDAY)

#: The longest shift the roster accepts (a weekend's on-call and then some): bounds the
#: search for the shifts running at an instant.
MAX_SHIFT = dt.timedelta(hours=72)

#: Answers whether a local date is a public holiday at the site.
HolidayCalendar = Callable[[dt.date], bool]


def french_holidays(subdivision: str | None = None) -> HolidayCalendar:
    """The French public holidays (``holidays`` package), per département where it matters
    (``"57"``, ``"67"``, ``"68"``: Alsace-Moselle adds Good Friday and 26 December)."""
    calendar = holiday_calendars.country_holidays("FR", subdiv=subdivision)
    return lambda day: day in calendar


def no_holidays(_day: dt.date) -> bool:
    return False


def day_kind(day: dt.date, is_holiday: HolidayCalendar) -> DayKind:
    return DayKind.HOLIDAY if is_holiday(day) else _BY_WEEKDAY[day.weekday()]


@dataclass(frozen=True, kw_only=True)
class CoverageWindow:
    """When reading must be covered, in the site's local time."""

    days: frozenset[DayKind]
    start: dt.time
    end: dt.time

    def __post_init__(self) -> None:
        if not self.days:
            raise ValueError("a coverage window opens on at least one kind of day")

    def interval(self, day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
        """The instants (UTC) the window covers when it opens on local ``day``."""
        end_day = day if self.end > self.start else day + dt.timedelta(days=1)
        opens = dt.datetime.combine(day, self.start, tzinfo=zone)
        closes = dt.datetime.combine(end_day, self.end, tzinfo=zone)
        return opens.astimezone(dt.UTC), closes.astimezone(dt.UTC)


@dataclass(frozen=True, kw_only=True)
class Shift:
    """A radiologist on duty between two instants, for a team, primary or back-up."""

    radiologist_id: int
    team: str
    start: dt.datetime
    end: dt.datetime
    backup: bool = False

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("shift times must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("a shift ends after it starts")
        if self.end - self.start > MAX_SHIFT:
            raise ValueError(f"a shift lasts at most {MAX_SHIFT.total_seconds() / 3600:g} hours")

    def covers(self, instant: dt.datetime) -> bool:
        return self.start <= instant < self.end


def intervals(
    windows: Iterable[CoverageWindow], *, zone: ZoneInfo, is_holiday: HolidayCalendar,
    start: dt.datetime, end: dt.datetime,
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The merged intervals (UTC) the windows cover between ``start`` and ``end``."""
    windows = list(windows)
    raw: list[tuple[dt.datetime, dt.datetime]] = []
    # A window that opened the day before may still be open: start one local day early.
    day = start.astimezone(zone).date() - dt.timedelta(days=1)
    last = end.astimezone(zone).date()
    while day <= last:
        kind = day_kind(day, is_holiday)
        for window in windows:
            if kind in window.days:
                opens, closes = window.interval(day, zone)
                if closes > start and opens < end:
                    raw.append((max(opens, start), min(closes, end)))
        day += dt.timedelta(days=1)
    return _merge(raw)


def _merge(spans: list[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    merged: list[tuple[dt.datetime, dt.datetime]] = []
    for opens, closes in sorted(spans):
        if merged and opens <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], closes))
        else:
            merged.append((opens, closes))
    return merged


def is_covered_time(
    windows: Iterable[CoverageWindow], instant: dt.datetime, *, zone: ZoneInfo,
    is_holiday: HolidayCalendar,
) -> bool:
    """Whether ``instant`` falls in one of the windows (at the site, in its zone)."""
    return bool(intervals(windows, zone=zone, is_holiday=is_holiday, start=instant,
                          end=instant + dt.timedelta(microseconds=1)))


def on_duty(shifts: Iterable[Shift], instant: dt.datetime, *, team: str | None = None
            ) -> list[Shift]:
    """The shifts running at ``instant`` (of one team if given): primaries first."""
    running = [s for s in shifts if s.covers(instant) and (team is None or s.team == team)]
    return sorted(running, key=lambda s: (s.backup, s.start, s.radiologist_id))


def gaps(
    windows: Iterable[CoverageWindow], shifts: Iterable[Shift], *, zone: ZoneInfo,
    is_holiday: HolidayCalendar, start: dt.datetime, end: dt.datetime,
) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """The spans the windows require and no primary shift covers (a roster to fix)."""
    staffed = _merge([(s.start, s.end) for s in shifts if not s.backup])
    for opens, closes in intervals(windows, zone=zone, is_holiday=is_holiday, start=start,
                                   end=end):
        cursor = opens
        for on, off in staffed:
            if off <= cursor or on >= closes:
                continue
            if on > cursor:
                yield cursor, on
            cursor = max(cursor, off)
            if cursor >= closes:
                break
        if cursor < closes:
            yield cursor, closes
