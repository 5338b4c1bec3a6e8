"""Keeping the accounts (an administrator's work): list them, create one, change its role
and sites, deactivate or reactivate it, reset its second factor.

Nothing here commits: the edge opens the transaction and records the audit event. A
deactivated account keeps its row (the audit trail and the exams name it) and every one of
its sessions ends at once. An administrator cannot lock the platform out of itself: the
last active administrator can be neither deactivated nor given another role.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from telerad.auth.models import Role, User, UserSite
from telerad.auth.second_factor import REQUIRED_FOR
from telerad.auth.users import create_user, sign_out_everywhere
from telerad.errors import Conflict, InvalidInput, NotFound


@dataclass(frozen=True, kw_only=True)
class Account:
    """An account as the administration lists it (never its password hash or secret)."""

    id: int
    username: str
    display_name: str
    role: Role
    site_ids: list[int]
    second_factor: bool
    #: Its role needs a second factor and none is set up: it will be asked to enrol.
    must_enrol: bool
    locked: bool
    active: bool


def _account(user: User, site_ids: list[int], now: dt.datetime) -> Account:
    role = Role(user.role)
    return Account(
        id=user.id, username=user.username, display_name=user.display_name, role=role,
        site_ids=site_ids, second_factor=user.totp_enabled_at is not None,
        must_enrol=role in REQUIRED_FOR and user.totp_enabled_at is None,
        locked=user.locked_until is not None and user.locked_until > now, active=user.active)


def _sites_by_user(session: Session) -> dict[int, list[int]]:
    sites: dict[int, list[int]] = {}
    for user_id, site_id in session.execute(
            select(UserSite.user_id, UserSite.site_id).order_by(UserSite.site_id)):
        sites.setdefault(user_id, []).append(site_id)
    return sites


def list_accounts(session: Session, *, now: dt.datetime) -> list[Account]:
    """Every account, by username."""
    sites = _sites_by_user(session)
    return [_account(u, sites.get(u.id, []), now)
            for u in session.scalars(select(User).order_by(User.username))]


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no account #{user_id}")
    return user


def get_account(session: Session, user_id: int, *, now: dt.datetime) -> Account:
    sites = list(session.scalars(select(UserSite.site_id).where(UserSite.user_id == user_id)
                                 .order_by(UserSite.site_id)))
    return _account(_user(session, user_id), sites, now)


def create_account(session: Session, *, username: str, display_name: str, role: Role,
                   password: str, site_ids: list[int], now: dt.datetime) -> User:
    """A new account (the username, password and uniqueness rules are ``create_user``'s);
    a role that needs a second factor sets it up at its first sign-in."""
    return create_user(session, username=username, display_name=display_name, role=role,
                       password=password, site_ids=site_ids, now=now)


def _other_active_admins(session: Session, user_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(User).where(
        User.role == Role.ADMIN, User.active.is_(True), User.id != user_id)) or 0)


def _keep_an_admin(session: Session, user: User, *, by_user_id: int) -> None:
    """Refuse a change that would leave no active administrator, or that an administrator
    makes to their own access (a slip would lock them out mid-task)."""
    if user.id == by_user_id:
        raise Conflict("you cannot take away your own access: ask another administrator")
    if (Role(user.role) == Role.ADMIN and user.active
            and _other_active_admins(session, user.id) == 0):
        raise Conflict("this is the last active administrator")


def change_role_and_sites(session: Session, *, user_id: int, role: Role,
                          site_ids: list[int] | None, by_user_id: int) -> User:
    """Give the account ``role`` and, unless None, exactly ``site_ids``. Takes effect at its
    next request (the scope is computed from the account every time)."""
    user = _user(session, user_id)
    if Role(user.role) != role:
        _keep_an_admin(session, user, by_user_id=by_user_id)
        user.role = role
    if site_ids is not None:
        wanted = set(site_ids)
        current = set(session.scalars(select(UserSite.site_id)
                                      .where(UserSite.user_id == user_id)))
        for row in session.scalars(select(UserSite).where(
                UserSite.user_id == user_id, UserSite.site_id.in_(current - wanted))):
            session.delete(row)
        session.add_all(UserSite(user_id=user_id, site_id=s) for s in sorted(wanted - current))
    session.flush()
    return user


def deactivate(session: Session, *, user_id: int, by_user_id: int, now: dt.datetime) -> int:
    """The account can no longer sign in; its sessions end now. How many sessions ended."""
    user = _user(session, user_id)
    if not user.active:
        raise InvalidInput("this account is already deactivated")
    _keep_an_admin(session, user, by_user_id=by_user_id)
    user.active = False
    ended = sign_out_everywhere(session, user.id, now=now)
    session.flush()
    return ended


def reactivate(session: Session, *, user_id: int) -> User:
    """The account may sign in again (with its password and second factor, as before)."""
    user = _user(session, user_id)
    if user.active:
        raise InvalidInput("this account is already active")
    user.active = True
    user.failed_sign_ins, user.locked_until = 0, None
    session.flush()
    return user


def reset_second_factor(session: Session, *, user_id: int, now: dt.datetime) -> int:
    """Forget the account's authenticator (a lost phone): its sessions end, and a role that
    needs a second factor must set up a new one at its next sign-in before doing anything.
    How many sessions ended."""
    user = _user(session, user_id)
    if user.totp_secret is None and user.totp_enabled_at is None:
        raise InvalidInput("this account has no second factor to reset")
    user.totp_secret, user.totp_enabled_at, user.totp_last_step = None, None, None
    ended = sign_out_everywhere(session, user.id, now=now)
    session.flush()
    return ended
