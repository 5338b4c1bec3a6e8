"""ER7 parsing: line endings, encoding characters, positions, escapes, garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telerad.errors import InvalidInput
from telerad.hl7.messages import Encoding, InvalidHl7, escape, parse, render

_LINES = [
    "MSH|^~\\&|RIS|HOSP|TELERAD|TR|20250314101502||ORM^O01|C42|P|2.5",
    "PID|1||123^^^H^PI~456^^^X^MR||DOE^JOHN||19600101|M",
    "OBR|1|P1||CT^CT head",
    "OBR|2|P2||MR^MRI brain",
]


@pytest.mark.parametrize("newline", ["\r", "\n", "\r\n"])
def test_every_line_ending_reads_the_same(newline: str):
    message = parse(newline.join(_LINES) + newline)
    assert [s.name for s in message.all_segments] == ["MSH", "PID", "OBR", "OBR"]
    assert message.field("PID", 5, 2) == "JOHN"


def test_blank_lines_bom_and_mllp_leftovers_are_tolerated():
    message = parse("\ufeff\x0b\n" + "\r\n\r\n".join(_LINES) + "\r\x1c\r")
    assert len(message.all_segments) == 4


def test_msh_numbers_match_the_standard():
    message = parse("\r".join(_LINES))
    assert message.field("MSH", 1) == "|"
    assert message.field("MSH", 2) == "^~\\&"
    assert message.field("MSH", 3) == "RIS"
    assert (message.message_type, message.trigger_event) == ("ORM", "O01")
    assert message.control_id == "C42"
    assert message.version == "2.5"


def test_positions_repetitions_and_absent_values():
    message = parse("\r".join(_LINES))
    pid = message.segment("PID")
    assert pid is not None
    assert pid.value(3, 1, repetition=2) == "456"
    assert pid.value(3, 4, repetition=2) == "X"
    assert pid.repetitions(3) == ["123^^^H^PI", "456^^^X^MR"]
    assert pid.value(3, 1, repetition=3) == ""
    assert pid.value(40) == ""
    assert message.field("ZZZ", 1) == ""
    assert message.segment("ZZZ") is None
    assert [message.field(s, 4, 2) for s in message.segments("OBR")] == ["CT head", "MRI brain"]


def test_escapes_are_decoded_after_splitting():
    message = parse("MSH|^~\\&|A\r"
                    "NTE|1||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\.br\\g\\X4F4B\\\\H\\bold\\N\\"
                    "|\\Xc3a9\\|\\Q\\|\\F")
    nte = message.segment("NTE")
    assert nte is not None
    assert nte.value(3) == "a|b^c&d~e\\f\ngOKbold"
    assert nte.value(4) == "é"
    assert nte.value(5) == "\\Q\\"  # unknown sequence kept as written
    assert nte.value(6) == "\\F"  # unterminated kept as written


def test_other_encoding_characters():
    message = parse("MSH#$*!@#RIS\rPID#1##77$$$H##DOE$ANN!F!X*DOE$JANE")
    assert message.encoding == Encoding("#", "$", "*", "!", "@")
    assert message.field("MSH", 3) == "RIS"
    assert message.field("PID", 3) == "77"
    assert message.field("PID", 5, 2) == "ANN#X"
    assert message.field("PID", 5, 2, repetition=2) == "JANE"


def test_a_line_that_is_no_segment_continues_the_previous_one():
    message = parse("MSH|^~\\&|A\rOBX|1|TX|||first line\nsecond line\rNTE|1")
    assert message.field("OBX", 5) == "first line\nsecond line"
    assert message.segment("NTE") is not None


def test_a_bare_msh_is_a_message():
    message = parse("MSH|^~\\&")
    assert message.field("MSH", 2) == "^~\\&"
    assert message.control_id == ""


def test_latin1_bytes_are_read():
    message = parse("MSH|^~\\&|A\rPID|1||1||LEFÈVRE".encode("latin-1"))
    assert message.field("PID", 5) == "LEFÈVRE"


@pytest.mark.parametrize(("text", "why"), [
    ("", "empty"),
    ("  \r\n", "empty"),
    ("PID|1||123", "begin with an MSH"),
    ("hello world, not HL7 at all", "begin with an MSH"),
    ("MSH|^~|A", "four encoding characters"),
    ("MSH|^^\\&|A", "five distinct"),
    ("MSHA^~\\&|A", "field separator"),
    ("MSH|", "cut short"),
])
def test_garbage_is_refused_with_a_clear_message(text: str, why: str):
    with pytest.raises(InvalidHl7, match=why) as raised:
        parse(text)
    assert isinstance(raised.value, InvalidInput)
    assert raised.value.code == "invalid_hl7"


@given(st.text())
def test_escape_then_parse_gives_the_text_back(text: str):
    clean = text.replace("\r\n", "\n").replace("\r", "\n")
    line = render([["MSH", "A"], ["NTE", "1", "", escape(text)]])
    message = parse(line)
    nte = message.segment("NTE")
    assert nte is not None
    assert message.encoding.unescape(nte.raw(3)) == clean


def test_render_trims_trailing_empty_fields():
    assert render([["MSH", "A", "", ""], ["MSA", "AA", "1", ""]]) == "MSH|^~\\&|A\rMSA|AA|1\r"
