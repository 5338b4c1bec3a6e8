"""Routing explained (who may read this exam now, who may not and why), replayed against
another roster (what-if), and the coordinator's escalations."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from telerad.audit.service import Action, who_for
from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.errors import Forbidden, InvalidInput
from telerad.httpauth import current_actor, runtime_of, source_of
from telerad.web.exams_api import ExamOut, exam_out
from telerad.workflow.assignments.routing import RosterView, Router, roster_from_lines
from telerad.workflow.exams.models import Exam
from telerad.workflow.exams.queries import escalated_to_coordinator, get_exam

router = APIRouter(tags=["routing"])
CurrentActor = Annotated[Actor, Depends(current_actor)]


class StepOut(BaseModel):
    level: int
    label: str
    radiologists: list[str]


class VerdictOut(BaseModel):
    radiologist_id: int
    name: str
    eligible: bool
    reason: str


class RoutingOut(BaseModel):
    """Who the exam is offered to at ``at``, step by step, and every radiologist's verdict."""

    exam_id: int
    at: dt.datetime
    covered: bool
    escalation_level: int
    coordinator_called: bool
    steps: list[StepOut]
    verdicts: list[VerdictOut]


def _explain(request: Request, actor: Actor, exam_id: int, at: dt.datetime | None,
             roster: list[ShiftIn] | None) -> RoutingOut:
    runtime = runtime_of(request)
    instant = at or runtime.clock.now()
    if instant.tzinfo is None:
        raise InvalidInput("'at' needs its UTC offset")
    with transaction(runtime.sessions, readonly=True) as session:
        exam = get_exam(session, scope=actor.scope, exam_id=exam_id)
        view: RosterView | None = None
        if roster is not None:
            view = roster_from_lines(session, [(s.radiologist, s.team, s.start, s.end,
                                                s.role == "backup") for s in roster], instant)
        routing = Router(session, instant, roster=view)
        ladder, verdicts, covered = routing.explain(exam)
        names = {v.radiologist_id: v.name for v in verdicts}
        out = RoutingOut(
            exam_id=exam.id, at=instant, covered=covered,
            escalation_level=exam.escalation_level,
            coordinator_called=exam.coordinator_called_at is not None,
            steps=[StepOut(level=i, label=s.label,
                           radiologists=sorted(names.get(r, str(r)) for r in s.radiologist_ids))
                   for i, s in enumerate(ladder.steps)],
            verdicts=[VerdictOut(radiologist_id=v.radiologist_id, name=v.name,
                                 eligible=v.eligible, reason=v.reason) for v in verdicts])
        study = exam.study_instance_uid or ""
    runtime.audit(who_for(actor, source_of(request)), Action.READ, study_instance_uid=study,
                  detail={"route": "api/exams/{id}/routing", "exam_id": exam_id,
                          "what_if": roster is not None})
    return out


@router.get("/exams/{exam_id}/routing", response_model=RoutingOut)
def routing(request: Request, exam_id: int, actor: CurrentActor,
            at: dt.datetime | None = None) -> RoutingOut:
    """Explain the exam's routing now (or at ``at``, ISO 8601 with offset) with the roster
    on record."""
    actor.scope.require(Permission.EXAMS_READ)
    return _explain(request, actor, exam_id, at, None)


class ShiftIn(BaseModel):
    radiologist: str
    team: str
    start: dt.datetime
    end: dt.datetime
    role: Literal["primary", "backup"] = "primary"


class WhatIfIn(BaseModel):
    """Another roster to route the exam against, at ``at`` (default now)."""

    at: dt.datetime | None = None
    shifts: list[ShiftIn]


@router.post("/exams/{exam_id}/routing/what-if", response_model=RoutingOut)
def what_if(request: Request, exam_id: int, body: WhatIfIn, actor: CurrentActor
            ) -> RoutingOut:
    """Replay the exam's routing against the shifts given instead of the roster: nothing is
    changed."""
    actor.scope.require(Permission.EXAMS_COORDINATE)
    return _explain(request, actor, exam_id, body.at, body.shifts)


class OnDutyOut(BaseModel):
    """Who reads a site's exams of one modality at ``at``, in the cascade's order."""

    site_id: int
    modality: str
    at: dt.datetime
    covered: bool
    steps: list[StepOut]


@router.get("/roster/on-duty", response_model=OnDutyOut)
def on_duty(request: Request, actor: CurrentActor, *, site_id: int, modality: str,
            at: dt.datetime | None = None) -> OnDutyOut:
    """Who is on duty for this site and modality now (or at ``at``): the steps an exam
    would be offered in (for an exam needing no subspecialty)."""
    if Permission.ROSTER_MANAGE not in actor.scope.permissions:
        actor.scope.require(Permission.EXAMS_READ)
        if actor.scope.site_ids is not None and site_id not in actor.scope.site_ids:
            raise Forbidden("you may see the duty of your own sites only")
    runtime = runtime_of(request)
    instant = at or runtime.clock.now()
    if instant.tzinfo is None:
        raise InvalidInput("'at' needs its UTC offset")
    probe = Exam(site_id=site_id, modality=modality.strip().upper(), protocol_code=None,
                 escalation_level=0)  # never added to the session: a question, not an exam
    with transaction(runtime.sessions, readonly=True) as session:
        routing = Router(session, instant)
        ladder = routing.ladder(probe)
        names = {i: r.name for i, r in routing.on_duty().readers.items()}
        return OnDutyOut(
            site_id=site_id, modality=probe.modality, at=instant,
            covered=routing.covered(probe),
            steps=[StepOut(level=i, label=s.label,
                           radiologists=sorted(names[r] for r in s.radiologist_ids))
                   for i, s in enumerate(ladder.steps)])


@router.get("/escalations", response_model=list[ExamOut])
def escalations(request: Request, actor: CurrentActor) -> list[ExamOut]:
    """Ready exams whose escalation reached the coordinator."""
    actor.scope.require(Permission.EXAMS_COORDINATE)
    runtime = runtime_of(request)
    now = runtime.clock.now()
    with transaction(runtime.sessions, readonly=True) as session:
        found = [exam_out(e, now)
                 for e in escalated_to_coordinator(session, scope=actor.scope)]
    runtime.audit(who_for(actor, source_of(request)), Action.READ,
                  detail={"route": "api/escalations", "exam_ids": [e.id for e in found][:100]})
    return found
