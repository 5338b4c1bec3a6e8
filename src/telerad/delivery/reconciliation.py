"""The reconciliation report: every read exam whose final report the hospital has not
acknowledged everywhere it should have (a preliminary still waiting for its final, a final
or addendum still pending or failed at an endpoint), oldest first."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from telerad.delivery.models import Delivery, DeliveryState, Endpoint
from telerad.workflow.exams.models import Exam, ExamState


@dataclass(frozen=True, kw_only=True)
class Outstanding:
    """One delivery not acknowledged."""

    delivery_id: int
    endpoint: str
    document: str
    state: str
    attempts: int
    last_answer: str
    waiting_since: dt.datetime
    next_attempt_at: dt.datetime | None


@dataclass(frozen=True, kw_only=True)
class Unreconciled:
    """A read exam without an acknowledged final report."""

    exam_id: int
    site_id: int
    accession_number: str
    state: str
    reported_at: dt.datetime | None
    #: Why: "final_not_signed" (a preliminary only), "pending", "failed".
    reason: str
    outstanding: list[Outstanding] = field(default_factory=list)


def unreconciled(session: Session, *, site_ids: frozenset[int] | None) -> list[Unreconciled]:
    """The report, for the sites in ``site_ids`` (None: every site)."""
    waiting = select(Delivery.exam_id).where(Delivery.state != DeliveryState.ACKNOWLEDGED)
    query = select(Exam).where(or_(
        Exam.state.in_([ExamState.PRELIMINARY, ExamState.FINAL]), Exam.id.in_(waiting)))
    if site_ids is not None:
        query = query.where(Exam.site_id.in_(sorted(site_ids)))
    exams = list(session.scalars(query))
    rows: dict[int, list[Outstanding]] = {exam.id: [] for exam in exams}
    if exams:
        for delivery, endpoint in session.execute(
                select(Delivery, Endpoint).join(Endpoint, Endpoint.id == Delivery.endpoint_id)
                .where(Delivery.exam_id.in_(list(rows)),
                       Delivery.state != DeliveryState.ACKNOWLEDGED)
                .order_by(Delivery.endpoint_id, Delivery.sequence)):
            rows[delivery.exam_id].append(Outstanding(
                delivery_id=delivery.id, endpoint=endpoint.name, document=delivery.document,
                state=delivery.state, attempts=delivery.attempts,
                last_answer=delivery.last_answer, waiting_since=delivery.created_at,
                next_attempt_at=(delivery.next_attempt_at
                                 if delivery.state == DeliveryState.PENDING else None)))
    result = []
    for exam in exams:
        outstanding = rows[exam.id]
        if any(o.state == DeliveryState.FAILED for o in outstanding):
            reason = "failed"
        elif outstanding:
            reason = "pending"
        else:
            reason = "final_not_signed"
        result.append(Unreconciled(
            exam_id=exam.id, site_id=exam.site_id, accession_number=exam.accession_number or "",
            state=exam.state, reported_at=exam.reported_at, reason=reason,
            outstanding=outstanding))
    result.sort(key=lambda u: (u.reported_at is None, u.reported_at or dt.datetime.max.replace(
        tzinfo=dt.UTC), u.exam_id))
    return result


def retry_failed(session: Session, *, delivery: Delivery, now: dt.datetime) -> None:
    """Send a failed delivery again (after someone fixed the cause at the peer)."""
    delivery.state = DeliveryState.PENDING
    delivery.failed_at = None
    delivery.next_attempt_at = now
    delivery.leased_until = None
