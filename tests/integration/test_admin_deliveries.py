"""Administration of where reports go, over real HTTP: a site's recipients (RIS over HL7 MLLP,
PACS over DICOM) and its reporting settings, the reconciliation of undelivered reports
(scoped to one's sites) with "send again" for a failed delivery, and report templates
imported as JSON or IHE MRRT — each form refused with its reasons beside it and nothing
changed, each change audited."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from html import unescape
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from telerad.audit.models import AuditEvent
from telerad.auth.models import Role
from telerad.auth.users import create_user
from telerad.db import transaction
from telerad.delivery import service as delivery
from telerad.delivery.channels import Address, Outcome, Outgoing, Verdict
from telerad.delivery.models import Delivery, Endpoint
from telerad.delivery.worker import deliver_due
from telerad.reporting.models import ImportedTemplate
from telerad.reporting.templates import builtin_templates, template_json
from telerad.testing.workflow import PASSWORD
from telerad.workflow.sites.models import Site
from tests.integration.page_clients import Browsers, browsers, csrf_of, text_of
from tests.integration.workflow_env import Env, env, ready_exam

__all__ = ["browsers", "env"]
MRRT = Path(__file__).resolve().parents[1] / "data" / "mrrt"


def main_of(html: str) -> str:
    return html.split('<main id="content">')[1]


def changes(env: Env, what: str) -> list[dict[str, Any]]:
    """The audited changes (create, update) of one kind, oldest first."""
    with transaction(env.runtime.sessions, readonly=True) as session:
        events = session.scalars(select(AuditEvent).where(
            AuditEvent.action.in_(("create", "update"))).order_by(AuditEvent.id))
        details = [json.loads(e.detail) for e in events]
    return [d for d in details if d.get("what") == what]


def count(env: Env, model: type[Any]) -> int:
    with transaction(env.runtime.sessions, readonly=True) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def add_user(env: Env, username: str, role: Role, site: str) -> None:
    with transaction(env.runtime.sessions) as session:
        create_user(session, username=username, display_name=username, role=role,
                    password=PASSWORD, site_ids=[env.night.sites[site]], now=env.clock.now())


# --- A site's recipients and settings --------------------------------------------------------

def test_a_recipient_is_added_or_refused_with_its_reasons(env: Env, browsers: Browsers) -> None:
    admin = browsers("admin")
    site_id = env.night.sites["carcassonne"]
    page = admin.get(f"/admin/sites/{site_id}")
    assert "No recipient" in text_of(page.text)
    csrf = csrf_of(page.text)
    answer = admin.post(f"/admin/sites/{site_id}/endpoints", data={
        "csrf_token": csrf, "channel": "hl7_mllp", "name": "RIS Carcassonne",
        "host": "ris.example", "port": "2575", "receiving_application": "RIS",
        "receiving_facility": "CHC", "called_ae_title": "IGNORED"})
    assert (answer.status_code, answer.headers["location"]) == (
        303, f"/admin/sites/{site_id}?notice=admin_endpoint_added")
    page = admin.get(answer.headers["location"]).text
    row = re.search(r'<tr data-endpoint-id="\d+" data-channel="hl7_mllp">(.*?)</tr>', page, re.S)
    assert row, "the recipient is listed"
    assert "RIS — HL7 v2.5 (ORU^R01) over MLLP" in text_of(row.group(1))
    assert "ris.example:2575" in row.group(1)
    assert "CHC" in row.group(1)
    with transaction(env.runtime.sessions, readonly=True) as session:
        (endpoint,) = delivery.endpoints_of(session, site_ids=frozenset({site_id}))
        assert (endpoint.receiving_facility, endpoint.called_ae_title) == ("CHC", "")
    assert changes(env, "endpoint")[-1]["endpoint_id"] == endpoint.id

    # A PACS without its AE title, no name, a host with a space, a port out of range: each
    # said beside its field, the form refilled, nothing stored.
    before = (count(env, Endpoint), len(changes(env, "endpoint")))
    refused = admin.post(f"/admin/sites/{site_id}/endpoints", data={
        "csrf_token": csrf, "channel": "dicom_store", "name": " ", "host": "pacs example",
        "port": "99999", "called_ae_title": ""})
    assert refused.status_code == 400
    html = refused.text
    assert "The recipient was not added" in text_of(html)
    for field, words in (("name", "Name the recipient."),
                         ("host", "A host name or an address, without spaces."),
                         ("port", "A number from 1 to 65535."),
                         ("called_ae_title", "A PACS needs its AE title")):
        error = re.search(rf'<p class="field-error" id="endpoint-{field}-error">([^<]*)</p>',
                          html)
        assert error, field
        assert words in unescape(error.group(1)), field
        assert re.search(rf'id="endpoint-{field}"[^>]*aria-invalid="true"', html), field
    assert 'id="endpoint-receiving_facility-error"' not in html
    assert 'value="pacs example"' in html
    assert (count(env, Endpoint), len(changes(env, "endpoint"))) == before
    # A port that is no number is named too.
    refused = admin.post(f"/admin/sites/{site_id}/endpoints", data={
        "csrf_token": csrf, "channel": "dicom_store", "name": "PACS", "host": "pacs.example",
        "port": "onze", "called_ae_title": "PACS_CHC"})
    assert refused.status_code == 400
    assert 'id="endpoint-port-error"' in refused.text
    assert count(env, Endpoint) == before[0]


def test_the_site_manager_reads_the_recipients_and_settings_only(env: Env,
                                                                 browsers: Browsers) -> None:
    site_id = env.night.sites["carcassonne"]
    with transaction(env.runtime.sessions) as session:
        delivery.add_endpoint(session, site_id=site_id, channel="dicom_store", name="PACS",
                              host="pacs.example", port=104, called_ae_title="PACS_CHC",
                              now=env.clock.now())
    manager = browsers("manager_carcassonne")
    page = manager.get(f"/admin/sites/{site_id}").text
    assert "PACS_CHC" in page
    assert "pacs.example:104" in page
    assert "Time to acknowledge a critical finding (minutes)" in text_of(page)
    assert "<form" not in main_of(page)
    csrf = csrf_of(manager.get("/").text)
    for path, data in ((f"/admin/sites/{site_id}/endpoints",
                        {"channel": "hl7_mllp", "name": "X", "host": "x", "port": "1"}),
                       (f"/admin/sites/{site_id}/reporting",
                        {"hl7_facility": "MINE", "critical_ack_minutes": "30"})):
        assert manager.post(path, data={**data, "csrf_token": csrf}).status_code == 403
    assert count(env, Endpoint) == 1
    assert changes(env, "site_reporting") == []
    # Another site's page stays closed to them.
    assert manager.get(f"/admin/sites/{env.night.sites['narbonne']}").status_code == 403


def test_site_settings_are_saved_and_a_taken_facility_refused(env: Env,
                                                              browsers: Browsers) -> None:
    admin = browsers("admin")
    carcassonne, narbonne = env.night.sites["carcassonne"], env.night.sites["narbonne"]
    csrf = csrf_of(admin.get(f"/admin/sites/{carcassonne}").text)
    answer = admin.post(f"/admin/sites/{carcassonne}/reporting", data={
        "csrf_token": csrf, "hl7_facility": "CH_CARCA", "critical_ack_minutes": "20",
        "on_call_manager": "Cadre de garde des urgences", "on_call_phone": "+33 4 68 24 20 00"})
    assert answer.headers["location"] == (
        f"/admin/sites/{carcassonne}?notice=admin_reporting_saved")
    page = admin.get(answer.headers["location"]).text
    assert 'value="CH_CARCA"' in page
    assert 'value="20"' in page
    with transaction(env.runtime.sessions, readonly=True) as session:
        site = session.get(Site, carcassonne)
        assert (site.hl7_facility, site.critical_ack_minutes, site.on_call_manager,
                site.on_call_phone) == ("CH_CARCA", 20, "Cadre de garde des urgences",
                                        "+33 4 68 24 20 00")
    (saved,) = changes(env, "site_reporting")
    assert (saved["site_id"], saved["hl7_facility"]) == (carcassonne, "CH_CARCA")

    def narbonne_settings() -> tuple[Any, ...]:
        with transaction(env.runtime.sessions, readonly=True) as session:
            site = session.get(Site, narbonne)
            return (site.hl7_facility, site.critical_ack_minutes, site.on_call_manager)

    before = narbonne_settings()
    taken = admin.post(f"/admin/sites/{narbonne}/reporting", data={
        "csrf_token": csrf, "hl7_facility": "CH_CARCA", "critical_ack_minutes": "15"})
    assert taken.status_code == 409
    assert "This HL7 facility is already another site's." in text_of(taken.text)
    assert re.search(r'id="reporting-hl7_facility"[^>]*aria-invalid="true"', taken.text)
    bad = admin.post(f"/admin/sites/{narbonne}/reporting", data={
        "csrf_token": csrf, "hl7_facility": "CH|NARBO", "critical_ack_minutes": "0",
        "on_call_phone": "04 68 00 00 00"})
    assert bad.status_code == 400
    for field in ("hl7_facility", "critical_ack_minutes", "on_call_phone"):
        assert f'id="reporting-{field}-error"' in bad.text, field
    assert "The on-call manager&#39;s name and number go together." in bad.text
    assert 'value="CH|NARBO"' in bad.text  # refilled as typed
    assert narbonne_settings() == before
    assert len(changes(env, "site_reporting")) == 1
    # Emptied, the facility is none (so that another site may take it).
    admin.post(f"/admin/sites/{carcassonne}/reporting", data={
        "csrf_token": csrf, "hl7_facility": "", "critical_ack_minutes": "15"})
    with transaction(env.runtime.sessions, readonly=True) as session:
        assert session.get(Site, carcassonne).hl7_facility is None


# --- Reports not delivered -------------------------------------------------------------------

class Refusing:
    """A peer that refuses every document (ACK AE; a DICOM failure)."""

    def send(self, address: Address, documents: Sequence[Outgoing]) -> list[Outcome]:
        return [Outcome(delivery_id=d.delivery_id, verdict=Verdict.REJECTED, answer="AE: 101")
                for d in documents]


def _signed_with_recipients(env: Env) -> dict[str, Any]:
    site = env.night.sites["carcassonne"]
    with transaction(env.runtime.sessions) as session:
        delivery.add_endpoint(session, site_id=site, channel="hl7_mllp", name="RIS CHC",
                              host="ris.example", port=2575, now=env.clock.now())
        delivery.add_endpoint(session, site_id=site, channel="dicom_store", name="PACS CHC",
                              host="pacs.example", port=104, called_ae_title="PACS",
                              now=env.clock.now())
    exam = ready_exam(env)
    alice = env.api("dr_alice")
    alice.ok("POST", f"/api/exams/{exam['id']}/claim")
    alice.ok("POST", f"/api/exams/{exam['id']}/report")
    alice.ok("POST", f"/api/exams/{exam['id']}/report/release", {"kind": "final"})
    return exam


def _row(html: str, exam_id: int) -> str:
    match = re.search(rf'<tr data-exam-id="{exam_id}" data-reason="(\w+)">(.*?)</tr>', html,
                      re.S)
    assert match, f"exam {exam_id} is not listed"
    return match.group(1) + " " + match.group(2)


def test_the_reconciliation_lists_what_is_pending_for_ones_sites(env: Env,
                                                                 browsers: Browsers) -> None:
    exam = _signed_with_recipients(env)
    add_user(env, "manager_narbonne", Role.SITE_MANAGER, "narbonne")
    manager = browsers("manager_carcassonne")
    page = manager.get("/admin/deliveries")
    assert page.status_code == 200
    row = _row(page.text, exam["id"])
    assert row.startswith("pending")
    assert exam["accession_number"] in row
    assert f'href="/portal/exams/{exam["id"]}"' in row  # their own portal page of it
    words = text_of(row)
    assert "being sent, not received yet" in words
    for expected in ("RIS CHC · ORU^R01 · pending", "PACS CHC · SR · pending",
                     "PACS CHC · PDF · pending", "Attempts: 0"):
        assert expected in words, expected
    assert "Send again" not in words  # a site manager reads; sending again is not theirs
    # The read is audited, naming the exams shown.
    with transaction(env.runtime.sessions, readonly=True) as session:
        reads = [json.loads(d) for d in session.scalars(select(AuditEvent.detail).where(
            AuditEvent.action == "read"))]
    assert {"route": "admin/deliveries", "exam_ids": [exam["id"]]} in reads

    narbonne = browsers("manager_narbonne").get("/admin/deliveries")
    assert narbonne.status_code == 200
    assert f'data-exam-id="{exam["id"]}"' not in narbonne.text
    assert exam["accession_number"] not in narbonne.text
    assert "Nothing to report" in text_of(narbonne.text)
    # Who may not see it at all.
    for username in ("er_carcassonne", "tech_carcassonne", "dr_alice", "admin"):
        assert browsers(username).get("/admin/deliveries").status_code == 403, username


def test_a_failed_delivery_is_sent_again(env: Env, browsers: Browsers) -> None:
    exam = _signed_with_recipients(env)
    while deliver_due(env.runtime.sessions, env.clock,
                      {"hl7_mllp": Refusing(), "dicom_store": Refusing()},
                      calling_ae_title="TELERAD", max_backoff=dt.timedelta(minutes=5)):
        pass
    with transaction(env.runtime.sessions, readonly=True) as session:
        failed = [d.id for d in session.scalars(select(Delivery).where(
            Delivery.state == "failed").order_by(Delivery.id))]
    assert failed
    coordinator = browsers("coordinator")
    page = coordinator.get("/admin/deliveries").text
    row = _row(page, exam["id"])
    assert row.startswith("failed")
    assert "delivery failed: send it again" in text_of(row)
    assert "AE: 101" in row
    assert f'href="/exams/{exam["id"]}"' in row  # the reading page of the exam
    assert f'name="delivery_id" value="{failed[0]}"' in row
    csrf = csrf_of(page)

    # Not theirs to send again: a site manager; a coordinator of another site.
    add_user(env, "coordinator_narbonne", Role.COORDINATOR, "narbonne")
    manager = browsers("manager_carcassonne")
    answer = manager.post("/admin/deliveries/retry", data={
        "csrf_token": csrf_of(manager.get("/").text), "delivery_id": str(failed[0])})
    assert answer.status_code == 403
    other = browsers("coordinator_narbonne")
    answer = other.post("/admin/deliveries/retry", data={
        "csrf_token": csrf_of(other.get("/").text), "delivery_id": str(failed[0])})
    assert answer.status_code == 404
    forged = coordinator.post("/admin/deliveries/retry",
                              data={"csrf_token": "forged", "delivery_id": str(failed[0])})
    assert forged.status_code == 403
    assert changes(env, "delivery_retry") == []

    answer = coordinator.post("/admin/deliveries/retry",
                              data={"csrf_token": csrf, "delivery_id": str(failed[0])})
    assert (answer.status_code, answer.headers["location"]) == (
        303, "/admin/deliveries?notice=admin_delivery_retried")
    with transaction(env.runtime.sessions, readonly=True) as session:
        row_after = session.get(Delivery, failed[0])
        assert row_after.state == "pending"
        assert row_after.failed_at is None
        assert row_after.next_attempt_at <= env.clock.now()
        assert all(session.get(Delivery, i).state == "failed" for i in failed[1:])
    (retried,) = changes(env, "delivery_retry")
    assert (retried["delivery_id"], retried["exam_id"]) == (failed[0], exam["id"])
    assert "Delivery restarted" in text_of(coordinator.get(answer.headers["location"]).text)

    # Sent again twice (another tab): refused, said, nothing changes.
    again = coordinator.post("/admin/deliveries/retry",
                             data={"csrf_token": csrf, "delivery_id": str(failed[0])})
    assert again.status_code == 409
    assert "The delivery was not restarted" in text_of(again.text)
    assert len(changes(env, "delivery_retry")) == 1


# --- Report templates ------------------------------------------------------------------------

def _post_template(http: httpx.Client, csrf: str, name: str, body: bytes,
                   modality: str = "") -> httpx.Response:
    return http.post("/admin/templates", data={"csrf_token": csrf, "modality": modality},
                     files={"file": (name, body)})


def test_templates_are_listed_and_imported_from_json_or_mrrt(env: Env,
                                                             browsers: Browsers) -> None:
    admin = browsers("admin")
    page = admin.get("/admin/templates").text
    assert re.search(r'<tr data-code="ct_head" data-version="1">.*?built in', page, re.S)
    csrf = csrf_of(page)

    local = dict(template_json(builtin_templates()[0]), code="ct_head_local",
                 title="Scanner cérébral (modèle local)")
    answer = _post_template(admin, csrf, "local.json", json.dumps(local).encode())
    assert answer.status_code == 303
    listed = admin.get(answer.headers["location"]).text
    assert "Template ct_head_local version 1 imported." in text_of(listed)
    assert re.search(r'<tr data-code="ct_head_local" data-version="1">.*?imported', listed,
                     re.S)

    # An MRRT template; imported again, it is the next version (MRRT does not number them).
    html = (MRRT / "ct_pe_ihe.html").read_bytes()
    for version in (1, 2):
        answer = _post_template(admin, csrf, "ct_pe_ihe.html", html)
        assert answer.status_code == 303, answer.text
        with transaction(env.runtime.sessions, readonly=True) as session:
            newest = session.scalars(select(ImportedTemplate).order_by(
                ImportedTemplate.id.desc())).first()
            assert newest is not None
            assert newest.version == version
            code = newest.code
        assert json.loads(newest.definition)["modality"] == "CT"
    assert f'data-code="{code}" data-version="2"' in admin.get("/admin/templates").text
    # A hand-written one naming no modality takes the form's.
    answer = _post_template(admin, csrf, "cct.html", (MRRT / "drg_style_cct.html").read_bytes(),
                            modality="ct")
    assert answer.status_code == 303, answer.text
    imported = changes(env, "report_template")
    assert [(c["format"], c["version"]) for c in imported] == [
        ("json", 1), ("mrrt", 1), ("mrrt", 2), ("mrrt", 1)]


def test_a_bad_template_file_is_refused_and_nothing_stored(env: Env, browsers: Browsers) -> None:
    admin = browsers("admin")
    csrf = csrf_of(admin.get("/admin/templates").text)
    existing = template_json(builtin_templates()[0])
    before = count(env, ImportedTemplate)
    for name, body, status, says in (
            ("broken.html", (MRRT / "broken.html").read_bytes(), 400, "no <title>"),
            ("bad.json", b'{"code": "x", ', 400, "not JSON"),
            ("list.json", b"[1, 2]", 400, "a JSON object"),
            ("notes.txt", b"hello", 400, ".json file or an IHE MRRT .html file"),
            ("latin1.json", "{\"title\": \"é\"}".encode("latin-1"), 400, "UTF-8"),
            ("same.json", json.dumps(existing).encode(), 409, "exists")):
        answer = _post_template(admin, csrf, name, body)
        assert answer.status_code == status, (name, answer.status_code)
        alert = re.search(r'<div class="error" role="alert" id="template-error">(.*?)</div>',
                          answer.text, re.S)
        assert alert, name
        assert "The template was not imported" in text_of(alert.group(1)), name
        assert says in text_of(alert.group(1)), (name, text_of(alert.group(1)))
    # An invalid template names every problem, one per line.
    broken = _post_template(admin, csrf, "broken.html", (MRRT / "broken.html").read_bytes())
    assert broken.text.count('<li lang="en">') >= 3
    # No file at all.
    assert admin.post("/admin/templates", data={"csrf_token": csrf}).status_code == 400
    assert count(env, ImportedTemplate) == before
    assert changes(env, "report_template") == []


def test_the_site_manager_reads_the_templates_only(env: Env, browsers: Browsers) -> None:
    manager = browsers("manager_carcassonne")
    page = manager.get("/admin/templates")
    assert page.status_code == 200
    assert 'data-code="ct_head"' in page.text
    assert "<form" not in main_of(page.text)
    answer = _post_template(manager, csrf_of(manager.get("/").text), "t.json", b"{}")
    assert answer.status_code == 403
    assert count(env, ImportedTemplate) == 0
    for username in ("er_carcassonne", "dr_alice"):
        assert browsers(username).get("/admin/templates").status_code == 403
