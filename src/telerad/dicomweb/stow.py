"""STOW-RS (PS3.18 §10.5): ``multipart/related; type="application/dicom"`` into the one intake.

The body is streamed (never held in memory) through the incremental parser, each part into
a staged blob. Only once the whole body has arrived, within the size limit and with its
closing boundary, are the parts ingested, one by one, by :meth:`Runtime.ingest` in the
threadpool: an oversized, truncated or malformed request stores nothing at all.

Each part succeeds or fails on its own (PS3.18 §10.5.3): stored and already stored parts
are referenced, refused parts listed with the DIMSE status of their error as Failure Reason;
the HTTP status says whether all (200), some (202) or none (409) were stored.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydicom import dcmread
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from telerad.archive.blobstore import BlobStore, StagedBlob
from telerad.archive.models import Origin
from telerad.audit.service import Action
from telerad.auth.service import Actor, Permission
from telerad.dicom.header import BASE_URL_TOKEN
from telerad.dicomweb.common import audit, dicom_json
from telerad.dicomweb.media import DICOM, MULTIPART_RELATED, parse_media_type
from telerad.dicomweb.multipart import MultipartParser, PartData, PartStart
from telerad.errors import (
    Forbidden,
    InstanceConflict,
    InvalidInput,
    MultipartError,
    StorageFailure,
    TeleradError,
    TooLarge,
    UnsupportedMediaType,
)
from telerad.httpauth import current_actor, runtime_of
from telerad.runtime import Runtime
from telerad.workflow.exams import intake

LOGGER = logging.getLogger(__name__)
router = APIRouter()
CurrentActor = Annotated[Actor, Depends(current_actor)]

_REFERENCED_SOP_SEQUENCE = "00081199"
_FAILED_SOP_SEQUENCE = "00081198"
_FAILURE_REASON = "00081197"
_REFERENCED_SOP_CLASS_UID = "00081150"
_REFERENCED_SOP_INSTANCE_UID = "00081155"
_RETRIEVE_URL = "00081190"


@dataclass
class _Part:
    """One received part, staged and not yet ingested."""

    number: int
    headers: dict[str, str]
    staged: StagedBlob
    consumed: bool = False


@dataclass(frozen=True, kw_only=True)
class _Uids:
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None


@dataclass(kw_only=True)
class _Result:
    referenced: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    studies: set[str] = field(default_factory=set)
    messages: list[str] = field(default_factory=list)


def _boundary(content_type: str | None) -> str:
    """The boundary of a STOW-RS body; 415 for a media type this service does not take."""
    expected = f'{MULTIPART_RELATED}; type="{DICOM}"'
    if not content_type:
        raise UnsupportedMediaType(f"STOW-RS needs Content-Type: {expected}")
    media_type, params = parse_media_type(content_type)
    if media_type != MULTIPART_RELATED:
        raise UnsupportedMediaType(f"{media_type} is not accepted; send {expected}")
    part_type = params.get("type", DICOM).lower()
    if part_type != DICOM:
        # PS3.18 §10.5.1: metadata and bulk data parts (dicom+json/xml) are not supported.
        raise UnsupportedMediaType(f"parts of type {part_type} are not accepted; send {expected}")
    boundary = params.get("boundary")
    if not boundary:
        raise MultipartError("the multipart Content-Type has no boundary parameter")
    return boundary


async def _receive(request: Request, store: BlobStore, boundary: str, limit: int
                   ) -> list[_Part]:
    """Stream the body into staged blobs, one per part; nothing is ingested here."""
    parser = MultipartParser(boundary)
    parts: list[_Part] = []
    current: _Part | None = None
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise TooLarge(f"request body above the limit of {limit} bytes")
            for event in parser.feed(chunk):
                if isinstance(event, PartStart):
                    current = _Part(number=len(parts) + 1, headers=dict(event.headers),
                                    staged=store.stage())
                    parts.append(current)
                elif isinstance(event, PartData):
                    assert current is not None
                    # A local append of at most one chunk: cheap enough for the event loop.
                    current.staged.write(event.data)
                else:
                    current = None
        parser.close()
        if not parts:
            raise MultipartError("the multipart body holds no part")
    except ClientDisconnect as exc:
        _discard(parts)
        raise InvalidInput("the client disconnected before the end of the body") from exc
    except BaseException:
        _discard(parts)
        raise
    return parts


def _discard(parts: list[_Part]) -> None:
    for part in parts:
        if not part.consumed:
            part.consumed = True
            part.staged.discard()


#: Enough of a part to find its UIDs again if the intake refuses it (and discards it).
_HEAD_BYTES = 64 * 1024


def _head(staged: StagedBlob) -> bytes:
    view = staged.view()
    try:
        return view.read(_HEAD_BYTES)
    finally:
        view.close()


def _peek(head: bytes) -> _Uids:
    """Best-effort UIDs of a refused part, read leniently from its first bytes, to name it
    in the FailedSOPSequence; parsed only for refused parts (the intake parses the rest)."""
    try:
        ds = dcmread(io.BytesIO(head), force=True, stop_before_pixels=True,
                     specific_tags=["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"])

        def uid(keyword: str) -> str | None:
            value = str(ds.get(keyword, "") or "").strip().rstrip("\x00")
            return value if value and len(value) <= 64 and set(value) <= set("0123456789.") \
                else None

        return _Uids(sop_class_uid=uid("SOPClassUID"), sop_instance_uid=uid("SOPInstanceUID"),
                     study_instance_uid=uid("StudyInstanceUID"))
    except Exception:  # unreadable: the intake said why
        return _Uids()


def _ingest(runtime: Runtime, part: _Part, study: str | None, site_id: int | None
            ) -> tuple[_Uids, intake.Receipt | TeleradError]:
    """Ingest one part (in the threadpool); a refused part returns its error."""
    part.consumed = True
    staged = part.staged
    media_type = parse_media_type(part.headers.get("content-type", DICOM))[0]
    if media_type != DICOM:
        staged.discard()
        return _Uids(), InvalidInput(f"part {part.number} is {media_type}, not {DICOM}")
    head = _head(staged)  # the intake discards a refused part: keep what names it
    try:
        # PS3.18 §10.5.1: an instance of another study than the target resource is refused
        # (UidMismatch, A900H) before it reaches the index.
        receipt = runtime.ingest(
            staged, sender=intake.Sender(origin=Origin.STOW, site_id=site_id),
            expected=intake.Expected(study_instance_uid=study),
        )
    except TeleradError as exc:
        return _peek(head), exc
    except Exception:
        LOGGER.exception("STOW-RS part %d: unexpected error while storing", part.number)
        return _peek(head), StorageFailure("internal error while storing")
    uids = _Uids(sop_class_uid=receipt.sop_class_uid, sop_instance_uid=receipt.sop_instance_uid,
                 study_instance_uid=receipt.study_instance_uid)
    if receipt.outcome == intake.Outcome.CONFLICT:
        return uids, InstanceConflict(
            f"part {part.number}: SOP Instance {receipt.sop_instance_uid} is already stored "
            "with other content; the first copy is kept"
        )
    return uids, receipt


def _ui(value: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]}


def _record(result: _Result, part: _Part, uids: _Uids, outcome: intake.Receipt | TeleradError
            ) -> None:
    if isinstance(outcome, intake.Receipt):
        url = (f"{BASE_URL_TOKEN}/studies/{outcome.study_instance_uid}/series/"
               f"{outcome.series_instance_uid}/instances/{outcome.sop_instance_uid}")
        result.referenced.append({
            _REFERENCED_SOP_CLASS_UID: _ui(outcome.sop_class_uid),
            _REFERENCED_SOP_INSTANCE_UID: _ui(outcome.sop_instance_uid),
            _RETRIEVE_URL: {"vr": "UR", "Value": [url]},
        })
        result.studies.add(outcome.study_instance_uid)
        return
    item: dict[str, Any] = {}
    if uids.sop_class_uid:
        item[_REFERENCED_SOP_CLASS_UID] = _ui(uids.sop_class_uid)
    if uids.sop_instance_uid:
        item[_REFERENCED_SOP_INSTANCE_UID] = _ui(uids.sop_instance_uid)
    # PS3.18 §10.5.3: the Failure Reason is the DIMSE status of the failure (PS3.4 B.2.3).
    item[_FAILURE_REASON] = {"vr": "US", "Value": [outcome.dimse_status]}
    result.failed.append(item)
    message = outcome.message if outcome.message.startswith("part ") else (
        f"part {part.number}: {outcome.message}")
    result.messages.append(f"{message} ({outcome.code}, {outcome.dimse_status:04X}H)")
    LOGGER.warning("STOW-RS part %d refused: %s %04X (SOP Instance %s)", part.number,
                   outcome.code, outcome.dimse_status, uids.sop_instance_uid or "unknown")


def _site_of(actor: Actor) -> int | None:
    """The site instances sent by ``actor`` belong to: a person's one site; none for a
    service account (archive-wide)."""
    sites = actor.scope.site_ids
    if sites is None:
        return None
    if len(sites) != 1:
        raise Forbidden("an account bound to several sites (or none) cannot tell which site "
                        "these images come from: send them over DICOM from the site's device")
    return next(iter(sites))


async def _store(request: Request, actor: Actor, study: str | None) -> Response:
    actor.scope.require(Permission.ARCHIVE_WRITE)
    site_id = _site_of(actor)
    runtime = runtime_of(request)
    boundary = _boundary(request.headers.get("content-type"))
    limit = runtime.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body of {declared} bytes is above the limit of {limit}")
    parts = await _receive(request, runtime.store, boundary, limit)
    result = _Result()
    try:
        for part in parts:
            uids, outcome = await run_in_threadpool(_ingest, runtime, part, study, site_id)
            _record(result, part, uids, outcome)
    finally:
        _discard(parts)  # parts left by a cancelled request
    LOGGER.info("STOW-RS: %d parts, %d referenced, %d failed", len(parts),
                len(result.referenced), len(result.failed))
    # The intake records each new study under the STOW origin; this names the actor.
    await run_in_threadpool(
        audit, request, actor, Action.STORE, study_instance_uid=study or "",
        outcome="success" if not result.failed else "refused" if not result.referenced
        else "partial",
        studies=sorted(result.studies), referenced=len(result.referenced),
        failed=len(result.failed),
    )
    return _response(request, result, study)


def _response(request: Request, result: _Result, study: str | None) -> Response:
    body: dict[str, Any] = {}
    target = study or (next(iter(result.studies)) if len(result.studies) == 1 else None)
    if target is not None:
        body[_RETRIEVE_URL] = {"vr": "UR", "Value": [f"{BASE_URL_TOKEN}/studies/{target}"]}
    if result.failed:
        body[_FAILED_SOP_SEQUENCE] = {"vr": "SQ", "Value": result.failed}
    if result.referenced:
        body[_REFERENCED_SOP_SEQUENCE] = {"vr": "SQ", "Value": result.referenced}
    if not result.failed:
        status = 200
    elif result.referenced:
        status = 202
    else:
        status = 409
    headers = None
    if result.messages:
        # The standard response has no room for why a part failed: a Warning says it
        # (RFC 7234 §5.5.7, 299 "miscellaneous persistent warning"); no patient data.
        text = "; ".join(result.messages)
        text = text if len(text) <= 2000 else text[:1997] + "..."
        text = text.encode("latin-1", "replace").decode("latin-1").replace('"', "'")
        headers = {"Warning": f'299 {request.url.hostname or "telerad"} "{text}"'}
    return dicom_json(json.dumps(body, separators=(",", ":")), request, status_code=status,
                      headers=headers)


@router.post("/studies")
async def store_instances(request: Request, *, actor: CurrentActor) -> Response:
    """Store instances of any studies (PS3.18 §10.5)."""
    return await _store(request, actor, None)


@router.post("/studies/{study}")
async def store_study_instances(request: Request, *, study: str, actor: CurrentActor) -> Response:
    """Store instances of one study; parts of another study fail with A900H."""
    return await _store(request, actor, study)
