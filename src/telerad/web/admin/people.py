"""Administration: the reading teams, and radiologists with their credentials (the sites
they may read for, their subspecialties, their sign-in account)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy import select

from telerad.audit.service import Action
from telerad.auth.models import User
from telerad.errors import Conflict, InvalidInput, NotFound
from telerad.web.admin.common import (
    MANAGE,
    Many,
    Signed,
    Text,
    changing,
    failure,
    page,
    reading,
    redirect,
    site_ids_of,
    visible_sites,
)
from telerad.web.pages import form_actor, page_actor
from telerad.workflow.roster.credentials import set_credentials
from telerad.workflow.roster.models import Credential, Radiologist
from telerad.workflow.roster.service import add_radiologist
from telerad.workflow.roster.shifts import list_radiologists
from telerad.workflow.roster.teams import team_contracts, team_members
from telerad.workflow.sites.contracts import add_team
from telerad.workflow.sites.models import Site, Team, TeamKind

router = APIRouter(include_in_schema=False)


def teams_page(request: Request, who: Signed, **context: Any) -> HTMLResponse:
    with reading(request) as session:
        members, used_by = team_members(session), team_contracts(session)
        rows = [{"team": t, "members": members.get(t.id, []), "contracts": used_by.get(t.id, [])}
                for t in session.scalars(select(Team).order_by(Team.name))]
        return page(request, "admin_teams.html", "admin_teams", who, rows=rows,
                    kinds=list(TeamKind), **context)


@router.get("/admin/teams", response_class=HTMLResponse)
def teams(request: Request, notice: str = "") -> Response:
    return teams_page(request, page_actor(request, MANAGE), notice=notice)


@router.post("/admin/teams", response_class=HTMLResponse)
def create_team(request: Request, csrf_token: Text = "", name: Text = "",
                kind: Text = "") -> Response:
    who = form_actor(request, csrf_token, MANAGE)
    try:
        if kind not in set(TeamKind):
            raise InvalidInput(f"a team's kind is one of {', '.join(TeamKind)}")
        with changing(request, who[0], Action.CREATE, "team") as (session, _now, detail):
            team = add_team(session, name=name, kind=TeamKind(kind))
            detail.update(team_id=team.id, name=team.name, kind=team.kind)
    except (InvalidInput, Conflict) as exc:
        return teams_page(request, who, status_code=exc.http_status,
                          errors={"team": failure(request, "admin_team_failed", exc)},
                          form={"name": name, "kind": kind})
    return redirect("/admin/teams", "admin_team_added")


def subspecialties_of(text: str) -> list[str]:
    return [s for s in (part.strip() for part in text.split(",")) if s]


def radiologists_page(request: Request, who: Signed, **context: Any) -> HTMLResponse:
    with reading(request) as session:
        site_names = {s.id: s.name for s in session.scalars(select(Site))}
        accounts = {i: n for i, n in session.execute(select(User.id, User.username))}
        rows = [{"radiologist": r, "sites": [site_names[s] for s in site_ids],
                 "subspecialties": subspecialties_of(r.subspecialties),
                 "account": accounts.get(r.user_id) if r.user_id else None}
                for r, site_ids in list_radiologists(session)]
        return page(request, "admin_radiologists.html", "admin_radiologists", who, rows=rows,
                    sites=visible_sites(session, who[0]), **context)


@router.get("/admin/radiologists", response_class=HTMLResponse)
def radiologists(request: Request, notice: str = "") -> Response:
    return radiologists_page(request, page_actor(request, MANAGE), notice=notice)


class RadiologistFields(BaseModel):
    csrf_token: str = ""
    name: str = ""
    site_ids: list[str] = []
    subspecialties: str = ""
    username: str = ""


@router.post("/admin/radiologists", response_class=HTMLResponse)
def create_radiologist(request: Request,
                       fields: Annotated[RadiologistFields, Form()]) -> Response:
    who = form_actor(request, fields.csrf_token, MANAGE)
    try:
        with changing(request, who[0], Action.CREATE, "radiologist") as (session, now, detail):
            chosen = site_ids_of(session, fields.site_ids)
            radiologist = add_radiologist(
                session, name=fields.name, site_ids=chosen, now=now,
                subspecialties=subspecialties_of(fields.subspecialties),
                username=fields.username.strip() or None)
            detail.update(radiologist_id=radiologist.id, user_id=radiologist.user_id,
                          site_ids=chosen)
    except (InvalidInput, Conflict) as exc:
        return radiologists_page(
            request, who, status_code=exc.http_status,
            errors={"radiologist": failure(request, "admin_radiologist_failed", exc)},
            form=fields.model_dump(exclude={"csrf_token"}))
    return redirect("/admin/radiologists", "admin_radiologist_added")


def radiologist_page(request: Request, who: Signed, radiologist_id: int,
                     **context: Any) -> HTMLResponse:
    with reading(request) as session:
        radiologist = session.get(Radiologist, radiologist_id)
        if radiologist is None:
            raise NotFound(f"no radiologist #{radiologist_id}")
        chosen = [str(s) for s in session.scalars(select(Credential.site_id).where(
            Credential.radiologist_id == radiologist_id))]
        form = context.pop("form", None) or {
            "site_ids": chosen, "subspecialties": ", ".join(
                subspecialties_of(radiologist.subspecialties))}
        return page(request, "admin_radiologist.html", "admin_credentials", who,
                    radiologist=radiologist, sites=visible_sites(session, who[0]), form=form,
                    **context)


@router.get("/admin/radiologists/{radiologist_id}", response_class=HTMLResponse)
def radiologist_detail(request: Request, radiologist_id: int, notice: str = "") -> Response:
    return radiologist_page(request, page_actor(request, MANAGE), radiologist_id, notice=notice)


@router.post("/admin/radiologists/{radiologist_id}", response_class=HTMLResponse)
def save_credentials(request: Request, radiologist_id: int, csrf_token: Text = "",
                     site_ids: Many = None, subspecialties: Text = "") -> Response:
    who = form_actor(request, csrf_token, MANAGE)
    try:
        with changing(request, who[0], Action.UPDATE, "credentials") as (session, _now, detail):
            chosen = site_ids_of(session, site_ids)
            set_credentials(session, radiologist_id=radiologist_id, site_ids=chosen,
                            subspecialties=subspecialties_of(subspecialties))
            detail.update(radiologist_id=radiologist_id, site_ids=chosen)
    except InvalidInput as exc:
        return radiologist_page(
            request, who, radiologist_id, status_code=exc.http_status,
            errors={"credentials": failure(request, "admin_credentials_failed", exc)},
            form={"site_ids": site_ids or [], "subspecialties": subspecialties})
    return redirect(f"/admin/radiologists/{radiologist_id}", "admin_credentials_saved")
