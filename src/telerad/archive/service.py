"""Indexing stored instances and finding them again.

Intake calls :func:`index_instance` once per new instance, in its transaction: a handful of
statements (insert-if-absent of study and series, insert of the instance, counters), cheap
enough to run before the DICOM edge answers 0x0000.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import CursorResult
from sqlalchemy.orm import Session

from telerad import jobs
from telerad.archive.models import InstanceConflict, Origin, Study, StudyStatus
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


_SQL = {
    "find_instance": "SELECT id, study_id, blob_key, size FROM instances "
                     "WHERE sop_instance_uid = :uid",
    "find_study": "SELECT id, status FROM studies WHERE study_instance_uid = :uid",
    "find_series": "SELECT id FROM series WHERE series_instance_uid = :uid",
    "insert_study": (
        "INSERT INTO studies (study_instance_uid, site_id, patient_id, patient_name, "
        "patient_birth_date, patient_sex, study_date, study_time, accession_number, study_id, "
        "study_description, referring_physician_name, modalities_in_study, number_of_series, "
        "number_of_instances, first_instance_at, last_instance_at, status) VALUES (:uid, "
        ":site_id, :patient_id, :patient_name, :patient_birth_date, :patient_sex, :study_date, "
        ":study_time, :accession_number, :study_id, :study_description, "
        ":referring_physician_name, '', 0, 0, :now, :now, 'receiving') "
        "ON CONFLICT (study_instance_uid) DO NOTHING"
    ),
    "insert_series": (
        "INSERT INTO series (study_id, series_instance_uid, modality, series_number, "
        "series_description, series_date, series_time, body_part_examined, "
        "number_of_instances) VALUES (:study_id, :uid, :modality, :series_number, "
        ":series_description, :series_date, :series_time, :body_part_examined, 0) "
        "ON CONFLICT (series_instance_uid) DO NOTHING"
    ),
    "insert_instance": (
        "INSERT INTO instances (study_id, series_id, sop_instance_uid, sop_class_uid, "
        "transfer_syntax_uid, instance_number, rows, columns, number_of_frames, blob_key, "
        "size, received_at, origin, source_ae_title, metadata_json) VALUES (:study_id, "
        ":series_id, :uid, :sop_class_uid, :transfer_syntax_uid, :instance_number, :rows, "
        ":columns, :number_of_frames, :blob_key, :size, :now, :origin, :source_ae_title, "
        ":metadata_json) RETURNING id"
    ),
    "count_series": (
        "UPDATE series SET number_of_instances = number_of_instances + 1, "
        "first_instance_id = COALESCE(first_instance_id, :instance_id) WHERE id = :id"
    ),
    "count_study": (
        "UPDATE studies SET number_of_instances = number_of_instances + 1, "
        "last_instance_at = :now, first_instance_id = COALESCE(first_instance_id, :instance_id) "
        "WHERE id = :id"
    ),
    "new_series_of_study": (
        "UPDATE studies SET number_of_series = number_of_series + 1, "
        "modalities_in_study = :modalities WHERE id = :id"
    ),
    "study_modalities": "SELECT DISTINCT modality FROM series WHERE study_id = :id",
    # PostgreSQL only: the usual case (study and series known) in one round trip.
    "add_to_known_series": (
        "WITH st AS (SELECT id, status FROM studies WHERE study_instance_uid = :study_uid), "
        "se AS (SELECT id FROM series WHERE series_instance_uid = :series_uid), "
        "ins AS (INSERT INTO instances (study_id, series_id, sop_instance_uid, sop_class_uid, "
        "transfer_syntax_uid, instance_number, rows, columns, number_of_frames, blob_key, "
        "size, received_at, origin, source_ae_title, metadata_json) SELECT st.id, se.id, :uid, "
        ":sop_class_uid, :transfer_syntax_uid, :instance_number, :rows, :columns, "
        ":number_of_frames, :blob_key, :size, :now, :origin, :source_ae_title, :metadata_json "
        "FROM st, se RETURNING id, study_id, series_id), "
        "s1 AS (UPDATE series SET number_of_instances = number_of_instances + 1, "
        "first_instance_id = COALESCE(first_instance_id, (SELECT id FROM ins)) "
        "WHERE id = (SELECT series_id FROM ins)), "
        "s2 AS (UPDATE studies SET number_of_instances = number_of_instances + 1, "
        "last_instance_at = :now, first_instance_id = COALESCE(first_instance_id, "
        "(SELECT id FROM ins)) WHERE id = (SELECT study_id FROM ins)) "
        "SELECT ins.id, ins.study_id, st.status FROM ins, st"
    ),
    "reopen_study": (
        "UPDATE studies SET status = 'receiving', completed_at = NULL WHERE id = :id"
    ),
}
_NAMED = re.compile(r":(\w+)")


@lru_cache(maxsize=64)
def _statement(name: str, paramstyle: str) -> str:
    """The hot-path SQL in the driver's own parameter style (sqlite3 ``:name``, psycopg
    ``%(name)s``): executed with ``exec_driver_sql``, it skips SQLAlchemy's statement
    compilation, which costs more than the statements themselves at hundreds of images/s."""
    sql = _SQL[name]
    return _NAMED.sub(r"%(\1)s", sql) if paramstyle == "pyformat" else sql


def _run(session: Session, name: str, **params: Any) -> CursorResult[Any]:
    connection = session.connection()
    return connection.exec_driver_sql(_statement(name, connection.dialect.paramstyle), params)


def _first(session: Session, name: str, **params: Any) -> tuple[Any, ...] | None:
    row = _run(session, name, **params).first()
    return None if row is None else tuple(row)


def _one(session: Session, name: str, **params: Any) -> tuple[Any, ...]:
    return tuple(_run(session, name, **params).one())


def _when(now: dt.datetime, session: Session) -> object:
    """An instant as UtcDateTime stores it: UTC; on SQLite the text SQLAlchemy writes, so
    that comparisons and ordering of stored instants stay textual and right."""
    now = now.astimezone(dt.UTC)
    if session.get_bind().dialect.name == "sqlite":
        return now.strftime("%Y-%m-%d %H:%M:%S.%f")
    return now


def find_instance(session: Session, sop_instance_uid: str) -> StoredInstance | None:
    row = _first(session, "find_instance", uid=sop_instance_uid)
    if row is None:
        return None
    return StoredInstance(id=row[0], study_id=row[1], blob_key=row[2], size=row[3])


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
) -> tuple[int, bool]:
    """Index a newly stored instance; return its id and whether its study is new.

    The caller checked that the instance is new.
    """
    when = _when(now, session)
    instance_values = {
        "uid": header.sop_instance_uid, "sop_class_uid": header.sop_class_uid,
        "transfer_syntax_uid": header.transfer_syntax_uid,
        "instance_number": header.instance_number, "rows": header.rows,
        "columns": header.columns, "number_of_frames": header.number_of_frames,
        "blob_key": blob_key, "size": size, "now": when, "origin": str(origin),
        "source_ae_title": source_ae_title, "metadata_json": header.metadata_json,
    }
    if session.get_bind().dialect.name == "postgresql":
        known = _first(session, "add_to_known_series", study_uid=header.study_instance_uid,
                       series_uid=header.series_instance_uid, **instance_values)
        if known is not None:
            instance_id, study_id, status = int(known[0]), int(known[1]), str(known[2])
            if status == StudyStatus.COMPLETE:
                _reopen(session, study_id=study_id, now=now, stable_age=stable_age)
            return instance_id, False
    study_row = _first(session, "find_study", uid=header.study_instance_uid)
    created = study_row is None
    if study_row is None:
        _run(session, "insert_study", uid=header.study_instance_uid, site_id=site_id,
             patient_id=header.patient_id, patient_name=header.patient_name,
             patient_birth_date=header.patient_birth_date, patient_sex=header.patient_sex,
             study_date=header.study_date, study_time=header.study_time,
             accession_number=header.accession_number, study_id=header.study_id,
             study_description=header.study_description,
             referring_physician_name=header.referring_physician_name, now=when)
        study_row = _one(session, "find_study", uid=header.study_instance_uid)
    study_id, previous_status = int(study_row[0]), str(study_row[1])

    series_row = _first(session, "find_series", uid=header.series_instance_uid)
    new_series = series_row is None
    if series_row is None:
        _run(session, "insert_series", study_id=study_id, uid=header.series_instance_uid,
             modality=header.modality, series_number=header.series_number,
             series_description=header.series_description, series_date=header.series_date,
             series_time=header.series_time, body_part_examined=header.body_part_examined)
        series_row = _one(session, "find_series", uid=header.series_instance_uid)
    series_id = int(series_row[0])

    instance_id = int(_run(
        session, "insert_instance", study_id=study_id, series_id=series_id, **instance_values
    ).scalar_one())
    _run(session, "count_series", id=series_id, instance_id=instance_id)
    _run(session, "count_study", id=study_id, instance_id=instance_id, now=when)
    if new_series:
        modalities = sorted(
            {str(r[0]) for r in _run(session, "study_modalities", id=study_id) if r[0]}
        )
        _run(session, "new_series_of_study", id=study_id, modalities="\\".join(modalities))
    if previous_status == StudyStatus.COMPLETE:
        _reopen(session, study_id=study_id, now=now, stable_age=stable_age)
    elif created:
        _schedule_check(session, study_id=study_id, now=now, stable_age=stable_age)
    return instance_id, created


def _reopen(session: Session, *, study_id: int, now: dt.datetime, stable_age: float) -> None:
    """More images after completion: the study is receiving again and will complete anew."""
    _run(session, "reopen_study", id=study_id)
    _schedule_check(session, study_id=study_id, now=now, stable_age=stable_age)


def _schedule_check(session: Session, *, study_id: int, now: dt.datetime,
                    stable_age: float) -> None:
    """One stability check per arrival period; it reschedules itself (check_stable)."""
    jobs.enqueue(
        session,
        kind=CHECK_STABLE,
        payload={"study_id": study_id, "stable_age": stable_age},
        now=now,
        run_at=now + dt.timedelta(seconds=stable_age),
    )


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
    assert isinstance(study_id, int)
    assert isinstance(stable_age, (int, float))
    check_stable(ctx.session, study_id=study_id, stable_age=float(stable_age), now=ctx.clock.now())
