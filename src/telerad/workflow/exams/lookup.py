"""From an identifier someone types (a patient ID, an accession number, a StudyInstanceUID)
to the studies and exams it designates, across every site: what the audit trail's search
needs, since the trail names patients only by those. Returns identifiers, never patient
data, so it takes no scope; the edge that calls it requires the right to read the trail."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from telerad.archive.models import Study
from telerad.workflow.exams.models import Exam


def studies_and_exams(session: Session, identifier: str) -> tuple[frozenset[str],
                                                                   frozenset[int]]:
    """StudyInstanceUIDs and exam ids matching ``identifier`` exactly (itself included as a
    possible StudyInstanceUID)."""
    value = identifier.strip()
    uids = {value}
    exam_ids: set[int] = set()
    for exam_id, uid in session.execute(select(Exam.id, Exam.study_instance_uid).where(or_(
            Exam.patient_id == value, Exam.accession_number == value,
            Exam.study_instance_uid == value))):
        exam_ids.add(exam_id)
        if uid:
            uids.add(uid)
    uids.update(session.scalars(select(Study.study_instance_uid).where(or_(
        Study.patient_id == value, Study.accession_number == value))))
    # A study found in the archive alone may still be an exam's (its events name the exam).
    exam_ids.update(session.scalars(select(Exam.id).where(
        Exam.study_instance_uid.in_(sorted(uids)))))
    return frozenset(uids), frozenset(exam_ids)
