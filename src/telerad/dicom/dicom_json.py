"""DICOM JSON (PS3.18 §F.2) straight from the bytes of a walked data set.

pydicom converts every element into an object before it can write JSON: about 1 ms for a
CT header, paid for each received image. Most elements are plain text or numbers; this
module writes those directly from their bytes and leaves the rest — sequences, ambiguous
implicit VRs, character sets other than ASCII/Latin-1/UTF-8, big endian data — to pydicom
through ``fallback``, element by element. Bulk values become BulkDataURIs and are never read.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

from telerad.dicom.part10 import Buffer, RawElement, WalkedDataset

UNDEFINED_LENGTH = 0xFFFFFFFF
PIXEL_DATA = 0x7FE00010
SPECIFIC_CHARACTER_SET = 0x00080005

# PS3.5 §6.2: values of these VRs hold one value; a backslash is just a character.
_SINGLE_VALUED = frozenset({b"LT", b"ST", b"UT", b"UR"})
_TEXT = frozenset({b"AE", b"AS", b"CS", b"DA", b"DT", b"LO", b"LT", b"SH", b"ST", b"TM", b"UC",
                   b"UI", b"UR", b"UT", b"PN", b"DS", b"IS"})
_NUMERIC = {b"US": "H", b"SS": "h", b"UL": "I", b"SL": "i", b"FL": "f", b"FD": "d",
            b"UV": "Q", b"SV": "q"}
_BINARY = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"UN"})
# Specific Character Set (PS3.3 C.12.1.1.2) -> Python codec, for the single-byte and UTF-8
# repertoires met in practice; anything else (ISO 2022 escapes, GB18030...) goes to pydicom.
_CODECS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1",
           "ISO_IR 192": "utf-8"}


@lru_cache(maxsize=4096)
def _implicit_vr(tag: int) -> bytes | None:
    """The dictionary VR of ``tag``, or None when unknown or ambiguous ("US or SS")."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return vr.encode() if len(vr) == 2 else None


def _text_values(raw: bytes, vr: bytes, codec: str) -> list[Any]:
    text = raw.decode(codec)
    if vr in _SINGLE_VALUED:
        parts = [text.rstrip(" \x00")]
    else:
        parts = [p.strip(" \x00") for p in text.split("\\")]
    values: list[Any] = []
    for part in parts:
        if part == "":
            values.append(None)
        elif vr == b"PN":
            groups = part.split("=")
            names = dict(zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False))
            values.append({k: v for k, v in names.items() if v})
        elif vr == b"IS":
            values.append(int(part))
        elif vr == b"DS":
            number = float(part)
            values.append(int(number) if number.is_integer() and "." not in part
                          and "e" not in part.lower() else number)
        else:
            values.append(part)
    return values


def to_json(
    walked: WalkedDataset,
    *,
    bulk_data_threshold: int,
    bulk_uri: Callable[[int], str],
    fallback: Callable[[], Dataset],
) -> dict[str, Any]:
    """The DICOM JSON object of ``walked``'s top-level elements, in tag order."""
    data, little = walked.data, walked.little
    codec: str | None = "latin-1"
    for element in walked.elements:
        if element.tag == SPECIFIC_CHARACTER_SET:
            charset = bytes(data[element.offset : element.offset + element.length])
            codec = _CODECS.get(charset.decode("ascii", "replace").strip(" \x00"))
            break
    out: dict[str, Any] = {}
    for element in walked.elements:
        group = element.tag >> 16
        if group in (0x0002, 0xFFFE):  # meta information and delimiters are not metadata
            continue
        key = f"{element.tag:08X}"
        vr = element.vr if element.vr is not None else _implicit_vr(element.tag)
        element_little = little
        if vr == b"UN" and element.length != UNDEFINED_LENGTH and _implicit_vr(element.tag):
            # An element sent as UN whose tag the dictionary knows is read with its real VR;
            # its value is in Implicit VR Little Endian (PS3.5 §6.2.2), as pydicom does.
            vr, element_little = _implicit_vr(element.tag), True
        if vr is None and (element.tag == PIXEL_DATA or (
                element.length != UNDEFINED_LENGTH and element.length > bulk_data_threshold)):
            # Implicit VR with an ambiguous dictionary VR ("OB or OW"): Pixel Data is OW in
            # Implicit VR Little Endian (PS3.5 §A.1); other large values are given as UN.
            vr = b"OW" if element.tag == PIXEL_DATA else b"UN"
        try:
            converted = None if vr is None else _convert(
                element, vr, data, codec, bulk_data_threshold, bulk_uri, element_little)
        except (ValueError, UnicodeDecodeError, struct.error):
            converted = None
        if converted is None:
            converted = _from_pydicom(fallback(), element, bulk_data_threshold, bulk_uri)
        if converted is not None:
            out[key] = converted
    return out


def _convert(  # noqa: PLR0917 - a private helper of to_json's loop
    element: RawElement, vr: bytes, data: Buffer, codec: str | None,
    threshold: int, bulk_uri: Callable[[int], str], little: bool,
) -> dict[str, Any] | None:
    """The JSON of one element, or None to let pydicom do it."""
    order = "<" if little else ">"
    length, name = element.length, vr.decode()
    if element.tag == PIXEL_DATA or vr in _BINARY:
        if length == 0:
            return {"vr": name}
        if length == UNDEFINED_LENGTH or length > threshold:
            return {"vr": name, "BulkDataURI": bulk_uri(element.tag)}
        if not little and vr != b"OB":
            return None  # inline words must be swapped to little endian: pydicom does it
        raw = bytes(data[element.offset : element.offset + length])
        return {"vr": name, "InlineBinary": base64.b64encode(raw).decode("ascii")}
    if length == UNDEFINED_LENGTH or vr == b"SQ":
        return None
    if length == 0:
        return {"vr": name}
    raw = bytes(data[element.offset : element.offset + length])
    if vr in _TEXT:
        if codec is None and vr in (b"SH", b"LO", b"ST", b"LT", b"UC", b"UT", b"PN"):
            return None
        values = _text_values(raw, vr, codec or "latin-1")
        if all(v is None for v in values):
            return {"vr": name}
        return {"vr": name, "Value": values}
    fmt = _NUMERIC.get(vr)
    if fmt is not None:
        size = struct.calcsize(fmt)
        if length % size:
            return None
        return {"vr": name, "Value": list(struct.unpack(f"{order}{length // size}{fmt}", raw))}
    if vr == b"AT" and length % 4 == 0:
        pairs = struct.unpack(f"{order}{length // 2}H", raw)
        return {"vr": name, "Value": [f"{pairs[i]:04X}{pairs[i + 1]:04X}"
                                      for i in range(0, len(pairs), 2)]}
    return None


def _from_pydicom(
    ds: Dataset, element: RawElement, threshold: int, bulk_uri: Callable[[int], str]
) -> dict[str, Any] | None:
    """pydicom's conversion of one element (tolerant: an unconvertible value is left out)."""
    try:
        elem = ds[element.tag]
        if elem.VR == "SQ":  # binary values inside items stay inline: their URIs would need paths
            return elem.to_json_dict(None, threshold)
        return elem.to_json_dict(lambda e: bulk_uri(int(e.tag)), threshold)
    except Exception:
        return None
