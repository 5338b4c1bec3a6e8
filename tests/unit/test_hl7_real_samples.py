"""Real messages from other projects (tests/data/hl7/upstream, see SOURCES.md there): every
order is read by read_orders, every ADT by read_patient_updates, every ORU by parse."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest

from telerad.hl7.ack import AckCode, ack
from telerad.hl7.messages import Message, parse
from telerad.hl7.orders import Order, UnsupportedMessage, read_orders
from telerad.hl7.patients import PatientUpdate, read_patient_updates

UPSTREAM = Path(__file__).parent.parent / "data" / "hl7" / "upstream"
NOW = dt.datetime(2025, 3, 14, 12, 0, tzinfo=dt.UTC)


def _read(name: str) -> Message:
    return parse((UPSTREAM / name).read_bytes())


def _kinds() -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {"orders": [], "adt": [], "oru": []}
    for path in sorted(UPSTREAM.glob("*.hl7")):
        message_type = parse(path.read_bytes()).message_type
        kinds[{"ORM": "orders", "OMI": "orders", "ADT": "adt", "ORU": "oru"}[message_type]
              ].append(path.name)
    return kinds


KINDS = _kinds()


def test_every_sample_is_documented_and_unchanged():
    listed = dict(re.findall(r"^\| `([^`]+\.hl7)` \|.*\| ([0-9a-f]{64}) \|$",
                             (UPSTREAM / "SOURCES.md").read_text("utf-8"), re.MULTILINE))
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in UPSTREAM.glob("*.hl7")}
    assert files == listed
    assert [len(names) for names in KINDS.values()] == [5, 4, 3]


@pytest.mark.parametrize("name", KINDS["orders"])
def test_every_real_order_is_read(name: str):
    message = _read(name)
    orders = read_orders(message)
    assert len(orders) == 1
    order = orders[0]
    assert order.order_control == "NW"
    assert order.patient_id
    assert order.patient_name
    assert order.placer_order_number
    assert order.procedure_code or order.procedure_text
    # ... and telerad can answer it.
    back = parse(ack(message, code=AckCode.ACCEPT, control_id="A1", now=NOW))
    assert (back.field("MSA", 1), back.field("MSA", 2)) == ("AA", message.control_id)


def _one(name: str) -> Order:
    (order,) = read_orders(_read(name))
    return order


def test_dcm4che_orm_o01_v231():
    order = _one("dcm4che_orm_o01.hl7")
    assert (order.message_type, order.control_id) == ("ORM^O01", "103106")
    assert (order.patient_id, order.patient_id_authority) == ("583295", "ADT1")
    assert (order.patient_name, order.patient_sex) == ("DOE^J1", "M")
    assert (order.placer_order_number, order.filler_order_number) == ("A103Z", "B103Z")
    assert (order.procedure_code, order.procedure_text) == ("P1", "Procedure 1")
    assert order.accession_number == "MOF5026"  # OBR-18
    assert order.modality == "MR"  # OBR-24
    assert order.requesting_physician == "ESTRADA^JAIME^P^DR"
    assert order.requesting_physician_id == "7101"
    assert (order.priority, order.urgency) == ("S", "life_threatening")  # ORC-7.6


def test_dcm4che_omi_o23_procedure_only_in_obr_44():
    """OBR-4 empty, the procedure in OBR-44: read (it was refused before the fix)."""
    order = _one("dcm4che_omi_o23_head_ct.hl7")
    assert (order.procedure_code, order.procedure_text) == ("24725-4", "Head CT")
    assert order.accession_number == "ACC"  # IPC-1
    assert order.modality == "CT"  # IPC-5
    # PID-2 holds a chip number, PID-3 the patient identifier.
    assert (order.patient_id, order.patient_id_authority) == ("4711471151", "zxcv")
    assert (order.patient_name, order.patient_sex) == ("DOE^Shadow", "F")  # "F^"


def test_dcm4che_omi_o23_lf_endings_and_non_ascii_name():
    order = _one("dcm4che_omi_o23_lf.hl7")
    assert order.patient_name == "Test1^BulleræøåÆØÅ6"
    assert order.procedure_code == "$PROCEDURE_CODE$"  # a placeholder, as sent
    assert order.modality == "CR"
    assert order.urgency == ""


def test_dcm4che_omi_o23_imaging_order():
    order = _one("dcm4che_omi_o23_imaging_order.hl7")
    assert (order.patient_id, order.patient_name) == ("PID_1", "Smith^Lucy^Mark")
    assert order.placer_order_number == "PlacerOrderNumberImagingServiceRequest"
    assert order.accession_number == "AccessionNumber"
    assert (order.procedure_code, order.modality) == ("10637-7", "CT")
    assert order.requesting_physician == ("RequestingPhysicianFN^RequestingPhysicianGN"
                                          "^RequestingPhysicianMN^DR")
    assert order.clinical_question.startswith("Rheumatoid, other arthritis")  # OBR-31.2
    assert order.urgency == ""  # ORC-7.6 is no HL7 priority


def test_nhapi_lab_order_has_no_modality():
    order = _one("nhapi_orm_o01.hl7")
    assert (order.patient_id, order.patient_name) == ("12001", "Jones^John^^Mr.")
    assert (order.procedure_code, order.procedure_text) == ("003038", "Urinalysis")
    assert order.modality == ""  # not imaging: the request form will ask for one


@pytest.mark.parametrize(("name", "expected"), [
    ("dcm4che_adt_a08.hl7", PatientUpdate(
        event="A08", control_id="103132", patient_id="583295", patient_id_authority="ADT1",
        patient_name="SILVERHEELS^JAY", patient_birth_date="19000102", patient_sex="M")),
    ("dcm4che_adt_a08_veterinary.hl7", PatientUpdate(
        event="A08", control_id="100212", patient_id="4711471151", patient_id_authority="zxcv",
        patient_name="Smith^Shadow", patient_birth_date="20141014", patient_sex="F")),
    ("dcm4che_adt_a40.hl7", PatientUpdate(
        event="A40", control_id="1002122", patient_id="NEW_PID_1", patient_id_authority="ADT1",
        patient_name="New_Smith^Lucy^Mark", patient_birth_date="20141014", patient_sex="F",
        prior_patient_id="OLD_PID_1")),
])
def test_real_a08_and_a40_are_read(name: str, expected: PatientUpdate):
    assert read_patient_updates(_read(name)) == [expected]


def test_every_real_adt_is_read_or_refused_as_unsupported():
    for name in KINDS["adt"]:
        message = _read(name)
        if message.trigger_event in ("A08", "A40"):
            assert read_patient_updates(message)
        else:
            with pytest.raises(UnsupportedMessage, match="not ADT\\^A01"):
                read_patient_updates(message)
    assert "hl7apy_adt_a01.hl7" in KINDS["adt"]


@pytest.mark.parametrize("name", KINDS["oru"])
def test_every_real_oru_parses(name: str):
    message = _read(name)
    assert (message.message_type, message.trigger_event) == ("ORU", "R01")
    assert message.segment("PID") is not None
    assert message.segment("OBR") is not None
    obxs = message.segments("OBX")
    assert obxs
    assert all(obx.value(2) and obx.raw(3) for obx in obxs)  # value type, identifier
    # Final results (dcm4che's OBX-6 has its flag and status one field late: kept as sent).
    assert "F" in {obx.value(11) for obx in obxs}


def test_dcm4che_oru_text_and_flags():
    message = _read("dcm4che_oru_r01.hl7")
    obxs = message.segments("OBX")
    assert len(obxs) == 13  # the doubled separators made no empty segment
    assert obxs[6].value(5).startswith("Infiltrate probably representing bronchopneumonia")
    assert obxs[6].value(8) == "AA"  # critical abnormal
    assert message.field("OBR", 18) == "ACC1"


def test_dcm4che_oru_pdf_is_read_back_whole():
    message = _read("dcm4che_oru_r01_pdf.hl7")
    (ed,) = [obx for obx in message.segments("OBX") if obx.value(2) == "ED"]
    assert [ed.value(5, c) for c in (2, 3, 4)] == ["Application", "PDF", "Base64"]
    pdf = base64.b64decode(ed.value(5, 5), validate=True)
    assert pdf.startswith(b"%PDF-1.3")
    assert pdf.rstrip().endswith(b"%%EOF")
    # Its cross-reference table is where startxref says: the base64 came through intact.
    startxref = int(pdf.rsplit(b"startxref", 1)[1].split()[0])
    assert pdf[startxref:startxref + 4] == b"xref"


def test_python_hl7_normative_edition_oru():
    message = _read("python_hl7_oru_r01.hl7")
    assert message.control_id == "CNTRL-3456"
    assert message.field("PID", 5, 1) == "EVERYWOMAN"
    assert [obx.value(2) for obx in message.segments("OBX")] == ["SN", "FN"]
    assert message.segments("OBX")[0].value(5, 2) == "182"
