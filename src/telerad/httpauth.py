"""The HTTP edges' shared dependencies (JSON API and DICOMweb): the runtime, the caller's
address, and the actor behind the bearer token."""

from __future__ import annotations

from fastapi import Request

from telerad.auth.service import Actor
from telerad.auth.users import authenticate_bearer
from telerad.db import transaction
from telerad.errors import NotAuthenticated
from telerad.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


def source_of(request: Request) -> str:
    """The client's address, for the audit trail."""
    return request.client.host if request.client else ""


def current_actor(request: Request) -> Actor:
    """FastAPI dependency: the actor behind ``Authorization: Bearer <token>``."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("missing bearer token")
    runtime = runtime_of(request)
    with transaction(runtime.sessions, readonly=True) as session:
        return authenticate_bearer(session, token.strip(), now=runtime.clock.now())
