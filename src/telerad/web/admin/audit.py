"""Administration: the audit trail, searched by actor, patient or study, action and days
(the chain's state shown; each search is itself audited)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from telerad.audit.search import AuditQuery, Results, chain_status, search
from telerad.audit.service import Action, who_for
from telerad.errors import InvalidInput
from telerad.httpauth import runtime_of, source_of
from telerad.web.admin.common import AUDIT, failure, page, reading
from telerad.web.pages import page_actor
from telerad.workflow.exams.lookup import studies_and_exams

router = APIRouter(include_in_schema=False)
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
