"""Reading assignments: opening an exam for reading with its deadlines, escalation as
durable jobs, the worklist, claim and release.

A claim is one conditional ``UPDATE ... WHERE state = 'ready' AND reader_id IS NULL``: of
two radiologists claiming at once exactly one changes the row; the other's update matches
nothing and gets :class:`AlreadyClaimed` (HTTP 409). Escalations are jobs due at the claim
deadline; each checks that the exam is still waiting at the level it was scheduled for, so
a claim, a release or a second run makes it a no-op.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from telerad import jobs
from telerad.audit import service as audit
from telerad.auth.service import Actor, Scope
from telerad.errors import Conflict, Forbidden
from telerad.workflow.assignments.routing import Router, roster_at
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.exams.queries import scoped_exams
from telerad.workflow.exams.rules import claim_window
from telerad.workflow.exams.timeline import move, record_event
from telerad.workflow.roster.models import Radiologist

ESCALATE = "assignments.escalate"
#: Ready exams considered for one worklist (the most urgent first).
WORKLIST_SCAN = 2000


class AlreadyClaimed(Conflict):
    """Another radiologist claimed the exam first (or it is no longer ready)."""

    code = "already_claimed"


def _schedule(session: Session, exam: Exam, *, due: dt.datetime, now: dt.datetime) -> None:
    exam.claim_due_at = due
    jobs.enqueue(session, kind=ESCALATE, now=now, run_at=due,
                 payload={"exam_id": exam.id, "level": exam.escalation_level})


def open_for_reading(session: Session, exam: Exam, *, now: dt.datetime, completion: str,
                     actor: str) -> None:
    """The exam is ready: set its deadlines (the contract's target from now) and offer it."""
    router = _router_for(session, exam, now)
    target = router.target(exam)
    move(session, exam, ExamState.READY, actor=actor, now=now, kind="ready",
         completion=completion, due_at=now + target)
    exam.ready_at, exam.completion = now, completion
    exam.due_at = now + target
    exam.escalation_level = 0
    ladder = router.ladder(exam)
    if router.covered(exam) and not ladder.steps:
        _call_coordinator(session, exam, level=ladder.coordinator_level, now=now,
                          reason="no radiologist on duty may read it")
        return
    _schedule(session, exam, due=now + claim_window(target), now=now)


def _router_for(session: Session, exam: Exam, now: dt.datetime) -> Router:
    """Routing of one exam: only the radiologists on duty credentialed for its site can be
    on its ladder."""
    return Router(session, now, roster=roster_at(session, now, site_id=exam.site_id))


def _call_coordinator(session: Session, exam: Exam, *, level: int, now: dt.datetime,
                      reason: str) -> None:
    exam.escalation_level = level
    exam.coordinator_called_at = now
    exam.version += 1
    record_event(session, exam, kind="escalated", actor="system", now=now, to="coordinator",
                 reason=reason)


def escalate(session: Session, *, exam_id: int, level: int, now: dt.datetime) -> bool:
    """The claim deadline of ``exam_id`` at ``level`` passed: offer it one step further.
    Returns whether it escalated."""
    exam = session.get(Exam, exam_id)
    if (exam is None or exam.state != ExamState.READY or exam.escalation_level != level
            or exam.coordinator_called_at is not None
            or exam.claim_due_at is None or exam.claim_due_at > now):
        return False
    router = _router_for(session, exam, now)
    if router.contract(exam.site_id, exam.modality) is not None and not router.covered(exam):
        opening = router.next_opening(exam)
        if opening is not None:  # nobody is due to read it before the coverage opens
            record_event(session, exam, kind="waiting_for_coverage", actor="system", now=now,
                         opens_at=opening)
            _schedule(session, exam, due=opening + claim_window(router.target(exam)),
                      now=now)
            return False
    waited = int((now - (exam.ready_at or now)).total_seconds() // 60)
    why = f"unclaimed {waited} min after it was ready"
    ladder = router.ladder(exam)
    if level + 1 >= ladder.coordinator_level:
        _call_coordinator(session, exam, level=ladder.coordinator_level, now=now,
                          reason=f"{why}; no other radiologist on duty may read it")
        return True
    exam.escalation_level = level + 1
    exam.version += 1
    step = ladder.steps[level + 1]
    names = sorted(r.name for i, r in router.on_duty().readers.items()
                   if i in step.radiologist_ids)
    record_event(session, exam, kind="escalated", actor="system", now=now, to=step.label,
                 radiologists=names, reason=f"{why}: offered to {step.label}")
    _schedule(session, exam, due=now + claim_window(router.target(exam)), now=now)
    return True


@jobs.handler(ESCALATE)
def _escalate_job(ctx: jobs.JobContext, payload: dict[str, object]) -> None:
    exam_id, level = payload["exam_id"], payload["level"]
    assert isinstance(exam_id, int)
    assert isinstance(level, int)
    if escalate(ctx.session, exam_id=exam_id, level=level, now=ctx.clock.now()):
        exam = ctx.session.get(Exam, exam_id)
        assert exam is not None
        system_changed(ctx.session, exam, what="escalated", now=ctx.clock.now())


def system_changed(session: Session, exam: Exam, *, what: str, now: dt.datetime) -> None:
    """The audit event of a change telerad made on its own (a job), in its transaction."""
    audit.record(session, who=audit.Who(kind="system", id="worker"), action=audit.Action.UPDATE,
                 now=now, study_instance_uid=exam.study_instance_uid or "",
                 detail={"exam_id": exam.id, "what": what})


def radiologist_of(session: Session, actor: Actor) -> Radiologist:
    """The radiologist of the roster a signed-in person is (a service account is none)."""
    radiologist = None if actor.kind != "user" else session.scalar(
        select(Radiologist).where(Radiologist.user_id == actor.id))
    if radiologist is None:
        raise Forbidden("only a radiologist of the roster, signed in as themselves, may do this")
    return radiologist


def claim(session: Session, exam: Exam, *, radiologist: Radiologist, now: dt.datetime) -> None:
    """Take the exam for reading: only if it is offered to ``radiologist`` now, and only one
    radiologist ever wins."""
    if exam.state != ExamState.READY:
        raise AlreadyClaimed(f"exam #{exam.id} is {exam.state}, not waiting for a reader")
    router = _router_for(session, exam, now)
    rungs = router.ladder(exam)
    step = rungs.level_of(radiologist.id)
    if not router.covered(exam) or step is None or step > exam.escalation_level:
        _rungs, verdicts, _covered = Router(session, now).explain(exam)  # to say why
        reason = next((v.reason for v in verdicts if v.radiologist_id == radiologist.id),
                      "not on duty now")
        raise Forbidden(f"exam #{exam.id} is not offered to you: {reason}")
    result = session.execute(
        update(Exam)
        .where(Exam.id == exam.id, Exam.state == ExamState.READY, Exam.reader_id.is_(None))
        .values(state=ExamState.IN_READING, reader_id=radiologist.id, claimed_at=now,
                version=Exam.version + 1)
        .execution_options(synchronize_session=False))
    assert isinstance(result, CursorResult)
    if result.rowcount != 1:
        raise AlreadyClaimed(f"exam #{exam.id} was claimed by another radiologist first")
    session.refresh(exam)
    record_event(session, exam, kind="claimed", actor=f"radiologist:{radiologist.id}",
                 now=now, state_from=ExamState.READY, state_to=ExamState.IN_READING,
                 radiologist=radiologist.name, reason=f"{rungs.steps[step].label} (step {step})")


def release(session: Session, exam: Exam, *, radiologist: Radiologist, now: dt.datetime) -> None:
    """Give the exam back: it is offered again at its escalation level, with a new claim
    deadline."""
    if exam.state != ExamState.IN_READING or exam.reader_id != radiologist.id:
        raise Conflict(f"exam #{exam.id} is not being read by you")
    move(session, exam, ExamState.READY, actor=f"radiologist:{radiologist.id}", now=now,
         kind="released", radiologist=radiologist.name)
    exam.reader_id, exam.claimed_at = None, None
    if exam.coordinator_called_at is None:
        _schedule(session, exam, due=now + claim_window(Router(session, now).target(exam)),
                  now=now)


def _justification_level(router: Router, exam: Exam) -> int:
    """A request is shown first to the first rung of the cascade, then — once it has waited
    a claim window — to everyone on duty for it (any of them may decide at any time)."""
    waited = router.instant - (exam.filed_at or exam.created_at)
    if waited < claim_window(router.target(exam)):
        return 0
    return len(router.ladder(exam).steps)


@dataclass(frozen=True, kw_only=True)
class WorklistItem:
    """An exam on a radiologist's worklist and why it is there."""

    exam: Exam
    #: "reading" (claimed by them), "ready" (offered), "justify" (a request to validate).
    kind: str


def worklist(
    session: Session, *, scope: Scope, radiologist_id: int, now: dt.datetime,
    site_id: int | None = None, modality: str | None = None,
) -> list[WorklistItem]:
    """What the radiologist works on now: their exams in reading, the ready exams offered to
    them, the requests waiting for their justification; by urgency, then deadline."""
    router = Router(session, now)
    base = scoped_exams(scope)
    if site_id is not None:
        base = base.where(Exam.site_id == site_id)
    if modality is not None:
        base = base.where(Exam.modality == modality.upper())
    items = [WorklistItem(exam=e, kind="reading") for e in session.scalars(
        base.where(Exam.state == ExamState.IN_READING, Exam.reader_id == radiologist_id)
        .order_by(Exam.urgency_rank, Exam.due_at, Exam.id))]
    reading = len(items)
    waiting = list(session.scalars(
        base.where(Exam.state.in_([ExamState.READY, ExamState.FILED]))
        .order_by(Exam.urgency_rank, Exam.due_at, Exam.filed_at, Exam.id).limit(WORKLIST_SCAN)))
    router.load_contracts({(e.site_id, e.modality) for e in waiting})
    for exam in waiting:
        if exam.state == ExamState.READY:
            if radiologist_id in router.offered(exam):
                items.append(WorklistItem(exam=exam, kind="ready"))
        elif radiologist_id in router.offered(exam, level=_justification_level(router, exam)):
            items.append(WorklistItem(exam=exam, kind="justify"))
    # SQL gave each state's order; merged here by urgency, then the instant that counts.
    return items[:reading] + sorted(items[reading:], key=lambda i: (
        i.exam.urgency_rank, i.exam.due_at or i.exam.filed_at or i.exam.created_at, i.exam.id))
