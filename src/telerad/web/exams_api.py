"""JSON API of the reading workflow: requests and their justification, exams, the
worklist, claim and release, routing explained and replayed.

Every route takes the actor's Scope: exams of other sites answer 404 (no existence leak),
and every read or change of patient data is in the audit trail.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from telerad.audit.service import Action, record, who_for
from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.errors import Forbidden, InvalidInput
from telerad.httpauth import current_actor, runtime_of, source_of
from telerad.workflow.assignments import service as assignments
from telerad.workflow.assignments.routing import Router
from telerad.workflow.exams import service as exams
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.exams.queries import get_exam, list_exams
from telerad.workflow.exams.rules import clocks
from telerad.workflow.exams.timeline import timeline
from telerad.workflow.requests import service as requests
from telerad.workflow.sites.models import Urgency

router = APIRouter(tags=["exams"])
CurrentActor = Annotated[Actor, Depends(current_actor)]


class ExamOut(BaseModel):
    """An exam: its patient, request, justification, clocks and reading."""

    id: int
    site_id: int
    state: ExamState
    urgency: Urgency | None
    modality: str
    patient_id: str
    patient_name: str
    patient_birth_date: str
    patient_sex: str
    ins: str
    requesting_physician: str
    clinical_context: str
    clinical_question: str
    exam_asked: str
    contraindications: dict[str, Any]
    protocol_code: str | None
    refusal_reason: str
    accession_number: str | None
    study_instance_uid: str | None
    completion: str
    reader_id: int | None
    escalation_level: int
    filed_at: dt.datetime | None
    decided_at: dt.datetime | None
    first_image_at: dt.datetime | None
    ready_at: dt.datetime | None
    claimed_at: dt.datetime | None
    reported_at: dt.datetime | None
    claim_due_at: dt.datetime | None
    due_at: dt.datetime | None
    coordinator_called_at: dt.datetime | None
    #: Seconds left before the turnaround target (negative: late); None before ready.
    seconds_left: float | None


class EventOut(BaseModel):
    at: dt.datetime
    kind: str
    actor: str
    detail: dict[str, Any]


class ClockOut(BaseModel):
    """One step of the exam, measured (minutes since the step before; late against the
    contract's deadline where there is one)."""

    step: str
    at: dt.datetime | None
    minutes: float | None
    due_at: dt.datetime | None
    late: bool | None


class ExamDetail(ExamOut):
    clocks: list[ClockOut]
    timeline: list[EventOut]


def exam_out(exam: Exam, now: dt.datetime) -> ExamOut:
    fields = {name: getattr(exam, name) for name in ExamOut.model_fields
              if name not in ("contraindications", "seconds_left")}
    return ExamOut(**fields, contraindications=json.loads(exam.contraindications),
                   seconds_left=None if exam.due_at is None or exam.state not in (
                       ExamState.READY, ExamState.IN_READING)
                   else (exam.due_at - now).total_seconds())


def _changed(session: Session, request: Request, actor: Actor, exam: Exam, *, what: str,
             now: dt.datetime, action: Action = Action.UPDATE) -> None:
    """The audit event of a change, in the change's own transaction."""
    record(session, who=who_for(actor, source_of(request)), action=action, now=now,
           study_instance_uid=exam.study_instance_uid or "",
           detail={"exam_id": exam.id, "what": what})


@contextmanager
def changing_exam(request: Request, actor: Actor, exam_id: int, *, permission: Permission,
                  what: str, lock: bool = False) -> Iterator[tuple[Session, Exam, dt.datetime]]:
    """One change of one exam the actor may see, in one transaction with its audit event.
    ``lock``: the exam's row is locked (FOR UPDATE on PostgreSQL) until the commit, so that
    two changes that read then write its dependents (a report's release) run one after the
    other."""
    actor.scope.require(permission)
    runtime = runtime_of(request)
    now = runtime.clock.now()
    with transaction(runtime.sessions) as session:
        exam = get_exam(session, scope=actor.scope, exam_id=exam_id, for_update=lock)
        yield session, exam, now
        _changed(session, request, actor, exam, what=what, now=now)


def _read(request: Request, actor: Actor, exam_ids: list[int], route: str) -> None:
    runtime_of(request).audit(who_for(actor, source_of(request)), Action.READ,
                              detail={"route": route, "exam_ids": exam_ids[:100]})


def _actor_label(actor: Actor) -> str:
    return f"{actor.kind}:{actor.id}"


class ContraindicationsIn(BaseModel):
    pregnancy: Literal["no", "possible", "yes", "unknown"] = "unknown"
    egfr: float | None = Field(default=None, description="mL/min/1.73 m²")
    contrast_allergy: bool = False


class RequestIn(BaseModel):
    """An imaging request as the hospital files it."""

    site_id: int
    patient_id: str
    patient_name: str = Field(description="DICOM PN: FAMILY^GIVEN")
    patient_birth_date: str = Field(default="", description="YYYYMMDD")
    patient_sex: Literal["", "M", "F", "O"] = ""
    ins: str = ""
    requesting_physician: str
    clinical_context: str = ""
    clinical_question: str
    urgency: Urgency
    modality: str
    exam_asked: str
    contraindications: ContraindicationsIn = ContraindicationsIn()


@router.post("/requests", response_model=ExamOut, status_code=201, tags=["requests"])
def file_request(request: Request, body: RequestIn, actor: CurrentActor) -> ExamOut:
    """File an imaging request for one of the caller's sites."""
    actor.scope.require(Permission.REQUESTS_FILE)
    if actor.scope.site_ids is not None and body.site_id not in actor.scope.site_ids:
        raise Forbidden("you may file requests only for your own sites")
    runtime = runtime_of(request)
    now = runtime.clock.now()
    form = requests.RequestForm(**{**body.model_dump(), "contraindications":
                                   requests.Contraindications(**body.contraindications
                                                              .model_dump())})
    with transaction(runtime.sessions) as session:
        exam = requests.file_request(session, form, filed_by=actor.id if actor.kind == "user"
                                     else None, actor=_actor_label(actor), now=now)
        _changed(session, request, actor, exam, what="filed", now=now, action=Action.CREATE)
        return exam_out(exam, now)


class DecisionIn(BaseModel):
    """A radiologist's justification."""

    decision: requests.Decision
    protocol_code: str | None = None
    exam_asked: str | None = Field(default=None, description="With 'change': the new exam")
    reason: str = ""


@router.post("/requests/{exam_id}/decision", response_model=ExamOut, tags=["requests"])
def decide(request: Request, exam_id: int, body: DecisionIn, actor: CurrentActor) -> ExamOut:
    """Accept with a protocol, change the exam, or refuse with a reason (radiologist on duty
    for the request's site and modality)."""
    with changing_exam(request, actor, exam_id, permission=Permission.REQUESTS_DECIDE,
                       what=f"decision:{body.decision}") as (session, exam, now):
        requests.decide(session, exam, decision=body.decision,
                        radiologist=assignments.radiologist_of(session, actor),
                        user_id=actor.id, now=now, protocol_code=body.protocol_code,
                        exam_asked=body.exam_asked, reason=body.reason)
        return exam_out(exam, now)


class ReasonIn(BaseModel):
    reason: str


@router.post("/exams/{exam_id}/cancel", response_model=ExamOut)
def cancel(request: Request, exam_id: int, body: ReasonIn, actor: CurrentActor) -> ExamOut:
    """Withdraw a request or exam not yet read (with a reason)."""
    with changing_exam(request, actor, exam_id, permission=Permission.REQUESTS_FILE,
                       what="cancelled") as (session, exam, now):
        requests.cancel(session, exam, reason=body.reason, actor=_actor_label(actor), now=now)
        return exam_out(exam, now)


@router.get("/exams", response_model=list[ExamOut])
def list_exams_route(
    request: Request, actor: CurrentActor, *,
    state: Annotated[list[ExamState] | None, Query()] = None,
    site_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ExamOut]:
    """Exams of the caller's sites, most urgent first."""
    actor.scope.require(Permission.EXAMS_READ)
    runtime = runtime_of(request)
    now = runtime.clock.now()
    with transaction(runtime.sessions, readonly=True) as session:
        found = [exam_out(e, now) for e in list_exams(session, scope=actor.scope, states=state,
                                                  site_id=site_id, limit=limit, offset=offset)]
    _read(request, actor, [e.id for e in found], "api/exams")
    return found


@router.get("/exams/{exam_id}", response_model=ExamDetail)
def get_exam_route(request: Request, exam_id: int, actor: CurrentActor) -> ExamDetail:
    """One exam with its timeline (decisions, arrivals, claims, escalations)."""
    actor.scope.require(Permission.EXAMS_READ)
    runtime = runtime_of(request)
    now = runtime.clock.now()
    with transaction(runtime.sessions, readonly=True) as session:
        exam = get_exam(session, scope=actor.scope, exam_id=exam_id)
        events = [EventOut(at=e.at, kind=e.kind, actor=e.actor, detail=json.loads(e.detail))
                  for e in timeline(session, exam)]
        steps = clocks(filed_at=exam.filed_at, decided_at=exam.decided_at,
                       first_image_at=exam.first_image_at, ready_at=exam.ready_at,
                       claimed_at=exam.claimed_at, reported_at=exam.reported_at,
                       target=Router(session, now).target(exam), now=now)
        detail = ExamDetail(**exam_out(exam, now).model_dump(), timeline=events,
                            clocks=[ClockOut(**vars(c)) for c in steps])
    _read(request, actor, [exam_id], "api/exams/{id}")
    return detail


@router.post("/exams/{exam_id}/done", response_model=ExamOut)
def mark_done(request: Request, exam_id: int, actor: CurrentActor) -> ExamOut:
    """The technologist marks the acquisition done: the exam is ready for reading."""
    with changing_exam(request, actor, exam_id, permission=Permission.EXAMS_ACQUIRE,
                       what="marked_done") as (session, exam, now):
        exams.mark_done(session, exam, actor=_actor_label(actor), now=now)
        return exam_out(exam, now)


class ReconcileIn(BaseModel):
    """Attach the unmatched study to a request waiting for images, or reject it."""

    attach_to: int | None = None
    reject_reason: str = ""


@router.post("/exams/{exam_id}/reconcile", response_model=ExamOut)
def reconcile(request: Request, exam_id: int, body: ReconcileIn, actor: CurrentActor
              ) -> ExamOut:
    """Reconcile an unmatched study: returns the exam the images now belong to."""
    if (body.attach_to is None) == (not body.reject_reason.strip()):
        raise InvalidInput("give either attach_to (an exam id) or reject_reason")
    with changing_exam(request, actor, exam_id, permission=Permission.EXAMS_ACQUIRE,
                       what="reconciled") as (session, unmatched, now):
        target = None if body.attach_to is None else get_exam(
            session, scope=actor.scope, exam_id=body.attach_to)
        exams.reconcile(session, unmatched, target=target, reason=body.reject_reason,
                        actor=_actor_label(actor), now=now)
        return exam_out(target or unmatched, now)


class WorklistItemOut(BaseModel):
    kind: Literal["reading", "ready", "justify"]
    exam: ExamOut


@router.get("/worklist", response_model=list[WorklistItemOut], tags=["reading"])
def worklist(request: Request, actor: CurrentActor, site_id: int | None = None,
             modality: str | None = None) -> list[WorklistItemOut]:
    """The caller's worklist: exams they read, exams offered to them, requests to justify;
    by urgency then deadline."""
    actor.scope.require(Permission.EXAMS_CLAIM)
    runtime = runtime_of(request)
    now = runtime.clock.now()
    with transaction(runtime.sessions, readonly=True) as session:
        radiologist = assignments.radiologist_of(session, actor)
        items = [WorklistItemOut(kind=i.kind, exam=exam_out(i.exam, now))  # type: ignore[arg-type]
                 for i in assignments.worklist(session, scope=actor.scope,
                                               radiologist_id=radiologist.id, now=now,
                                               site_id=site_id, modality=modality)]
    _read(request, actor, [i.exam.id for i in items], "api/worklist")
    return items


@router.post("/exams/{exam_id}/claim", response_model=ExamOut, tags=["reading"])
def claim(request: Request, exam_id: int, actor: CurrentActor) -> ExamOut:
    """Take a ready exam offered to you; 409 if another radiologist took it first."""
    with changing_exam(request, actor, exam_id, permission=Permission.EXAMS_CLAIM,
                       what="claimed") as (session, exam, now):
        assignments.claim(session, exam, now=now,
                           radiologist=assignments.radiologist_of(session, actor))
        return exam_out(exam, now)


@router.post("/exams/{exam_id}/release", response_model=ExamOut, tags=["reading"])
def release(request: Request, exam_id: int, actor: CurrentActor) -> ExamOut:
    """Give back an exam you claimed: it is offered again."""
    with changing_exam(request, actor, exam_id, permission=Permission.EXAMS_CLAIM,
                       what="released") as (session, exam, now):
        assignments.release(session, exam, now=now,
                           radiologist=assignments.radiologist_of(session, actor))
        return exam_out(exam, now)
