"""A whole night over real interfaces, on an injected clock.

A request is filed over HTTP and validated by the radiologist on duty; the scanner (dcmtk
``findscu -W``) gets its Modality Worklist item; the scanner (dcmtk ``storescu``) sends the
images with what the worklist gave it; the exam becomes ready, is offered only to the
eligible radiologists, is claimed by one; another exam nobody claims escalates on time.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from telerad.dicom.synthetic import SyntheticStudy, write_study
from telerad.testing.peers import findscu, storescu, worklist_query
from tests.integration.workflow_env import Env, env, request_body

__all__ = ["env"]
pytestmark = pytest.mark.skipif(shutil.which("findscu") is None, reason="needs dcmtk")


def _send(env: Env, study: SyntheticStudy, folder: Path, *, calling: str = "CT_CARCA") -> None:
    write_study(study, folder)
    result = storescu([folder], port=env.server.dicom_port, calling=calling)
    assert result.returncode == 0, result.stderr


def _ids(env: Env, username: str) -> list[int]:
    return [item["exam"]["id"] for item in env.api(username).ok("GET", "/api/worklist")]


def test_a_night(env: Env, tmp_path: Path) -> None:
    er, alice = env.api("er_carcassonne"), env.api("dr_alice")
    # 20:00 — the emergency doctor files a request; Alice, on duty, validates it.
    filed = er.ok("POST", "/api/requests", request_body(env, patient_id="IPP123456"))
    assert _ids(env, "dr_alice") == [filed["id"]]
    validated = alice.ok("POST", f"/api/requests/{filed['id']}/decision",
                         {"decision": "accept", "protocol_code": "CT_HEAD"})

    # The scanner asks telerad's worklist: its site's item, with the accession number.
    query = worklist_query(tmp_path / "q.dcm", modality="CT")
    found, answers = findscu(port=env.server.dicom_port, query=query, out=tmp_path / "mwl",
                             calling="CT_CARCA")
    assert found.returncode == 0, found.stderr
    assert [a.AccessionNumber for a in answers] == [validated["accession_number"]]
    item = answers[0]
    assert (item.PatientID, str(item.PatientName)) == ("IPP123456", "DUPONT^MARIE")
    assert item.StudyInstanceUID == validated["study_instance_uid"]
    assert item.ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence[0] \
        .CodeValue == "CT_HEAD"
    # Narbonne's scanner sees nothing of it.
    found, answers = findscu(port=env.server.dicom_port, query=query,
                             out=tmp_path / "mwl-narbonne", calling="CT_NARBO")
    assert (found.returncode, answers) == (0, [])

    # 20:25 — the images, as the scanner fills them from the worklist item.
    env.clock.advance(dt.timedelta(minutes=25))
    study = SyntheticStudy(slices=20, rows=64, columns=64, patient_id=item.PatientID,
                           patient_name=str(item.PatientName),
                           accession_number=item.AccessionNumber,
                           study_instance_uid=item.StudyInstanceUID,
                           series_description="HEAD 2.5mm")
    _send(env, study, tmp_path / "study")
    assert er.ok("GET", f"/api/exams/{filed['id']}")["state"] == "acquiring"
    env.advance(minutes=1)  # the archive's stable age passes, the protocol's series are in
    ready = er.ok("GET", f"/api/exams/{filed['id']}")
    assert (ready["state"], ready["completion"]) == ("ready", "expected_series")

    # Offered to the eligible only: Alice and Emma (Imadis primaries, credentialed).
    offered = {u: _ids(env, u) for u in ("dr_alice", "dr_bruno", "dr_chloe", "dr_david",
                                        "dr_emma", "dr_farid")}
    assert offered == {"dr_alice": [filed["id"]], "dr_bruno": [], "dr_chloe": [],
                       "dr_david": [], "dr_emma": [filed["id"]], "dr_farid": []}
    # Alice claims it; Emma is too late.
    assert alice.ok("POST", f"/api/exams/{filed['id']}/claim")["state"] == "in_reading"
    status, answer = env.api("dr_emma").call("POST", f"/api/exams/{filed['id']}/claim")
    assert (status, answer["error"]) == (409, "already_claimed")

    # 21:00 — a life-threatening exam nobody claims: after 10 minutes (a third of its
    # 30-minute target) it escalates to Imadis's back-up, Bruno, with the reason recorded.
    env.clock.advance(dt.timedelta(minutes=34))
    second = er.ok("POST", "/api/requests",
                   request_body(env, patient_id="IPP999", urgency="life_threatening"))
    second = alice.ok("POST", f"/api/requests/{second['id']}/decision",
                      {"decision": "accept", "protocol_code": "CT_CTPA"})
    _send(env, replace(SyntheticStudy(slices=5, rows=32, columns=32), patient_id="IPP999",
                       accession_number=second["accession_number"],
                       series_description="ANGIO CHEST"), tmp_path / "second")
    env.advance(minutes=1)
    ready_at = env.clock.now()
    assert er.ok("GET", f"/api/exams/{second['id']}")["state"] == "ready"
    assert _ids(env, "dr_bruno") == []
    env.advance(minutes=9)
    assert _ids(env, "dr_bruno") == []
    env.advance(minutes=1)
    assert _ids(env, "dr_bruno") == [second["id"]]
    timeline = env.api("coordinator").ok("GET", f"/api/exams/{second['id']}")["timeline"]
    escalated = [e for e in timeline if e["kind"] == "escalated"]
    assert len(escalated) == 1
    assert dt.datetime.fromisoformat(escalated[0]["at"]) == ready_at + dt.timedelta(minutes=10)
    assert escalated[0]["detail"]["radiologists"] == ["Dr Bruno Petit"]
    assert escalated[0]["detail"]["reason"].startswith("unclaimed 10 min after it was ready")
    assert env.api("dr_bruno").ok("POST", f"/api/exams/{second['id']}/claim")["reader_id"] == \
        env.night.radiologists["dr_bruno"]
