"""Browser sessions: cookies, CSRF, session fixation, lock-out, inactivity, sign-out
everywhere — over real HTTP on loopback (httpx keeps the cookies as a browser would)."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from telerad.testing.workflow import totp_code
from tests.integration.page_clients import Browsers, browsers, csrf_of
from tests.integration.workflow_env import Env, env, request_body

__all__ = ["browsers", "env"]
PASSWORD = "correct horse battery"


@pytest.fixture
def browser(browsers: Browsers) -> httpx.Client:
    return browsers(None)


def _sign_in(client: httpx.Client, username: str, password: str = PASSWORD,
             code: str = "") -> httpx.Response:
    page = client.get("/signin")
    return client.post("/signin", data={"username": username, "password": password,
                                        "code": code, "csrf_token": csrf_of(page.text)})


def test_sign_in_sets_a_fresh_httponly_samesite_cookie(env: Env, browser: httpx.Client
                                                       ) -> None:
    assert browser.get("/").headers["location"] == "/signin"
    browser.cookies.set("telerad_session", "trs_planted-by-an-attacker")  # fixation attempt
    assert browser.get("/").status_code == 303  # a planted cookie opens nothing
    answer = _sign_in(browser, "dr_alice", code=totp_code("dr_alice", env.clock.now()))
    assert (answer.status_code, answer.headers["location"]) == (303, "/")
    set_cookie = next(h for h in answer.headers.get_list("set-cookie")
                      if h.startswith("telerad_session="))
    assert "HttpOnly" in set_cookie
    assert "SameSite=lax" in set_cookie
    assert "trs_planted-by-an-attacker" not in set_cookie  # always a new session
    home = browser.get("/")
    assert home.status_code == 200
    assert "Dr Alice Martin" in home.text


def test_csrf_is_required_for_every_change_made_with_the_cookie(env: Env,
                                                                browser: httpx.Client) -> None:
    page = browser.get("/signin")
    refused = browser.post("/signin", data={"username": "er_carcassonne", "password": PASSWORD,
                                            "csrf_token": "forged"})
    assert refused.status_code == 403
    assert "page expired" in refused.text
    assert csrf_of(page.text)  # the real one was on the page
    assert _sign_in(browser, "er_carcassonne").status_code == 303
    csrf = csrf_of(browser.get("/").text)
    # The JSON API with the cookie: a change needs the X-CSRF-Token header.
    body = request_body(env)
    assert browser.post("/api/requests", json=body).status_code == 403
    assert browser.post("/api/requests", json=body,
                        headers={"X-CSRF-Token": "0" * 64}).status_code == 403
    assert browser.post("/api/requests", json=body,
                        headers={"X-CSRF-Token": csrf}).status_code == 201
    assert browser.get("/api/exams").status_code == 200  # reads need no token
    # A form without its token changes nothing.
    assert browser.post("/signout", data={"csrf_token": "nope"}).status_code == 403
    assert browser.get("/").status_code == 200
    assert browser.post("/signout", data={"csrf_token": csrf}).status_code == 303
    assert browser.get("/").status_code == 303


def test_lock_out_through_the_sign_in_page(browser: httpx.Client) -> None:
    for _ in range(5):
        answer = _sign_in(browser, "tech_carcassonne", password="not the password")
        assert answer.status_code == 401
        assert "Wrong username, password or code." in answer.text
    locked = _sign_in(browser, "tech_carcassonne")
    assert (locked.status_code, "account locked" in locked.text) == (401, True)


def test_an_idle_session_ends(env: Env, browser: httpx.Client) -> None:
    assert _sign_in(browser, "dr_alice",
                    code=totp_code("dr_alice", env.clock.now())).status_code == 303
    env.clock.advance(dt.timedelta(minutes=59))
    assert browser.get("/").status_code == 200  # a request keeps it alive
    env.clock.advance(dt.timedelta(minutes=59))
    assert browser.get("/").status_code == 200
    env.clock.advance(dt.timedelta(minutes=61))
    assert browser.get("/").headers["location"] == "/signin"
    assert browser.get("/api/worklist").status_code == 401


def test_sign_out_everywhere_ends_every_session(env: Env, browser: httpx.Client) -> None:
    elsewhere = env.api("dr_alice")  # a bearer session opened on another device
    assert elsewhere.call("GET", "/api/worklist")[0] == 200
    assert _sign_in(browser, "dr_alice",
                    code=totp_code("dr_alice", env.clock.now())).status_code == 303
    csrf = csrf_of(browser.get("/").text)
    assert browser.post("/signout-everywhere", data={"csrf_token": csrf}).status_code == 303
    assert elsewhere.call("GET", "/api/worklist")[0] == 401
    assert browser.get("/").status_code == 303


def test_pages_speak_french_by_default(browsers: Browsers) -> None:
    with browsers(None, language=None) as client:
        page = client.get("/signin")
    assert '<html lang="fr">' in page.text
    assert "Mot de passe" in page.text


def test_pages_keep_to_the_callers_site_and_role(env: Env, browser: httpx.Client) -> None:
    exam = env.api("er_carcassonne").ok("POST", "/api/requests", request_body(env))
    assert _sign_in(browser, "tech_narbonne").status_code == 303
    page = browser.get(f"/exams/{exam['id']}")
    assert page.status_code == 404
    assert "DUPONT" not in page.text
    assert browser.get("/worklist").status_code == 403  # not a radiologist
    assert browser.get("/worklist/events").status_code == 403
    csrf = csrf_of(browser.get("/").text)
    assert browser.post(f"/exams/{exam['id']}/claim",
                        data={"csrf_token": csrf}).status_code == 403


def test_every_page_sends_strangers_to_sign_in(browser: httpx.Client) -> None:
    for path in ("/", "/worklist", "/exams/1"):
        assert browser.get(path).headers["location"] == "/signin", path
    assert browser.get("/worklist/items").status_code == 401
    assert browser.get("/worklist/events").status_code == 401
    for path in ("/signout", "/account/second-factor", "/exams/1/claim"):
        assert browser.post(path, data={"csrf_token": "x"}).status_code in (303, 401), path


def test_live_updates_do_not_keep_an_unattended_session_alive(env: Env,
                                                               browser: httpx.Client) -> None:
    assert _sign_in(browser, "dr_alice",
                    code=totp_code("dr_alice", env.clock.now())).status_code == 303
    background = {"X-Telerad-Background": "1"}
    env.clock.advance(dt.timedelta(minutes=40))
    assert browser.get("/worklist/items", headers=background).status_code == 200
    env.clock.advance(dt.timedelta(minutes=30))  # 70 min since the person last did anything
    assert browser.get("/worklist/items", headers=background).status_code == 401
    assert browser.get("/worklist").headers["location"] == "/signin"
