"""The DICOM Modality Worklist a site's scanners query (PS3.4 Annex K): one scheduled
procedure step per validated request whose images have not arrived yet."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.dicom.mwl import WorklistEntry
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.requests.models import Protocol
from telerad.workflow.sites.models import Site, Urgency

LOGGER = logging.getLogger(__name__)
#: Requested Procedure Priority (0040,1003) of each urgency (STAT, HIGH, ROUTINE, MEDIUM,
#: LOW: PS3.3 C.4.11).
PRIORITY = {Urgency.STROKE_ALERT: "STAT", Urgency.LIFE_THREATENING: "STAT",
            Urgency.URGENT: "HIGH", Urgency.SCHEDULED: "ROUTINE"}


def worklist_entries(session: Session, *, site_id: int, now: dt.datetime) -> list[WorklistEntry]:
    """The scheduled procedure steps of the site's validated requests not yet performed."""
    del now  # every validated request is on the worklist until its images arrive
    site = session.get(Site, site_id)
    if site is None:
        return []
    rows = session.execute(
        select(Exam, Protocol).join(Protocol, Protocol.code == Exam.protocol_code)
        .where(Exam.site_id == site_id, Exam.state == ExamState.VALIDATED)
        .order_by(Exam.urgency_rank, Exam.decided_at, Exam.id)).all()
    entries = []
    for exam, protocol in rows:
        try:
            entries.append(_entry(exam, protocol, site))
        except ValueError as exc:  # one bad request must not empty the scanner's worklist
            LOGGER.warning("exam #%d left out of the worklist: %s", exam.id, type(exc).__name__)
    return entries


def _entry(exam: Exam, protocol: Protocol, site: Site) -> WorklistEntry:
    """One scheduled procedure step; ValueError if a value cannot be written in DICOM."""
    return WorklistEntry(
        accession_number=exam.accession_number or "",
        patient_id=exam.patient_id, patient_name=exam.patient_name,
        patient_birth_date=exam.patient_birth_date, patient_sex=exam.patient_sex,
        other_patient_id=exam.ins, study_instance_uid=exam.study_instance_uid or "",
        requested_procedure_id=exam.accession_number or "",
        requested_procedure_description=exam.exam_asked[:64],
        requesting_physician=exam.requesting_physician[:64],
        reason_for_requested_procedure=exam.clinical_question[:64],
        priority=PRIORITY[Urgency(exam.urgency or Urgency.SCHEDULED)],
        modality=exam.modality, scheduled_station_ae_title="",
        scheduled_start=exam.decided_at or exam.created_at, site_zone=site.timezone,
        scheduled_procedure_step_id=f"SPS{exam.id}",
        scheduled_procedure_step_description=protocol.name[:64],
        protocol_code_value=protocol.code, protocol_code_meaning=protocol.name[:64],
    )
