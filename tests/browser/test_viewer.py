"""The diagnostic viewer in a real browser: the radiologist reading an exam opens it in
OHIF from the exam page; OHIF, served by telerad under /viewer/, reads telerad's DICOMweb
with the session cookie, renders the study's pixels, and lists the patient's prior studies
of the sites the radiologist may read (not another site's)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from playwright.sync_api import ConsoleMessage, Page, Request, expect
from sqlalchemy import select

from telerad.audit.models import AuditEvent
from telerad.db import transaction
from telerad.dicom.synthetic import SyntheticStudy
from tests.browser.conftest import SCREENSHOTS, sign_in, snapshot
from tests.browser.pictures import wait_for_phantom
from tests.integration.workflow_env import Env, request_body

#: How long OHIF may take to show its first image (it shows it in about 2 s here).
RENDER_SECONDS = 30


def _study(patient_id: str, description: str, when: dt.datetime, **fields: Any
           ) -> SyntheticStudy:
    return SyntheticStudy(patient_id=patient_id, patient_name="DUPONT^MARIE",
                          study_description=description, study_datetime=when, **fields)


def test_radiologist_reads_the_study_and_its_priors_in_ohif(env: Env, page: Page) -> None:
    exam = env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env))
    exam = env.api("dr_alice").ok("POST", f"/api/requests/{exam['id']}/decision",
                                  {"decision": "accept", "protocol_code": "CT_HEAD"})
    today = _study("PAT001", "CT HEAD WITHOUT CONTRAST", dt.datetime(2026, 11, 24, 19, 40),
                   slices=3, rows=128, columns=128, series_description="HEAD",
                   accession_number=exam["accession_number"])
    env.send(today)
    # The same patient's earlier studies: one at Carcassonne (a prior Alice may see), one
    # at Narbonne, a site she is not credentialed for (which must not show).
    env.send(_study("PAT001", "CT HEAD PRIOR CARCASSONNE", dt.datetime(2025, 3, 1, 10, 0),
                    slices=1, rows=32, columns=32, accession_number="PRIOR1"))
    env.send(_study("PAT001", "CT HEAD PRIOR NARBONNE", dt.datetime(2024, 5, 1, 10, 0),
                    slices=1, rows=32, columns=32, accession_number="NARBO1"),
             site="narbonne")
    env.advance(minutes=1)  # the expected series arrived: ready to read
    env.api("dr_alice").ok("POST", f"/api/exams/{exam['id']}/claim")

    sign_in(page, env, "dr_alice")
    page.goto(env.server.base_url + f"/exams/{exam['id']}")
    snapshot(page, "exam-reading")
    elsewhere: list[str] = []  # every call of the tabs, from their first
    errors: list[str] = []

    def on_request(request: Request) -> None:
        if not request.url.startswith((env.server.base_url + "/", "data:", "blob:")):
            elsewhere.append(request.url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.context.on("request", on_request)
    page.context.on("console", on_console)
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Open in viewer").click()
    viewer = opened.value

    canvas = viewer.locator(".cornerstone-canvas").first
    expect(canvas).to_be_visible(timeout=RENDER_SECONDS * 1000)
    wrong = wait_for_phantom(canvas, RENDER_SECONDS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(path=str(SCREENSHOTS / "viewer.png"))  # OHIF's markup: no axe here
    assert not wrong, f"the viewport does not show the study: {wrong}"

    studies = viewer.locator('[data-cy="studyBrowser-panel"]')
    expect(studies).to_contain_text("CT HEAD WITHOUT CONTRAST")
    expect(studies).to_contain_text("CT HEAD PRIOR CARCASSONNE", timeout=10_000)
    assert "NARBONNE" not in studies.inner_text()
    assert "NARBONNE" not in viewer.content()
    assert elsewhere == [], f"the viewer called another origin: {elsewhere}"
    assert errors == [], errors  # a refused call, a script the policy blocked...

    # Every image came through DICOMweb as dr_alice, and is in the audit trail.
    with transaction(env.runtime.sessions, readonly=True) as session:
        actions = set(session.scalars(select(AuditEvent.action).where(
            AuditEvent.study_instance_uid == today.study_instance_uid,
            AuditEvent.actor_id.endswith(":dr_alice"),
            AuditEvent.detail.contains("/studies/"))))
    assert {"read_metadata", "retrieve"} <= actions, actions

    # Signed out (here from the exam's tab): the viewer's next call sends it to sign in.
    page.goto(env.server.base_url + "/")
    page.get_by_role("button", name="Sign out", exact=True).click()
    studies.get_by_text("CT HEAD PRIOR CARCASSONNE").click()
    expect(viewer).to_have_url(re.compile(r"/signin$"), timeout=10_000)
