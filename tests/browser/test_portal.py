"""The hospital portal in a real browser: the technologist files a request through the form
(a bad one first: errors beside the fields, nothing filed), follows it live while the
radiologist decides and the images arrive, marks the acquisition done, and reconciles an
unmatched study. Radiologists act through the API (their sign-in has a second factor)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page, expect

from telerad.dicom.synthetic import SyntheticStudy
from tests.browser.conftest import fill_request, sign_in, snapshot
from tests.integration.workflow_env import Env, ready_exam, request_body

PASSWORD = "correct horse battery"
LIVE = 10_000  # ms: a change shows within a few polls of the stream


def _count(env: Env) -> int:
    return len(env.api("tech_carcassonne").ok("GET", "/api/exams"))


def _mark_page(page: Page) -> None:
    """A flag that a reload would lose: the checks below prove the page was not reloaded."""
    page.evaluate("window.stillTheSamePage = true")


def _not_reloaded(page: Page) -> None:
    assert page.evaluate("window.stillTheSamePage === true")


def test_technologist_files_and_follows_a_request(env: Env, page: Page) -> None:
    sign_in(page, env, "tech_carcassonne")
    page.get_by_role("link", name="Hospital portal").click()
    expect(page.get_by_text("No exam here for now.")).to_be_visible()
    snapshot(page, "portal-empty")

    page.get_by_role("link", name="New imaging request").click()
    expect(page.get_by_role("radio", name="Stroke alert")).to_be_visible()
    snapshot(page, "portal-request")
    # Warnings while typing: a contrast exam with a failing kidney, then a pregnancy.
    fill_request(page, question="", egfr="25", exam="CT abdomen-pelvis with contrast")
    warnings = page.locator("#contraindication-warnings")
    expect(warnings).to_contain_text("eGFR below 30 with a contrast exam")
    page.get_by_label("Pregnancy").select_option("possible")
    expect(warnings).to_contain_text("Pregnancy (possible) with an exam that irradiates")
    page.get_by_label("eGFR").fill("250")
    expect(warnings).not_to_contain_text("eGFR below 30")

    # A bad request: the server says why beside each field; nothing is filed.
    page.get_by_role("button", name="File the request").click()
    expect(page.get_by_role("alert")).to_contain_text("The request was not filed")
    expect(page.locator("#f-clinical_question-error")).to_have_text(
        "The clinical question is required: it is what justifies the exam.")
    expect(page.locator("#f-egfr-error")).to_have_text("eGFR is between 0 and 200.")
    expect(page.locator("#f-urgency-error")).to_have_text("Choose the urgency.")
    expect(page.get_by_label("Family name")).to_have_value("DUPONT")  # refilled
    expect(page.get_by_label("eGFR")).to_have_value("250")
    expect(page.get_by_label("Clinical question")).to_have_attribute("aria-invalid", "true")
    expect(warnings).to_contain_text("Pregnancy (possible)")
    assert _count(env) == 0
    snapshot(page, "portal-request-errors")

    page.get_by_label("Clinical question").fill("intracranial bleeding?")
    page.get_by_label("eGFR").fill("75")
    page.get_by_label("Pregnancy").select_option("no")
    page.get_by_label("Exam asked").fill("CT head without contrast")
    expect(warnings).to_be_empty()
    page.get_by_role("radio", name="Urgent", exact=True).check()
    page.get_by_role("button", name="File the request").click()

    expect(page.get_by_role("status").filter(has_text="Request filed")).to_be_visible()
    expect(page.locator("#state")).to_have_text("Waiting for validation")
    expect(page.locator("#decision")).to_contain_text("Waiting for the decision")
    expect(page.get_by_text("No report yet.")).to_be_visible()
    exam_id = int(page.url.split("/portal/exams/")[1].split("?")[0])
    assert _count(env) == 1
    snapshot(page, "portal-exam-filed")

    # The radiologist decides: the protocol shows without a reload.
    _mark_page(page)
    decided = env.api("dr_alice").ok("POST", f"/api/requests/{exam_id}/decision",
                                     {"decision": "accept", "protocol_code": "CT_HEAD"})
    expect(page.locator("#decision")).to_contain_text("Accepted, protocol CT_HEAD",
                                                      timeout=LIVE)
    expect(page.locator("#state")).to_have_text("Validated, to acquire")
    _not_reloaded(page)

    # The images arrive: the state changes live, the technologist ends the acquisition.
    env.send(SyntheticStudy(slices=1, rows=16, columns=16, patient_id="PAT001",
                            accession_number=decided["accession_number"],
                            series_description="HEAD"))
    expect(page.locator("#state")).to_have_text("Images arriving", timeout=LIVE)
    _not_reloaded(page)
    expect(page.locator('tr[data-step="first_image"] td').first).not_to_have_text("—")
    snapshot(page, "portal-exam-acquiring")
    page.get_by_role("button", name="Acquisition done").click()
    expect(page.get_by_role("status").filter(has_text="Acquisition marked done")
           ).to_be_visible()
    expect(page.locator("#state")).to_have_text("Ready, waiting for a radiologist")
    expect(page.locator("#current-clock")).to_contain_text("Report due at 21:00 (in 60 min)")
    expect(page.get_by_role("button", name="Acquisition done")).to_have_count(0)
    assert env.api("tech_carcassonne").ok("GET", f"/api/exams/{exam_id}")["completion"] == (
        "marked_done")
    snapshot(page, "portal-exam-ready")


def test_the_list_follows_the_site_live(env: Env, page: Page) -> None:
    sign_in(page, env, "tech_carcassonne")
    page.goto(env.server.base_url + "/portal")
    _mark_page(page)
    er = env.api("er_carcassonne")
    stroke = er.ok("POST", "/api/requests", request_body(env, urgency="stroke_alert",
                                                         patient_id="PAT777"))
    row = page.locator(f'tr[data-exam-id="{stroke["id"]}"]')
    expect(row).to_contain_text("Stroke alert", timeout=LIVE)
    expect(row).to_contain_text("DUPONT MARIE")
    expect(row).to_contain_text("Waiting for validation")
    env.api("dr_alice").ok("POST", f"/api/requests/{stroke['id']}/decision",
                           {"decision": "refuse", "reason": "MRI is the better exam"})
    expect(row).to_contain_text("Refused: MRI is the better exam", timeout=LIVE)
    changed = er.ok("POST", "/api/requests", request_body(env, patient_id="PAT778"))
    env.api("dr_alice").ok("POST", f"/api/requests/{changed['id']}/decision",
                           {"decision": "change", "protocol_code": "CT_STROKE",
                            "exam_asked": "Stroke CT with angiography"})
    other = page.locator(f'tr[data-exam-id="{changed["id"]}"]')
    expect(other).to_contain_text("Exam changed: Stroke CT with angiography "
                                  "(CT head without contrast)", timeout=LIVE)
    _not_reloaded(page)
    snapshot(page, "portal-list")

    page.get_by_role("link", name="Done").click()
    expect(page.locator("tr[data-exam-id]")).to_have_count(1)
    expect(page.locator(f'tr[data-exam-id="{stroke["id"]}"]')).to_contain_text("Refused")
    page.get_by_role("link", name="To do").click()
    expect(page.locator("tr[data-exam-id]")).to_have_count(1)
    expect(page.locator(f'tr[data-exam-id="{changed["id"]}"]')).to_be_visible()


def _validated(env: Env, patient_id: str) -> dict[str, Any]:
    exam = env.api("er_carcassonne").ok("POST", "/api/requests",
                                        request_body(env, patient_id=patient_id))
    return dict(env.api("dr_alice").ok("POST", f"/api/requests/{exam['id']}/decision",
                                       {"decision": "accept", "protocol_code": "CT_HEAD"}))


def test_unmatched_study_reconciled_through_the_page(env: Env, page: Page) -> None:
    waiting = _validated(env, "PAT010")
    sign_in(page, env, "tech_carcassonne")
    page.goto(env.server.base_url + "/portal")
    expect(page.get_by_role("heading", name="Unmatched studies")).to_have_count(0)
    # Images with neither the accession number nor a known patient: unmatched, shown live.
    env.send(SyntheticStudy(slices=1, rows=16, columns=16, patient_id="PAT010-WRONG",
                            patient_name="DUPONT^MARIE", accession_number=""))
    expect(page.get_by_role("heading", name="Unmatched studies")).to_be_visible(timeout=LIVE)
    snapshot(page, "portal-unmatched-list")
    page.get_by_role("link", name="Attach or reject").click()
    expect(page.locator("#state")).to_have_text("Unmatched images")
    select = page.get_by_label("Validated request of the site waiting for these images")
    expect(select.locator("option")).to_have_count(1)
    expect(select.locator("option")).to_contain_text(waiting["accession_number"])
    snapshot(page, "portal-unmatched-exam")
    page.get_by_role("button", name="Attach to this request").click()

    expect(page.get_by_role("status").filter(has_text="The images were attached")
           ).to_be_visible()
    assert page.url.endswith(f"/portal/exams/{waiting['id']}?notice=attached")
    expect(page.locator("#state")).to_have_text("Images arriving")
    expect(page.locator("#exam-timeline")).to_contain_text("Images arrived (attached by hand)")
    page.goto(env.server.base_url + "/portal")
    expect(page.get_by_role("heading", name="Unmatched studies")).to_have_count(0)


def test_a_page_being_typed_in_keeps_its_text_when_it_updates(env: Env, page: Page) -> None:
    exam = env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env))
    sign_in(page, env, "tech_carcassonne")
    page.goto(env.server.base_url + f"/portal/exams/{exam['id']}")
    page.get_by_label("Reason for cancelling").fill("wrong patient")
    env.api("dr_alice").ok("POST", f"/api/requests/{exam['id']}/decision",
                           {"decision": "accept", "protocol_code": "CT_HEAD"})
    expect(page.locator("#state")).to_have_text("Validated, to acquire", timeout=LIVE)
    expect(page.get_by_label("Reason for cancelling")).to_have_value("wrong patient")
    page.get_by_role("button", name="Cancel the exam").click()
    expect(page.locator("#state")).to_have_text("Cancelled")
    expect(page.get_by_role("button", name="Cancel the exam")).to_have_count(0)
    snapshot(page, "portal-exam-cancelled")


def test_the_doctor_reads_the_report_and_acknowledges_the_critical_finding(
        env: Env, page: Page) -> None:
    exam = ready_exam(env)
    alice = env.api("dr_alice")
    alice.ok("POST", f"/api/exams/{exam['id']}/claim")
    sign_in(page, env, "er_carcassonne")
    page.goto(env.server.base_url + f"/portal/exams/{exam['id']}")
    expect(page.get_by_text("No report yet.")).to_be_visible()
    _mark_page(page)
    # The radiologist phones a critical finding, then signs: both show without a reload.
    alice.ok("POST", f"/api/exams/{exam['id']}/critical-findings", {
        "finding": "Hématome sous-dural aigu", "call": {
            "called_person": "Dr Garnier (urgences)", "phone": "+33 4 68 24 24 24",
            "called_at": env.clock.now().isoformat(), "read_back": True,
            "said": "Hématome sous-dural aigu droit avec effet de masse"}})
    expect(page.locator("#critical-alert")).to_contain_text("Hématome sous-dural aigu",
                                                            timeout=LIVE)
    alice.ok("POST", f"/api/exams/{exam['id']}/report")
    alice.ok("POST", f"/api/exams/{exam['id']}/report/release", {"kind": "final"})
    final = page.locator('#exam-report article[data-kind="final"]')
    expect(final).to_contain_text("Signed by Dr Alice MARTIN", timeout=LIVE)
    _not_reloaded(page)
    snapshot(page, "portal-exam-report")
    pdf = page.get_by_role("link", name="Open the PDF").first.get_attribute("href")
    assert pdf
    assert page.request.get(env.server.base_url + pdf).body().startswith(b"%PDF")

    page.get_by_label("Note (optional)").fill("Neurochirurgien prévenu")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status").filter(has_text="Critical finding acknowledged")
           ).to_be_visible()
    expect(page.locator("#critical-alert")).to_have_count(0)
    expect(page.locator("#exam-critical")).to_contain_text("Neurochirurgien prévenu")
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    snapshot(page, "portal-exam-critical-acknowledged")


def test_the_portal_in_french_and_its_error_pages(env: Env, chromium: Browser) -> None:
    context = chromium.new_context(locale="fr-FR")
    french = context.new_page()
    _sign_in_fr(french, env)
    french.goto(env.server.base_url + "/portal/requests/new")
    expect(french.get_by_role("radio", name="Alerte AVC")).to_be_visible()
    expect(french.get_by_role("button", name="Envoyer la demande")).to_be_visible()
    snapshot(french, "portal-request-fr")
    french.goto(env.server.base_url + "/portal/exams/999")
    expect(french.get_by_role("alert")).to_have_text(
        "Cette page n'existe pas, ou ne concerne pas vos sites.")
    snapshot(french, "portal-not-found-fr")
    context.close()


def _sign_in_fr(page: Page, env: Env) -> None:
    page.goto(env.server.base_url + "/signin")
    page.get_by_label("Identifiant").fill("er_carcassonne")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Connecté en tant que")).to_be_visible()
