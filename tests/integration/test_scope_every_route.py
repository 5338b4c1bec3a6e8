"""Every route of the API and of DICOMweb, tried by people of the wrong site: nothing of
another site's patient is shown or changed (PRODUCT.md, non-negotiables).

The routes are read from the application itself, so a route added later is tried too; a
path parameter this test does not know fails it, until someone says what to try there.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from telerad.auth.models import Role
from telerad.auth.users import create_user
from telerad.db import transaction
from telerad.dicom.synthetic import SyntheticStudy, instance
from telerad.testing.workflow import PASSWORD, Api
from telerad.web.app import create_app
from tests.integration.workflow_env import Env, env, request_body

__all__ = ["env"]


#: Routes about the caller's own account, which touch no patient data.
OWN_ACCOUNT = {"/api/account/second-factor", "/api/account/second-factor/confirm"}


def _routes(env: Env) -> list[tuple[str, str]]:
    """Every documented route (OpenAPI) of the API and DICOMweb: (METHOD, path)."""
    paths = create_app(env.runtime).openapi()["paths"]
    return [(method.upper(), path) for path, operations in paths.items()
            if path.startswith(("/api", "/dicomweb")) for method in operations]


def _bodies(env: Env) -> dict[str, Any]:
    """Well-formed bodies, so that what answers is the scope, not validation."""
    return {
        "/api/requests": request_body(env, site="carcassonne"),
        "/api/requests/{exam_id}/decision": {"decision": "accept", "protocol_code": "CT_HEAD"},
        "/api/exams/{exam_id}/cancel": {"reason": "test"},
        "/api/exams/{exam_id}/reconcile": {"reject_reason": "test"},
        "/api/exams/{exam_id}/routing/what-if": {"shifts": []},
        "/api/teams": {"name": "Team", "kind": "provider"},
        "/api/sites/{site_id}/contracts": {"modality": "CT", "windows": ["every 18:30-08:00"],
                                           "teams": ["Imadis"]},
        "/api/radiologists": {"name": "Dr X", "site_ids": [1]},
        "/api/shifts": {"radiologist_id": 1, "team_id": 1, "start": "2026-11-24T18:30:00Z",
                        "end": "2026-11-25T08:00:00Z"},
        "/api/protocols": {"code": "CT_X", "name": "X", "modality": "CT"},
        "/api/exams/{exam_id}/report/draft": {"content": {"conclusion": "x"},
                                              "base_revision": 1},
        "/api/exams/{exam_id}/report/release": {"kind": "final"},
        "/api/exams/{exam_id}/critical-findings": {"finding": "x", "call": CALL},
        "/api/exams/{exam_id}/critical-findings/{finding_id}/calls": CALL,
        "/api/exams/{exam_id}/critical-findings/{finding_id}/acknowledge": {"note": ""},
    }


#: A well-formed critical call.
CALL = {"called_person": "Dr X", "phone": "0102030405", "called_at": "2026-11-24T02:00:00Z",
        "said": "x", "read_back": True}


#: Well-formed queries of the routes that need some.
QUERIES = {
    "/api/roster/on-duty": "?site_id=1&modality=CT",
    "/api/roster/gaps": "?site_id=1&modality=CT",
    "/api/shifts": "?start=2026-11-24T00:00:00Z&end=2026-11-25T00:00:00Z",
}


def test_every_route_keeps_another_sites_patient_hidden(env: Env) -> None:
    # A Carcassonne exam with images, and a Carcassonne shift.
    er = env.api("er_carcassonne")
    exam = er.ok("POST", "/api/requests", request_body(env, patient_id="SECRET42"))
    exam = env.api("dr_alice").ok("POST", f"/api/requests/{exam['id']}/decision",
                                  {"decision": "accept", "protocol_code": "CT_HEAD"})
    study = SyntheticStudy(slices=1, rows=16, columns=16, patient_id="SECRET42",
                           patient_name="DUPONT^MARIE", accession_number=exam["accession_number"],
                           series_description="HEAD")
    env.send(study)
    env.advance(minutes=1)
    assert env.api("coordinator").ok("GET", f"/api/exams/{exam['id']}")["state"] == "ready"
    # Its report, signed, and a critical finding.
    alice = env.api("dr_alice")
    alice.ok("POST", f"/api/exams/{exam['id']}/claim")
    report = alice.ok("POST", f"/api/exams/{exam['id']}/report")
    alice.ok("PUT", f"/api/exams/{exam['id']}/report/draft", {
        "content": dict(report["draft"], conclusion="SECRETCONCLUSION"),
        "base_revision": report["revision"]})
    alice.ok("POST", f"/api/exams/{exam['id']}/report/release", {"kind": "final"})
    finding = alice.ok("POST", f"/api/exams/{exam['id']}/critical-findings",
                       {"finding": "SECRETFINDING", "call": dict(
                           CALL, called_at=env.clock.now().isoformat())})

    values = {
        "exam_id": str(exam["id"]), "study_instance_uid": study.study_instance_uid,
        "study": study.study_instance_uid, "series": study.series_instance_uid,
        "instance": str(instance(study, 0).SOPInstanceUID), "frames": "1", "frame": "1",
        "tag": "7FE00010", "site_id": str(env.night.sites["carcassonne"]), "shift_id": "1",
        "finding_id": str(finding["id"]), "number": "1",
    }
    secrets = ("SECRET42", "DUPONT", study.study_instance_uid, exam["accession_number"],
               "SECRETCONCLUSION", "SECRETFINDING")
    bodies = _bodies(env)
    routes = _routes(env)
    assert len(routes) > 40
    tried = 0
    for username in ("tech_narbonne", "er_narbonne", "dr_david"):
        api = env.api(username)
        for method, path in routes:
            if path == "/api/login":
                continue
            names = re.findall(r"{(\w+)(?::\w+)?}", path)
            unknown = [n for n in names if n not in values]
            assert not unknown, f"{path}: say what to try for {unknown}"
            url = re.sub(r"{(\w+)(?::\w+)?}", lambda m: values[m[1]], path)
            status, answer = api.call(method, url, bodies.get(path))
            tried += 1
            text = str(answer)
            leaked = [s for s in secrets if s in text]
            assert not leaked, f"{username} {method} {url}: {status} shows {leaked}"
            if method != "GET" and path not in OWN_ACCOUNT:
                assert status >= 400, f"{username} {method} {url} answered {status}"
            else:
                assert status in (200, 204, 400, 403, 404, 406, 422), (username, url, status)
    assert tried == 3 * (len(routes) - 1)
    # And nothing changed.
    after = env.api("coordinator").ok("GET", f"/api/exams/{exam['id']}")
    assert after["state"] == "delivered"  # signed, and no endpoint to wait for
    assert [e["kind"] for e in after["timeline"]] == [
        "filed", "accept", "images_arrived", "ready", "claimed", "report_started",
        "report_final", "delivered", "critical_finding"]
    assert env.api("dr_alice").ok("GET", f"/api/exams/{exam['id']}/report")["revision"] == 3


@pytest.mark.parametrize("username", ["tech_narbonne", "dr_david"])
def test_lists_leave_other_sites_out(env: Env, username: str) -> None:
    env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env))
    env.api("er_narbonne").ok("POST", "/api/requests",
                              request_body(env, site="narbonne", patient_id="NARBO1"))
    api = env.api(username)
    if username == "tech_narbonne":
        assert [e["patient_id"] for e in api.ok("GET", "/api/exams")] == ["NARBO1"]
    else:
        assert [i["exam"]["patient_id"] for i in api.ok("GET", "/api/worklist")] == ["NARBO1"]


def test_without_a_token_every_route_says_401(env: Env) -> None:
    anonymous = env.api()
    for method, path in _routes(env):
        if path == "/api/login":
            continue
        url = re.sub(r"{(\w+)(?::\w+)?}", "1", path)
        status, _ = anonymous.call(method, url)
        assert status == 401, (method, url, status)


def test_a_person_without_rights_gets_403_on_every_route(env: Env) -> None:
    """A radiologist who has not set up the second factor their role needs holds no
    permission: every route but their own account's answers 403."""
    with transaction(env.runtime.sessions) as session:
        create_user(session, username="dr_new", display_name="Dr New", password=PASSWORD,
                    role=Role.RADIOLOGIST, site_ids=[env.night.sites["carcassonne"]],
                    now=env.clock.now())
    answer = env.api().ok("POST", "/api/login", {"username": "dr_new", "password": PASSWORD})
    assert answer["second_factor_enrolment_required"] is True
    api = Api(env.server.base_url, answer["token"])
    bodies, refused = _bodies(env), []
    for method, path in _routes(env):
        if path == "/api/login" or path in OWN_ACCOUNT:
            continue
        url = re.sub(r"{(\w+)(?::\w+)?}", lambda m: "7FE00010" if m[1] == "tag" else "1",
                     path)
        if method == "GET":
            url += QUERIES.get(path, "")
        status, _ = api.call(method, url, bodies.get(path, {}) if method != "GET" else None)
        refused.append((method, path, status))
    assert len(refused) > 40
    not_refused = [r for r in refused if r[2] != 403]
    assert not_refused == [], "\n".join(map(str, not_refused))
