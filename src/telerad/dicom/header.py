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
from dataclasses import dataclass
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag
from pydicom.uid import UID

from telerad.dicom.part10 import check_complete, dataset_offset
from telerad.errors import InvalidDicom, UidMismatch

LOGGER = logging.getLogger(__name__)

#: Binary values above this size are given as a BulkDataURI rather than inline (bytes).
BULK_DATA_THRESHOLD = 1024
#: Placeholder for the DICOMweb base URL in stored metadata, replaced when served.
BASE_URL_TOKEN = "@@TELERAD_BASE@@"  # noqa: S105 - not a secret
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_DEFER_SIZE = 64 * 1024


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


def _text(ds: Dataset, keyword: str, limit: int = 64) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # a malformed optional value never rejects the instance
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and
                                            not isinstance(value, (str, bytes))):
        return "\\".join(str(v) for v in value)[:limit]
    return str(value)[: limit * 4]


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    except Exception:
        return None


def _uid(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if not value:
        raise InvalidDicom(f"{keyword} is missing")
    uid = UID(str(value).strip().rstrip("\x00"))
    if not uid.is_valid:
        raise InvalidDicom(f"{keyword} is not a valid UID")
    return str(uid)


def _bulk_uri(study: str, series: str, instance: str, tag: BaseTag) -> str:
    return (
        f"{BASE_URL_TOKEN}/studies/{study}/series/{series}/instances/{instance}"
        f"/bulkdata/{int(tag):08X}"
    )


def metadata(ds: Dataset, *, study: str, series: str, instance: str) -> dict[str, Any]:
    """DICOM JSON of ``ds`` (PS3.18 §F.2); large binary values become BulkDataURIs.

    Bulk values are not read: their raw element gives the length, so a deferred pixel
    data element stays on disk.
    """
    out: dict[str, Any] = {}
    for tag in ds.keys():  # noqa: SIM118 - keys() avoids converting every element
        if tag.group in (0x0002, 0xFFFE):  # meta information and delimiters: not metadata
            continue
        raw = ds.get_item(tag)
        vr = raw.VR
        length = raw.length if isinstance(raw, RawDataElement) else None
        key = f"{int(tag):08X}"
        if vr in _BINARY_VRS or int(tag) == 0x7FE00010:
            size = length if length is not None else len(ds[tag].value or b"")
            if size == 0:
                out[key] = {"vr": vr or "OB"}
                continue
            if size > BULK_DATA_THRESHOLD or size == 0xFFFFFFFF:
                out[key] = {"vr": vr or "OB", "BulkDataURI": _bulk_uri(study, series, instance, tag)}
                continue
        try:
            out[key] = ds[tag].to_json_dict(BULK_DATA_THRESHOLD, None)
        except Exception:  # tolerant reading: a value pydicom cannot convert is left out
            LOGGER.debug("element %s of instance %s not convertible to JSON", key, instance)
    return out


def read_instance(fp: BinaryIO, *, size: int | None = None) -> InstanceHeader:
    """Validate a Part-10 instance and extract its header.

    ``fp`` is a seekable file (or mmap) holding exactly one Part-10 file.
    """
    fp.seek(0)
    data = fp.read() if size is None or size <= 256 * 1024 * 1024 else None
    if data is not None:
        offset = dataset_offset(data)
    else:
        head = fp.read(64 * 1024)
        offset = dataset_offset(head)
    try:
        fp.seek(0)
        ds = dcmread(fp, defer_size=_DEFER_SIZE, force=False)
    except (InvalidDicomError, EOFError, ValueError, KeyError, OSError) as exc:
        raise InvalidDicom(f"cannot parse the dataset: {type(exc).__name__}") from exc
    except Exception as exc:
        raise InvalidDicom(f"cannot parse the dataset: {type(exc).__name__}") from exc
    meta = ds.file_meta
    ts = str(meta.get("TransferSyntaxUID", "")).strip().rstrip("\x00")
    if not ts:
        raise InvalidDicom("File Meta Information has no TransferSyntaxUID")
    if data is not None:
        check_complete(data, offset, ts)
    try:
        sop_class_uid = _uid(ds, "SOPClassUID")
        sop_instance_uid = _uid(ds, "SOPInstanceUID")
        study = _uid(ds, "StudyInstanceUID")
        series = _uid(ds, "SeriesInstanceUID")
    except InvalidDicom:
        raise
    except Exception as exc:
        raise InvalidDicom(f"cannot read the instance's UIDs: {type(exc).__name__}") from exc
    media_uid = str(meta.get("MediaStorageSOPInstanceUID", "")).strip().rstrip("\x00")
    if media_uid and media_uid != sop_instance_uid:
        raise UidMismatch("MediaStorageSOPInstanceUID differs from SOPInstanceUID")
    try:
        json_text = json.dumps(
            metadata(ds, study=study, series=series, instance=sop_instance_uid),
            separators=(",", ":"),
        )
    except Exception as exc:
        raise InvalidDicom(f"cannot convert the header to DICOM JSON: {type(exc).__name__}") from exc
    return InstanceHeader(
        transfer_syntax_uid=ts,
        sop_class_uid=sop_class_uid,
        sop_instance_uid=sop_instance_uid,
        study_instance_uid=study,
        series_instance_uid=series,
        patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName"),
        patient_birth_date=_text(ds, "PatientBirthDate", 8),
        patient_sex=_text(ds, "PatientSex", 16),
        study_date=_text(ds, "StudyDate", 8),
        study_time=_text(ds, "StudyTime", 16),
        accession_number=_text(ds, "AccessionNumber", 16),
        study_id=_text(ds, "StudyID", 16),
        study_description=_text(ds, "StudyDescription"),
        referring_physician_name=_text(ds, "ReferringPhysicianName"),
        modality=_text(ds, "Modality", 16),
        series_number=_int(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription"),
        series_date=_text(ds, "SeriesDate", 8),
        series_time=_text(ds, "SeriesTime", 16),
        body_part_examined=_text(ds, "BodyPartExamined", 16),
        instance_number=_int(ds, "InstanceNumber"),
        rows=_int(ds, "Rows"),
        columns=_int(ds, "Columns"),
        number_of_frames=_int(ds, "NumberOfFrames"),
        metadata_json=json_text,
    )


def read_instance_bytes(data: bytes) -> InstanceHeader:
    """:func:`read_instance` for bytes already in memory."""
    return read_instance(io.BytesIO(data), size=len(data))
