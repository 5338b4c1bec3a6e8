"""The reading workflow through its JSON API, on a real database (SQLite or PostgreSQL):
request, justification, images, readiness, routing, worklist, claim, escalation."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

from pydicom.uid import generate_uid
from sqlalchemy import select

from telerad.audit.models import AuditEvent
from telerad.audit.service import verify
from telerad.db import transaction
from telerad.dicom.synthetic import SyntheticStudy
from tests.integration.workflow_env import Env, env, request_body
from tests.integration.workflow_env import file_and_accept as _file_and_accept
from tests.integration.workflow_env import ready_exam as _ready_exam

__all__ = ["env"]


def test_request_is_justified_by_the_radiologist_on_duty(env: Env) -> None:
    filed = env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env))
    # On Alice's worklist as a request to justify; not on David's (Narbonne only).
    alice = env.api("dr_alice")
    assert [(i["kind"], i["exam"]["id"]) for i in alice.ok("GET", "/api/worklist")] == [
        ("justify", filed["id"])]
    david = env.api("dr_david")
    assert david.ok("GET", "/api/worklist") == []
    status, answer = david.call("POST", f"/api/requests/{filed['id']}/decision",
                                {"decision": "accept", "protocol_code": "CT_HEAD"})
    assert status == 404, answer  # another site's patient: not even its existence
    # Farid is credentialed but not on duty.
    status, answer = env.api("dr_farid").call(
        "POST", f"/api/requests/{filed['id']}/decision",
        {"decision": "accept", "protocol_code": "CT_HEAD"})
    assert status == 403
    assert "not on duty" in answer["message"]
    # A refusal needs a reason; an unknown protocol is refused; nothing changes.
    status, answer = alice.call("POST", f"/api/requests/{filed['id']}/decision",
                                {"decision": "refuse"})
    assert (status, answer["error"]) == (400, "invalid_input")
    status, _ = alice.call("POST", f"/api/requests/{filed['id']}/decision",
                           {"decision": "accept", "protocol_code": "NOPE"})
    assert status == 400
    accepted = alice.ok("POST", f"/api/requests/{filed['id']}/decision",
                        {"decision": "accept", "protocol_code": "CT_HEAD"})
    assert accepted["state"] == "validated"
    assert accepted["accession_number"].startswith("TR")
    assert accepted["protocol_code"] == "CT_HEAD"
    # Deciding twice is a conflict.
    status, answer = alice.call("POST", f"/api/requests/{filed['id']}/decision",
                                {"decision": "refuse", "reason": "changed my mind"})
    assert (status, answer["error"]) == (409, "invalid_transition")
    detail = env.api("er_carcassonne").ok("GET", f"/api/exams/{filed['id']}")
    kinds = [(e["kind"], e["actor"]) for e in detail["timeline"]]
    assert kinds[0][0] == "filed"
    assert kinds[1] == ("accept", f"radiologist:{env.night.radiologists['dr_alice']}")
    assert detail["timeline"][1]["detail"]["radiologist"] == "Dr Alice Martin"


def test_change_and_refuse(env: Env) -> None:
    er = env.api("er_carcassonne")
    one = er.ok("POST", "/api/requests", request_body(env))
    changed = env.api("dr_alice").ok(
        "POST", f"/api/requests/{one['id']}/decision",
        {"decision": "change", "protocol_code": "CT_STROKE",
         "exam_asked": "Stroke CT with angiography", "reason": "symptoms < 4h30"})
    assert changed["exam_asked"] == "Stroke CT with angiography"
    assert changed["state"] == "validated"
    two = er.ok("POST", "/api/requests", request_body(env, patient_id="PAT002"))
    refused = env.api("dr_bruno").ok("POST", f"/api/requests/{two['id']}/decision",
                                     {"decision": "refuse", "reason": "not justified: MRI"})
    assert (refused["state"], refused["refusal_reason"]) == ("refused", "not justified: MRI")


def test_images_meet_their_request_and_the_exam_is_offered(env: Env) -> None:
    exam = _ready_exam(env)
    assert exam["completion"] == "expected_series"
    assert exam["seconds_left"] == 60 * 60  # urgent: 1 h from ready (just now)
    kinds = [e["kind"] for e in env.api("tech_carcassonne").ok(
        "GET", f"/api/exams/{exam['id']}")["timeline"]]
    assert kinds == ["filed", "accept", "images_arrived", "ready"]
    # Offered to Alice (primary, step 0); Bruno (back-up) from escalation 1; Emma lacks
    # nothing for CT_HEAD; David is not credentialed.
    routing = env.api("coordinator").ok("GET", f"/api/exams/{exam['id']}/routing")
    verdicts = {v["name"]: (v["eligible"], v["reason"]) for v in routing["verdicts"]}
    assert verdicts["Dr Alice Martin"][0] is True
    assert verdicts["Dr Emma Blanc"][0] is True
    assert verdicts["Dr Bruno Petit"] == (False, "back-ups of team Imadis: offered from "
                                                 "escalation 1")
    assert verdicts["Dr Chloé Roux"] == (False, "team Occitanie: offered from escalation 2")
    assert verdicts["Dr Farid Gris"] == (False, "not on duty now")
    assert "Dr David Noir" not in verdicts or not verdicts["Dr David Noir"][0]
    assert [s["label"] for s in routing["steps"]] == [
        "primaries of team Imadis", "back-ups of team Imadis", "team Occitanie"]
    worklists = {u: [i["exam"]["id"] for i in env.api(u).ok("GET", "/api/worklist")]
                 for u in ("dr_alice", "dr_bruno", "dr_chloe", "dr_emma")}
    assert worklists == {"dr_alice": [exam["id"]], "dr_bruno": [], "dr_chloe": [],
                         "dr_emma": [exam["id"]]}


def test_subspecialty_decides_eligibility(env: Env) -> None:
    exam = _ready_exam(env, protocol="CT_STROKE", urgency="life_threatening")
    routing = env.api("coordinator").ok("GET", f"/api/exams/{exam['id']}/routing")
    verdicts = {v["name"]: (v["eligible"], v["reason"]) for v in routing["verdicts"]}
    assert verdicts["Dr Emma Blanc"] == (False, "lacks the neuro subspecialty the protocol "
                                                "needs")
    status, answer = env.api("dr_emma").call("POST", f"/api/exams/{exam['id']}/claim")
    assert status == 403
    assert "neuro" in answer["message"]


def test_claim_release_and_conflict(env: Env) -> None:
    exam = _ready_exam(env)
    alice, emma, bruno = env.api("dr_alice"), env.api("dr_emma"), env.api("dr_bruno")
    status, answer = bruno.call("POST", f"/api/exams/{exam['id']}/claim")
    assert status == 403
    assert "offered from escalation 1" in answer["message"]
    claimed = alice.ok("POST", f"/api/exams/{exam['id']}/claim")
    assert claimed["state"] == "in_reading"
    assert claimed["reader_id"] == env.night.radiologists["dr_alice"]
    status, answer = emma.call("POST", f"/api/exams/{exam['id']}/claim")
    assert (status, answer["error"]) == (409, "already_claimed")
    assert [i["kind"] for i in alice.ok("GET", "/api/worklist")] == ["reading"]
    assert emma.ok("GET", "/api/worklist") == []
    status, _ = emma.call("POST", f"/api/exams/{exam['id']}/release")
    assert status == 409
    assert alice.ok("POST", f"/api/exams/{exam['id']}/release")["state"] == "ready"
    assert emma.ok("POST", f"/api/exams/{exam['id']}/claim")["state"] == "in_reading"


def _race(readers: list[Any], exam_id: int) -> list[int]:
    """Every reader claims the exam at the same instant; their HTTP statuses."""
    results: list[int] = []
    barrier = threading.Barrier(len(readers))

    def claim(api: Any) -> None:
        barrier.wait()
        results.append(api.call("POST", f"/api/exams/{exam_id}/claim")[0])

    threads = [threading.Thread(target=claim, args=(r,)) for r in readers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_claims_exactly_one_wins(env: Env) -> None:
    exams = [_ready_exam(env, patient_id=f"PAT{i}") for i in range(3)]
    readers = [env.api("dr_alice"), env.api("dr_emma")] * 4
    for exam in exams:
        assert sorted(_race(readers, exam["id"])) == [200] + [409] * (len(readers) - 1)
        events = env.api("coordinator").ok("GET", f"/api/exams/{exam['id']}")["timeline"]
        assert [e["kind"] for e in events].count("claimed") == 1


def test_unclaimed_exam_escalates_to_backup_then_next_team_then_coordinator(env: Env) -> None:
    exam = _ready_exam(env)  # urgent: 60 min target, so a claim window of 20 min
    bruno, chloe = env.api("dr_bruno"), env.api("dr_chloe")
    assert bruno.ok("GET", "/api/worklist") == []
    env.advance(minutes=19)  # 19 min after ready: not yet
    assert bruno.ok("GET", "/api/worklist") == []
    env.advance(minutes=1)
    assert [i["exam"]["id"] for i in bruno.ok("GET", "/api/worklist")] == [exam["id"]]
    assert chloe.ok("GET", "/api/worklist") == []
    env.advance(minutes=20)
    assert [i["exam"]["id"] for i in chloe.ok("GET", "/api/worklist")] == [exam["id"]]
    coordinator = env.api("coordinator")
    assert coordinator.ok("GET", "/api/escalations") == []
    env.advance(minutes=20)
    assert [e["id"] for e in coordinator.ok("GET", "/api/escalations")] == [exam["id"]]
    timeline = coordinator.ok("GET", f"/api/exams/{exam['id']}")["timeline"]
    escalations = [e["detail"] for e in timeline if e["kind"] == "escalated"]
    assert [e["to"] for e in escalations] == ["back-ups of team Imadis", "team Occitanie",
                                              "coordinator"]
    assert escalations[0]["reason"] == ("unclaimed 20 min after it was ready: offered to "
                                        "back-ups of team Imadis")
    assert escalations[0]["radiologists"] == ["Dr Bruno Petit"]
    env.advance(minutes=60)  # nothing more to escalate to
    assert len([e for e in coordinator.ok("GET", f"/api/exams/{exam['id']}")["timeline"]
                if e["kind"] == "escalated"]) == 3
    # Everyone on the ladder may still claim it (signing in again: two hours have passed).
    assert env.api("dr_chloe").ok("POST", f"/api/exams/{exam['id']}/claim")["state"] == \
        "in_reading"


def test_a_claim_stops_escalation(env: Env) -> None:
    exam = _ready_exam(env)
    env.api("dr_alice").ok("POST", f"/api/exams/{exam['id']}/claim")
    env.advance(minutes=120)
    timeline = env.api("coordinator").ok("GET", f"/api/exams/{exam['id']}")["timeline"]
    assert "escalated" not in [e["kind"] for e in timeline]


def test_stroke_alert_is_ready_at_its_first_image(env: Env) -> None:
    exam = _file_and_accept(env, urgency="stroke_alert", protocol="CT_STROKE")
    env.send(SyntheticStudy(slices=3, rows=16, columns=16,
                            accession_number=exam["accession_number"]), indexes=range(1))
    ready = env.api("dr_alice").ok("GET", f"/api/exams/{exam['id']}")
    assert (ready["state"], ready["completion"]) == ("ready", "stroke_alert")
    assert ready["seconds_left"] == 15 * 60
    worklist = env.api("dr_alice").ok("GET", "/api/worklist")
    assert worklist[0]["exam"]["id"] == exam["id"]


def test_expected_series_complete_the_exam(env: Env) -> None:
    exam = _file_and_accept(env, protocol="CT_TRAUMA")  # expects "head" and "body"
    study = SyntheticStudy(slices=1, rows=16, columns=16,
                           accession_number=exam["accession_number"], series_description="HEAD")
    env.send(study)
    env.advance(minutes=1)  # stable, but the body series has not come: the scanner paused
    assert env.api("dr_alice").ok("GET", f"/api/exams/{exam['id']}")["state"] == "acquiring"
    env.send(replace(study, series_instance_uid=generate_uid(), series_description="BODY 3mm"))
    env.advance(minutes=1)
    done = env.api("dr_alice").ok("GET", f"/api/exams/{exam['id']}")
    assert (done["state"], done["completion"]) == ("ready", "expected_series")


def test_missing_series_wait_their_grace_then_the_exam_is_ready(env: Env) -> None:
    exam = _file_and_accept(env, protocol="CT_TRAUMA")
    env.send(SyntheticStudy(slices=1, rows=16, columns=16,
                            accession_number=exam["accession_number"], series_description="HEAD"))
    env.advance(minutes=1)
    env.advance(minutes=9)
    assert env.api("dr_alice").ok("GET", f"/api/exams/{exam['id']}")["state"] == "acquiring"
    env.advance(minutes=1)
    done = env.api("dr_alice").ok("GET", f"/api/exams/{exam['id']}")
    assert (done["state"], done["completion"]) == ("ready", "stable")
    missing = [e for e in done["timeline"] if e["kind"] == "series_missing"]
    assert missing[0]["detail"]["missing"] == ["body"]


def test_technologist_marks_done(env: Env) -> None:
    exam = _file_and_accept(env)
    tech = env.api("tech_carcassonne")
    status, answer = tech.call("POST", f"/api/exams/{exam['id']}/done")
    assert (status, answer["error"]) == (409, "invalid_transition")  # no image yet
    env.send(SyntheticStudy(slices=1, rows=16, columns=16,
                            accession_number=exam["accession_number"]))
    done = tech.ok("POST", f"/api/exams/{exam['id']}/done")
    assert (done["state"], done["completion"]) == ("ready", "marked_done")
    status, _ = env.api("er_carcassonne").call("POST", f"/api/exams/{exam['id']}/done")
    assert status == 403  # a requesting physician does not mark acquisitions


def test_unmatched_study_is_reconciled_never_guessed(env: Env) -> None:
    one = _file_and_accept(env, patient_id="PAT777")
    two = _file_and_accept(env, patient_id="PAT777")
    # No accession number, and two requests for the patient: unmatched.
    env.send(SyntheticStudy(slices=1, rows=16, columns=16, accession_number="",
                            patient_id="PAT777", series_description="HEAD"))
    tech = env.api("tech_carcassonne")
    unmatched = tech.ok("GET", "/api/exams?state=unmatched")
    assert len(unmatched) == 1
    assert unmatched[0]["patient_id"] == "PAT777"
    timeline = tech.ok("GET", f"/api/exams/{unmatched[0]['id']}")["timeline"]
    assert timeline[0]["detail"]["reason"] == ("several waiting requests for this patient: "
                                               "choose one")
    for exam in (one, two):
        assert tech.ok("GET", f"/api/exams/{exam['id']}")["state"] == "validated"
    status, _ = tech.call("POST", f"/api/exams/{unmatched[0]['id']}/reconcile", {})
    assert status == 400
    attached = tech.ok("POST", f"/api/exams/{unmatched[0]['id']}/reconcile",
                       {"attach_to": two["id"]})
    assert (attached["id"], attached["state"]) == (two["id"], "acquiring")
    assert tech.ok("GET", f"/api/exams/{unmatched[0]['id']}")["state"] == "cancelled"
    env.advance(minutes=1)
    assert tech.ok("GET", f"/api/exams/{two['id']}")["state"] == "ready"
    # A study with an unknown accession number is unmatched too; rejected with a reason.
    env.send(SyntheticStudy(slices=1, rows=16, columns=16, accession_number="UNKNOWN1"))
    other = [e for e in tech.ok("GET", "/api/exams?state=unmatched")]
    assert len(other) == 1
    rejected = tech.ok("POST", f"/api/exams/{other[0]['id']}/reconcile",
                       {"reject_reason": "test images from the scanner's engineer"})
    assert rejected["state"] == "cancelled"


def test_patient_id_matches_a_single_request(env: Env) -> None:
    exam = _file_and_accept(env, patient_id="PAT900")
    env.send(SyntheticStudy(slices=1, rows=16, columns=16, accession_number="",
                            patient_id="PAT900"))
    found = env.api("tech_carcassonne").ok("GET", f"/api/exams/{exam['id']}")
    assert found["state"] == "acquiring"
    assert found["timeline"][-1]["detail"]["matched_by"] == "patient_id"


def test_what_if_replays_routing_against_another_roster(env: Env) -> None:
    exam = _ready_exam(env)
    now = env.clock.now()
    body = {"shifts": [{"radiologist": "Dr Farid Gris", "team": "Occitanie",
                        "start": (now.replace(hour=0)).isoformat(),
                        "end": (now.replace(hour=23)).isoformat()}]}
    coordinator = env.api("coordinator")
    answer = coordinator.ok("POST", f"/api/exams/{exam['id']}/routing/what-if", body)
    eligible = [v["name"] for v in answer["verdicts"] if v["eligible"]]
    assert eligible == ["Dr Farid Gris"]
    # Nothing changed: the real routing still offers Alice and Emma.
    real = coordinator.ok("GET", f"/api/exams/{exam['id']}/routing")
    assert sorted(v["name"] for v in real["verdicts"] if v["eligible"]) == [
        "Dr Alice Martin", "Dr Emma Blanc"]
    status, answer = coordinator.call("POST", f"/api/exams/{exam['id']}/routing/what-if",
                                      {"shifts": [{**body["shifts"][0], "team": "Nope"}]})
    assert status == 400
    status, _ = env.api("dr_alice").call("POST", f"/api/exams/{exam['id']}/routing/what-if",
                                         body)
    assert status == 403


def test_bad_requests_change_nothing(env: Env) -> None:
    er = env.api("er_carcassonne")
    body = request_body(env)
    for change, fragment in (({"clinical_question": " "}, "clinical question"),
                             ({"patient_birth_date": "1958-03-12"}, "YYYYMMDD"),
                             ({"modality": "C T"}, "modality"),
                             ({"patient_name": "DUPONT^" + "M" * 60}, "64 characters")):
        status, answer = er.call("POST", "/api/requests", {**body, **change})
        assert status == 400, answer
        assert fragment in answer["message"]
    status, _ = er.call("POST", "/api/requests", {**body, "urgency": "whenever"})
    assert status == 422
    status, answer = er.call("POST", "/api/requests",
                             {**body, "site_id": env.night.sites["narbonne"]})
    assert status == 403
    assert env.api("coordinator").ok("GET", "/api/exams") == []


def test_every_change_and_read_is_in_the_audit_trail(env: Env) -> None:
    exam = _ready_exam(env)
    env.api("dr_alice").ok("GET", "/api/worklist")
    env.advance(minutes=25)  # escalates once (a job: the system is the actor)
    env.api("dr_bruno").ok("POST", f"/api/exams/{exam['id']}/claim")
    with transaction(env.runtime.sessions, readonly=True) as session:
        events = [(e.actor_kind, e.action, json.loads(e.detail).get("what"))
                  for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert list(verify(session)) == []
    for expected in [("user", "create", "filed"), ("user", "update", "decision:accept"),
                     ("dicom", "store", None), ("system", "update", "ready"),
                     ("system", "update", "escalated"), ("user", "update", "claimed")]:
        assert expected in events, expected
    assert ("user", "read", None) in events  # the worklist and exam reads


def test_worklist_is_ordered_by_urgency_then_deadline(env: Env) -> None:
    scheduled = _ready_exam(env, urgency="scheduled", patient_id="P1")
    urgent_first = _ready_exam(env, urgency="urgent", patient_id="P2")
    urgent_second = _ready_exam(env, urgency="urgent", patient_id="P3")
    threatening = _ready_exam(env, urgency="life_threatening", patient_id="P4")
    filed = env.api("er_carcassonne").ok("POST", "/api/requests",
                                         request_body(env, urgency="stroke_alert"))
    items = env.api("dr_alice").ok("GET", "/api/worklist")
    assert [(i["kind"], i["exam"]["id"]) for i in items] == [
        ("justify", filed["id"]), ("ready", threatening["id"]), ("ready", urgent_first["id"]),
        ("ready", urgent_second["id"]), ("ready", scheduled["id"])]
    assert env.api("dr_alice").ok("GET", "/api/worklist?modality=MR") == []
    narbonne = env.night.sites["narbonne"]
    assert env.api("dr_alice").ok("GET", f"/api/worklist?site_id={narbonne}") == []


def test_exam_clocks(env: Env) -> None:
    exam = _ready_exam(env)
    env.advance(minutes=25)
    env.api("dr_bruno").ok("POST", f"/api/exams/{exam['id']}/claim")  # after escalation
    steps = {c["step"]: c for c in env.api("er_carcassonne").ok(
        "GET", f"/api/exams/{exam['id']}")["clocks"]}
    assert steps["claimed"]["minutes"] == 25.0
    assert steps["claimed"]["late"] is True  # claim window of an urgent exam: 20 min
    assert steps["reported"]["late"] is False  # 60 min target, 25 min in


def test_marking_done_a_stroke_alert_being_read_keeps_its_reader(env: Env) -> None:
    exam = _file_and_accept(env, urgency="stroke_alert", protocol="CT_STROKE")
    env.send(SyntheticStudy(slices=1, rows=16, columns=16,
                            accession_number=exam["accession_number"]))
    env.api("dr_alice").ok("POST", f"/api/exams/{exam['id']}/claim")
    done = env.api("tech_carcassonne").ok("POST", f"/api/exams/{exam['id']}/done")
    assert (done["state"], done["reader_id"]) == ("in_reading",
                                                  env.night.radiologists["dr_alice"])
    kinds = [e["kind"] for e in env.api("dr_alice").ok("GET", f"/api/exams/{exam['id']}")[
        "timeline"]]
    assert kinds[-1] == "acquisition_done"


def test_a_request_waits_for_the_first_rung_then_everyone_on_duty(env: Env) -> None:
    filed = env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env))
    assert _kinds(env, "dr_bruno") == []  # a back-up: not yet
    env.advance(minutes=20)  # an urgent request's claim window
    assert _kinds(env, "dr_bruno") == [("justify", filed["id"])]
    assert _kinds(env, "dr_chloe") == [("justify", filed["id"])]


def _kinds(env: Env, username: str) -> list[tuple[str, int]]:
    return [(i["kind"], i["exam"]["id"]) for i in env.api(username).ok("GET", "/api/worklist")]


def test_who_is_on_duty_for_a_site_and_modality(env: Env) -> None:
    carcassonne = env.night.sites["carcassonne"]
    answer = env.api("er_carcassonne").ok(
        "GET", f"/api/roster/on-duty?site_id={carcassonne}&modality=CT")
    assert answer["covered"] is True
    assert [(s["label"], s["radiologists"]) for s in answer["steps"]] == [
        ("primaries of team Imadis", ["Dr Alice Martin", "Dr Emma Blanc"]),
        ("back-ups of team Imadis", ["Dr Bruno Petit"]),
        ("team Occitanie", ["Dr Chloé Roux"])]
    noon = env.clock.now().replace(hour=11).isoformat().replace("+00:00", "Z")
    day = env.api("er_carcassonne").ok(
        "GET", f"/api/roster/on-duty?site_id={carcassonne}&modality=CT&at={noon}")
    assert (day["covered"], day["steps"]) == (False, [])
    status, _ = env.api("er_narbonne").call(
        "GET", f"/api/roster/on-duty?site_id={carcassonne}&modality=CT")
    assert status == 403
