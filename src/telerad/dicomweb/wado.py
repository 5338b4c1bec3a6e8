"""WADO-RS (PS3.18 §10.4): instances, metadata, bulk data, frames, rendered images.

Instances are the stored Part-10 files, streamed from the blob store a megabyte at a time
(a study is never held in memory) inside a ``multipart/related`` body whose length is known
in advance. Metadata is the DICOM JSON computed at ingest, joined. Frames and rendered
images read only the frame asked for (:class:`telerad.dicom.rendering.PixelSource`).

Every route is a ``def`` (run in the threadpool) that finds what it serves through the
actor's scope (:mod:`telerad.archive.queries`), then leaves the transaction before any
file is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, BinaryIO

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from telerad.archive import queries
from telerad.archive.blobstore import BlobStore, opened
from telerad.archive.queries import InstanceLocation
from telerad.audit.service import Action
from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.dicom.rendering import (
    THUMBNAIL_SIDE,
    PixelSource,
    Viewport,
    parse_viewport,
    parse_window,
)
from telerad.dicomweb import multipart
from telerad.dicomweb.common import audit, dicom_json
from telerad.dicomweb.media import (
    DICOM,
    OCTET_STREAM,
    negotiate_bulkdata,
    negotiate_frames,
    negotiate_instances,
    negotiate_json,
    negotiate_rendered,
    pixel_media_type,
)
from telerad.errors import InvalidDicom, InvalidQuery, NotAcceptable, NotFound
from telerad.httpauth import current_actor, runtime_of
from telerad.runtime import Runtime

router = APIRouter()
CurrentActor = Annotated[Actor, Depends(current_actor)]
CHUNK = 1024 * 1024
#: Byte-swap width of binary VRs, for values of big endian files (PS3.5 §7.3).
_SWAP = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_FRAME_LIST = re.compile(r"[1-9][0-9]{0,8}(,[1-9][0-9]{0,8})*")


def _locate(
    runtime: Runtime, actor: Actor, study: str, series: str | None = None,
    instance: str | None = None,
) -> list[InstanceLocation]:
    actor.scope.require(Permission.ARCHIVE_READ)
    with transaction(runtime.sessions, readonly=True) as session:
        return queries.instance_locations(
            session, scope=actor.scope, study_instance_uid=study,
            series_instance_uid=series, sop_instance_uid=instance,
        )


# -- instances --------------------------------------------------------------------------


def _stream_files(store: BlobStore, keys: list[str], heads: list[bytes], tail: bytes
                  ) -> Iterator[bytes]:
    """The parts' framing and files, in pieces of about CHUNK bytes.

    Small files are gathered into one piece: each piece crosses from the threadpool to
    the event loop, which costs more than reading a CT slice.
    """
    buffer = bytearray()
    for key, head in zip(keys, heads, strict=True):
        buffer += head
        with opened(store, key) as fp:
            while chunk := fp.read(CHUNK):
                buffer += chunk
                if len(buffer) >= CHUNK:
                    yield bytes(buffer)
                    buffer.clear()
    buffer += tail
    yield bytes(buffer)


def _retrieve(request: Request, actor: Actor, study: str, series: str | None = None,
              instance: str | None = None) -> Response:
    runtime = runtime_of(request)
    locations = _locate(runtime, actor, study, series, instance)
    choice = negotiate_instances(
        request.headers.get("accept"),
        stored={loc.transfer_syntax_uid for loc in locations},
        single=instance is not None,
    )
    audit(request, actor, Action.RETRIEVE, study_instance_uid=study, series_instance_uid=series,
          sop_instance_uid=instance, instances=len(locations))
    keys = [loc.blob_key for loc in locations]
    if not choice.multipart:
        loc = locations[0]
        return StreamingResponse(
            _stream_files(runtime.store, keys, [b""], b""),
            media_type=f"{DICOM}; transfer-syntax={loc.transfer_syntax_uid}",
            headers={"Content-Length": str(loc.size)},
        )
    boundary = multipart.new_boundary()
    heads = [
        multipart.part_head(
            boundary,
            {"Content-Type": f"{DICOM}; transfer-syntax={loc.transfer_syntax_uid}"},
            first=index == 0,
        )
        for index, loc in enumerate(locations)
    ]
    tail = multipart.closing(boundary)
    length = sum(len(h) for h in heads) + sum(loc.size for loc in locations) + len(tail)
    return StreamingResponse(
        _stream_files(runtime.store, keys, heads, tail),
        media_type=multipart.content_type(boundary, DICOM),
        headers={"Content-Length": str(length)},
    )


@router.get("/studies/{study}")
def retrieve_study(request: Request, *, study: str, actor: CurrentActor) -> Response:
    """Every instance of the study (PS3.18 §10.4.1, multipart/related application/dicom)."""
    return _retrieve(request, actor, study)


@router.get("/studies/{study}/series/{series}")
def retrieve_series(request: Request, *, study: str, series: str, actor: CurrentActor) -> Response:
    """Every instance of the series."""
    return _retrieve(request, actor, study, series)


@router.get("/studies/{study}/series/{series}/instances/{instance}")
def retrieve_instance(
    request: Request, *, study: str, series: str, instance: str, actor: CurrentActor
) -> Response:
    """One instance: its stored Part-10 file."""
    return _retrieve(request, actor, study, series, instance)


# -- metadata ---------------------------------------------------------------------------


def _metadata(request: Request, actor: Actor, study: str, series: str | None = None,
              instance: str | None = None) -> Response:
    actor.scope.require(Permission.ARCHIVE_READ)
    negotiate_json(request.headers.get("accept"))
    with transaction(runtime_of(request).sessions, readonly=True) as session:
        rows = queries.instance_metadata(
            session, scope=actor.scope, study_instance_uid=study,
            series_instance_uid=series, sop_instance_uid=instance,
        )
    audit(request, actor, Action.READ_METADATA, study_instance_uid=study,
          series_instance_uid=series, sop_instance_uid=instance, instances=len(rows))
    return dicom_json("[" + ",".join(rows) + "]", request)


@router.get("/studies/{study}/metadata")
def retrieve_study_metadata(request: Request, *, study: str, actor: CurrentActor) -> Response:
    """DICOM JSON of every instance of the study (PS3.18 §10.4.1, Annex F)."""
    return _metadata(request, actor, study)


@router.get("/studies/{study}/series/{series}/metadata")
def retrieve_series_metadata(
    request: Request, *, study: str, series: str, actor: CurrentActor
) -> Response:
    """DICOM JSON of every instance of the series."""
    return _metadata(request, actor, study, series)


@router.get("/studies/{study}/series/{series}/instances/{instance}/metadata")
def retrieve_instance_metadata(
    request: Request, *, study: str, series: str, instance: str, actor: CurrentActor
) -> Response:
    """DICOM JSON of one instance."""
    return _metadata(request, actor, study, series, instance)


# -- bulk data --------------------------------------------------------------------------


def _binary(tag: int, vr: str | None) -> bool:
    """Whether an element may be bulk data: a binary VR (PS3.18 §F.2.7), or, in Implicit VR,
    a dictionary VR that may be binary ("OB or OW", "US or OW") or unknown (private)."""
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return True
    return tag == 0x7FE00010 or vr in _BINARY_VRS or "O" in vr.split(" or ")[-1]


def _bulk_value(fp: BinaryIO, tag: int) -> tuple[list[bytes], str]:
    """The value of top-level element ``tag`` as little endian parts, and the part type.

    The raw value is read as stored (not through pydicom's conversion by VR: an Implicit VR
    element of ambiguous VR is bulk data too), from its offset in the file when deferred.
    """
    try:
        ds = dcmread(fp, defer_size=4096)
        ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
        if ts == DeflatedExplicitVRLittleEndian:  # deferred values of an inflated stream
            fp.seek(0)  # cannot be re-read: read it whole
            ds = dcmread(fp)
        raw = ds.get_item(tag, keep_deferred=True) if tag in ds else None
    except (InvalidDicomError, EOFError, ValueError, KeyError, OSError) as exc:
        raise InvalidDicom(f"stored file unreadable: {type(exc).__name__}") from exc
    if raw is None or not isinstance(raw, (RawDataElement, DataElement)) or not _binary(
            tag, raw.VR):
        raise NotFound(f"no bulk data ({tag:08X}) in this instance")
    undefined = (raw.length if isinstance(raw, RawDataElement)
                 else int(raw.is_undefined_length and 0xFFFFFFFF)) == 0xFFFFFFFF
    if undefined:
        if tag != 0x7FE00010:
            raise NotFound(f"({tag:08X}) is a sequence, not bulk data")
        # Encapsulated pixel data: one part per frame, in its compressed media type.
        source = PixelSource(fp)
        frames = [source.stored_frame(i) for i in range(source.number_of_frames)]
        return frames, f"{pixel_media_type(ts)}; transfer-syntax={ts}"
    if isinstance(raw, RawDataElement):
        if raw.value is None:  # deferred: read it from where it is in the file
            fp.seek(raw.value_tell)
            value = fp.read(raw.length)
        else:
            value = raw.value
    else:
        value = raw.value
    if not isinstance(value, (bytes, bytearray)) or not value:
        raise NotFound(f"no bulk data ({tag:08X}) in this instance")
    width = _SWAP.get(str(raw.VR), 0)
    if ts == ExplicitVRBigEndian and width and len(value) % width == 0:
        # PS3.18 §8.7.3: bulk data is sent in little endian byte order.
        value = np.frombuffer(value, dtype=f">u{width}").astype(f"<u{width}").tobytes()
    return [bytes(value)], OCTET_STREAM


@router.get("/studies/{study}/series/{series}/instances/{instance}/bulkdata/{tag}")
def retrieve_bulkdata(
    request: Request, *, study: str, series: str, instance: str, tag: str, actor: CurrentActor
) -> Response:
    """A bulk data value by the BulkDataURI of the metadata (PS3.18 §8.6, §10.4.1)."""
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", tag):
        raise NotFound("bulk data URIs end with an 8-digit hexadecimal tag")
    runtime = runtime_of(request)
    location = _locate(runtime, actor, study, series, instance)[0]
    choice = negotiate_bulkdata(request.headers.get("accept"))
    with opened(runtime.store, location.blob_key) as fp:
        values, part_type = _bulk_value(fp, int(tag, 16))
    audit(request, actor, Action.RETRIEVE, study_instance_uid=study, series_instance_uid=series,
          sop_instance_uid=instance, bulkdata=tag.upper())
    if not choice.multipart:
        if len(values) != 1:
            raise NotAcceptable("compressed pixel data is sent as multipart/related, one part "
                                "per frame")
        return Response(values[0], media_type=OCTET_STREAM)
    boundary = multipart.new_boundary()
    body = multipart.encode(boundary, [({"Content-Type": part_type}, v) for v in values])
    return Response(body, media_type=multipart.content_type(boundary, part_type.split(";")[0]))


# -- frames -----------------------------------------------------------------------------


def _frame_numbers(text: str) -> list[int]:
    if not _FRAME_LIST.fullmatch(text):
        raise InvalidQuery("frames must be a comma-separated list of frame numbers from 1")
    return [int(n) for n in text.split(",")]


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}")
def retrieve_frames(
    request: Request, *, study: str, series: str, instance: str, frames: str, actor: CurrentActor
) -> Response:
    """Frames, as stored or as uncompressed Explicit VR Little Endian (PS3.18 §10.4.1)."""
    numbers = _frame_numbers(frames)
    runtime = runtime_of(request)
    location = _locate(runtime, actor, study, series, instance)[0]
    choice = negotiate_frames(request.headers.get("accept"),
                              stored=location.transfer_syntax_uid)
    with opened(runtime.store, location.blob_key) as fp:
        source = PixelSource(fp)
        indices = [source.check(n) for n in numbers]
        data = [source.native_frame(i) if choice.decode else source.stored_frame(i)
                for i in indices]
    audit(request, actor, Action.RETRIEVE, study_instance_uid=study, series_instance_uid=series,
          sop_instance_uid=instance, frames=numbers)
    boundary = multipart.new_boundary()
    body = multipart.encode(
        boundary, [({"Content-Type": choice.part_content_type}, d) for d in data]
    )
    return Response(body, media_type=multipart.content_type(boundary, choice.part_type))


# -- rendered ---------------------------------------------------------------------------


def _render(request: Request, actor: Actor, location: InstanceLocation, number: int, *,
            default_viewport: Viewport | None = None) -> Response:
    runtime = runtime_of(request)
    media_type = negotiate_rendered(request.headers.get("accept"))
    params = request.query_params
    window = parse_window(params["window"]) if "window" in params else None
    viewport = parse_viewport(params["viewport"]) if "viewport" in params else default_viewport
    quality = 90
    if "quality" in params:
        text = params["quality"]
        if not text.isdigit() or not 1 <= int(text) <= 100:
            raise InvalidQuery("quality must be an integer from 1 to 100")
        quality = int(text)
    with opened(runtime.store, location.blob_key) as fp:
        source = PixelSource(fp)
        image = source.render(source.check(number), media_type=media_type, window=window,
                              viewport=viewport, quality=quality)
    audit(request, actor, Action.RETRIEVE, study_instance_uid=location.study_instance_uid,
          series_instance_uid=location.series_instance_uid,
          sop_instance_uid=location.sop_instance_uid, rendered=number)
    return Response(image, media_type=media_type)


@router.get("/studies/{study}/series/{series}/instances/{instance}/rendered")
def retrieve_rendered_instance(
    request: Request, *, study: str, series: str, instance: str, actor: CurrentActor
) -> Response:
    """The instance (its first frame) as a JPEG or PNG (PS3.18 §10.4.1, §8.3.5)."""
    runtime = runtime_of(request)
    location = _locate(runtime, actor, study, series, instance)[0]
    return _render(request, actor, location, 1)


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered")
def retrieve_rendered_frame(
    request: Request, *, study: str, series: str, instance: str, frame: str, actor: CurrentActor
) -> Response:
    """One frame as a JPEG or PNG."""
    numbers = _frame_numbers(frame)
    if len(numbers) != 1:
        raise InvalidQuery("a rendered frame is one frame number")
    runtime = runtime_of(request)
    location = _locate(runtime, actor, study, series, instance)[0]
    return _render(request, actor, location, numbers[0])


_THUMBNAIL = Viewport(width=THUMBNAIL_SIDE, height=THUMBNAIL_SIDE)


def _thumbnail(request: Request, actor: Actor, locations: list[InstanceLocation]) -> Response:
    """The first series' middle instance that has pixel data (a representative image)."""
    first_series = [loc for loc in locations
                    if loc.series_instance_uid == locations[0].series_instance_uid]
    middle = len(first_series) // 2
    candidates = first_series[middle:] + first_series[:middle] + locations[len(first_series):]
    for location in candidates[:8]:
        try:
            return _render(request, actor, location, 1, default_viewport=_THUMBNAIL)
        except NotFound:
            continue  # no pixel data (SR, PDF...): try another instance
    raise NotFound("no instance with pixel data to make a thumbnail from")


@router.get("/studies/{study}/thumbnail")
def retrieve_study_thumbnail(request: Request, *, study: str, actor: CurrentActor) -> Response:
    """A small rendered image of the study (PS3.18 §10.4.1, thumbnail resources)."""
    runtime = runtime_of(request)
    return _thumbnail(request, actor, _locate(runtime, actor, study))


@router.get("/studies/{study}/series/{series}/thumbnail")
def retrieve_series_thumbnail(
    request: Request, *, study: str, series: str, actor: CurrentActor
) -> Response:
    """A small rendered image of the series."""
    runtime = runtime_of(request)
    return _thumbnail(request, actor, _locate(runtime, actor, study, series))


@router.get("/studies/{study}/series/{series}/instances/{instance}/thumbnail")
def retrieve_instance_thumbnail(
    request: Request, *, study: str, series: str, instance: str, actor: CurrentActor
) -> Response:
    """A small rendered image of the instance."""
    runtime = runtime_of(request)
    location = _locate(runtime, actor, study, series, instance)[0]
    return _render(request, actor, location, 1, default_viewport=_THUMBNAIL)
