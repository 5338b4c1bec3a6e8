"""The HTTP edges' shared dependencies (JSON API, DICOMweb, pages): the runtime, the caller's
address, and the actor behind the request.

A client proves who it is with ``Authorization: Bearer <token>`` (service accounts, API
clients) or, in a browser, with the session cookie set at sign-in. The cookie is HttpOnly
and SameSite=Lax, and its value is the session's random 256-bit token, checked against the
database at every request: nothing in it can be forged or replayed once revoked, so it
needs no signature of its own. A browser sends cookies by itself, so every request that
changes something and is authenticated by the cookie must also carry the session's CSRF
token (``X-CSRF-Token`` header or ``csrf_token`` form field): a page of another origin
cannot read it (OWASP, synchronizer token pattern).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from fastapi import Request

from telerad.auth.second_factor import AccountLocked, SecondFactorRequired
from telerad.auth.service import Actor
from telerad.auth.users import (
    SignedIn,
    authenticate_bearer,
    record_failed_sign_in,
    sign_in,
    touch_session,
)
from telerad.db import transaction
from telerad.errors import Forbidden, NotAuthenticated
from telerad.runtime import Runtime

SESSION_COOKIE = "telerad_session"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def runtime_of(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


def source_of(request: Request) -> str:
    """The client's address, for the audit trail."""
    return request.client.host if request.client else ""


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: derived from its secret, so a page of another origin,
    which cannot read the cookie, cannot compute it."""
    return hmac.new(session_token.encode(), b"telerad csrf", hashlib.sha256).hexdigest()


def check_csrf(session_token: str, presented: str | None) -> None:
    if not presented or not hmac.compare_digest(presented, csrf_token(session_token)):
        raise Forbidden("missing or wrong CSRF token: reload the page and try again")


def credentials_of(request: Request) -> tuple[str, bool]:
    """The token of the request and whether it came from the cookie."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), False
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if cookie:
        return cookie, True
    raise NotAuthenticated("missing bearer token or session cookie: sign in")


#: Sent by a page's own scripts (live updates): such requests do not count as the person
#: being active, so an unattended screen still ends its session.
BACKGROUND_HEADER = "x-telerad-background"


def authenticate(request: Request, token: str, *, activity: bool = True) -> Actor:
    """The actor behind ``token``; a session idle too long has ended. A request the person
    made (``activity``) keeps their session alive; a page's background request does not."""
    activity = activity and BACKGROUND_HEADER not in request.headers
    runtime = runtime_of(request)
    now = runtime.clock.now()
    idle = dt.timedelta(minutes=runtime.settings.session_idle_minutes)
    with transaction(runtime.sessions, readonly=True) as session:
        found = authenticate_bearer(session, token, now=now, idle=idle)
    if found.touch and activity:
        with transaction(runtime.sessions) as session:
            touch_session(session, token, now=now)
    return found.actor


def current_actor(request: Request) -> Actor:
    """FastAPI dependency: the actor behind the bearer token or the session cookie (with
    the CSRF token on a change)."""
    token, from_cookie = credentials_of(request)
    actor = authenticate(request, token)
    if from_cookie and request.method not in _SAFE_METHODS:
        check_csrf(token, request.headers.get(CSRF_HEADER))
    return actor


def sign_in_counting_failures(runtime: Runtime, *, username: str, password: str,
                              code: str | None) -> SignedIn:
    """Sign in; a failure (not a missing second factor, not a locked account) is counted in
    its own transaction, since the failed one rolled back."""
    now = runtime.clock.now()
    try:
        with transaction(runtime.sessions) as session:
            return sign_in(session, username=username, password=password, code=code, now=now)
    except (SecondFactorRequired, AccountLocked):
        raise
    except NotAuthenticated:
        with transaction(runtime.sessions) as session:
            record_failed_sign_in(session, username=username, now=now)
        raise
