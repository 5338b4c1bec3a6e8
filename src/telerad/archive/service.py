"""Indexing stored instances and finding them again.

Intake calls :func:`index_instance` once per new instance, in its transaction: a handful of
statements (insert-if-absent of study and series, insert of the instance, counters), cheap
enough to run before the DICOM edge answers 0x0000.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from telerad import jobs
from telerad.archive.models import Instance, InstanceConflict, Origin, Series, Study, StudyStatus
from telerad.dicom.header import InstanceHeader
from telerad.errors import NotFound

#: Job that decides whether a study has been stable long enough to be complete.
CHECK_STABLE = "archive.check_stable"
#: Event published when a study becomes complete; payload: study_instance_uid, study_id.
STUDY_COMPLETED = "study.completed"


@dataclass(frozen=True, kw_only=True)
class StoredInstance:
    """Where an indexed instance's bytes are."""

    id: int
    study_id: int
    blob_key: str
    size: int


def find_instance(session: Session, sop_instance_uid: str) -> StoredInstance | None:
    row = session.execute(
        select(Instance.id, Instance.study_id, Instance.blob_key, Instance.size).where(
            Instance.sop_instance_uid == sop_instance_uid
        )
    ).first()
    if row is None:
        return None
    return StoredInstance(id=row.id, study_id=row.study_id, blob_key=row.blob_key, size=row.size)


def _insert_ignore(session: Session, table: type[Study] | type[Series], values: dict[str, object],
                   unique: str) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(values).on_conflict_do_nothing(index_elements=[unique])
    else:
        stmt = sqlite.insert(table).values(values).on_conflict_do_nothing(index_elements=[unique])
    session.execute(stmt)


def index_instance(
    session: Session,
    *,
    header: InstanceHeader,
    blob_key: str,
    size: int,
    origin: Origin,
    source_ae_title: str,
    site_id: int | None,
    now: dt.datetime,
    stable_age: float,
) -> int:
    """Index a newly stored instance; return its id. The caller checked it is new."""
    study_row = session.execute(
        select(Study.id, Study.status).where(Study.study_instance_uid == header.study_instance_uid)
    ).first()
    created = study_row is None
    if study_row is None:
        _insert_ignore(session, Study, {
            "study_instance_uid": header.study_instance_uid,
            "site_id": site_id,
            "patient_id": header.patient_id,
            "patient_name": header.patient_name,
            "patient_birth_date": header.patient_birth_date,
            "patient_sex": header.patient_sex,
            "study_date": header.study_date,
            "study_time": header.study_time,
            "accession_number": header.accession_number,
            "study_id": header.study_id,
            "study_description": header.study_description,
            "referring_physician_name": header.referring_physician_name,
            "modalities_in_study": "",
            "number_of_series": 0,
            "number_of_instances": 0,
            "first_instance_at": now,
            "last_instance_at": now,
            "status": StudyStatus.RECEIVING,
        }, "study_instance_uid")
        study_row = session.execute(
            select(Study.id, Study.status).where(
                Study.study_instance_uid == header.study_instance_uid
            )
        ).one()
    study_id, previous_status = study_row.id, study_row.status

    series_id = session.scalar(
        select(Series.id).where(Series.series_instance_uid == header.series_instance_uid)
    )
    new_series = series_id is None
    if series_id is None:
        _insert_ignore(session, Series, {
            "study_id": study_id,
            "series_instance_uid": header.series_instance_uid,
            "modality": header.modality,
            "series_number": header.series_number,
            "series_description": header.series_description,
            "series_date": header.series_date,
            "series_time": header.series_time,
            "body_part_examined": header.body_part_examined,
            "number_of_instances": 0,
        }, "series_instance_uid")
        series_id = session.scalar(
            select(Series.id).where(Series.series_instance_uid == header.series_instance_uid)
        )
        assert series_id is not None

    instance_id = session.execute(
        insert(Instance).values(
            study_id=study_id,
            series_id=series_id,
            sop_instance_uid=header.sop_instance_uid,
            sop_class_uid=header.sop_class_uid,
            transfer_syntax_uid=header.transfer_syntax_uid,
            instance_number=header.instance_number,
            rows=header.rows,
            columns=header.columns,
            number_of_frames=header.number_of_frames,
            blob_key=blob_key,
            size=size,
            received_at=now,
            origin=origin,
            source_ae_title=source_ae_title,
            metadata_json=header.metadata_json,
        ).returning(Instance.id)
    ).scalar_one()

    session.execute(
        update(Series)
        .where(Series.id == series_id)
        .values(
            number_of_instances=Series.number_of_instances + 1,
            first_instance_id=func.coalesce(Series.first_instance_id, instance_id),
        )
    )
    study_values: dict[str, object] = {
        "number_of_instances": Study.number_of_instances + 1,
        "last_instance_at": now,
        "first_instance_id": func.coalesce(Study.first_instance_id, instance_id),
    }
    if new_series:
        modalities = session.scalars(
            select(Series.modality).where(Series.study_id == study_id).distinct()
        )
        study_values["number_of_series"] = Study.number_of_series + 1
        study_values["modalities_in_study"] = "\\".join(sorted(m for m in modalities if m))
    if previous_status == StudyStatus.COMPLETE:
        # More images after completion: the study is receiving again and will complete anew.
        study_values["status"] = StudyStatus.RECEIVING
        study_values["completed_at"] = None
    session.execute(update(Study).where(Study.id == study_id).values(study_values))
    if created or previous_status == StudyStatus.COMPLETE:
        # One stability check per arrival period; it reschedules itself (check_stable).
        jobs.enqueue(
            session,
            kind=CHECK_STABLE,
            payload={"study_id": study_id, "stable_age": stable_age},
            now=now,
            run_at=now + dt.timedelta(seconds=stable_age),
        )
    return instance_id


def record_conflict(
    session: Session, *, header: InstanceHeader, blob_key: str, size: int, origin: Origin,
    source_ae_title: str, now: dt.datetime,
) -> InstanceConflict:
    """Record a refused second copy of a stored SOP Instance UID."""
    conflict = InstanceConflict(
        sop_instance_uid=header.sop_instance_uid,
        study_instance_uid=header.study_instance_uid,
        received_at=now,
        origin=origin,
        source_ae_title=source_ae_title,
        blob_key=blob_key,
        size=size,
    )
    session.add(conflict)
    session.flush()
    return conflict


def check_stable(session: Session, *, study_id: int, stable_age: float, now: dt.datetime) -> bool:
    """Mark the study complete if nothing arrived for ``stable_age``; else check again later.

    Returns whether the study became complete (and ``StudyCompleted`` was published).
    """
    study = session.get(Study, study_id)
    if study is None:
        raise NotFound(f"study #{study_id} not found")
    if study.status == StudyStatus.COMPLETE:
        return False
    due = study.last_instance_at + dt.timedelta(seconds=stable_age)
    if due > now:
        jobs.enqueue(session, kind=CHECK_STABLE,
                     payload={"study_id": study_id, "stable_age": stable_age}, now=now, run_at=due)
        return False
    study.status = StudyStatus.COMPLETE
    study.completed_at = now
    jobs.publish(
        session,
        event=STUDY_COMPLETED,
        payload={"study_id": study.id, "study_instance_uid": study.study_instance_uid},
        now=now,
    )
    return True


@jobs.handler(CHECK_STABLE)
def _check_stable_job(ctx: jobs.JobContext, payload: dict[str, object]) -> None:
    study_id = payload["study_id"]
    stable_age = payload["stable_age"]
    assert isinstance(study_id, int) and isinstance(stable_age, (int, float))
    check_stable(ctx.session, study_id=study_id, stable_age=float(stable_age), now=ctx.clock.now())
