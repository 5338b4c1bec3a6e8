"""Exams meeting their images, and becoming complete.

Images meet requests in the intake's transaction (:func:`on_new_study`), so that every way
in (C-STORE, STOW-RS, import) gets it: a new study is matched by its pre-assigned Study
Instance UID, then its Accession Number, then the patient ID of the one request validated
in the last day for that modality; anything else opens an *unmatched* exam the site
reconciles — never a guess.

An exam is complete when its images stopped arriving (the archive's stable age) and the
series its protocol expects are all there; when the technologist marks it done; or, with
series still missing, after SERIES_GRACE (what is missing goes on the timeline). A stroke
alert is ready at its first image.
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
from telerad.workflow.exams.rules import NO_URGENCY_RANK, InvalidTransition
from telerad.workflow.exams.timeline import move, record_event
from telerad.workflow.requests.models import Protocol
from telerad.workflow.sites.models import Urgency

#: A request is matched by patient ID only if validated this recently before its images.
PATIENT_MATCH_WINDOW = dt.timedelta(hours=24)
#: States in which a request waits for its images.
AWAITING_IMAGES = (ExamState.VALIDATED,)
STUDY_COMPLETED_JOB = "exams.study_completed"
SERIES_GRACE_JOB = "exams.series_grace"
#: How long a quiet study missing some of its protocol's series waits for them.
SERIES_GRACE = dt.timedelta(minutes=10)


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


def on_new_study(session: Session, *, header: InstanceHeader, site_id: int, actor: str,
                 now: dt.datetime) -> None:
    """A new study of a site arrived (intake, same transaction): attach it to its request,
    or open an unmatched exam."""
    exam, why = _match(session, header, site_id, now)
    if exam is not None:
        _attach(session, exam, study_instance_uid=header.study_instance_uid, matched_by=why,
                actor=actor, now=now)
    elif session.scalar(select(Exam.id).where(
            Exam.study_instance_uid == header.study_instance_uid)) is None:
        _open_unmatched(session, header=header, site_id=site_id, why=why, actor=actor, now=now)


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


def missing_series(session: Session, exam: Exam) -> list[str]:
    """The series its protocol expects that have not arrived (by Series Description)."""
    descriptions = [d.lower() for d in session.scalars(
        select(Series.series_description).join(Study, Study.id == Series.study_id)
        .where(Study.study_instance_uid == exam.study_instance_uid))]
    return [e for e in expected_series(session, exam)
            if not any(e.lower() in d for d in descriptions)]


def complete_if_stable(session: Session, exam: Exam, *, actor: str, now: dt.datetime,
                       grace_over: bool = False) -> bool:
    """The study stopped receiving: the exam is ready if its protocol's series are all there
    (a scanner pausing between series must not cut a stroke protocol short) — or, missing
    some, once SERIES_GRACE has passed, with what is missing on the timeline."""
    missing = missing_series(session, exam)
    if missing and not grace_over:
        jobs.enqueue(session, kind=SERIES_GRACE_JOB, payload={"exam_id": exam.id}, now=now,
                     run_at=now + SERIES_GRACE)
        return False
    if missing:
        record_event(session, exam, kind="series_missing", actor=actor, now=now,
                     missing=missing)
    completion = "stable" if missing or not expected_series(session, exam) else (
        "expected_series")
    open_for_reading(session, exam, now=now, completion=completion, actor=actor)
    return True


def mark_done(session: Session, exam: Exam, *, actor: str, now: dt.datetime) -> None:
    """The technologist says the acquisition is over: an acquiring exam is ready for
    reading; one already read or in reading (a stroke alert opens at its first image) only
    gets the fact on its timeline."""
    if exam.state == ExamState.ACQUIRING:
        open_for_reading(session, exam, now=now, completion="marked_done", actor=actor)
    elif exam.state in (ExamState.READY, ExamState.IN_READING, ExamState.PRELIMINARY):
        record_event(session, exam, kind="acquisition_done", actor=actor, now=now)
    else:
        raise InvalidTransition(f"an exam in state {exam.state} has no acquisition to end")


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
    if target.state == ExamState.ACQUIRING and status == StudyStatus.COMPLETE:
        complete_if_stable(session, target, actor=actor, now=now)


@jobs.handler(STUDY_COMPLETED_JOB)
def _study_completed(ctx: jobs.JobContext, payload: dict[str, object]) -> None:
    """The archive found the study stable: its exam, if still acquiring, may be ready."""
    exam = ctx.session.scalar(select(Exam).where(
        Exam.study_instance_uid == payload["study_instance_uid"],
        Exam.state == ExamState.ACQUIRING))
    if exam is not None and complete_if_stable(ctx.session, exam, actor="system",
                                               now=ctx.clock.now()):
        system_changed(ctx.session, exam, what="ready", now=ctx.clock.now())


@jobs.handler(SERIES_GRACE_JOB)
def _series_grace(ctx: jobs.JobContext, payload: dict[str, object]) -> None:
    """Series were still missing when the study went quiet; the grace is over."""
    exam = ctx.session.get(Exam, payload["exam_id"])
    if exam is not None and exam.state == ExamState.ACQUIRING and complete_if_stable(
            ctx.session, exam, actor="system", now=ctx.clock.now(), grace_over=True):
        system_changed(ctx.session, exam, what="ready", now=ctx.clock.now())


jobs.subscribe(STUDY_COMPLETED, STUDY_COMPLETED_JOB)
