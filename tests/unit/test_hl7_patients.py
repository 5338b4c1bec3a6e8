"""Patient updates in: ADT^A08 (update) and ADT^A40 (merge), refusals naming the field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from telerad.hl7.ack import AckCode, ack
from telerad.hl7.messages import InvalidHl7, parse
from telerad.hl7.orders import UnsupportedMessage
from telerad.hl7.patients import IncompletePatientUpdate, PatientUpdate, read_patient_updates

DATA = Path(__file__).parent.parent / "data" / "hl7"
_MSH = "MSH|^~\\&|PAS|CH_VALENCE|TELERAD|TELERAD|20250314120000||{}|MSG9|P|2.5\r"


def test_a08_sample():
    (update,) = read_patient_updates(parse((DATA / "adt_a08.hl7").read_bytes()))
    assert update == PatientUpdate(
        event="A08", control_id="MSG00502", patient_id="784512", patient_id_authority="CHV",
        patient_name="MARTIN^PAUL^JEAN", patient_birth_date="19580412", patient_sex="M")


def test_a08_with_ins_and_legal_name():
    text = (_MSH.format("ADT^A08^ADT_A01") + "EVN|A08|20250314120000\r"
            "PID|1||IPP77^^^CHU&1.2.3&ISO^PI~1850420123456^^^ASIP-SANTE-INS-NIR"
            "&1.2.250.1.213.1.4.8&ISO^INS||LEFÈVRE^Anne^^^^^D~DUPONT^Anne^Marie^^Mme^^L"
            "||1985-04-20|F\r")
    (update,) = read_patient_updates(parse(text))
    assert (update.patient_id, update.patient_id_authority) == ("IPP77", "CHU")
    assert update.ins == "1850420123456"
    assert update.patient_name == "DUPONT^Anne^Marie^Mme"
    assert (update.patient_birth_date, update.patient_sex) == ("19850420", "F")
    assert update.prior_patient_id == ""


def test_a40_reads_every_pid_mrg_pair():
    text = (_MSH.format("ADT^A40^ADT_A39") + "EVN|A40|20250314120000\r"
            "PID|1||1001^^^CHV^PI||DOE^JANE||19700101|F\r"
            "PD1|||CH_VALENCE\r"
            "MRG|9001^^^CHV^PI~1700101123456^^^^INS\r"
            "PV1|1|N\r"
            "PID|2||1002^^^CHV^PI||ROE^RICHARD||19600202|U\r"
            "MRG|^^^CHV~ID-X^^^^INS|||9002\r")
    updates = read_patient_updates(parse(text))
    assert [(u.event, u.patient_id, u.prior_patient_id) for u in updates] == [
        ("A40", "1001", "9001"), ("A40", "1002", "ID-X")]
    assert updates[0].patient_name == "DOE^JANE"
    assert updates[1].patient_sex == ""  # U is not a DICOM sex
    assert {u.control_id for u in updates} == {"MSG9"}


def test_a40_v23_prior_patient_id_in_mrg_4():
    text = _MSH.format("ADT^A40") + "PID|||77||X^Y\rMRG||||66\r"
    assert read_patient_updates(parse(text))[0].prior_patient_id == "66"


def test_a40_without_mrg_names_the_field():
    text = (_MSH.format("ADT^A40^ADT_A39") + "PID|1||1001||DOE^J\rMRG|9001\r"
            "PID|2||1002||ROE^R\r")
    with pytest.raises(IncompletePatientUpdate) as raised:
        read_patient_updates(parse(text))
    error = raised.value
    assert error.missing == ["MRG-1 (prior patient identifier list)"]
    assert "MRG-1" in error.message
    assert error.hl7_location == "MRG^2^1"  # the second pair
    assert (error.hl7_error, error.code) == ("101", "incomplete_hl7_patient_update")
    assert isinstance(error, InvalidHl7)


def test_a40_with_empty_mrg_1():
    text = _MSH.format("ADT^A40") + "PID|1||1001||DOE^J\rMRG|^^^CHV\r"
    with pytest.raises(IncompletePatientUpdate, match="MRG-1"):
        read_patient_updates(parse(text))


def test_pid_without_identifier_names_the_field():
    text = _MSH.format("ADT^A08") + "PID|1||^^^CHV||DOE^J\r"
    with pytest.raises(IncompletePatientUpdate, match="lacks PID-3") as raised:
        read_patient_updates(parse(text))
    assert raised.value.hl7_location == "PID^1^3"


def test_no_pid_at_all():
    with pytest.raises(IncompletePatientUpdate, match="PID \\(patient\\)"):
        read_patient_updates(parse(_MSH.format("ADT^A08") + "EVN|A08\r"))


def test_mrg_before_pid():
    with pytest.raises(IncompletePatientUpdate, match="PID \\(patient\\) before MRG"):
        read_patient_updates(parse(_MSH.format("ADT^A40") + "MRG|9\rPID|1||1||A^B\r"))


@pytest.mark.parametrize("kind", ["ADT^A01", "ADT^A04", "ADT^A47", "ORM^O01", "ORU^R01"])
def test_other_messages_are_unsupported(kind: str):
    text = _MSH.format(kind) + "PID|1||1001||DOE^J\rMRG|9001\r"
    with pytest.raises(UnsupportedMessage, match=f"not {kind.replace('^', '.')}") as raised:
        read_patient_updates(parse(text))
    assert raised.value.hl7_error == "200"


def test_event_from_evn_when_msh_9_has_none():
    text = "MSH|^~\\&|PAS||||2025||ADT|7|P|2.3\rEVN|A08|2025\rPID|1||42||DOE^J\r"
    assert read_patient_updates(parse(text))[0].event == "A08"


def test_refusal_makes_an_ae_ack():
    received = parse(_MSH.format("ADT^A40") + "PID|1||1001||DOE^J\r")
    with pytest.raises(IncompletePatientUpdate) as raised:
        read_patient_updates(received)
    text = ack(received, code=AckCode.ERROR, control_id="A1", error=raised.value,
               now=dt.datetime(2025, 3, 14, 12, 0, tzinfo=dt.UTC))
    back = parse(text)
    assert back.field("MSA", 1) == "AE"
    err = back.segment("ERR")
    assert err is not None
    assert err.raw(2) == "MRG^1^1"
    assert err.value(3) == "101"
    assert err.value(5) == "incomplete_hl7_patient_update"
    assert "DOE" not in text  # no patient data in the answer
