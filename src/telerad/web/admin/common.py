"""What every administration page shares: who may open which section, the page renderer
(sections menu, CSRF token, notices), the redirect after a change, a refused form's message,
one audited change per transaction, and the sites a person may see."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.audit.service import Action, record, who_for
from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.errors import Forbidden, InvalidInput, NotFound, TeleradError
from telerad.httpauth import csrf_token, runtime_of, source_of
from telerad.web.i18n import TEXTS, language
from telerad.web.pages import render
from telerad.workflow.sites.models import Site

Text = Annotated[str, Form()]
Many = Annotated[list[str] | None, Form()]

_P = Permission
MANAGE = frozenset({_P.ROSTER_MANAGE})
CONFIG = frozenset({_P.ROSTER_MANAGE, _P.SITES_READ})
USERS = frozenset({_P.USERS_MANAGE})
AUDIT = frozenset({_P.AUDIT_READ})
#: The reconciliation of deliveries (of one's own sites' exams), and sending a failed one again.
DELIVERIES = frozenset({_P.EXAMS_COORDINATE, _P.SITES_READ})
RETRY = frozenset({_P.ROSTER_MANAGE, _P.EXAMS_COORDINATE})
ANY = MANAGE | CONFIG | USERS | AUDIT | DELIVERIES
#: The sections: (path, text key, permissions of which any one opens it).
SECTIONS: tuple[tuple[str, str, frozenset[Permission]], ...] = (
    ("/admin/sites", "admin_sites", CONFIG),
    ("/admin/contracts", "admin_contracts", CONFIG),
    ("/admin/templates", "admin_templates", CONFIG),
    ("/admin/deliveries", "admin_deliveries", DELIVERIES),
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
                     "admin_second_factor_reset", "admin_endpoint_added",
                     "admin_reporting_saved", "admin_delivery_retried",
                     "admin_template_imported"})


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
