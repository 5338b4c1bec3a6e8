"""The pages (server-rendered, Jinja2): sign-in with the second factor, the account page,
sign-out here or everywhere. French by default, English for English browsers.

A page that changes something is a POST form carrying the CSRF token; signing in, before
any session, is protected by a one-time token in a short-lived cookie (double submit), and
always opens a new session (a cookie planted before sign-in is never adopted: no session
fixation).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from telerad.auth.models import Role, UserSite
from telerad.auth.second_factor import (
    AccountLocked,
    SecondFactorRequired,
    begin_enrolment,
    enrolment_required,
    totp_uri,
)
from telerad.auth.service import Actor, Permission
from telerad.auth.users import (
    SESSION_LIFETIME,
    confirm_second_factor,
    sign_out,
    sign_out_everywhere,
    user_of,
)
from telerad.db import transaction
from telerad.errors import Forbidden, InvalidInput, NotAuthenticated, TeleradError
from telerad.httpauth import (
    SESSION_COOKIE,
    authenticate,
    check_csrf,
    credentials_of,
    csrf_token,
    runtime_of,
    sign_in_counting_failures,
)
from telerad.web.i18n import TEXTS, language
from telerad.workflow.sites.models import Site

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def person_name(value: str) -> str:
    """A DICOM Person Name (PS3.5 §6.2: FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX) as people write
    it: "DUPONT Marie"."""
    family, _, rest = (value or "").partition("^")
    given = " ".join(part for part in rest.split("^") if part)
    return " ".join(p for p in (family.strip(), given.strip().title()) if p) or "—"


templates.env.filters["person"] = person_name
SIGNIN_COOKIE = "telerad_signin"
Field = Annotated[str, Form()]


#: The header's links: (path, text key, permissions of which any one shows it).
NAVIGATION: tuple[tuple[str, str, frozenset[Permission]], ...] = (
    ("/worklist", "worklist", frozenset({Permission.EXAMS_CLAIM})),
    ("/portal", "portal", frozenset({Permission.REQUESTS_FILE, Permission.EXAMS_ACQUIRE})),
    ("/admin", "administration", frozenset({
        Permission.ROSTER_MANAGE, Permission.EXAMS_COORDINATE, Permission.SITES_READ,
        Permission.USERS_MANAGE, Permission.AUDIT_READ})),
)


def navigation(actor: Actor | None) -> list[tuple[str, str]]:
    """The pages this actor may open, for the header."""
    if actor is None:
        return []
    return [("/", "home")] + [(path, key) for path, key, any_of in NAVIGATION
                              if any_of & actor.scope.permissions]


def render(request: Request, name: str, title_key: str, *, status_code: int = 200,
           actor: Actor | None = None, **context: Any) -> HTMLResponse:
    """A page in the browser's language; with ``actor``, the header links to their pages."""
    lang = language(request)
    t = TEXTS[lang]
    return templates.TemplateResponse(
        request, name, {"lang": lang, "t": t, "title": t[title_key], "title_key": title_key,
                        "actor": actor,
                        "nav": navigation(actor), "path": request.url.path, **context},
        status_code=status_code)


#: The title of the error page for each status a page may answer.
ERROR_TITLES = {401: "error_401", 403: "error_403", 404: "error_404", 409: "error_409"}


class SignInAgain(NotAuthenticated):
    """A page's fragment or event stream, fetched by its script, without a session: 401
    (the script then opens the sign-in page), not a redirect the script would follow."""


class PageExpired(Forbidden):
    """A form without its session's CSRF token (forged, or left open across sign-ins)."""

    code = "csrf"


def error_page(request: Request, exc: TeleradError) -> Response:
    """A refused or failed page, in the person's language (translated once, at the edge:
    the app's error handler). Signed out: to the sign-in page."""
    if isinstance(exc, SignInAgain):  # a page's script: it goes to sign in by itself
        return HTMLResponse(TEXTS[language(request)]["error_401_explained"], status_code=401)
    if isinstance(exc, NotAuthenticated):
        return to_signin()
    actor = signed_in(request)
    title = ("error_csrf" if isinstance(exc, PageExpired)
             else ERROR_TITLES.get(exc.http_status, "error_other"))
    return render(request, "error.html", title, status_code=exc.http_status,
                  actor=actor[0] if actor else None, detail=exc.message)


def page_actor(request: Request, any_of: frozenset[Permission], *, fragment: bool = False
               ) -> tuple[Actor, str]:
    """The signed-in person and their session token, holding one of ``any_of``: else
    NotAuthenticated (to sign in; SignInAgain for a ``fragment``) or Forbidden (the error
    page)."""
    found = signed_in(request)
    if found is None:
        raise SignInAgain("sign in again") if fragment else NotAuthenticated("sign in")
    if not any_of & found[0].scope.permissions:
        raise Forbidden("this account may not open this page")
    return found


def form_actor(request: Request, presented: str, any_of: frozenset[Permission]
               ) -> tuple[Actor, str]:
    """As :func:`page_actor`, for a form: it must carry the session's CSRF token."""
    found = page_actor(request, any_of)
    try:
        check_csrf(found[1], presented)
    except Forbidden as exc:
        raise PageExpired(exc.message) from exc
    return found


def _signin_page(request: Request, *, error_key: str = "", username: str = "",
                 status_code: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(request, "signin.html", "sign_in", csrf=token, username=username,
                       error=TEXTS[language(request)].get(error_key, ""),
                       status_code=status_code)
    response.set_cookie(SIGNIN_COOKIE, token, max_age=900, httponly=True, samesite="strict",
                        secure=runtime_of(request).settings.secure_cookies, path="/signin")
    return response


def to_signin() -> RedirectResponse:
    return RedirectResponse("/signin", status_code=303)


def signed_in(request: Request) -> tuple[Actor, str] | None:
    try:
        token, _from_cookie = credentials_of(request)
        return authenticate(request, token), token
    except NotAuthenticated:
        return None


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request) -> Response:
    return _signin_page(request)


@router.post("/signin")
def signin(request: Request, username: Field, password: Field, csrf_token: Field,
           code: Annotated[str, Form()] = "") -> Response:
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, csrf_token):
        return _signin_page(request, error_key="csrf", username=username, status_code=403)
    runtime = runtime_of(request)
    try:
        signed = sign_in_counting_failures(runtime, username=username, password=password,
                                           code=code or None)
    except TeleradError as exc:
        key = ("second_factor_required" if isinstance(exc, SecondFactorRequired)
               else "account_locked" if isinstance(exc, AccountLocked) else "wrong")
        return _signin_page(request, error_key=key, username=username, status_code=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SESSION_COOKIE, signed.token, httponly=True, samesite="lax",
                        secure=runtime.settings.secure_cookies, path="/",
                        max_age=int(SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(SIGNIN_COOKIE, path="/signin")
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, notice: str = "") -> Response:
    signed = signed_in(request)
    if signed is None:
        return to_signin()
    actor, token = signed
    with transaction(runtime_of(request).sessions, readonly=True) as session:
        user = user_of(session, actor)
        sites = list(session.scalars(select(Site.name).join(UserSite, UserSite.site_id == Site.id)
                                     .where(UserSite.user_id == user.id).order_by(Site.name)))
        context: dict[str, Any] = {"username": user.username, "display_name": user.display_name,
                   "role": Role(user.role).value, "totp_on": user.totp_enabled_at is not None,
                   "must_enrol": enrolment_required(user)}
    t = TEXTS[language(request)]
    return render(request, "home.html", "signed_in_as", sites=sites, csrf=csrf_token(token),
                  actor=actor,
                   notice=t.get(notice, ""), **context)


def form_session(request: Request, presented: str) -> tuple[Actor, str] | None:
    signed = signed_in(request)
    if signed is not None:
        check_csrf(signed[1], presented)
    return signed


@router.post("/signout")
def signout(request: Request, csrf_token: Field) -> Response:
    return _sign_out(request, csrf_token, everywhere=False)


@router.post("/signout-everywhere")
def signout_everywhere(request: Request, csrf_token: Field) -> Response:
    return _sign_out(request, csrf_token, everywhere=True)


def _sign_out(request: Request, presented: str, *, everywhere: bool) -> Response:
    """End this session, or every session of the user (a lost phone, a shared screen)."""
    signed = form_session(request, presented)
    if signed is not None:
        runtime = runtime_of(request)
        with transaction(runtime.sessions) as session:
            if everywhere:
                sign_out_everywhere(session, user_of(session, signed[0]).id,
                                    now=runtime.clock.now())
            else:
                sign_out(session, signed[1], now=runtime.clock.now())
    response = to_signin()
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _enrolment_page(request: Request, *, secret: str, uri: str, csrf: str, error: str = "",
                    status_code: int = 200) -> HTMLResponse:
    qr = segno.make(uri, error="m").svg_inline(scale=4, dark="#111")
    return render(request, "second_factor.html", "second_factor", secret=secret, qr_svg=qr,
                   csrf=csrf, error=error, status_code=status_code)


@router.post("/account/second-factor", response_class=HTMLResponse)
def enrol(request: Request, csrf_token: Field) -> Response:
    signed = form_session(request, csrf_token)
    if signed is None:
        return to_signin()
    with transaction(runtime_of(request).sessions) as session:
        enrolment = begin_enrolment(user_of(session, signed[0]))
    return _enrolment_page(request, secret=enrolment.secret, uri=enrolment.uri,
                           csrf=csrf_token)


@router.post("/account/second-factor/confirm", response_class=HTMLResponse)
def confirm(request: Request, csrf_token: Field, code: Field) -> Response:
    signed = form_session(request, csrf_token)
    if signed is None:
        return to_signin()
    runtime = runtime_of(request)
    try:
        with transaction(runtime.sessions) as session:
            confirm_second_factor(session, user_of(session, signed[0]), code=code,
                                  token=signed[1], now=runtime.clock.now())
    except InvalidInput:
        with transaction(runtime.sessions, readonly=True) as session:
            user = user_of(session, signed[0])
            secret, username = user.totp_secret or "", user.username
        return _enrolment_page(request, secret=secret, csrf=csrf_token, status_code=400,
                               uri=totp_uri(secret, username),
                               error=TEXTS[language(request)]["bad_code"])
    return RedirectResponse("/?notice=enrolled", status_code=303)
