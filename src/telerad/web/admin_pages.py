"""Administration pages (coordinator, site manager, admin): sites, devices, contracts,
teams, radiologists, the roster's week, users, the audit trail.

The pages keep no rules of their own: they call the services the JSON API calls
(``workflow.sites``, ``workflow.roster``, ``auth.accounts``), each change in one transaction
with its audit event. Who may do what: ``roster:manage`` (coordinator, admin) keeps the
set-up; ``sites:read`` (site manager) sees their own sites' devices and contracts;
``users:manage`` and ``audit:read`` (admin) keep the accounts and search the trail.

A page answers an error as a page: not signed in, the sign-in page; not allowed, 403 with
a message; a form without its CSRF token, 403 "page expired". Bad input in a form is shown
next to that form, the form refilled, and nothing is changed (status 400, or 409 for a
conflict with what exists).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated, Any, ParamSpec
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile as StarletteUpload

from telerad.audit.search import AuditQuery, Results, chain_status, search
from telerad.audit.service import Action, record, who_for
from telerad.auth.accounts import (
    change_role_and_sites,
    create_account,
    deactivate,
    get_account,
    list_accounts,
    reactivate,
    reset_second_factor,
)
from telerad.auth.models import Role, User
from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TeleradError,
)
from telerad.httpauth import csrf_token, runtime_of, source_of
from telerad.web.i18n import TEXTS, language
from telerad.web.pages import form_actor, page_actor, render
from telerad.workflow.exams.lookup import studies_and_exams
from telerad.workflow.roster.calendar import week_of
from telerad.workflow.roster.credentials import radiologist_of_account, set_credentials
from telerad.workflow.roster.models import Credential, Radiologist, ShiftRow
from telerad.workflow.roster.service import add_radiologist, import_shifts
from telerad.workflow.roster.shifts import add_shift, list_radiologists
from telerad.workflow.roster.shifts import delete_shift as remove_shift
from telerad.workflow.roster.teams import team_contracts, team_members
from telerad.workflow.roster.week import (
    day_groups,
    describe,
    monday_of,
)
from telerad.workflow.sites.contracts import (
    add_contract,
    add_team,
    cascade,
    contracts_of,
    coverage,
    parse_window,
    targets,
)
from telerad.workflow.sites.devices import remove_device
from telerad.workflow.sites.models import DEFAULT_TARGETS, Contract, Site, Team, TeamKind, Urgency
from telerad.workflow.sites.service import add_device, add_site

router = APIRouter(include_in_schema=False)
P = ParamSpec("P")
Text = Annotated[str, Form()]
Many = Annotated[list[str] | None, Form()]

_P = Permission
MANAGE = frozenset({_P.ROSTER_MANAGE})
CONFIG = frozenset({_P.ROSTER_MANAGE, _P.SITES_READ})
USERS = frozenset({_P.USERS_MANAGE})
AUDIT = frozenset({_P.AUDIT_READ})
ANY = MANAGE | CONFIG | USERS | AUDIT
#: The sections: (path, text key, permissions of which any one opens it).
SECTIONS: tuple[tuple[str, str, frozenset[Permission]], ...] = (
    ("/admin/sites", "admin_sites", CONFIG),
    ("/admin/contracts", "admin_contracts", CONFIG),
    ("/admin/teams", "admin_teams", MANAGE),
    ("/admin/radiologists", "admin_radiologists", MANAGE),
    ("/admin/roster", "admin_roster", MANAGE),
    ("/admin/users", "admin_users", USERS),
    ("/admin/audit", "admin_audit", AUDIT),
)
#: Notices a redirect may name (only these keys: nothing from the URL is shown as is).
NOTICES = frozenset({"admin_site_added", "admin_device_added", "admin_device_removed",
                     "admin_contract_added", "admin_team_added", "admin_radiologist_added",
                     "admin_credentials_saved", "admin_shift_added", "admin_shift_deleted",
                     "admin_shifts_imported", "admin_user_added", "admin_user_saved",
                     "admin_user_deactivated", "admin_user_reactivated",
                     "admin_second_factor_reset"})


Signed = tuple[Actor, str]


def can(actor: Actor, any_of: frozenset[Permission]) -> bool:
    return bool(any_of & actor.scope.permissions)


def page(request: Request, template: str, title_key: str, who: Signed, *,
         status_code: int = 200, notice: str = "", notice_text: str = "",
         **context: Any) -> HTMLResponse:
    """An administration page, with its sections menu and the CSRF token of its forms;
    ``notice`` names one of NOTICES (a redirect's), ``notice_text`` is already worded."""
    actor, token = who
    t = TEXTS[language(request)]
    sections = [(path, key) for path, key, any_of in SECTIONS if can(actor, any_of)]
    return render(request, template, title_key, status_code=status_code, actor=actor,
                  csrf=csrf_token(token), sections=sections, manage=can(actor, MANAGE),
                  notice=notice_text or (t[notice] if notice in NOTICES else ""),
                  errors=context.pop("errors", None) or {},
                  form=context.pop("form", None) or {}, **context)


def redirect(path: str, notice: str, **params: object) -> RedirectResponse:
    query = urlencode({"notice": notice, **{k: v for k, v in params.items() if v != ""}})
    return RedirectResponse(f"{path}?{query}", status_code=303)


def failure(request: Request, key: str, exc: TeleradError) -> dict[str, str]:
    """What a form shows when its change was refused: our words, then the service's."""
    return {"lead": TEXTS[language(request)][key], "detail": exc.message}


@contextmanager
def changing(request: Request, actor: Actor, action: Action, what: str
             ) -> Iterator[tuple[Session, dt.datetime, dict[str, object]]]:
    """One change in one transaction with its audit event; the caller adds to the event's
    detail (the ids it created) in the dict it is given."""
    runtime = runtime_of(request)
    now = runtime.clock.now()
    with transaction(runtime.sessions) as session:
        detail: dict[str, object] = {"what": what}
        yield session, now, detail
        record(session, who=who_for(actor, source_of(request)), action=action, now=now,
               detail=detail)


def reading(request: Request) -> AbstractContextManager[Session]:
    return transaction(runtime_of(request).sessions, readonly=True)


def visible_sites(session: Session, actor: Actor) -> list[Site]:
    """Every site for those who keep the set-up; their own sites for a site manager."""
    sites = list(session.scalars(select(Site).order_by(Site.name)))
    if can(actor, MANAGE):
        return sites
    return [s for s in sites if actor.scope.site_ids and s.id in actor.scope.site_ids]


def site_of(session: Session, actor: Actor, site_id: int) -> Site:
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound(f"no site #{site_id}")
    if site not in visible_sites(session, actor):
        raise Forbidden("this site is not one of yours")
    return site


def site_ids_of(session: Session, values: list[str] | None) -> list[int]:
    """Checked sites of a form: ids of sites that exist."""
    ids = sorted({int(v) for v in values or [] if v.isdigit()})
    known = set(session.scalars(select(Site.id).where(Site.id.in_(ids))))
    if len(known) != len(ids) or len(ids) != len(values or []):
        raise InvalidInput("unknown site in the form")
    return ids


def zone_of(site: Site) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(site.timezone)


@router.get("/admin", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    who = page_actor(request, ANY)
    return page(request, "admin.html", "administration", who)


# --- Sites, devices, contracts -------------------------------------------------------------


def contract_view(session: Session, contract: Contract) -> dict[str, Any]:
    """A contract as the pages show it: windows in the words they are typed in."""
    return {"modality": contract.modality,
            "windows": [{"days": day_groups(w.days), "start": f"{w.start:%H:%M}",
                         "end": f"{w.end:%H:%M}", "text": describe(w)}
                        for w in coverage(contract)],
            "targets": [(str(u), int(v.total_seconds() // 60))
                        for u, v in targets(contract).items()],
            "teams": [t.name for t in cascade(session, contract)]}


def site_rows(session: Session, sites: list[Site]) -> list[dict[str, Any]]:
    return [{"site": s, "ae_titles": [d.ae_title for d in s.devices],
             "contracts": [contract_view(session, c) for c in contracts_of(session, s.id)]}
            for s in sites]


def sites_page(request: Request, who: Signed, **context: Any) -> HTMLResponse:
    with reading(request) as session:
        rows = site_rows(session, visible_sites(session, who[0]))
        return page(request, "admin_sites.html", "admin_sites", who, rows=rows, **context)


@router.get("/admin/sites", response_class=HTMLResponse)
def sites(request: Request, notice: str = "") -> Response:
    return sites_page(request, page_actor(request, CONFIG), notice=notice)


@router.post("/admin/sites", response_class=HTMLResponse)
def create_site(request: Request, csrf_token: Text = "", name: Text = "",
                timezone: Text = "Europe/Paris") -> Response:
    who = form_actor(request, csrf_token, MANAGE)
    try:
        with changing(request, who[0], Action.CREATE, "site") as (session, now, detail):
            site = add_site(session, name=name, ae_titles=[], now=now,
                            timezone=timezone.strip())
            detail.update(site_id=site.id, name=site.name, timezone=site.timezone)
    except (InvalidInput, Conflict) as exc:
        return sites_page(request, who, status_code=exc.http_status,
                          errors={"site": failure(request, "admin_site_failed", exc)},
                          form={"name": name, "timezone": timezone})
    return redirect(f"/admin/sites/{site.id}", "admin_site_added")


def site_page(request: Request, who: Signed, site_id: int, **context: Any) -> HTMLResponse:
    with reading(request) as session:
        site = site_of(session, who[0], site_id)
        teams = list(session.scalars(select(Team.name).order_by(Team.name)))
        return page(request, "admin_site.html", "admin_site", who, site=site,
                    devices=list(site.devices), teams=teams, urgencies=list(Urgency),
                    defaults={str(u): m for u, m in DEFAULT_TARGETS.items()},
                    contracts=[contract_view(session, c) for c in contracts_of(session, site_id)],
                    **context)


@router.get("/admin/sites/{site_id}", response_class=HTMLResponse)
def site_detail(request: Request, site_id: int, notice: str = "") -> Response:
    return site_page(request, page_actor(request, CONFIG), site_id, notice=notice)


@router.post("/admin/sites/{site_id}/devices", response_class=HTMLResponse)
def create_device(request: Request, site_id: int, csrf_token: Text = "",
                  ae_title: Text = "") -> Response:
    who = form_actor(request, csrf_token, MANAGE)
    try:
        with changing(request, who[0], Action.CREATE, "device") as (session, now, detail):
            device = add_device(session, site=site_of(session, who[0], site_id),
                                ae_title=ae_title, now=now)
            detail.update(site_id=site_id, device_id=device.id, ae_title=device.ae_title)
    except (InvalidInput, Conflict) as exc:
        return site_page(request, who, site_id, status_code=exc.http_status,
                         errors={"device": failure(request, "admin_device_failed", exc)},
                         form={"ae_title": ae_title})
    return redirect(f"/admin/sites/{site_id}", "admin_device_added")


@router.post("/admin/sites/{site_id}/devices/{device_id}/delete")
def delete_device(request: Request, site_id: int, device_id: int,
                  csrf_token: Text = "") -> Response:
    who = form_actor(request, csrf_token, MANAGE)
    with changing(request, who[0], Action.UPDATE, "device_removed") as (session, _now, detail):
        site_of(session, who[0], site_id)
        detail.update(site_id=site_id, device_id=device_id,
                      ae_title=remove_device(session, site_id=site_id, device_id=device_id))
    return redirect(f"/admin/sites/{site_id}", "admin_device_removed")


def minutes(value: str, urgency: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise InvalidInput(f"the {urgency} target is a whole number of minutes") from None


class ContractFields(BaseModel):
    """The contract form: windows one per line, up to three teams in cascade order, a
    target in minutes per urgency (empty: the default)."""

    csrf_token: str = ""
    modality: str = ""
    windows: str = ""
    team_1: str = ""
    team_2: str = ""
    team_3: str = ""
    target_stroke_alert: str = ""
    target_life_threatening: str = ""
    target_urgent: str = ""
    target_scheduled: str = ""

    def target_minutes(self) -> dict[Urgency, int]:
        given = {u: str(getattr(self, f"target_{u}")).strip() for u in Urgency}
        return {u: minutes(v, u) for u, v in given.items() if v}


@router.post("/admin/sites/{site_id}/contracts", response_class=HTMLResponse)
def create_contract(request: Request, site_id: int,
                    fields: Annotated[ContractFields, Form()]) -> Response:
    who = form_actor(request, fields.csrf_token, MANAGE)
    with reading(request) as session:
        site_of(session, who[0], site_id)  # an unknown site is a 404 page, not a form error
    try:
        with changing(request, who[0], Action.CREATE, "contract") as (session, now, detail):
            contract = add_contract(
                session, site_id=site_id, modality=fields.modality, now=now,
                windows=[parse_window(line) for line in fields.windows.splitlines()
                         if line.strip()],
                team_names=[name for name in (fields.team_1, fields.team_2, fields.team_3)
                            if name.strip()],
                target_minutes=fields.target_minutes())
            detail.update(site_id=site_id, contract_id=contract.id, modality=contract.modality)
    except (InvalidInput, Conflict, NotFound) as exc:  # NotFound: a team renamed meanwhile
        return site_page(request, who, site_id, status_code=exc.http_status,
                         errors={"contract": failure(request, "admin_contract_failed", exc)},
                         form=fields.model_dump(exclude={"csrf_token"}))
    return redirect(f"/admin/sites/{site_id}", "admin_contract_added")


@router.get("/admin/contracts", response_class=HTMLResponse)
def contracts(request: Request) -> Response:
    who = page_actor(request, CONFIG)
    with reading(request) as session:
        rows = site_rows(session, visible_sites(session, who[0]))
        return page(request, "admin_contracts.html", "admin_contracts", who, rows=rows)


# --- Teams and radiologists ----------------------------------------------------------------


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


# --- The roster's week ---------------------------------------------------------------------

#: Largest roster file accepted from the upload form (as the JSON API's import).
MAX_ROSTER_BYTES = 5 * 1024 * 1024


def chosen_week(week: str, now: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.date:
    """The Monday of the week holding ``week`` (a date), else of today at the site."""
    try:
        return monday_of(dt.date.fromisoformat(week.strip()))
    except ValueError:
        return monday_of(now.astimezone(zone).date())


def roster_page(request: Request, who: Signed, *, site_id: str, week: str,
                **context: Any) -> HTMLResponse:
    now = runtime_of(request).clock.now()
    with reading(request) as session:
        sites = visible_sites(session, who[0])
        site = next((s for s in sites if str(s.id) == site_id.strip()), sites[0] if sites
                    else None)
        if site is None:
            return page(request, "admin_roster.html", "admin_roster", who, site=None,
                        sites=sites, **context)
        today = now.astimezone(zone_of(site)).date()
        week_shown = week_of(session, site=site, monday=chosen_week(week, now, zone_of(site)))
        return page(request, "admin_roster.html", "admin_roster", who, site=site, sites=sites,
                    week=week_shown, today=today, default_day=today if week_shown.monday
                    <= today < week_shown.next else week_shown.monday, **context)


class RosterQuery(BaseModel):
    """The week shown; ``day``/``start``/``end`` prefill the new shift (a gap's own link)."""

    site_id: str = ""
    week: str = ""
    day: str = ""
    start: str = ""
    end: str = ""
    notice: str = ""
    imported: str = ""


@router.get("/admin/roster", response_class=HTMLResponse)
def roster(request: Request, query: Annotated[RosterQuery, Query()]) -> Response:
    who = page_actor(request, MANAGE)
    t = TEXTS[language(request)]
    if query.notice == "admin_shifts_imported" and query.imported.isdigit():
        context = {"notice_text": t["admin_shifts_imported"].format(count=int(query.imported))}
    else:
        context = {"notice": query.notice}
    return roster_page(request, who, site_id=query.site_id, week=query.week,
                       form={"day": query.day, "start": query.start, "end": query.end},
                       **context)


def local_instant(day: str, time: str, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    try:
        return dt.datetime.combine(dt.date.fromisoformat(day.strip()),
                                   dt.time.fromisoformat(time.strip()), tzinfo=zone)
    except ValueError:
        raise InvalidInput("give the shift's day (YYYY-MM-DD) and times (HH:MM)") from None


def posted_site(request: Request, who: Signed, site_id: str) -> Site:
    with reading(request) as session:
        if not site_id.isdigit():
            raise NotFound("no such site")
        return site_of(session, who[0], int(site_id))


class ShiftFields(BaseModel):
    """A shift as the week's form gives it: a local day and times at the site."""

    csrf_token: str = ""
    site_id: str = ""
    week: str = ""
    radiologist_id: str = ""
    team_id: str = ""
    day: str = ""
    start: str = ""
    end: str = ""
    role: str = "primary"

    def span(self, zone: zoneinfo.ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
        opens, closes = (local_instant(self.day, self.start, zone),
                         local_instant(self.day, self.end, zone))
        if closes <= opens:  # 18:30-08:00: the night ends the next morning
            next_day = (opens.date() + dt.timedelta(days=1)).isoformat()
            closes = local_instant(next_day, self.end, zone)
        return opens, closes


@router.post("/admin/roster/shifts", response_class=HTMLResponse)
def create_shift(request: Request, fields: Annotated[ShiftFields, Form()]) -> Response:
    who = form_actor(request, fields.csrf_token, MANAGE)
    site = posted_site(request, who, fields.site_id)
    zone = zone_of(site)
    try:
        opens, closes = fields.span(zone)
        if not (fields.radiologist_id.isdigit() and fields.team_id.isdigit()):
            raise InvalidInput("choose a radiologist and a team")
        with changing(request, who[0], Action.CREATE, "shift") as (session, _now, detail):
            row = add_shift(session, radiologist_id=int(fields.radiologist_id),
                            team_id=int(fields.team_id), start=opens, end=closes,
                            backup=fields.role == "backup")
            detail.update(shift_id=row.id, radiologist_id=row.radiologist_id,
                          team_id=row.team_id, start=opens.isoformat(), end=closes.isoformat())
    except (InvalidInput, NotFound) as exc:
        return roster_page(request, who, site_id=fields.site_id, week=fields.week,
                           status_code=400,  # a radiologist or team not in the list: a form error
                           errors={"shift": failure(request, "admin_shift_failed", exc)},
                           form=fields.model_dump(exclude={"csrf_token"}))
    return redirect("/admin/roster", "admin_shift_added", site_id=site.id,
                    week=monday_of(opens.astimezone(zone).date()).isoformat())


@router.post("/admin/roster/shifts/{shift_id}/delete")
def delete_shift(request: Request, shift_id: int, csrf_token: Text = "", site_id: Text = "",
                 week: Text = "") -> Response:
    who = form_actor(request, csrf_token, MANAGE)
    with changing(request, who[0], Action.UPDATE, "shift_deleted") as (session, _now, detail):
        row = session.get(ShiftRow, shift_id)
        if row is not None:
            detail.update(shift_id=shift_id, radiologist_id=row.radiologist_id,
                          team_id=row.team_id, start=row.starts_at.isoformat())
        remove_shift(session, shift_id)
    return redirect("/admin/roster", "admin_shift_deleted", site_id=site_id, week=week)


@router.post("/admin/roster/import", response_class=HTMLResponse)
def import_roster(request: Request, csrf_token: Text = "",
                  file: Annotated[UploadFile | str | None, File()] = None,
                  site_id: Text = "", week: Text = "") -> Response:
    """A CSV or iCalendar roster, in the site's time zone: all its shifts or none."""
    who = form_actor(request, csrf_token, MANAGE)
    site = posted_site(request, who, site_id)
    try:
        if not isinstance(file, StarletteUpload):  # none, or a text field of that name
            raise InvalidInput("choose a CSV or iCalendar file")
        body = file.file.read(MAX_ROSTER_BYTES + 1)
        if len(body) > MAX_ROSTER_BYTES:
            raise InvalidInput("a roster file is at most 5 MiB")
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("the roster file is not UTF-8 text") from None
        with changing(request, who[0], Action.CREATE, "shifts_imported") as (
                session, now, detail):
            count = import_shifts(session, text=text, zone=zone_of(site), now=now)
            detail.update(count=count, file=(file.filename or "")[:100])
    except InvalidInput as exc:
        return roster_page(request, who, site_id=site_id, week=week,
                           status_code=exc.http_status,
                           errors={"import": failure(request, "admin_import_failed", exc)})
    return redirect("/admin/roster", "admin_shifts_imported", site_id=site.id, week=week,
                    imported=count)


# --- Users and roles -----------------------------------------------------------------------


def site_names(session: Session) -> dict[int, str]:
    return {s.id: s.name for s in session.scalars(select(Site))}


def users_page(request: Request, who: Signed, **context: Any) -> HTMLResponse:
    now = runtime_of(request).clock.now()
    with reading(request) as session:
        return page(request, "admin_users.html", "admin_users", who,
                    accounts=list_accounts(session, now=now), site_names=site_names(session),
                    sites=visible_sites(session, who[0]), roles=list(Role), **context)


@router.get("/admin/users", response_class=HTMLResponse)
def users(request: Request, notice: str = "") -> Response:
    return users_page(request, page_actor(request, USERS), notice=notice)


def role_of(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput("choose a role") from None


class AccountFields(BaseModel):
    csrf_token: str = ""
    username: str = ""
    display_name: str = ""
    role: str = ""
    password: str = ""
    site_ids: list[str] = []


@router.post("/admin/users", response_class=HTMLResponse)
def create_account_form(request: Request,
                        fields: Annotated[AccountFields, Form()]) -> Response:
    who = form_actor(request, fields.csrf_token, USERS)
    try:
        with changing(request, who[0], Action.CREATE, "account") as (session, now, detail):
            chosen = site_ids_of(session, fields.site_ids)
            user = create_account(session, username=fields.username,
                                  display_name=fields.display_name, role=role_of(fields.role),
                                  password=fields.password, site_ids=chosen, now=now)
            detail.update(user_id=user.id, username=user.username, role=user.role,
                          site_ids=chosen)
    except (InvalidInput, Conflict) as exc:
        return users_page(request, who, status_code=exc.http_status,
                          errors={"account": failure(request, "admin_user_failed", exc)},
                          form=fields.model_dump(exclude={"csrf_token", "password"}))
    return redirect(f"/admin/users/{user.id}", "admin_user_added")


def user_page(request: Request, who: Signed, user_id: int, **context: Any) -> HTMLResponse:
    now = runtime_of(request).clock.now()
    with reading(request) as session:
        account = get_account(session, user_id, now=now)
        linked = radiologist_of_account(session, user_id)
        form = context.pop("form", None) or {
            "role": account.role.value, "site_ids": [str(s) for s in account.site_ids]}
        return page(request, "admin_user.html", "admin_user", who, account=account,
                    linked=linked, site_names=site_names(session), roles=list(Role),
                    sites=visible_sites(session, who[0]), form=form,
                    is_self=user_id == who[0].id, **context)


@router.get("/admin/users/{user_id}", response_class=HTMLResponse)
def user_detail(request: Request, user_id: int, notice: str = "") -> Response:
    return user_page(request, page_actor(request, USERS), user_id, notice=notice)


@router.post("/admin/users/{user_id}", response_class=HTMLResponse)
def save_account(request: Request, user_id: int, csrf_token: Text = "", role: Text = "",
                 site_ids: Many = None) -> Response:
    who = form_actor(request, csrf_token, USERS)
    try:
        with changing(request, who[0], Action.UPDATE, "account") as (session, _now, detail):
            # A radiologist's sites follow their credentials (the roster keeps them).
            linked = radiologist_of_account(session, user_id) is not None
            chosen = None if linked else site_ids_of(session, site_ids)
            user = change_role_and_sites(session, user_id=user_id, role=role_of(role),
                                         site_ids=chosen, by_user_id=who[0].id)
            detail.update(user_id=user.id, role=user.role, site_ids=chosen)
    except (InvalidInput, Conflict) as exc:
        return user_page(request, who, user_id, status_code=exc.http_status,
                         errors={"account": failure(request, "admin_user_failed", exc)},
                         form={"role": role, "site_ids": site_ids or []})
    return redirect(f"/admin/users/{user_id}", "admin_user_saved")


def account_action(request: Request, user_id: int, presented: str, *, what: str,
                   notice: str, act: Callable[[Session, int, dt.datetime], object]) -> Response:
    """Deactivate, reactivate, reset the second factor: one button, one audited change."""
    who = form_actor(request, presented, USERS)
    try:
        with changing(request, who[0], Action.UPDATE, what) as (session, now, detail):
            act(session, who[0].id, now)
            detail.update(user_id=user_id)
    except (InvalidInput, Conflict) as exc:
        return user_page(request, who, user_id, status_code=exc.http_status,
                         errors={"state": failure(request, "admin_user_failed", exc)})
    return redirect(f"/admin/users/{user_id}", notice)


@router.post("/admin/users/{user_id}/deactivate", response_class=HTMLResponse)
def deactivate_account(request: Request, user_id: int, csrf_token: Text = "") -> Response:
    return account_action(request, user_id, csrf_token, what="account_deactivated",
                          notice="admin_user_deactivated", act=lambda session, by, now:
                          deactivate(session, user_id=user_id, by_user_id=by, now=now))


@router.post("/admin/users/{user_id}/reactivate", response_class=HTMLResponse)
def reactivate_account(request: Request, user_id: int, csrf_token: Text = "") -> Response:
    return account_action(request, user_id, csrf_token, what="account_reactivated",
                          notice="admin_user_reactivated", act=lambda session, _by, _now:
                          reactivate(session, user_id=user_id))


@router.post("/admin/users/{user_id}/reset-second-factor", response_class=HTMLResponse)
def reset_account_second_factor(request: Request, user_id: int,
                                csrf_token: Text = "") -> Response:
    return account_action(request, user_id, csrf_token, what="second_factor_reset",
                          notice="admin_second_factor_reset", act=lambda session, _by, now:
                          reset_second_factor(session, user_id=user_id, now=now))


# --- The audit trail -----------------------------------------------------------------------

#: The zone the trail's dates are typed and shown in (the platform's sites are French; a
#: per-user zone would be a setting of its own).
AUDIT_ZONE = zoneinfo.ZoneInfo("Europe/Paris")


def audit_query(session: Session, *, actor: str, identifier: str, action: str, since: str,
                until: str) -> AuditQuery:
    """The filters of the search form; dates are local days, ``until`` included."""
    if action and action not in set(Action):
        raise InvalidInput("unknown action")
    try:
        first = dt.date.fromisoformat(since) if since.strip() else None
        last = dt.date.fromisoformat(until) if until.strip() else None
    except ValueError:
        raise InvalidInput("dates are written YYYY-MM-DD") from None
    uids, exam_ids = (studies_and_exams(session, identifier) if identifier.strip()
                      else (None, frozenset()))
    return AuditQuery(
        actor=actor, action=action, study_instance_uids=uids, exam_ids=exam_ids,
        since=dt.datetime.combine(first, dt.time(0), tzinfo=AUDIT_ZONE) if first else None,
        until=(dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), tzinfo=AUDIT_ZONE)
               if last else None))


class AuditFilters(BaseModel):
    """The search form: part of an actor's name, a patient ID, accession number or
    StudyInstanceUID, an action, local days from and until (included)."""

    actor: str = ""
    identifier: str = ""
    action: str = ""
    since: str = ""
    until: str = ""
    page: str = "1"


@router.get("/admin/audit", response_class=HTMLResponse)
def audit_trail(request: Request, query: Annotated[AuditFilters, Query()]) -> Response:
    """Search the trail, newest first; the search itself goes into the trail."""
    who = page_actor(request, AUDIT)
    filters = query.model_dump(exclude={"page"})
    page_number = query.page
    errors: dict[str, dict[str, str]] = {}
    found: Results | None = None
    with reading(request) as session:
        status = chain_status(session)
        try:
            number = int(page_number) if page_number.isdigit() else 1
            found = search(session, audit_query(session, **filters), page=number)
        except InvalidInput as exc:
            errors["audit"] = failure(request, "admin_audit_failed", exc)
    runtime_of(request).audit(
        who_for(who[0], source_of(request)), Action.SEARCH,
        detail={"route": "admin/audit", "filters": {k: v for k, v in filters.items() if v},
                "page": found.page if found else 0, "total": found.total if found else 0})
    query_string = urlencode({k: v for k, v in filters.items() if v})
    return page(request, "admin_audit.html", "admin_audit", who, form=filters, chain=status,
                results=found, actions=list(Action), zone=AUDIT_ZONE, query=query_string,
                errors=errors, status_code=400 if errors else 200)
