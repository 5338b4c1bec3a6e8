"""Shifts from iCalendar: the three DATE-TIME forms, DURATION, recurrences on the wall clock
across daylight saving, exceptions, cancelled and refused events, back-up marks."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from telerad.errors import InvalidInput
from telerad.workflow.roster.ical import ShiftLine, is_calendar, parse_calendar

PARIS = ZoneInfo("Europe/Paris")
REUNION = ZoneInfo("Indian/Reunion")
UTC = dt.UTC
HORIZON = (dt.datetime(2026, 10, 1, tzinfo=UTC), dt.datetime(2027, 1, 1, tzinfo=UTC))

#: What Outlook writes for Paris: a Windows zone name, defined by the file's VTIMEZONE.
ROMANCE = """BEGIN:VTIMEZONE
TZID:Romance Standard Time
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE"""


def calendar(*events: str, before: str = "") -> str:
    parts = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//telerad//tests//EN"]
    parts += [before] if before else []
    parts += [f"BEGIN:VEVENT\n{e.strip()}\nEND:VEVENT" for e in events]
    return "\r\n".join([*"\n".join(parts).splitlines(), "END:VCALENDAR", ""])


def parse(text: str, zone: ZoneInfo = PARIS,
          horizon: tuple[dt.datetime, dt.datetime] = HORIZON) -> list[ShiftLine]:
    return parse_calendar(text, zone=zone, start=horizon[0], until=horizon[1])


def hours(shift: ShiftLine) -> float:
    """The real length of a shift (aware subtraction in one zone would read the clock)."""
    return (shift.end.astimezone(UTC) - shift.start.astimezone(UTC)).total_seconds() / 3600


NIGHT = """UID:night-1@roster
SUMMARY:Dr Nuit
LOCATION:Imadis
DTSTART;TZID=Europe/Paris:20261123T183000
DTEND;TZID=Europe/Paris:20261124T080000"""

#: Saturday nights from 17 October 2026; clocks go back at 03:00 on Sunday 25 October.
WEEKLY = """UID:weekends@roster
SUMMARY:Dr Nuit
LOCATION:Imadis
DTSTART;TZID=Europe/Paris:20261017T183000
DTEND;TZID=Europe/Paris:20261018T080000
RRULE:FREQ=WEEKLY;COUNT=3"""


def test_a_tzid_time_is_in_its_zone() -> None:
    [shift] = parse(calendar(NIGHT), zone=REUNION)
    assert shift == ShiftLine(
        radiologist="Dr Nuit", team="Imadis", backup=False, where="event 1 (UID night-1@roster)",
        start=dt.datetime(2026, 11, 23, 18, 30, tzinfo=PARIS),
        end=dt.datetime(2026, 11, 24, 8, 0, tzinfo=PARIS))


def test_a_windows_zone_is_read_from_the_files_vtimezone() -> None:
    text = calendar(NIGHT.replace("Europe/Paris", "Romance Standard Time"), before=ROMANCE)
    [shift] = parse(text)
    assert shift.start.astimezone(UTC) == dt.datetime(2026, 11, 23, 17, 30, tzinfo=UTC)
    assert shift.end.astimezone(UTC) == dt.datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def test_utc_and_floating_times() -> None:
    [utc, floating] = parse(calendar(
        "UID:u\nSUMMARY:Dr Nuit\nLOCATION:Imadis\nDTSTART:20261123T173000Z\n"
        "DTEND:20261124T070000Z",
        "UID:f\nSUMMARY:Dr Nuit\nLOCATION:Imadis\nDTSTART:20261123T183000\n"
        "DTEND:20261124T080000"), zone=REUNION)
    assert (utc.start, utc.end) == (dt.datetime(2026, 11, 23, 17, 30, tzinfo=UTC),
                                    dt.datetime(2026, 11, 24, 7, 0, tzinfo=UTC))
    # Floating: the wall clock of the site's zone (RFC 5545 §3.3.5, form 1).
    assert (floating.start, floating.end) == (dt.datetime(2026, 11, 23, 18, 30, tzinfo=REUNION),
                                              dt.datetime(2026, 11, 24, 8, 0, tzinfo=REUNION))


def test_duration_days_are_nominal_and_hours_exact() -> None:
    night, day = parse(calendar(
        "UID:n\nSUMMARY:Dr Nuit\nLOCATION:Imadis\n"
        "DTSTART;TZID=Europe/Paris:20261024T183000\nDURATION:PT13H30M",
        "UID:d\nSUMMARY:Dr Jour\nLOCATION:Imadis\n"
        "DTSTART;TZID=Europe/Paris:20261024T080000\nDURATION:P1D"))
    assert hours(night) == 13.5  # exact: 07:00 on the wall clock the night clocks go back
    assert night.end == dt.datetime(2026, 10, 25, 7, 0, tzinfo=PARIS)
    assert day.end == dt.datetime(2026, 10, 25, 8, 0, tzinfo=PARIS)  # a calendar day
    assert hours(day) == 25


def test_a_weekly_night_keeps_its_local_times_across_the_october_change() -> None:
    shifts = parse(calendar(WEEKLY))
    assert [s.start for s in shifts] == [
        dt.datetime(2026, 10, d, 18, 30, tzinfo=PARIS) for d in (17, 24, 31)]
    assert [s.end for s in shifts] == [
        dt.datetime(2026, 10, d, 8, 0, tzinfo=PARIS) for d in (18, 25)] + [
        dt.datetime(2026, 11, 1, 8, 0, tzinfo=PARIS)]
    assert [s.start.utcoffset() for s in shifts] == [dt.timedelta(hours=h) for h in (2, 2, 1)]
    assert [hours(s) for s in shifts] == [13.5, 14.5, 13.5]
    assert shifts[1].where == "event 1 (UID weekends@roster) on 2026-10-24 18:30"


def test_a_never_ending_rule_is_expanded_over_the_horizon_only() -> None:
    text = calendar(WEEKLY.replace("COUNT=3", "BYDAY=SA"))
    # From Sunday 25 October 03:00 UTC: the night in progress is kept, up to 15 November.
    horizon = (dt.datetime(2026, 10, 25, 3, 0, tzinfo=UTC),
               dt.datetime(2026, 11, 15, 0, 0, tzinfo=UTC))
    assert [s.start.date() for s in parse(text, horizon=horizon)] == [
        dt.date(2026, 10, 24), dt.date(2026, 10, 31), dt.date(2026, 11, 7),
        dt.date(2026, 11, 14)]


def test_until_in_utc_is_read_on_the_events_wall_clock() -> None:
    text = calendar(WEEKLY.replace("COUNT=3", "UNTIL=20261031T173000Z"))
    assert len(parse(text)) == 3  # 31 October 18:30 CET is 17:30 UTC: included


def test_exdate_in_any_zone_removes_an_instance() -> None:
    local = calendar(WEEKLY + "\nEXDATE;TZID=Europe/Paris:20261024T183000")
    utc = calendar(WEEKLY + "\nEXDATE:20261024T163000Z")
    for text in (local, utc):
        assert [s.start.day for s in parse(text)] == [17, 31]


def test_rdate_adds_instances_and_a_period_its_own_end() -> None:
    text = calendar(WEEKLY + "\nRDATE;TZID=Europe/Paris:20261028T183000\n"
                    "RDATE;VALUE=PERIOD:20261029T170000Z/PT5H")
    shifts = parse(text)
    assert [s.start.day for s in shifts] == [17, 24, 28, 29, 31]
    assert hours(shifts[2]) == 13.5
    assert hours(shifts[3]) == 5


def test_recurrence_id_replaces_one_instance() -> None:
    moved = ("UID:weekends@roster\nRECURRENCE-ID;TZID=Europe/Paris:20261024T183000\n"
             "SUMMARY:Dr Autre\nLOCATION:Imadis\nDTSTART;TZID=Europe/Paris:20261024T200000\n"
             "DTEND;TZID=Europe/Paris:20261025T080000")
    shifts = parse(calendar(WEEKLY, moved))
    assert [(s.radiologist, s.start.day, s.start.hour) for s in shifts] == [
        ("Dr Nuit", 17, 18), ("Dr Nuit", 31, 18), ("Dr Autre", 24, 20)]


def test_cancelled_events_and_instances_are_skipped() -> None:
    cancelled_instance = ("UID:weekends@roster\nRECURRENCE-ID:20261024T163000Z\n"
                          "STATUS:CANCELLED\nSUMMARY:Dr Nuit\n"
                          "DTSTART;TZID=Europe/Paris:20261024T183000\nDURATION:PT1H")
    cancelled = NIGHT.replace("night-1", "night-2") + "\nSTATUS:CANCELLED"
    shifts = parse(calendar(WEEKLY, cancelled_instance, cancelled, NIGHT))
    assert [s.start.date() for s in shifts] == [
        dt.date(2026, 10, 17), dt.date(2026, 10, 31), dt.date(2026, 11, 23)]


@pytest.mark.parametrize(("event", "summary", "backup"), [
    ("SUMMARY:  Dr Nuit (backup) ", "Dr Nuit", True),
    ("SUMMARY:Dr Nuit (Astreinte)", "Dr Nuit", True),
    ("SUMMARY:Dr Nuit\nCATEGORIES:BACKUP", "Dr Nuit", True),
    ("SUMMARY:Dr Nuit\nCATEGORIES:primary", "Dr Nuit", False),
    ("SUMMARY:Garde de nuit (backup)\nATTENDEE;CN=Dr Nuit:mailto:nuit@example.org",
     "Dr Nuit", True),
])
def test_who_and_the_backup_marks(event: str, summary: str, backup: bool) -> None:
    [shift] = parse(calendar(f"UID:x\n{event}\nLOCATION:Imadis\n"
                             "DTSTART:20261123T183000\nDTEND:20261124T080000"))
    assert (shift.radiologist, shift.backup) == (summary, backup)


def test_the_team_is_the_location_or_the_category_that_is_not_a_role() -> None:
    [by_category] = parse(calendar("UID:x\nSUMMARY:Dr Nuit\nCATEGORIES:backup,Imadis\n"
                                   "DTSTART:20261123T183000\nDTEND:20261124T080000"))
    assert (by_category.team, by_category.backup) == ("Imadis", True)
    [by_location] = parse(calendar("UID:x\nSUMMARY:Dr Nuit\nLOCATION: Imadis \n"
                                   "CATEGORIES:Garde\nDTSTART:20261123T183000\n"
                                   "DTEND:20261124T080000"))
    assert by_location.team == "Imadis"


TIMES = "DTSTART:20261123T183000\nDTEND:20261124T080000"


@pytest.mark.parametrize(("events", "message"), [
    ((NIGHT, "UID:day@x\nSUMMARY:Dr Nuit\nLOCATION:Imadis\nDTSTART;VALUE=DATE:20261124\n"
      "DTEND;VALUE=DATE:20261125"), r"event 2 \(UID day@x\): DTSTART .* all-day"),
    ((NIGHT, f"UID:anon@x\nLOCATION:Imadis\n{TIMES}"),
     r"event 2 \(UID anon@x\): no SUMMARY"),
    ((f"SUMMARY:Dr Nuit (backup)\nCATEGORIES:primary,Imadis\n{TIMES}",),
     r"event 1 \('Dr Nuit \(backup\)'\): marked both primary and backup"),
    ((f"UID:x\nSUMMARY:Dr Nuit\n{TIMES}",), "no LOCATION nor CATEGORIES"),
    ((f"UID:x\nSUMMARY:Dr Nuit\nCATEGORIES:Imadis,Nuits\n{TIMES}",), "several CATEGORIES"),
    (("UID:x\nSUMMARY:Dr Nuit\nLOCATION:Imadis\nATTENDEE;CN=Dr A:mailto:a@x\n"
      f"ATTENDEE;CN=Dr B:mailto:b@x\n{TIMES}",), "several ATTENDEEs"),
    (("UID:x\nSUMMARY:Dr Nuit\nLOCATION:Imadis\nDTSTART:20261123T183000",),
     "no DTEND nor DURATION"),
    ((f"UID:x\nSUMMARY:Dr Nuit\nLOCATION:Imadis\n{TIMES}\nDURATION:PT1H",),
     "both DTEND and DURATION"),
    (("UID:x\nSUMMARY:Dr Nuit\nLOCATION:Imadis\nDTSTART;TZID=Mars/Olympus:20261123T183000\n"
      "DURATION:PT1H",), "Mars/Olympus"),
    (("UID:x\nSUMMARY:Dr Nuit\nLOCATION:Imadis\nDTSTART:tonight\nDURATION:PT1H",),
     "DTSTART cannot be read"),
    ((WEEKLY.replace("FREQ=WEEKLY", "FREQ=MINUTELY"),), "FREQ=MINUTELY"),
    ((WEEKLY + "\nEXRULE:FREQ=MONTHLY",), "EXRULE"),
    ((NIGHT, NIGHT), r"event 2 \(UID night-1@roster\): another event has the same UID"),
])
def test_refused_events_say_which(events: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse(calendar(*events))


@pytest.mark.parametrize("text", [
    "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nno colon here\r\n",
    calendar(NIGHT).removesuffix("END:VCALENDAR\r\n"),  # cut short: not half a roster
    calendar(NIGHT) + calendar(NIGHT),
])
def test_not_one_calendar(text: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid iCalendar"):
        parse(text)


def test_a_calendar_is_told_by_its_first_line() -> None:
    assert is_calendar("\ufeff\r\n  begin:vcalendar\r\n")
    assert not is_calendar("radiologist,team,start,end,role\n")
