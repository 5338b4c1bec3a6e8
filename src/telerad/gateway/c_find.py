"""The C-FIND SCP exchange (PS3.7 §9.1.2, PS3.4 §C.4.1 and §K.4.1): from the identifier's
bytes to the sequence of responses; the Upper Layer loop sends them.

One C-FIND-RSP Pending per match, each carrying its identifier, then one final response
without a data set: Success, or a failure when the identifier cannot be read or the
handler cannot process it (PS3.4 Table K.4-2 statuses).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from pydicom import uid as pydicom_uid
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

from telerad.dicom.mwl import MODALITY_WORKLIST_FIND
from telerad.dicom.part10 import walk
from telerad.errors import InvalidDicom, InvalidInput

LOGGER = logging.getLogger(__name__)

#: The SOP classes answered by C-FIND, and the syntaxes of their identifiers: the
#: uncompressed little-endian ones every worklist client proposes (PS3.5 §10.1, §A.2).
FIND_SOP_CLASSES = frozenset({MODALITY_WORKLIST_FIND})
FIND_TRANSFER_SYNTAXES: list[str | pydicom_uid.UID] = [
    pydicom_uid.ExplicitVRLittleEndian,
    pydicom_uid.ImplicitVRLittleEndian,
]
#: An identifier is a handful of keys; a larger one is refused unread.
MAX_IDENTIFIER_BYTES = 1024 * 1024

# C-FIND statuses (PS3.4 Table K.4-2, PS3.7 §9.1.2.1.6).
SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00
OUT_OF_RESOURCES = 0xA700
IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
UNABLE_TO_PROCESS = 0xC001


class FindHandler(Protocol):
    """The application side of C-FIND."""

    def find(self, *, sop_class_uid: str, identifier: Dataset) -> Iterable[Dataset]:
        """The response identifiers of the matches of ``identifier``."""
        ...


class IdentifierBuffer:
    """A C-FIND identifier's fragments as they arrive: kept whole, up to a limit."""

    def __init__(self) -> None:
        self._data: bytearray | None = bytearray()

    def write(self, fragment: memoryview) -> None:
        if self._data is not None:
            if len(self._data) + len(fragment) > MAX_IDENTIFIER_BYTES:
                self._data = None  # keep reading, answer "out of resources" at the end
            else:
                self._data += fragment

    def identifier(self) -> bytes | None:
        """The identifier's bytes, or None when it was above the limit."""
        return None if self._data is None else bytes(self._data)

    def abort(self) -> None:
        self._data = None


@dataclass(frozen=True)
class FindResponse:
    """One C-FIND-RSP: its status, and its identifier's bytes when Pending."""

    status: int
    identifier: bytes | None = None
    error_comment: str = ""


def decode_identifier(raw: bytes, transfer_syntax_uid: str) -> Dataset:
    """Read an identifier in its negotiated transfer syntax, every value decoded now so that
    a broken one fails here (InvalidDicom) rather than half-way through matching."""
    ts = pydicom_uid.UID(transfer_syntax_uid)
    walk(raw, 0, ts)  # pydicom reads a truncated element as a short one: check first
    try:
        identifier = read_dataset(io.BytesIO(raw), ts.is_implicit_VR, ts.is_little_endian)
        for element in identifier.iterall():
            _ = element.value
    except Exception as exc:  # pydicom raises many kinds on bad input
        raise InvalidDicom(f"identifier cannot be decoded: {type(exc).__name__}") from exc
    return identifier


def encode_identifier(identifier: Dataset, transfer_syntax_uid: str) -> bytes:
    """Write a response identifier in the negotiated transfer syntax (PS3.5 §10)."""
    ts = pydicom_uid.UID(transfer_syntax_uid)
    fp = DicomBytesIO()
    fp.is_implicit_VR = ts.is_implicit_VR
    fp.is_little_endian = ts.is_little_endian
    write_dataset(fp, identifier)
    return fp.getvalue()


def responses(
    handler: FindHandler, *, sop_class_uid: str, identifier: bytes | None,
    transfer_syntax_uid: str,
) -> Generator[FindResponse, None, None]:
    """The responses to one C-FIND-RQ, lazily: the caller may stop after any Pending one
    (C-CANCEL-RQ) and close this generator. ``identifier`` is None when it was above
    :data:`MAX_IDENTIFIER_BYTES` and not kept."""
    if identifier is None:
        yield FindResponse(OUT_OF_RESOURCES, error_comment="identifier too large")
        return
    try:
        query = decode_identifier(identifier, transfer_syntax_uid)
    except InvalidDicom as exc:
        LOGGER.warning("C-FIND identifier refused: %s", exc.message)
        yield FindResponse(IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, error_comment=exc.message)
        return
    answers: Iterator[Dataset] | None = None
    try:
        answers = iter(handler.find(sop_class_uid=sop_class_uid, identifier=query))
        for answer in answers:
            yield FindResponse(PENDING, encode_identifier(answer, transfer_syntax_uid))
    except InvalidInput as exc:  # a key value that is no valid value (a bad date range)
        LOGGER.warning("C-FIND query refused: %s", exc.code)  # the message may hold a key
        yield FindResponse(IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, error_comment=exc.message)
        return
    except Exception:
        LOGGER.exception("C-FIND could not be processed")
        yield FindResponse(UNABLE_TO_PROCESS, error_comment="unable to process the query")
        return
    finally:
        if isinstance(answers, Generator):  # cancelled: the handler's work stops now
            answers.close()
    yield FindResponse(SUCCESS)
