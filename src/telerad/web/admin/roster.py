"""Administration: the roster's week at a site (gaps in its contracts' coverage, shifts
added and deleted), and a roster imported from a CSV or iCalendar file."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from starlette.datastructures import UploadFile as StarletteUpload

from telerad.audit.service import Action
from telerad.errors import InvalidInput, NotFound
from telerad.httpauth import runtime_of
from telerad.web.admin.common import (
    MANAGE,
    Signed,
    Text,
    changing,
    failure,
    page,
    reading,
    redirect,
    site_of,
    visible_sites,
    zone_of,
)
from telerad.web.i18n import TEXTS, language
from telerad.web.pages import form_actor, page_actor
from telerad.workflow.roster.calendar import week_of
from telerad.workflow.roster.models import ShiftRow
from telerad.workflow.roster.service import import_shifts
from telerad.workflow.roster.shifts import add_shift
from telerad.workflow.roster.shifts import delete_shift as remove_shift
from telerad.workflow.roster.week import monday_of
from telerad.workflow.sites.models import Site

router = APIRouter(include_in_schema=False)
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
