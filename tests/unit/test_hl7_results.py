"""Results out: ORU^R01 built from a report, read back by telerad and by python-hl7."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt

import hl7
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from telerad.hl7.messages import Message, parse
from telerad.hl7.mllp import Deframer, frame
from telerad.hl7.orders import _identifiers
from telerad.hl7.results import ReportResult, ResultStatus, oru_r01

PARIS = dt.timezone(dt.timedelta(hours=1))
NOW = dt.datetime(2025, 3, 14, 2, 41, 6, tzinfo=PARIS)
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n\x00\x0b\x1c\r\n|^~\\&\n%%EOF\n"
TEXT = ("Indication : céphalées brutales.\n"
        "Résultat : pas d'hématome | ratio 1^2 & A~B \\ fin.\n"
        "\n"
        "  Conclusion : examen normal.")
RESULT = ReportResult(
    control_id="TR12E3", sending_facility="TELERAD_NORD", receiving_application="RIS",
    receiving_facility="CH_VALENCE", patient_id="784512", patient_id_authority="CHV",
    ins="285047511223375", patient_name="MARTIN^Paul^Jean^M.", patient_birth_date="19580412",
    patient_sex="M", placer_order_number="ORD448811", filler_order_number="FI-42",
    accession_number="ACC-2025-0311", procedure_code="CTHEAD",
    procedure_text="Scanner cérébral sans injection", requesting_physician="DURAND^Claire^^Dr",
    result_status="F", observed_at=dt.datetime(2025, 3, 14, 2, 10, tzinfo=PARIS),
    signed_at=dt.datetime(2025, 3, 14, 2, 41, 5, tzinfo=PARIS),
    radiologist_name="LEROY^Émile", radiologist_id="10003456789", text=TEXT, pdf=PDF)


def _text(message: Message) -> str:
    """The report text: every TX OBX-5, unescaped, one per line (whitespace kept)."""
    return "\n".join(obx.components(5)[0] for obx in message.segments("OBX")
                     if obx.value(2) == "TX")


def _pdf(message: Message) -> bytes:
    (ed,) = [obx for obx in message.segments("OBX") if obx.value(2) == "ED"]
    assert [ed.value(5, c) for c in (2, 3, 4)] == ["application", "pdf", "Base64"]
    return base64.b64decode(ed.value(5, 5), validate=True)


def test_structure_and_header():
    text = oru_r01(RESULT, now=NOW)
    assert text.endswith("\r")
    assert "\n" not in text
    message = parse(text)
    assert [s.name for s in message.all_segments] == ["MSH", "PID", "ORC", "OBR",
                                                      "OBX", "OBX", "OBX", "OBX", "OBX"]
    msh = message.msh
    assert [msh.value(n) for n in (3, 4, 5, 6)] == ["TELERAD", "TELERAD_NORD", "RIS",
                                                    "CH_VALENCE"]
    assert msh.value(7) == "20250314024106+0100"
    assert msh.raw(9) == "ORU^R01^ORU_R01"
    assert (message.control_id, msh.value(11), message.version) == ("TR12E3", "P", "2.5")
    assert msh.value(18) == "UNICODE UTF-8"
    assert msh.value(15) == msh.value(16) == ""  # original acknowledgement mode


def test_patient_order_and_request():
    message = parse(oru_r01(RESULT, now=NOW))
    pid = message.segment("PID")
    assert pid is not None
    # Read back the way incoming orders are read: the INS apart, by type and authority.
    assert _identifiers(pid) == ("784512", "CHV", "285047511223375")
    assert pid.value(3, 4, repetition=2, subcomponent=2) == "1.2.250.1.213.1.4.8"
    assert pid.raw(5) == "MARTIN^Paul^Jean^^M.^^L"  # XPN: the prefix after the suffix
    assert (pid.value(7), pid.value(8)) == ("19580412", "M")
    orc = message.segment("ORC")
    assert orc is not None
    assert [orc.value(n) for n in (1, 2, 3)] == ["RE", "ORD448811", "FI-42"]
    assert orc.raw(12) == "^DURAND^Claire^^^Dr"
    obr = message.segment("OBR")
    assert obr is not None
    assert (obr.value(2), obr.value(3)) == ("ORD448811", "FI-42")
    assert (obr.value(4, 1), obr.value(4, 2)) == ("CTHEAD", "Scanner cérébral sans injection")
    assert obr.value(7) == "20250314021000+0100"
    assert obr.raw(16) == "^DURAND^Claire^^^Dr"
    assert obr.value(18) == "ACC-2025-0311"
    assert obr.value(22) == "20250314024105+0100"
    assert (obr.value(24), obr.value(25)) == ("RAD", "F")
    assert obr.raw(32) == "10003456789&LEROY&Émile"


def test_one_tx_obx_per_line_then_the_pdf():
    message = parse(oru_r01(RESULT, now=NOW))
    obxs = message.segments("OBX")
    assert [o.value(1) for o in obxs] == ["1", "2", "3", "4", "5"]
    assert [o.value(2) for o in obxs] == ["TX", "TX", "TX", "TX", "ED"]
    assert {o.raw(3) for o in obxs} == {"18748-4^Diagnostic Imaging Report^LN"}
    assert [o.value(4) for o in obxs] == ["1", "1", "1", "1", "2"]
    assert {o.value(11) for o in obxs} == {"F"}
    assert {o.value(14) for o in obxs} == {"20250314024105+0100"}
    assert {o.raw(16) for o in obxs} == {"10003456789^LEROY^Émile"}
    assert obxs[1].raw(5) == ("Résultat : pas d'hématome \\F\\ ratio 1\\S\\2 \\T\\ A\\R\\B "
                              "\\E\\ fin.")
    assert _text(message) == TEXT
    assert _pdf(message) == PDF


def test_read_back_from_utf8_bytes_and_through_mllp():
    deframer = Deframer()
    (received,) = deframer.feed(frame(oru_r01(RESULT, now=NOW).encode("utf-8")))
    message = parse(received)
    assert _text(message) == TEXT
    assert _pdf(message) == PDF
    assert message.field("PID", 5, 2) == "Paul"


def test_python_hl7_reads_it():
    message = hl7.parse(oru_r01(RESULT, now=NOW))
    assert str(message.segment("MSH")(9)) == "ORU^R01^ORU_R01"
    assert str(message.segment("MSH")(10)) == "TR12E3"
    assert str(message.segment("PID")(3)(2)(1)) == "285047511223375"
    assert str(message.segment("PID")(3)(2)(5)) == "INS"
    assert str(message.segment("OBR")(25)) == "F"
    lines = [message.unescape(str(obx(5))) for obx in message.segments("OBX")
             if str(obx(2)) == "TX"]
    assert "\n".join(lines) == TEXT
    (ed,) = [obx for obx in message.segments("OBX") if str(obx(2)) == "ED"]
    assert base64.b64decode(str(ed(5)(1)(5))) == PDF


@pytest.mark.parametrize("status", ["P", "F", "C"])
def test_result_status_on_obr_and_every_obx(status: str):
    message = parse(oru_r01(dataclasses.replace(RESULT, result_status=status), now=NOW))
    assert message.field("OBR", 25) == status
    assert {obx.value(11) for obx in message.segments("OBX")} == {status}
    assert ResultStatus(status).value == status


def test_critical_flags_the_text_not_the_pdf():
    plain = parse(oru_r01(RESULT, now=NOW))
    assert {obx.value(8) for obx in plain.segments("OBX")} == {""}
    critical = parse(oru_r01(dataclasses.replace(RESULT, critical=True), now=NOW))
    assert [obx.value(8) for obx in critical.segments("OBX")] == ["AA"] * 4 + [""]


def test_minimal_result_without_pdf_ins_or_order():
    result = ReportResult(
        control_id="C1", sending_facility="T", receiving_application="RIS",
        receiving_facility="H", patient_id="42", patient_name="DOE^J", result_status="P",
        observed_at=dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        signed_at=dt.datetime(2025, 1, 2, 3, 5, tzinfo=dt.UTC), radiologist_name="ROE",
        text="Normal.")
    text = oru_r01(result, now=dt.datetime(2025, 1, 2, 3, 5, 1, tzinfo=dt.UTC))
    assert "PID|1||42^^^^PI||DOE^J^^^^^L\r" in text
    assert "ORC|RE\r" in text
    message = parse(text)
    assert [o.value(2) for o in message.segments("OBX")] == ["TX"]
    assert message.field("OBR", 7) == "20250102030405+0000"
    obr = message.segment("OBR")
    assert obr is not None
    assert obr.raw(32) == "&ROE"  # CNN: no ID, then the family name
    assert obr.value(32, subcomponent=2) == "ROE"
    assert message.field("ORC", 12) == obr.value(16) == ""


def test_same_version_same_message():
    assert oru_r01(RESULT, now=NOW) == oru_r01(dataclasses.replace(RESULT), now=NOW)


def test_control_characters_cannot_break_the_frame():
    result = dataclasses.replace(RESULT, text="a\x0bb\x1cc\x00d\te",
                                 patient_name="DO\x0bE^J\x1c")
    text = oru_r01(result, now=NOW)
    assert "a\\X0B\\b\\X1C\\c\\X00\\d\te" in text
    message = parse(Deframer().feed(frame(text.encode("utf-8")))[0])
    assert _text(message) == "a\x0bb\x1cc\x00d\te"
    pid = message.segment("PID")
    assert pid is not None
    assert pid.raw(5) == "DO\\X0B\\E^J^^^^^L"  # a trailing 0x1C is trimmed as whitespace
    assert pid.value(5) == "DO\x0bE"


@pytest.mark.parametrize(("change", "named"), [
    ({"result_status": "X"}, "result_status"),
    ({"signed_at": dt.datetime(2025, 3, 14, 2, 41)}, "signed_at (not timezone-aware)"),
    ({"observed_at": dt.datetime(2025, 3, 14, 2, 10)}, "observed_at (not timezone-aware)"),
    ({"text": " \n "}, "text (empty)"),
    ({"patient_id": ""}, "patient_id"),
    ({"radiologist_name": ""}, "radiologist_name"),
    ({"patient_sex": "X"}, "patient_sex"),
    ({"patient_birth_date": "1958-04-12"}, "patient_birth_date"),
    ({"pdf": b""}, "pdf (empty)"),
])
def test_invalid_results_are_refused(change: dict[str, object], named: str):
    with pytest.raises(ValueError, match="a report result needs valid") as raised:
        dataclasses.replace(RESULT, **change)  # type: ignore[arg-type]
    assert named in str(raised.value)


def test_now_must_be_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        oru_r01(RESULT, now=dt.datetime(2025, 3, 14, 2, 41, 6))


@given(st.text(max_size=300))
def test_any_text_survives(text: str):
    assume(text.strip())
    message_text = oru_r01(dataclasses.replace(RESULT, text=text, pdf=None), now=NOW)
    (received,) = Deframer().feed(frame(message_text.encode("utf-8")))
    message = parse(received)
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert _text(message) == expected
    assert len(message.segments("OBX")) == expected.count("\n") + 1
    assert [s.name for s in message.all_segments][:4] == ["MSH", "PID", "ORC", "OBR"]


@given(st.binary(min_size=1, max_size=2000))
def test_any_pdf_bytes_survive(data: bytes):
    message = parse(oru_r01(dataclasses.replace(RESULT, pdf=data), now=NOW))
    assert _pdf(message) == data
