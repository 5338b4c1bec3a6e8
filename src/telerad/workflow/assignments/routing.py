"""Routing at one instant: the roster on duty, the contracts, and the offer ladder of each
exam (``assignments.rules``) — computed from the database for each question, never stored,
so a worklist is always a query of the present (and a what-if, the same with another roster).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.errors import InvalidInput
from telerad.workflow.assignments.rules import Ladder, Reader, TeamRef, Verdict, explain, ladder
from telerad.workflow.exams.models import Exam
from telerad.workflow.requests.models import Protocol
from telerad.workflow.roster.models import Credential, Radiologist, ShiftRow
from telerad.workflow.roster.rules import (
    MAX_SHIFT,
    CoverageWindow,
    HolidayCalendar,
    Shift,
    french_holidays,
    intervals,
    is_covered_time,
)
from telerad.workflow.sites.contracts import coverage, targets
from telerad.workflow.sites.models import (
    DEFAULT_TARGETS,
    Contract,
    ContractTeam,
    Site,
    Team,
    Urgency,
)


@dataclass(frozen=True, kw_only=True)
class RosterView:
    """Who is on duty: the running shifts (``team`` = team id as text) and the readers."""

    running: list[Shift]
    readers: dict[int, Reader]


def readers(session: Session, radiologist_ids: set[int]) -> dict[int, Reader]:
    if not radiologist_ids:
        return {}
    sites: dict[int, set[int]] = {}
    for radiologist_id, site_id in session.execute(
            select(Credential.radiologist_id, Credential.site_id)
            .where(Credential.radiologist_id.in_(radiologist_ids))):
        sites.setdefault(radiologist_id, set()).add(site_id)
    # Columns, not entities: a worklist may load hundreds of radiologists on duty.
    return {
        rid: Reader(radiologist_id=rid, name=name, site_ids=frozenset(sites.get(rid, ())),
                    subspecialties=frozenset(s for s in subspecialties.split(",") if s))
        for rid, name, subspecialties in session.execute(
            select(Radiologist.id, Radiologist.name, Radiologist.subspecialties)
            .where(Radiologist.id.in_(radiologist_ids)))
    }


def roster_at(session: Session, instant: dt.datetime, *, site_id: int | None = None
              ) -> RosterView:
    """The shifts running at ``instant`` and their radiologists (only those credentialed
    for ``site_id`` if given: all one exam's ladder can hold)."""
    query = (select(ShiftRow.radiologist_id, ShiftRow.team_id, ShiftRow.starts_at,
                    ShiftRow.ends_at, ShiftRow.backup)
             .where(ShiftRow.starts_at <= instant, ShiftRow.starts_at > instant - MAX_SHIFT,
                    ShiftRow.ends_at > instant))
    if site_id is not None:
        query = query.join(Credential, (Credential.radiologist_id == ShiftRow.radiologist_id)
                           & (Credential.site_id == site_id))
    rows = session.execute(query).all()
    running = [Shift(radiologist_id=r.radiologist_id, team=str(r.team_id), start=r.starts_at,
                     end=r.ends_at, backup=r.backup) for r in rows]
    return RosterView(running=running,
                      readers=readers(session, {s.radiologist_id for s in running}))


@dataclass(frozen=True, kw_only=True)
class ContractView:
    contract_id: int
    cascade: list[TeamRef]
    windows: list[CoverageWindow]
    zone: zoneinfo.ZoneInfo
    targets: dict[Urgency, dt.timedelta]


@dataclass
class Router:
    """Routing questions at one instant, with what they load cached for the call."""

    session: Session
    instant: dt.datetime
    roster: RosterView | None = None
    _contracts: dict[tuple[int, str], ContractView | None] = field(default_factory=dict)
    _subspecialties: dict[str | None, str] = field(default_factory=dict)
    _ladders: dict[tuple[int, str, str], Ladder] = field(default_factory=dict)
    _covered: dict[tuple[int, str], bool] = field(default_factory=dict)
    _holidays: HolidayCalendar | None = None

    def on_duty(self) -> RosterView:
        if self.roster is None:
            self.roster = roster_at(self.session, self.instant)
        return self.roster

    def contract(self, site_id: int, modality: str) -> ContractView | None:
        self.load_contracts({(site_id, modality)})
        return self._contracts[(site_id, modality)]

    def load_contracts(self, keys: set[tuple[int, str]]) -> None:
        """The contracts of these (site, modality) pairs, in two queries for them all."""
        missing = {k for k in keys if k not in self._contracts}
        if not missing:
            return
        rows = self.session.execute(
            select(Contract, Site.timezone).join(Site, Site.id == Contract.site_id)
            .where(Contract.site_id.in_({site for site, _ in missing}),
                   Contract.modality.in_({modality for _, modality in missing}))).all()
        teams: dict[int, list[TeamRef]] = {}
        for contract_id, team_id, name in self.session.execute(
                select(ContractTeam.contract_id, Team.id, Team.name)
                .join(Team, Team.id == ContractTeam.team_id)
                .where(ContractTeam.contract_id.in_([c.id for c, _zone in rows]))
                .order_by(ContractTeam.contract_id, ContractTeam.position)):
            teams.setdefault(contract_id, []).append(TeamRef(id=team_id, name=name))
        for key in missing:
            self._contracts[key] = None
        for contract, zone in rows:
            self._contracts[(contract.site_id, contract.modality)] = ContractView(
                contract_id=contract.id, cascade=teams.get(contract.id, []),
                windows=coverage(contract), zone=zoneinfo.ZoneInfo(zone),
                targets=targets(contract))

    def subspecialty(self, protocol_code: str | None) -> str:
        if protocol_code not in self._subspecialties:
            protocol = None if protocol_code is None else self.session.get(Protocol,
                                                                           protocol_code)
            self._subspecialties[protocol_code] = protocol.subspecialty if protocol else ""
        return self._subspecialties[protocol_code]

    def holidays(self) -> HolidayCalendar:
        if self._holidays is None:
            self._holidays = french_holidays()
        return self._holidays

    def covered(self, exam: Exam) -> bool:
        key = (exam.site_id, exam.modality)
        if key not in self._covered:
            view = self.contract(*key)
            self._covered[key] = view is not None and is_covered_time(
                view.windows, self.instant, zone=view.zone, is_holiday=self.holidays())
        return self._covered[key]

    def next_opening(self, exam: Exam) -> dt.datetime | None:
        """When the contract's coverage next opens (within a fortnight)."""
        view = self.contract(exam.site_id, exam.modality)
        if view is None:
            return None
        spans = intervals(view.windows, zone=view.zone, is_holiday=self.holidays(),
                          start=self.instant, end=self.instant + dt.timedelta(days=14))
        return next((opens for opens, _ in spans if opens > self.instant), None)

    def target(self, exam: Exam) -> dt.timedelta:
        urgency = Urgency(exam.urgency or Urgency.SCHEDULED)
        view = self.contract(exam.site_id, exam.modality)
        return (view.targets if view else {}).get(
            urgency, dt.timedelta(minutes=DEFAULT_TARGETS[urgency]))

    def ladder(self, exam: Exam) -> Ladder:
        subspecialty = self.subspecialty(exam.protocol_code)
        key = (exam.site_id, exam.modality, subspecialty)
        if key not in self._ladders:
            view = self.contract(exam.site_id, exam.modality)
            roster = self.on_duty()
            self._ladders[key] = ladder(
                site_id=exam.site_id, subspecialty=subspecialty,
                cascade=view.cascade if view else [], running=roster.running,
                readers=roster.readers)
        return self._ladders[key]

    def offered(self, exam: Exam, *, level: int | None = None) -> frozenset[int]:
        """Who may claim (or justify) the exam now: nobody outside the contract's coverage."""
        if not self.covered(exam):
            return frozenset()
        return self.ladder(exam).offered(exam.escalation_level if level is None else level)

    def explain(self, exam: Exam) -> tuple[Ladder, list[Verdict], bool]:
        """The ladder, a verdict for every radiologist on duty or credentialed for the site,
        and whether the contract covers this instant."""
        roster = self.on_duty()
        credentialed = set(self.session.scalars(
            select(Credential.radiologist_id).where(Credential.site_id == exam.site_id)))
        known = dict(roster.readers)
        known.update(readers(self.session, credentialed - set(known)))
        view = self.contract(exam.site_id, exam.modality)
        covered = self.covered(exam)
        rungs, verdicts = explain(
            site_id=exam.site_id, subspecialty=self.subspecialty(exam.protocol_code),
            cascade=view.cascade if view else [], covered=covered, running=roster.running,
            readers=known, level=exam.escalation_level)
        return rungs, verdicts, covered


def roster_from_lines(
    session: Session, lines: list[tuple[str, str, dt.datetime, dt.datetime, bool]],
    instant: dt.datetime,
) -> RosterView:
    """A hypothetical roster (what-if): (radiologist name, team name, start, end, backup)."""
    by_name = {r.name: r.id for r in session.scalars(select(Radiologist))}
    teams = {t.name: t.id for t in session.scalars(select(Team))}
    running = []
    for number, (name, team, start, end, backup) in enumerate(lines, start=1):
        if name not in by_name:
            raise InvalidInput(f"shift {number}: no radiologist named {name!r}")
        if team not in teams:
            raise InvalidInput(f"shift {number}: no team named {team!r}")
        try:
            shift = Shift(radiologist_id=by_name[name], team=str(teams[team]), start=start,
                          end=end, backup=backup)
        except ValueError as exc:
            raise InvalidInput(f"shift {number}: {exc}") from None
        if shift.covers(instant):
            running.append(shift)
    return RosterView(running=running,
                      readers=readers(session, {s.radiologist_id for s in running}))
