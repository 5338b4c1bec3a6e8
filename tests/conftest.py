"""Shared fixtures. The database under test is chosen by ``TELERAD_TEST_DATABASE``:

- ``sqlite`` (default): a file in the test's temporary folder;
- ``postgresql``: a fresh database per test on ``TELERAD_TEST_PG`` (default the local
  server, ``postgresql+psycopg://postgres@127.0.0.1:5432``), dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from telerad.auth.service import create_token
from telerad.config import Settings
from telerad.db import transaction
from telerad.runtime import Runtime
from telerad.testing.peers import TeleradServer
from telerad.workflow.sites.service import add_site

DATABASE = os.environ.get("TELERAD_TEST_DATABASE", "sqlite")
PG_SERVER = os.environ.get("TELERAD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")

#: The site and sender every integration test starts with.
SITE = "Test Hospital"
SENDER_AE = "TEST_SCU"


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    if DATABASE == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.sqlite3'}"
        return
    if DATABASE != "postgresql":
        raise pytest.UsageError(f"TELERAD_TEST_DATABASE={DATABASE!r}: sqlite or postgresql")
    name = f"telerad_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        # A test's database lives for one test: its commits need not wait for the disk
        # (telerad's own durability is tested on SQLite, and by the process kill tests,
        # which kill telerad, never the database server).
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit TO off')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, stable_age=1.0)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime.open(settings)
    yield runtime
    runtime.close()


@dataclass
class Served:
    """A running ``telerad serve`` with one site, one sender AE and a token."""

    server: TeleradServer
    token: str
    site_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def seed(settings: Settings) -> tuple[int, str]:
    """The test site (sender TEST_SCU) and a token, written before the server starts."""
    runtime = Runtime.open(settings)
    try:
        with transaction(runtime.sessions) as session:
            site = add_site(session, name=SITE, ae_titles=[SENDER_AE], now=runtime.clock.now())
            _row, token = create_token(session, name="tests", now=runtime.clock.now())
            return site.id, token
    finally:
        runtime.close()


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    site_id, token = seed(settings)
    server = TeleradServer(
        data_dir=settings.data_dir,
        env={"TELERAD_DATABASE_URL": settings.database_url, "TELERAD_STABLE_AGE": "1"},
    )
    server.start()
    try:
        yield Served(server=server, token=token, site_id=site_id)
    finally:
        code = server.stop()
        assert code == 0, f"telerad serve exited with {code}:\n{server.log()[-3000:]}"
