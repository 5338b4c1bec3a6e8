"""Modality Worklist C-FIND (PS3.4 Annex K) against the real gateway, queried by dcmtk's
``findscu -W`` and by pynetdicom. The worklist itself is faked (``worklist_entries``
patched): what is tested is the edge — negotiation, the site boundary, matching, the
responses on the wire, failures and the audit trail.

The gateway runs in this process so that the patch applies to it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.association import Association as ScuAssociation
from sqlalchemy.orm import Session

import telerad.gateway.dicom
from telerad.audit.models import AuditEvent
from telerad.db import transaction
from telerad.dicom.mwl import MODALITY_WORKLIST_FIND, WorklistEntry
from telerad.dicom.synthetic import UID_PREFIX
from telerad.gateway.dicom import DicomGateway
from telerad.gateway.scu import REQUESTOR_HANDLERS
from telerad.runtime import Runtime
from telerad.testing import peers
from telerad.testing.peers import worklist_query
from telerad.workflow.sites.service import add_site
from tests.conftest import SENDER_AE, SITE

pytestmark = [
    pytest.mark.peers,
    pytest.mark.skipif(shutil.which("findscu") is None, reason="dcmtk is not installed"),
]

OTHER_AE = "OTHER_CT"


def _entry(**fields: str | dt.datetime) -> WorklistEntry:
    base: dict[str, str | dt.datetime] = dict(
        patient_birth_date="19800229", patient_sex="F", other_patient_id="",
        study_instance_uid=generate_uid(UID_PREFIX), requested_procedure_description="",
        requesting_physician="DUPONT^MARIE", reason_for_requested_procedure="",
        priority="ROUTINE", scheduled_station_ae_title="", site_zone="Europe/Paris",
        scheduled_procedure_step_description="", protocol_code_value="",
        protocol_code_meaning="",
    )
    return WorklistEntry(**{**base, **fields})  # type: ignore[arg-type]


CT = _entry(
    accession_number="ACC-CT-1", patient_id="PID-1", patient_name="DOÉ^JANE",
    other_patient_id="280017512345678", requested_procedure_id="RP-CT-1",
    requested_procedure_description="CT THORAX", modality="CT",
    scheduled_start=dt.datetime(2026, 11, 23, 8, 30, tzinfo=dt.UTC),  # 09:30 in Paris
    scheduled_procedure_step_id="SPS-CT-1", protocol_code_value="CTTHX",
    protocol_code_meaning="CT thorax", priority="STAT",
)
MR = _entry(
    accession_number="ACC-MR-1", patient_id="PID-2", patient_name="MARTIN^PAUL",
    patient_sex="M", requested_procedure_id="RP-MR-1", modality="MR",
    scheduled_station_ae_title="MR1",
    scheduled_start=dt.datetime(2026, 11, 24, 13, 0, tzinfo=dt.UTC),  # 14:00 in Paris
    scheduled_procedure_step_id="SPS-MR-1",
)
ELSEWHERE = _entry(
    accession_number="ACC-OTHER", patient_id="PID-9", patient_name="AUTRE^SITE",
    requested_procedure_id="RP-9", modality="CT",
    scheduled_start=dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC),
    scheduled_procedure_step_id="SPS-9",
)


@dataclass
class Worklist:
    """The in-process gateway, its two sites, and the sites the fake was asked about."""

    runtime: Runtime
    gateway: DicomGateway
    site_id: int
    other_site_id: int
    asked: list[int]

    @property
    def port(self) -> int:
        return self.gateway.port

    def audit_events(self) -> list[AuditEvent]:
        with transaction(self.runtime.sessions, readonly=True) as session:
            rows = session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)).all()
            session.expunge_all()
            return list(rows)


@pytest.fixture
def worklist(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[Worklist]:
    with transaction(runtime.sessions) as session:
        site_id = add_site(session, name=SITE, ae_titles=[SENDER_AE],
                           now=runtime.clock.now()).id
        other_id = add_site(session, name="Other Hospital", ae_titles=[OTHER_AE],
                            now=runtime.clock.now()).id
    entries = {site_id: [CT, MR], other_id: [ELSEWHERE]}
    asked: list[int] = []

    def fake(session: Session, *, site_id: int, now: dt.datetime) -> list[WorklistEntry]:
        assert isinstance(session, Session)
        assert now.tzinfo is not None
        asked.append(site_id)
        return entries[site_id]

    monkeypatch.setattr(telerad.gateway.dicom, "worklist_entries", fake)
    gateway = DicomGateway(runtime=runtime, host="127.0.0.1", port=0, ae_title="TELERAD")
    gateway.start()
    try:
        yield Worklist(runtime, gateway, site_id, other_id, asked)
    finally:
        gateway.stop()


# -- dcmtk findscu -W ----------------------------------------------------------------------


def findscu(port: int, query: Path, out: Path, *, calling: str = SENDER_AE,
            keys: Sequence[str] = ()) -> tuple[subprocess.CompletedProcess[str], list[Dataset]]:
    """``findscu -W`` as the test site's scanner by default."""
    return peers.findscu(port=port, query=query, out=out, calling=calling, keys=keys)


def test_findscu_gets_the_sites_worklist(worklist: Worklist, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="telerad")
    result, answers = findscu(worklist.port, worklist_query(tmp_path / "q.dcm"), tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "Received Final Find Response (Success)" in result.stderr
    assert worklist.asked == [worklist.site_id]
    assert [a.AccessionNumber for a in answers] == ["ACC-CT-1", "ACC-MR-1"]
    ct, mr = answers
    assert (ct.PatientID, mr.PatientID) == ("PID-1", "PID-2")
    assert ct.SpecificCharacterSet == "ISO_IR 192"
    assert ct.PatientName == "DOÉ^JANE"
    assert (ct.PatientBirthDate, ct.PatientSex) == ("19800229", "F")
    assert ct.StudyInstanceUID == CT.study_instance_uid
    assert ct.RequestedProcedureID == "RP-CT-1"
    assert ct.RequestedProcedurePriority == "STAT"
    assert ct.OtherPatientIDsSequence[0].PatientID == "280017512345678"
    assert len(mr.OtherPatientIDsSequence) == 0
    (step,) = ct.ScheduledProcedureStepSequence
    assert step.Modality == "CT"
    assert step.ScheduledStationAETitle == ""  # any station of the site
    assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        "20261123", "093000")
    assert step.ScheduledProcedureStepID == "SPS-CT-1"
    assert step.ScheduledProtocolCodeSequence[0].CodeValue == "CTTHX"
    assert "PatientWeight" not in ct  # nothing that was not asked
    (mr_step,) = mr.ScheduledProcedureStepSequence
    assert (mr_step.ScheduledStationAETitle, mr_step.ScheduledProcedureStepStartTime) == (
        "MR1", "140000")

    (event,) = [e for e in worklist.audit_events() if e.action == "search"]
    assert (event.actor_kind, event.actor_id, event.source) == ("dicom", SENDER_AE, SENDER_AE)
    assert json.loads(event.detail) == {"route": "mwl", "matches": 2}
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("telerad"))
    assert "worklist query from TEST_SCU" in logged
    for secret in ("DOÉ", "JANE", "MARTIN", "PID-1", "PID-2", "280017512345678"):
        assert secret not in logged  # logs carry AE titles and ids, never patients


def test_findscu_filters_on_the_modality_of_the_scheduled_step(worklist: Worklist,
                                                               tmp_path: Path) -> None:
    query = worklist_query(tmp_path / "q.dcm")
    result, answers = findscu(worklist.port, query, tmp_path / "mr",
                              keys=["ScheduledProcedureStepSequence[0].Modality=MR"])
    assert result.returncode == 0, result.stderr
    assert [(a.AccessionNumber, a.PatientID) for a in answers] == [("ACC-MR-1", "PID-2")]
    assert answers[0].ScheduledProcedureStepSequence[0].Modality == "MR"

    result, answers = findscu(worklist.port, query, tmp_path / "date", keys=[
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20261124-"])
    assert result.returncode == 0, result.stderr
    assert [a.AccessionNumber for a in answers] == ["ACC-MR-1"]

    result, answers = findscu(worklist.port, query, tmp_path / "station", keys=[
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT_SOUTH"])
    assert result.returncode == 0, result.stderr
    # The CT step is for any station of the site, the MR one for MR1 only.
    assert [a.AccessionNumber for a in answers] == ["ACC-CT-1"]
    assert answers[0].ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT_SOUTH"


def test_findscu_wildcard_patient_name(worklist: Worklist, tmp_path: Path) -> None:
    query = worklist_query(tmp_path / "accent.dcm", patient_name="doé*")  # UTF-8 in the file
    result, answers = findscu(worklist.port, query, tmp_path / "accent")
    assert result.returncode == 0, result.stderr
    assert [(a.AccessionNumber, str(a.PatientName)) for a in answers] == [
        ("ACC-CT-1", "DOÉ^JANE")]

    result, answers = findscu(worklist.port, worklist_query(tmp_path / "q.dcm"),
                              tmp_path / "martin", keys=["PatientName=mar?in^*"])
    assert result.returncode == 0, result.stderr
    assert [a.AccessionNumber for a in answers] == ["ACC-MR-1"]

    result, answers = findscu(worklist.port, worklist_query(tmp_path / "q.dcm"),
                              tmp_path / "nobody", keys=["PatientName=SMITH*"])
    assert result.returncode == 0, result.stderr
    assert answers == []


def test_each_site_sees_only_its_own_worklist(worklist: Worklist, tmp_path: Path) -> None:
    result, answers = findscu(worklist.port, worklist_query(tmp_path / "q.dcm"), tmp_path / "o",
                              calling=OTHER_AE)
    assert result.returncode == 0, result.stderr
    assert [a.AccessionNumber for a in answers] == ["ACC-OTHER"]
    assert worklist.asked == [worklist.other_site_id]


def test_findscu_from_an_unknown_ae_title_is_rejected(worklist: Worklist, tmp_path: Path
                                                      ) -> None:
    result, answers = findscu(worklist.port, worklist_query(tmp_path / "q.dcm"), tmp_path / "x",
                              calling="NOBODY")
    assert result.returncode != 0
    assert "Calling AE Title Not Recognized" in result.stderr
    assert answers == []
    assert worklist.asked == []
    assert [e for e in worklist.audit_events() if e.action == "search"] == []


# -- pynetdicom as SCU -----------------------------------------------------------------------


@pytest.fixture
def scu(worklist: Worklist) -> Iterator[ScuAssociation]:
    ae = AE(ae_title=SENDER_AE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(MODALITY_WORKLIST_FIND, [ImplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", worklist.port, ae_title="TELERAD",
                         evt_handlers=list(REQUESTOR_HANDLERS))
    assert assoc.is_established
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _find(assoc: ScuAssociation, query: Dataset) -> list[tuple[int, Dataset | None]]:
    return [(int(status.Status), identifier)
            for status, identifier in assoc.send_c_find(query, MODALITY_WORKLIST_FIND)]


def _step_query(**keys: str) -> Dataset:
    step = Dataset()
    for keyword, value in keys.items():
        setattr(step, keyword, value)
    ds = Dataset()
    ds.AccessionNumber = ""
    ds.PatientID = ""
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def test_pynetdicom_queries_in_implicit_vr(scu: ScuAssociation) -> None:
    got = _find(scu, _step_query(ScheduledProcedureStepStartDate="20261123-20261123",
                                 ScheduledProcedureStepStartTime="0900-1000"))
    assert [status for status, _ in got] == [0xFF00, 0x0000]
    identifier = got[0][1]
    assert identifier is not None
    assert (identifier.AccessionNumber, identifier.PatientID) == ("ACC-CT-1", "PID-1")
    step = identifier.ScheduledProcedureStepSequence[0]
    assert step.ScheduledProcedureStepStartTime == "093000"
    assert "Modality" not in step  # not asked

    by_uid = Dataset()
    by_uid.StudyInstanceUID = [MR.study_instance_uid, "1.2.3.4"]  # a list of UIDs
    by_uid.PatientName = ""
    got = _find(scu, by_uid)
    assert [(s, i.PatientName if i else None) for s, i in got] == [
        (0xFF00, "MARTIN^PAUL"), (0x0000, None)]


def test_an_identifier_without_keys_matches_every_step_with_nothing_in_it(
        scu: ScuAssociation) -> None:
    """(pynetdicom cannot send a data set of zero bytes: it announces one and sends none. The
    Upper Layer's own test sends it.) Only the character set: every step, no attribute."""
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 100"
    got = _find(scu, query)
    assert [status for status, _ in got] == [0xFF00, 0xFF00, 0x0000]
    for _status, identifier in got[:2]:
        assert identifier is not None
        assert [element.keyword for element in identifier] == ["SpecificCharacterSet"]


@pytest.mark.filterwarnings("ignore:Invalid value for VR DA:UserWarning")
def test_an_invalid_date_key_is_a900_and_the_association_goes_on(scu: ScuAssociation) -> None:
    got = _find(scu, _step_query(ScheduledProcedureStepStartDate="23/11/2026"))
    assert [status for status, _ in got] == [0xA900]
    got = _find(scu, _step_query(Modality="MR"))
    assert [status for status, _ in got] == [0xFF00, 0x0000]


def test_a_failing_worklist_is_c001(scu: ScuAssociation, monkeypatch: pytest.MonkeyPatch
                                    ) -> None:
    def broken(session: Session, *, site_id: int, now: dt.datetime) -> list[WorklistEntry]:
        raise sa.exc.OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(telerad.gateway.dicom, "worklist_entries", broken)
    got = _find(scu, _step_query(Modality="CT"))
    assert [status for status, _ in got] == [0xC001]
    assert scu.is_established


def test_a_cancel_during_the_responses_does_not_break_the_association(
        scu: ScuAssociation) -> None:
    """C-CANCEL-RQ (PS3.7 §9.3.2.3): answered with Cancel when it arrives between responses,
    ignored when it comes after the final one; the association goes on either way."""
    context_id = scu.accepted_contexts[0].context_id
    assert context_id is not None
    responses = scu.send_c_find(_step_query(Modality=""), MODALITY_WORKLIST_FIND, msg_id=11)
    statuses = []
    for status, _identifier in responses:
        statuses.append(int(status.Status))
        if len(statuses) == 1:
            scu.send_c_cancel(11, context_id)
    assert statuses[0] == 0xFF00
    assert statuses[-1] in (0xFE00, 0x0000)
    got = _find(scu, _step_query(Modality="MR"))
    assert [status for status, _ in got] == [0xFF00, 0x0000]
