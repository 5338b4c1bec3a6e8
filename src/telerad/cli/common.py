"""What every ``telerad`` command shares: the data directory option, the console, and one
way to run a step in a transaction with errors translated into a message and exit code 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from telerad.config import Settings
from telerad.db import transaction
from telerad.errors import TeleradError
from telerad.runtime import Runtime

console = Console(stderr=True)

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="TELERAD_DATA_DIR", help="Data directory (index + blobs)."),
]


def open_runtime(data_dir: Path, **overrides: Any) -> Runtime:
    """The runtime of ``data_dir`` (database created or migrated on first use)."""
    return Runtime.open(Settings.from_env(data_dir, **overrides))


def fail(exc: TeleradError) -> NoReturn:
    """Say what went wrong, by its stable code, and exit 2."""
    console.print(f"[red]error[/red] ({exc.code}): {exc.message}")
    raise typer.Exit(2)


@contextmanager
def step(data_dir: Path, *, readonly: bool = False) -> Iterator[tuple[Runtime, Session]]:
    """One committed transaction on ``data_dir``; a TeleradError ends the command."""
    runtime = open_runtime(data_dir)
    try:
        with transaction(runtime.sessions, readonly=readonly) as session:
            yield runtime, session
    except TeleradError as exc:
        fail(exc)
    finally:
        runtime.close()
