"""The hospital portal's page of one exam: its clocks, decision, report, critical findings
and timeline, followed live; marking the acquisition done, cancelling, reconciling an
unmatched study (acknowledging a critical finding is in :mod:`telerad.web.portal.report`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.errors import Conflict, InvalidInput, NotFound
from telerad.httpauth import csrf_token, runtime_of
from telerad.web import exams_api
from telerad.web.i18n import TEXTS, language
from telerad.web.live import event_stream
from telerad.web.pages import render
from telerad.web.portal.common import (
    asked_before,
    audit_read,
    current_clock,
    decision,
    hospital_actor,
    hospital_form,
    hospital_sites,
    hospital_state,
    local,
    patient_label,
    protocol_names,
)
from telerad.web.portal.report import report_context
from telerad.web.portal.report import router as report_router
from telerad.workflow.assignments.routing import Router
from telerad.workflow.exams.models import Exam, ExamEvent, ExamState
from telerad.workflow.exams.queries import get_exam, list_exams
from telerad.workflow.exams.rules import clocks
from telerad.workflow.exams.timeline import timeline
from telerad.workflow.requests import checks
from telerad.workflow.requests.service import Contraindications

router = APIRouter(include_in_schema=False)
router.include_router(report_router)
Field = Annotated[str, Form()]
#: States in which the site may still withdraw the exam (nobody is reading it).
CANCELLABLE = (ExamState.FILED, ExamState.VALIDATED, ExamState.ACQUIRING, ExamState.READY)
READ_WHILE_ACQUIRING = (ExamState.READY, ExamState.IN_READING, ExamState.PRELIMINARY)
#: Notices and errors a redirect may name (only these keys: nothing from the URL is shown).
NOTICES = frozenset({"filed", "done", "cancelled", "attached", "rejected", "acknowledged"})
ERRORS = frozenset({"state", "reason", "reconcile", "acknowledged", "note"})

#: What each timeline entry shows beside its kind: values of its detail, never a key; the
#: codes among them in words. (Why images matched nothing is telerad's English: the state
#: and the reconciling form say it in the reader's language.)
EVENT_DETAIL = ("protocol", "exam_asked_before", "reason", "radiologist", "completion",
                "matched_by", "missing", "to", "to_exam_id", "called", "step")
CODED_DETAIL = ("completion", "matched_by", "step")


def _timeline(events: list[ExamEvent], zone: str, t: dict[str, str]) -> list[dict[str, str]]:
    rows = []
    for event in events:
        detail = {} if event.kind == "unmatched" else json.loads(event.detail)
        shown = [t.get(f"{key}_{detail[key]}", str(detail[key])) if key in CODED_DETAIL
                 else str(detail[key]) for key in EVENT_DETAIL
                 if detail.get(key) not in (None, "", [])]
        rows.append({"at": local(event.at, zone, "%d/%m %H:%M"),
                     "kind": t.get(f"event_{event.kind}", event.kind),
                     "detail": " · ".join(shown)})
    return rows


def _clocks(session: Session, exam: Exam, now: dt.datetime, zone: str) -> list[dict[str, Any]]:
    steps = clocks(filed_at=exam.filed_at, decided_at=exam.decided_at,
                   first_image_at=exam.first_image_at, ready_at=exam.ready_at,
                   claimed_at=exam.claimed_at, reported_at=exam.reported_at,
                   target=Router(session, now).target(exam), now=now)
    return [{"step": c.step, "at": local(c.at, zone, "%d/%m %H:%M"),
             "minutes": None if c.minutes is None else round(c.minutes),
             "due": local(c.due_at, zone), "late": c.late} for c in steps]


def _exam_context(request: Request, actor: Actor, exam_id: int) -> dict[str, Any]:
    """The exam as the hospital sees it, and what this actor may do with it (audited)."""
    runtime = runtime_of(request)
    now = runtime.clock.now()
    t = TEXTS[language(request)]
    permissions = actor.scope.permissions
    with transaction(runtime.sessions, readonly=True) as session:
        exam = get_exam(session, scope=actor.scope, exam_id=exam_id)
        site = hospital_sites(session, actor)[exam.site_id]
        protocols = protocol_names(session)
        key, detail = decision(exam, protocols, asked_before(session, [exam.id]).get(exam.id))
        reconciling = exam.state == ExamState.UNMATCHED and (
            Permission.EXAMS_ACQUIRE in permissions)
        c = json.loads(exam.contraindications)
        context = {
            "exam": exam, "site": site.name, "patient": patient_label(exam),
            "contraindications": c, "decision_key": key, "decision": detail,
            "decided_at": local(exam.decided_at, site.timezone, "%d/%m %H:%M"),
            "clock": current_clock(exam, now, site.timezone),
            "clocks": _clocks(session, exam, now, site.timezone),
            "timeline": _timeline(timeline(session, exam), site.timezone, t),
            "warnings": checks.warnings(modality=exam.modality, exam_asked=exam.exam_asked,
                                        contraindications=Contraindications(**c)) if c else [],
            # A stroke alert is read from its first image: its end of acquisition still counts.
            "can_mark_done": Permission.EXAMS_ACQUIRE in permissions and (
                exam.state == ExamState.ACQUIRING or (exam.completion == "stroke_alert" and
                                                     exam.state in READ_WHILE_ACQUIRING)),
            "can_cancel": Permission.REQUESTS_FILE in permissions and exam.state in CANCELLABLE,
            "reconciling": reconciling,
            "candidates": [{"id": e.id, "label": f"#{e.id} · {patient_label(e)} · "
                            f"{e.patient_id} · {e.modality} · {e.exam_asked} · "
                            f"{e.accession_number}"}
                           for e in list_exams(session, scope=actor.scope,
                                               states=[ExamState.VALIDATED],
                                               site_id=exam.site_id)] if reconciling else [],
            **report_context(session, exam, actor=actor, zone=site.timezone, now=now, t=t),
        }
    audit_read(request, actor, "portal/exams/{id}", [exam_id], exam.study_instance_uid or "")
    return context


@router.get("/portal/exams/{exam_id}", response_class=HTMLResponse)
def exam_page(request: Request, exam_id: int, notice: str = "", error: str = "") -> Response:
    signed = hospital_actor(request)
    actor, token = signed
    t = TEXTS[language(request)]
    context = _exam_context(request, actor, exam_id)
    return render(request, "portal_exam.html", "exam", actor=actor, csrf=csrf_token(token),
                  notice=t[f"portal_notice_{notice}"] if notice in NOTICES else "",
                  error=t[f"portal_error_{error}"] if error in ERRORS else "",
                  **context, title=t["portal_exam_title"].format(id=exam_id,
                                                                site=context["site"]))


@router.get("/portal/exams/{exam_id}/live", response_class=HTMLResponse)
def exam_live(request: Request, exam_id: int) -> Response:
    signed = hospital_actor(request, fragment=True)
    return render(request, "portal_exam_live.html", "exam", csrf=csrf_token(signed[1]),
                  **_exam_context(request, signed[0], exam_id))


def _exam_digest(session: Session, actor: Actor, exam_id: int) -> object:
    exam = get_exam(session, scope=actor.scope, exam_id=exam_id)
    return [exam.state, exam.version, exam.escalation_level, exam.reader_id,
            len(timeline(session, exam))]


@router.get("/portal/exams/{exam_id}/events")
async def exam_events(request: Request, exam_id: int) -> Response:
    signed = await run_in_threadpool(partial(hospital_actor, request, fragment=True))

    def visible() -> None:  # another site's exam: 404 as the page, before any stream
        with transaction(runtime_of(request).sessions, readonly=True) as session:
            get_exam(session, scope=signed[0].scope, exam_id=exam_id)

    await run_in_threadpool(visible)
    return event_stream(request, signed[1], "exam", hospital_state(
        request, lambda session, actor: _exam_digest(session, actor, exam_id)))


def _act(request: Request, exam_id: int, presented: str, *, notice: str, error: str,
         change: Callable[[Actor], exams_api.ExamOut]) -> Response:
    """Run one change of the API for a form, and go back to the exam's page: with a notice,
    or with what stopped it (the exam moved meanwhile, a reason missing)."""
    actor = hospital_form(request, presented)
    try:
        changed = change(actor)
    except Conflict:
        return RedirectResponse(f"/portal/exams/{exam_id}?error=state", status_code=303)
    except InvalidInput:
        return RedirectResponse(f"/portal/exams/{exam_id}?error={error}", status_code=303)
    return RedirectResponse(f"/portal/exams/{changed.id}?notice={notice}", status_code=303)


@router.post("/portal/exams/{exam_id}/done")
def mark_done(request: Request, exam_id: int, csrf_token: Field = "") -> Response:
    return _act(request, exam_id, csrf_token, notice="done", error="state",
                change=lambda actor: exams_api.mark_done(request, exam_id, actor))


@router.post("/portal/exams/{exam_id}/cancel")
def cancel(request: Request, exam_id: int, csrf_token: Field = "", reason: Field = ""
           ) -> Response:
    return _act(request, exam_id, csrf_token, notice="cancelled", error="reason",
                change=lambda actor: exams_api.cancel(request, exam_id,
                                               exams_api.ReasonIn(reason=reason), actor))


@router.post("/portal/exams/{exam_id}/reconcile")
def reconcile(request: Request, exam_id: int, csrf_token: Field = "", attach_to: Field = "",
              reject_reason: Field = "") -> Response:
    body = exams_api.ReconcileIn(attach_to=int(attach_to) if attach_to.isdigit() else None,
                                 reject_reason="" if attach_to else reject_reason)

    def change(actor: Actor) -> exams_api.ExamOut:
        try:
            return exams_api.reconcile(request, exam_id, body, actor)
        except NotFound:
            with transaction(runtime_of(request).sessions, readonly=True) as session:
                get_exam(session, scope=actor.scope, exam_id=exam_id)  # hidden: 404 as it is
            raise InvalidInput("the request to attach to is not one of the site's") from None

    return _act(request, exam_id, csrf_token, notice="attached" if attach_to else "rejected",
                error="reconcile", change=change)
