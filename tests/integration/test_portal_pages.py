"""The hospital portal's pages over real HTTP (httpx keeps the cookies as a browser would):
sign-in, CSRF on every form, one site never sees another's patients, roles, and a bad
request form that changes nothing and says why beside each field."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from telerad.audit.models import AuditEvent
from telerad.db import transaction
from telerad.dicom.synthetic import SyntheticStudy
from telerad.errors import InvalidInput
from telerad.workflow.exams.models import Exam, ExamEvent
from telerad.workflow.requests import checks
from telerad.workflow.requests.service import Contraindications, RequestForm, file_request
from telerad.workflow.sites.models import Urgency
from tests.integration.page_clients import Browsers, browsers, csrf_of
from tests.integration.workflow_env import Env, env, request_body

__all__ = ["browsers", "env"]

#: A well-formed INS (NIR 2 58 03 11 069 001, key 73).
INS = "258031106900173"


@pytest.fixture
def tech(browsers: Browsers) -> httpx.Client:
    return browsers("tech_carcassonne")


def _exam_count(env: Env) -> int:
    with transaction(env.runtime.sessions, readonly=True) as session:
        return session.scalar(select(func.count()).select_from(Exam)) or 0


def _event_count(env: Env) -> int:
    with transaction(env.runtime.sessions, readonly=True) as session:
        return session.scalar(select(func.count()).select_from(ExamEvent)) or 0


def _form(env: Env, **changes: str) -> dict[str, str]:
    """The request form as a browser posts it, with ``changes``."""
    return {"site_id": str(env.night.sites["carcassonne"]), "patient_family_name": "DUPONT",
            "patient_given_name": "MARIE", "patient_id": "PAT001", "ins": INS,
            "patient_birth_date": "1958-03-12", "patient_sex": "F",
            "requesting_physician": "Dr Urgentiste", "clinical_context": "fall at home",
            "clinical_question": "intracranial bleeding?", "urgency": "urgent",
            "modality": "CT", "exam_asked": "CT head without contrast", "pregnancy": "no",
            "egfr": "75", "contrast_allergy": ""} | changes


def _validated(env: Env, **body: Any) -> dict[str, Any]:
    exam = env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env, **body))
    return dict(env.api("dr_alice").ok("POST", f"/api/requests/{exam['id']}/decision",
                                       {"decision": "accept", "protocol_code": "CT_HEAD"}))


def _unmatched(env: Env, patient_id: str = "LOST1") -> int:
    env.send(SyntheticStudy(slices=1, rows=16, columns=16, patient_id=patient_id,
                            patient_name="INCONNU^X", accession_number=""))
    exams = env.api("tech_carcassonne").ok("GET", "/api/exams?state=unmatched")
    return int(next(e["id"] for e in exams if e["patient_id"] == patient_id))


def test_strangers_go_to_sign_in(env: Env, browsers: Browsers) -> None:
    with browsers(None) as stranger:
        for path in ("/portal", "/portal/requests/new", "/portal/exams/1"):
            assert stranger.get(path).headers["location"] == "/signin", path
        for path in ("/portal/items", "/portal/events", "/portal/exams/1/live",
                     "/portal/exams/1/events"):
            assert stranger.get(path).status_code == 401, path
        for path in ("/portal/requests", "/portal/exams/1/done", "/portal/exams/1/cancel",
                     "/portal/exams/1/reconcile"):
            answer = stranger.post(path, data={"csrf_token": "x"})
            assert answer.headers["location"] == "/signin", path
    assert _exam_count(env) == 0


def test_every_form_needs_its_csrf_token(env: Env, tech: httpx.Client) -> None:
    filed = env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env))
    acquiring = _validated(env, patient_id="PAT002")
    env.send(SyntheticStudy(slices=1, rows=16, columns=16, patient_id="PAT002",
                            accession_number=acquiring["accession_number"]))
    unmatched = _unmatched(env)
    page = tech.get(f"/portal/exams/{unmatched}")
    assert page.status_code == 200
    csrf = csrf_of(page.text)
    posts = [("/portal/requests", _form(env)),
             (f"/portal/exams/{acquiring['id']}/done", {}),
             (f"/portal/exams/{filed['id']}/cancel", {"reason": "duplicate"}),
             (f"/portal/exams/{unmatched}/reconcile", {"attach_to": str(acquiring["id"])}),
             (f"/portal/exams/{unmatched}/reconcile", {"reject_reason": "test images"})]
    exams, events = _exam_count(env), _event_count(env)
    for path, data in posts:
        altered = csrf[:-1] + ("1" if csrf.endswith("0") else "0")  # one digit off
        for forged in ({}, {"csrf_token": "forged"}, {"csrf_token": altered}):
            answer = tech.post(path, data=data | forged)
            assert answer.status_code == 403, (path, forged)
            assert "The page expired" in answer.text
            assert 'role="alert"' in answer.text
    assert (_exam_count(env), _event_count(env)) == (exams, events)  # nothing changed
    # With the token, the same forms work.
    answer = tech.post(f"/portal/exams/{filed['id']}/cancel",
                       data={"reason": "duplicate", "csrf_token": csrf})
    assert answer.headers["location"] == f"/portal/exams/{filed['id']}?notice=cancelled"
    assert env.api("tech_carcassonne").ok("GET", f"/api/exams/{filed['id']}")["state"] == (
        "cancelled")


def test_another_sites_staff_see_nothing_of_it(env: Env, browsers: Browsers) -> None:
    exam = _validated(env, patient_id="SECRET42")
    env.send(SyntheticStudy(slices=1, rows=16, columns=16, patient_id="SECRET42",
                            accession_number=exam["accession_number"]))
    unmatched = _unmatched(env, "LOST42")
    env.api("er_narbonne").ok("POST", "/api/requests", request_body(
        env, site="narbonne", patient_id="NARBO1") | {"patient_name": "MARTIN^PAUL"})
    secrets = ("SECRET42", "DUPONT", "LOST42", "INCONNU", exam["accession_number"])
    with browsers("tech_narbonne") as narbonne:
        for path in ("/portal", "/portal/items", "/portal?state=todo"):
            page = narbonne.get(path)
            assert page.status_code == 200
            assert "NARBO1" in page.text
            assert not [s for s in secrets if s in page.text], path
        csrf = csrf_of(narbonne.get("/portal/requests/new").text)
        for exam_id in (exam["id"], unmatched):
            for path in (f"/portal/exams/{exam_id}", f"/portal/exams/{exam_id}/live"):
                page = narbonne.get(path)
                assert page.status_code == 404, path
                assert not [s for s in secrets if s in page.text], path
            assert narbonne.get(f"/portal/exams/{exam_id}/events").status_code == 404
            for action, data in (("done", {}), ("cancel", {"reason": "x"}),
                                 ("reconcile", {"reject_reason": "x"})):
                answer = narbonne.post(f"/portal/exams/{exam_id}/{action}",
                                       data=data | {"csrf_token": csrf})
                assert answer.status_code == 404, action
                assert "not about your sites" in answer.text
                assert not [s for s in secrets if s in answer.text]
        # Nor file a request for Carcassonne (a forged form: refused as the API does).
        answer = narbonne.post("/portal/requests", data=_form(env) | {"csrf_token": csrf})
        assert answer.status_code == 403
        assert "Your account may not open this page." in answer.text
        assert _exam_count(env) == 3
    state = env.api("tech_carcassonne").ok("GET", f"/api/exams/{exam['id']}")["state"]
    assert state == "acquiring"
    assert env.api("tech_carcassonne").ok("GET", f"/api/exams/{unmatched}")["state"] == (
        "unmatched")


@pytest.mark.parametrize("username", ["dr_alice", "admin", "coordinator"])
def test_people_outside_the_hospital_get_a_clear_403(env: Env, browsers: Browsers,
                                                     username: str) -> None:
    exam = env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env))
    with browsers(username) as client:
        for path in ("/portal", "/portal/requests/new", f"/portal/exams/{exam['id']}"):
            page = client.get(path)
            assert page.status_code == 403, path
            assert page.headers["content-type"].startswith("text/html")
            assert "Your account may not open this page." in page.text
            assert "DUPONT" not in page.text
        for path in ("/portal/items", "/portal/events"):
            assert client.get(path).status_code == 403
        csrf = csrf_of(client.get("/").text)
        assert client.post("/portal/requests",
                           data=_form(env) | {"csrf_token": csrf}).status_code == 403
        assert client.post(f"/portal/exams/{exam['id']}/cancel",
                           data={"reason": "x", "csrf_token": csrf}).status_code == 403
    assert _exam_count(env) == 1


def test_the_site_manager_follows_exams_but_files_none(env: Env, browsers: Browsers) -> None:
    env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env))
    with browsers("manager_carcassonne") as manager:
        page = manager.get("/portal")
        assert page.status_code == 200
        assert "DUPONT MARIE" in page.text
        assert "/portal/requests/new" not in page.text
        assert manager.get("/portal/requests/new").status_code == 403
        csrf = csrf_of(manager.get("/").text)
        assert manager.post("/portal/requests",
                            data=_form(env) | {"csrf_token": csrf}).status_code == 403
    assert _exam_count(env) == 1


def test_a_bad_form_changes_nothing_and_says_why_beside_each_field(env: Env,
                                                                   tech: httpx.Client) -> None:
    csrf = csrf_of(tech.get("/portal/requests/new").text)
    bad = _form(env, patient_family_name=" ", clinical_question="", egfr="250",
                urgency="", patient_birth_date="12/03/1958", ins="258031106900174",
                exam_asked="CT abdomen with contrast", pregnancy="possible",
                requesting_physician="Dr Urgentiste" * 20)
    before = _exam_count(env)
    page = tech.post("/portal/requests", data=bad | {"csrf_token": csrf})
    assert page.status_code == 400
    assert _exam_count(env) == before
    for field, problem in (
            ("patient_family_name", "The patient&#39;s name is required."),
            ("clinical_question", "The clinical question is required"),
            ("egfr", "eGFR is between 0 and 200."),
            ("urgency", "Choose the urgency."),
            ("patient_birth_date", "Not a valid birth date."),
            ("ins", "Not a valid INS"),
            ("requesting_physician", "has at most 200 characters")):
        error = re.search(rf'<p class="field-error" id="f-{field}-error">([^<]*)</p>', page.text)
        assert error, f"no problem shown beside {field}"
        assert problem in error.group(1)
        assert f'href="#f-{field}"' in page.text  # listed at the top, linked to the field
    assert 'aria-invalid="true"' in page.text
    # The form comes back filled in, with what the radiologist must weigh.
    assert 'value="PAT001"' in page.text
    assert 'value="250"' in page.text
    assert ">fall at home</textarea>" in page.text
    assert 'value="possible" selected' in page.text
    assert "Pregnancy (possible) with an exam that irradiates." in page.text
    # eGFR not a number: said so, nothing written.
    page = tech.post("/portal/requests", data=_form(env, egfr="abc") | {"csrf_token": csrf})
    assert page.status_code == 400
    assert "eGFR is a number" in page.text
    assert _exam_count(env) == before


def test_the_form_speaks_french_by_default(env: Env, browsers: Browsers) -> None:
    with browsers("er_carcassonne", language="") as client:
        csrf = csrf_of(client.get("/portal/requests/new").text)
        page = client.post("/portal/requests", data=_form(env, clinical_question="") | {
            "csrf_token": csrf})
    assert '<html lang="fr">' in page.text
    assert "La question clinique est obligatoire" in page.text
    assert "Alerte AVC" in page.text


def test_a_good_form_files_the_request_and_opens_its_page(env: Env,
                                                          tech: httpx.Client) -> None:
    csrf = csrf_of(tech.get("/portal/requests/new").text)
    answer = tech.post("/portal/requests", data=_form(env, contrast_allergy="yes",
                                                       egfr="42,5") | {"csrf_token": csrf})
    assert answer.status_code == 303
    exam_id = int(re.fullmatch(r"/portal/exams/(\d+)\?notice=filed",
                               answer.headers["location"])[1])  # type: ignore[index]
    exam = env.api("er_carcassonne").ok("GET", f"/api/exams/{exam_id}")
    assert (exam["patient_name"], exam["patient_birth_date"], exam["ins"]) == (
        "DUPONT^MARIE", "19580312", INS)
    assert exam["contraindications"] == {"pregnancy": "no", "egfr": 42.5,
                                         "contrast_allergy": True}
    assert exam["timeline"][0]["kind"] == "filed"
    page = tech.get(answer.headers["location"])
    assert "Request filed: it waits for the decision" in page.text
    assert "Waiting for validation" in page.text
    assert "No report yet." in page.text
    # The read is in the audit trail, with the exam's id and nothing of the patient.
    with transaction(env.runtime.sessions, readonly=True) as session:
        reads = [json.loads(d) for d in session.scalars(
            select(AuditEvent.detail).where(AuditEvent.action == "read"))]
    assert {"route": "portal/exams/{id}", "exam_ids": [exam_id]} in reads
    assert not [r for r in reads if "DUPONT" in json.dumps(r)]


def test_actions_answer_with_a_message_when_they_cannot_be_done(env: Env,
                                                                tech: httpx.Client) -> None:
    filed = env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env))
    csrf = csrf_of(tech.get(f"/portal/exams/{filed['id']}").text)
    cases = [("done", {}, "error=state", "this can no longer be done"),
             ("cancel", {"reason": " "}, "error=reason", "Give the reason."),
             ("reconcile", {"reject_reason": "x"}, "error=reconcile",
              "Choose a validated request of this site")]
    for action, data, where, message in cases:
        answer = tech.post(f"/portal/exams/{filed['id']}/{action}",
                           data=data | {"csrf_token": csrf})
        assert answer.status_code == 303
        assert answer.headers["location"].endswith(where)
        assert message in tech.get(answer.headers["location"]).text
    assert env.api("tech_carcassonne").ok("GET", f"/api/exams/{filed['id']}")["state"] == (
        "filed")
    # Anything but the known keys in the address shows nothing.
    page = tech.get(f"/portal/exams/{filed['id']}?error=<script>&notice=pwned")
    assert "<script>" not in page.text
    assert "pwned" not in page.text


def test_unmatched_study_attached_or_rejected_through_the_page(env: Env,
                                                               tech: httpx.Client) -> None:
    waiting = _validated(env, patient_id="PAT009")
    other_site = env.api("er_narbonne").ok("POST", "/api/requests",
                                           request_body(env, site="narbonne"))
    first, second = _unmatched(env, "LOST1"), _unmatched(env, "LOST2")
    portal = tech.get("/portal").text
    assert "Unmatched studies" in portal
    assert f'href="/portal/exams/{first}"' in portal
    page = tech.get(f"/portal/exams/{first}")
    csrf = csrf_of(page.text)
    assert f'<option value="{waiting["id"]}">' in page.text  # the site's validated request
    # Attaching to another site's request is refused like any unknown request.
    answer = tech.post(f"/portal/exams/{first}/reconcile",
                       data={"attach_to": str(other_site["id"]), "csrf_token": csrf})
    assert answer.headers["location"].endswith("error=reconcile")
    answer = tech.post(f"/portal/exams/{first}/reconcile",
                       data={"attach_to": str(waiting["id"]), "csrf_token": csrf})
    assert answer.headers["location"] == f"/portal/exams/{waiting['id']}?notice=attached"
    attached = env.api("tech_carcassonne").ok("GET", f"/api/exams/{waiting['id']}")
    assert attached["state"] == "acquiring"
    assert attached["timeline"][-1]["detail"]["matched_by"] == "reconciled"
    answer = tech.post(f"/portal/exams/{second}/reconcile",
                       data={"reject_reason": "test images", "csrf_token": csrf})
    assert answer.headers["location"] == f"/portal/exams/{second}?notice=rejected"
    assert env.api("tech_carcassonne").ok("GET", f"/api/exams/{second}")["state"] == (
        "cancelled")
    assert "Unmatched studies" not in tech.get("/portal").text


BAD_FORMS: list[dict[str, Any]] = [
    {}, {"patient_id": ""}, {"patient_id": "x" * 65}, {"patient_id": "A\\B"},
    {"patient_name": " "}, {"patient_name": "N" * 65}, {"patient_birth_date": "1958-03-12"},
    {"patient_sex": "X"}, {"clinical_question": " "}, {"requesting_physician": ""},
    {"modality": "C T"}, {"modality": ""}, {"exam_asked": ""}, {"pregnancy": "maybe"},
    {"egfr": -1.0}, {"egfr": 201.0}, {"egfr": 0.0}, {"egfr": 200.0}, {"modality": "mr"},
]


@pytest.mark.parametrize("change", BAD_FORMS)
def test_the_forms_checks_agree_with_the_service(env: Env, change: dict[str, Any]) -> None:
    """Every request the service refuses, the form refuses too (so its problems always
    show beside a field), and the other way round."""
    contraindications = Contraindications(pregnancy=change.pop("pregnancy", "no"),
                                          egfr=change.pop("egfr", 75.0))
    form = replace(RequestForm(
        site_id=env.night.sites["carcassonne"], patient_id="PAT001",
        patient_name="DUPONT^MARIE", requesting_physician="Dr Urgentiste",
        clinical_context="", clinical_question="bleeding?", urgency=Urgency.URGENT,
        modality="CT", exam_asked="CT head", contraindications=contraindications), **change)
    with env.runtime.sessions() as session:
        try:
            file_request(session, form, filed_by=None, actor="test",
                         now=env.clock.now())
            refused = False
        except InvalidInput:
            refused = True
        finally:
            session.rollback()
    assert bool(checks.problems(form)) == refused


def test_contraindication_warnings() -> None:
    def warned(modality: str, exam: str, **c: Any) -> list[str]:
        return checks.warnings(modality=modality, exam_asked=exam,
                               contraindications=Contraindications(**c))

    assert warned("CT", "CT head without contrast", egfr=20.0) == []
    assert warned("CT", "Scanner cérébral sans injection", egfr=20.0) == []
    assert warned("CT", "CT abdomen-pelvis with contrast", egfr=29.0) == ["egfr_contrast"]
    assert warned("CT", "Angioscanner thoracique", egfr=30.0) == []
    assert warned("CT", "CT pulmonary angiography", contrast_allergy=True) == [
        "allergy_contrast"]
    assert warned("CT", "CT head without contrast", pregnancy="possible") == [
        "pregnancy_radiation"]
    assert warned("MR", "IRM cérébrale avec gadolinium", pregnancy="yes") == [
        "pregnancy_gadolinium"]
    assert warned("MR", "MRI brain", pregnancy="yes") == []
    assert checks.ins_valid(INS)
    assert checks.ins_valid("2 58 03 11 069 001 73")
    assert not checks.ins_valid("258031106900174")  # a wrong key: a typo somewhere
    assert not checks.ins_valid("25803110690016")


def test_clocks_in_the_sites_time_and_late_ones_marked(env: Env, tech: httpx.Client) -> None:
    exam = _validated(env, patient_id="PAT005")
    env.send(SyntheticStudy(slices=1, rows=16, columns=16, patient_id="PAT005",
                            accession_number=exam["accession_number"]))
    csrf = csrf_of(tech.get(f"/portal/exams/{exam['id']}").text)
    answer = tech.post(f"/portal/exams/{exam['id']}/done", data={"csrf_token": csrf})
    assert answer.headers["location"] == f"/portal/exams/{exam['id']}?notice=done"
    # Ready at 20:00 in Carcassonne (19:00 UTC): an urgent report is due at 21:00 there.
    assert "Report due at 21:00 (in 60 min)" in tech.get("/portal").text
    for _ in range(3):  # nobody claims it, nobody reports it; the technologist looks on
        env.clock.advance(dt.timedelta(minutes=25))
        assert tech.get("/portal").status_code == 200
    assert "Late by 15 min (due at 21:00)" in tech.get("/portal?state=in_progress").text
    page = tech.get(f"/portal/exams/{exam['id']}").text
    for step in ("claimed", "reported"):
        row = re.search(rf'<tr data-step="{step}"[^>]*>.*?</tr>', page, re.S)
        assert row, step
        assert 'class="is-late"' in row.group(0), step
        assert ">late<" in row.group(0), step
    row = re.search(r'<tr data-step="ready"[^>]*>.*?</tr>', page, re.S)
    assert row
    assert "24/11 20:00" in row.group(0)
    assert "is-late" not in row.group(0)


def test_a_stroke_alert_read_from_its_first_image_can_still_be_marked_done(
        env: Env, tech: httpx.Client, browsers: Browsers) -> None:
    exam = env.api("er_carcassonne").ok("POST", "/api/requests",
                                        request_body(env, urgency="stroke_alert"))
    exam = env.api("dr_alice").ok("POST", f"/api/requests/{exam['id']}/decision",
                                  {"decision": "accept", "protocol_code": "CT_STROKE"})
    env.send(SyntheticStudy(slices=1, rows=16, columns=16,
                            accession_number=exam["accession_number"]))
    page = tech.get(f"/portal/exams/{exam['id']}").text
    assert "Ready, waiting for a radiologist" in page
    assert "stroke alert: read from the first image" in page
    assert "Acquisition done</button>" in page
    tech.post(f"/portal/exams/{exam['id']}/done", data={"csrf_token": csrf_of(page)})
    after = env.api("tech_carcassonne").ok("GET", f"/api/exams/{exam['id']}")
    assert (after["state"], after["timeline"][-1]["kind"]) == ("ready", "acquisition_done")
    # A filed request has no acquisition to end: no such button.
    filed = env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env))
    assert "Acquisition done</button>" not in tech.get(f"/portal/exams/{filed['id']}").text
    # The requesting physician follows it but acquires nothing.
    with browsers("er_carcassonne") as er:
        page = er.get(f"/portal/exams/{exam['id']}").text
        assert "Acquisition done</button>" not in page
        answer = er.post(f"/portal/exams/{exam['id']}/done", data={"csrf_token": csrf_of(page)})
        assert answer.status_code == 403
        assert "Your account may not open this page." in answer.text
