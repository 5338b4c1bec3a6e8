"""Alembic environment: migrations run on the connection telerad.db.upgrade hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import telerad.archive.models
import telerad.audit.models
import telerad.auth.models
import telerad.delivery.models
import telerad.jobs
import telerad.reporting.models
import telerad.workflow.exams.models
import telerad.workflow.requests.models
import telerad.workflow.roster.models
import telerad.workflow.sites.models  # noqa: F401 - registers the tables
from telerad.db import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # plain `alembic` command line, for autogenerate
        engine = engine_from_config(
            {"sqlalchemy.url": config.get_main_option("sqlalchemy.url")}, poolclass=pool.NullPool
        )
        with engine.connect() as connection:
            _migrate(connection)
    else:
        _migrate(connection)


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()


run()
