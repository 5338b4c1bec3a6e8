"""Exams: scoped reading, state changes with their timeline, and images meeting requests.

Images meet requests here, in the intake's transaction (:func:`on_images`), so that every
way in (C-STORE, STOW-RS, import) gets it: a new study is matched by its pre-assigned Study
Instance UID, then its Accession Number, then the patient ID of one request validated in the
last day for that modality; anything else opens an *unmatched* exam the site reconciles —
never a guess. An exam is complete when the series its protocol expects have arrived, when
the technologist marks it done, or when the archive finds the study stable; a stroke alert
is ready at its first image.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad import jobs
from telerad.archive.models import Series, Study, StudyStatus
from telerad.archive.service import STUDY_COMPLETED
from telerad.dicom.header import InstanceHeader
from telerad.errors import InvalidInput
from telerad.workflow.assignments.service import open_for_reading, system_changed
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.exams.rules import NO_URGENCY_RANK, check_move
from telerad.workflow.exams.timeline import move, record_event
from telerad.workflow.requests.models import Protocol
from telerad.workflow.sites.models import Urgency

#: A request is matched by patient ID only if validated this recently before its images.
PATIENT_MATCH_WINDOW = dt.timedelta(hours=24)
#: States in which a request waits for its images.
AWAITING_IMAGES = (ExamState.VALIDATED,)
STUDY_COMPLETED_JOB = "exams.study_completed"


def expected_series(session: Session, exam: Exam) -> list[str]:
    if exam.protocol_code is None:
        return []
    protocol = session.get(Protocol, exam.protocol_code)
    return [] if protocol is None else [str(s) for s in json.loads(protocol.expected_series)]


def _attach(session: Session, exam: Exam, *, study_instance_uid: str, matched_by: str,
            actor: str, now: dt.datetime) -> None:
    exam.study_instance_uid = study_instance_uid
    exam.first_image_at = now
    move(session, exam, ExamState.ACQUIRING, actor=actor, now=now, kind="images_arrived",
         matched_by=matched_by, study_instance_uid=study_instance_uid)
    if exam.urgency == Urgency.STROKE_ALERT:
        # A stroke alert is read while its images still arrive (thrombolysis decision).
        open_for_reading(session, exam, now=now, completion="stroke_alert", actor=actor)


def _match(session: Session, header: InstanceHeader, site_id: int, now: dt.datetime
           ) -> tuple[Exam | None, str]:
    """The request these images belong to, and how it was recognised; or why none."""
    waiting = select(Exam).where(Exam.site_id == site_id,
                                 Exam.state.in_([str(s) for s in AWAITING_IMAGES]))
    exam = session.scalar(waiting.where(Exam.study_instance_uid == header.study_instance_uid))
    if exam is not None:
        return exam, "study_instance_uid"
    if header.accession_number:
        exam = session.scalar(waiting.where(Exam.accession_number == header.accession_number))
        if exam is not None:
            return exam, "accession_number"
        return None, "no waiting request has this accession number"
    if not header.patient_id:
        return None, "no accession number and no patient ID"
    candidates = list(session.scalars(waiting.where(
        Exam.patient_id == header.patient_id, Exam.modality == header.modality,
        Exam.decided_at >= now - PATIENT_MATCH_WINDOW).limit(2)))
    if len(candidates) == 1:
        return candidates[0], "patient_id"
    if candidates:
        return None, "several waiting requests for this patient: choose one"
    return None, "no waiting request for this patient and modality"


def on_images(session: Session, *, header: InstanceHeader, site_id: int, new_study: bool,
              actor: str, now: dt.datetime) -> None:
    """A new study or a new series of a site arrived (intake, same transaction)."""
    if new_study:
        exam, why = _match(session, header, site_id, now)
        if exam is not None:
            _attach(session, exam, study_instance_uid=header.study_instance_uid,
                    matched_by=why, actor=actor, now=now)
        elif session.scalar(select(Exam.id).where(
                Exam.study_instance_uid == header.study_instance_uid)) is None:
            _open_unmatched(session, header=header, site_id=site_id, why=why, actor=actor,
                            now=now)
    exam = session.scalar(select(Exam).where(
        Exam.study_instance_uid == header.study_instance_uid,
        Exam.state == ExamState.ACQUIRING))
    if exam is not None:
        expected = expected_series(session, exam)
        if expected and _has_series(session, header.study_instance_uid, expected):
            open_for_reading(session, exam, now=now, completion="expected_series", actor=actor)


def _open_unmatched(session: Session, *, header: InstanceHeader, site_id: int, why: str,
                    actor: str, now: dt.datetime) -> Exam:
    exam = Exam(site_id=site_id, state=ExamState.UNMATCHED, urgency=None,
                urgency_rank=NO_URGENCY_RANK, modality=header.modality or "OT",
                patient_id=header.patient_id, patient_name=header.patient_name,
                patient_birth_date=header.patient_birth_date[:8],
                patient_sex=header.patient_sex[:1],
                study_instance_uid=header.study_instance_uid, first_image_at=now,
                created_at=now)
    session.add(exam)
    session.flush()
    record_event(session, exam, kind="unmatched", actor=actor, now=now, reason=why,
                 study_instance_uid=header.study_instance_uid)
    return exam


def _has_series(session: Session, study_instance_uid: str, expected: list[str]) -> bool:
    descriptions = [d.lower() for d in session.scalars(
        select(Series.series_description).join(Study, Study.id == Series.study_id)
        .where(Study.study_instance_uid == study_instance_uid))]
    return all(any(e.lower() in d for d in descriptions) for e in expected)


def mark_done(session: Session, exam: Exam, *, actor: str, now: dt.datetime) -> None:
    """The technologist says the acquisition is over: ready for reading."""
    if exam.state != ExamState.ACQUIRING:
        check_move(ExamState(exam.state), ExamState.READY)
    open_for_reading(session, exam, now=now, completion="marked_done", actor=actor)


def reconcile(session: Session, unmatched: Exam, *, target: Exam | None, reason: str,
              actor: str, now: dt.datetime) -> None:
    """Attach an unmatched study to the request it belongs to, or reject it (``target``
    None, with a reason). The images themselves stay as received."""
    if unmatched.state != ExamState.UNMATCHED:
        raise InvalidInput(f"exam #{unmatched.id} is not an unmatched study")
    study_uid = unmatched.study_instance_uid or ""
    if target is None:
        if not reason.strip():
            raise InvalidInput("rejecting an unmatched study needs a reason")
        move(session, unmatched, ExamState.CANCELLED, actor=actor, now=now, kind="rejected",
             reason=reason.strip())
        return
    if target.site_id != unmatched.site_id:
        raise InvalidInput("an unmatched study can only be attached to a request of its site")
    if target.state not in AWAITING_IMAGES:
        raise InvalidInput(f"exam #{target.id} is not waiting for images ({target.state})")
    move(session, unmatched, ExamState.CANCELLED, actor=actor, now=now, kind="attached",
         to_exam_id=target.id)
    unmatched.study_instance_uid = None
    session.flush()  # frees the study's UID for the request
    _attach(session, target, study_instance_uid=study_uid, matched_by="reconciled",
            actor=actor, now=now)
    status = session.scalar(select(Study.status).where(Study.study_instance_uid == study_uid))
    if target.state == ExamState.ACQUIRING and (
            status == StudyStatus.COMPLETE
            or (expected_series(session, target)
                and _has_series(session, study_uid, expected_series(session, target)))):
        open_for_reading(session, target, now=now, completion="stable", actor=actor)


@jobs.handler(STUDY_COMPLETED_JOB)
def _study_completed(ctx: jobs.JobContext, payload: dict[str, object]) -> None:
    """The archive found the study stable: its exam, if still acquiring, is ready."""
    exam = ctx.session.scalar(select(Exam).where(
        Exam.study_instance_uid == payload["study_instance_uid"],
        Exam.state == ExamState.ACQUIRING))
    if exam is not None:
        open_for_reading(ctx.session, exam, now=ctx.clock.now(), completion="stable",
                         actor="system")
        system_changed(ctx.session, exam, what="ready", now=ctx.clock.now())


jobs.subscribe(STUDY_COMPLETED, STUDY_COMPLETED_JOB)
