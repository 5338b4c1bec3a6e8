"""``telerad endpoint | template | delivery``: where reports go, what they are written from,
and what has not reached the hospital yet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from telerad.cli.common import DataDir, console, step
from telerad.delivery import service as delivery
from telerad.delivery.models import ChannelKind
from telerad.delivery.reconciliation import retry_failed, unreconciled
from telerad.reporting import catalogue
from telerad.workflow.sites.service import site_by_name

endpoint_app = typer.Typer(help="Where a site's reports are delivered: its RIS (HL7 over MLLP) "
                           "and its PACS (DICOM).", no_args_is_help=True)
template_app = typer.Typer(help="Report templates: built-in, and imported (JSON or IHE MRRT).",
                           no_args_is_help=True)
delivery_app = typer.Typer(help="Deliveries of reports: what the hospital has not "
                           "acknowledged yet.", no_args_is_help=True)


@endpoint_app.command("add")
def endpoint_add(  # noqa: PLR0917 - the options of a command
    site: str,
    data_dir: DataDir,
    channel: Annotated[str, typer.Option(help="hl7_mllp (a RIS) or dicom_store (a PACS)")],
    host: Annotated[str, typer.Option(help="The peer's host name or address")],
    port: Annotated[int, typer.Option(help="The peer's port")],
    name: Annotated[str, typer.Option(help="What people call it, e.g. 'RIS Xplore'")] = "",
    ae_title: Annotated[str, typer.Option(help="DICOM: the PACS's AE title")] = "",
    application: Annotated[str, typer.Option(help="HL7: MSH-5, the RIS's application")] = "",
    facility: Annotated[str, typer.Option(help="HL7: MSH-6, the RIS's facility")] = "",
) -> None:
    """Add an endpoint to SITE; print its id."""
    with step(data_dir) as (runtime, session):
        row = site_by_name(session, site)
        endpoint = delivery.add_endpoint(
            session, site_id=row.id, channel=channel, name=name or f"{channel} {host}",
            host=host, port=port, called_ae_title=ae_title, receiving_application=application,
            receiving_facility=facility, now=runtime.clock.now())
        typer.echo(endpoint.id)


@endpoint_app.command("list")
def endpoint_list(data_dir: DataDir) -> None:
    """Every site's endpoints."""
    with step(data_dir) as (_runtime, session):
        for e in delivery.endpoints_of(session, site_ids=None):
            peer = e.called_ae_title if e.channel == ChannelKind.DICOM_STORE else "^".join(
                (e.receiving_application, e.receiving_facility)).strip("^")
            console.print(f"{e.id}\tsite {e.site_id}\t{e.channel}\t{e.name}\t"
                          f"{e.host}:{e.port}\t{peer or '—'}\t{'on' if e.enabled else 'off'}")


@template_app.command("list")
def template_list(data_dir: DataDir) -> None:
    """Every template: code, version, modality, title."""
    with step(data_dir) as (_runtime, session):
        for t in catalogue.all_templates(session):
            console.print(f"{t.code}\tv{t.version}\t{t.modality}\t{t.title}")


@template_app.command("import")
def template_import(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    data_dir: DataDir,
) -> None:
    """Import a template from a JSON file or an IHE MRRT HTML file."""
    text = path.read_text(encoding="utf-8-sig")
    with step(data_dir) as (runtime, session):
        template = catalogue.read_template(
            session, text, mrrt=catalogue.is_mrrt(name=path.name, text=text))
        catalogue.import_template(session, template, now=runtime.clock.now())
    typer.echo(f"{template.code} v{template.version}")


@delivery_app.command("reconcile")
def delivery_reconcile(data_dir: DataDir) -> None:
    """Every read exam without an acknowledged final report, and why; exits 1 if any."""
    with step(data_dir) as (_runtime, session):
        rows = unreconciled(session, site_ids=None)
        for u in rows:
            console.print(f"exam {u.exam_id}\t{u.accession_number}\t{u.state}\t{u.reason}")
            for o in u.outstanding:
                console.print(f"    #{o.delivery_id} {o.document} → {o.endpoint}: {o.state}, "
                              f"{o.attempts} attempts, last answer: {o.last_answer or '—'}")
    if rows:
        raise typer.Exit(1)
    console.print("every read exam's final report is acknowledged")


@delivery_app.command("retry")
def delivery_retry(delivery_id: int, data_dir: DataDir) -> None:
    """Send a failed delivery again, once its cause is fixed at the peer."""
    with step(data_dir) as (runtime, session):
        row = delivery.get_delivery(session, delivery_id=delivery_id, site_ids=None)
        retry_failed(session, delivery=row, now=runtime.clock.now())
    typer.echo(f"delivery {delivery_id} is pending again")
