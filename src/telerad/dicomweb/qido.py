"""QIDO-RS (PS3.18 §10.6): search for studies, series and instances.

Each route parses its query (:mod:`telerad.archive.qido`), runs one scoped SQL statement in
a read-only transaction, and answers ``application/dicom+json``: an array of matches,
``[]`` with 200 when nothing matches (PS3.18 §8.3.4.5 allows 200 or 204; an empty array
keeps every client on one code path). Results are ordered by the index's ids, so that
``limit``/``offset`` pages never overlap.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from telerad.archive import qido
from telerad.archive.qido import Level
from telerad.audit.service import Action
from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.dicomweb.common import audit, dicom_json
from telerad.dicomweb.media import negotiate_json
from telerad.dicomweb.qido_codec import parse_query, to_dicom_json
from telerad.httpauth import current_actor, runtime_of

router = APIRouter()
CurrentActor = Annotated[Actor, Depends(current_actor)]


def _search(
    request: Request, actor: Actor, level: Level, *, within: Level | None = None,
    study: str | None = None, series: str | None = None,
) -> Response:
    actor.scope.require(Permission.ARCHIVE_READ)
    negotiate_json(request.headers.get("accept"))
    query = parse_query(level, request.query_params.multi_items(), within=within)
    with transaction(runtime_of(request).sessions, readonly=True) as session:
        result = qido.search(session, scope=actor.scope, query=query,
                             study_instance_uid=study, series_instance_uid=series)
    keys = sorted({key for key, _ in request.query_params.multi_items()})
    audit(request, actor, Action.SEARCH, study_instance_uid=study or "",
          series_instance_uid=series, keys=keys, results=len(result.matches))
    headers = None
    if result.truncated:
        # PS3.18 §8.3.4.4: fewer results than matched, say so and let the client page.
        headers = {"Warning": f'299 {request.url.hostname or "telerad"} "There are additional '
                              f'results that can be requested (limit {query.limit})"'}
    return dicom_json(to_dicom_json(result), request, headers=headers)


@router.get("/studies")
def search_for_studies(request: Request, *, actor: CurrentActor) -> Response:
    """Studies matching the query (PS3.18 §10.6.1, Table 10.6.3-3 attributes)."""
    return _search(request, actor, Level.STUDY)


@router.get("/series")
def search_for_series(request: Request, *, actor: CurrentActor) -> Response:
    """Series of any study (Table 10.6.3-3 and -4 attributes)."""
    return _search(request, actor, Level.SERIES)


@router.get("/studies/{study}/series")
def search_for_study_series(request: Request, *, study: str, actor: CurrentActor) -> Response:
    """Series of one study (Table 10.6.3-4 attributes)."""
    return _search(request, actor, Level.SERIES, within=Level.STUDY, study=study)


@router.get("/instances")
def search_for_instances(request: Request, *, actor: CurrentActor) -> Response:
    """Instances of any study (Table 10.6.3-3, -4 and -5 attributes)."""
    return _search(request, actor, Level.INSTANCE)


@router.get("/studies/{study}/instances")
def search_for_study_instances(request: Request, *, study: str, actor: CurrentActor) -> Response:
    """Instances of one study (Table 10.6.3-4 and -5 attributes)."""
    return _search(request, actor, Level.INSTANCE, within=Level.STUDY, study=study)


@router.get("/studies/{study}/series/{series}/instances")
def search_for_series_instances(
    request: Request, *, study: str, series: str, actor: CurrentActor
) -> Response:
    """Instances of one series (Table 10.6.3-5 attributes)."""
    return _search(request, actor, Level.INSTANCE, within=Level.SERIES, study=study,
                   series=series)
