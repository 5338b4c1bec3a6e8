"""People: accounts with a role and sites, Argon2 passwords, and sign-in sessions.

A user's Scope is computed here and only here: the sites they are bound to, and the
permissions of their role. Signing in checks the second factor of an enrolled account and
counts failures toward a lock-out (:mod:`telerad.auth.second_factor`).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from telerad.auth.models import Role, User, UserSession, UserSite
from telerad.auth.second_factor import (
    check_code,
    check_not_locked,
    confirm_enrolment,
    enrolment_required,
    record_failure,
)
from telerad.auth.service import Actor, Permission, Scope, authenticate_token, digest
from telerad.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated

SESSION_PREFIX = "trs_"
#: How long a session lasts without signing in again (a night shift and then some).
SESSION_LIFETIME = dt.timedelta(hours=14)
MIN_PASSWORD_LENGTH = 12
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,99}$")
_HASHER = PasswordHasher()
# Verified when the username is unknown, so that the answer takes as long either way.
_DUMMY_HASH = _HASHER.hash("telerad: no such user")

_P = Permission
#: What each role may do. Which patients it applies to is the user's sites.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.REQUESTING_PHYSICIAN: frozenset({_P.ARCHIVE_READ, _P.REQUESTS_FILE, _P.EXAMS_READ,
                                          _P.CRITICAL_ACKNOWLEDGE}),
    Role.TECHNOLOGIST: frozenset({_P.ARCHIVE_READ, _P.ARCHIVE_WRITE, _P.REQUESTS_FILE,
                                  _P.EXAMS_READ, _P.EXAMS_ACQUIRE}),
    Role.RADIOLOGIST: frozenset({_P.ARCHIVE_READ, _P.REQUESTS_DECIDE, _P.EXAMS_READ,
                                 _P.EXAMS_CLAIM, _P.REPORTS_WRITE}),
    Role.EXPERT: frozenset({_P.ARCHIVE_READ, _P.EXAMS_READ}),
    Role.SITE_MANAGER: frozenset({_P.ARCHIVE_READ, _P.EXAMS_READ, _P.EXAMS_ACQUIRE,
                                  _P.SITES_READ, _P.CRITICAL_ACKNOWLEDGE}),
    Role.COORDINATOR: frozenset({_P.EXAMS_READ, _P.EXAMS_COORDINATE, _P.ROSTER_MANAGE}),
    Role.ADMIN: frozenset({_P.ROSTER_MANAGE, _P.USERS_MANAGE, _P.AUDIT_READ}),
}


@dataclass(frozen=True, kw_only=True)
class SignedIn:
    """A new session: the bearer token is given once and never stored."""

    token: str
    expires_at: dt.datetime
    actor: Actor
    role: Role
    #: The role needs a second factor not set up yet: the session may only set it up.
    enrolment_required: bool


def hash_password(password: str) -> str:
    """The Argon2 hash stored for ``password`` (about 0.1 s of work, on purpose)."""
    return _HASHER.hash(password)


def create_user(
    session: Session, *, username: str, display_name: str, role: Role, password: str,
    site_ids: list[int], now: dt.datetime, password_hash: str | None = None,
) -> User:
    """A new account bound to ``site_ids``. ``password_hash``: :func:`hash_password` of
    ``password`` made once for many accounts created together with the same first password
    (a seeded demo or test world), instead of 0.1 s of hashing for each."""
    username = username.strip().lower()
    if not _USERNAME.match(username):
        raise InvalidInput("a username is 2 to 100 of a-z, 0-9, '.', '_', '-'")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"a user named {username!r} already exists")
    user = User(username=username, display_name=display_name.strip() or username, role=role,
                password_hash=password_hash or hash_password(password), active=True,
                created_at=now)
    session.add(user)
    session.flush()
    for site_id in sorted(set(site_ids)):
        session.add(UserSite(user_id=user.id, site_id=site_id))
    session.flush()
    return user


def actor_for(session: Session, user: User) -> Actor:
    """The user as an actor: their role's permissions over their sites' patients. A role
    that needs a second factor has no permission until one is enrolled: its first session
    can only set one up."""
    site_ids = frozenset(
        session.scalars(select(UserSite.site_id).where(UserSite.user_id == user.id))
    )
    permissions = (frozenset() if enrolment_required(user)
                   else ROLE_PERMISSIONS[Role(user.role)])
    return Actor(kind="user", id=user.id, name=user.username,
                 scope=Scope(permissions=permissions, site_ids=site_ids))


def _user_named(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username.strip().lower()))


def sign_in(session: Session, *, username: str, password: str, now: dt.datetime,
            code: str | None = None) -> SignedIn:
    """Check the password (and the second factor of an enrolled account) and open a
    session. NotAuthenticated says nothing more; the edge then calls
    :func:`record_failed_sign_in`, whose count locks the account."""
    user = _user_named(session, username)
    if user is not None:
        check_not_locked(user, now=now)
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError) as exc:
        raise NotAuthenticated("unknown username or wrong password") from exc
    if user is None or not user.active:
        raise NotAuthenticated("unknown username or wrong password")
    check_code(user, code=code, now=now)
    user.failed_sign_ins = 0
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    return open_session(session, user, now=now)


def open_session(session: Session, user: User, *, now: dt.datetime) -> SignedIn:
    """A new session of ``user``, whose credentials were checked (by :func:`sign_in`)."""
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    expires_at = now + SESSION_LIFETIME
    session.add(UserSession(user_id=user.id, token_sha256=digest(token), created_at=now,
                            expires_at=expires_at))
    session.flush()
    return SignedIn(token=token, expires_at=expires_at, actor=actor_for(session, user),
                    role=Role(user.role), enrolment_required=enrolment_required(user))


def record_failed_sign_in(session: Session, *, username: str, now: dt.datetime) -> None:
    """Count a failed sign-in (in its own transaction: the failed one rolled back)."""
    user = _user_named(session, username)
    if user is not None:
        record_failure(user, now=now)


def user_of(session: Session, actor: Actor) -> User:
    """The account of a signed-in person (service accounts have none)."""
    user = session.get(User, actor.id) if actor.kind == "user" else None
    if user is None:
        raise Forbidden("only a person signed in as themselves may do this")
    return user


#: A session's last request is written at most this often (not at every DICOMweb frame).
TOUCH_EVERY = dt.timedelta(minutes=1)


@dataclass(frozen=True, kw_only=True)
class Authenticated:
    """The actor behind a token; ``touch``: the session's last request should be written."""

    actor: Actor
    touch: bool = False


def authenticate_session(session: Session, token: str, *, now: dt.datetime,
                         idle: dt.timedelta | None = None) -> Authenticated:
    """The actor behind a session token, while the session lasts, has not been idle longer
    than ``idle`` and the user is active."""
    row = session.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.token_sha256 == digest(token), UserSession.revoked_at.is_(None))
    ).first()
    if row is None or row.UserSession.expires_at <= now or not row.User.active:
        raise NotAuthenticated("session unknown, expired or revoked: sign in again")
    last_seen = row.UserSession.last_seen_at or row.UserSession.created_at
    if idle is not None and now - last_seen > idle:
        raise NotAuthenticated("session ended after inactivity: sign in again")
    return Authenticated(actor=actor_for(session, row.User), touch=now - last_seen >= TOUCH_EVERY)


def touch_session(session: Session, token: str, *, now: dt.datetime) -> None:
    """Write the session's last request (see TOUCH_EVERY)."""
    session.execute(update(UserSession).where(UserSession.token_sha256 == digest(token))
                    .values(last_seen_at=now))


def sign_out(session: Session, token: str, *, now: dt.datetime) -> None:
    """End this session."""
    session.execute(update(UserSession).where(UserSession.token_sha256 == digest(token),
                                              UserSession.revoked_at.is_(None))
                    .values(revoked_at=now))


def sign_out_everywhere(session: Session, user_id: int, *, now: dt.datetime) -> int:
    """End every session of the user (a lost phone, a shared screen); how many ended."""
    result = session.execute(update(UserSession).where(UserSession.user_id == user_id,
                                                       UserSession.revoked_at.is_(None))
                             .values(revoked_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


def confirm_second_factor(session: Session, user: User, *, code: str, token: str,
                          now: dt.datetime) -> None:
    """Confirm the user's new authenticator app from the session ``token``; every other
    session, opened with the password alone, ends."""
    confirm_enrolment(user, code=code, now=now)
    sign_out_others(session, user.id, token, now=now)


def sign_out_others(session: Session, user_id: int, keep: str, *, now: dt.datetime) -> int:
    """End every session of the user but ``keep`` (after setting up a second factor, the
    sessions opened with the password alone end); how many ended."""
    result = session.execute(update(UserSession).where(
        UserSession.user_id == user_id, UserSession.revoked_at.is_(None),
        UserSession.token_sha256 != digest(keep)).values(revoked_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


def authenticate_bearer(session: Session, token: str, *, now: dt.datetime,
                        idle: dt.timedelta | None = None) -> Authenticated:
    """The actor behind any bearer token: a person's session or a service account's token."""
    if token.startswith(SESSION_PREFIX):
        return authenticate_session(session, token, now=now, idle=idle)
    return Authenticated(actor=authenticate_token(session, token))
