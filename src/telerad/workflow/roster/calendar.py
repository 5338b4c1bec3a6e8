"""The roster's week of one site, read from the database for the coordinator's calendar:
who is on duty each day, what each contract requires, and where no one covers it (the
gaps, from ``service.roster_gaps``: the same rule the routing relies on)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.workflow.roster.models import Radiologist, ShiftRow
from telerad.workflow.roster.rules import french_holidays
from telerad.workflow.roster.service import roster_gaps
from telerad.workflow.roster.shifts import list_radiologists, list_shifts
from telerad.workflow.roster.week import (
    Span,
    by_start_day,
    days_of,
    local_span,
    openings,
    week_span,
)
from telerad.workflow.sites.contracts import cascade, contracts_of, coverage
from telerad.workflow.sites.models import Site, Team


@dataclass(frozen=True, kw_only=True)
class ShiftCell:
    id: int
    span: Span
    team: str
    backup: bool


@dataclass(frozen=True, kw_only=True)
class RadiologistRow:
    radiologist: Radiologist
    #: Only the shifts of radiologists credentialed for the site cover its contracts.
    credentialed: bool
    cells: dict[dt.date, list[ShiftCell]]


@dataclass(frozen=True, kw_only=True)
class CoverageCell:
    #: The contract's windows opening that day, and the gaps beginning that day.
    windows: list[Span]
    gaps: list[Span]


@dataclass(frozen=True, kw_only=True)
class CoverageRow:
    modality: str
    teams: list[str]
    cells: dict[dt.date, CoverageCell]


@dataclass(frozen=True, kw_only=True)
class Week:
    site: Site
    monday: dt.date
    days: list[dt.date]
    coverage: list[CoverageRow]
    rows: list[RadiologistRow]
    #: Every team and radiologist, for the form that adds a shift.
    teams: dict[int, str]
    radiologists: list[Radiologist]

    @property
    def previous(self) -> dt.date:
        return self.monday - dt.timedelta(days=7)

    @property
    def next(self) -> dt.date:
        return self.monday + dt.timedelta(days=7)


def _coverage(session: Session, site: Site, days: list[dt.date], start: dt.datetime,
              end: dt.datetime) -> list[CoverageRow]:
    """Per contract, each day's windows and gaps; gaps are looked for a day past the week,
    so that Sunday's night shows whole."""
    zone, rows = zoneinfo.ZoneInfo(site.timezone), []
    for contract in contracts_of(session, site.id):
        found = roster_gaps(session, site_id=site.id, modality=contract.modality, start=start,
                            end=end + dt.timedelta(days=1))
        gaps = by_start_day([local_span(g.start, g.end, zone) for g in found if g.start < end],
                            start_of=lambda s: s.start, zone=zone, days=days)
        opened = openings(coverage(contract), zone=zone, is_holiday=french_holidays(),
                          days=days)
        rows.append(CoverageRow(
            modality=contract.modality, teams=[t.name for t in cascade(session, contract)],
            cells={d: CoverageCell(windows=opened[d], gaps=gaps[d]) for d in days}))
    return rows


def _cells(rows: list[ShiftRow], teams: dict[int, str], zone: zoneinfo.ZoneInfo,
           days: list[dt.date]) -> dict[dt.date, list[ShiftCell]]:
    grouped = by_start_day(rows, start_of=lambda r: r.starts_at, zone=zone, days=days)
    return {day: [ShiftCell(id=r.id, span=local_span(r.starts_at, r.ends_at, zone),
                            team=teams.get(r.team_id, ""), backup=r.backup) for r in found]
            for day, found in grouped.items()}


def week_of(session: Session, *, site: Site, monday: dt.date) -> Week:
    """The week from ``monday`` at ``site``, in its time zone: a row per contract, a row per
    radiologist credentialed for the site or on duty for one of its contracts' teams."""
    zone, days = zoneinfo.ZoneInfo(site.timezone), days_of(monday)
    start, end = week_span(monday, zone)
    teams = {t.id: t.name for t in session.scalars(select(Team).order_by(Team.name))}
    site_teams = {t.id for c in contracts_of(session, site.id) for t in cascade(session, c)}
    everyone = list_radiologists(session)
    credentialed = {r.id for r, site_ids in everyone if site.id in site_ids}
    shifts = [s for s in list_shifts(session, start=start, end=end)
              if s.radiologist_id in credentialed or s.team_id in site_teams]
    shown = credentialed | {s.radiologist_id for s in shifts}
    rows = [RadiologistRow(radiologist=r, credentialed=r.id in credentialed, cells=_cells(
        [s for s in shifts if s.radiologist_id == r.id], teams, zone, days))
        for r, _sites in everyone if r.id in shown]
    return Week(site=site, monday=monday, days=days, rows=rows, teams=teams,
                coverage=_coverage(session, site, days, start, end),
                radiologists=[r for r, _sites in everyone])
