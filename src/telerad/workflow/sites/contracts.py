"""Contracts: which reading teams cover a site's exams of one modality, when, how fast.

The French teleradiology charter asks for a cascade: the site's own radiologists first,
then the hospital group, the region, a commercial provider last. A contract lists its teams
in that order, its coverage windows (``workflow.roster.rules``) and the turnaround it
promises per urgency.
"""

from __future__ import annotations

import datetime as dt
import json
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.errors import Conflict, InvalidInput, NotFound
from telerad.workflow.roster.rules import EVERY_DAY, WEEKDAYS, CoverageWindow, DayKind
from telerad.workflow.sites.models import (
    DEFAULT_TARGETS,
    Contract,
    ContractTeam,
    Team,
    TeamKind,
    Urgency,
)

_DAY_GROUPS = {"every": EVERY_DAY, "weekdays": WEEKDAYS,
               "weekends": frozenset({DayKind.SATURDAY, DayKind.SUNDAY})}
_WINDOW = re.compile(r"^\s*(?P<days>[a-z,]+)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})\s*$")


def parse_window(text: str) -> CoverageWindow:
    """``"weekdays 08:00-18:30"``, ``"every 18:30-08:00"``, ``"sat,sun,holiday 00:00-00:00"``
    (days: every, weekdays, weekends, mon..sun, holiday; a range across midnight is a night,
    equal times are 24 hours)."""
    match = _WINDOW.match(text.lower())
    if match is None:
        raise InvalidInput(f"coverage window {text!r}: write DAYS HH:MM-HH:MM")
    days: set[DayKind] = set()
    for name in match["days"].split(","):
        if name in _DAY_GROUPS:
            days |= _DAY_GROUPS[name]
        else:
            try:
                days.add(DayKind(name))
            except ValueError:
                raise InvalidInput(f"coverage window {text!r}: unknown day {name!r}") from None
    try:
        start, end = (dt.time.fromisoformat(match[k].zfill(5)) for k in ("start", "end"))
    except ValueError:
        raise InvalidInput(f"coverage window {text!r}: invalid time") from None
    return CoverageWindow(days=frozenset(days), start=start, end=end)


def _window_json(window: CoverageWindow) -> dict[str, object]:
    return {"days": sorted(d.value for d in window.days),
            "start": window.start.strftime("%H:%M"), "end": window.end.strftime("%H:%M")}


def coverage(contract: Contract) -> list[CoverageWindow]:
    """The contract's windows, for the roster rules."""
    return [
        CoverageWindow(days=frozenset(DayKind(d) for d in w["days"]),
                       start=dt.time.fromisoformat(w["start"]), end=dt.time.fromisoformat(w["end"]))
        for w in json.loads(contract.windows)
    ]


def targets(contract: Contract) -> dict[Urgency, dt.timedelta]:
    """Turnaround target per urgency."""
    return {Urgency(k): dt.timedelta(minutes=v) for k, v in json.loads(contract.targets).items()}


def add_team(session: Session, *, name: str, kind: TeamKind) -> Team:
    name = name.strip()
    if not name:
        raise InvalidInput("a team needs a name")
    if session.scalar(select(Team.id).where(Team.name == name)) is not None:
        raise Conflict(f"a team named {name!r} already exists")
    team = Team(name=name, kind=kind)
    session.add(team)
    session.flush()
    return team


def add_contract(
    session: Session, *, site_id: int, modality: str, windows: list[CoverageWindow],
    team_names: list[str], now: dt.datetime, target_minutes: dict[Urgency, int] | None = None,
) -> Contract:
    """A contract for ``modality`` at the site, its teams tried in the order given."""
    modality = modality.strip().upper()
    if not re.fullmatch(r"[A-Z0-9]{1,16}", modality):
        raise InvalidInput(f"invalid modality {modality!r} (a DICOM Modality such as CT, MR)")
    if not windows:
        raise InvalidInput("a contract covers at least one window")
    if not team_names:
        raise InvalidInput("a contract names at least one reading team")
    taken = session.scalar(select(Contract.id).where(Contract.site_id == site_id,
                                                     Contract.modality == modality))
    if taken is not None:
        raise Conflict(f"the site already has a contract for {modality}")
    chosen = {**DEFAULT_TARGETS, **(target_minutes or {})}
    if any(minutes <= 0 for minutes in chosen.values()):
        raise InvalidInput("turnaround targets are positive numbers of minutes")
    teams = []
    for name in team_names:
        team = session.scalar(select(Team).where(Team.name == name.strip()))
        if team is None:
            raise NotFound(f"no team named {name!r}")
        teams.append(team)
    if len({t.id for t in teams}) != len(teams):
        raise InvalidInput("a team appears twice in the cascade")
    contract = Contract(site_id=site_id, modality=modality,
                        windows=json.dumps([_window_json(w) for w in windows]),
                        targets=json.dumps({str(k): v for k, v in chosen.items()}),
                        created_at=now)
    session.add(contract)
    session.flush()
    for position, team in enumerate(teams, start=1):
        session.add(ContractTeam(contract_id=contract.id, position=position, team_id=team.id))
    session.flush()
    return contract


def cascade(session: Session, contract: Contract) -> list[Team]:
    """The contract's teams, in the order they are tried."""
    return list(session.scalars(
        select(Team).join(ContractTeam, ContractTeam.team_id == Team.id)
        .where(ContractTeam.contract_id == contract.id).order_by(ContractTeam.position)
    ))


def contracts_of(session: Session, site_id: int) -> list[Contract]:
    return list(session.scalars(select(Contract).where(Contract.site_id == site_id)
                                .order_by(Contract.modality)))
