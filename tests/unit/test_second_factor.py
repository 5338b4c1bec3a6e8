"""TOTP codes (RFC 6238): drift of one step either side, never twice; lock-out counting."""

from __future__ import annotations

import datetime as dt

import pyotp
import pytest

from telerad.auth.models import User
from telerad.auth.second_factor import (
    LOCKOUT,
    MAX_FAILURES,
    AccountLocked,
    SecondFactorRequired,
    begin_enrolment,
    check_code,
    check_not_locked,
    confirm_enrolment,
    record_failure,
)
from telerad.errors import InvalidInput, NotAuthenticated

T0 = dt.datetime(2026, 11, 24, 21, 0, 0, tzinfo=dt.UTC)


def _enrolled() -> tuple[User, pyotp.TOTP]:
    user = User(username="dr_test", failed_sign_ins=0)
    totp = pyotp.TOTP(begin_enrolment(user).secret)
    confirm_enrolment(user, code=totp.at(T0), now=T0)
    return user, totp


def test_not_enrolled_needs_no_code() -> None:
    check_code(User(username="x"), code=None, now=T0)


def test_confirmation_needs_a_right_code() -> None:
    user = User(username="x")
    with pytest.raises(InvalidInput):
        confirm_enrolment(user, code="123456", now=T0)
    begin_enrolment(user)
    with pytest.raises(InvalidInput):
        confirm_enrolment(user, code="12345", now=T0)
    assert user.totp_enabled_at is None


@pytest.mark.parametrize(("offset", "accepted"), [(-60, False), (-30, True), (0, True),
                                                  (30, True), (60, False)])
def test_one_step_of_drift_either_side(offset: int, accepted: bool) -> None:
    user, totp = _enrolled()
    later = T0 + dt.timedelta(minutes=5)
    code = totp.at(later + dt.timedelta(seconds=offset))
    if accepted:
        check_code(user, code=code, now=later)
    else:
        with pytest.raises(NotAuthenticated):
            check_code(user, code=code, now=later)


def test_a_code_is_accepted_once_and_never_an_older_one() -> None:
    user, totp = _enrolled()
    with pytest.raises(NotAuthenticated):  # the confirmation's code is spent
        check_code(user, code=totp.at(T0), now=T0)
    later = T0 + dt.timedelta(seconds=30)
    check_code(user, code=totp.at(later), now=later)
    with pytest.raises(NotAuthenticated):
        check_code(user, code=totp.at(later), now=later)
    with pytest.raises(SecondFactorRequired):
        check_code(user, code=None, now=later)


def test_lock_out_after_max_failures() -> None:
    user = User(username="x", failed_sign_ins=0)
    for _ in range(MAX_FAILURES - 1):
        record_failure(user, now=T0)
    check_not_locked(user, now=T0)
    record_failure(user, now=T0)
    with pytest.raises(AccountLocked):
        check_not_locked(user, now=T0 + LOCKOUT - dt.timedelta(seconds=1))
    check_not_locked(user, now=T0 + LOCKOUT)
