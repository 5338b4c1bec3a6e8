"""Actors, their scope, and bearer tokens.

An :class:`Actor` is who acts; its :class:`Scope` says what patient data it may touch.
Service accounts (machines: a viewer proxy, a RIS) have archive-wide scopes; people have
their role's permissions over their sites (:mod:`telerad.auth.users`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.auth.models import ServiceToken
from telerad.errors import Forbidden, InvalidInput, NotAuthenticated

TOKEN_PREFIX = "trd_"  # noqa: S105 - a recognisable prefix, not a secret


class Permission(StrEnum):
    """What a scope may allow."""

    ARCHIVE_READ = "archive:read"
    """Find and retrieve studies (QIDO-RS, WADO-RS, study API)."""
    ARCHIVE_WRITE = "archive:write"
    """Send instances (STOW-RS)."""
    REQUESTS_FILE = "requests:file"
    """File and cancel imaging requests."""
    REQUESTS_DECIDE = "requests:decide"
    """Justify requests: accept with a protocol, change the exam, refuse."""
    EXAMS_READ = "exams:read"
    """See exams, their state, clocks and timeline."""
    EXAMS_ACQUIRE = "exams:acquire"
    """Mark an acquisition done; reconcile unmatched studies."""
    EXAMS_CLAIM = "exams:claim"
    """See one's worklist; claim and release exams for reading."""
    EXAMS_COORDINATE = "exams:coordinate"
    """See escalations and explain routing."""
    ROSTER_MANAGE = "roster:manage"
    """Keep contracts, teams, radiologists, shifts and protocols."""
    SITES_READ = "sites:read"
    """See the configuration of one's own sites (devices, contracts), without changing it."""
    USERS_MANAGE = "users:manage"
    """Create accounts, change their role and sites, deactivate them, reset a second factor."""
    AUDIT_READ = "audit:read"
    """Search the audit trail and see whether its chain holds (itself an audited read)."""
    REPORTS_WRITE = "reports:write"
    """Write, release and sign the reports of the exams one reads; record critical calls."""
    CRITICAL_ACKNOWLEDGE = "critical:acknowledge"
    """Acknowledge, for the hospital, a critical finding that was phoned to it."""


@dataclass(frozen=True, kw_only=True)
class Scope:
    """What an actor may do; every query of patient data takes one."""

    permissions: frozenset[Permission]
    #: Sites whose patients the actor may see; None means every site (service accounts).
    site_ids: frozenset[int] | None = None

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise Forbidden(f"this account lacks the {permission} permission")

    def require_any(self) -> None:
        """For reference data (sites, protocols): any permission at all, so that an account
        that may do nothing yet (a second factor to set up) sees nothing."""
        if not self.permissions:
            raise Forbidden("this account may do nothing yet: set up its second factor")


@dataclass(frozen=True, kw_only=True)
class Actor:
    """Who is acting, for scope checks and the audit trail."""

    kind: str
    id: int
    name: str
    scope: Scope


def digest(token: str) -> str:
    """What is stored of a bearer token: its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, *, name: str, now: dt.datetime,
    permissions: frozenset[Permission] = frozenset(Permission),
) -> tuple[ServiceToken, str]:
    """A new service account token; the clear token is returned once and never stored."""
    if not name.strip():
        raise InvalidInput("a token needs a name")
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ServiceToken(
        name=name.strip(),
        token_sha256=digest(clear),
        scopes=" ".join(sorted(permissions)),
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row, clear


def authenticate_token(session: Session, token: str) -> Actor:
    """The actor behind a bearer token, or NotAuthenticated."""
    row = session.scalar(
        select(ServiceToken).where(
            ServiceToken.token_sha256 == digest(token), ServiceToken.revoked_at.is_(None)
        )
    )
    if row is None:
        raise NotAuthenticated("unknown or revoked token")
    permissions = frozenset(Permission(p) for p in row.scopes.split())
    return Actor(kind="service", id=row.id, name=row.name, scope=Scope(permissions=permissions))
