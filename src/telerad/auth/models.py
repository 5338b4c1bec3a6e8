"""Service accounts and their tokens; users, their roles, their sites and their sessions."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from telerad.db import Base


class ServiceToken(Base):
    """A bearer token for an HTTP client; only its SHA-256 is stored."""

    __tablename__ = "service_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: Space-separated scopes, e.g. ``archive:read archive:write``.
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class Role(StrEnum):
    """What a person does in telerad (PRODUCT.md, "Who uses it")."""

    REQUESTING_PHYSICIAN = "requesting_physician"
    """Emergency doctor: files requests, reads reports, acknowledges critical results."""
    TECHNOLOGIST = "technologist"
    """MERM: completes requests, performs the exam, sends the images."""
    RADIOLOGIST = "radiologist"
    """Remote radiologist on duty: validates requests, reads, reports."""
    EXPERT = "expert"
    """Answers second-opinion requests on what is shared with them."""
    SITE_MANAGER = "site_manager"
    """Head of imaging: configures the site, reads its figures."""
    COORDINATOR = "coordinator"
    """Provider side: contracts, coverage, roster, credentials."""
    ADMIN = "admin"
    """Runs the platform."""


class User(Base):
    """A person who signs in; only an Argon2 hash of the password is stored."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime]
    #: TOTP shared secret (RFC 6238, base32) while enrolling or enrolled.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    #: When the second factor was confirmed; None: not required at sign-in yet.
    totp_enabled_at: Mapped[dt.datetime | None]
    #: The last time step a code was accepted for: a code is never accepted twice.
    totp_last_step: Mapped[int | None]
    #: Failed sign-ins in a row, and until when the account is locked after too many.
    failed_sign_ins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None]


class UserSite(Base):
    """A site whose patients the user may see."""

    __tablename__ = "user_sites"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)


class UserSession(Base):
    """A signed-in session: a bearer token (only its SHA-256 stored) until it expires."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    #: The last request seen (to the minute): a session idle too long ends.
    last_seen_at: Mapped[dt.datetime | None]
