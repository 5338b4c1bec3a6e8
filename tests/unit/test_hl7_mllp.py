"""MLLP framing: round trip, arbitrary splits, junk, size limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telerad.errors import TooLarge
from telerad.hl7.mllp import Deframer, FrameTooLarge, frame

_messages = st.lists(
    st.binary(max_size=200).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")),
    min_size=1, max_size=5)


def test_frame_wraps_in_start_and_end_blocks():
    assert frame(b"MSH|^~\\&\r") == b"\x0bMSH|^~\\&\r\x1c\r"


def test_frame_refuses_block_characters():
    with pytest.raises(ValueError, match="block characters"):
        frame(b"MSH\x1c")


@given(messages=_messages, cuts=st.lists(st.integers(min_value=0, max_value=2000)))
def test_round_trip_whatever_the_reads(messages: list[bytes], cuts: list[int]):
    stream = b"".join(frame(m) for m in messages)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    deframer = Deframer()
    got: list[bytes] = []
    for start, end in zip([0, *points], [*points, len(stream)], strict=True):
        got += deframer.feed(stream[start:end])
    assert got == messages
    assert deframer.dropped == 0
    assert not deframer.pending


def test_byte_by_byte_feed():
    deframer = Deframer()
    stream = frame(b"A") + frame(b"BC")
    got = [m for i in range(len(stream)) for m in deframer.feed(stream[i : i + 1])]
    assert got == [b"A", b"BC"]


def test_partial_frame_is_pending():
    deframer = Deframer()
    assert deframer.feed(b"\x0bMSH|") == []
    assert deframer.pending
    assert deframer.feed(b"x\x1c") == []
    assert deframer.feed(b"\r") == [b"MSH|x"]


def test_junk_outside_frames_is_dropped_and_counted():
    deframer = Deframer()
    got = deframer.feed(b"\r\n" + frame(b"one") + b"garbage" + frame(b"two") + b"\n")
    assert got == [b"one", b"two"]
    assert deframer.dropped == 2 + 7 + 1


def test_abandoned_frame_is_dropped():
    deframer = Deframer()
    assert deframer.feed(b"\x0bhalf a mess") == []
    assert deframer.feed(frame(b"whole")) == [b"whole"]
    assert deframer.dropped == len(b"\x0bhalf a mess")


def test_frame_over_the_limit_raises_then_recovers():
    deframer = Deframer(max_size=10)
    with pytest.raises(TooLarge, match="exceeds 10 bytes"):
        deframer.feed(b"\x0b" + b"x" * 11)
    assert not deframer.pending
    assert deframer.feed(frame(b"small")) == [b"small"]
    with pytest.raises(TooLarge):
        deframer.feed(frame(b"y" * 11))


def test_messages_before_an_oversized_frame_are_kept() -> None:
    deframer = Deframer(max_size=10)
    with pytest.raises(FrameTooLarge) as raised:
        deframer.feed(frame(b"MSH|1") + frame(b"MSH|" + b"x" * 50))
    assert raised.value.completed == [b"MSH|1"]
    assert deframer.feed(frame(b"MSH|2")) == [b"MSH|2"]
