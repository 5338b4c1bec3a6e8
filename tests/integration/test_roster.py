"""The duty roster: radiologists credentialed per site, shifts from CSV, gaps reported."""

from __future__ import annotations

import datetime as dt
import subprocess
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


def test_roster_from_the_command_line(settings: Settings, tmp_path: Path) -> None:
    env = {"TELERAD_DATABASE_URL": settings.database_url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return telerad_command(*args, data_dir=settings.data_dir, env=env, check=False)

    assert run("site", "add", "Carcassonne", "--ae-title", "CT1").returncode == 0
    assert run("team", "add", "Imadis").returncode == 0
    assert run("contract", "add", "Carcassonne", "--modality", "CT", "--window",
               "every 18:30-08:00", "--team", "Imadis").returncode == 0
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
