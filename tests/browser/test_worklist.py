"""The radiologist's live worklist in a real browser: an exam appears without reload when
it becomes ready, opens beside its clinical context, is claimed in one click; a second
radiologist cannot claim it."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page, expect

from telerad.dicom.synthetic import SyntheticStudy
from tests.browser.conftest import sign_in, snapshot
from tests.integration.workflow_env import Env, request_body


def _ready_stroke_alert(env: Env) -> dict[str, Any]:
    exam = env.api("er_carcassonne").ok("POST", "/api/requests",
                                        request_body(env, urgency="stroke_alert"))
    exam = env.api("dr_alice").ok("POST", f"/api/requests/{exam['id']}/decision",
                                  {"decision": "accept", "protocol_code": "CT_STROKE"})
    env.send(SyntheticStudy(slices=1, rows=16, columns=16,
                            accession_number=exam["accession_number"]))
    return exam


def test_live_worklist_claim_and_conflict(env: Env, page: Page, chromium: Browser) -> None:
    sign_in(page, env, "dr_alice")
    page.get_by_role("link", name="Worklist").click()
    expect(page.get_by_text("Nothing to read for now.")).to_be_visible()
    snapshot(page, "worklist-empty")

    exam = _ready_stroke_alert(env)  # ready at its first image: no reload below
    row = page.locator(f'tr[data-exam-id="{exam["id"]}"]')
    expect(row).to_be_visible(timeout=10_000)
    expect(row).to_contain_text("Stroke alert")
    expect(row).to_contain_text("DUPONT Marie")
    expect(row).to_contain_text("15 min")
    snapshot(page, "worklist")

    other = chromium.new_context(locale="en-GB").new_page()
    sign_in(other, env, "dr_emma")
    other.goto(env.server.base_url + f"/exams/{exam['id']}")

    row.get_by_role("button", name="Claim and open").click()  # one click: claimed, opened
    expect(page.get_by_text("intracranial bleeding?")).to_be_visible()  # the question
    snapshot(page, "exam")
    expect(page.locator("#state")).to_have_text("in_reading")
    expect(page.get_by_role("button", name="Release")).to_be_visible()

    other.get_by_role("button", name="Claim").click()
    expect(other.get_by_role("alert")).to_contain_text("Another radiologist claimed this exam")
    other.context.close()


def test_justify_a_request_from_its_page(env: Env, page: Page) -> None:
    filed = env.api("er_carcassonne").ok("POST", "/api/requests",
                                         request_body(env, urgency="life_threatening"))
    sign_in(page, env, "dr_alice")
    page.goto(env.server.base_url + "/worklist")
    row = page.locator(f'tr[data-exam-id="{filed["id"]}"]')
    expect(row).to_contain_text("To justify")
    row.get_by_role("link").click()
    page.get_by_role("radio", name="Refuse").check()
    page.get_by_role("button", name="Record the decision").click()
    expect(page.get_by_role("alert")).to_contain_text("a refusal needs its reason")
    expect(page.locator("#state")).to_have_text("filed")  # nothing changed
    page.get_by_label("Protocol", exact=True).select_option("CT_HEAD")
    snapshot(page, "justify")
    page.get_by_role("button", name="Record the decision").click()
    expect(page.locator("#state")).to_have_text("validated")
    answer = env.api("er_carcassonne").ok("GET", f"/api/exams/{filed['id']}")
    assert answer["protocol_code"] == "CT_HEAD"
    assert answer["accession_number"]
