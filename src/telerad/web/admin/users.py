"""Administration: users and roles (create an account, change its role and sites,
deactivate, reactivate, reset its second factor)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.audit.service import Action
from telerad.auth.accounts import (
    change_role_and_sites,
    create_account,
    deactivate,
    get_account,
    list_accounts,
    reactivate,
    reset_second_factor,
)
from telerad.auth.models import Role
from telerad.errors import Conflict, InvalidInput
from telerad.httpauth import runtime_of
from telerad.web.admin.common import (
    USERS,
    Many,
    Signed,
    Text,
    changing,
    failure,
    page,
    reading,
    redirect,
    site_ids_of,
    visible_sites,
)
from telerad.web.pages import form_actor, page_actor
from telerad.workflow.roster.credentials import radiologist_of_account
from telerad.workflow.sites.models import Site

router = APIRouter(include_in_schema=False)


def site_names(session: Session) -> dict[int, str]:
    return {s.id: s.name for s in session.scalars(select(Site))}


def users_page(request: Request, who: Signed, **context: Any) -> HTMLResponse:
    now = runtime_of(request).clock.now()
    with reading(request) as session:
        return page(request, "admin_users.html", "admin_users", who,
                    accounts=list_accounts(session, now=now), site_names=site_names(session),
                    sites=visible_sites(session, who[0]), roles=list(Role), **context)


@router.get("/admin/users", response_class=HTMLResponse)
def users(request: Request, notice: str = "") -> Response:
    return users_page(request, page_actor(request, USERS), notice=notice)


def role_of(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput("choose a role") from None


class AccountFields(BaseModel):
    csrf_token: str = ""
    username: str = ""
    display_name: str = ""
    role: str = ""
    password: str = ""
    site_ids: list[str] = []


@router.post("/admin/users", response_class=HTMLResponse)
def create_account_form(request: Request,
                        fields: Annotated[AccountFields, Form()]) -> Response:
    who = form_actor(request, fields.csrf_token, USERS)
    try:
        with changing(request, who[0], Action.CREATE, "account") as (session, now, detail):
            chosen = site_ids_of(session, fields.site_ids)
            user = create_account(session, username=fields.username,
                                  display_name=fields.display_name, role=role_of(fields.role),
                                  password=fields.password, site_ids=chosen, now=now)
            detail.update(user_id=user.id, username=user.username, role=user.role,
                          site_ids=chosen)
    except (InvalidInput, Conflict) as exc:
        return users_page(request, who, status_code=exc.http_status,
                          errors={"account": failure(request, "admin_user_failed", exc)},
                          form=fields.model_dump(exclude={"csrf_token", "password"}))
    return redirect(f"/admin/users/{user.id}", "admin_user_added")


def user_page(request: Request, who: Signed, user_id: int, **context: Any) -> HTMLResponse:
    now = runtime_of(request).clock.now()
    with reading(request) as session:
        account = get_account(session, user_id, now=now)
        linked = radiologist_of_account(session, user_id)
        form = context.pop("form", None) or {
            "role": account.role.value, "site_ids": [str(s) for s in account.site_ids]}
        return page(request, "admin_user.html", "admin_user", who, account=account,
                    linked=linked, site_names=site_names(session), roles=list(Role),
                    sites=visible_sites(session, who[0]), form=form,
                    is_self=user_id == who[0].id, **context)


@router.get("/admin/users/{user_id}", response_class=HTMLResponse)
def user_detail(request: Request, user_id: int, notice: str = "") -> Response:
    return user_page(request, page_actor(request, USERS), user_id, notice=notice)


@router.post("/admin/users/{user_id}", response_class=HTMLResponse)
def save_account(request: Request, user_id: int, csrf_token: Text = "", role: Text = "",
                 site_ids: Many = None) -> Response:
    who = form_actor(request, csrf_token, USERS)
    try:
        with changing(request, who[0], Action.UPDATE, "account") as (session, _now, detail):
            # A radiologist's sites follow their credentials (the roster keeps them).
            linked = radiologist_of_account(session, user_id) is not None
            chosen = None if linked else site_ids_of(session, site_ids)
            user = change_role_and_sites(session, user_id=user_id, role=role_of(role),
                                         site_ids=chosen, by_user_id=who[0].id)
            detail.update(user_id=user.id, role=user.role, site_ids=chosen)
    except (InvalidInput, Conflict) as exc:
        return user_page(request, who, user_id, status_code=exc.http_status,
                         errors={"account": failure(request, "admin_user_failed", exc)},
                         form={"role": role, "site_ids": site_ids or []})
    return redirect(f"/admin/users/{user_id}", "admin_user_saved")


def account_action(request: Request, user_id: int, presented: str, *, what: str,
                   notice: str, act: Callable[[Session, int, dt.datetime], object]) -> Response:
    """Deactivate, reactivate, reset the second factor: one button, one audited change."""
    who = form_actor(request, presented, USERS)
    try:
        with changing(request, who[0], Action.UPDATE, what) as (session, now, detail):
            act(session, who[0].id, now)
            detail.update(user_id=user_id)
    except (InvalidInput, Conflict) as exc:
        return user_page(request, who, user_id, status_code=exc.http_status,
                         errors={"state": failure(request, "admin_user_failed", exc)})
    return redirect(f"/admin/users/{user_id}", notice)


@router.post("/admin/users/{user_id}/deactivate", response_class=HTMLResponse)
def deactivate_account(request: Request, user_id: int, csrf_token: Text = "") -> Response:
    return account_action(request, user_id, csrf_token, what="account_deactivated",
                          notice="admin_user_deactivated", act=lambda session, by, now:
                          deactivate(session, user_id=user_id, by_user_id=by, now=now))


@router.post("/admin/users/{user_id}/reactivate", response_class=HTMLResponse)
def reactivate_account(request: Request, user_id: int, csrf_token: Text = "") -> Response:
    return account_action(request, user_id, csrf_token, what="account_reactivated",
                          notice="admin_user_reactivated", act=lambda session, _by, _now:
                          reactivate(session, user_id=user_id))


@router.post("/admin/users/{user_id}/reset-second-factor", response_class=HTMLResponse)
def reset_account_second_factor(request: Request, user_id: int,
                                csrf_token: Text = "") -> Response:
    return account_action(request, user_id, csrf_token, what="second_factor_reset",
                          notice="admin_second_factor_reset", act=lambda session, _by, now:
                          reset_second_factor(session, user_id=user_id, now=now))
