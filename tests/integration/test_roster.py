"""The duty roster: radiologists credentialed per site, shifts from CSV, gaps reported."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from telerad.config import Settings
from telerad.db import transaction
from telerad.errors import InvalidInput
from telerad.runtime import Runtime
from telerad.testing.peers import telerad_command
from telerad.workflow.roster.models import ShiftRow
from telerad.workflow.roster.service import add_radiologist, import_shifts, roster_gaps
from telerad.workflow.sites.contracts import add_contract, add_team, parse_window
from telerad.workflow.sites.models import TeamKind
from telerad.workflow.sites.service import add_site

PARIS = ZoneInfo("Europe/Paris")
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


def _week_of_nights(skip: int, radiologist: str = "Dr Nuit") -> str:
    lines = ["radiologist,team,start,end,role"]
    monday = dt.date(2026, 11, 23)
    for n in range(7):
        if n == skip:
            continue
        day = monday + dt.timedelta(days=n)
        lines.append(f"{radiologist},Imadis,{day}T18:30,{day + dt.timedelta(days=1)}T08:00,"
                     "primary")
    return "\n".join(lines) + "\n"


def test_a_gap_is_reported_and_only_credentialed_shifts_count(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        site = add_site(session, name="Carcassonne", ae_titles=["CT1"], now=NOW)
        other = add_site(session, name="Narbonne", ae_titles=["CT2"], now=NOW)
        add_team(session, name="Imadis", kind=TeamKind.PROVIDER)
        add_contract(session, site_id=site.id, modality="CT",
                     windows=[parse_window("every 18:30-08:00")], team_names=["Imadis"],
                     now=NOW)
        add_radiologist(session, name="Dr Nuit", site_ids=[site.id], subspecialties=["neuro"],
                        now=NOW)
        add_radiologist(session, name="Dr Ailleurs", site_ids=[other.id], subspecialties=[],
                        now=NOW)
        assert import_shifts(session, text=_week_of_nights(skip=3), zone=PARIS) == 6
        # Thursday night is held by someone who may not read for Carcassonne: still a gap.
        import_shifts(session, text="radiologist,team,start,end,role\nDr Ailleurs,Imadis,"
                      "2026-11-26T18:30,2026-11-27T08:00,primary\n", zone=PARIS)
    start = dt.datetime(2026, 11, 23, 0, 0, tzinfo=PARIS)
    with transaction(runtime.sessions, readonly=True) as session:
        found = roster_gaps(session, site_id=site.id, modality="ct", start=start,
                            end=start + dt.timedelta(days=7))
    assert [(g.start, g.end) for g in found] == [
        (dt.datetime(2026, 11, 23, 0, 0, tzinfo=PARIS), dt.datetime(2026, 11, 23, 8, 0,
                                                                     tzinfo=PARIS)),
        (dt.datetime(2026, 11, 26, 18, 30, tzinfo=PARIS), dt.datetime(2026, 11, 27, 8, 0,
                                                                       tzinfo=PARIS)),
    ]


@pytest.mark.parametrize(("csv_text", "message"), [
    ("who,team,start,end,role\n", "first line"),
    ("radiologist,team,start,end,role\nDr Nobody,Imadis,2026-11-23T18:30,2026-11-24T08:00,"
     "primary\n", "line 2: no radiologist"),
    ("radiologist,team,start,end,role\nDr Nuit,Imadis,2026-11-23T18:30,2026-11-24T08:00,"
     "primary\nDr Nuit,Imadis,2026-11-24T18:30,yesterday,primary\n", "line 3: end"),
    ("radiologist,team,start,end,role\nDr Nuit,Imadis,2026-11-24T08:00,2026-11-23T18:30,"
     "primary\n", "ends before"),
    ("radiologist,team,start,end,role\nDr Nuit,Imadis,2026-11-23T18:30,2026-11-24T08:00,"
     "chief\n", "primary or backup"),
])
def test_a_bad_csv_imports_nothing(runtime: Runtime, csv_text: str, message: str) -> None:
    with transaction(runtime.sessions) as session:
        site = add_site(session, name="Carcassonne", ae_titles=["CT1"], now=NOW)
        add_team(session, name="Imadis", kind=TeamKind.PROVIDER)
        add_radiologist(session, name="Dr Nuit", site_ids=[site.id], subspecialties=[], now=NOW)
    with pytest.raises(InvalidInput, match=message), transaction(runtime.sessions) as session:
        import_shifts(session, text=csv_text, zone=PARIS)
    with transaction(runtime.sessions, readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(ShiftRow)) == 0


Run = Callable[..., subprocess.CompletedProcess[str]]


def _nights_contract(settings: Settings) -> Run:
    """``telerad ARGS`` on the test database, after Carcassonne's CT contract (every night,
    team Imadis) was set up through the command line."""
    env = {"TELERAD_DATABASE_URL": settings.database_url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return telerad_command(*args, data_dir=settings.data_dir, env=env, check=False)

    assert run("site", "add", "Carcassonne", "--ae-title", "CT1").returncode == 0
    assert run("team", "add", "Imadis").returncode == 0
    assert run("contract", "add", "Carcassonne", "--modality", "CT", "--window",
               "every 18:30-08:00", "--team", "Imadis").returncode == 0
    return run


def test_roster_from_the_command_line(settings: Settings, tmp_path: Path) -> None:
    run = _nights_contract(settings)
    assert run("radiologist", "add", "Dr Nuit", "--site", "Carcassonne",
               "--subspecialty", "neuro").returncode == 0
    shifts = tmp_path / "week.csv"
    shifts.write_text(_week_of_nights(skip=3), encoding="utf-8")
    result = run("roster", "import", str(shifts))
    assert result.returncode == 0, result.stderr
    assert "6 shifts imported" in result.stdout
    check = run("roster", "check", "Carcassonne", "--modality", "CT", "--from", "2026-11-24",
                "--days", "4")
    assert check.returncode == 1
    assert "Thu 2026-11-26 18:30\tFri 2026-11-27 08:00" in check.stdout
    covered = run("roster", "check", "Carcassonne", "--modality", "CT", "--from", "2026-11-24",
                  "--days", "2")
    assert covered.returncode == 0, covered.stdout + covered.stderr


def _ics(*events: str) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//telerad//tests//EN"]
    for event in events:
        lines += ["BEGIN:VEVENT", *event.strip().splitlines(), "END:VEVENT"]
    return "\r\n".join([*lines, "END:VCALENDAR", ""])


def _ics_week_of_nights(skip: int) -> str:
    """The CSV week as a calendar: the three DATE-TIME forms, an ATTENDEE, and a back-up
    (which covers nothing) on the night that is skipped."""
    events = []
    monday = dt.date(2026, 11, 23)
    for n in range(7):
        day = monday + dt.timedelta(days=n)
        start = dt.datetime.combine(day, dt.time(18, 30))
        end = start + dt.timedelta(hours=13, minutes=30)
        if n % 3 == 0:
            times = (f"DTSTART;TZID=Europe/Paris:{start:%Y%m%dT%H%M%S}\n"
                     f"DTEND;TZID=Europe/Paris:{end:%Y%m%dT%H%M%S}")
        elif n % 3 == 1:  # November in Paris is UTC+1
            utc = start - dt.timedelta(hours=1)
            times = f"DTSTART:{utc:%Y%m%dT%H%M%SZ}\nDTEND:{utc + (end - start):%Y%m%dT%H%M%SZ}"
        else:  # floating: the --timezone of the command
            times = f"DTSTART:{start:%Y%m%dT%H%M%S}\nDURATION:PT13H30M"
        who = "SUMMARY:Dr Nuit"
        if n == 1:
            who = "SUMMARY:Garde\nATTENDEE;CN=Dr Nuit:mailto:nuit@example.org"
        if n == skip:
            who = "SUMMARY:Dr Nuit (astreinte)"
        events.append(f"UID:night-{day}@roster\n{who}\nLOCATION:Imadis\n{times}")
    return _ics(*events)


def test_recurring_shifts_from_icalendar_across_daylight_saving(runtime: Runtime) -> None:
    weekly = ("UID:saturdays@roster\nSUMMARY:Dr Nuit\nCATEGORIES:Imadis\n"
              "DTSTART;TZID=Europe/Paris:20261017T183000\n"
              "DTEND;TZID=Europe/Paris:20261018T080000\nRRULE:FREQ=WEEKLY\n"
              "EXDATE;TZID=Europe/Paris:20261031T183000")
    now = dt.datetime(2026, 10, 20, 9, 0, tzinfo=dt.UTC)
    with transaction(runtime.sessions) as session:
        site = add_site(session, name="Carcassonne", ae_titles=["CT1"], now=now)
        add_team(session, name="Imadis", kind=TeamKind.PROVIDER)
        add_contract(session, site_id=site.id, modality="CT",
                     windows=[parse_window("sat 18:30-08:00")], team_names=["Imadis"], now=now)
        add_radiologist(session, name="Dr Nuit", site_ids=[site.id], subspecialties=[],
                        now=now)
        # From now for 120 days: 24 October to 13 February, less the EXDATE.
        assert import_shifts(session, text=_ics(weekly), zone=PARIS, now=now) == 16
    with transaction(runtime.sessions, readonly=True) as session:
        rows = session.scalars(select(ShiftRow).order_by(ShiftRow.starts_at)).all()
        first = rows[0]
        assert first.starts_at == dt.datetime(2026, 10, 24, 18, 30, tzinfo=PARIS)
        assert first.ends_at - first.starts_at == dt.timedelta(hours=14, minutes=30)
        start = dt.datetime(2026, 10, 24, 0, 0, tzinfo=PARIS)
        found = roster_gaps(session, site_id=site.id, modality="CT", start=start,
                            end=start + dt.timedelta(days=14))
    assert [(g.start, g.end) for g in found] == [
        (dt.datetime(2026, 10, 31, 18, 30, tzinfo=PARIS), dt.datetime(2026, 11, 1, 8, 0,
                                                                       tzinfo=PARIS))]


@pytest.mark.parametrize(("events", "message"), [
    (("UID:a\nSUMMARY:Dr Nuit\nLOCATION:Imadis\nDTSTART:20261123T183000\n"
      "DTEND:20261124T080000",
      "UID:b\nSUMMARY:Dr Nobody\nLOCATION:Imadis\nDTSTART:20261124T183000\n"
      "DTEND:20261125T080000"), r"event 2 \(UID b\): no radiologist named 'Dr Nobody'"),
    (("UID:a\nSUMMARY:Dr Nuit\nLOCATION:Elsewhere\nDTSTART:20261123T183000\n"
      "DURATION:PT1H",), r"event 1 \(UID a\): no team named 'Elsewhere'"),
    (("UID:a\nSUMMARY:Dr Nuit\nLOCATION:Imadis\nDTSTART;TZID=Europe/Paris:20261123T183000\n"
      "DTEND;TZID=Europe/Paris:20261123T080000\nRRULE:FREQ=DAILY;COUNT=3",),
     r"event 1 \(UID a\) on 2026-11-23 18:30: the shift ends before it starts"),
    (("UID:a\nSUMMARY:Dr Nuit\nLOCATION:Imadis\nDTSTART:20261123T183000\n"
      "DTEND:20261124T080000",
      "UID:b\nSUMMARY:Dr Nuit\nLOCATION:Imadis\nDTSTART;VALUE=DATE:20261124"),
     "all-day"),
])
def test_a_bad_icalendar_imports_nothing(
    runtime: Runtime, events: tuple[str, ...], message: str,
) -> None:
    with transaction(runtime.sessions) as session:
        site = add_site(session, name="Carcassonne", ae_titles=["CT1"], now=NOW)
        add_team(session, name="Imadis", kind=TeamKind.PROVIDER)
        add_radiologist(session, name="Dr Nuit", site_ids=[site.id], subspecialties=[], now=NOW)
    with pytest.raises(InvalidInput, match=message), transaction(runtime.sessions) as session:
        import_shifts(session, text=_ics(*events), zone=PARIS, now=NOW)
    with transaction(runtime.sessions, readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(ShiftRow)) == 0


def test_roster_from_an_icalendar_on_the_command_line(settings: Settings, tmp_path: Path
                                                      ) -> None:
    run = _nights_contract(settings)
    assert run("radiologist", "add", "Dr Nuit", "--site", "Carcassonne").returncode == 0
    good = _ics_week_of_nights(skip=3)
    bad = tmp_path / "bad.ics"  # the whole week, and one night for someone unknown
    bad.write_text(good.replace("SUMMARY:Dr Nuit\r\nLOCATION:Imadis\r\nDTSTART:20261127",
                                "SUMMARY:Dr Nobody\r\nLOCATION:Imadis\r\nDTSTART:20261127"),
                   encoding="utf-8")
    refused = run("roster", "import", str(bad))
    assert refused.returncode == 2
    assert "no radiologist named 'Dr Nobody'" in " ".join(refused.stderr.split())
    week = tmp_path / "week.ics"  # told by its content, whatever its name
    week.write_bytes(b"\xef\xbb\xbf" + good.encode())
    result = run("roster", "import", str(week))
    assert result.returncode == 0, result.stderr
    assert "7 shifts imported" in result.stdout  # six primary nights and one back-up
    check = run("roster", "check", "Carcassonne", "--modality", "CT", "--from", "2026-11-24",
                "--days", "4")
    assert check.returncode == 1
    assert "gap\tThu 2026-11-26 18:30\tFri 2026-11-27 08:00\n" in check.stdout
    assert check.stdout.count("gap\t") == 1


def test_a_shift_longer_than_three_days_is_refused(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        site = add_site(session, name="Long Shifts", ae_titles=[], now=runtime.clock.now())
        add_team(session, name="Long team", kind=TeamKind.PROVIDER)
        add_radiologist(session, name="Dr Long", site_ids=[site.id], subspecialties=[],
                        now=runtime.clock.now())
    text = ("radiologist,team,start,end,role\n"
            "Dr Long,Long team,2026-12-01T08:00,2026-12-04T09:00,primary\n")
    with pytest.raises(InvalidInput, match="at most 72 hours"), \
            transaction(runtime.sessions) as session:
        import_shifts(session, text=text, zone=ZoneInfo("Europe/Paris"))
