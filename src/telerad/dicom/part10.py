"""Part-10 files (PS3.10 §7): the preamble, the File Meta Information, and a completeness check.

pydicom is tolerant when reading: a file cut short parses, with a short last value. An
archive must not acknowledge such a file, so :func:`check_complete` walks every data
element of the dataset (nested sequences and encapsulated pixel data included, PS3.5 §7.1,
§7.5, §A.4) and fails unless each declared length fits and each undefined length is closed
by its delimiter.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from mmap import mmap
from typing import NamedTuple

from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
)

from telerad.errors import InvalidDicom

PREAMBLE = b"\x00" * 128 + b"DICM"
IMPLEMENTATION_VERSION_NAME = "TELERAD_010"

#: What the walk reads: bytes in memory, or a file mapped in place.
Buffer = bytes | memoryview | mmap

_UNDEFINED = 0xFFFFFFFF
_ITEM = (0xFFFE, 0xE000)
_ITEM_DELIMITER = (0xFFFE, 0xE00D)
_SEQUENCE_DELIMITER = (0xFFFE, 0xE0DD)
# VRs with a 2-byte reserved field and a 4-byte length in explicit VR (PS3.5 §7.1.2).
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC",
                       b"UN", b"UR", b"UT", b"UV"})
_MAX_DEPTH = 32


def _meta_element(group_element: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:  # UI and OB are padded with NUL, text with a space (PS3.5 §6.2)
        value += b"\x00" if vr in (b"UI", b"OB") else b" "
    tag = struct.pack("<HH", 0x0002, group_element)
    if vr == b"OB":
        return tag + vr + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


def file_meta(
    *, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str,
    source_ae_title: str | None = None,
) -> bytes:
    """Preamble and File Meta Information (PS3.10 §7.1) for a data set received over the
    network; always Explicit VR Little Endian, elements in tag order, group length first.
    Encoded by hand: it runs once per received instance."""
    body = _meta_element(0x0001, b"OB", b"\x00\x01")
    body += _meta_element(0x0002, b"UI", sop_class_uid.encode("ascii"))
    body += _meta_element(0x0003, b"UI", sop_instance_uid.encode("ascii"))
    body += _meta_element(0x0010, b"UI", transfer_syntax_uid.encode("ascii"))
    body += _meta_element(0x0012, b"UI", PYDICOM_IMPLEMENTATION_UID.encode("ascii"))
    body += _meta_element(0x0013, b"SH", IMPLEMENTATION_VERSION_NAME.encode("ascii"))
    if source_ae_title:
        ae = source_ae_title.encode("ascii", "replace")
        body += _meta_element(0x0016, b"AE", ae + b" " * (len(ae) % 2))
    group_length = struct.pack("<HH", 0x0002, 0x0000) + b"UL" + struct.pack("<HI", 4, len(body))
    return PREAMBLE + group_length + body


def dataset_offset(data: Buffer) -> int:
    """Offset of the dataset after the preamble and meta group (PS3.10 §7.1)."""
    if bytes(data[128:132]) != b"DICM":
        raise InvalidDicom("not a DICOM Part-10 file: no 'DICM' prefix at offset 128")
    if len(data) < 144:
        raise InvalidDicom("truncated File Meta Information")
    tag = struct.unpack_from("<HH", data, 132)
    if tag != (0x0002, 0x0000) or bytes(data[136:138]) != b"UL":
        raise InvalidDicom("File Meta Information does not start with its group length")
    (group_length,) = struct.unpack_from("<I", data, 140)
    end = 144 + int(group_length)
    if end > len(data):
        raise InvalidDicom("truncated File Meta Information")
    return end


class RawElement(NamedTuple):
    """A data element as found in the bytes: where its value is, not what it means."""

    tag: int
    #: Explicit VR, or None in Implicit VR Little Endian.
    vr: bytes | None
    #: Offset of the value in the walked buffer.
    offset: int
    #: Value length; 0xFFFFFFFF for undefined length.
    length: int


class _Walker:
    """Walks data elements of one encoding, failing on anything that does not fit."""

    def __init__(self, data: Buffer, *, implicit: bool, little: bool) -> None:
        self.data = data
        self.implicit = implicit
        self.fmt_tag = "<HH" if little else ">HH"
        self.fmt_u16 = "<H" if little else ">H"
        self.fmt_u32 = "<I" if little else ">I"

    def _need(self, pos: int, n: int, end: int) -> None:
        if pos + n > end:
            raise InvalidDicom(
                f"truncated data: {n} bytes needed at offset {pos}, {end - pos} left"
            )

    def header(self, pos: int, end: int) -> tuple[tuple[int, int], bytes | None, int, int]:
        """(tag, VR or None, value length, offset of the value)."""
        self._need(pos, 8, end)
        tag = struct.unpack_from(self.fmt_tag, self.data, pos)
        if tag[0] == 0xFFFE or self.implicit:
            (length,) = struct.unpack_from(self.fmt_u32, self.data, pos + 4)
            return tag, None, length, pos + 8
        vr = bytes(self.data[pos + 4 : pos + 6])
        if vr in _LONG_VRS:
            self._need(pos, 12, end)
            (length,) = struct.unpack_from(self.fmt_u32, self.data, pos + 8)
            return tag, vr, length, pos + 12
        if not vr.isalpha():
            raise InvalidDicom(f"invalid VR {vr!r} at offset {pos}")
        (length,) = struct.unpack_from(self.fmt_u16, self.data, pos + 6)
        return tag, vr, length, pos + 8

    def elements(self, pos: int, end: int, *, until_item_end: bool, depth: int,
                 collect: list[RawElement] | None = None) -> int:
        """Walk elements from ``pos``; return the offset after them (and their delimiter).

        ``collect`` receives each element met at this level.
        """
        if depth > _MAX_DEPTH:
            raise InvalidDicom("sequences nested too deeply")
        while pos < end:
            tag, vr, length, value = self.header(pos, end)
            if collect is not None:
                collect.append(RawElement((tag[0] << 16) | tag[1], vr, value, length))
            if tag == _ITEM_DELIMITER:
                if until_item_end:
                    return value
                raise InvalidDicom(f"unexpected item delimiter at offset {pos}")
            if length == _UNDEFINED:
                # Undefined length: a sequence (SQ, or UN/implicit holding one) or encapsulated
                # pixel data; both are items closed by a sequence delimiter (PS3.5 §7.5, A.4).
                walker = self
                if vr == b"UN":  # PS3.5 §6.2.2: an undefined-length UN holds implicit VR LE
                    walker = _Walker(self.data, implicit=True, little=True)
                pos = walker.items(value, end, depth=depth + 1)
            else:
                self._need(value, length, end)
                pos = value + length
        if until_item_end:
            raise InvalidDicom("item not closed by its delimiter: data truncated")
        return pos

    def items(self, pos: int, end: int, *, depth: int) -> int:
        while True:
            tag, _vr, length, value = self.header(pos, end)
            if tag == _SEQUENCE_DELIMITER:
                return value
            if tag != _ITEM:
                raise InvalidDicom(f"expected an item at offset {pos}, found {tag}")
            if length == _UNDEFINED:
                pos = self.elements(value, end, until_item_end=True, depth=depth)
            else:
                self._need(value, length, end)
                pos = value + length


@dataclass(frozen=True)
class WalkedDataset:
    """The top-level elements of a whole data set, and the buffer they point into."""

    data: Buffer
    elements: list[RawElement]
    implicit: bool
    little: bool


def walk(data: Buffer, offset: int, transfer_syntax_uid: str) -> WalkedDataset:
    """Check that the data set from ``offset`` to the end is whole (InvalidDicom if not) and
    return its top-level elements (a deflated data set is inflated first, PS3.5 §A.5)."""
    if transfer_syntax_uid == DeflatedExplicitVRLittleEndian:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            inflated = inflater.decompress(bytes(data[offset:]))
        except zlib.error as exc:
            raise InvalidDicom("deflated dataset cannot be inflated") from exc
        if not inflater.eof:
            raise InvalidDicom("deflated dataset truncated")
        data, offset = inflated, 0
    implicit = transfer_syntax_uid == ImplicitVRLittleEndian
    little = transfer_syntax_uid != ExplicitVRBigEndian
    walker = _Walker(data, implicit=implicit, little=little)
    elements: list[RawElement] = []
    walker.elements(offset, len(data), until_item_end=False, depth=0, collect=elements)
    return WalkedDataset(data=data, elements=elements, implicit=implicit, little=little)


def walk_meta(data: Buffer, offset: int) -> list[RawElement]:
    """The elements of the File Meta Information group, between the prefix and ``offset``."""
    elements: list[RawElement] = []
    _Walker(data, implicit=False, little=True).elements(132, offset, until_item_end=False,
                                                         depth=0, collect=elements)
    return elements


def check_complete(data: Buffer, offset: int, transfer_syntax_uid: str) -> None:
    """Fail with InvalidDicom unless the dataset from ``offset`` to the end is whole."""
    walk(data, offset, transfer_syntax_uid)
