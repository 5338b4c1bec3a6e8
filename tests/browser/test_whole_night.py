"""A whole night in real browsers, one per role, with real DICOM peers: the technologist
files a request in the portal, the radiologist on duty (signed in with a second factor)
validates it from the live worklist, the scanner takes its worklist item (dcmtk ``findscu``)
and sends the study (dcmtk ``storescu``), the exam appears on the worklist without a reload,
the radiologist claims it and OHIF renders its pixels; a second radiologist cannot claim it,
and a technologist of another site sees nothing of it. Every page is screenshotted and
checked by axe-core."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from telerad.dicom.synthetic import SyntheticStudy, write_study
from telerad.testing.peers import findscu, storescu, worklist_query
from tests.browser.conftest import SCREENSHOTS, fill_request, sign_in, snapshot
from tests.browser.pictures import wait_for_phantom
from tests.integration.workflow_env import Env

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="needs dcmtk")
LIVE = 10_000  # ms: a change shows within a few polls of the page's event stream


def _browser_of(chromium: Browser, env: Env, username: str) -> Page:
    page = chromium.new_context(locale="en-GB", viewport={"width": 1280, "height": 900}
                                ).new_page()
    sign_in(page, env, username)
    return page


def _file_request(tech: Page) -> int:
    """The technologist files a CT head request from the portal's form."""
    tech.get_by_role("link", name="Hospital portal").click()
    tech.get_by_role("link", name="New imaging request").click()
    fill_request(tech, question="intracranial bleeding?", egfr="",
                 exam="CT head without contrast", patient_id="IPP424242")
    tech.get_by_label("Pregnancy").select_option("no")
    tech.get_by_label("Exam asked").fill("CT head without contrast")
    tech.get_by_role("radio", name="Urgent", exact=True).check()
    tech.get_by_role("button", name="File the request").click()
    expect(tech.get_by_role("status").filter(has_text="Request filed")).to_be_visible()
    return int(tech.url.split("/portal/exams/")[1].split("?")[0])


def _send_from_the_scanner(env: Env, folder: Path) -> None:
    """The scanner asks telerad's worklist, fills the study from its item, sends it."""
    query = worklist_query(folder / "query.dcm", modality="CT")
    found, items = findscu(port=env.server.dicom_port, query=query, out=folder / "mwl",
                           calling="CT_CARCA")
    assert found.returncode == 0, found.stderr
    assert len(items) == 1
    item = items[0]
    study = SyntheticStudy(slices=3, rows=128, columns=128, patient_id=item.PatientID,
                           patient_name=str(item.PatientName),
                           accession_number=item.AccessionNumber,
                           study_instance_uid=item.StudyInstanceUID,
                           series_description="HEAD 2.5mm")
    write_study(study, folder / "study")
    sent = storescu([folder / "study"], port=env.server.dicom_port, calling="CT_CARCA")
    assert sent.returncode == 0, sent.stderr


def test_a_whole_night_in_the_browser(env: Env, chromium: Browser, tmp_path: Path) -> None:
    tech = _browser_of(chromium, env, "tech_carcassonne")
    alice = _browser_of(chromium, env, "dr_alice")  # with her authenticator's code
    alice.get_by_role("link", name="Worklist").click()
    alice.evaluate("window.stillTheSamePage = true")  # a reload would lose it

    # 20:00 — the technologist files the request; it reaches Alice's worklist live.
    exam_id = _file_request(tech)
    snapshot(tech, "night-portal-filed")
    row = alice.locator(f'tr[data-exam-id="{exam_id}"]')
    expect(row).to_contain_text("To justify", timeout=LIVE)
    expect(row).to_contain_text("DUPONT")
    assert alice.evaluate("window.stillTheSamePage === true")

    # Alice validates it with a protocol; the technologist's page shows it at once.
    row.get_by_role("link").click()
    expect(alice.get_by_text("intracranial bleeding?")).to_be_visible()
    alice.get_by_label("Protocol", exact=True).select_option("CT_HEAD")
    alice.get_by_role("button", name="Record the decision").click()
    expect(alice.locator("#state")).to_have_text("validated")
    expect(tech.locator("#decision")).to_contain_text("Accepted, protocol CT_HEAD",
                                                      timeout=LIVE)
    snapshot(tech, "night-portal-validated")

    # 20:25 — the scanner's worklist item, the images over DICOM; the exam is ready and
    # appears on Alice's worklist without a reload.
    alice.get_by_role("link", name="Worklist").click()
    alice.evaluate("window.stillTheSamePage = true")
    _send_from_the_scanner(env, tmp_path)
    env.advance(minutes=1)  # the study is stable and the protocol's series are in
    row = alice.locator(f'tr[data-exam-id="{exam_id}"]')
    expect(row).to_contain_text("To read", timeout=LIVE)
    assert alice.evaluate("window.stillTheSamePage === true")
    snapshot(alice, "night-worklist")
    expect(tech.locator("#state")).to_have_text("Ready, waiting for a radiologist",
                                                timeout=LIVE)

    # Emma, also offered it, opens it at the same moment; Alice claims first.
    emma = _browser_of(chromium, env, "dr_emma")
    emma.goto(env.server.base_url + f"/exams/{exam_id}")
    row.get_by_role("button", name="Claim and open").click()  # one click
    expect(alice.locator("#state")).to_have_text("in_reading")
    snapshot(alice, "night-exam-claimed")
    emma.get_by_role("button", name="Claim").click()
    expect(emma.get_by_role("alert")).to_contain_text("Another radiologist claimed this exam")

    # Alice reads the images in OHIF: the canvas shows the study's pixels.
    with alice.expect_popup() as opened:
        alice.get_by_role("link", name="Open in viewer").click()
    viewer = opened.value
    canvas = viewer.locator(".cornerstone-canvas").first
    expect(canvas).to_be_visible(timeout=30_000)
    wrong = wait_for_phantom(canvas, 30)
    viewer.screenshot(path=str(SCREENSHOTS / "night-viewer.png"))
    assert not wrong, f"the viewport does not show the study: {wrong}"

    # Narbonne's technologist sees nothing of it, anywhere.
    narbonne = _browser_of(chromium, env, "tech_narbonne")
    narbonne.get_by_role("link", name="Hospital portal").click()
    expect(narbonne.get_by_text("No exam here for now.")).to_be_visible()
    assert "DUPONT" not in narbonne.content()
    for path in (f"/portal/exams/{exam_id}", f"/exams/{exam_id}"):
        answer = narbonne.goto(env.server.base_url + path)
        assert answer is not None
        assert answer.status == 404, path
        assert "DUPONT" not in narbonne.content()
    snapshot(narbonne, "night-other-site")
    for page in (tech, alice, emma, narbonne):
        page.context.close()
