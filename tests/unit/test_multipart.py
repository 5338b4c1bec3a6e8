"""The incremental multipart parser: parts survive any chunking, malformed bodies fail."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telerad.dicomweb import multipart
from telerad.dicomweb.multipart import (
    MultipartParser,
    PartData,
    PartEnd,
    PartStart,
)
from telerad.errors import MultipartError

BOUNDARY = "b0und4ry"


def parse(body: bytes, cuts: list[int] | None = None, boundary: str = BOUNDARY
          ) -> list[tuple[dict[str, str], bytes]]:
    """Feed ``body`` split at ``cuts``; return (headers, body) of each part."""
    parser = MultipartParser(boundary)
    positions = [0, *sorted(set(c for c in (cuts or []) if 0 < c < len(body))), len(body)]
    parts: list[tuple[dict[str, str], bytearray]] = []
    open_part = False
    for start, end in itertools.pairwise(positions):
        for event in parser.feed(body[start:end]):
            if isinstance(event, PartStart):
                assert not open_part
                parts.append((dict(event.headers), bytearray()))
                open_part = True
            elif isinstance(event, PartData):
                assert open_part
                assert event.data
                parts[-1][1].extend(event.data)
            else:
                assert isinstance(event, PartEnd)
                assert open_part
                open_part = False
    parser.close()
    assert not open_part
    return [(h, bytes(b)) for h, b in parts]


def body_of(payloads: list[bytes], *, lead: bytes = b"", tail: bytes = b"") -> bytes:
    out = lead
    for index, payload in enumerate(payloads):
        out += (b"" if index == 0 and not lead else b"\r\n") + f"--{BOUNDARY}".encode()
        out += b"\r\nContent-Type: application/dicom\r\n\r\n" + payload
    return out + f"\r\n--{BOUNDARY}--".encode() + tail


TRICKY = [
    b"",
    b"\r\n",
    b"--" + BOUNDARY.encode(),  # the boundary without its CRLF is data
    b"\r\n-" + BOUNDARY.encode() + b"\r\n--",
    b"x\r\n--b0und4r",  # a delimiter cut one byte short, at the end of the part
    bytes(range(256)) * 3,
]


def test_parts_and_headers_come_back_whole() -> None:
    parts = parse(body_of(TRICKY))
    assert [p[1] for p in parts] == TRICKY
    assert all(h == {"content-type": "application/dicom"} for h, _ in parts)


def test_every_single_split_position() -> None:
    """A boundary split anywhere between two chunks is still found (the sliding tail)."""
    body = body_of(TRICKY[:5])
    for cut in range(len(body) + 1):
        assert [p[1] for p in parse(body, [cut])] == TRICKY[:5], cut


def test_byte_by_byte() -> None:
    body = body_of(TRICKY)
    assert [p[1] for p in parse(body, list(range(len(body))))] == TRICKY


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=5),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=30),
    lead=st.sampled_from([b"", b"\r\n", b"preamble text\r\n"]),
    tail=st.sampled_from([b"", b"\r\n", b"\r\nepilogue --b0und4ry ignored"]),
)
def test_any_chunking_of_any_payloads(payloads: list[bytes], cuts: list[int], lead: bytes,
                                      tail: bytes) -> None:
    # Payloads may hold anything but a delimiter (RFC 2046 §5.1.1 chooses the boundary so).
    payloads = [p.replace(b"\r\n--" + BOUNDARY.encode(), b"") for p in payloads]
    body = body_of(payloads, lead=lead, tail=tail)
    assert [p[1] for p in parse(body, cuts)] == payloads


def test_dicomweb_client_framing_and_padding() -> None:
    """dicomweb-client starts with CRLF; transport padding may follow a boundary."""
    body = (b"\r\n--" + BOUNDARY.encode() + b"  \t\r\nContent-Type: application/dicom\r\n"
            b"X-Long: a\r\n  folded\r\n\r\nDATA\r\n--" + BOUNDARY.encode() + b"--\r\n")
    ((headers, data),) = parse(body)
    assert data == b"DATA"
    assert headers == {"content-type": "application/dicom", "x-long": "a folded"}


def test_a_part_without_headers() -> None:
    body = b"--" + BOUNDARY.encode() + b"\r\n\r\nDATA\r\n--" + BOUNDARY.encode() + b"--"
    assert parse(body) == [({}, b"DATA")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"just some bytes that are not multipart", "no multipart part"),
        (b"--" + BOUNDARY.encode() + b"\r\n\r\ntruncated", "before the closing"),
        (b"--" + BOUNDARY.encode() + b"\r\nContent-Type: x\r\n", "before the closing"),
        (b"--" + BOUNDARY.encode() + b"junk\r\n\r\nx\r\n--" + BOUNDARY.encode() + b"--",
         "unexpected characters"),
        (b"--" + BOUNDARY.encode() + b"\r\nno colon here\r\n\r\nx\r\n--"
         + BOUNDARY.encode() + b"--", "malformed header"),
        (b"--" + BOUNDARY.encode() + b"\r\nA: " + b"x" * 20000, "too long"),
    ],
)
def test_malformed_bodies_fail(body: bytes, message: str) -> None:
    with pytest.raises(MultipartError, match=message):
        parse(body, [7, 19])


def test_error_is_a_400() -> None:
    assert MultipartError("x").http_status == 400


@pytest.mark.parametrize("boundary", ["", "x" * 71, "bé"])
def test_invalid_boundaries(boundary: str) -> None:
    with pytest.raises(MultipartError):
        MultipartParser(boundary)


def test_data_after_the_close_is_ignored() -> None:
    parser = MultipartParser(BOUNDARY)
    parser.feed(body_of([b"a"]))
    assert parser.finished
    assert parser.feed(b"--" + BOUNDARY.encode() + b"\r\n\r\nmore") == []
    parser.close()


def test_writer_round_trips() -> None:
    boundary = multipart.new_boundary()
    assert len(boundary) <= 70
    payloads = [b"one", b"", b"\r\n--" + b"x" * 10]
    body = multipart.encode(boundary, [({"Content-Type": "application/octet-stream"}, p)
                                       for p in payloads])
    parts = parse(body, [3, 50, 51], boundary=boundary)
    assert [p[1] for p in parts] == payloads
    assert parts[0][0] == {"content-type": "application/octet-stream"}
    assert multipart.content_type(boundary, "application/dicom") == (
        f'multipart/related; type="application/dicom"; boundary={boundary}')


def test_streamed_framing_matches_encode() -> None:
    """The head/closing pieces WADO-RS streams around files give the same bytes."""
    boundary = "B"
    files = [b"first file", b"second"]
    streamed = b"".join(
        multipart.part_head(boundary, {"Content-Type": "application/dicom"}, first=i == 0) + f
        for i, f in enumerate(files)
    ) + multipart.closing(boundary)
    assert streamed == multipart.encode(boundary, [({"Content-Type": "application/dicom"}, f)
                                                   for f in files])
