"""``telerad protocol | exam``: the protocol catalogue, and the exams as an operator sees
them (state, clocks, routing explained). Reads of exams are in the audit trail."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from typing import Annotated

import typer

from telerad.audit import service as audit
from telerad.auth.service import Permission, Scope
from telerad.cli.common import DataDir, step
from telerad.workflow.assignments.routing import Router
from telerad.workflow.exams.models import ExamState
from telerad.workflow.exams.queries import get_exam, list_exams
from telerad.workflow.requests.service import add_protocol, list_protocols
from telerad.workflow.sites.service import site_by_name

protocol_app = typer.Typer(help="The protocol catalogue requests are validated with.",
                           no_args_is_help=True)
exam_app = typer.Typer(help="Exams: state, deadlines, routing.", no_args_is_help=True)
#: The operator at the machine sees every site.
OPERATOR = Scope(permissions=frozenset(Permission))


def _operator() -> audit.Who:
    return audit.Who(kind="cli", id=getpass.getuser())


@protocol_app.command("list")
def protocol_list(data_dir: DataDir) -> None:
    """Print the catalogue: code, modality, subspecialty, expected series, name."""
    with step(data_dir, readonly=True) as (_runtime, session):
        for p in list_protocols(session):
            series = ",".join(json.loads(p.expected_series))
            typer.echo(f"{p.code}\t{p.modality}\t{p.subspecialty or '-'}\t{series or '-'}"
                       f"\t{p.name}")


@protocol_app.command("add")
def protocol_add(  # noqa: PLR0917 - the options of a command
    code: str,
    data_dir: DataDir,
    name: Annotated[str, typer.Option(help="What the radiologist reads in the list")],
    modality: Annotated[str, typer.Option(help="DICOM Modality: CT, MR, ...")],
    subspecialty: Annotated[str, typer.Option(help="Needed to read it: neuro, ...")] = "",
    series: Annotated[list[str], typer.Option(
        "--series", help="An expected series (part of its Series Description)")] = [],  # noqa: B006
) -> None:
    """Add a protocol to the catalogue."""
    with step(data_dir) as (_runtime, session):
        add_protocol(session, code=code, name=name, modality=modality,
                     subspecialty=subspecialty, expected_series=series)
    typer.echo(code.strip().upper())


@exam_app.command("list")
def exam_list(
    data_dir: DataDir,
    site: Annotated[str | None, typer.Option(help="Only this site")] = None,
    state: Annotated[list[ExamState] | None, typer.Option(help="Only these states")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
) -> None:
    """Exams, most urgent first: id, site, state, urgency, modality, accession, time left."""
    with step(data_dir) as (runtime, session):
        site_id = site_by_name(session, site).id if site else None
        now = runtime.clock.now()
        found = list_exams(session, scope=OPERATOR, states=state, site_id=site_id,
                           limit=limit)
        audit.record(session, who=_operator(), action=audit.Action.READ, now=now,
                     detail={"route": "cli exam list", "exam_ids": [e.id for e in found][:100]})
        for e in found:
            left = "" if e.due_at is None else f"{(e.due_at - now).total_seconds() / 60:+.0f} min"
            typer.echo(f"{e.id}\t{e.site_id}\t{e.state}\t{e.urgency or '-'}\t{e.modality}"
                       f"\t{e.accession_number or '-'}\t{left}")


@exam_app.command("routing")
def exam_routing(
    exam_id: int,
    data_dir: DataDir,
    at: Annotated[str, typer.Option(help="ISO 8601 instant with offset (default: now)")] = "",
) -> None:
    """Explain who the exam is offered to, step by step, and why each radiologist is or is
    not eligible."""
    try:
        instant = dt.datetime.fromisoformat(at) if at else None
    except ValueError:
        raise typer.BadParameter(f"{at!r} is not an ISO 8601 instant", param_hint="--at"
                                 ) from None
    if instant is not None and instant.tzinfo is None:
        raise typer.BadParameter("give the UTC offset", param_hint="--at")
    with step(data_dir) as (runtime, session):
        exam = get_exam(session, scope=OPERATOR, exam_id=exam_id)
        router = Router(session, instant or runtime.clock.now())
        ladder, verdicts, covered = router.explain(exam)
        audit.record(session, who=_operator(), action=audit.Action.READ, now=runtime.clock.now(),
                     study_instance_uid=exam.study_instance_uid or "",
                     detail={"route": "cli exam routing", "exam_id": exam.id})
        typer.echo(f"exam {exam.id}: {exam.state}, escalation level {exam.escalation_level}"
                   f"{'' if covered else ' (outside the contract coverage)'}")
        for level, rung in enumerate(ladder.steps):
            typer.echo(f"step {level}: {rung.label}")
        typer.echo(f"step {ladder.coordinator_level}: coordinator")
        for v in verdicts:
            typer.echo(f"{'ELIGIBLE' if v.eligible else 'no'}\t{v.name}\t{v.reason}")

