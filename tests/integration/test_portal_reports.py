"""The report and the critical findings on the hospital portal's exam page, over real HTTP
(httpx keeps the cookies as a browser would): the signed versions newest first, never a
draft, the PDF opening with the session; another site's staff see nothing; a critical
finding acknowledged once, in one audited step, and only by whom the role allows."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from telerad.audit.models import AuditEvent
from telerad.auth.models import User
from telerad.auth.users import actor_for
from telerad.db import transaction
from telerad.reporting.models import CriticalFinding
from telerad.web.portal.exam import _exam_digest
from telerad.web.portal.report import signer_label
from tests.integration.page_clients import Browsers, browsers, csrf_of, text_of
from tests.integration.workflow_env import Env, env, ready_exam

__all__ = ["browsers", "env"]
PARIS = ZoneInfo("Europe/Paris")
CONCLUSION = "Hématome sous-dural aigu droit de 8 mm.\nPas d'effet de masse."
DRAFT = "Brouillon d'addendum jamais signé"


def _claimed(env: Env) -> dict[str, Any]:
    exam = ready_exam(env)
    env.api("dr_alice").ok("POST", f"/api/exams/{exam['id']}/claim")
    return exam


def _signed(env: Env) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """An exam with a preliminary and a final, and an addendum drafted but never signed."""
    exam = _claimed(env)
    alice = env.api("dr_alice")
    base = f"/api/exams/{exam['id']}/report"
    report = alice.ok("POST", base)
    alice.ok("PUT", f"{base}/draft", {"content": dict(report["draft"], conclusion=CONCLUSION),
                                      "base_revision": report["revision"]})
    preliminary = alice.ok("POST", f"{base}/release", {"kind": "preliminary"})
    env.clock.advance(dt.timedelta(minutes=7))
    final = alice.ok("POST", f"{base}/release", {"kind": "final"})
    revision = alice.ok("GET", base)["revision"]
    alice.ok("PUT", f"{base}/draft", {"content": {"addendum": DRAFT},
                                      "base_revision": revision})
    return exam, preliminary, final


def _declared(env: Env, exam_id: int) -> dict[str, Any]:
    call = {"called_person": "Dr Garnier (urgences)", "phone": "+33 4 68 24 24 24",
            "called_at": env.clock.now().isoformat(), "read_back": True,
            "said": "Hématome sous-dural aigu droit avec effet de masse"}
    return dict(env.api("dr_alice").ok("POST", f"/api/exams/{exam_id}/critical-findings",
                                       {"finding": "Hématome sous-dural aigu", "call": call}))


def _audited(env: Env, what: str) -> list[AuditEvent]:
    with transaction(env.runtime.sessions, readonly=True) as session:
        return [e for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
                if what in e.detail]


def test_the_portal_shows_the_signed_versions_never_the_draft(env: Env, browsers: Browsers) -> None:
    exam, preliminary, final = _signed(env)
    er = browsers("er_carcassonne")
    page = er.get(f"/portal/exams/{exam['id']}")
    assert page.status_code == 200
    text = text_of(page.text)
    # Newest first: the final, then the preliminary, each with its kind, signer and time.
    kinds = re.findall(r'class="report-version" id="report-version-(\d+)" data-kind="(\w+)"',
                       page.text)
    assert kinds == [("2", "final"), ("1", "preliminary")]
    assert "Final report" in text
    assert "Preliminary report" in text
    assert "Signed by Dr Alice MARTIN" in text
    signed_at = dt.datetime.fromisoformat(final["signed_at"]).astimezone(PARIS)
    assert signed_at.strftime("%d/%m/%Y %H:%M") in text  # the site's own time
    # The text as signed, its line breaks kept; the draft of the addendum never.
    assert "Hématome sous-dural aigu droit de 8 mm.\nPas d&#39;effet de masse." in page.text
    assert DRAFT not in text
    # The PDF of each version, opened with the page's own session; the hash, shortened.
    for version in (final, preliminary):
        assert f'href="{version["pdf_url"]}"' in page.text
        sha = version["content_sha256"]
        assert f'title="{sha}">{sha[:12]}…</code>' in page.text
    assert "Open the PDF" in text
    pdf = er.get(final["pdf_url"])
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    assert "No report yet" not in text
    # The read is in the trail.
    reads = [e for e in _audited(env, "portal/exams/{id}") if e.action == "read"]
    assert reads
    assert json.loads(reads[-1].detail)["exam_ids"] == [exam["id"]]


def test_the_live_fragment_and_its_digest_follow_the_report(env: Env, browsers: Browsers) -> None:
    exam = _claimed(env)
    er = browsers("er_carcassonne")
    assert "No report yet" in text_of(er.get(f"/portal/exams/{exam['id']}/live").text)

    def digest() -> object:
        with transaction(env.runtime.sessions, readonly=True) as session:
            user = session.scalars(select(User).where(User.username == "er_carcassonne")).one()
            return _exam_digest(session, actor_for(session, user), exam["id"])

    before = digest()
    _declared(env, exam["id"])
    assert digest() != before, "a critical finding wakes the page (a timeline entry)"
    before = digest()
    alice = env.api("dr_alice")
    alice.ok("POST", f"/api/exams/{exam['id']}/report")
    alice.ok("POST", f"/api/exams/{exam['id']}/report/release", {"kind": "final"})
    assert digest() != before, "a signed report wakes the page"
    fragment = er.get(f"/portal/exams/{exam['id']}/live").text
    assert 'data-kind="final"' in fragment
    assert "Critical finding phoned" in text_of(fragment)  # the timeline, in words


def test_another_sites_staff_get_404_and_see_nothing(env: Env, browsers: Browsers) -> None:
    exam, _preliminary, final = _signed(env)
    finding = _declared(env, exam["id"])
    for username in ("er_narbonne", "tech_narbonne"):
        client = browsers(username)
        for path in (f"/portal/exams/{exam['id']}", f"/portal/exams/{exam['id']}/live"):
            answer = client.get(path)
            assert answer.status_code == 404, (username, path)
            assert "Hématome" not in answer.text
            assert "DUPONT" not in answer.text
        assert client.get(final["pdf_url"]).status_code == 404
    narbonne = browsers("er_narbonne")
    csrf = csrf_of(narbonne.get("/").text)
    answer = narbonne.post(f"/portal/exams/{exam['id']}/critical/acknowledge",
                           data={"csrf_token": csrf, "finding_id": str(finding["id"])})
    assert answer.status_code == 404
    with transaction(env.runtime.sessions, readonly=True) as session:
        assert session.get(CriticalFinding, finding["id"]).acknowledged_at is None


def test_a_critical_finding_is_acknowledged_once_and_audited(env: Env, browsers: Browsers) -> None:
    exam = _claimed(env)
    finding = _declared(env, exam["id"])
    er = browsers("er_carcassonne")
    path = f"/portal/exams/{exam['id']}"
    page = er.get(path).text
    # Highlighted at the top, in words; the call as recorded; the form to acknowledge it.
    alert = re.search(r'<div id="critical-alert"[^>]*role="alert"[^>]*>(.*?)</div>', page, re.S)
    assert alert
    assert "Hématome sous-dural aigu" in text_of(alert.group(1))
    assert page.index('id="critical-alert"') < page.index('id="exam-request"')
    text = text_of(page)
    assert "Dr Garnier (urgences)" in text
    assert "+33 4 68 24 24 24" in text
    assert "Not acknowledged:" in text
    assert f'name="finding_id" value="{finding["id"]}"' in page
    csrf = csrf_of(page)
    # The portal's list marks the exam until it is acknowledged.
    assert "Critical finding to acknowledge" in text_of(er.get("/portal").text)

    forged = er.post(f"{path}/critical/acknowledge",
                     data={"csrf_token": "forged", "finding_id": str(finding["id"])})
    assert forged.status_code == 403
    changes = len(_audited(env, "critical finding acknowledged"))
    assert changes == 0

    done = er.post(f"{path}/critical/acknowledge",
                   data={"csrf_token": csrf, "finding_id": str(finding["id"]),
                         "note": "Neurochirurgien prévenu"})
    assert (done.status_code, done.headers["location"]) == (
        303, f"{path}?notice=acknowledged#exam-critical")
    after = er.get(f"{path}?notice=acknowledged")
    text = text_of(after.text)
    assert "Critical finding acknowledged: the radiologist sees it." in text
    assert "Acknowledged on" in text
    assert "by er_carcassonne" in text
    assert "Neurochirurgien prévenu" in text
    assert 'id="critical-alert"' not in after.text
    assert "/critical/acknowledge" not in after.text  # no form any more
    assert "Critical finding to acknowledge" not in text_of(er.get("/portal").text)
    with transaction(env.runtime.sessions, readonly=True) as session:
        row = session.get(CriticalFinding, finding["id"])
        assert row.acknowledged_at is not None
        assert row.acknowledged_by == env.night.users["er_carcassonne"]
        assert row.acknowledgement_note == "Neurochirurgien prévenu"
        acknowledged_at = row.acknowledged_at
    (event,) = _audited(env, "critical finding acknowledged")
    assert event.action == "update"
    assert json.loads(event.detail)["exam_id"] == exam["id"]
    timeline = env.api("dr_alice").ok("GET", f"/api/exams/{exam['id']}")["timeline"]
    assert [e["kind"] for e in timeline].count("critical_acknowledged") == 1

    # A second time (another tab): said clearly, and nothing changes.
    again = er.post(f"{path}/critical/acknowledge",
                    data={"csrf_token": csrf, "finding_id": str(finding["id"])})
    assert again.headers["location"] == f"{path}?error=acknowledged#exam-critical"
    assert "already acknowledged" in text_of(er.get(f"{path}?error=acknowledged").text)
    assert len(_audited(env, "critical finding acknowledged")) == 1
    with transaction(env.runtime.sessions, readonly=True) as session:
        assert session.get(CriticalFinding, finding["id"]).acknowledged_at == acknowledged_at
    # A finding of another exam, or none, is not found.
    other = er.post(f"{path}/critical/acknowledge",
                    data={"csrf_token": csrf, "finding_id": "999999"})
    assert other.status_code == 404


def test_without_the_permission_no_button_and_403(env: Env, browsers: Browsers) -> None:
    exam = _claimed(env)
    finding = _declared(env, exam["id"])
    tech = browsers("tech_carcassonne")  # a technologist: no CRITICAL_ACKNOWLEDGE
    page = tech.get(f"/portal/exams/{exam['id']}").text
    assert "Hématome sous-dural aigu" in text_of(page)  # they see it, highlighted
    assert 'id="critical-alert"' in page
    assert "/critical/acknowledge" not in page
    assert 'name="finding_id"' not in page
    updates = _updates(env)
    answer = tech.post(f"/portal/exams/{exam['id']}/critical/acknowledge",
                       data={"csrf_token": csrf_of(tech.get("/").text),
                             "finding_id": str(finding["id"])})
    assert answer.status_code == 403
    assert _updates(env) == updates
    with transaction(env.runtime.sessions, readonly=True) as session:
        assert session.get(CriticalFinding, finding["id"]).acknowledged_at is None
    # The site manager may acknowledge (the role allows it).
    manager = browsers("manager_carcassonne")
    page = manager.get(f"/portal/exams/{exam['id']}").text
    assert f'name="finding_id" value="{finding["id"]}"' in page


def _updates(env: Env) -> int:
    with transaction(env.runtime.sessions, readonly=True) as session:
        return session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "update")) or 0


def test_a_signature_is_written_as_people_write_it() -> None:
    assert signer_label("MARTIN^Alice^^Dr") == "Dr Alice MARTIN"
    assert signer_label("Lefèvre^David") == "David LEFÈVRE"
    assert signer_label("") == "—"
