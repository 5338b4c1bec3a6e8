"""Reading the archive's index. Every function takes the actor's Scope and applies it here.

Scope in one place: :func:`scoped_studies` is the only way a query selects studies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from telerad.archive.models import Instance, Series, Study
from telerad.auth.service import Scope
from telerad.errors import InvalidQuery, NotFound


def scoped_studies(scope: Scope) -> Select[Study]:
    """``SELECT studies`` limited to what ``scope`` may see."""
    query = select(Study)
    if scope.site_ids is not None:
        query = query.where(Study.site_id.in_(scope.site_ids))
    return query


def study_is_visible(scope: Scope, study: Study) -> bool:
    return scope.site_ids is None or study.site_id in scope.site_ids


@dataclass(frozen=True, kw_only=True)
class StudySummary:
    study_instance_uid: str
    site_id: int | None
    accession_number: str
    study_date: str
    modalities_in_study: str
    number_of_series: int
    number_of_instances: int
    first_instance_at: dt.datetime
    last_instance_at: dt.datetime
    status: str
    completed_at: dt.datetime | None


def _summary(study: Study) -> StudySummary:
    return StudySummary(
        study_instance_uid=study.study_instance_uid,
        site_id=study.site_id,
        accession_number=study.accession_number,
        study_date=study.study_date,
        modalities_in_study=study.modalities_in_study,
        number_of_series=study.number_of_series,
        number_of_instances=study.number_of_instances,
        first_instance_at=study.first_instance_at,
        last_instance_at=study.last_instance_at,
        status=study.status,
        completed_at=study.completed_at,
    )


def list_studies(
    session: Session, *, scope: Scope, status: str | None, limit: int, offset: int
) -> list[StudySummary]:
    query = scoped_studies(scope)
    if status is not None:
        if status not in ("receiving", "complete"):
            raise InvalidQuery("status must be 'receiving' or 'complete'")
        query = query.where(Study.status == status)
    query = query.order_by(Study.last_instance_at.desc(), Study.id.desc())
    query = query.limit(limit).offset(offset)
    return [_summary(s) for s in session.scalars(query)]


def find_study(session: Session, *, scope: Scope, study_instance_uid: str) -> Study:
    """The study, if it exists and ``scope`` may see it (else NotFound: no existence leak)."""
    study = session.scalar(
        scoped_studies(scope).where(Study.study_instance_uid == study_instance_uid)
    )
    if study is None:
        raise NotFound("study not found")
    return study


def get_study(session: Session, *, scope: Scope, study_instance_uid: str) -> StudySummary:
    return _summary(find_study(session, scope=scope, study_instance_uid=study_instance_uid))


@dataclass(frozen=True, kw_only=True)
class InstanceLocation:
    """What WADO-RS needs to serve one instance."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    blob_key: str
    size: int
    number_of_frames: int | None


def _instances_of(
    session: Session, columns: tuple[Any, ...], *, scope: Scope, study_instance_uid: str,
    series_instance_uid: str | None, sop_instance_uid: str | None,
) -> Sequence[Row[Any]]:
    """``columns`` of the instances of a visible study (or of one series, or one instance),
    in series then instance order; NotFound when nothing visible matches."""
    study = find_study(session, scope=scope, study_instance_uid=study_instance_uid)
    query = (
        select(*columns)
        .join(Series, Series.id == Instance.series_id)
        .where(Instance.study_id == study.id)
        .order_by(Series.series_number, Series.id, Instance.instance_number, Instance.id)
    )
    if series_instance_uid is not None:
        query = query.where(Series.series_instance_uid == series_instance_uid)
    if sop_instance_uid is not None:
        query = query.where(Instance.sop_instance_uid == sop_instance_uid)
    rows = session.execute(query).all()
    if not rows:
        raise NotFound("no such series or instance in this study")
    return rows


def instance_uids(session: Session, *, scope: Scope, study_instance_uid: str
                  ) -> list[tuple[str, str, str]]:
    """(SeriesInstanceUID, SOPInstanceUID, SOPClassUID) of every instance of a visible
    study, in order; empty when the archive holds none of it."""
    try:
        rows = _instances_of(
            session, (Series.series_instance_uid, Instance.sop_instance_uid,
                      Instance.sop_class_uid),
            scope=scope, study_instance_uid=study_instance_uid, series_instance_uid=None,
            sop_instance_uid=None)
    except NotFound:
        return []
    return [(str(row.series_instance_uid), str(row.sop_instance_uid), str(row.sop_class_uid))
            for row in rows]


def instance_locations(
    session: Session, *, scope: Scope, study_instance_uid: str,
    series_instance_uid: str | None = None, sop_instance_uid: str | None = None,
) -> list[InstanceLocation]:
    """Where the matching instances' bytes are, in series and instance order."""
    rows = _instances_of(
        session,
        (Series.series_instance_uid, Instance.sop_instance_uid, Instance.sop_class_uid,
         Instance.transfer_syntax_uid, Instance.blob_key, Instance.size,
         Instance.number_of_frames),
        scope=scope, study_instance_uid=study_instance_uid,
        series_instance_uid=series_instance_uid, sop_instance_uid=sop_instance_uid,
    )
    return [
        InstanceLocation(
            study_instance_uid=study_instance_uid,
            series_instance_uid=r.series_instance_uid,
            sop_instance_uid=r.sop_instance_uid,
            sop_class_uid=r.sop_class_uid,
            transfer_syntax_uid=r.transfer_syntax_uid,
            blob_key=r.blob_key,
            size=r.size,
            number_of_frames=r.number_of_frames,
        )
        for r in rows
    ]


def instance_metadata(
    session: Session, *, scope: Scope, study_instance_uid: str,
    series_instance_uid: str | None = None, sop_instance_uid: str | None = None,
) -> list[str]:
    """The stored DICOM JSON of each matching instance (computed at ingest), in order."""
    rows = _instances_of(
        session, (Instance.metadata_json,), scope=scope, study_instance_uid=study_instance_uid,
        series_instance_uid=series_instance_uid, sop_instance_uid=sop_instance_uid,
    )
    return [str(r[0]) for r in rows]


def scoped_select(scope: Scope, *columns: Any) -> Select[Any]:
    """``SELECT columns FROM studies`` limited to what ``scope`` may see.

    The caller joins series and instances to ``studies``; the scope stays the one of
    :func:`scoped_studies` (its WHERE clause is kept, only the selected columns change).
    """
    return scoped_studies(scope).with_only_columns(*columns, maintain_column_froms=True)
