"""JSON API of the set-up a coordinator keeps: sites, teams, contracts, radiologists, the
duty roster (shifts, imports, gaps) and the protocol catalogue. No patient data here: the
permission ``roster:manage`` guards changes."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.errors import InvalidInput, NotFound
from telerad.httpauth import current_actor, runtime_of
from telerad.workflow.requests.service import add_protocol, list_protocols
from telerad.workflow.roster import shifts as roster_shifts
from telerad.workflow.roster.models import ShiftRow
from telerad.workflow.roster.service import add_radiologist, import_shifts, roster_gaps
from telerad.workflow.sites.contracts import (
    add_contract,
    add_team,
    cascade,
    contracts_of,
    parse_window,
    targets,
)
from telerad.workflow.sites.models import Site, Team, TeamKind, Urgency
from telerad.workflow.sites.service import list_sites

router = APIRouter(tags=["roster"])
CurrentActor = Annotated[Actor, Depends(current_actor)]


class SiteOut(BaseModel):
    id: int
    name: str
    timezone: str
    ae_titles: list[str]


@router.get("/sites", response_model=list[SiteOut], tags=["sites"])
def sites(request: Request, actor: CurrentActor) -> list[SiteOut]:
    """The sites the caller belongs to (every site for a service account)."""
    actor.scope.require_any()
    runtime = runtime_of(request)
    with transaction(runtime.sessions, readonly=True) as session:
        return [SiteOut(id=s.id, name=s.name, timezone=s.timezone,
                        ae_titles=[d.ae_title for d in s.devices])
                for s in list_sites(session)
                if actor.scope.site_ids is None or s.id in actor.scope.site_ids]


class TeamIn(BaseModel):
    name: str
    kind: TeamKind


class TeamOut(TeamIn):
    id: int


@router.get("/teams", response_model=list[TeamOut])
def teams(request: Request, actor: CurrentActor) -> list[TeamOut]:
    actor.scope.require(Permission.ROSTER_MANAGE)
    with transaction(runtime_of(request).sessions, readonly=True) as session:
        return [TeamOut(id=t.id, name=t.name, kind=TeamKind(t.kind))
                for t in session.scalars(select(Team).order_by(Team.name))]


@router.post("/teams", response_model=TeamOut, status_code=201)
def create_team(request: Request, body: TeamIn, actor: CurrentActor) -> TeamOut:
    actor.scope.require(Permission.ROSTER_MANAGE)
    with transaction(runtime_of(request).sessions) as session:
        team = add_team(session, name=body.name, kind=body.kind)
        return TeamOut(id=team.id, name=team.name, kind=TeamKind(team.kind))


class ContractIn(BaseModel):
    """A site's contract for one modality."""

    modality: str
    windows: list[str] = Field(examples=[["every 18:30-08:00", "weekends,holiday 08:00-18:30"]])
    teams: list[str] = Field(description="Team names, in cascade order")
    targets: dict[Urgency, int] = Field(default_factory=dict, description="Minutes")


class ContractOut(BaseModel):
    id: int
    site_id: int
    modality: str
    windows: list[dict[str, object]]
    teams: list[str]
    targets: dict[Urgency, int]


def _site(request: Request, site_id: int) -> Site:
    with transaction(runtime_of(request).sessions, readonly=True) as session:
        site = session.get(Site, site_id)
        if site is None:
            raise NotFound(f"no site #{site_id}")
        session.expunge(site)
        return site


@router.get("/sites/{site_id}/contracts", response_model=list[ContractOut])
def contracts(request: Request, site_id: int, actor: CurrentActor) -> list[ContractOut]:
    actor.scope.require(Permission.ROSTER_MANAGE)
    _site(request, site_id)
    with transaction(runtime_of(request).sessions, readonly=True) as session:
        return [ContractOut(
            id=c.id, site_id=c.site_id, modality=c.modality, windows=json.loads(c.windows),
            teams=[t.name for t in cascade(session, c)],
            targets={u: int(t.total_seconds() // 60) for u, t in targets(c).items()})
            for c in contracts_of(session, site_id)]


@router.post("/sites/{site_id}/contracts", response_model=ContractOut, status_code=201)
def create_contract(request: Request, site_id: int, body: ContractIn, actor: CurrentActor
                    ) -> ContractOut:
    actor.scope.require(Permission.ROSTER_MANAGE)
    _site(request, site_id)
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        contract = add_contract(session, site_id=site_id, modality=body.modality,
                                windows=[parse_window(w) for w in body.windows],
                                team_names=body.teams, now=runtime.clock.now(),
                                target_minutes=dict(body.targets))
        return ContractOut(
            id=contract.id, site_id=site_id, modality=contract.modality,
            windows=json.loads(contract.windows), teams=[t.name for t in cascade(session,
                                                                                 contract)],
            targets={u: int(t.total_seconds() // 60) for u, t in targets(contract).items()})


class RadiologistIn(BaseModel):
    name: str
    site_ids: list[int]
    subspecialties: list[str] = []
    username: str | None = Field(default=None, description="Their sign-in account")


class RadiologistOut(BaseModel):
    id: int
    name: str
    site_ids: list[int]
    subspecialties: list[str]
    user_id: int | None


@router.get("/radiologists", response_model=list[RadiologistOut])
def radiologists(request: Request, actor: CurrentActor) -> list[RadiologistOut]:
    actor.scope.require(Permission.ROSTER_MANAGE)
    with transaction(runtime_of(request).sessions, readonly=True) as session:
        return [RadiologistOut(id=r.id, name=r.name, site_ids=site_ids, user_id=r.user_id,
                               subspecialties=[s for s in r.subspecialties.split(",") if s])
                for r, site_ids in roster_shifts.list_radiologists(session)]


@router.post("/radiologists", response_model=RadiologistOut, status_code=201)
def create_radiologist(request: Request, body: RadiologistIn, actor: CurrentActor
                       ) -> RadiologistOut:
    actor.scope.require(Permission.ROSTER_MANAGE)
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        for site_id in body.site_ids:
            if session.get(Site, site_id) is None:
                raise NotFound(f"no site #{site_id}")
        r = add_radiologist(session, name=body.name, site_ids=body.site_ids,
                            subspecialties=body.subspecialties, now=runtime.clock.now(),
                            username=body.username)
        return RadiologistOut(id=r.id, name=r.name, site_ids=sorted(set(body.site_ids)),
                              subspecialties=[s for s in r.subspecialties.split(",") if s],
                              user_id=r.user_id)


class ShiftIn(BaseModel):
    radiologist_id: int
    team_id: int
    start: dt.datetime
    end: dt.datetime
    role: Literal["primary", "backup"] = "primary"


class ShiftOut(ShiftIn):
    id: int


def _shift_out(row: ShiftRow) -> ShiftOut:
    return ShiftOut(id=row.id, radiologist_id=row.radiologist_id, team_id=row.team_id,
                    start=row.starts_at, end=row.ends_at,
                    role="backup" if row.backup else "primary")


@router.get("/shifts", response_model=list[ShiftOut])
def shifts(request: Request, actor: CurrentActor, start: dt.datetime, end: dt.datetime,
           team_id: int | None = None) -> list[ShiftOut]:
    """Shifts overlapping [start, end) (ISO 8601 with offsets)."""
    actor.scope.require(Permission.ROSTER_MANAGE)
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("start and end need their UTC offset")
    with transaction(runtime_of(request).sessions, readonly=True) as session:
        return [_shift_out(r) for r in roster_shifts.list_shifts(
            session, start=start, end=end, team_id=team_id)]


@router.post("/shifts", response_model=ShiftOut, status_code=201)
def create_shift(request: Request, body: ShiftIn, actor: CurrentActor) -> ShiftOut:
    actor.scope.require(Permission.ROSTER_MANAGE)
    with transaction(runtime_of(request).sessions) as session:
        return _shift_out(roster_shifts.add_shift(
            session, radiologist_id=body.radiologist_id, team_id=body.team_id,
            start=body.start, end=body.end, backup=body.role == "backup"))


@router.delete("/shifts/{shift_id}", status_code=204)
def remove_shift(request: Request, shift_id: int, actor: CurrentActor) -> None:
    actor.scope.require(Permission.ROSTER_MANAGE)
    with transaction(runtime_of(request).sessions) as session:
        roster_shifts.delete_shift(session, shift_id)


class ImportOut(BaseModel):
    imported: int


@router.post("/shifts/import", response_model=ImportOut, openapi_extra={"requestBody": {
    "content": {"text/csv": {"schema": {"type": "string"}},
                "text/calendar": {"schema": {"type": "string"}}}}})
async def import_roster(request: Request, actor: CurrentActor,
                        timezone: str = "Europe/Paris") -> ImportOut:
    """Import shifts from CSV (radiologist,team,start,end,role) or iCalendar: all or none."""
    actor.scope.require(Permission.ROSTER_MANAGE)
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {timezone!r}") from None
    body = await request.body()
    if len(body) > 5 * 1024 * 1024:
        raise InvalidInput("a roster file is at most 5 MiB")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the roster file is not UTF-8 text") from None
    runtime = runtime_of(request)

    def run() -> int:
        with transaction(runtime.sessions) as session:
            return import_shifts(session, text=text, zone=zone, now=runtime.clock.now())

    return ImportOut(imported=await run_in_threadpool(run))


class GapOut(BaseModel):
    start: dt.datetime
    end: dt.datetime


@router.get("/roster/gaps", response_model=list[GapOut])
def gaps(request: Request, actor: CurrentActor, *, site_id: int, modality: str,
         days: Annotated[int, Query(ge=1, le=366)] = 7,
         start: dt.datetime | None = None) -> list[GapOut]:
    """Spans of the coming days the site's contract requires and no primary covers."""
    actor.scope.require(Permission.ROSTER_MANAGE)
    runtime = runtime_of(request)
    begin = start or runtime.clock.now()
    with transaction(runtime.sessions, readonly=True) as session:
        return [GapOut(start=g.start, end=g.end) for g in roster_gaps(
            session, site_id=site_id, modality=modality, start=begin,
            end=begin + dt.timedelta(days=days))]


class ProtocolIn(BaseModel):
    code: str
    name: str
    modality: str
    subspecialty: str = ""
    expected_series: list[str] = []


@router.get("/protocols", response_model=list[ProtocolIn], tags=["requests"])
def protocols(request: Request, actor: CurrentActor) -> list[ProtocolIn]:
    """The protocol catalogue a radiologist validates requests with."""
    actor.scope.require_any()
    with transaction(runtime_of(request).sessions, readonly=True) as session:
        return [ProtocolIn(code=p.code, name=p.name, modality=p.modality,
                           subspecialty=p.subspecialty,
                           expected_series=json.loads(p.expected_series))
                for p in list_protocols(session)]


@router.post("/protocols", response_model=ProtocolIn, status_code=201, tags=["requests"])
def create_protocol(request: Request, body: ProtocolIn, actor: CurrentActor) -> ProtocolIn:
    actor.scope.require(Permission.ROSTER_MANAGE)
    with transaction(runtime_of(request).sessions) as session:
        p = add_protocol(session, code=body.code, name=body.name, modality=body.modality,
                         subspecialty=body.subspecialty, expected_series=body.expected_series)
        return ProtocolIn(code=p.code, name=p.name, modality=p.modality,
                          subspecialty=p.subspecialty,
                          expected_series=json.loads(p.expected_series))
