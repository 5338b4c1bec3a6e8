"""Contracts: coverage windows, a cascade of teams in the charter's order, turnaround targets."""

from __future__ import annotations

import datetime as dt
import subprocess
from zoneinfo import ZoneInfo

import pytest

from telerad.config import Settings
from telerad.db import transaction
from telerad.errors import Conflict, InvalidInput, NotFound
from telerad.runtime import Runtime
from telerad.testing.peers import telerad_command
from telerad.workflow.roster.rules import DayKind, french_holidays, is_covered_time
from telerad.workflow.sites.contracts import (
    add_contract,
    add_team,
    cascade,
    contracts_of,
    coverage,
    parse_window,
    targets,
)
from telerad.workflow.sites.models import TeamKind, Urgency
from telerad.workflow.sites.service import add_site

NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
PARIS = ZoneInfo("Europe/Paris")


def test_windows_are_parsed() -> None:
    night = parse_window("every 18:30-08:00")
    assert night.days == frozenset(DayKind)
    assert (night.start, night.end) == (dt.time(18, 30), dt.time(8, 0))
    assert parse_window("weekdays 8:00-18:30").days == frozenset(
        {DayKind.MONDAY, DayKind.TUESDAY, DayKind.WEDNESDAY, DayKind.THURSDAY, DayKind.FRIDAY})
    assert parse_window("sat,sun,holiday 00:00-00:00").days == frozenset(
        {DayKind.SATURDAY, DayKind.SUNDAY, DayKind.HOLIDAY})
    for bad in ("nights", "every 25:00-08:00", "someday 08:00-09:00", "every 8-9"):
        with pytest.raises(InvalidInput):
            parse_window(bad)


def test_a_contract_keeps_its_cascade_windows_and_targets(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        site = add_site(session, name="Carcassonne", ae_titles=["CT_URG"], now=NOW)
        for name, kind in (("Radiologie Carcassonne", TeamKind.LOCAL),
                           ("GHT Aude", TeamKind.GROUP), ("Imadis", TeamKind.PROVIDER)):
            add_team(session, name=name, kind=kind)
        add_contract(
            session, site_id=site.id, modality="ct",
            windows=[parse_window("every 18:30-08:00"),
                     parse_window("sat,sun,holiday 00:00-00:00")],
            team_names=["Radiologie Carcassonne", "GHT Aude", "Imadis"],
            target_minutes={Urgency.URGENT: 45}, now=NOW,
        )
        with pytest.raises(Conflict):
            add_contract(session, site_id=site.id, modality="CT",
                         windows=[parse_window("every 00:00-00:00")], team_names=["Imadis"],
                         now=NOW)
        with pytest.raises(NotFound):
            add_contract(session, site_id=site.id, modality="MR",
                         windows=[parse_window("weekdays 08:00-18:30")],
                         team_names=["Nobody"], now=NOW)
    with transaction(runtime.sessions, readonly=True) as session:
        (contract,) = contracts_of(session, site.id)
        assert contract.modality == "CT"
        assert [t.name for t in cascade(session, contract)] == [
            "Radiologie Carcassonne", "GHT Aude", "Imadis"]
        assert targets(contract)[Urgency.URGENT] == dt.timedelta(minutes=45)
        assert targets(contract)[Urgency.STROKE_ALERT] == dt.timedelta(minutes=15)
        windows = coverage(contract)
    holidays = french_holidays()
    christmas_noon = dt.datetime(2026, 12, 25, 12, 0, tzinfo=PARIS)
    tuesday_noon = dt.datetime(2026, 11, 24, 12, 0, tzinfo=PARIS)
    assert is_covered_time(windows, christmas_noon, zone=PARIS, is_holiday=holidays)
    assert not is_covered_time(windows, tuesday_noon, zone=PARIS, is_holiday=holidays)


def test_contracts_from_the_command_line(settings: Settings) -> None:
    env = {"TELERAD_DATABASE_URL": settings.database_url}
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return telerad_command(*args, data_dir=settings.data_dir, env=env, check=False)

    assert run("site", "add", "Valenciennes", "--ae-title", "VAL_CT").returncode == 0
    assert run("team", "add", "Télé-AVC Hauts-de-France", "--kind", "region").returncode == 0
    result = run("contract", "add", "Valenciennes", "--modality", "CT",
                 "--window", "every 18:30-08:00", "--team", "Télé-AVC Hauts-de-France",
                 "--target", "stroke_alert=10")
    assert result.returncode == 0, result.stderr
    listing = run("contract", "list", "Valenciennes")
    assert listing.returncode == 0, listing.stderr
    assert "Télé-AVC Hauts-de-France" in listing.stdout
    assert "stroke_alert 10 min" in listing.stdout
    bad = run("contract", "add", "Valenciennes", "--modality", "MR", "--window", "nights",
              "--team", "Télé-AVC Hauts-de-France")
    assert bad.returncode == 2
    assert "DAYS HH:MM-HH:MM" in bad.stderr
