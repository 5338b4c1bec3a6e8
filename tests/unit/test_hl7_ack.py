"""ACKs: mirrored header, MSA, ERR; read back by telerad and by python-hl7."""

from __future__ import annotations

import datetime as dt

import hl7
import pytest

from telerad.errors import InvalidInput
from telerad.hl7.ack import AckCode, ack
from telerad.hl7.messages import InvalidHl7, parse
from telerad.hl7.orders import IncompleteOrder

NOW = dt.datetime(2025, 3, 14, 10, 15, 2, tzinfo=dt.timezone(dt.timedelta(hours=1)))
ORDER = parse("MSH|^~\\&|RIS^1.2.3^ISO|CH_VALENCE|TELERAD|TR|20250314101502||ORM^O01^ORM_O01"
              "|MSG00417|T|2.3.1\rPID|1||784512")


def test_accept_mirrors_the_header():
    text = ack(ORDER, code=AckCode.ACCEPT, control_id="ACK1", now=NOW)
    back = parse(text)
    assert text.endswith("\r")
    assert "\n" not in text
    assert [s.name for s in back.all_segments] == ["MSH", "MSA"]
    msh = back.msh
    assert (msh.value(3), msh.value(4)) == ("TELERAD", "TR")
    assert (msh.value(5), msh.value(5, 2), msh.value(6)) == ("RIS", "1.2.3", "CH_VALENCE")
    assert msh.raw(5) == "RIS^1.2.3^ISO"
    assert msh.value(7) == "20250314101502+0100"
    assert msh.raw(9) == "ACK^O01^ACK"
    assert back.control_id == "ACK1"
    assert msh.value(11) == "T"
    assert back.version == "2.3.1"
    assert (back.field("MSA", 1), back.field("MSA", 2)) == ("AA", "MSG00417")
    assert back.segment("ERR") is None


def test_error_carries_err_segment():
    error = IncompleteOrder(["PID-5 (patient name)", "OBR-4 (universal service identifier)"])
    text = ack(ORDER, code=AckCode.ERROR, control_id="ACK2", now=NOW, error=error)
    back = parse(text)
    assert back.field("MSA", 1) == "AE"
    assert back.field("MSA", 2) == "MSG00417"
    assert back.field("MSA", 3).startswith("the order lacks PID-5")
    err = back.segment("ERR")
    assert err is not None
    assert err.raw(2) == "PID^1^5"
    assert err.raw(3) == "101^Required field missing^HL70357"
    assert err.value(4) == "E"
    assert err.value(5) == "incomplete_hl7_order"
    assert err.value(8) == error.message


def test_reject_of_unreadable_bytes_names_nobody():
    text = ack(None, code=AckCode.REJECT, control_id="ACK3", now=NOW.replace(tzinfo=None),
               error=InvalidHl7("an HL7 v2 message must begin with an MSH segment"))
    back = parse(text)
    assert back.msh.raw(9) == "ACK"
    assert back.msh.value(7) == "20250314101502"
    assert back.version == "2.5"
    assert (back.field("MSA", 1), back.field("MSA", 2)) == ("AR", "")
    assert back.field("ERR", 3) == "100"


def test_generic_error_is_application_internal_error_and_text_is_escaped():
    text = ack(ORDER, code=AckCode.ERROR, control_id="ACK4", now=NOW,
               error=InvalidInput("a|b^c&d~e\\f"))
    back = parse(text)
    assert back.field("ERR", 3) == "207"
    assert back.field("ERR", 8) == "a|b^c&d~e\\f"
    assert back.field("MSA", 3) == "a|b^c&d~e\\f"


def test_received_delimiters_are_transcoded():
    odd = parse("MSH#$*!@#RIS$X#HOSP#TELERAD#TR#2025##ORM$O01#9#P#2.5")
    back = parse(ack(odd, code=AckCode.ACCEPT, control_id="A", now=NOW))
    assert back.msh.raw(5) == "RIS^X"
    assert back.encoding.field == "|"


def test_error_codes_need_an_error():
    with pytest.raises(ValueError, match="needs the error"):
        ack(ORDER, code=AckCode.ERROR, control_id="A", now=NOW)


def test_python_hl7_reads_our_ack():
    """Another implementation reads what we write (the MLLP peers of issue 5 use it)."""
    error = IncompleteOrder(["PID-3 (patient identifier)"])
    theirs = hl7.parse(ack(ORDER, code=AckCode.ERROR, control_id="ACK5", now=NOW, error=error))
    assert str(theirs.segment("MSA")[1]) == "AE"
    assert str(theirs.segment("MSA")[2]) == "MSG00417"
    assert str(theirs.segment("MSH")[9]) == "ACK^O01^ACK"
    assert str(theirs.segment("ERR")[3][0][0]) == "101"
