"""Every page route, tried by people without the right to it: strangers are sent to sign in,
a signed-in person without the permission gets 403, another site's patient stays hidden, and
nothing changes (PRODUCT.md, non-negotiables).

The routes are read from the application itself, so a page added later is tried too; a path
parameter this test does not know fails it, until someone says what to try there.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import MetaData, select
from starlette.routing import BaseRoute, Route

from telerad.auth.models import Role
from telerad.auth.users import create_user
from telerad.db import transaction
from telerad.dicom.synthetic import SyntheticStudy
from telerad.testing.workflow import PASSWORD, totp_code
from telerad.web.app import create_app
from tests.integration.page_clients import csrf_of
from tests.integration.workflow_env import Env, env, request_body

__all__ = ["env"]

#: Pages anyone may open: signing in.
PUBLIC = {"/signin"}
#: Pages of one's own account: any signed-in person may use them.
OWN_ACCOUNT = {"/", "/signout", "/signout-everywhere", "/account/second-factor",
               "/account/second-factor/confirm"}
#: Tables a refused request may touch: the audit trail and the sessions' last activity.
BOOKKEEPING = {"audit_events", "user_sessions", "alembic_version", "jobs"}


def _flatten(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, Route]]:
    """(path, route) of every route, inside included routers too."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _flatten(included.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]
        elif isinstance(route, Route):
            yield prefix + route.path, route


def _page_routes(env: Env) -> list[tuple[str, str, dict[str, str]]]:
    """Every route that is not the API, DICOMweb, the docs or a static file: (method, path,
    a well-formed form for it), so that what answers is the right check, not validation."""
    found = []
    for path, route in _flatten(create_app(env.runtime).routes):
        if path.startswith(("/api", "/dicomweb", "/docs", "/redoc", "/openapi", "/healthz")):
            continue
        form = _well_formed(route) if isinstance(route, APIRoute) else {}
        found += [(method, path, form if method == "POST" else {})
                  for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


def _value(annotation: Any) -> str:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return str(next(iter(annotation)).value)
    return "1"


def _well_formed(route: APIRoute) -> dict[str, str]:
    """Every field of the route's form, with a value of its type."""
    form: dict[str, str] = {}
    for param in route.dependant.body_params:
        annotation = param.field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            form |= {name: _value(field.annotation)
                     for name, field in annotation.model_fields.items()}
        else:
            form[param.alias] = _value(annotation)
    return form


def _try(client: httpx.Client, method: str, url: str, form: dict[str, str], csrf: str
         ) -> httpx.Response:
    """One request of a page; a stream of events is read only up to its headers."""
    data = {**form, "csrf_token": csrf} if method == "POST" else None
    with client.stream(method, url, data=data) as answer:
        if answer.headers.get("content-type", "").startswith("text/event-stream"):
            return httpx.Response(answer.status_code, headers=answer.headers)
        answer.read()
        return answer


def _fingerprint(env: Env) -> dict[str, str]:
    """A digest of each table but the bookkeeping: equal before and after means nothing
    changed (and a difference names the table)."""
    metadata = MetaData()
    digests = {}
    with env.runtime.engine.connect() as connection:
        metadata.reflect(connection)
        for name in sorted(set(metadata.tables) - BOOKKEEPING):
            table = metadata.tables[name]
            rows = connection.execute(select(table).order_by(*table.primary_key.columns))
            digests[name] = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
    return digests


@contextmanager
def _browser(env: Env, username: str | None) -> Iterator[httpx.Client]:
    """A cookie-keeping client, signed in as ``username`` (with its code if it needs one)."""
    with httpx.Client(base_url=env.server.base_url, follow_redirects=False,
                      headers={"Accept-Language": "en"}) as client:
        if username is not None:
            _sign_in(client, env, username)
        yield client


def _sign_in(client: httpx.Client, env: Env, username: str) -> None:
    """Sign in from the page; the code is ignored for accounts without a second factor."""
    page = client.get("/signin")
    answer = client.post("/signin", data={"username": username, "password": PASSWORD,
                                          "code": totp_code(username, env.clock.now()),
                                          "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 303, answer.text


@pytest.fixture
def carcassonne_exam(env: Env) -> dict[str, str]:
    """A Carcassonne exam with images, ready to read: what the path parameters point at."""
    exam = env.api("er_carcassonne").ok("POST", "/api/requests",
                                        request_body(env, patient_id="SECRET42"))
    exam = env.api("dr_alice").ok("POST", f"/api/requests/{exam['id']}/decision",
                                  {"decision": "accept", "protocol_code": "CT_HEAD"})
    study = SyntheticStudy(slices=1, rows=16, columns=16, patient_id="SECRET42",
                           patient_name="DUPONT^MARIE", accession_number=exam["accession_number"],
                           series_description="HEAD")
    env.send(study)
    env.advance(minutes=1)
    return {"exam_id": str(exam["id"]), "path": "index.html",
           "site_id": str(env.night.sites["carcassonne"]), "user_id": "1", "team_id": "1",
           "radiologist_id": "1", "contract_id": "1", "shift_id": "1", "device_id": "1",
           "study_instance_uid": study.study_instance_uid}


def _url(path: str, values: dict[str, str]) -> str:
    names = re.findall(r"{(\w+)(?::\w+)?}", path)
    unknown = [n for n in names if n not in values]
    assert not unknown, f"{path}: say what to try for {unknown}"
    return re.sub(r"{(\w+)(?::\w+)?}", lambda m: values[m[1]], path)


def test_strangers_are_sent_to_sign_in(env: Env, carcassonne_exam: dict[str, str]) -> None:
    routes = _page_routes(env)
    assert len(routes) > 15
    before = _fingerprint(env)
    with _browser(env, None) as stranger:
        for method, path, form in routes:
            if path in PUBLIC:
                continue
            answer = _try(stranger, method, _url(path, carcassonne_exam), form, "x")
            signin = answer.status_code == 303 and answer.headers["location"] == "/signin"
            assert signin or answer.status_code in (401, 403), (method, path, answer.status_code)
            assert "DUPONT" not in answer.text
    assert _fingerprint(env) == before


def test_a_person_without_rights_gets_403_everywhere(env: Env,
                                                     carcassonne_exam: dict[str, str]) -> None:
    """A radiologist who has not set up the second factor their role needs holds no
    permission at all: every page but their account's answers 403, and nothing changes."""
    with transaction(env.runtime.sessions) as session:
        create_user(session, username="dr_new", display_name="Dr New", password=PASSWORD,
                    role=Role.RADIOLOGIST, site_ids=[env.night.sites["carcassonne"]],
                    now=env.clock.now())
    with _browser(env, None) as client:
        page = client.get("/signin")
        assert client.post("/signin", data={"username": "dr_new", "password": PASSWORD,
                                            "csrf_token": csrf_of(page.text)}
                           ).status_code == 303
        before = _fingerprint(env)
        csrf = csrf_of(client.get("/").text)
        tried = 0
        for method, path, form in _page_routes(env):
            if path in PUBLIC | OWN_ACCOUNT:
                continue
            answer = _try(client, method, _url(path, carcassonne_exam), form, csrf)
            assert answer.status_code in (403, 404), (method, path, answer.status_code)
            assert "DUPONT" not in answer.text
            tried += 1
        assert tried > 10
    assert _fingerprint(env) == before


@pytest.mark.parametrize("username", ["tech_narbonne", "er_narbonne", "dr_david"])
def test_another_sites_people_see_and_change_nothing(env: Env, username: str,
                                                     carcassonne_exam: dict[str, str]) -> None:
    with _browser(env, username) as client:
        before = _fingerprint(env)  # signing in counts its code: after that, nothing changes
        csrf = csrf_of(client.get("/").text)
        for method, path, form in _page_routes(env):
            if path in PUBLIC | OWN_ACCOUNT:
                continue
            answer = _try(client, method, _url(path, carcassonne_exam), form, csrf)
            assert "SECRET42" not in answer.text, (username, path)
            assert "DUPONT" not in answer.text, (username, path)
            if method == "POST":
                assert answer.status_code in (303, 403, 404), (path, answer.status_code)
    assert _fingerprint(env) == before


#: Which roles may open each group of pages; everyone else gets 403.
PAGE_ROLES = {
    "/worklist": {"dr_alice"},
    "/portal": {"er_carcassonne", "tech_carcassonne", "manager_carcassonne"},
    "/admin": {"coordinator", "admin", "manager_carcassonne"},
}


@pytest.mark.parametrize("page", sorted(PAGE_ROLES))
def test_each_group_of_pages_is_for_its_roles(env: Env, page: str) -> None:
    for username in ("dr_alice", "er_carcassonne", "tech_carcassonne", "coordinator", "admin",
                     "manager_carcassonne"):
        with _browser(env, username) as client:
            status = client.get(page).status_code
        assert status == (200 if username in PAGE_ROLES[page] else 403), (username, status)
