"""What the hospital portal's pages share: who may use them (hospital staff of the site),
their audited reads, the sites a person sees, times in the site's own zone, patients' names
as people write them, the current step's clock, the radiologist's decision in words, and
the read of a live page's state."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.audit.service import Action, who_for
from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.errors import Forbidden
from telerad.httpauth import runtime_of, source_of
from telerad.web.pages import form_actor, page_actor
from telerad.workflow.exams.models import Exam, ExamEvent, ExamState
from telerad.workflow.requests.models import Protocol
from telerad.workflow.sites.models import Site

#: Hospital staff: they file requests or acquire them.
HOSPITAL = frozenset({Permission.REQUESTS_FILE, Permission.EXAMS_ACQUIRE})


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


def audit_read(request: Request, actor: Actor, route: str, exam_ids: list[int],
                study_instance_uid: str = "") -> None:
    runtime_of(request).audit(who_for(actor, source_of(request)), Action.READ,
                              study_instance_uid=study_instance_uid,
                              detail={"route": route, "exam_ids": exam_ids[:100]})


def hospital_sites(session: Session, actor: Actor) -> dict[int, Site]:
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


def protocol_names(session: Session) -> dict[str, str]:
    return {code: name for code, name in session.execute(select(Protocol.code, Protocol.name))}


def asked_before(session: Session, exam_ids: list[int]) -> dict[int, str]:
    """The exam first asked for, of the exams a radiologist changed (from their timeline)."""
    if not exam_ids:
        return {}
    events = session.execute(select(ExamEvent.exam_id, ExamEvent.detail).where(
        ExamEvent.exam_id.in_(exam_ids), ExamEvent.kind == "change"))
    return {exam_id: str(json.loads(detail).get("exam_asked_before", ""))
            for exam_id, detail in events}


def hospital_state(request: Request, state: Callable[[Session, Actor], object]
                    ) -> Callable[[Actor], object]:
    """What a live portal page shows, read for a hospital staff member."""
    def read(actor: Actor) -> object:
        require_hospital(actor)
        with transaction(runtime_of(request).sessions, readonly=True) as session:
            return state(session, actor)
    return read
