"""People sign in and see only their own sites' patients, on every archive route."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from telerad.auth.models import Role
from telerad.auth.users import SESSION_LIFETIME, authenticate_bearer, create_user, sign_in
from telerad.clock import FrozenClock
from telerad.config import Settings
from telerad.db import transaction
from telerad.dicom.synthetic import SyntheticStudy, instance
from telerad.errors import InvalidInput, NotAuthenticated
from telerad.runtime import Runtime
from telerad.testing.peers import storescu, telerad_command
from telerad.workflow.sites.service import add_site
from tests.conftest import Served

PASSWORD = "correct horse battery"


def _http(method: str, url: str, token: str | None = None, body: Any = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _login(served: Served, username: str, password: str = PASSWORD) -> tuple[int, Any]:
    status, body = _http("POST", f"{served.server.base_url}/api/login",
                         body={"username": username, "password": password})
    return status, json.loads(body)


def _write_study(folder: Any, accession: str) -> SyntheticStudy:
    study = SyntheticStudy(slices=2, rows=16, columns=16, accession_number=accession)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(2):
        instance(study, index).save_as(folder / f"{index}.dcm", enforce_file_format=True)
    return study


def test_people_see_only_their_sites(served: Served, tmp_path: Any) -> None:
    server = served.server
    server.command("site", "add", "Other Hospital", "--ae-title", "OTHER_CT")
    # One study from each site, over DICOM.
    ours = _write_study(tmp_path / "ours", "OURS1")
    theirs = _write_study(tmp_path / "theirs", "THEIRS1")
    assert storescu([tmp_path / "ours"], port=server.dicom_port, calling="TEST_SCU").returncode == 0
    assert storescu([tmp_path / "theirs"], port=server.dicom_port,
                    calling="OTHER_CT").returncode == 0
    for username, site in (("tech.ours", "Test Hospital"), ("tech.theirs", "Other Hospital")):
        result = telerad_command("user", "add", username, "--role", "technologist",
                                 "--site", site, "--password-stdin", data_dir=server.data_dir,
                                 env=server.env, input_text=PASSWORD + "\n")
        assert result.returncode == 0, result.stderr

    status, signed = _login(served, "tech.ours")
    assert status == 200, signed
    assert signed["role"] == "technologist"
    token = signed["token"]
    dw = server.dicomweb_url
    status, body = _http("GET", f"{dw}/studies", token)
    assert status == 200
    uids = {s["0020000D"]["Value"][0] for s in json.loads(body)}
    assert uids == {ours.study_instance_uid}
    status, body = _http("GET", f"{server.base_url}/api/studies", token)
    assert [s["study_instance_uid"] for s in json.loads(body)] == [ours.study_instance_uid]
    # Every route of the other site's study answers as if it did not exist.
    other = theirs.study_instance_uid
    for path in (f"/dicomweb/studies/{other}/metadata", f"/dicomweb/studies/{other}",
                 f"/dicomweb/studies/{other}/series", f"/dicomweb/studies/{other}/instances",
                 f"/api/studies/{other}"):
        status, _ = _http("GET", server.base_url + path, token)
        assert status in (404, 200), path
        if status == 200:  # a search: it must come back empty
            assert json.loads(_) == [], path
    status, body = _http("GET", f"{dw}/series?StudyInstanceUID={other}", token)
    assert status == 200
    assert json.loads(body) == []
    status, _ = _http("GET", f"{dw}/studies/{ours.study_instance_uid}/metadata", token)
    assert status == 200


def test_wrong_password_and_unknown_user(served: Served) -> None:
    status, body = _login(served, "nobody")
    assert status == 401
    assert body["error"] == "not_authenticated"
    status, _ = _http("GET", f"{served.server.dicomweb_url}/studies", "trs_forged")
    assert status == 401


def test_sessions_expire_and_roles_limit(settings: Settings) -> None:
    clock = FrozenClock(dt.datetime(2026, 11, 24, 19, 0, tzinfo=dt.UTC))
    runtime = Runtime.open(settings, clock=clock)
    try:
        with transaction(runtime.sessions) as session:
            site = add_site(session, name="Carcassonne", ae_titles=["CT1"], now=clock.now())
            create_user(session, username="dr.urgences", display_name="Dr Urgences",
                        role=Role.REQUESTING_PHYSICIAN, password=PASSWORD, site_ids=[site.id],
                        now=clock.now())
            with pytest.raises(InvalidInput):
                create_user(session, username="weak", display_name="", role=Role.ADMIN,
                            password="short", site_ids=[], now=clock.now())
            signed = sign_in(session, username="DR.URGENCES ", password=PASSWORD,
                             now=clock.now())
            with pytest.raises(NotAuthenticated):
                sign_in(session, username="dr.urgences", password=PASSWORD + "x",
                        now=clock.now())
        assert signed.actor.scope.site_ids == frozenset({site.id})
        assert "archive:write" not in signed.actor.scope.permissions  # not a technologist
        with transaction(runtime.sessions, readonly=True) as session:
            assert authenticate_bearer(session, signed.token, now=clock.now()).actor.name == \
                "dr.urgences"
        clock.advance(SESSION_LIFETIME)
        with pytest.raises(NotAuthenticated), \
                transaction(runtime.sessions, readonly=True) as session:
            authenticate_bearer(session, signed.token, now=clock.now())
    finally:
        runtime.close()
