"""``telerad import``: Part-10 files and folders through the one intake, with progress."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from telerad.archive.models import Origin
from telerad.db import transaction
from telerad.errors import TeleradError
from telerad.runtime import Runtime
from telerad.workflow.exams import intake
from telerad.workflow.sites.service import site_by_name

_CHUNK = 1024 * 1024


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def import_file(runtime: Runtime, path: Path, sender: intake.Sender) -> intake.Receipt:
    """Stage one file's bytes and ingest them."""
    staged = runtime.store.stage()
    try:
        with path.open("rb") as fp:
            while chunk := fp.read(_CHUNK):
                staged.write(chunk)
    except OSError:
        staged.discard()
        raise
    return runtime.ingest(staged, sender=sender)


def run_import(runtime: Runtime, *, paths: list[Path], site_name: str, console: Console) -> int:
    """Import every file; print a summary; return the exit code (1 if any was rejected)."""
    with transaction(runtime.sessions, readonly=True) as session:
        site_id = site_by_name(session, site_name).id
    sender = intake.Sender(origin=Origin.IMPORT, site_id=site_id)
    missing = [p for p in paths if not p.exists()]
    if missing:
        console.print(f"[red]no such file or folder:[/red] {missing[0]}")
        return 2
    files = list(_files(paths))
    counts: collections.Counter[str] = collections.Counter()
    rejected: list[tuple[Path, str]] = []
    with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        task = progress.add_task("import", total=len(files))
        for path in files:
            try:
                receipt = import_file(runtime, path, sender)
            except TeleradError as exc:
                counts["rejected"] += 1
                rejected.append((path, f"{exc.code}: {exc.message}"))
            except OSError as exc:
                counts["rejected"] += 1
                rejected.append((path, f"unreadable: {exc.strerror}"))
            else:
                if receipt.outcome == intake.Outcome.CONFLICT:
                    counts["rejected"] += 1
                    rejected.append((path, "instance_conflict: same SOP Instance UID, other bytes"))
                else:
                    counts[receipt.outcome] += 1
            progress.advance(task)
    table = Table(title=f"import into site {site_name!r}")
    table.add_column("result")
    table.add_column("files", justify="right")
    table.add_row("stored", str(counts[intake.Outcome.STORED]))
    table.add_row("already stored", str(counts[intake.Outcome.ALREADY_STORED]))
    table.add_row("rejected", str(counts["rejected"]))
    console.print(table)
    for path, why in rejected[:50]:
        console.print(f"  rejected {path}: {why}")
    if len(rejected) > 50:
        console.print(f"  ... and {len(rejected) - 50} more")
    return 1 if rejected else 0
