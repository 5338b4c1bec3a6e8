"""Signing in with a second factor (TOTP, RFC 6238), and the lock-out after repeated
failures, through POST /api/login on a real database."""

from __future__ import annotations

import datetime as dt

import pyotp

from tests.integration.workflow_env import Env, env

__all__ = ["env"]

PASSWORD = "correct horse battery"


def _login(env: Env, username: str, password: str = PASSWORD, code: str | None = None
           ) -> tuple[int, dict[str, object]]:
    body: dict[str, object] = {"username": username, "password": password}
    if code is not None:
        body["code"] = code
    return env.api().call("POST", "/api/login", body)


def test_enrol_then_sign_in_with_a_code_used_once(env: Env) -> None:
    alice = env.api("dr_alice")
    enrolment = alice.ok("POST", "/api/account/second-factor")
    assert enrolment["uri"].startswith("otpauth://totp/telerad:dr_alice?secret=")
    totp = pyotp.TOTP(enrolment["secret"])
    # Not required until confirmed; a wrong code does not confirm it.
    assert _login(env, "dr_alice")[0] == 200
    status, answer = alice.call("POST", "/api/account/second-factor/confirm", {"code": "000000"})
    assert status == 400
    assert alice.call("POST", "/api/account/second-factor/confirm",
                      {"code": totp.at(env.clock.now())})[0] == 204
    status, answer = _login(env, "dr_alice")
    assert (status, answer["error"]) == (401, "second_factor_required")
    env.clock.advance(dt.timedelta(seconds=30))
    code = totp.at(env.clock.now())
    assert _login(env, "dr_alice", code=code)[0] == 200
    assert _login(env, "dr_alice", code=code)[0] == 401  # a code is accepted once
    assert _login(env, "dr_alice", code="123 456")[0] == 401
    env.clock.advance(dt.timedelta(seconds=30))
    assert _login(env, "dr_alice", code=totp.at(env.clock.now()))[0] == 200
    # A service account has no second factor to enrol.
    assert env.api().call("POST", "/api/account/second-factor")[0] == 401


def test_five_failures_lock_the_account_for_fifteen_minutes(env: Env) -> None:
    for _ in range(4):
        assert _login(env, "tech_carcassonne", password="wrong password!")[0] == 401
    assert _login(env, "tech_carcassonne")[0] == 200  # a success resets the count
    for _ in range(5):
        assert _login(env, "tech_carcassonne", password="wrong password!")[0] == 401
    status, answer = _login(env, "tech_carcassonne")
    assert (status, answer["error"]) == (401, "account_locked")  # even with the password
    env.clock.advance(dt.timedelta(minutes=15))
    assert _login(env, "tech_carcassonne")[0] == 200
    # Unknown usernames answer the same and lock nothing.
    status, answer = _login(env, "nobody")
    assert (status, answer["error"]) == (401, "not_authenticated")
