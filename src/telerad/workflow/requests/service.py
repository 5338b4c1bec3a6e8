"""Imaging requests and their remote justification.

A request is filed by the hospital (patient, clinical context and question, urgency, exam
asked, contraindications) and goes to the radiologists on duty for its site and modality.
One of them accepts it with a protocol (possibly changing the exam asked) or refuses it with
a reason; each decision is on the exam's timeline with who and when. An accepted request
gets an Accession Number and a pre-assigned Study Instance UID, which its Modality Worklist
item hands to the scanner (PS3.4 Annex K) so the images come back recognisable.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from enum import StrEnum

from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.errors import Conflict, Forbidden, InvalidInput, NotFound
from telerad.workflow.assignments.routing import Router
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.exams.rules import URGENCY_RANK, check_move
from telerad.workflow.exams.timeline import move, record_event
from telerad.workflow.requests.checks import (
    MODALITY,
    Contraindications,
    RequestForm,
    explain,
    problems,
)
from telerad.workflow.requests.models import Protocol
from telerad.workflow.roster.models import Radiologist
from telerad.workflow.sites.models import Site

# The request's fields (from checks) are part of this service's interface.
__all__ = ["Contraindications", "Decision", "RequestForm", "accession_number", "add_protocol",
           "cancel", "decide", "file_request", "list_protocols"]


def _clean(form: RequestForm) -> RequestForm:
    """The request as filed, or InvalidInput naming every problem (the rules are in
    :mod:`telerad.workflow.requests.checks`, shared with the portal's form)."""
    found = problems(form)
    if found:
        raise InvalidInput("; ".join(explain(field, code) for field, code in found.items()))
    return form


def file_request(session: Session, form: RequestForm, *, filed_by: int | None, actor: str,
                 now: dt.datetime) -> Exam:
    """File a request: it waits for the justification of a radiologist on duty."""
    form = _clean(form)
    if session.get(Site, form.site_id) is None:
        raise NotFound(f"no site #{form.site_id}")
    c = form.contraindications
    exam = Exam(
        site_id=form.site_id, state=ExamState.FILED, urgency=form.urgency,
        urgency_rank=URGENCY_RANK[form.urgency], modality=form.modality.strip().upper(),
        patient_id=form.patient_id.strip(), patient_name=form.patient_name.strip(),
        patient_birth_date=form.patient_birth_date, patient_sex=form.patient_sex,
        ins=form.ins.strip(), requesting_physician=form.requesting_physician.strip(),
        clinical_context=form.clinical_context.strip(),
        clinical_question=form.clinical_question.strip(), exam_asked=form.exam_asked.strip(),
        contraindications=json.dumps({"pregnancy": c.pregnancy, "egfr": c.egfr,
                                      "contrast_allergy": c.contrast_allergy}),
        filed_by=filed_by, filed_at=now, created_at=now)
    session.add(exam)
    session.flush()
    record_event(session, exam, kind="filed", actor=actor, now=now, urgency=form.urgency,
                 modality=exam.modality, exam_asked=exam.exam_asked)
    return exam


class Decision(StrEnum):
    """What the radiologist decides on a request."""

    ACCEPT = "accept"
    """Justified as asked, with a protocol."""
    CHANGE = "change"
    """Justified as another exam (another protocol, possibly another modality)."""
    REFUSE = "refuse"
    """Not justified; the reason goes back to the requesting physician."""


def accession_number(exam: Exam) -> str:
    """Accession Number (0008,0050), SH of 16 at most: unique by construction."""
    return f"TR{exam.id:010d}"


def decide(
    session: Session, exam: Exam, *, decision: Decision, radiologist: Radiologist,
    user_id: int, now: dt.datetime, protocol_code: str | None = None,
    exam_asked: str | None = None, reason: str = "",
) -> None:
    """Record a radiologist's justification of a filed request."""
    check_move(ExamState(exam.state), ExamState.VALIDATED)
    router = Router(session, now)
    if radiologist.id not in router.offered(exam, level=len(router.ladder(exam).steps)):
        _l, verdicts, _c = router.explain(exam)
        why = next((v.reason for v in verdicts if v.radiologist_id == radiologist.id),
                   "not on duty now")
        raise Forbidden(f"only a radiologist on duty for this site and modality decides: {why}")
    actor = f"radiologist:{radiologist.id}"
    if decision == Decision.REFUSE:
        if not reason.strip():
            raise InvalidInput("a refusal needs its reason")
        exam.refusal_reason = reason.strip()
        exam.decided_by, exam.decided_at = user_id, now
        move(session, exam, ExamState.REFUSED, actor=actor, now=now, kind="refused",
             radiologist=radiologist.name, reason=exam.refusal_reason)
        return
    protocol = session.get(Protocol, protocol_code or "")
    if protocol is None:
        raise InvalidInput(f"unknown protocol {protocol_code!r}: see GET /api/protocols")
    detail: dict[str, str] = {"protocol": protocol.code}
    if decision == Decision.CHANGE:
        if not (exam_asked or "").strip():
            raise InvalidInput("changing the exam needs the exam to perform instead")
        detail |= {"exam_asked_before": exam.exam_asked, "modality_before": exam.modality}
        exam.exam_asked = (exam_asked or "").strip()
        exam.modality = protocol.modality
    elif protocol.modality != exam.modality:
        raise InvalidInput(f"protocol {protocol.code} is for {protocol.modality}, the request "
                           f"for {exam.modality}: change the exam instead")
    exam.protocol_code = protocol.code
    exam.decided_by, exam.decided_at = user_id, now
    exam.accession_number = accession_number(exam)
    exam.study_instance_uid = generate_uid()
    move(session, exam, ExamState.VALIDATED, actor=actor, now=now, kind=str(decision),
         radiologist=radiologist.name, accession_number=exam.accession_number,
         reason=reason.strip(), **detail)


def cancel(session: Session, exam: Exam, *, reason: str, actor: str, now: dt.datetime) -> None:
    if not reason.strip():
        raise InvalidInput("cancelling needs a reason")
    move(session, exam, ExamState.CANCELLED, actor=actor, now=now, kind="cancelled",
         reason=reason.strip())


def add_protocol(session: Session, *, code: str, name: str, modality: str,
                 subspecialty: str = "", expected_series: list[str] | None = None) -> Protocol:
    code, modality = code.strip().upper(), modality.strip().upper()
    if not re.fullmatch(r"[A-Z0-9_.-]{1,64}", code):
        raise InvalidInput("a protocol code is 1 to 64 of A-Z, 0-9, '_', '.', '-'")
    if not MODALITY.match(modality):
        raise InvalidInput("the modality is a DICOM Modality such as CT or MR")
    if not name.strip():
        raise InvalidInput("a protocol needs a name")
    if session.get(Protocol, code) is not None:
        raise Conflict(f"protocol {code} already exists")
    protocol = Protocol(code=code, name=name.strip(), modality=modality,
                        subspecialty=subspecialty.strip().lower(),
                        expected_series=json.dumps([s.strip() for s in expected_series or []
                                                    if s.strip()]))
    session.add(protocol)
    session.flush()
    return protocol


def list_protocols(session: Session) -> list[Protocol]:
    return list(session.scalars(select(Protocol).order_by(Protocol.modality, Protocol.code)))
