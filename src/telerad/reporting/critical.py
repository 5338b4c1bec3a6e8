"""Critical findings (ACR category 1: the hospital hears of them within minutes, by voice).

Marking a finding critical requires the record of the call that announced it: who called
whom, at what number, when, what was said, and that the person read it back (the
read-back is what makes a phoned result safe; Joint Commission NPSG.02.03.01). The
hospital then acknowledges it in telerad. Without an acknowledgement in the site's time,
a durable job escalates: first a second call to the person called, then the site's on-call
manager. Everything is on the exam's timeline.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad import jobs
from telerad.errors import Conflict, InvalidInput
from telerad.reporting.models import CriticalCall, CriticalFinding
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.exams.timeline import record_event
from telerad.workflow.sites.models import Site

CHECK_ACKNOWLEDGEMENT = "critical.check_acknowledgement"
#: The escalation's steps, after the first call was not acknowledged in time.
SECOND_CALL = 1
ON_CALL_MANAGER = 2
#: A call is recorded within this long after it was made (and never in the future).
LATEST_RECORDING = dt.timedelta(hours=6)
#: States in which an exam has images read: a finding can be critical.
READ_STATES = frozenset({ExamState.IN_READING, ExamState.PRELIMINARY, ExamState.FINAL,
                         ExamState.DELIVERED})


@dataclass(frozen=True, kw_only=True)
class Call:
    """A phone call as the radiologist records it."""

    called_person: str
    phone: str
    called_at: dt.datetime
    said: str
    read_back: bool


def _check(call: Call, *, now: dt.datetime) -> Call:
    missing = [name for name, value in (("called_person", call.called_person),
                                        ("phone", call.phone), ("said", call.said))
               if not value.strip()]
    if missing:
        raise InvalidInput("the call's record lacks " + ", ".join(missing))
    if not call.read_back:
        raise InvalidInput("the finding must be read back by the person called before the "
                           "call is recorded")
    if call.called_at > now + dt.timedelta(minutes=1):
        raise InvalidInput("the call cannot be in the future")
    if call.called_at < now - LATEST_RECORDING:
        raise InvalidInput("a call is recorded within 6 hours of it")
    if len(call.phone) > 40 or len(call.called_person) > 200 or len(call.said) > 5000:
        raise InvalidInput("the call's record is too long")
    return call


def _add_call(session: Session, finding: CriticalFinding, call: Call, *, caller_id: int,
              now: dt.datetime) -> CriticalCall:
    row = CriticalCall(finding_id=finding.id, caller_id=caller_id,
                       called_person=call.called_person.strip(), phone=call.phone.strip(),
                       called_at=call.called_at, said=call.said.strip(),
                       read_back=call.read_back, recorded_at=now)
    session.add(row)
    return row


def declare(session: Session, exam: Exam, *, finding: str, call: Call, caller_id: int,
            now: dt.datetime) -> CriticalFinding:
    """Record a critical finding with the call that announced it; the acknowledgement is
    due within the site's time, after which it escalates."""
    if exam.state not in READ_STATES:
        raise Conflict(f"exam #{exam.id} is {exam.state}: its images are not being read")
    if not finding.strip():
        raise InvalidInput("name the critical finding")
    _check(call, now=now)
    site = session.get(Site, exam.site_id)
    minutes = site.critical_ack_minutes if site is not None else 15
    row = CriticalFinding(exam_id=exam.id, finding=finding.strip()[:5000], created_by=caller_id,
                          created_at=now, ack_due_at=now + dt.timedelta(minutes=minutes),
                          escalation_level=0)
    session.add(row)
    session.flush()
    _add_call(session, row, call, caller_id=caller_id, now=now)
    record_event(session, exam, kind="critical_finding", actor=f"user:{caller_id}", now=now,
                 finding_id=row.id, called=call.called_person, phone=call.phone,
                 called_at=call.called_at.isoformat(), read_back=call.read_back,
                 ack_due_at=row.ack_due_at.isoformat())
    jobs.enqueue(session, kind=CHECK_ACKNOWLEDGEMENT, payload={"finding_id": row.id},
                 now=now, run_at=row.ack_due_at)
    return row


def record_call(session: Session, exam: Exam, finding: CriticalFinding, *, call: Call,
                caller_id: int, now: dt.datetime) -> CriticalCall:
    """Another call about the finding (the second call, the on-call manager's)."""
    _check(call, now=now)
    row = _add_call(session, finding, call, caller_id=caller_id, now=now)
    record_event(session, exam, kind="critical_call", actor=f"user:{caller_id}", now=now,
                 finding_id=finding.id, called=call.called_person, phone=call.phone,
                 called_at=call.called_at.isoformat(), read_back=call.read_back)
    return row


def acknowledge(session: Session, exam: Exam, finding: CriticalFinding, *, user_id: int,
                note: str, now: dt.datetime) -> CriticalFinding:
    """The hospital acknowledges the finding (once; a second time is a no-op answer)."""
    if finding.acknowledged_at is not None:
        raise Conflict("this critical finding was already acknowledged")
    finding.acknowledged_at = now
    finding.acknowledged_by = user_id
    finding.acknowledgement_note = note.strip()[:2000]
    late = now > finding.ack_due_at
    record_event(session, exam, kind="critical_acknowledged", actor=f"user:{user_id}",
                 now=now, finding_id=finding.id, late=late)
    return finding


def findings_of(session: Session, exam: Exam) -> list[CriticalFinding]:
    return list(session.scalars(select(CriticalFinding).where(
        CriticalFinding.exam_id == exam.id).order_by(CriticalFinding.id)))


def calls_of(session: Session, finding: CriticalFinding) -> list[CriticalCall]:
    return list(session.scalars(select(CriticalCall).where(
        CriticalCall.finding_id == finding.id).order_by(CriticalCall.called_at,
                                                        CriticalCall.id)))


def summaries(session: Session, exam: Exam, *, timezone: str) -> tuple[str, ...]:
    """One line per finding, for the report's documents: the finding, then each call."""
    zone = ZoneInfo(timezone)
    lines = []
    for finding in findings_of(session, exam):
        calls = "; ".join(
            f"communiqué par téléphone à {c.called_person} ({c.phone}) à "
            f"{c.called_at.astimezone(zone):%H:%M}" + (", relu" if c.read_back else "")
            for c in calls_of(session, finding))
        lines.append(f"{finding.finding} — {calls}" if calls else finding.finding)
    return tuple(lines)


def open_findings(session: Session, *, site_ids: frozenset[int] | None
                  ) -> list[tuple[CriticalFinding, Exam]]:
    """Findings the hospital has not acknowledged yet, oldest first."""
    query = (select(CriticalFinding, Exam).join(Exam, Exam.id == CriticalFinding.exam_id)
             .where(CriticalFinding.acknowledged_at.is_(None))
             .order_by(CriticalFinding.ack_due_at))
    if site_ids is not None:
        query = query.where(Exam.site_id.in_(sorted(site_ids)))
    return [(f, e) for f, e in session.execute(query)]


@jobs.handler(CHECK_ACKNOWLEDGEMENT)
def _check_acknowledgement(ctx: jobs.JobContext, payload: dict[str, object]) -> None:
    """Escalate an unacknowledged finding one step: a second call to the same person, then
    the site's on-call manager. Idempotent: an acknowledged finding, or one already at a
    later step, is left alone."""
    finding = ctx.session.get(CriticalFinding, int(str(payload["finding_id"])))
    if finding is None or finding.acknowledged_at is not None:
        return
    now = ctx.clock.now()
    if now < finding.ack_due_at or finding.escalation_level >= ON_CALL_MANAGER:
        return
    exam = ctx.session.get(Exam, finding.exam_id)
    site = ctx.session.get(Site, exam.site_id) if exam is not None else None
    if exam is None or site is None:
        return
    finding.escalation_level += 1
    if finding.escalation_level == SECOND_CALL:
        calls = calls_of(ctx.session, finding)
        whom = calls[-1].called_person if calls else ""
        phone = calls[-1].phone if calls else ""
        step = "second_call"
    else:
        whom, phone, step = site.on_call_manager, site.on_call_phone, "on_call_manager"
    finding.ack_due_at = now + dt.timedelta(minutes=site.critical_ack_minutes)
    record_event(ctx.session, exam, kind="critical_escalated", actor="system", now=now,
                 finding_id=finding.id, step=step, call=whom, phone=phone,
                 ack_due_at=finding.ack_due_at.isoformat())
    if finding.escalation_level < ON_CALL_MANAGER:
        jobs.enqueue(ctx.session, kind=CHECK_ACKNOWLEDGEMENT,
                     payload={"finding_id": finding.id}, now=now, run_at=finding.ack_due_at)
