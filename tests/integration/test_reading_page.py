"""The radiologist's reading page over real HTTP (httpx keeps the cookie as a browser would):
the reader gets the viewer and the editor of the exam's template, prefilled; the signed
versions and critical calls are listed; other radiologists read only; another site's
radiologist and strangers see nothing."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.integration.page_clients import Browsers, browsers
from tests.integration.workflow_env import Env, env, ready_exam

__all__ = ["browsers", "env"]


@pytest.fixture
def exam(env: Env) -> dict[str, Any]:
    """A CT head (protocol CT_HEAD) with its images, claimed by Alice."""
    exam = ready_exam(env)
    env.api("dr_alice").ok("POST", f"/api/exams/{exam['id']}/claim")
    return exam


@pytest.fixture
def alice(browsers: Browsers) -> httpx.Client:
    return browsers("dr_alice")


def _shown(page: httpx.Response) -> str:
    """The page's text as shown: without the words handed to its script."""
    return html.unescape(re.sub(r"<script[^>]*>.*?</script>", "", page.text, flags=re.S))


def _paris(at: dt.datetime) -> str:
    return at.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M")


def _field_ids(page: str) -> list[str]:
    return re.findall(r'<(?:input|textarea|select) id="field-([^"]+)"', page)


def test_the_reader_gets_the_viewer_and_the_templates_fields(env: Env, exam: dict[str, Any],
                                                             alice: httpx.Client) -> None:
    page = alice.get(f"/exams/{exam['id']}/read")
    assert page.status_code == 200
    text = _shown(page)
    # OHIF on the exam's study, in a titled frame.
    assert re.search(r'<iframe src="/viewer/viewer\?StudyInstanceUIDs=[0-9.]+" title="[^"]+"',
                     text), "no viewer frame"
    # The clinical context of the request.
    assert "intracranial bleeding?" in text
    assert "fall at home" in text
    # The CT head template's fields (chosen by the protocol), the normal findings filled in
    # and the required ones marked; nothing is written until the radiologist types.
    fields = _field_ids(page.text)
    assert {"indication", "technique", "hemorragie", "conclusion", "pdl"} <= set(fields)
    assert re.search(r'id="field-conclusion"[^>]*aria-required="true"', page.text)
    assert re.search(r'<option selected>absente</option>', text)
    assert re.search(r'id="field-pdl"[^>]*type="number"[^>]*min="0"[^>]*max="100000"',
                     page.text)
    assert 'data-has-report="false"' in page.text
    assert 'data-template="ct_head"' in page.text
    assert "Issue a preliminary report" in text
    assert "Sign the final report" in text
    assert 'name="read_back" required' in page.text
    assert env.api("dr_alice").call("GET", f"/api/exams/{exam['id']}/report")[0] == 404
    # Another template may be chosen before typing.
    other = alice.get(f"/exams/{exam['id']}/read", params={"template": "generic_ct"})
    assert 'data-template="generic_ct"' in other.text
    assert set(_field_ids(other.text)) != set(fields)


def test_the_page_shows_the_signed_versions_and_the_calls(env: Env, exam: dict[str, Any],
                                                          alice: httpx.Client) -> None:
    api = env.api("dr_alice")
    base = f"/api/exams/{exam['id']}/report"
    report = api.ok("POST", base)
    api.ok("PUT", f"{base}/draft", {"content": dict(
        report["draft"], conclusion="Hématome sous-dural aigu droit."),
        "base_revision": report["revision"]})
    api.ok("POST", f"{base}/release", {"kind": "preliminary"})
    called_at = env.clock.now() - dt.timedelta(minutes=2)
    api.ok("POST", f"/api/exams/{exam['id']}/critical-findings", {
        "finding": "Hématome sous-dural aigu avec engagement",
        "call": {"called_person": "Dr Urgentiste", "phone": "0468000000",
                 "called_at": called_at.isoformat(), "said": "HSD aigu droit 8 mm",
                 "read_back": True}})

    page = alice.get(f"/exams/{exam['id']}/read")
    text = _shown(page)
    assert page.status_code == 200
    assert "Version 1 — Preliminary" in text
    assert "signed by Dr Alice MARTIN" in text
    assert f'href="{base}/versions/1/pdf"' in page.text
    assert "Hématome sous-dural aigu droit." in text
    assert "Hématome sous-dural aigu avec engagement" in text
    assert "Call to Dr Urgentiste (0468000000)" in text
    # In Carcassonne's time; the acknowledgement is due 15 minutes after the finding.
    assert f"Waiting — due at {_paris(env.clock.now() + dt.timedelta(minutes=15))}" in text
    assert 'data-has-report="true"' in page.text
    assert "Issue a preliminary report" not in text  # already released

    # The parts the script fetches again say the same; the hospital's acknowledgement shows.
    finding = env.api("er_carcassonne").ok("GET", f"/api/exams/{exam['id']}/critical-findings")
    env.clock.advance(dt.timedelta(minutes=3))
    env.api("er_carcassonne").ok(
        "POST", f"/api/exams/{exam['id']}/critical-findings/{finding[0]['id']}/acknowledge", {})
    parts = alice.get(f"/exams/{exam['id']}/read/parts")
    assert parts.status_code == 200
    assert f"Acknowledged by the hospital at {_paris(env.clock.now())}" in _shown(parts)
    assert 'id="versions-list"' in parts.text
    assert 'id="findings-list"' in parts.text

    # Once the final is signed, the page offers the addendum.
    api.ok("POST", f"{base}/release", {"kind": "final"})
    page = alice.get(f"/exams/{exam['id']}/read")
    assert 'name="addendum"' in page.text
    assert "Sign the addendum" in _shown(page)
    assert "Version 2 — Final" in _shown(page)


def test_another_radiologist_of_the_site_reads_only(browsers: Browsers,
                                                    exam: dict[str, Any]) -> None:
    with browsers("dr_emma") as emma:
        page = emma.get(f"/exams/{exam['id']}/read")
    assert page.status_code == 200
    assert "Another radiologist reads this exam" in _shown(page)
    assert "<iframe" not in page.text
    assert 'id="report-editor"' not in page.text
    assert 'class="call-form"' not in page.text


def test_a_ready_exam_offers_the_claim(env: Env, alice: httpx.Client) -> None:
    exam = ready_exam(env)
    page = alice.get(f"/exams/{exam['id']}/read")
    assert page.status_code == 200
    assert f'action="/exams/{exam["id"]}/claim"' in page.text
    assert 'id="report-editor"' not in page.text
    # Claiming lands on the reading page, with the editor.
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    claimed = alice.post(f"/exams/{exam['id']}/claim", data={"csrf_token": csrf[1]})
    assert (claimed.status_code, claimed.headers["location"]) == (
        303, f"/exams/{exam['id']}/read")
    assert 'id="report-editor"' in alice.get(claimed.headers["location"]).text
    # And the exam page links to it.
    assert f'href="/exams/{exam["id"]}/read"' in alice.get(f"/exams/{exam['id']}").text


def test_other_sites_and_strangers_see_nothing(browsers: Browsers, exam: dict[str, Any]) -> None:
    for path in (f"/exams/{exam['id']}/read", f"/exams/{exam['id']}/read/parts"):
        with browsers("dr_david") as david:  # a radiologist of Narbonne only
            answer = david.get(path)
        assert answer.status_code == 404, path
        assert "DUPONT" not in answer.text
        with browsers("er_carcassonne") as doctor:  # not a radiologist
            assert doctor.get(path).status_code == 403, path
    with browsers(None) as stranger:
        answer = stranger.get(f"/exams/{exam['id']}/read")
        assert (answer.status_code, answer.headers["location"]) == (303, "/signin")
        assert stranger.get(f"/exams/{exam['id']}/read/parts").status_code == 401


def test_the_page_speaks_french_by_default(browsers: Browsers, exam: dict[str, Any]) -> None:
    with browsers("dr_alice") as alice:
        page = alice.get(f"/exams/{exam['id']}/read", headers={"Accept-Language": "fr"})
    text = _shown(page)
    assert "Signer le compte rendu définitif" in text
    assert "Diffuser un compte rendu préliminaire" in text
    assert "Relu par l'interlocuteur (read-back)" in text
