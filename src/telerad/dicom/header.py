"""Reading an instance once at ingest: validate it, pull the indexed attributes, and compute its
DICOM JSON metadata (PS3.18 §F.2) so that WADO-RS metadata is never computed per request.

Strict where it matters to an archive (a whole file, the four UIDs every instance needs,
consistent meta information), tolerant elsewhere: odd values of other attributes are kept
as they are, never "fixed".
"""

from __future__ import annotations

import io
import json
import logging
import mmap
from dataclasses import dataclass
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

from telerad.dicom.dicom_json import to_json
from telerad.dicom.part10 import WalkedDataset, dataset_offset, walk, walk_meta
from telerad.errors import InvalidDicom, UidMismatch

LOGGER = logging.getLogger(__name__)

#: Binary values above this size are given as a BulkDataURI rather than inline (bytes).
BULK_DATA_THRESHOLD = 1024
#: Placeholder for the DICOMweb base URL in stored metadata, replaced when served.
BASE_URL_TOKEN = "@@TELERAD_BASE@@"  # noqa: S105 - not a secret
_DEFER_SIZE = 64 * 1024
# SOPClassUID, SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID
_UID_TAGS = frozenset({0x00080016, 0x00080018, 0x0020000D, 0x0020000E})


@dataclass(frozen=True, kw_only=True)
class InstanceHeader:
    """The attributes of one instance that the archive indexes, plus its metadata."""

    transfer_syntax_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str
    patient_name: str
    patient_birth_date: str
    patient_sex: str
    study_date: str
    study_time: str
    accession_number: str
    study_id: str
    study_description: str
    referring_physician_name: str
    modality: str
    series_number: int | None
    series_description: str
    series_date: str
    series_time: str
    body_part_examined: str
    instance_number: int | None
    rows: int | None
    columns: int | None
    number_of_frames: int | None
    #: DICOM JSON of the whole instance, bulk data as URIs under BASE_URL_TOKEN.
    metadata_json: str


def _value(js: dict[str, Any], tag: str) -> Any:
    element = js.get(tag)
    if not element:
        return None
    values = element.get("Value")
    return values[0] if values else None


def _text(js: dict[str, Any], tag: str, limit: int = 64) -> str:
    element = js.get(tag)
    if not element or not element.get("Value"):
        return ""
    parts = []
    for value in element["Value"]:
        # PN: the alphabetic group is what is indexed
        text = value.get("Alphabetic", "") if isinstance(value, dict) else value
        parts.append("" if text is None else str(text))
    return "\\".join(parts)[: limit * 4]


def _int(js: dict[str, Any], tag: str) -> int | None:
    value = _value(js, tag)
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _uid(js: dict[str, Any], tag: str, keyword: str) -> str:
    value = _value(js, tag)
    if not value:
        raise InvalidDicom(f"{keyword} is missing")
    uid = UID(str(value).strip().rstrip("\x00"))
    if not uid.is_valid:
        raise InvalidDicom(f"{keyword} is not a valid UID")
    return str(uid)


def _bulk_uri(study: str, series: str, instance: str, tag: int) -> str:
    return (
        f"{BASE_URL_TOKEN}/studies/{study}/series/{series}/instances/{instance}"
        f"/bulkdata/{tag:08X}"
    )


def _meta(data: bytes | mmap.mmap, offset: int) -> dict[str, str]:
    """The text values of the File Meta Information group (always Explicit VR LE)."""
    walked = walk_meta(data, offset)
    return {
        f"{e.tag:08X}": data[e.offset : e.offset + e.length].decode("ascii", "replace")
        .strip(" \x00")
        for e in walked
        if e.vr in (b"UI", b"AE", b"SH")
    }


_PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})


def _check_pixel_data(walked: WalkedDataset, js: dict[str, Any],
                      transfer_syntax_uid: str) -> None:
    """A file cut at an element boundary parses as a shorter data set; for images the
    missing or short pixel data gives it away (PS3.3 C.7.6.3: Rows x Columns x Samples per
    Pixel x Bits Allocated x Number of Frames)."""
    pixel = next((e for e in walked.elements if e.tag in _PIXEL_DATA_TAGS), None)
    if pixel is None:
        # Rows without pixel data: the Image Pixel module was cut off. (Header-only objects,
        # such as test fixtures of image classes with no Rows either, are let through.)
        if "00280010" in js:
            raise InvalidDicom("an image without pixel data: the file is truncated")
        return
    if UID(transfer_syntax_uid).is_compressed or pixel.length == 0xFFFFFFFF:
        return
    rows, columns = _int(js, "00280010"), _int(js, "00280011")
    bits, samples = _int(js, "00280100"), _int(js, "00280002") or 1
    frames = _int(js, "00280008") or 1
    if _text(js, "00280004") == "YBR_FULL_422":  # two chroma samples shared by two pixels
        samples = 2
    if not (rows and columns and bits) or pixel.tag != 0x7FE00010:
        return
    expected = (rows * columns * samples * frames * bits + 7) // 8
    if pixel.length < expected:
        raise InvalidDicom(
            f"pixel data holds {pixel.length} bytes where {expected} are needed: truncated"
        )


def read_instance(fp: BinaryIO, *, size: int | None = None) -> InstanceHeader:
    """Validate a Part-10 instance and extract its header and DICOM JSON metadata.

    ``fp`` is a seekable file (or mmap) holding exactly one Part-10 file.
    """
    # A staged file is an mmap: walked in place, the pixel data is never copied into memory.
    data: bytes | mmap.mmap
    if isinstance(fp, mmap.mmap):
        data = fp
    else:
        fp.seek(0)
        data = fp.read()
    offset = dataset_offset(data)
    meta = _meta(data, offset)
    ts = meta.get("00020010", "")
    if not ts:
        raise InvalidDicom("File Meta Information has no TransferSyntaxUID")
    walked = walk(data, offset, ts)
    parsed: list[Dataset] = []

    def fallback() -> Dataset:
        if not parsed:
            try:
                parsed.append(dcmread(io.BytesIO(data), defer_size=_DEFER_SIZE))
            except Exception as exc:
                raise InvalidDicom(f"cannot parse the dataset: {type(exc).__name__}") from exc
        return parsed[0]

    # The UIDs first (they name the bulk data URIs), then the whole header.
    uids_only = to_json(
        WalkedDataset(
            data=walked.data, elements=[e for e in walked.elements if e.tag in _UID_TAGS],
            implicit=walked.implicit, little=walked.little,
        ),
        bulk_data_threshold=BULK_DATA_THRESHOLD, bulk_uri=lambda tag: "", fallback=fallback,
    )
    sop_class_uid = _uid(uids_only, "00080016", "SOPClassUID")
    sop_instance_uid = _uid(uids_only, "00080018", "SOPInstanceUID")
    study = _uid(uids_only, "0020000D", "StudyInstanceUID")
    series = _uid(uids_only, "0020000E", "SeriesInstanceUID")
    media_uid = meta.get("00020003", "")
    if media_uid and media_uid != sop_instance_uid:
        raise UidMismatch("MediaStorageSOPInstanceUID differs from SOPInstanceUID")
    try:
        js = to_json(
            walked,
            bulk_data_threshold=BULK_DATA_THRESHOLD,
            bulk_uri=lambda tag: _bulk_uri(study, series, sop_instance_uid, tag),
            fallback=fallback,
        )
        json_text = json.dumps(js, separators=(",", ":"), ensure_ascii=False)
    except InvalidDicom:
        raise
    except Exception as exc:
        raise InvalidDicom(
            f"cannot convert the header to DICOM JSON: {type(exc).__name__}"
        ) from exc
    _check_pixel_data(walked, js, ts)
    return InstanceHeader(
        transfer_syntax_uid=ts,
        sop_class_uid=sop_class_uid,
        sop_instance_uid=sop_instance_uid,
        study_instance_uid=study,
        series_instance_uid=series,
        patient_id=_text(js, "00100020"),
        patient_name=_text(js, "00100010"),
        patient_birth_date=_text(js, "00100030", 2),
        patient_sex=_text(js, "00100040", 4),
        study_date=_text(js, "00080020", 2),
        study_time=_text(js, "00080030", 4),
        accession_number=_text(js, "00080050", 4),
        study_id=_text(js, "00200010", 4),
        study_description=_text(js, "00081030"),
        referring_physician_name=_text(js, "00080090"),
        modality=_text(js, "00080060", 4),
        series_number=_int(js, "00200011"),
        series_description=_text(js, "0008103E"),
        series_date=_text(js, "00080021", 2),
        series_time=_text(js, "00080031", 4),
        body_part_examined=_text(js, "00180015", 4),
        instance_number=_int(js, "00200013"),
        rows=_int(js, "00280010"),
        columns=_int(js, "00280011"),
        number_of_frames=_int(js, "00280008"),
        metadata_json=json_text,
    )


def read_instance_bytes(data: bytes) -> InstanceHeader:
    """:func:`read_instance` for bytes already in memory."""
    return read_instance(io.BytesIO(data), size=len(data))
