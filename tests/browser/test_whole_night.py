"""A whole night in real browsers, one per role, with real DICOM and HL7 peers: the
technologist files a request in the portal, the radiologist on duty (signed in with a second
factor) validates it from the live worklist, the scanner takes its worklist item (dcmtk
``findscu``) and sends the study (dcmtk ``storescu``), the exam appears on the worklist
without a reload, the radiologist claims it and OHIF renders its pixels; a second
radiologist cannot claim it. The radiologist reports from the template, records the critical
call and signs; the PDF opens in the portal, the hospital's PACS (Orthanc) holds the SR and
the PDF, its RIS (python-hl7's MLLP server) got the ORU^R01, and the emergency doctor
acknowledges the critical finding. A technologist of another site sees nothing of it. Every
page is screenshotted and checked by axe-core."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from telerad.db import transaction
from telerad.delivery import service as delivery
from telerad.delivery.worker import DeliveryWorker
from telerad.dicom.synthetic import SyntheticStudy, write_study
from telerad.gateway.channels import senders
from telerad.hl7.messages import parse
from telerad.testing.peers import Orthanc, findscu, storescu, worklist_query
from telerad.testing.ris import RisPeer
from tests.browser.conftest import SCREENSHOTS, fill_request, sign_in, snapshot
from tests.browser.pictures import wait_for_phantom
from tests.integration.workflow_env import Env

pytestmark = [
    pytest.mark.skipif(shutil.which("storescu") is None, reason="needs dcmtk"),
    pytest.mark.skipif(not Orthanc.available(), reason="needs Orthanc"),
]
LIVE = 10_000  # ms: a change shows within a few polls of the page's event stream


@dataclass
class Hospital:
    """Carcassonne's RIS and PACS, as its report endpoints, and telerad's delivery worker."""

    ris: RisPeer
    pacs: Orthanc


@pytest.fixture
def hospital(env: Env, tmp_path: Path) -> Iterator[Hospital]:
    with RisPeer() as ris, Orthanc(tmp_path / "orthanc") as pacs:
        with transaction(env.runtime.sessions) as session:
            site_id, now = env.night.sites["carcassonne"], env.clock.now()
            delivery.add_endpoint(session, site_id=site_id, channel="hl7_mllp", name="RIS",
                                  host="127.0.0.1", port=ris.port, now=now)
            delivery.add_endpoint(session, site_id=site_id, channel="dicom_store", name="PACS",
                                  host="127.0.0.1", port=pacs.dicom_port,
                                  called_ae_title="ORTHANC", now=now)
        worker = DeliveryWorker(env.runtime.sessions, env.clock, senders(),
                                calling_ae_title="TELERAD", max_backoff=dt.timedelta(seconds=1),
                                poll_interval=0.2, wake=env.runtime.outbox_signal)
        worker.start()
        try:
            yield Hospital(ris=ris, pacs=pacs)
        finally:
            worker.stop()


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


def test_a_whole_night_in_the_browser(env: Env, chromium: Browser, tmp_path: Path,
                                      hospital: Hospital) -> None:
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

    # 20:40 — Alice writes the report from the CT head template beside the images.
    alice.bring_to_front()
    alice.goto(env.server.base_url + f"/exams/{exam_id}/read")
    conclusion = alice.get_by_role("textbox", name="Conclusion")
    expect(conclusion).not_to_have_value("")  # the normal findings, to start from
    conclusion.fill("Hématome sous-dural aigu droit de 8 mm avec effet de masse.")
    expect(alice.locator("#save-status")).to_contain_text("Saved at", timeout=LIVE)
    # The critical finding is phoned to the emergency doctor and read back.
    form = alice.locator("#new-finding")
    form.get_by_label("Critical finding seen").fill("Hématome sous-dural aigu avec engagement")
    form.get_by_label("Person called", exact=True).fill("Dr Garnier, urgences")
    form.get_by_label("Phone").fill("04 68 24 24 24")
    form.get_by_label("What was said").fill("HSD aigu droit de 8 mm, avis neurochirurgical")
    form.get_by_label("Read back by the person called").check()
    form.get_by_role("button", name="Record the critical finding and the call").click()
    expect(alice.locator("#findings-list")).to_contain_text("Waiting — due at")
    alice.get_by_role("button", name="Sign the final report").click()
    alice.get_by_role("dialog").get_by_role("button", name="Sign for good").click()
    expect(alice.get_by_role("status").filter(has_text="Final report signed.")).to_be_visible()
    snapshot(alice, "night-report-signed")

    # The hospital: the RIS got the ORU^R01 (acknowledged), the PACS holds the SR and the
    # PDF in the exam's study, the portal opens the PDF.
    (oru,) = hospital.ris.wait_for(1, timeout=30)
    message = parse(oru)
    assert (message.message_type, message.trigger_event) == ("ORU", "R01")
    assert "Hématome sous-dural aigu droit" in oru
    modalities = _wait_for_orthanc(hospital.pacs, 2)
    assert sorted(modalities) == ["DOC", "SR"]
    tech.goto(env.server.base_url + f"/portal/exams/{exam_id}")
    expect(tech.get_by_text("Hématome sous-dural aigu droit de 8 mm")).to_be_visible()
    link = tech.get_by_role("link", name="Open the PDF").first
    pdf = tech.request.get(env.server.base_url + str(link.get_attribute("href")))
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")
    snapshot(tech, "night-portal-report")

    # The emergency doctor acknowledges the critical finding in the portal.
    doctor = _browser_of(chromium, env, "er_carcassonne")
    doctor.goto(env.server.base_url + f"/portal/exams/{exam_id}")
    expect(doctor.get_by_role("alert")).to_contain_text("Hématome sous-dural aigu avec "
                                                        "engagement")
    doctor.get_by_role("button", name="Acknowledge").click()
    expect(doctor.get_by_role("status").filter(
        has_text="Critical finding acknowledged")).to_be_visible()
    snapshot(doctor, "night-portal-acknowledged")
    alice.reload()
    expect(alice.locator("#findings-list")).to_contain_text("Acknowledged")
    timeline = [e["kind"] for e in env.api("coordinator").ok(
        "GET", f"/api/exams/{exam_id}")["timeline"]]
    assert timeline[-4:] == ["critical_finding", "report_final", "delivered",
                             "critical_acknowledged"], timeline

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
    for page in (tech, alice, emma, doctor, narbonne):
        page.context.close()


def _wait_for_orthanc(pacs: Orthanc, count: int) -> list[str]:
    """The modalities of the instances Orthanc holds, once it holds ``count``."""
    deadline = time.monotonic() + 30
    while True:
        ids = pacs.request("GET", "/instances")
        assert isinstance(ids, list)
        if len(ids) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    modalities = []
    for orthanc_id in ids:
        tags = pacs.request("GET", f"/instances/{orthanc_id}/simplified-tags")
        assert isinstance(tags, dict)
        modalities.append(str(tags["Modality"]))
    return modalities
