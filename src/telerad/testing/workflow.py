"""A night at two hospitals, for tests, the simulation and benchmarks: sites, a contract,
teams, radiologists with accounts, a roster — and telerad served in this process (HTTP
over loopback, the DICOM gateway) on an injected clock, so deadlines can be reached by
moving the clock rather than by waiting."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pyotp
import uvicorn
from sqlalchemy import select

from telerad import jobs
from telerad.auth.models import Role, User
from telerad.auth.second_factor import REQUIRED_FOR, enrol_secret
from telerad.auth.users import create_user, hash_password, open_session
from telerad.db import transaction
from telerad.gateway.dicom import DicomGateway
from telerad.runtime import Runtime
from telerad.testing.peers import free_port
from telerad.web.app import create_app
from telerad.workflow.roster.models import ShiftRow
from telerad.workflow.roster.service import add_radiologist
from telerad.workflow.sites.contracts import add_contract, add_team, parse_window
from telerad.workflow.sites.models import Team, TeamKind
from telerad.workflow.sites.service import add_site

PARIS = ZoneInfo("Europe/Paris")
PASSWORD = "correct horse battery"


@functools.cache
def password_hash() -> str:
    """:data:`PASSWORD` hashed once for every seeded account (a world seeds 13)."""
    return hash_password(PASSWORD)
#: A Tuesday evening in Carcassonne: the night's coverage (18:30-08:00) is running.
EVENING = dt.datetime(2026, 11, 24, 20, 0, tzinfo=PARIS)


def totp_secret(username: str) -> str:
    """The seeded second-factor secret of an example account (known to tests and demos)."""
    digest = hashlib.sha256(f"telerad example account {username}".encode()).digest()
    return base64.b32encode(digest[:20]).decode()


def totp_code(username: str, at: dt.datetime) -> str:
    """The code the example account's authenticator app shows at ``at``."""
    return pyotp.TOTP(totp_secret(username)).at(at)


def _enrol_if_required(user: User, now: dt.datetime) -> None:
    if Role(user.role) in REQUIRED_FOR:
        enrol_secret(user, secret=totp_secret(user.username), now=now)


@dataclass
class Night:
    """Who is who in the seeded night: ids by short name."""

    sites: dict[str, int] = field(default_factory=dict)
    radiologists: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)


#: (account, radiologist name, sites, subspecialties, team, backup)
RADIOLOGISTS = [
    ("dr_alice", "Dr Alice Martin", ["carcassonne"], ["neuro"], "Imadis", False),
    ("dr_bruno", "Dr Bruno Petit", ["carcassonne", "narbonne"], ["neuro"], "Imadis", True),
    ("dr_chloe", "Dr Chloé Roux", ["carcassonne"], ["neuro"], "Occitanie", False),
    ("dr_david", "Dr David Noir", ["narbonne"], ["neuro"], "Imadis", False),
    ("dr_emma", "Dr Emma Blanc", ["carcassonne"], [], "Imadis", False),
    ("dr_farid", "Dr Farid Gris", ["carcassonne"], ["neuro"], "", False),
]
#: (account, role, sites)
STAFF = [
    ("er_carcassonne", Role.REQUESTING_PHYSICIAN, ["carcassonne"]),
    ("tech_carcassonne", Role.TECHNOLOGIST, ["carcassonne"]),
    ("tech_narbonne", Role.TECHNOLOGIST, ["narbonne"]),
    ("er_narbonne", Role.REQUESTING_PHYSICIAN, ["narbonne"]),
    ("coordinator", Role.COORDINATOR, ["carcassonne", "narbonne"]),
    ("manager_carcassonne", Role.SITE_MANAGER, ["carcassonne"]),
    ("admin", Role.ADMIN, []),
]


def seed_night(runtime: Runtime, *, night_of: dt.date | None = None) -> Night:
    """Carcassonne (CT_CARCA) and Narbonne (CT_NARBO), CT contracts every night 18:30-08:00
    with the cascade Imadis (provider) then Occitanie (region); the night's shifts:
    Alice primary and Bruno back-up at Imadis, Chloé at Occitanie, David (Narbonne only)
    and Emma (no neuro) at Imadis; Farid credentialed but off duty."""
    night, now = Night(), runtime.clock.now()
    night_of = night_of or EVENING.date()
    start = dt.datetime.combine(night_of, dt.time(18, 30), tzinfo=PARIS)
    end = dt.datetime.combine(night_of + dt.timedelta(days=1), dt.time(8, 0), tzinfo=PARIS)
    with transaction(runtime.sessions) as session:
        for key, name, ae in (("carcassonne", "CH Carcassonne", "CT_CARCA"),
                              ("narbonne", "CH Narbonne", "CT_NARBO")):
            night.sites[key] = add_site(session, name=name, ae_titles=[ae], now=now).id
        teams = {"Imadis": add_team(session, name="Imadis", kind=TeamKind.PROVIDER),
                 "Occitanie": add_team(session, name="Occitanie", kind=TeamKind.REGION)}
        for site_id in night.sites.values():
            add_contract(session, site_id=site_id, modality="CT", now=now,
                         windows=[parse_window("every 18:30-08:00")],
                         team_names=["Imadis", "Occitanie"])
        for username, role, sites in STAFF:
            user = create_user(session, username=username, display_name=username, role=role,
                               password=PASSWORD, password_hash=password_hash(),
                               site_ids=[night.sites[s] for s in sites], now=now)
            _enrol_if_required(user, now)
            night.users[username] = user.id
        for username, name, sites, subspecialties, team, backup in RADIOLOGISTS:
            user = create_user(session, username=username, display_name=name,
                               role=Role.RADIOLOGIST, password=PASSWORD,
                               password_hash=password_hash(), site_ids=[], now=now)
            _enrol_if_required(user, now)
            night.users[username] = user.id
            radiologist = add_radiologist(session, name=name, username=username, now=now,
                                          site_ids=[night.sites[s] for s in sites],
                                          subspecialties=subspecialties)
            night.radiologists[username] = radiologist.id
            if team:
                team_row: Team = teams[team]
                session.add(ShiftRow(radiologist_id=radiologist.id, team_id=team_row.id,
                                     starts_at=start, ends_at=end, backup=backup))
    return night


class Api:
    """A JSON client of a served telerad, signed in as one account."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.token = token

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             content_type: str = "application/json") -> tuple[int, Any]:
        status, payload = self.fetch(method, path, body, raw=raw, content_type=content_type)
        return status, json.loads(payload) if payload else None

    def fetch(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
              content_type: str = "application/json") -> tuple[int, bytes]:
        """The status and the body's bytes, whatever they are."""
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            payload, status = exc.read(), exc.code
        return status, payload

    def raw(self, method: str, path: str) -> bytes:
        """The body of a successful answer, as bytes (a PDF, a DICOM file)."""
        status, payload = self.fetch(method, path)
        if status >= 300:
            raise AssertionError(f"{method} {path}: {status} {payload[:200]!r}")
        return payload

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, body)
        if status >= 300:
            raise AssertionError(f"{method} {path}: {status} {answer}")
        return answer


class InProcessServer:
    """telerad's HTTP API and DICOM gateway served from this process on ``runtime`` (whose
    clock the test moves); jobs run when the test calls ``run_jobs``."""

    def __init__(self, runtime: Runtime, *, ae_title: str = "TELERAD") -> None:
        self.runtime = runtime
        self.http_port = free_port()
        self.gateway = DicomGateway(runtime=runtime, host="127.0.0.1", port=0,
                                    ae_title=ae_title)
        config = uvicorn.Config(create_app(runtime), host="127.0.0.1", port=self.http_port,
                                log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicom_port(self) -> int:
        return self.gateway.port

    def __enter__(self) -> InProcessServer:
        self.gateway.start()
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self.gateway.stop()

    def api(self, username: str | None = None) -> Api:
        """A client signed in as ``username`` (a session opened directly, so that tests of
        other things do not spend the account's one-time codes), or anonymous."""
        if username is None:
            return Api(self.base_url)
        with transaction(self.runtime.sessions) as session:
            user = session.scalars(select(User).where(User.username == username)).one()
            signed = open_session(session, user, now=self.runtime.clock.now())
        return Api(self.base_url, signed.token)

    def run_jobs(self) -> int:
        """Run every job due at the clock's now; return how many ran."""
        total = 0
        while ran := jobs.run_due(self.runtime.sessions, self.runtime.clock, limit=100):
            total += ran
        return total
