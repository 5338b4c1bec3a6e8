"""JSON API of the archive: studies with their arrival and completeness."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from telerad.archive import queries
from telerad.audit.service import Action, who_for
from telerad.auth import users
from telerad.auth.second_factor import begin_enrolment
from telerad.auth.service import Actor, Permission
from telerad.db import transaction
from telerad.httpauth import (
    credentials_of,
    current_actor,
    runtime_of,
    sign_in_counting_failures,
    source_of,
)

router = APIRouter(tags=["archive"])


class StudyOut(BaseModel):
    """A study as the API shows it."""

    study_instance_uid: str
    site_id: int | None
    accession_number: str
    study_date: str
    modalities_in_study: list[str]
    number_of_series: int
    number_of_instances: int
    first_instance_at: dt.datetime
    last_instance_at: dt.datetime
    status: str
    completed_at: dt.datetime | None


def _out(study: queries.StudySummary) -> StudyOut:
    return StudyOut(
        study_instance_uid=study.study_instance_uid,
        site_id=study.site_id,
        accession_number=study.accession_number,
        study_date=study.study_date,
        modalities_in_study=[m for m in study.modalities_in_study.split("\\") if m],
        number_of_series=study.number_of_series,
        number_of_instances=study.number_of_instances,
        first_instance_at=study.first_instance_at,
        last_instance_at=study.last_instance_at,
        status=study.status,
        completed_at=study.completed_at,
    )


@router.get("/studies", response_model=list[StudyOut])
def list_studies(
    request: Request,
    actor: Annotated[Actor, Depends(current_actor)],
    status: Annotated[str | None, Query(description="receiving or complete")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[StudyOut]:
    """Studies, newest arrival first, with their completeness."""
    actor.scope.require(Permission.ARCHIVE_READ)
    runtime = runtime_of(request)
    runtime.audit(who_for(actor, source_of(request)), Action.SEARCH,
                  detail={"route": "api/studies", "status": status, "offset": offset})
    with transaction(runtime.sessions, readonly=True) as session:
        rows = queries.list_studies(session, scope=actor.scope, status=status, limit=limit,
                                    offset=offset)
    return [_out(row) for row in rows]


@router.get("/studies/{study_instance_uid}", response_model=StudyOut)
def get_study(
    request: Request, study_instance_uid: str, actor: Annotated[Actor, Depends(current_actor)]
) -> StudyOut:
    """One study: first and last instance times, status (receiving, complete)."""
    actor.scope.require(Permission.ARCHIVE_READ)
    runtime = runtime_of(request)
    with transaction(runtime.sessions, readonly=True) as session:
        study = _out(queries.get_study(session, scope=actor.scope,
                                       study_instance_uid=study_instance_uid))
    runtime.audit(who_for(actor, source_of(request)), Action.READ_METADATA,
                  study_instance_uid=study_instance_uid, detail={"route": "api/studies/{uid}"})
    return study


class SignInIn(BaseModel):
    """Credentials of a person; ``code``: from their authenticator app, once enrolled."""

    username: str
    password: str
    code: str | None = None


class SignInOut(BaseModel):
    """A session: send ``Authorization: Bearer <token>`` until ``expires_at``."""

    token: str
    expires_at: dt.datetime
    username: str
    role: str
    site_ids: list[int]
    #: True: the role needs a second factor; until it is set up (POST
    #: /api/account/second-factor, then /confirm) the session may do nothing else.
    second_factor_enrolment_required: bool


class EnrolmentOut(BaseModel):
    """Put ``secret`` (or the QR code of ``uri``) in an authenticator app, then confirm."""

    secret: str
    uri: str


class CodeIn(BaseModel):
    code: str


@router.post("/account/second-factor", response_model=EnrolmentOut, tags=["access"])
def enrol_second_factor(request: Request, actor: Annotated[Actor, Depends(current_actor)]
                        ) -> EnrolmentOut:
    """Start (or restart) the enrolment of an authenticator app (TOTP, RFC 6238)."""
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        enrolment = begin_enrolment(users.user_of(session, actor))
    return EnrolmentOut(secret=enrolment.secret, uri=enrolment.uri)


@router.post("/account/second-factor/confirm", status_code=204, tags=["access"])
def confirm_second_factor(request: Request, body: CodeIn,
                          actor: Annotated[Actor, Depends(current_actor)]) -> None:
    """Confirm the enrolment with a first code: from now on, signing in needs a code."""
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        users.confirm_second_factor(session, users.user_of(session, actor), code=body.code,
                              token=credentials_of(request)[0], now=runtime.clock.now())


@router.post("/login", response_model=SignInOut, tags=["access"])
def login(request: Request, credentials: SignInIn) -> SignInOut:
    """Sign in with a username and a password; returns a bearer token for a session."""
    signed = sign_in_counting_failures(runtime_of(request), username=credentials.username,
                                       password=credentials.password, code=credentials.code)
    return SignInOut(
        token=signed.token, expires_at=signed.expires_at, username=signed.actor.name,
        role=signed.role, site_ids=sorted(signed.actor.scope.site_ids or ()),
        second_factor_enrolment_required=signed.enrolment_required,
    )
