"""Orders in: ORM^O01 and OMI^O23 samples (tests/data/hl7, written after the HL7 v2.5
chapter 4 examples and IHE PAM FR for the INS), including a messy one."""

from __future__ import annotations

from pathlib import Path

import pytest

from telerad.hl7.messages import InvalidHl7, parse
from telerad.hl7.orders import (
    IncompleteOrder,
    Order,
    UnsupportedMessage,
    guess_modality,
    read_orders,
)
from telerad.workflow.requests.checks import MODALITY, RequestForm, ins_valid, problems
from telerad.workflow.sites.models import Urgency

DATA = Path(__file__).parent.parent / "data" / "hl7"


def _one(name: str) -> Order:
    orders = read_orders(parse((DATA / name).read_bytes()))
    assert len(orders) == 1
    return orders[0]


def test_orm_o01_ct_head():
    order = _one("orm_o01_ct_head.hl7")
    assert order.message_type == "ORM^O01"
    assert order.control_id == "MSG00417"
    assert order.order_control == "NW"
    assert (order.patient_id, order.patient_id_authority, order.ins) == ("784512", "CHV", "")
    assert order.patient_name == "MARTIN^PAUL^JEAN^M."
    assert (order.patient_birth_date, order.patient_sex) == ("19580412", "M")
    assert order.requesting_physician == "DURAND^CLAIRE^^DR"
    assert order.requesting_physician_id == "10101010101"
    assert (order.placer_order_number, order.filler_order_number) == ("ORD448811", "")
    assert order.accession_number == "ACC-2025-0311"
    assert (order.procedure_code, order.procedure_text) == ("CTHEAD", "CT head without contrast")
    assert order.modality == "CT"
    assert order.clinical_question == "Hématome sous-dural ?"
    assert order.clinical_context == "Chute, INR 3.2, somnolent"
    assert (order.priority, order.urgency) == ("S", Urgency.LIFE_THREATENING)


def test_omi_o23_with_ins_tq1_and_ipc():
    order = _one("omi_o23_cta.hl7")
    assert order.message_type == "OMI^O23"
    assert order.patient_id == "IPP000991"
    assert order.ins == "285047511223375"
    assert ins_valid(order.ins)
    assert order.patient_name == "DUPONT^Anne^Marie^Mme"  # the legal name, not the used one
    assert (order.patient_birth_date, order.patient_sex) == ("19850420", "F")
    assert order.requesting_physician == "ROUX^Marc^^Dr"
    assert (order.placer_order_number, order.filler_order_number) == ("PL-77812", "FI-55120")
    assert order.accession_number == "ACC900812"  # IPC-1
    assert order.modality == "CT"  # IPC-5
    assert order.procedure_text == "Angioscanner des troncs supra-aortiques"
    assert order.clinical_question == "Déficit brachio-facial gauche depuis 01h30; Dissection ?"
    assert order.urgency == "life_threatening"  # TQ1-9


def test_messy_order_is_read():
    """LF endings, blank lines, Latin-1, padding, no ORC, priority in OBR-5, no modality."""
    order = _one("orm_o01_messy.hl7")
    assert order.order_control == "NW"
    assert order.patient_id == "55012"
    assert order.patient_name == "O'BRIEN^Seán"
    assert order.patient_birth_date == "19710302"
    assert order.patient_sex == ""  # U is not a DICOM sex
    assert order.requesting_physician == "LEGRAND^Luc"
    assert order.placer_order_number == "88120"
    assert order.procedure_text == "IRM cérébrale & angio-IRM"
    assert order.modality == "MR"  # guessed from the text
    assert order.clinical_question == "céphalées brutales, vomissements"
    assert (order.priority, order.urgency) == ("A", Urgency.URGENT)


def test_cancel_needs_no_procedure():
    order = _one("orm_o01_cancel.hl7")
    assert (order.order_control, order.placer_order_number) == ("CA", "ORD448811")
    assert order.urgency == ""


def test_values_fit_the_request_form():
    for name in ("orm_o01_ct_head.hl7", "omi_o23_cta.hl7", "orm_o01_messy.hl7"):
        order = _one(name)
        assert MODALITY.match(order.modality)
        assert order.urgency in {u.value for u in Urgency}


@pytest.mark.parametrize("name", ["orm_o01_ct_head.hl7", "omi_o23_cta.hl7",
                                  "orm_o01_messy.hl7"])
def test_new_orders_make_a_request_that_may_be_filed(name: str):
    order = _one(name)
    form = RequestForm(
        site_id=1, patient_id=order.patient_id, patient_name=order.patient_name,
        patient_birth_date=order.patient_birth_date, patient_sex=order.patient_sex,
        ins=order.ins, requesting_physician=order.requesting_physician,
        clinical_context=order.clinical_context, clinical_question=order.clinical_question,
        urgency=Urgency(order.urgency), modality=order.modality,
        exam_asked=order.procedure_text)
    assert problems(form) == {}


def test_adt_is_not_an_order():
    with pytest.raises(UnsupportedMessage, match="not ADT\\^A08") as raised:
        read_orders(parse((DATA / "adt_a08.hl7").read_bytes()))
    assert raised.value.hl7_error == "200"


def test_several_orders_in_one_message():
    text = ("MSH|^~\\&|RIS||||2025||ORM^O01|7|P|2.5\rPID|1||42||DOE^J\r"
            "ORC|NW|A1\rOBR|1|A1||X^CT chest\rORC|NW|A2\rOBR|1|A2||Y^Echographie abdominale")
    orders = read_orders(parse(text))
    assert [(o.placer_order_number, o.modality) for o in orders] == [("A1", "CT"), ("A2", "US")]


@pytest.mark.parametrize("priority", ["R", "ROUTINE"])
def test_routine_is_scheduled(priority: str):
    text = (f"MSH|^~\\&|RIS||||2025||ORM^O01|7|P|2.5\rPID|1||42||DOE^J\r"
            f"ORC|NW|A1|||||^^^^^{priority}\rOBR|1|A1||X^CT chest")
    assert read_orders(parse(text))[0].urgency == Urgency.SCHEDULED


def test_missing_fields_are_all_listed():
    text = "MSH|^~\\&|RIS||||2025||ORM^O01|7|P|2.5\rPID|1\rORC|NW\rOBR|1"
    with pytest.raises(IncompleteOrder) as raised:
        read_orders(parse(text))
    assert raised.value.missing == ["PID-3 (patient identifier)", "PID-5 (patient name)",
                                    "ORC-2 or OBR-2 (placer order number)",
                                    "OBR-4 (universal service identifier)"]
    assert "PID-3 (patient identifier), PID-5" in raised.value.message
    assert isinstance(raised.value, InvalidHl7)


def test_order_without_pid_or_orc():
    with pytest.raises(IncompleteOrder, match="PID \\(patient\\), ORC"):
        read_orders(parse("MSH|^~\\&|RIS||||2025||OMI^O23|7|P|2.5\rNTE|1"))


@pytest.mark.parametrize(("text", "modality"), [
    ("Scanner thoracique", "CT"), ("TDM TAP", "CT"), ("IRM rachis lombaire", "MR"),
    ("MRI brain", "MR"), ("Échographie pelvienne", "US"), ("Radiographie thorax", "DX"),
    ("Mammographie bilatérale", "MG"), ("TEP-TDM", "CT"), ("Consultation", ""),
])
def test_guess_modality(text: str, modality: str):
    assert guess_modality(text) == modality
