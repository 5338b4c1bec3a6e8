"""The hospital portal's list: the site's exams of one filter group, followed live, and
its unmatched studies for the staff who reconcile them."""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.httpauth import runtime_of
from telerad.reporting import critical
from telerad.web.live import event_stream
from telerad.web.pages import render
from telerad.web.portal.common import (
    asked_before,
    audit_read,
    current_clock,
    decision,
    hospital_actor,
    hospital_sites,
    hospital_state,
    patient_label,
    protocol_names,
)
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.exams.queries import list_exams
from telerad.workflow.sites.models import Site

router = APIRouter(include_in_schema=False)
#: The list's filter: which states each choice shows (unmatched studies have their section).
GROUPS: dict[str, tuple[ExamState, ...]] = {
    "all": tuple(s for s in ExamState if s != ExamState.UNMATCHED),
    "todo": (ExamState.FILED, ExamState.VALIDATED),
    "in_progress": (ExamState.ACQUIRING, ExamState.READY, ExamState.IN_READING,
                    ExamState.PRELIMINARY),
    "done": (ExamState.FINAL, ExamState.DELIVERED, ExamState.REFUSED, ExamState.CANCELLED),
}


def _line(exam: Exam, *, site: Site, now: dt.datetime, protocols: dict[str, str],
          changed: dict[int, str], critical: set[int]) -> dict[str, Any]:
    key, detail = decision(exam, protocols, changed.get(exam.id))
    return {"id": exam.id, "critical": exam.id in critical, "urgency": exam.urgency,
            "state": exam.state,
            "patient": patient_label(exam), "patient_id": exam.patient_id,
            "birth_date": exam.patient_birth_date, "modality": exam.modality,
            "exam_asked": exam.exam_asked, "site": site.name,
            "clock": current_clock(exam, now, site.timezone),
            "decision_key": key, "decision": detail}


def _lines(request: Request, actor: Actor, group: str) -> dict[str, Any]:
    """The site's exams of one filter group, and its unmatched studies for the staff who
    reconcile them (a query of the present, audited as a read)."""
    runtime = runtime_of(request)
    now = runtime.clock.now()
    with transaction(runtime.sessions, readonly=True) as session:
        sites = hospital_sites(session, actor)
        found = list_exams(session, scope=actor.scope, states=list(GROUPS[group]))
        unmatched = (list_exams(session, scope=actor.scope, states=[ExamState.UNMATCHED])
                     if Permission.EXAMS_ACQUIRE in actor.scope.permissions else [])
        protocols = protocol_names(session)
        changed = asked_before(session, [e.id for e in found])
        waiting = _unacknowledged(session, actor)
        lines = [_line(e, site=sites[e.site_id], now=now, protocols=protocols,
                       changed=changed, critical=waiting) for e in found + unmatched]
    audit_read(request, actor, "portal", [line["id"] for line in lines])
    return {"lines": lines[:len(found)], "unmatched": lines[len(found):]}


def _group(state: str) -> str:
    return state if state in GROUPS else "all"


@router.get("/portal", response_class=HTMLResponse)
def portal_page(request: Request, state: str = "all") -> Response:
    signed = hospital_actor(request)
    actor = signed[0]
    group = _group(state)
    return render(request, "portal.html", "portal", actor=actor, group=group, groups=GROUPS,
                  can_file=Permission.REQUESTS_FILE in actor.scope.permissions,
                  **_lines(request, actor, group))


@router.get("/portal/items", response_class=HTMLResponse)
def portal_items(request: Request, state: str = "all") -> Response:
    signed = hospital_actor(request, fragment=True)
    return render(request, "portal_items.html", "portal", **_lines(request, signed[0],
                                                                    _group(state)))


def _unacknowledged(session: Session, actor: Actor) -> set[int]:
    """The exams with a critical finding the hospital has not acknowledged yet."""
    return {exam.id for _finding, exam in critical.open_findings(
        session, site_ids=actor.scope.site_ids)}


def _list_digest(session: Session, actor: Actor, group: str) -> object:
    states = [*GROUPS[group], ExamState.UNMATCHED]
    # A critical finding changes no exam's version: its badge is part of the digest.
    return ([(e.id, e.state, e.version) for e in list_exams(session, scope=actor.scope,
                                                            states=states)],
            sorted(_unacknowledged(session, actor)))


@router.get("/portal/events")
async def portal_events(request: Request, state: str = "all") -> Response:
    signed = await run_in_threadpool(partial(hospital_actor, request, fragment=True))
    group = _group(state)
    return event_stream(request, signed[1], "exams", hospital_state(
        request, lambda session, actor: _list_digest(session, actor, group)))
