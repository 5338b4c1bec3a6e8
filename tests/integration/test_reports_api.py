"""Reports through the JSON API on a real database: from the template to the signed final
and its addenda, drafts that never lose typing, critical findings and their escalation,
and the outbox the signature fills (sent here by fake transports; the real peers are in
test_delivery_peers.py)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from io import BytesIO
from typing import Any

import pytest
from pydicom import dcmread
from sqlalchemy import select

from telerad.archive.models import Instance
from telerad.db import transaction
from telerad.delivery import service as delivery
from telerad.delivery.channels import Address, Outcome, Outgoing, Verdict
from telerad.delivery.models import Delivery
from telerad.delivery.reconciliation import unreconciled
from telerad.delivery.worker import deliver_due
from telerad.reporting.models import ReportVersion
from tests.integration.workflow_env import Env, env, ready_exam

__all__ = ["env"]


class FakePeer:
    """A transport that answers what the test says, and remembers what it got."""

    def __init__(self) -> None:
        self.verdict = Verdict.ACKNOWLEDGED
        self.got: list[tuple[str, str]] = []
        self.payloads: list[bytes] = []

    def send(self, address: Address, documents: Sequence[Outgoing]) -> list[Outcome]:
        outcomes = []
        for doc in documents:
            if self.verdict is Verdict.RETRY:
                return [Outcome(delivery_id=doc.delivery_id, verdict=Verdict.RETRY,
                                answer="connection refused")]
            self.got.append((address.host, doc.document))
            self.payloads.append(doc.payload)
            outcomes.append(Outcome(delivery_id=doc.delivery_id, verdict=self.verdict,
                                    answer="AA" if self.verdict is Verdict.ACKNOWLEDGED
                                    else "AE: 101"))
            if self.verdict is not Verdict.ACKNOWLEDGED:
                break
        return outcomes


def _claimed(env: Env) -> dict[str, Any]:
    exam = ready_exam(env)
    env.api("dr_alice").ok("POST", f"/api/exams/{exam['id']}/claim")
    return exam


def _add_endpoints(env: Env) -> None:
    with transaction(env.runtime.sessions) as session:
        now = env.clock.now()
        site = env.night.sites["carcassonne"]
        delivery.add_endpoint(session, site_id=site, channel="hl7_mllp", name="RIS",
                              host="ris.example", port=2575, now=now)
        delivery.add_endpoint(session, site_id=site, channel="dicom_store", name="PACS",
                              host="pacs.example", port=104, called_ae_title="PACS", now=now)


def _deliver(env: Env, peer: FakePeer) -> int:
    return deliver_due(env.runtime.sessions, env.clock,
                       {"hl7_mllp": peer, "dicom_store": peer}, calling_ae_title="TELERAD",
                       max_backoff=dt.timedelta(minutes=5))


def test_report_from_template_to_final_and_addendum(env: Env) -> None:
    _add_endpoints(env)
    exam = _claimed(env)
    alice = env.api("dr_alice")
    base = f"/api/exams/{exam['id']}/report"
    report = alice.ok("POST", base)
    assert report["template"]["code"] == "ct_head"
    assert report["draft"]["conclusion"], "the normal findings are filled in"
    assert "intracranial bleeding?" in report["draft"]["indication"]
    # Typing is kept; a save from an older revision is refused, never silently lost.
    draft = dict(report["draft"], conclusion="Hématome sous-dural aigu droit de 8 mm.")
    saved = alice.ok("PUT", f"{base}/draft", {"content": draft,
                                              "base_revision": report["revision"]})
    status, answer = alice.call("PUT", f"{base}/draft", {"content": report["draft"],
                                                        "base_revision": report["revision"]})
    assert (status, answer["error"]) == (409, "draft_conflict")
    assert alice.ok("GET", base)["draft"]["conclusion"].startswith("Hématome")
    # A required field empty: signing is refused, naming it.
    empty = dict(draft, conclusion="")
    revision = alice.ok("PUT", f"{base}/draft", {"content": empty,
                                                 "base_revision": saved["revision"]})["revision"]
    status, answer = alice.call("POST", f"{base}/release", {"kind": "final"})
    assert status == 400
    assert "conclusion" in answer["message"]
    alice.ok("PUT", f"{base}/draft", {"content": draft, "base_revision": revision})
    # Only the reader writes: another radiologist of the site may not.
    status, _ = env.api("dr_emma").call("POST", f"{base}/release", {"kind": "preliminary"})
    assert status == 403

    preliminary = alice.ok("POST", f"{base}/release", {"kind": "preliminary"})
    assert preliminary["number"] == 1
    assert preliminary["kind"] == "preliminary"
    assert env.api("er_carcassonne").ok("GET", f"/api/exams/{exam['id']}")["state"] == \
        "preliminary"
    final = alice.ok("POST", f"{base}/release", {"kind": "final"})
    assert final["number"] == 2
    assert "Hématome" in final["text"]
    assert len(final["content_sha256"]) == 64
    status, answer = alice.call("POST", f"{base}/release", {"kind": "final"})
    assert (status, answer["error"]) == (409, "invalid_report_release")
    # Corrections are addenda, by any radiologist of the site, each signed.
    status, _ = alice.call("PUT", f"{base}/draft", {"content": draft, "base_revision": 99})
    assert status == 400  # after the final, only the addendum field exists
    revision = alice.ok("GET", base)["revision"]
    alice.ok("PUT", f"{base}/draft", {"content": {"addendum": "Pas de fracture associée."},
                                      "base_revision": revision})
    addendum = alice.ok("POST", f"{base}/release", {"kind": "addendum"})
    assert addendum["number"] == 3

    # The hospital sees the signed versions, never a draft; the PDF opens.
    seen = env.api("er_carcassonne").ok("GET", base)
    assert [v["kind"] for v in seen["versions"]] == ["preliminary", "final", "addendum"]
    assert seen["draft"] == {}
    status, _ = env.api("tech_narbonne").call("GET", base)
    assert status == 404
    pdf = env.api("er_carcassonne").raw("GET", final["pdf_url"])
    assert pdf.startswith(b"%PDF")

    # Every version is kept as signed; its hash still matches.
    with transaction(env.runtime.sessions) as session:
        versions = list(session.scalars(select(ReportVersion).order_by(ReportVersion.number)))
        assert [v.number for v in versions] == [1, 2, 3]
        assert all(v.pdf.startswith(b"%PDF") for v in versions)

    # The outbox: preliminary, final, addendum for each endpoint, in order.
    peer = FakePeer()
    while _deliver(env, peer):
        pass
    assert [d for h, d in peer.got if h == "ris.example"] == ["ORU^R01"] * 3
    assert [d for h, d in peer.got if h == "pacs.example"] == ["SR", "PDF"] * 3
    # The SR is in the exam's study and names the images it was read from as evidence.
    sr = dcmread(BytesIO(next(p for (_h, d), p in zip(peer.got, peer.payloads, strict=True)
                              if d == "SR")))
    assert sr.StudyInstanceUID == exam["study_instance_uid"]
    evidence = [item.ReferencedSOPInstanceUID
                for study in sr.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence
                for item in series.ReferencedSOPSequence]
    with transaction(env.runtime.sessions) as session:
        images = session.scalars(select(Instance.sop_instance_uid)).all()
    assert sorted(evidence) == sorted(images)
    assert len(images) == 2
    assert env.api("er_carcassonne").ok("GET", f"/api/exams/{exam['id']}")["state"] == \
        "delivered"
    assert _deliver(env, peer) == 0, "nothing acknowledged is sent twice"


def test_a_peer_down_waits_then_gets_everything_in_order(env: Env) -> None:
    _add_endpoints(env)
    exam = _claimed(env)
    alice = env.api("dr_alice")
    base = f"/api/exams/{exam['id']}/report"
    alice.ok("POST", base)
    alice.ok("POST", f"{base}/release", {"kind": "preliminary"})
    alice.ok("POST", f"{base}/release", {"kind": "final"})
    peer = FakePeer()
    peer.verdict = Verdict.RETRY
    assert _deliver(env, peer) > 0
    assert _deliver(env, peer) == 0, "it waits its backoff"
    with transaction(env.runtime.sessions, readonly=True) as session:
        report = unreconciled(session, site_ids=None)
        assert [(u.exam_id, u.reason) for u in report] == [(exam["id"], "pending")]
        assert {o.last_answer for o in report[0].outstanding} >= {"connection refused"}
    env.clock.advance(dt.timedelta(minutes=10))
    peer.verdict = Verdict.ACKNOWLEDGED
    while _deliver(env, peer):
        pass
    assert [d for h, d in peer.got if h == "ris.example"] == ["ORU^R01", "ORU^R01"]
    with transaction(env.runtime.sessions, readonly=True) as session:
        rows = list(session.scalars(select(Delivery).order_by(Delivery.acknowledged_at,
                                                              Delivery.id)))
        assert all(r.state == "acknowledged" for r in rows)
        assert unreconciled(session, site_ids=None) == []


def test_a_rejected_delivery_is_flagged_and_listed(env: Env) -> None:
    _add_endpoints(env)
    exam = _claimed(env)
    alice = env.api("dr_alice")
    base = f"/api/exams/{exam['id']}/report"
    alice.ok("POST", base)
    alice.ok("POST", f"{base}/release", {"kind": "final"})
    peer = FakePeer()
    peer.verdict = Verdict.REJECTED
    while _deliver(env, peer):
        pass
    with transaction(env.runtime.sessions, readonly=True) as session:
        (row,) = unreconciled(session, site_ids=frozenset({env.night.sites["carcassonne"]}))
        assert row.reason == "failed"
        assert unreconciled(session, site_ids=frozenset({env.night.sites["narbonne"]})) == []
    timeline = env.api("er_carcassonne").ok("GET", f"/api/exams/{exam['id']}")["timeline"]
    assert "delivery_failed" in [e["kind"] for e in timeline]


def _call(env: Env, **changes: Any) -> dict[str, Any]:
    return {"called_person": "Dr Garnier (urgences)", "phone": "+33 4 68 24 24 24",
            "called_at": env.clock.now().isoformat(),
            "said": "Hématome sous-dural aigu droit avec effet de masse", "read_back": True,
            **changes}


def test_critical_finding_call_acknowledgement_and_escalation(env: Env) -> None:
    exam = _claimed(env)
    alice = env.api("dr_alice")
    path = f"/api/exams/{exam['id']}/critical-findings"
    status, answer = alice.call("POST", path, {"finding": "HSD", "call": _call(
        env, read_back=False)})
    assert status == 400
    assert "read back" in answer["message"]
    status, _ = env.api("er_carcassonne").call("POST", path, {"finding": "HSD",
                                                             "call": _call(env)})
    assert status == 403, "only the radiologist records the call"
    finding = alice.ok("POST", path, {"finding": "Hématome sous-dural aigu",
                                      "call": _call(env)})
    assert finding["calls"][0]["read_back"] is True
    # Unacknowledged past the site's 15 minutes: a second call, then the on-call manager.
    env.advance(minutes=16)
    env.advance(minutes=16)
    events = env.api("dr_alice").ok("GET", f"/api/exams/{exam['id']}")["timeline"]
    steps = [e["detail"]["step"] for e in events if e["kind"] == "critical_escalated"]
    assert steps == ["second_call", "on_call_manager"]
    alice.ok("POST", f"{path}/{finding['id']}/calls", _call(env, called_person="Cadre de garde"))
    # Another site's staff cannot see it nor acknowledge it; the hospital's doctor can.
    status, _ = env.api("er_narbonne").call("POST", f"{path}/{finding['id']}/acknowledge", {})
    assert status == 404
    done = env.api("er_carcassonne").ok("POST", f"{path}/{finding['id']}/acknowledge",
                                        {"note": "Neurochirurgien prévenu"})
    assert done["acknowledged_at"] is not None
    assert len(done["calls"]) == 2
    status, answer = env.api("er_carcassonne").call(
        "POST", f"{path}/{finding['id']}/acknowledge", {})
    assert status == 409
    env.advance(minutes=60)
    events = env.api("dr_alice").ok("GET", f"/api/exams/{exam['id']}")["timeline"]
    kinds = [e["kind"] for e in events]
    assert kinds.count("critical_escalated") == 2, "an acknowledged finding escalates no more"
    assert "critical_acknowledged" in kinds
    assert "critical_call" in kinds


@pytest.mark.parametrize("kind", ["preliminary", "final"])
def test_nothing_is_released_before_a_report_exists(env: Env, kind: str) -> None:
    exam = _claimed(env)
    status, _ = env.api("dr_alice").call("POST", f"/api/exams/{exam['id']}/report/release",
                                         {"kind": kind})
    assert status == 404


def test_saves_from_the_same_revision_at_once_one_wins(env: Env) -> None:
    exam = _claimed(env)
    alice = env.api("dr_alice")
    base = f"/api/exams/{exam['id']}/report"
    report = alice.ok("POST", base)
    statuses: list[int] = []

    def save(n: int) -> None:
        content = dict(report["draft"], conclusion=f"version {n}")
        statuses.append(alice.call("PUT", f"{base}/draft", {
            "content": content, "base_revision": report["revision"]})[0])

    threads = [threading.Thread(target=save, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [409] * 5
    saved = alice.ok("GET", base)
    assert saved["revision"] == report["revision"] + 1
    assert saved["draft"]["conclusion"].startswith("version ")
