"""Reading exams. Every query of exams starts from :func:`scoped_exams` and the actor's
Scope: a hospital's staff see their site's exams, a radiologist the sites they read for."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from telerad.auth.service import Scope
from telerad.errors import NotFound
from telerad.workflow.exams.models import Exam, ExamState


def scoped_exams(scope: Scope) -> Select[Exam]:
    """``SELECT exams`` limited to what ``scope`` may see: the one way exams are queried."""
    query = select(Exam)
    if scope.site_ids is not None:
        query = query.where(Exam.site_id.in_(scope.site_ids))
    return query


def get_exam(session: Session, *, scope: Scope, exam_id: int, for_update: bool = False
             ) -> Exam:
    """The exam if ``scope`` may see it; NotFound otherwise (no existence leak)."""
    query = scoped_exams(scope).where(Exam.id == exam_id)
    if for_update:
        query = query.with_for_update()
    exam = session.scalar(query)
    if exam is None:
        raise NotFound(f"no exam #{exam_id}")
    return exam


def list_exams(
    session: Session, *, scope: Scope, states: list[ExamState] | None = None,
    site_id: int | None = None, limit: int = 100, offset: int = 0,
) -> list[Exam]:
    query = scoped_exams(scope)
    if states:
        query = query.where(Exam.state.in_([str(s) for s in states]))
    if site_id is not None:
        query = query.where(Exam.site_id == site_id)
    query = query.order_by(Exam.urgency_rank, Exam.created_at.desc(), Exam.id.desc())
    return list(session.scalars(query.limit(limit).offset(offset)))


def escalated_to_coordinator(session: Session, *, scope: Scope) -> list[Exam]:
    """Ready exams whose escalation reached the coordinator, most urgent first."""
    return list(session.scalars(
        scoped_exams(scope).where(Exam.state == ExamState.READY,
                                  Exam.coordinator_called_at.is_not(None))
        .order_by(Exam.urgency_rank, Exam.due_at, Exam.id)))
