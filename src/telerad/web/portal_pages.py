"""The hospital portal (requesting physician, technologist): file a request, follow the
site's exams live, mark an acquisition done, cancel, reconcile unmatched studies.

The pages change nothing themselves: filing, marking done, cancelling and reconciling call
the JSON API's own functions (scope, transaction, audit event), so a page and the API are
one path. Reads are audited here. Live updates mirror the worklist: server-sent events
carry only a digest, then the page fetches the new HTML. A page answers an error as a page
(403, 404), never as JSON or a trace; another site's exam is 404, as in the API.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Annotated, Any, ParamSpec
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from telerad.audit.service import Action, who_for
from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
)
from telerad.httpauth import csrf_token, runtime_of, source_of
from telerad.web import exams_api
from telerad.web.i18n import TEXTS, language
from telerad.web.live import event_stream
from telerad.web.pages import form_actor, page_actor, render, signed_in
from telerad.workflow.assignments.routing import Router
from telerad.workflow.exams.models import Exam, ExamEvent, ExamState
from telerad.workflow.exams.queries import get_exam, list_exams
from telerad.workflow.exams.rules import clocks
from telerad.workflow.exams.timeline import timeline
from telerad.workflow.requests import checks
from telerad.workflow.requests.models import Protocol
from telerad.workflow.requests.service import Contraindications, RequestForm
from telerad.workflow.sites.models import Site, Urgency

router = APIRouter(include_in_schema=False)
P = ParamSpec("P")
Field = Annotated[str, Form()]
#: The list's filter: which states each choice shows (unmatched studies have their section).
GROUPS: dict[str, tuple[ExamState, ...]] = {
    "all": tuple(s for s in ExamState if s != ExamState.UNMATCHED),
    "todo": (ExamState.FILED, ExamState.VALIDATED),
    "in_progress": (ExamState.ACQUIRING, ExamState.READY, ExamState.IN_READING,
                    ExamState.PRELIMINARY),
    "done": (ExamState.FINAL, ExamState.DELIVERED, ExamState.REFUSED, ExamState.CANCELLED),
}
#: Hospital staff: they file requests or acquire them.
HOSPITAL = frozenset({Permission.REQUESTS_FILE, Permission.EXAMS_ACQUIRE})
#: States in which the site may still withdraw the exam (nobody is reading it).
CANCELLABLE = (ExamState.FILED, ExamState.VALIDATED, ExamState.ACQUIRING, ExamState.READY)
READ_WHILE_ACQUIRING = (ExamState.READY, ExamState.IN_READING, ExamState.PRELIMINARY)
#: Notices and errors a redirect may name (only these keys: nothing from the URL is shown).
NOTICES = frozenset({"filed", "done", "cancelled", "attached", "rejected"})
ERRORS = frozenset({"state", "reason", "reconcile"})
MODALITIES = ("CT", "MR", "CR", "US", "XA", "NM", "PT", "MG")
#: The request form's fields, in the order a problem is listed.
FIELDS = ("site_id", "patient_family_name", "patient_id", "patient_birth_date", "patient_sex",
          "ins", "requesting_physician", "clinical_context", "clinical_question", "urgency",
          "modality", "exam_asked", "pregnancy", "egfr")


def require_hospital(actor: Actor) -> None:
    """Forbidden unless the actor is of a hospital's staff and may see its exams."""
    actor.scope.require(Permission.EXAMS_READ)
    if not HOSPITAL & actor.scope.permissions:
        raise Forbidden("the portal is for the hospital's staff")


def hospital_actor(request: Request, *, fragment: bool = False) -> tuple[Actor, str]:
    """The signed-in hospital staff member and their session."""
    signed = page_actor(request, HOSPITAL, fragment=fragment)
    require_hospital(signed[0])
    return signed


def hospital_form(request: Request, presented: str) -> Actor:
    """The hospital staff member posting a form with their CSRF token."""
    actor = form_actor(request, presented, HOSPITAL)[0]
    require_hospital(actor)
    return actor


def _audit_read(request: Request, actor: Actor, route: str, exam_ids: list[int],
                study_instance_uid: str = "") -> None:
    runtime_of(request).audit(who_for(actor, source_of(request)), Action.READ,
                              study_instance_uid=study_instance_uid,
                              detail={"route": route, "exam_ids": exam_ids[:100]})


def _sites(session: Session, actor: Actor) -> dict[int, Site]:
    return {s.id: s for s in session.scalars(select(Site).order_by(Site.name))
            if actor.scope.site_ids is None or s.id in actor.scope.site_ids}


def local(at: dt.datetime | None, zone: str, fmt: str = "%H:%M") -> str:
    """An instant in the site's own time (the pages never show UTC)."""
    return "" if at is None else at.astimezone(ZoneInfo(zone)).strftime(fmt)


def patient_label(exam: Exam) -> str:
    """DICOM PN (FAMILY^GIVEN) as people write it."""
    return " ".join(part for part in exam.patient_name.split("^") if part) or "—"


@dataclass(frozen=True, kw_only=True)
class Clock:
    """The current step's clock: ``due`` (minutes left, negative when late) or ``since``."""

    kind: str
    minutes: int
    at: str


def current_clock(exam: Exam, now: dt.datetime, zone: str) -> Clock | None:
    """Waiting for what, and for how long; once ready, the report's deadline."""
    if exam.state in (ExamState.READY, ExamState.IN_READING, ExamState.PRELIMINARY) and (
            exam.due_at is not None):
        return Clock(kind="due", minutes=int((exam.due_at - now).total_seconds() // 60),
                     at=local(exam.due_at, zone))
    since = {ExamState.FILED: exam.filed_at, ExamState.VALIDATED: exam.decided_at,
             ExamState.ACQUIRING: exam.first_image_at,
             ExamState.UNMATCHED: exam.first_image_at}.get(ExamState(exam.state))
    if since is None:
        return None
    return Clock(kind="since", minutes=int((now - since).total_seconds() // 60),
                 at=local(since, zone))


def decision(exam: Exam, protocols: dict[str, str], changed_from: str | None
             ) -> tuple[str, str]:
    """The radiologist's decision as (text key, detail): protocol, changed exam, refusal."""
    if exam.state == ExamState.REFUSED:
        return "portal_decision_refused", exam.refusal_reason
    if exam.protocol_code is None:
        return ("portal_decision_waiting", "") if exam.state == ExamState.FILED else ("", "")
    protocol = f"{exam.protocol_code} — {protocols.get(exam.protocol_code, '')}"
    if changed_from is not None:
        return "portal_decision_changed", f"{exam.exam_asked} ({changed_from}) · {protocol}"
    return "portal_decision_protocol", protocol


def _protocol_names(session: Session) -> dict[str, str]:
    return {code: name for code, name in session.execute(select(Protocol.code, Protocol.name))}


def _changed_from(session: Session, exam_ids: list[int]) -> dict[int, str]:
    """The exam first asked for, of the exams a radiologist changed (from their timeline)."""
    if not exam_ids:
        return {}
    events = session.execute(select(ExamEvent.exam_id, ExamEvent.detail).where(
        ExamEvent.exam_id.in_(exam_ids), ExamEvent.kind == "change"))
    return {exam_id: str(json.loads(detail).get("exam_asked_before", ""))
            for exam_id, detail in events}


def _line(exam: Exam, *, site: Site, now: dt.datetime, protocols: dict[str, str],
          changed: dict[int, str]) -> dict[str, Any]:
    key, detail = decision(exam, protocols, changed.get(exam.id))
    return {"id": exam.id, "urgency": exam.urgency, "state": exam.state,
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
        sites = _sites(session, actor)
        found = list_exams(session, scope=actor.scope, states=list(GROUPS[group]))
        unmatched = (list_exams(session, scope=actor.scope, states=[ExamState.UNMATCHED])
                     if Permission.EXAMS_ACQUIRE in actor.scope.permissions else [])
        protocols = _protocol_names(session)
        changed = _changed_from(session, [e.id for e in found])
        lines = [_line(e, site=sites[e.site_id], now=now, protocols=protocols,
                       changed=changed) for e in found + unmatched]
    _audit_read(request, actor, "portal", [line["id"] for line in lines])
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


def _list_digest(session: Session, actor: Actor, group: str) -> object:
    states = [*GROUPS[group], ExamState.UNMATCHED]
    return [(e.id, e.state, e.version) for e in list_exams(session, scope=actor.scope,
                                                           states=states)]


def _hospital_state(request: Request, state: Callable[[Session, Actor], object]
                    ) -> Callable[[Actor], object]:
    """What a live portal page shows, read for a hospital staff member."""
    def read(actor: Actor) -> object:
        require_hospital(actor)
        with transaction(runtime_of(request).sessions, readonly=True) as session:
            return state(session, actor)
    return read


@router.get("/portal/events")
async def portal_events(request: Request, state: str = "all") -> Response:
    signed = await run_in_threadpool(partial(hospital_actor, request, fragment=True))
    group = _group(state)
    return event_stream(request, signed[1], "exams", _hospital_state(
        request, lambda session, actor: _list_digest(session, actor, group)))


# The request form ----------------------------------------------------------------------


class RequestFields(BaseModel):
    """The request form as posted: every field a text, checked field by field below."""

    csrf_token: str = ""
    site_id: str = ""
    patient_id: str = ""
    patient_family_name: str = ""
    patient_given_name: str = ""
    patient_birth_date: str = ""  # YYYY-MM-DD, from <input type="date">
    patient_sex: str = ""
    ins: str = ""
    requesting_physician: str = ""
    clinical_context: str = ""
    clinical_question: str = ""
    urgency: str = ""
    modality: str = "CT"
    exam_asked: str = ""
    pregnancy: str = "unknown"
    egfr: str = ""
    contrast_allergy: str = ""


def _parsed(fields: RequestFields, actor: Actor, sites: dict[int, Site]
            ) -> tuple[RequestForm, dict[str, str]]:
    """The form as a request, and the problems of the fields (codes by field)."""
    found: dict[str, str] = {}
    site_id = int(fields.site_id) if fields.site_id.isdigit() else 0
    if site_id not in sites:
        found["site_id"] = "choice"
    urgency = fields.urgency if fields.urgency in set(Urgency) else ""
    if not urgency:
        found["urgency"] = "choice"
    egfr: float | None = None
    if fields.egfr.strip():
        try:
            egfr = float(fields.egfr.strip().replace(",", "."))
        except ValueError:
            found["egfr"] = "number"
    given = fields.patient_given_name.strip()
    if not fields.patient_family_name.strip():  # a given name alone names nobody
        found["patient_name"] = "required"
    form = RequestForm(
        site_id=site_id, patient_id=fields.patient_id,
        patient_name=fields.patient_family_name.strip() + (f"^{given}" if given else ""),
        patient_birth_date=fields.patient_birth_date.replace("-", ""),
        patient_sex=fields.patient_sex, ins=fields.ins.replace(" ", ""),
        requesting_physician=fields.requesting_physician,
        clinical_context=fields.clinical_context, clinical_question=fields.clinical_question,
        urgency=Urgency(urgency or Urgency.SCHEDULED), modality=fields.modality,
        exam_asked=fields.exam_asked,
        contraindications=Contraindications(pregnancy=fields.pregnancy, egfr=egfr,
                                            contrast_allergy=fields.contrast_allergy == "yes"))
    return form, checks.problems(form) | found


def _request_page(request: Request, actor: Actor, fields: RequestFields, *,
                  problems: dict[str, str] | None = None, status_code: int = 200) -> Response:
    t = TEXTS[language(request)]
    with transaction(runtime_of(request).sessions, readonly=True) as session:
        sites = _sites(session, actor)
        protocols = [(p.modality, p.name) for p in session.scalars(
            select(Protocol).order_by(Protocol.modality, Protocol.name))]
    token = signed_in(request)
    # The name's problems show beside its first part, the family name.
    shown = {("patient_family_name" if field == "patient_name" else field):
             t.get(f"problem_{field}_{code}", t["portal_problem"])
             for field, code in (problems or {}).items()}
    form, _ = _parsed(fields, actor, sites)
    return render(request, "portal_request.html", "portal_new_request", actor=actor,
                  status_code=status_code, fields=fields, sites=list(sites.values()),
                  problems=shown, order=[f for f in FIELDS if f in shown],
                  protocols=protocols, modalities=MODALITIES, urgencies=list(Urgency),
                  csrf=csrf_token(token[1]) if token else "",
                  warnings=checks.warnings(modality=form.modality, exam_asked=form.exam_asked,
                                           contraindications=form.contraindications)
                  if problems else [])


@router.get("/portal/requests/new", response_class=HTMLResponse)
def new_request(request: Request) -> Response:
    signed = hospital_actor(request)
    signed[0].scope.require(Permission.REQUESTS_FILE)
    return _request_page(request, signed[0], RequestFields())


@router.post("/portal/requests", response_class=HTMLResponse)
def file_request(request: Request, fields: Annotated[RequestFields, Form()]) -> Response:
    actor = hospital_form(request, fields.csrf_token)
    actor.scope.require(Permission.REQUESTS_FILE)
    with transaction(runtime_of(request).sessions, readonly=True) as session:
        sites = _sites(session, actor)
    if fields.site_id.isdigit() and int(fields.site_id) not in sites:
        # Never offered by the form: a forged post, refused as the API refuses it.
        raise Forbidden("you may file requests only for your own sites")
    form, problems = _parsed(fields, actor, sites)
    if problems:  # nothing is written: the form comes back, filled, with its problems
        return _request_page(request, actor, fields, problems=problems, status_code=400)
    exam = exams_api.file_request(request, exams_api.RequestIn.model_validate(asdict(form)),
                                  actor)
    return RedirectResponse(f"/portal/exams/{exam.id}?notice=filed", status_code=303)


# One exam --------------------------------------------------------------------------------

#: What each timeline entry shows beside its kind: values of its detail, never a key; the
#: codes among them in words. (Why images matched nothing is telerad's English: the state
#: and the reconciling form say it in the reader's language.)
EVENT_DETAIL = ("protocol", "exam_asked_before", "reason", "radiologist", "completion",
                "matched_by", "missing", "to", "to_exam_id")
CODED_DETAIL = ("completion", "matched_by")


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
        site = _sites(session, actor)[exam.site_id]
        protocols = _protocol_names(session)
        key, detail = decision(exam, protocols, _changed_from(session, [exam.id]).get(exam.id))
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
        }
    _audit_read(request, actor, "portal/exams/{id}", [exam_id], exam.study_instance_uid or "")
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
    return event_stream(request, signed[1], "exam", _hospital_state(
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
