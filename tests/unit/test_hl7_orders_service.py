"""Orders and patient updates from a site's RIS, applied on a real database (SQLite, or
PostgreSQL with TELERAD_TEST_DATABASE=postgresql): requests filed once per order number,
cancelled by ORC-1, identities updated (A08) and merged (A40) on the sender's site only;
whatever is refused changes nothing."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from telerad.audit.models import AuditEvent
from telerad.db import transaction
from telerad.errors import TeleradError
from telerad.hl7.messages import parse
from telerad.hl7.orders import UnsupportedMessage
from telerad.runtime import Runtime
from telerad.workflow.exams.models import Exam, ExamEvent, ExamState
from telerad.workflow.requests.hl7_orders import (
    Applied,
    InvalidField,
    OrderClosed,
    UnknownFacility,
    UnknownOrder,
    UnsupportedEvent,
    UnsupportedOrderControl,
    receive,
)
from telerad.workflow.sites.service import add_site

DATA = Path(__file__).parent.parent / "data" / "hl7"
NOW = dt.datetime(2026, 11, 24, 21, 0, tzinfo=dt.UTC)
#: MSH-4 of each site's RIS: the samples' own sending facilities.
FACILITIES = {"valence": "CH_VALENCE", "lyon": "CHU_LYON", "xyz": "XYZ_RADIOLOGY"}


@dataclass(frozen=True)
class World:
    runtime: Runtime
    sites: dict[str, int]

    def receive(self, message: str | bytes) -> Applied:
        """One message in its own transaction, as the HL7 edge applies it."""
        with transaction(self.runtime.sessions) as session:
            return receive(session, parse(message), now=NOW)

    def refused(self, message: str | bytes, error: type[TeleradError]) -> TeleradError:
        """The error ``message`` is refused with; and nothing changed."""
        before = self.counts()
        with pytest.raises(error) as caught:
            self.receive(message)
        assert self.counts() == before
        return caught.value

    def counts(self) -> tuple[int, int, int]:
        with transaction(self.runtime.sessions, readonly=True) as session:
            return tuple(session.scalar(select(func.count()).select_from(t)) or 0
                         for t in (Exam, ExamEvent, AuditEvent))  # type: ignore[return-value]

    def exams(self) -> list[Exam]:
        with transaction(self.runtime.sessions, readonly=True) as session:
            found = list(session.scalars(select(Exam).order_by(Exam.id)))
            session.expunge_all()
            return found

    def events(self, exam_id: int) -> list[tuple[str, str, dict[str, object]]]:
        with transaction(self.runtime.sessions, readonly=True) as session:
            return [(e.kind, e.actor, json.loads(e.detail)) for e in session.scalars(
                select(ExamEvent).where(ExamEvent.exam_id == exam_id).order_by(ExamEvent.id))]


@pytest.fixture
def world(runtime: Runtime) -> World:
    with transaction(runtime.sessions) as session:
        sites = {}
        for key, facility in FACILITIES.items():
            site = add_site(session, name=f"Site {key}", ae_titles=[], now=NOW)
            site.hl7_facility = facility
            sites[key] = site.id
        add_site(session, name="Site without RIS", ae_titles=[], now=NOW)
    return World(runtime, sites)


def sample(name: str, *, replace: dict[str, str] | None = None) -> str:
    text = (DATA / name).read_bytes().decode("utf-8", errors="surrogateescape")
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def _state(session: Session, exam_id: int, state: ExamState) -> None:
    exam = session.get(Exam, exam_id)
    assert exam is not None
    exam.state = state


def test_a_new_order_files_a_request_for_the_senders_site(world: World) -> None:
    applied = world.receive(sample("orm_o01_ct_head.hl7"))
    [exam] = world.exams()
    assert applied == Applied(site_id=world.sites["valence"], filed=(exam.id,))
    assert (exam.site_id, exam.state, exam.placer_order_number) == (
        world.sites["valence"], ExamState.FILED, "ORD448811")
    assert (exam.patient_id, exam.patient_name, exam.patient_birth_date, exam.patient_sex) == (
        "784512", "MARTIN^PAUL^JEAN^M.", "19580412", "M")
    assert (exam.modality, exam.exam_asked, exam.urgency) == (
        "CT", "CT head without contrast", "life_threatening")  # OBR-27.6 S
    assert exam.clinical_question == "Hématome sous-dural ?"
    assert exam.clinical_context == "Chute, INR 3.2, somnolent"
    assert exam.requesting_physician == "DURAND^CLAIRE^^DR"
    assert exam.filed_by is None
    assert exam.accession_number is None  # telerad's own, given at validation
    events = world.events(exam.id)
    assert [(kind, actor) for kind, actor, _d in events] == [
        ("filed", "hl7:CH_VALENCE"), ("hl7_order", "hl7:CH_VALENCE")]
    assert events[1][2]["ris_accession_number"] == "ACC-2025-0311"
    assert events[1][2]["control_id"] == "MSG00417"
    with transaction(world.runtime.sessions, readonly=True) as session:
        [audit] = session.scalars(select(AuditEvent)).all()
        assert (audit.actor_kind, audit.actor_id, audit.action) == ("hl7", "CH_VALENCE",
                                                                    "create")
        assert json.loads(audit.detail)["exam_id"] == exam.id


def test_an_order_resent_files_nothing_more(world: World) -> None:
    first = world.receive(sample("orm_o01_ct_head.hl7"))
    before = world.counts()
    again = world.receive(sample("orm_o01_ct_head.hl7", replace={"MSG00417": "MSG00418"}))
    assert again.filed == ()
    assert again.already_filed == first.filed
    assert world.counts() == before


def test_order_numbers_are_unique_per_site_only(world: World) -> None:
    world.receive(sample("orm_o01_ct_head.hl7"))
    applied = world.receive(sample("orm_o01_ct_head.hl7", replace={"CH_VALENCE": "CHU_LYON"}))
    assert applied.site_id == world.sites["lyon"]
    assert [(e.site_id, e.placer_order_number) for e in world.exams()] == [
        (world.sites["valence"], "ORD448811"), (world.sites["lyon"], "ORD448811")]


def test_an_imaging_order_with_ins_and_stat_priority(world: World) -> None:
    world.receive(sample("omi_o23_cta.hl7"))
    [exam] = world.exams()
    assert (exam.site_id, exam.patient_id, exam.ins) == (
        world.sites["lyon"], "IPP000991", "285047511223375")
    assert (exam.urgency, exam.modality, exam.placer_order_number) == (
        "life_threatening", "CT", "PL-77812")
    assert exam.clinical_question == "Déficit brachio-facial gauche depuis 01h30; Dissection ?"
    assert world.events(exam.id)[1][2]["ris_accession_number"] == "ACC900812"


def test_a_messy_order_is_read_tolerantly(world: World) -> None:
    # Latin-1 bytes, LF line ends, blank lines, no ORC, a padded PID-3, a dashed birth date.
    raw = (DATA / "orm_o01_messy.hl7").read_bytes().replace(b"OLDRIS||", b"OLDRIS|CHU_LYON|")
    applied = world.receive(raw)
    [exam] = world.exams()
    assert applied.filed == (exam.id,)
    assert (exam.patient_id, exam.patient_birth_date, exam.modality, exam.urgency) == (
        "55012", "19710302", "MR", "urgent")  # OBR-5 A (ASAP)
    assert exam.clinical_question == "céphalées brutales, vomissements"
    assert exam.placer_order_number == "88120"


def test_upstream_ihe_orders_are_filed(world: World) -> None:
    # dcm4che's IHE scheduled-workflow samples: OMI^O23 naming the procedure in OBR-44.
    for name in ("dcm4che_orm_o01.hl7", "dcm4che_omi_o23_head_ct.hl7"):
        world.receive(sample(f"upstream/{name}"))
    assert [(e.site_id, e.placer_order_number, e.modality, e.exam_asked)
            for e in world.exams()] == [
        (world.sites["xyz"], "A103Z", "MR", "Procedure 1"),
        (world.sites["xyz"], "A100Z", "CT", "Head CT")]


def test_an_unknown_sender_changes_nothing(world: World) -> None:
    world.refused(sample("orm_o01_ct_head.hl7", replace={"CH_VALENCE": "CH_ELSEWHERE"}),
                  UnknownFacility)
    error = world.refused((DATA / "orm_o01_messy.hl7").read_bytes(), UnknownFacility)
    assert (error.hl7_error, error.hl7_location) == ("103", "MSH^1^4")  # type: ignore[attr-defined]
    assert world.counts() == (0, 0, 0)


def test_an_order_without_clinical_question_is_refused_naming_the_field(world: World) -> None:
    text = sample("orm_o01_ct_head.hl7", replace={"Chute, INR 3.2, somnolent": "",
                                                  "Hématome sous-dural ?": ""})
    error = world.refused(text, InvalidField)
    assert isinstance(error, InvalidField)
    assert (error.hl7_error, error.hl7_location) == ("101", "OBR^1^31")
    assert "the clinical question is required" in error.message
    assert "OBR-31" in error.message
    # A real order (NHapi's sample) lacks more: every missing field is named at once.
    nhapi = sample("upstream/nhapi_orm_o01.hl7", replace={"|MedCenter|LIS": "|CHU_LYON|LIS"})
    error = world.refused(nhapi, InvalidField)
    for words in ("requesting physician", "clinical question",
                  "modality is required (OBR-24 or IPC-5)"):
        assert words in error.message
    assert world.counts() == (0, 0, 0)


def test_a_message_is_all_or_nothing(world: World) -> None:
    text = sample("orm_o01_ct_head.hl7").rstrip("\r\n")
    second = ("ORC|NW|ORD448812^RIS|||SC||||20250314101502|||10101010101^DURAND^CLAIRE^^^DR\r"
              "OBR|2|ORD448812^RIS||CTTAP^CT thorax abdomen pelvis^L")  # no question
    error = world.refused(f"{text}\r{second}\r", InvalidField)
    assert error.hl7_location == "OBR^2^31"  # type: ignore[attr-defined]
    assert world.exams() == []


def test_a_cancellation_cancels_the_exam_once(world: World) -> None:
    [exam_id] = world.receive(sample("orm_o01_ct_head.hl7")).filed
    assert world.receive(sample("orm_o01_cancel.hl7")).cancelled == (exam_id,)
    [exam] = world.exams()
    assert exam.state == ExamState.CANCELLED
    kind, actor, detail = world.events(exam_id)[-1]
    assert (kind, actor, detail["state_from"]) == ("cancelled", "hl7:CH_VALENCE", "filed")
    before = world.counts()
    assert world.receive(sample("orm_o01_cancel.hl7")).cancelled == ()  # resent: still AA
    assert world.counts() == before
    # The number of a cancelled order is not reused for a new one.
    error = world.refused(sample("orm_o01_ct_head.hl7"), OrderClosed)
    assert error.hl7_error == "205"  # type: ignore[attr-defined]


@pytest.mark.parametrize("control", ["CA", "DC", "OC"])
def test_cancel_controls(world: World, control: str) -> None:
    world.receive(sample("orm_o01_ct_head.hl7"))
    world.receive(sample("orm_o01_cancel.hl7", replace={"ORC|CA|": f"ORC|{control}|"}))
    assert [e.state for e in world.exams()] == [ExamState.CANCELLED]


def test_cancelling_an_unknown_order_or_another_sites_is_refused(world: World) -> None:
    error = world.refused(sample("orm_o01_cancel.hl7"), UnknownOrder)
    assert (error.hl7_error, error.hl7_location) == ("204", "ORC^1^2")  # type: ignore[attr-defined]
    world.receive(sample("orm_o01_ct_head.hl7", replace={"CH_VALENCE": "CHU_LYON"}))
    world.refused(sample("orm_o01_cancel.hl7"), UnknownOrder)  # Lyon's order, not Valence's
    assert [e.state for e in world.exams()] == [ExamState.FILED]


def test_an_exam_being_read_cannot_be_cancelled_by_an_order(world: World) -> None:
    [exam_id] = world.receive(sample("orm_o01_ct_head.hl7")).filed
    with transaction(world.runtime.sessions) as session:
        _state(session, exam_id, ExamState.IN_READING)
    error = world.refused(sample("orm_o01_cancel.hl7"), OrderClosed)
    assert error.hl7_error == "206"  # type: ignore[attr-defined]
    assert "in reading" in error.message


def test_unsupported_controls_and_messages_are_refused(world: World) -> None:
    error = world.refused(sample("orm_o01_ct_head.hl7", replace={"ORC|NW|": "ORC|XO|"}),
                          UnsupportedOrderControl)
    assert (error.hl7_error, error.hl7_location) == ("103", "ORC^1^1")  # type: ignore[attr-defined]
    assert "XO" in error.message
    error = world.refused(sample("orm_o01_ct_head.hl7", replace={"ORM^O01": "ORM^O02"}),
                          UnsupportedEvent)
    assert error.hl7_error == "201"  # type: ignore[attr-defined]
    world.refused(sample("upstream/hl7apy_adt_a01.hl7", replace={"SEND FAC": "CHU_LYON"}),
                  UnsupportedEvent)
    error = world.refused(sample("upstream/dcm4che_oru_r01_pdf.hl7"), UnsupportedMessage)
    assert error.hl7_error == "200"  # type: ignore[attr-defined]


def test_a08_updates_the_open_exams_of_that_patient_on_that_site(world: World) -> None:
    [open_id] = world.receive(sample("orm_o01_ct_head.hl7")).filed
    [closed_id] = world.receive(sample("orm_o01_ct_head.hl7", replace={
        "ORD448811": "ORD000001"})).filed
    world.receive(sample("orm_o01_cancel.hl7", replace={"ORD448811": "ORD000001"}))
    [lyon_id] = world.receive(sample("orm_o01_ct_head.hl7", replace={
        "CH_VALENCE": "CHU_LYON"})).filed
    applied = world.receive(sample("adt_a08.hl7"))
    assert applied.updated == (open_id,)
    names = {e.id: e.patient_name for e in world.exams()}
    assert names == {open_id: "MARTIN^PAUL^JEAN", closed_id: "MARTIN^PAUL^JEAN^M.",
                     lyon_id: "MARTIN^PAUL^JEAN^M."}
    kind, actor, detail = world.events(open_id)[-1]
    assert (kind, actor) == ("patient_updated", "hl7:CH_VALENCE")
    assert detail == {"fields": ["patient_name"], "control_id": "MSG00502"}  # no values
    before = world.counts()
    assert world.receive(sample("adt_a08.hl7")).updated == ()  # nothing new: no entry
    assert world.counts() == before


def test_a08_empty_fields_erase_nothing(world: World) -> None:
    [exam_id] = world.receive(sample("orm_o01_ct_head.hl7")).filed
    world.receive("MSH|^~\\&|PAS|CH_VALENCE|||20250314||ADT^A08|M1|P|2.5\r"
                  "PID|1||784512^^^CHV^PI||MARTIN^PAULINE|||F\r")
    [exam] = world.exams()
    assert (exam.patient_name, exam.patient_birth_date, exam.patient_sex) == (
        "MARTIN^PAULINE", "19580412", "F")
    assert world.events(exam_id)[-1][2]["fields"] == ["patient_name", "patient_sex"]


def test_a08_with_a_wrong_ins_is_refused(world: World) -> None:
    world.receive(sample("orm_o01_ct_head.hl7"))
    error = world.refused(sample("adt_a08.hl7", replace={
        "784512^^^CHV^PI": "784512^^^CHV^PI~285047511223376^^^INS-NIR^INS"}), InvalidField)
    assert (error.hl7_error, error.hl7_location) == ("102", "PID^1^3")  # type: ignore[attr-defined]


def test_a40_merges_the_prior_identifier_on_the_senders_site(world: World) -> None:
    order = sample("upstream/dcm4che_orm_o01.hl7", replace={"583295^^^ADT1": "OLD_PID_1^^^ADT1"})
    [merged_id] = world.receive(order).filed
    [other_id] = world.receive(order.replace("XYZ_RADIOLOGY", "CHU_LYON")).filed
    applied = world.receive(sample("upstream/dcm4che_adt_a40.hl7"))
    assert applied == Applied(site_id=world.sites["xyz"], merged=(merged_id,))
    exams = {e.id: e for e in world.exams()}
    merged = exams[merged_id]
    assert (merged.patient_id, merged.patient_name, merged.patient_birth_date,
            merged.patient_sex) == ("NEW_PID_1", "New_Smith^Lucy^Mark", "20141014", "F")
    assert exams[other_id].patient_id == "OLD_PID_1"  # another site's patient
    kind, actor, detail = world.events(merged_id)[-1]
    assert (kind, actor) == ("patient_merged", "hl7:XYZ_RADIOLOGY")
    assert (detail["prior_patient_id"], detail["patient_id"]) == ("OLD_PID_1", "NEW_PID_1")
    assert detail["fields"] == ["patient_birth_date", "patient_name", "patient_sex"]


def test_a40_with_several_pairs_merges_each(world: World) -> None:
    ids: list[int] = []
    for n in (1, 2):
        order = sample("upstream/dcm4che_orm_o01.hl7", replace={
            "583295^^^ADT1": f"OLD{n}^^^ADT1", "A103Z": f"A10{n}Z"})
        ids += world.receive(order).filed
    applied = world.receive(
        "MSH|^~\\&|MESA_OF|XYZ_RADIOLOGY|||20220324||ADT^A40^ADT_A39|M2|P|2.5\r"
        "PID|||NEW1^^^ADT1\rMRG|OLD1^^^ADT1\rPID|||NEW2^^^ADT1\rMRG|OLD2^^^ADT1\r")
    assert applied.merged == tuple(ids)
    assert [e.patient_id for e in world.exams()] == ["NEW1", "NEW2"]


def test_a40_moves_closed_exams_to_the_new_identifier_keeping_their_identity(
    world: World,
) -> None:
    order = sample("upstream/dcm4che_orm_o01.hl7", replace={"583295^^^ADT1": "OLD_PID_1^^^ADT1"})
    [exam_id] = world.receive(order).filed
    world.receive(sample("orm_o01_cancel.hl7", replace={
        "CH_VALENCE": "XYZ_RADIOLOGY", "784512^^^CHV^PI": "OLD_PID_1", "ORD448811": "A103Z"}))
    assert world.receive(sample("upstream/dcm4che_adt_a40.hl7")).merged == (exam_id,)
    [exam] = world.exams()
    assert (exam.state, exam.patient_id, exam.patient_name) == (
        ExamState.CANCELLED, "NEW_PID_1", "DOE^J1")
    assert world.events(exam_id)[-1][2]["fields"] == []
