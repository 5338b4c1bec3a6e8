"""The example world of ``telerad demo``, its pure parts: the roster covers every hour a
contract covers — with the newcomer's own account on a primary shift — whatever the week
(daylight-saving changes included), and the data directory is only ever a demo's."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from telerad.cli.demo_world import (
    CONTRACTS,
    MARKER,
    PARIS,
    RADIOLOGISTS,
    SITES,
    claim_data_dir,
    plan_shifts,
    require_demo_dir,
    roster_days,
)
from telerad.errors import InvalidInput
from telerad.workflow.roster.rules import Shift, french_holidays, gaps
from telerad.workflow.sites.contracts import parse_window

WEEKS = [dt.date(2026, 11, 23), dt.date(2026, 3, 23), dt.date(2026, 10, 19),
         dt.date(2026, 12, 21)]  # an ordinary week, both DST changes, Christmas


def test_the_roster_spans_this_week_and_the_next_from_the_sunday_night_before() -> None:
    monday_night = dt.datetime(2026, 11, 23, 2, 0, tzinfo=PARIS)
    assert roster_days(monday_night) == (dt.date(2026, 11, 22), dt.date(2026, 12, 6))
    sunday_evening = dt.datetime(2026, 11, 29, 23, 30, tzinfo=PARIS)
    assert roster_days(sunday_evening) == (dt.date(2026, 11, 22), dt.date(2026, 12, 6))
    # The UTC date is not the local one: 23:30 UTC on Sunday is Monday in Paris.
    utc = dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.UTC)
    assert roster_days(utc) == (dt.date(2026, 11, 29), dt.date(2026, 12, 13))


@pytest.mark.parametrize("monday", WEEKS, ids=str)
@pytest.mark.parametrize(("site", "modality", "window"), CONTRACTS)
def test_every_hour_a_contract_covers_has_a_primary_and_the_newcomer_on_duty(
        monday: dt.date, site: str, modality: str, window: str) -> None:
    first, last = roster_days(dt.datetime.combine(monday, dt.time(12), tzinfo=PARIS))
    planned = plan_shifts(first, last)
    credentialed = {p.username for p in RADIOLOGISTS if site in p.sites}
    start = dt.datetime.combine(monday, dt.time(0), tzinfo=PARIS)
    end = start + dt.timedelta(days=14)
    for who in (credentialed, {p.username for p in RADIOLOGISTS if p.you}):
        shifts = [Shift(radiologist_id=index, team=p.team, start=p.start, end=p.end,
                        backup=p.backup) for index, p in enumerate(planned) if p.username in who]
        assert list(gaps([parse_window(window)], shifts, zone=PARIS,
                         is_holiday=french_holidays(), start=start, end=end)) == []


@pytest.mark.parametrize("monday", WEEKS, ids=str)
def test_shifts_run_half_an_hour_beyond_the_coverage_in_local_time(monday: dt.date) -> None:
    planned = plan_shifts(monday, monday + dt.timedelta(days=6))
    assert len(planned) == 7 * len(RADIOLOGISTS)
    for shift in planned:
        local = (shift.start.astimezone(PARIS).time(), shift.end.astimezone(PARIS).time())
        assert local in ((dt.time(18, 0), dt.time(8, 30)), (dt.time(7, 30), dt.time(19, 0)))
        hours = (shift.end - shift.start).total_seconds() / 3600
        assert hours in (11.5, 13.5, 14.5, 15.5)  # a DST night is an hour shorter or longer


def test_the_newcomers_accounts_cover_every_site_of_every_contract() -> None:
    mine = [p for p in RADIOLOGISTS if p.you and not p.backup]
    for key, _modality, _window in CONTRACTS:
        assert all(key in p.sites for p in mine)
    assert {s.key for s in SITES} >= {key for key, _m, _w in CONTRACTS}
    assert all("neuro" in p.subspecialties for p in mine)  # stroke protocols need it


def test_only_a_new_or_empty_folder_becomes_a_demo_folder(tmp_path: Path) -> None:
    now = dt.datetime(2026, 11, 24, 20, 0, tzinfo=PARIS)
    fresh = tmp_path / "fresh"
    assert claim_data_dir(fresh, now=now) is True
    assert (fresh / MARKER).is_file()
    assert claim_data_dir(fresh, now=now) is False  # a demo folder stays one
    require_demo_dir(fresh)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert claim_data_dir(empty, now=now) is True
    other = tmp_path / "other"
    other.mkdir()
    (other / "telerad.sqlite3").write_bytes(b"")
    with pytest.raises(InvalidInput, match="new or empty folder"):
        claim_data_dir(other, now=now)
    assert not (other / MARKER).exists()
    with pytest.raises(InvalidInput, match="not created by `telerad demo`"):
        require_demo_dir(other)
