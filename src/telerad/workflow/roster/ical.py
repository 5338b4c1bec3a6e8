"""Duty-roster shifts from an iCalendar (RFC 5545), as the roster tools of radiology groups
export them: pure, no database; the service looks the names up and inserts.

How a VEVENT (RFC 5545 §3.6.1) becomes shifts:

- **Who.** The CN parameter (§3.2.2) of its ATTENDEE (§3.8.4.1) if it has one, else its
  SUMMARY (§3.8.1.12), trimmed. A SUMMARY ending in " (backup)" or " (astreinte)" marks a
  back-up shift, as does a CATEGORIES (§3.8.1.2) value "backup"; "primary" says so.
- **Which team.** The LOCATION (§3.8.1.7), else the one CATEGORIES value that is not a role.
- **When.** DTSTART (§3.8.2.4) and DTEND (§3.8.2.2) or DURATION (§3.8.2.5), in the three
  DATE-TIME forms of §3.3.5: with a TZID (its zone, from the tz database or the file's own
  VTIMEZONE), in UTC, or floating, which a roster means in the site's zone. A DATE value
  (an all-day event) is refused: a shift has times, and guessing them would put someone on
  duty who is not. An event without DTEND or DURATION lasts no time (§3.6.1): refused too.
- **Recurrences.** RRULE (§3.8.5.3), RDATE (§3.8.5.2) and EXDATE (§3.8.5.1) make the
  recurrence set, DTSTART always its first instance; an event with the same UID and a
  RECURRENCE-ID (§3.8.4.4) replaces one instance. The set is expanded with dateutil's
  rrule on the wall clock of the event's zone, so a weekly night at 18:30 stays at 18:30
  across daylight-saving changes; only instances overlapping the caller's horizon are
  kept (an RRULE may never end). Events without recurrence are kept as written.
- **Length of an instance.** §3.8.5.3 says a DTEND gives every instance the first one's
  exact duration. A roster means the hand-over on the wall clock instead: an 18:30-08:00
  night ends at 08:00, so it lasts 14 h 30 the night clocks go back (as the coverage rules
  count it, ``rules.py``). An instance therefore keeps DTEND's local time. A DURATION is
  applied as §3.3.6 says: days are nominal (wall clock), hours and minutes exact. Python's
  timedelta cannot tell "PT24H" from "P1D": both count as a nominal day.
- **Cancelled** events (STATUS:CANCELLED, §3.8.1.11) are skipped.

Errors raise InvalidInput and name the event by position and UID (or SUMMARY).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
from dateutil.rrule import rrule, rruleset, rrulestr

from telerad.errors import InvalidInput

#: CATEGORIES values that give the role, not the team (compared without case).
ROLES = {"backup": True, "primary": False}
#: At most this many instances of one recurring event within the horizon.
MAX_INSTANCES = 5000

_BACKUP_SUFFIX = re.compile(r"\s*\((?:backup|astreinte)\)\s*$", re.IGNORECASE)
#: Shift patterns repeat by the hour at the finest; finer rules are mistakes (and slow).
_TOO_FINE = {"SECONDLY", "MINUTELY"}

#: The end of the instance that starts at a given instant.
_EndOf = Callable[[dt.datetime], dt.datetime]


@dataclass(frozen=True, kw_only=True)
class ShiftLine:
    """One shift as a file states it, before its names are looked up."""

    radiologist: str
    team: str
    start: dt.datetime
    end: dt.datetime
    backup: bool
    #: Where the file says it, for error messages ("line 3", "event 2 (UID n@x) on ...").
    where: str


def is_calendar(text: str) -> bool:
    """Whether ``text`` is an iCalendar stream (§3.4: it begins with BEGIN:VCALENDAR, and
    names are case-insensitive, §3.1); a byte-order mark or blank lines may precede it."""
    return text.lstrip("\ufeff \t\r\n").upper().startswith("BEGIN:VCALENDAR")


def parse_calendar(
    text: str, *, zone: ZoneInfo, start: dt.datetime, until: dt.datetime,
) -> list[ShiftLine]:
    """The shifts of every VEVENT of ``text``, recurrences expanded over [start, until);
    floating times are in ``zone``. The first error raises InvalidInput saying where."""
    try:  # exactly one VCALENDAR (§3.4): a truncated file must not import half a roster
        calendar = icalendar.Calendar.from_ical(text)
    except ValueError as exc:
        reason = (str(exc).splitlines() or [""])[0][:200]
        raise InvalidInput(f"not a valid iCalendar file (one VCALENDAR, each BEGIN closed "
                           f"by its END): {reason}") from None
    events = [(_name_event(n, e), e) for n, e in enumerate(calendar.walk("VEVENT"), start=1)]
    replaced: dict[str, set[dt.datetime]] = {}
    masters: set[str] = set()
    for where, event in events:
        uid = str(event.get("UID") or "").strip()
        recurrence_id = _recurrence_id(event, zone, where)
        if recurrence_id is not None:
            replaced.setdefault(uid, set()).add(recurrence_id)
        elif uid:
            if uid in masters:
                raise InvalidInput(f"{where}: another event has the same UID (RFC 5545 "
                                   "§3.8.4.7): it would be imported twice")
            masters.add(uid)
    shifts: list[ShiftLine] = []
    for where, event in events:
        if str(event.get("STATUS") or "").strip().upper() == "CANCELLED":
            continue
        uid = str(event.get("UID") or "").strip()
        shifts.extend(_shifts(event, where, zone=zone, start=start, until=until,
                              replaced=replaced.get(uid, set())))
    return shifts


def _name_event(position: int, event: icalendar.cal.Component) -> str:
    """"event 3 (UID n-42@roster)", or by its SUMMARY when it has no UID."""
    uid = str(event.get("UID") or "").strip()
    summary = event.get("SUMMARY")
    if uid:
        return f"event {position} (UID {uid})"
    if isinstance(summary, str) and summary.strip():
        return f"event {position} ({summary.strip()!r})"
    return f"event {position}"


def _shifts(
    event: icalendar.cal.Component, where: str, *, zone: ZoneInfo, start: dt.datetime,
    until: dt.datetime, replaced: set[dt.datetime],
) -> list[ShiftLine]:
    first = _instant(event, "DTSTART", zone, where)
    if first is None:
        raise InvalidInput(f"{where}: no DTSTART")
    tz = first.tzinfo
    assert tz is not None
    radiologist, backup = _who(event, where)
    team = _team(event, where)
    end_of = _end_rule(event, first, zone, where)
    recurring = _recurrence(event, first, where)
    if recurring is None:
        return [ShiftLine(radiologist=radiologist, team=team, start=first, end=end_of(first),
                          backup=backup, where=where)]
    instances, explicit_ends = recurring
    last = _wall(until, tz)
    shifts: list[ShiftLine] = []
    for wall in instances:
        if wall > last:
            break
        begin = _local(wall, tz)
        end = explicit_ends.get(wall) or end_of(begin)
        if end <= start or begin >= until or begin.astimezone(dt.UTC) in replaced:
            continue
        if len(shifts) == MAX_INSTANCES:
            raise InvalidInput(f"{where}: more than {MAX_INSTANCES} shifts before "
                               f"{until:%Y-%m-%d}: is the RRULE right?")
        shifts.append(ShiftLine(radiologist=radiologist, team=team, start=begin, end=end,
                                backup=backup, where=f"{where} on {wall:%Y-%m-%d %H:%M}"))
    return shifts


def _get(event: icalendar.cal.Component, name: str, where: str) -> Any:
    """The raw property, refused if icalendar could not read it (it keeps such errors in
    ``errors`` rather than raising, to stay tolerant of properties we do not use)."""
    for prop, message in event.errors:
        if str(prop).upper() == name:
            raise InvalidInput(f"{where}: {name} cannot be read: {message}")
    return event.get(name)


def _one(event: icalendar.cal.Component, name: str, where: str) -> Any:
    """The property ``name`` (None if absent), refused if it appears more than once where
    RFC 5545 allows it once."""
    value = _get(event, name, where)
    if isinstance(value, list):
        raise InvalidInput(f"{where}: {name} appears more than once")
    return value


def _many(event: icalendar.cal.Component, name: str, where: str) -> list[Any]:
    """Every value of a property that may appear several times (RDATE, EXDATE, ...)."""
    value = _get(event, name, where)
    return [] if value is None else value if isinstance(value, list) else [value]


def _aware(value: object, params: Any, name: str, zone: dt.tzinfo, where: str) -> dt.datetime:
    """A DATE-TIME value as an instant: a floating time is on the wall clock of ``zone``."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value
        if "TZID" in params:
            raise InvalidInput(f"{where}: {name} is in the time zone {params['TZID']!r}, "
                               "which neither the tz database nor a VTIMEZONE of the file "
                               "defines")
        return value.replace(tzinfo=zone)
    if isinstance(value, dt.date):
        raise InvalidInput(f"{where}: {name} is a date without a time (an all-day event); "
                           "a shift starts and ends at a time of day")
    raise InvalidInput(f"{where}: {name} is not a date and time")


def _instant(
    event: icalendar.cal.Component, name: str, zone: ZoneInfo, where: str,
) -> dt.datetime | None:
    prop = _one(event, name, where)
    return None if prop is None else _aware(prop.dt, prop.params, name, zone, where)


def _recurrence_id(
    event: icalendar.cal.Component, zone: ZoneInfo, where: str,
) -> dt.datetime | None:
    """The UTC instant of the instance this event replaces (§3.8.4.4), if it replaces one."""
    prop = _one(event, "RECURRENCE-ID", where)
    if prop is None:
        return None
    if str(prop.params.get("RANGE", "")).upper() == "THISANDFUTURE":
        raise InvalidInput(f"{where}: RECURRENCE-ID;RANGE=THISANDFUTURE is not supported: "
                           "export the series split in two")
    return _aware(prop.dt, prop.params, "RECURRENCE-ID", zone, where).astimezone(dt.UTC)


def _who(event: icalendar.cal.Component, where: str) -> tuple[str, bool]:
    """The radiologist's name and whether the SUMMARY marks a back-up."""
    summary = str(_one(event, "SUMMARY", where) or "").strip()
    suffix = _BACKUP_SUFFIX.search(summary)
    name = summary[:suffix.start()].strip() if suffix else summary
    named = {str(a.params["CN"]).strip() for a in _many(event, "ATTENDEE", where)
             if str(getattr(a, "params", {}).get("CN", "")).strip()}
    if len(named) > 1:
        raise InvalidInput(f"{where}: several ATTENDEEs ({', '.join(sorted(named))}): a shift "
                           "has one radiologist")
    name = named.pop() if named else name
    if not name:
        raise InvalidInput(f"{where}: no SUMMARY (nor ATTENDEE with a CN) names the "
                           "radiologist")
    roles = {v.lower() for v in _categories(event, where) if v.lower() in ROLES}
    backup = suffix is not None or "backup" in roles
    if backup and "primary" in roles:
        raise InvalidInput(f"{where}: marked both primary and backup")
    return name, backup


def _categories(event: icalendar.cal.Component, where: str) -> list[str]:
    return [str(v).strip() for c in _many(event, "CATEGORIES", where)
            for v in getattr(c, "cats", [c]) if str(v).strip()]


def _team(event: icalendar.cal.Component, where: str) -> str:
    location = str(_one(event, "LOCATION", where) or "").strip()
    if location:
        return location
    teams = sorted({v for v in _categories(event, where) if v.lower() not in ROLES})
    if len(teams) > 1:
        raise InvalidInput(f"{where}: several CATEGORIES ({', '.join(teams)}) could be the "
                           "team: name it in LOCATION")
    if not teams:
        raise InvalidInput(f"{where}: no LOCATION nor CATEGORIES names the team")
    return teams[0]


def _wall(instant: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The wall-clock reading of ``instant`` in ``tz``, naive, as rrule counts."""
    return instant.astimezone(tz).replace(tzinfo=None)


def _local(wall: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The instant a wall-clock reading names in ``tz``: the first of an ambiguous hour and
    the offset before a skipped one (RFC 5545 §3.3.5), normalised to a real reading."""
    return wall.replace(tzinfo=tz).astimezone(dt.UTC).astimezone(tz)


def _plus(begin: dt.datetime, length: dt.timedelta) -> dt.datetime:
    """``begin`` plus a DURATION (§3.3.6): its days on the wall clock, the rest exactly."""
    tz = begin.tzinfo
    assert tz is not None
    day = _local(_wall(begin, tz) + dt.timedelta(days=length.days), tz)
    rest = dt.timedelta(seconds=length.seconds, microseconds=length.microseconds)
    return (day.astimezone(dt.UTC) + rest).astimezone(tz)


def _end_rule(
    event: icalendar.cal.Component, first: dt.datetime, zone: ZoneInfo, where: str,
) -> _EndOf:
    """How an instance's end follows from its start: the first instance ends at DTEND, the
    others as long after on the wall clock (see the module's docstring); or DURATION."""
    end = _instant(event, "DTEND", zone, where)
    duration = _one(event, "DURATION", where)
    if end is not None and duration is not None:
        raise InvalidInput(f"{where}: both DTEND and DURATION (RFC 5545 §3.6.1 allows one)")
    if duration is not None:
        length = duration.dt
        if not isinstance(length, dt.timedelta):
            raise InvalidInput(f"{where}: DURATION is not a duration")
        return lambda begin: _plus(begin, length)
    if end is None:
        raise InvalidInput(f"{where}: no DTEND nor DURATION: a shift needs an end")
    tz = first.tzinfo
    assert tz is not None
    nominal = _wall(end, tz) - _wall(first, tz)
    return lambda begin: end if begin == first else _local(_wall(begin, tz) + nominal, tz)


def _recurrence(
    event: icalendar.cal.Component, first: dt.datetime, where: str,
) -> tuple[rruleset, dict[dt.datetime, dt.datetime]] | None:
    """The recurrence set on the wall clock of DTSTART's zone (where a floating RDATE or
    EXDATE is read too), and the ends of the RDATE periods (§3.3.9) that state their own;
    None when the event does not recur."""
    if _many(event, "EXRULE", where):
        raise InvalidInput(f"{where}: EXRULE (withdrawn by RFC 5545) is not supported")
    rules = _many(event, "RRULE", where)
    rdates = [v for prop in _many(event, "RDATE", where) for v in prop.dts]
    if not rules and not rdates:
        return None
    tz = first.tzinfo
    assert tz is not None
    instances = rruleset()
    instances.rdate(_wall(first, tz))
    for rule in rules:
        instances.rrule(_rrule(rule, _wall(first, tz), tz, where))
    ends: dict[dt.datetime, dt.datetime] = {}
    for rdate in rdates:
        value = rdate.dt
        if isinstance(value, tuple):  # a PERIOD: start/end or start/duration
            begin = _aware(value[0], rdate.params, "RDATE", tz, where)
            stop = value[1]
            ends[_wall(begin, tz)] = (_plus(begin, stop) if isinstance(stop, dt.timedelta)
                                      else _aware(stop, rdate.params, "RDATE", tz, where))
            value = begin
        instances.rdate(_wall(_aware(value, rdate.params, "RDATE", tz, where), tz))
    for exdate in (v for prop in _many(event, "EXDATE", where) for v in prop.dts):
        instances.exdate(_wall(_aware(exdate.dt, exdate.params, "EXDATE", tz, where), tz))
    return instances, ends


def _rrule(recur: Any, first: dt.datetime, tz: dt.tzinfo, where: str) -> rrule:
    """An RRULE as dateutil's rrule on naive wall-clock times from ``first``. UNTIL is in
    UTC when DTSTART has a zone (§3.3.10), so it is read on the same wall clock."""
    freq = [str(f).upper() for f in recur.get("FREQ", [])]
    if set(freq) & _TOO_FINE:
        raise InvalidInput(f"{where}: RRULE FREQ={freq[0]} repeats too often for a shift")
    spec: Any = icalendar.vRecur({k: v for k, v in recur.items() if k.upper() != "UNTIL"})
    try:
        parsed = rrulestr(spec.to_ical().decode("ascii"), dtstart=first)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{where}: RRULE cannot be read: {exc}") from None
    if not isinstance(parsed, rrule):
        raise InvalidInput(f"{where}: RRULE cannot be read")
    untils = recur.get("UNTIL") or []
    if not untils:
        return parsed
    until = untils[0]
    if isinstance(until, dt.datetime):
        until = _wall(until, tz) if until.tzinfo else until
    elif isinstance(until, dt.date):  # a DATE bound still includes that day (§3.3.10)
        until = dt.datetime.combine(until, dt.time.max)
    else:
        raise InvalidInput(f"{where}: RRULE UNTIL is not a date")
    if "COUNT" in {k.upper() for k in recur}:
        raise InvalidInput(f"{where}: RRULE has both UNTIL and COUNT (§3.3.10 allows one)")
    return parsed.replace(until=until)
