"""``multipart/related`` bodies (RFC 2387 over RFC 2046 §5.1), as DICOMweb uses them.

Reading is incremental and sans-IO: :class:`MultipartParser` is fed the body chunk by
chunk as it arrives and returns events (a part's headers, pieces of its body, its end),
so that a STOW-RS request of any size streams to disk with a bounded buffer. A boundary
split across two chunks is found because the parser keeps the last ``len(delimiter) - 1``
bytes of a part's body until the next chunk says whether they start a delimiter.

Writing builds the framing of a WADO-RS response around parts streamed from elsewhere.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, auto

from telerad.errors import MultipartError

#: Largest header block of one part; DICOMweb parts carry one or two short headers.
MAX_HEADER_BYTES = 16 * 1024
#: RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
MAX_BOUNDARY = 70


@dataclass(frozen=True, slots=True)
class PartStart:
    """A part begins; its header fields, names lower-cased."""

    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PartData:
    """A piece of the current part's body (in order; a part may have many)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    """The current part's body is complete."""


Event = PartStart | PartData | PartEnd


class _State(Enum):
    PREAMBLE = auto()
    AFTER_DELIMITER = auto()
    HEADERS = auto()
    BODY = auto()
    EPILOGUE = auto()


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = ""
    for line in block.decode("latin-1").split("\r\n"):
        if line[:1] in (" ", "\t") and last:  # obsolete folding (RFC 5322 §2.2.3)
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise MultipartError("malformed header line in a multipart part")
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers


class MultipartParser:
    """Incremental parser of one ``multipart/*`` body with a known boundary."""

    def __init__(self, boundary: str, *, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        if not 1 <= len(boundary) <= MAX_BOUNDARY:
            raise MultipartError("multipart boundary must be 1 to 70 characters (RFC 2046)")
        try:
            encoded = boundary.encode("ascii")
        except UnicodeEncodeError as exc:
            raise MultipartError("multipart boundary must be ASCII") from exc
        # Every delimiter is CRLF "--" boundary (RFC 2046 §5.1.1); the first one may start
        # the body without its CRLF, so the parser starts as if a CRLF had been read.
        self._delimiter = b"\r\n--" + encoded
        self._keep = len(self._delimiter) - 1
        self._buffer = bytearray(b"\r\n")
        self._state = _State.PREAMBLE
        self._max_header_bytes = max_header_bytes
        self.parts = 0

    @property
    def finished(self) -> bool:
        """Whether the closing delimiter has been read."""
        return self._state is _State.EPILOGUE

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Consume the next chunk of the body; return the events it completes."""
        if self._state is _State.EPILOGUE:
            return []  # the epilogue is ignored (RFC 2046 §5.1.1)
        buffer = self._buffer
        buffer += data
        events: list[Event] = []
        while True:
            state = self._state
            if state is _State.PREAMBLE:
                index = buffer.find(self._delimiter)
                if index < 0:
                    del buffer[: max(0, len(buffer) - self._keep)]
                    return events
                del buffer[: index + len(self._delimiter)]
                self._state = _State.AFTER_DELIMITER
            elif state is _State.AFTER_DELIMITER:
                if len(buffer) < 2:
                    return events
                if buffer[:2] == b"--":
                    buffer.clear()
                    self._state = _State.EPILOGUE
                    return events
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > 1024:
                        raise MultipartError("no line break after a multipart boundary")
                    return events
                if buffer[:end].strip(b" \t"):  # only transport padding may follow
                    raise MultipartError("unexpected characters after a multipart boundary")
                del buffer[: end + 2]
                self._state = _State.HEADERS
            elif state is _State.HEADERS:
                if len(buffer) < 2:
                    return events
                if buffer[:2] == b"\r\n":  # a part without header fields
                    headers: dict[str, str] = {}
                    del buffer[:2]
                else:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        if len(buffer) > self._max_header_bytes:
                            raise MultipartError("multipart part headers too long")
                        return events
                    if end > self._max_header_bytes:
                        raise MultipartError("multipart part headers too long")
                    headers = _parse_headers(bytes(buffer[:end]))
                    del buffer[: end + 4]
                self.parts += 1
                events.append(PartStart(headers))
                self._state = _State.BODY
            elif state is _State.BODY:
                index = buffer.find(self._delimiter)
                if index < 0:
                    if len(buffer) > self._keep:
                        cut = len(buffer) - self._keep
                        events.append(PartData(bytes(buffer[:cut])))
                        del buffer[:cut]
                    return events
                if index:
                    events.append(PartData(bytes(buffer[:index])))
                del buffer[: index + len(self._delimiter)]
                events.append(PartEnd())
                self._state = _State.AFTER_DELIMITER
            else:  # pragma: no cover - EPILOGUE returns above
                return events

    def close(self) -> None:
        """The body has ended: fail unless the closing delimiter was read."""
        if self._state is not _State.EPILOGUE:
            if self.parts == 0 and self._state is _State.PREAMBLE:
                raise MultipartError("body holds no multipart part with the announced boundary")
            raise MultipartError("body ended before the closing multipart boundary")


# -- writing ----------------------------------------------------------------------------


def new_boundary() -> str:
    """A boundary that cannot occur in the parts by chance (RFC 2046 §5.1.1)."""
    return f"telerad-{secrets.token_hex(16)}"


def part_head(boundary: str, headers: Mapping[str, str], *, first: bool) -> bytes:
    """The delimiter and header block that open one part."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    lead = "" if first else "\r\n"
    return f"{lead}--{boundary}\r\n{lines}\r\n".encode("latin-1")


def closing(boundary: str) -> bytes:
    """The close delimiter that ends the body."""
    return f"\r\n--{boundary}--\r\n".encode("latin-1")


def encode(boundary: str, parts: Iterable[tuple[Mapping[str, str], bytes]]) -> bytes:
    """A whole multipart body from parts held in memory (frames, bulk data)."""
    chunks: list[bytes] = []
    for headers, body in parts:
        chunks.append(part_head(boundary, headers, first=not chunks))
        chunks.append(body)
    if not chunks:
        raise ValueError("a multipart body needs at least one part")
    chunks.append(closing(boundary))
    return b"".join(chunks)


def content_type(boundary: str, part_type: str, **params: str) -> str:
    """``multipart/related; type="..."; boundary=...`` (RFC 2387 §3.1 requires ``type``)."""
    extra = "".join(f"; {name.replace('_', '-')}={value}" for name, value in params.items())
    return f'multipart/related; type="{part_type}"{extra}; boundary={boundary}'
