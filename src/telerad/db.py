"""The index database: engine, declarative base, transactions, migrations.

SQLite (embedded default) runs in WAL mode with ``synchronous=FULL``: a commit is on disk
before it returns, which the DICOM edge relies on before it answers 0x0000. PostgreSQL is
reached with ``postgresql+psycopg://``; the same code and migrations serve both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, TypeDecorator, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

# Stable constraint names, so that migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware instant, stored in UTC (SQLite has no time zones, PostgreSQL does)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: use the injected clock")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Base of every table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UtcDateTime()}  # noqa: RUF012


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings telerad relies on."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)

        # pysqlite's own transaction handling defers BEGIN; take the write lock at BEGIN
        # so that two writers queue instead of failing on upgrade (SQLite "BEGIN IMMEDIATE").
        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            readonly = conn.get_execution_options().get("telerad_readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    # No pre-ping: it costs a round trip per transaction (15 % of an image's ingest). A
    # connection lost to a server restart fails its first statement, is invalidated with
    # the pool, and the edge retries or answers a transient failure.
    return create_engine(url, pool_size=10, max_overflow=20, pool_recycle=3600)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session], *, readonly: bool = False) -> Iterator[Session]:
    """One transaction per step, opened by its edge: commit on success, roll back on error.

    On SQLite a writing transaction takes the write lock at BEGIN (``BEGIN IMMEDIATE``) so
    that concurrent writers queue on the busy timeout instead of failing at their first
    write; ``readonly`` transactions read a WAL snapshot and never block a writer.
    """
    with sessions() as session, session.begin():
        if readonly:
            session.connection(execution_options={"telerad_readonly": True})
        # A writing transaction begins lazily, at its first statement: work done before it
        # (parsing, fsync of a blob) does not hold SQLite's write lock.
        yield session


def upgrade(engine: Engine) -> None:
    """Create or migrate the schema to the newest revision (Alembic ``upgrade head``)."""
    from alembic import command  # noqa: PLC0415 - Alembic is only needed here
    from alembic.config import Config  # noqa: PLC0415

    config = Config()
    config.set_main_option("script_location", str(resources.files("telerad") / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
