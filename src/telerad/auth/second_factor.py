"""The second factor: time-based one-time passwords (TOTP, RFC 6238) from an authenticator
app, and the lock-out after repeated failed sign-ins.

Enrolment gives the user a secret (and its ``otpauth://`` URI for a QR code); it counts only
once a first code from their app is confirmed. A code is accepted for the current 30-second
step or one step either side (clock drift, RFC 6238 §5.2), and never twice (§5.2: "the
verifier MUST NOT accept the second attempt of the OTP after the successful validation").
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass

import pyotp

from telerad.auth.models import Role, User
from telerad.errors import InvalidInput, NotAuthenticated

ISSUER = "telerad"
#: Roles that see patients of many sites or configure everything: a password is not enough.
#: Until they enrol, they may only open their account page (see :func:`enrolment_required`).
REQUIRED_FOR = frozenset({Role.RADIOLOGIST, Role.EXPERT, Role.ADMIN})
STEP_SECONDS = 30
#: Failed sign-ins in a row before the account locks, and for how long.
MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)


class SecondFactorRequired(NotAuthenticated):
    """The password was right; the account also needs a code from its authenticator app."""

    code = "second_factor_required"


class AccountLocked(NotAuthenticated):
    """Too many failed sign-ins in a row: the account waits before trying again."""

    code = "account_locked"


@dataclass(frozen=True, kw_only=True)
class Enrolment:
    """What the user's authenticator app needs: shown once, as text and as a QR code."""

    secret: str
    uri: str


def begin_enrolment(user: User) -> Enrolment:
    """A new secret for ``user`` (replacing any earlier one, which stops working once this
    one is confirmed)."""
    secret = pyotp.random_base32()
    user.totp_secret = secret
    user.totp_enabled_at = None
    user.totp_last_step = None
    return Enrolment(secret=secret, uri=totp_uri(secret, user.username))


def enrolment_required(user: User) -> bool:
    """Whether the user must set up an authenticator app before doing anything else."""
    return Role(user.role) in REQUIRED_FOR and user.totp_enabled_at is None


def enrol_secret(user: User, *, secret: str, now: dt.datetime) -> None:
    """Enrol a secret already handed over (an example or test account, whose secret is
    printed): signing in needs its codes from now on."""
    pyotp.TOTP(secret).now()  # refuses a secret that is not base32
    user.totp_secret, user.totp_enabled_at, user.totp_last_step = secret, now, None


def totp_uri(secret: str, username: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def _accepted_step(secret: str, code: str, now: dt.datetime, last_step: int | None
                   ) -> int | None:
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    step = int(now.timestamp()) // STEP_SECONDS
    for candidate in (step - 1, step, step + 1):
        if (last_step is None or candidate > last_step) and hmac.compare_digest(
                totp.at(candidate * STEP_SECONDS), code):
            return candidate
    return None


def confirm_enrolment(user: User, *, code: str, now: dt.datetime) -> None:
    """The first code from the app: from now on, signing in needs a code."""
    if user.totp_secret is None:
        raise InvalidInput("start the enrolment first")
    step = _accepted_step(user.totp_secret, code, now, None)
    if step is None:
        raise InvalidInput("this code does not match: check the app's clock and try again")
    user.totp_enabled_at, user.totp_last_step = now, step


def check_code(user: User, *, code: str | None, now: dt.datetime) -> None:
    """At sign-in, for an enrolled user: the current code, once."""
    if user.totp_enabled_at is None or user.totp_secret is None:
        return
    if not code:
        raise SecondFactorRequired("enter the code of your authenticator app")
    step = _accepted_step(user.totp_secret, code, now, user.totp_last_step)
    if step is None:
        raise NotAuthenticated("unknown username, wrong password or wrong code")
    user.totp_last_step = step


def check_not_locked(user: User, *, now: dt.datetime) -> None:
    if user.locked_until is not None and user.locked_until > now:
        raise AccountLocked("too many failed sign-ins: try again after "
                            f"{user.locked_until:%H:%M} UTC")


def record_failure(user: User, *, now: dt.datetime) -> None:
    """One more failed sign-in; the MAX_FAILURES-th in a row locks the account."""
    user.failed_sign_ins += 1
    if user.failed_sign_ins >= MAX_FAILURES:
        user.locked_until = now + LOCKOUT
        user.failed_sign_ins = 0
