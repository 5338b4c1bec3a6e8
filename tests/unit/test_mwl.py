"""Modality Worklist items, C-FIND matching and responses (PS3.4 Annex K, §C.2.2): pure.

Every object produced is written to bytes (Explicit and Implicit VR Little Endian) and read
back before it is checked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import io
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

from telerad.dicom import mwl
from telerad.errors import InvalidQuery

#: Queries hold values pydicom calls invalid (ranges, wildcards, old forms): on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")

ENTRY = mwl.WorklistEntry(
    accession_number="ACC0001",
    patient_id="PID0001",
    patient_name="DOÉ^JANE",
    patient_birth_date="19800229",
    patient_sex="F",
    other_patient_id="280017512345678",
    study_instance_uid="1.2.826.0.1.3680043.8.498.77.1.1",
    requested_procedure_id="RP0001",
    requested_procedure_description="CT THORAX",
    requesting_physician="MARTIN^PAUL",
    reason_for_requested_procedure="Toux persistante : néoplasie ?",
    priority="HIGH",
    modality="CT",
    scheduled_station_ae_title="CT1",
    # 08:30 UTC in November is 09:30 in Paris (CET, UTC+1)
    scheduled_start=dt.datetime(2026, 11, 23, 8, 30, tzinfo=dt.UTC),
    site_zone="Europe/Paris",
    scheduled_procedure_step_id="SPS0001",
    scheduled_procedure_step_description="CT thorax sans injection",
    protocol_code_value="CTTHX",
    protocol_code_meaning="CT thorax",
)


def entry(**changes: Any) -> mwl.WorklistEntry:
    return dataclasses.replace(ENTRY, **changes)


def roundtrip(ds: Dataset, *, implicit: bool = False) -> Dataset:
    """Write ``ds`` to bytes and read it back (Explicit VR Little Endian by default)."""
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = implicit, True
    write_dataset(fp, ds)
    back = read_dataset(io.BytesIO(fp.getvalue()), implicit, True)
    for element in back.iterall():  # decode every value now
        _ = element.value
    return back


def query(sps: dict[str, str] | None = None, **keys: Any) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    if sps is not None:
        step = Dataset()
        for keyword, value in sps.items():
            setattr(step, keyword, value)
        ds.ScheduledProcedureStepSequence = [step]
    return roundtrip(ds)  # as the gateway gets it: decoded from bytes


def tags(ds: Dataset) -> list[int]:
    return sorted(int(tag) for tag in ds.keys())  # noqa: SIM118 - tags, not elements


# -- the item --------------------------------------------------------------------------


@pytest.mark.parametrize("implicit", [False, True])
def test_item_read_back_from_bytes_holds_every_attribute(implicit: bool) -> None:
    ds = roundtrip(mwl.item(ENTRY), implicit=implicit)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.PatientName == "DOÉ^JANE"
    assert ds.PatientName.family_name == "DOÉ"
    assert (ds.PatientID, ds.PatientBirthDate, ds.PatientSex) == ("PID0001", "19800229", "F")
    assert ds.AccessionNumber == "ACC0001"
    assert ds.StudyInstanceUID == ENTRY.study_instance_uid
    assert ds.RequestedProcedureID == "RP0001"
    assert ds.RequestedProcedureDescription == "CT THORAX"
    assert ds.RequestedProcedurePriority == "HIGH"
    assert ds.RequestingPhysician == ds.ReferringPhysicianName == "MARTIN^PAUL"
    assert ds.ReasonForTheRequestedProcedure == "Toux persistante : néoplasie ?"
    (other,) = ds.OtherPatientIDsSequence
    assert other.PatientID == "280017512345678"
    assert other.IssuerOfPatientIDQualifiersSequence[0].UniversalEntityID == mwl.INS_NIR_OID
    assert other.IssuerOfPatientIDQualifiersSequence[0].UniversalEntityIDType == "ISO"
    (step,) = ds.ScheduledProcedureStepSequence
    assert step.Modality == "CT"
    assert step.ScheduledStationAETitle == "CT1"
    assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        "20261123", "093000")
    assert step.ScheduledProcedureStepID == "SPS0001"
    assert step.ScheduledProcedureStepDescription == "CT thorax sans injection"
    assert step.ScheduledProcedureStepStatus == "SCHEDULED"
    (code,) = step.ScheduledProtocolCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
        "CTTHX", "99TELERAD", "CT thorax")
    assert step.ScheduledPerformingPhysicianName == ""  # type 2, unknown


@pytest.mark.parametrize(("start", "date", "time"), [
    (dt.datetime(2026, 7, 1, 8, 30, tzinfo=dt.UTC), "20260701", "103000"),  # CEST, UTC+2
    (dt.datetime(2026, 11, 23, 23, 30, tzinfo=dt.UTC), "20261124", "003000"),  # next day
    (dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC), "20260329", "030000"),  # DST begins
    (dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=5))),
     "20261123", "060000"),
])
def test_start_is_written_in_the_sites_local_time(start: dt.datetime, date: str, time: str
                                                   ) -> None:
    (step,) = roundtrip(mwl.item(entry(scheduled_start=start))).ScheduledProcedureStepSequence
    assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        date, time)


def test_item_leaves_out_what_the_entry_does_not_hold() -> None:
    ds = roundtrip(mwl.item(entry(
        other_patient_id="", protocol_code_value="", protocol_code_meaning="",
        scheduled_procedure_step_description="", requested_procedure_description="",
        reason_for_requested_procedure="", patient_birth_date="", patient_sex="",
        scheduled_station_ae_title="",
    )))
    assert "OtherPatientIDsSequence" not in ds
    assert "RequestedProcedureDescription" not in ds  # type 1C: absent, not empty
    assert "ReasonForTheRequestedProcedure" not in ds
    assert (ds.PatientBirthDate, ds.PatientSex) == ("", "")  # type 2: present, empty
    (step,) = ds.ScheduledProcedureStepSequence
    assert "ScheduledProtocolCodeSequence" not in step
    assert "ScheduledProcedureStepDescription" not in step
    assert step.ScheduledStationAETitle == ""  # any station of the site


@pytest.mark.parametrize("changes", [
    {"scheduled_start": dt.datetime(2026, 11, 23, 8, 30)},  # naive
    {"site_zone": "Europe/Nowhere"},
    {"priority": "URGENT"},
    {"patient_sex": "X"},
    {"patient_birth_date": "19800230"},
    {"patient_birth_date": "1980-02-29"},
    {"study_instance_uid": "1.2.03"},
    {"accession_number": "A" * 17},
    {"protocol_code_meaning": "M" * 65},
    {"modality": ""},
    {"patient_id": ""},
])
def test_an_entry_that_would_make_an_invalid_item_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        entry(**changes)


# -- matching --------------------------------------------------------------------------


def test_an_empty_identifier_matches_and_returns_nothing_useful() -> None:
    assert mwl.matches(Dataset(), ENTRY)
    answer = roundtrip(mwl.response(Dataset(), ENTRY))
    assert len(answer) == 0


@pytest.mark.parametrize(("keys", "expected"), [
    ({"AccessionNumber": "ACC0001"}, True),
    ({"AccessionNumber": "ACC0002"}, False),
    ({"AccessionNumber": ""}, True),  # universal
    ({"PatientID": "PID0001"}, True),
    ({"PatientID": "pid0001"}, False),  # LO is case-sensitive
    ({"PatientID": "PID*"}, True),
    ({"PatientID": "PID000?"}, True),
    ({"PatientID": "PID00?"}, False),  # "?" is exactly one character
    ({"PatientName": "DOÉ^JANE"}, True),
    ({"PatientName": "doé^jane"}, True),  # PN: case-insensitive
    ({"PatientName": "DOÉ^JANE^^^"}, True),  # trailing empty components
    ({"PatientName": "doé*"}, True),
    ({"PatientName": "*JANE"}, True),
    ({"PatientName": "D?É^*"}, True),
    ({"PatientName": "DOE*"}, False),  # an accent is another letter
    ({"PatientName": "SMITH*"}, False),
    ({"PatientSex": "F"}, True),
    ({"PatientSex": "M"}, False),
    ({"PatientBirthDate": "19800229"}, True),
    ({"PatientBirthDate": "19700101-19801231"}, True),
    ({"PatientBirthDate": "19900101-"}, False),
    ({"RequestedProcedurePriority": "HIGH"}, True),
    ({"RequestedProcedurePriority": "STAT"}, False),
    ({"StudyInstanceUID": ENTRY.study_instance_uid}, True),
    ({"StudyInstanceUID": ["1.2.3", ENTRY.study_instance_uid]}, True),  # list of UIDs
    ({"StudyInstanceUID": ["1.2.3", "1.2.4"]}, False),
    ({"StudyInstanceUID": "1.2.826.*"}, False),  # no wildcards on UIDs
    ({"RequestingPhysician": "martin^*"}, True),
    ({"ReferringPhysicianName": "DUPONT"}, False),
    ({"PatientWeight": "70"}, True),  # a key telerad does not match on: ignored
    ({"PatientName": "*", "PatientID": "PID0001"}, True),
    ({"PatientName": "DOÉ*", "PatientID": "OTHER"}, False),  # every key must match
])
def test_top_level_matching(keys: dict[str, Any], expected: bool) -> None:
    assert mwl.matches(query(**keys), ENTRY) is expected


@pytest.mark.parametrize(("sps", "expected"), [
    ({"Modality": "CT"}, True),
    ({"Modality": "MR"}, False),
    ({"Modality": ""}, True),
    ({"Modality": ["MR", "CT"]}, True),  # several values: any (undefined in §C.2.2.2.8)
    ({"ScheduledStationAETitle": "CT1"}, True),
    ({"ScheduledStationAETitle": "CT2"}, False),
    ({"ScheduledStationAETitle": "CT*"}, True),
    ({"ScheduledProcedureStepStartDate": "20261123"}, True),
    ({"ScheduledProcedureStepStartDate": "20261124"}, False),
    ({"ScheduledProcedureStepStartDate": "20261123-"}, True),
    ({"ScheduledProcedureStepStartDate": "20261124-"}, False),
    ({"ScheduledProcedureStepStartDate": "-20261124"}, True),
    ({"ScheduledProcedureStepStartDate": "-20261122"}, False),
    ({"ScheduledProcedureStepStartDate": "20261123-20261124"}, True),
    ({"ScheduledProcedureStepStartDate": "20261120-20261122"}, False),
    ({"ScheduledProcedureStepStartDate": "2026.11.23"}, True),  # ACR-NEMA form
    ({"ScheduledProcedureStepStartTime": "093000"}, True),
    ({"ScheduledProcedureStepStartTime": "0930"}, True),  # the minute it denotes
    ({"ScheduledProcedureStepStartTime": "09"}, True),
    ({"ScheduledProcedureStepStartTime": "0931"}, False),
    ({"ScheduledProcedureStepStartTime": "0800-1000"}, True),
    ({"ScheduledProcedureStepStartTime": "0800-0930"}, True),  # inclusive upper minute
    ({"ScheduledProcedureStepStartTime": "0800-0929"}, False),
    ({"ScheduledProcedureStepStartTime": "1000-"}, False),
    ({"ScheduledProcedureStepStartTime": "-0930"}, True),
    ({"ScheduledProcedureStepStartTime": "09:00-10:00"}, True),  # ACR-NEMA form
    ({"ScheduledProcedureStepStartDate": "*"}, True),  # tolerated: universal
    ({"ScheduledProcedureStepStartDate": "20261123",
      "ScheduledProcedureStepStartTime": "1000-1200"}, False),  # matched independently
    ({"ScheduledProcedureStepID": "SPS0001"}, True),
    ({"ScheduledProcedureStepDescription": "CT thorax*"}, True),
    ({"ScheduledProcedureStepStatus": "SCHEDULED"}, True),
    ({"ScheduledPerformingPhysicianName": "HOUSE^GREGORY"}, False),  # unknown: no match
    ({"ScheduledPerformingPhysicianName": "*"}, True),
    ({"ScheduledStationName": "CT ROOM 1"}, True),  # not matched on: ignored
    ({}, True),  # an item without keys: universal
])
def test_matching_inside_the_scheduled_procedure_step(sps: dict[str, Any], expected: bool
                                                      ) -> None:
    assert mwl.matches(query(sps), ENTRY) is expected


def test_an_empty_sequence_is_universal() -> None:
    ds = Dataset()
    ds.ScheduledProcedureStepSequence = []
    assert mwl.matches(roundtrip(ds), ENTRY)


def test_an_entry_for_any_station_matches_every_station() -> None:
    anywhere = entry(scheduled_station_ae_title="")
    assert mwl.matches(query({"ScheduledStationAETitle": "MR_NORTH"}), anywhere)
    assert mwl.matches(query({"ScheduledStationAETitle": "MR_NORTH", "Modality": "CT"}),
                       anywhere)
    assert not mwl.matches(query({"ScheduledStationAETitle": "MR_NORTH", "Modality": "MR"}),
                           anywhere)


def test_unknown_value_fails_a_key_but_not_the_universal_star() -> None:
    unknown = entry(patient_birth_date="", patient_sex="")
    assert not mwl.matches(query(PatientBirthDate="19800229"), unknown)
    assert not mwl.matches(query(PatientSex="F"), unknown)
    assert mwl.matches(query(PatientSex="*"), unknown)
    assert mwl.matches(query(PatientBirthDate=""), unknown)


def test_matching_on_the_ins_in_other_patient_ids() -> None:
    other = Dataset()
    other.PatientID = "280017512345678"
    ds = Dataset()
    ds.OtherPatientIDsSequence = [other]
    assert mwl.matches(roundtrip(ds), ENTRY)
    assert not mwl.matches(roundtrip(ds), entry(other_patient_id=""))
    other.PatientID = "199999999999999"
    assert not mwl.matches(roundtrip(ds), ENTRY)


def test_matching_on_the_protocol_code() -> None:
    code = Dataset()
    code.CodeValue = "CTTHX"
    step = Dataset()
    step.ScheduledProtocolCodeSequence = [code]
    ds = Dataset()
    ds.ScheduledProcedureStepSequence = [step]
    assert mwl.matches(roundtrip(ds), ENTRY)
    code.CodeValue = "CTABD"
    assert not mwl.matches(roundtrip(ds), ENTRY)


@pytest.mark.parametrize("value", [
    "2026-11-23", "20261324x", "20261124-20261123", "-", "tomorrow", "2026112",
])
def test_a_date_key_that_is_no_date_is_an_invalid_query(value: str) -> None:
    with pytest.raises(InvalidQuery):
        mwl.matches(query({"ScheduledProcedureStepStartDate": value}), ENTRY)


def test_a_time_key_that_is_no_time_is_an_invalid_query() -> None:
    with pytest.raises(InvalidQuery):
        mwl.matches(query({"ScheduledProcedureStepStartTime": "9h30"}), ENTRY)


@given(pattern=st.text(alphabet="ab*?", max_size=8), value=st.text(alphabet="ab", max_size=8))
def test_wildcards_match_like_fnmatch(pattern: str, value: str) -> None:
    """PS3.4 §C.2.2.2.4 "*" and "?" mean what they mean to fnmatch, case-sensitively."""
    assert mwl.wildcard_match(pattern, value) is fnmatch.fnmatchcase(value, pattern)


@given(text=st.text(min_size=1, max_size=12).filter(lambda t: t.strip() == t))
def test_characters_other_than_wildcards_are_literal(text: str) -> None:
    assert mwl.wildcard_match(text.replace("*", "").replace("?", ""),
                              text.replace("*", "").replace("?", ""))
    assert not mwl.wildcard_match("x" + text.replace("*", "").replace("?", ""), text)


# -- responses -------------------------------------------------------------------------


def test_response_holds_exactly_the_keys_asked_filled_from_the_entry() -> None:
    asked = query(
        {"Modality": "", "ScheduledProcedureStepStartDate": "", "ScheduledStationAETitle": "",
         "ScheduledProtocolCodeSequence": []},
        PatientName="", PatientID="", AccessionNumber="", PatientWeight="",
        StudyInstanceUID="", RequestedProcedurePriority="",
    )
    answer = roundtrip(mwl.response(asked, ENTRY))
    assert tags(answer) == sorted([0x00080005, *tags(asked)])  # + the character set
    assert answer.SpecificCharacterSet == "ISO_IR 192"  # a name with an accent
    assert answer.PatientName == "DOÉ^JANE"
    assert (answer.PatientID, answer.AccessionNumber) == ("PID0001", "ACC0001")
    assert answer.StudyInstanceUID == ENTRY.study_instance_uid
    assert answer.RequestedProcedurePriority == "HIGH"
    assert answer.PatientWeight is None  # asked, unknown: zero-length
    (step,) = answer.ScheduledProcedureStepSequence
    assert tags(step) == tags(asked.ScheduledProcedureStepSequence[0])
    assert (step.Modality, step.ScheduledStationAETitle) == ("CT", "CT1")
    assert step.ScheduledProcedureStepStartDate == "20261123"
    (code,) = step.ScheduledProtocolCodeSequence  # an empty sequence asks for all of it
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
        "CTTHX", "99TELERAD", "CT thorax")


def test_an_empty_sequence_key_returns_the_whole_sequence() -> None:
    ds = Dataset()
    ds.ScheduledProcedureStepSequence = []
    ds.OtherPatientIDsSequence = []
    answer = roundtrip(mwl.response(roundtrip(ds), ENTRY))
    assert answer.ScheduledProcedureStepSequence[0] == roundtrip(
        mwl.item(ENTRY)).ScheduledProcedureStepSequence[0]
    assert answer.OtherPatientIDsSequence[0].PatientID == "280017512345678"
    no_ins = roundtrip(mwl.response(roundtrip(ds), entry(other_patient_id="")))
    assert len(no_ins.OtherPatientIDsSequence) == 0  # asked, none: an empty sequence


def test_keys_telerad_has_no_value_for_are_returned_zero_length() -> None:
    ds = Dataset()
    ds.RequestedProcedureCodeSequence = []
    ds.AdmissionID = ""
    ds.PregnancyStatus = None
    answer = roundtrip(mwl.response(roundtrip(ds), ENTRY), implicit=True)
    assert tags(answer) == tags(ds)
    assert len(answer.RequestedProcedureCodeSequence) == 0
    assert answer.AdmissionID == ""
    assert answer.PregnancyStatus is None


def test_private_keys_and_group_lengths_are_not_answered() -> None:
    ds = Dataset()
    ds.PatientID = ""
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091001, "LO", "")
    ds.add_new(0x00100000, "UL", 0)
    answer = roundtrip(mwl.response(roundtrip(ds), ENTRY))
    assert tags(answer) == [0x00100020]


def test_any_station_is_answered_with_the_station_asking() -> None:
    anywhere = entry(scheduled_station_ae_title="")
    answer = mwl.response(query({"ScheduledStationAETitle": "MR_NORTH"}), anywhere)
    assert roundtrip(answer).ScheduledProcedureStepSequence[0].ScheduledStationAETitle == (
        "MR_NORTH")
    answer = mwl.response(query({"ScheduledStationAETitle": "MR*"}), anywhere)
    assert roundtrip(answer).ScheduledProcedureStepSequence[0].ScheduledStationAETitle == ""


def test_character_set_follows_the_query_when_the_values_fit() -> None:
    latin1 = query(SpecificCharacterSet="ISO_IR 100", PatientName="")
    answer = mwl.response(latin1, ENTRY)
    assert answer.SpecificCharacterSet == "ISO_IR 100"
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = False, True
    write_dataset(fp, answer)
    assert "DOÉ^JANE".encode("latin-1") in fp.getvalue()
    assert roundtrip(answer).PatientName == "DOÉ^JANE"

    japanese = entry(patient_name="Yamada^Tarou=山田^太郎")
    answer = roundtrip(mwl.response(latin1, japanese))
    assert answer.SpecificCharacterSet == "ISO_IR 192"
    assert answer.PatientName == "Yamada^Tarou=山田^太郎"

    ascii_only = roundtrip(mwl.response(query(PatientID=""), ENTRY))
    assert "SpecificCharacterSet" not in ascii_only  # the default repertoire suffices


def test_sequence_items_are_filtered_and_trimmed_to_the_asked_keys() -> None:
    code = Dataset()
    code.CodeValue = ""
    step = Dataset()
    step.Modality = "CT"
    step.ScheduledProtocolCodeSequence = [code]
    ds = Dataset()
    ds.ScheduledProcedureStepSequence = [step]
    answer = roundtrip(mwl.response(roundtrip(ds), ENTRY))
    (answered_step,) = answer.ScheduledProcedureStepSequence
    assert tags(answered_step) == [0x00080060, 0x00400008]
    (answered_code,) = answered_step.ScheduledProtocolCodeSequence
    assert tags(answered_code) == [0x00080100]
    assert answered_code.CodeValue == "CTTHX"


@given(
    accession=st.text(alphabet="ABC0123456789", min_size=1, max_size=16),
    patient_id=st.text(alphabet="ABC0123456789-", min_size=1, max_size=64),
    family=st.text(alphabet="ABCDÉÈÇÏabcéè' -", min_size=1, max_size=20).map(str.strip)
    .filter(bool),
    modality=st.sampled_from(["CT", "MR", "US", "CR", "DX", "MG", "PT", "NM"]),
    minutes=st.integers(min_value=0, max_value=60 * 24 * 400),
)
def test_a_query_of_the_entrys_own_values_matches_and_returns_them(
        accession: str, patient_id: str, family: str, modality: str, minutes: int) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minutes)
    one = entry(accession_number=accession, patient_id=patient_id,
                patient_name=f"{family}^JEAN", modality=modality, scheduled_start=start)
    (step,) = roundtrip(mwl.item(one)).ScheduledProcedureStepSequence
    asked = query({"Modality": modality,
                   "ScheduledProcedureStepStartDate": step.ScheduledProcedureStepStartDate,
                   "ScheduledProcedureStepStartTime": step.ScheduledProcedureStepStartTime},
                  AccessionNumber=accession, PatientID=patient_id,
                  PatientName=f"{family.lower()}^*")
    assert mwl.matches(asked, one)
    answer = roundtrip(mwl.response(asked, one))
    assert (answer.AccessionNumber, answer.PatientID) == (accession, patient_id)
    assert answer.PatientName == f"{family}^JEAN"
    assert answer.ScheduledProcedureStepSequence[0].Modality == modality
    other = "MR" if modality != "MR" else "CT"
    assert not mwl.matches(query({"Modality": other}, AccessionNumber=accession), one)
