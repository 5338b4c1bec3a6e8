"""Content negotiation of DICOMweb (PS3.18 §8.7): Accept ranges, media types, transfer syntaxes.

telerad never transcodes an instance: it serves the stored Part-10 file, so a request for a
*specific* other transfer syntax is answered 406. Frames are the exception the viewers need:
they come as stored, or decoded to uncompressed Explicit VR Little Endian.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydicom.uid import UID, ExplicitVRLittleEndian

from telerad.errors import NotAcceptable

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
OCTET_STREAM = "application/octet-stream"
MULTIPART_RELATED = "multipart/related"
JPEG = "image/jpeg"
PNG = "image/png"

#: Media types of compressed pixel data (PS3.18 §8.7.3): the bitstream of one frame of
#: these transfer syntaxes is a file of that type.
_PIXEL_MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.50": JPEG,
    "1.2.840.10008.1.2.4.51": JPEG,
    "1.2.840.10008.1.2.4.57": JPEG,
    "1.2.840.10008.1.2.4.70": JPEG,
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.4.100": "video/mpeg2",
    "1.2.840.10008.1.2.4.101": "video/mpeg2",
    "1.2.840.10008.1.2.4.102": "video/mp4",
    "1.2.840.10008.1.2.4.103": "video/mp4",
    "1.2.840.10008.1.2.4.104": "video/mp4",
    "1.2.840.10008.1.2.4.105": "video/mp4",
    "1.2.840.10008.1.2.4.106": "video/mp4",
}
_ALIASES = {"image/x-dicom-rle": "image/dicom-rle", "image/x-jls": "image/jls"}


@dataclass(frozen=True, kw_only=True)
class MediaRange:
    """One element of an Accept header (RFC 9110 §12.5.1), parameters lower-cased by name."""

    type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def part_type(self) -> str | None:
        """The ``type`` parameter of a multipart range (the media type of its parts)."""
        value = self.params.get("type")
        return _ALIASES.get(value, value) if value else None

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == sep and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(char)
    out.append("".join(current))
    return out


def parse_media_type(text: str) -> tuple[str, dict[str, str]]:
    """``type/subtype; name=value ...`` → (lower-cased type, parameters)."""
    head, *rest = _split(text, ";")
    params: dict[str, str] = {}
    for item in rest:
        name, sep, value = item.partition("=")
        if sep:
            params[name.strip().lower()] = value.strip().strip('"')
    return head.strip().lower(), params


def parse_accept(header: str | None) -> list[MediaRange]:
    """The ranges of an Accept header, most preferred first; none given means ``*/*``."""
    if header is None or not header.strip():
        return [MediaRange(type="*/*")]
    ranges: list[MediaRange] = []
    for item in _split(header, ","):
        if not item.strip():
            continue
        media_type, params = parse_media_type(item)
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        if q > 0:
            ranges.append(MediaRange(type=_ALIASES.get(media_type, media_type), params=params,
                                     q=q))
    return sorted(ranges, key=lambda r: -r.q)  # stable: header order among equals


def is_encapsulated(transfer_syntax_uid: str) -> bool:
    """Whether pixel data of this transfer syntax is encapsulated (PS3.5 §A.4)."""
    return bool(UID(transfer_syntax_uid).is_encapsulated)


def pixel_media_type(transfer_syntax_uid: str) -> str:
    """The media type of one frame stored in ``transfer_syntax_uid``."""
    return _PIXEL_MEDIA_TYPES.get(transfer_syntax_uid, OCTET_STREAM)


def _any(ranges: Iterable[MediaRange], *types: str) -> bool:
    return any(r.type in types for r in ranges)


# -- negotiation per resource -----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class InstancesChoice:
    """How to send instances: in a multipart body, or one bare Part-10 file."""

    multipart: bool


def negotiate_instances(
    header: str | None, *, stored: set[str], single: bool
) -> InstancesChoice:
    """Retrieve of studies, series, instances (PS3.18 §10.4.1).

    The stored files are sent as they are; ``transfer-syntax=*``, the stored one, or no
    parameter are accepted; another specific transfer syntax is not (no transcoding).
    """
    reason = ""
    for media in parse_accept(header):
        if media.type in ("*/*", "multipart/*") or (
            media.type == MULTIPART_RELATED and media.part_type in (None, DICOM, "*/*",
                                                                    "application/*")
        ):
            ts = media.transfer_syntax
            if ts in (None, "*") or stored == {ts}:
                return InstancesChoice(multipart=True)
            reason = _transcode_reason(ts, stored)
        elif media.type in (DICOM, "application/*") and single:
            ts = media.transfer_syntax
            if ts in (None, "*") or stored == {ts}:
                return InstancesChoice(multipart=False)
            reason = _transcode_reason(ts, stored)
    raise NotAcceptable(reason or (
        'instances are sent as multipart/related; type="application/dicom" '
        "(transfer-syntax=* or the stored one)"
    ))


def _transcode_reason(asked: str, stored: set[str]) -> str:
    return (
        f"transfer syntax {asked} was asked but the instances are stored as "
        f"{', '.join(sorted(stored))}; telerad does not transcode (ask transfer-syntax=*)"
    )


@dataclass(frozen=True, kw_only=True)
class FramesChoice:
    """How to send frames: as stored, or decoded to Explicit VR Little Endian."""

    decode: bool
    #: The media type of each part, with its transfer-syntax parameter.
    part_content_type: str
    #: The ``type`` parameter of the multipart body.
    part_type: str


def negotiate_frames(header: str | None, *, stored: str) -> FramesChoice:
    """Retrieve of frames (PS3.18 §8.7.3, §10.4.1)."""
    native = not is_encapsulated(stored)
    stored_media = pixel_media_type(stored)

    def as_stored(part_type: str) -> FramesChoice:
        if native:  # native frames are always sent in little endian byte order
            return FramesChoice(decode=False, part_type=OCTET_STREAM,
                                part_content_type=_with_ts(OCTET_STREAM, ExplicitVRLittleEndian))
        return FramesChoice(decode=False, part_type=part_type,
                            part_content_type=_with_ts(part_type, stored))

    uncompressed = FramesChoice(decode=True, part_type=OCTET_STREAM,
                                part_content_type=_with_ts(OCTET_STREAM, ExplicitVRLittleEndian))
    for media in parse_accept(header):
        if media.type in ("*/*", "multipart/*") or (
            media.type == MULTIPART_RELATED and media.part_type in (None, "*/*")
        ):
            return as_stored(stored_media)
        if media.type != MULTIPART_RELATED:
            continue
        ts = media.transfer_syntax
        if media.part_type == OCTET_STREAM:
            if ts == "*":
                return as_stored(OCTET_STREAM)
            if ts in (None, ExplicitVRLittleEndian):
                return as_stored(OCTET_STREAM) if native else uncompressed
            if ts == stored:
                return as_stored(OCTET_STREAM)
        elif (
            not native
            and media.part_type in (stored_media, stored_media.split("/")[0] + "/*")
            and ts in (None, "*", stored)
        ):
            return as_stored(stored_media)
    raise NotAcceptable(
        f"frames are stored as {stored}; they can be sent as stored "
        f'(multipart/related; type="{stored_media}" or transfer-syntax=*) or as '
        f'multipart/related; type="{OCTET_STREAM}"; transfer-syntax={ExplicitVRLittleEndian}'
    )


def _with_ts(media_type: str, transfer_syntax_uid: str) -> str:
    return f"{media_type}; transfer-syntax={transfer_syntax_uid}"


def negotiate_json(header: str | None) -> None:
    """QIDO-RS results and metadata come as ``application/dicom+json`` only (PS3.18 §8.7.5)."""
    if _any(parse_accept(header), DICOM_JSON, "application/json", "application/*", "*/*"):
        return
    raise NotAcceptable("this resource is sent as application/dicom+json only")


def negotiate_rendered(header: str | None) -> str:
    """Rendered images (PS3.18 §8.3.5, §10.4.1): JPEG by default, or PNG."""
    for media in parse_accept(header):
        if media.type in (JPEG, "image/*", "*/*"):
            return JPEG
        if media.type == PNG:
            return PNG
    raise NotAcceptable("rendered images are sent as image/jpeg or image/png")


@dataclass(frozen=True, kw_only=True)
class BulkChoice:
    multipart: bool


def negotiate_bulkdata(header: str | None) -> BulkChoice:
    """Bulk data (PS3.18 §8.7.3): octet-stream parts, or one bare value."""
    for media in parse_accept(header):
        if media.type in ("*/*", "multipart/*") or (
            media.type == MULTIPART_RELATED
            and media.part_type in (None, OCTET_STREAM, "*/*", "application/*")
        ):
            return BulkChoice(multipart=True)
        if media.type in (OCTET_STREAM, "application/*"):
            return BulkChoice(multipart=False)
    raise NotAcceptable(f'bulk data is sent as multipart/related; type="{OCTET_STREAM}"')
