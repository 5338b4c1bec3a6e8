"""An exam's timeline, and the one way its state changes (with a timeline entry)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.workflow.exams.models import Exam, ExamEvent, ExamState
from telerad.workflow.exams.rules import check_move


def record_event(session: Session, exam: Exam, *, kind: str, actor: str, now: dt.datetime,
                 **detail: Any) -> ExamEvent:
    """Add an entry to the exam's timeline (in the caller's transaction)."""
    event = ExamEvent(exam_id=exam.id, at=now, kind=kind, actor=actor,
                      detail=json.dumps(detail, default=str, sort_keys=True))
    session.add(event)
    return event


def timeline(session: Session, exam: Exam) -> list[ExamEvent]:
    return list(session.scalars(select(ExamEvent).where(ExamEvent.exam_id == exam.id)
                                .order_by(ExamEvent.at, ExamEvent.id)))


def move(session: Session, exam: Exam, target: ExamState, *, actor: str, now: dt.datetime,
         kind: str | None = None, **detail: Any) -> None:
    """Change the exam's state as the table allows, with its timeline entry."""
    current = ExamState(exam.state)
    check_move(current, target)
    exam.state = target
    exam.version += 1
    record_event(session, exam, kind=kind or str(target), actor=actor, now=now,
                 state_from=str(current), state_to=str(target), **detail)
