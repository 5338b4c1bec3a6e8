"""The ``telerad`` command line: serve, site, token, user, import, db, audit, demo; the
workflow's commands are in :mod:`telerad.cli.workflow` and :mod:`telerad.cli.exams`."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from telerad import logs
from telerad.auth.models import Role
from telerad.cli import exams, reports, simulate, workflow
from telerad.cli.common import DataDir, console, step
from telerad.cli.common import fail as _fail
from telerad.cli.common import open_runtime as _open
from telerad.errors import TeleradError

app = typer.Typer(help="telerad: teleradiology platform", no_args_is_help=True)
site_app = typer.Typer(help="Sites (hospitals) and their senders' AE titles.", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens for HTTP clients.", no_args_is_help=True)
db_app = typer.Typer(help="The index database.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail of every access to patient data.",
                        no_args_is_help=True)
app.add_typer(site_app, name="site")
app.add_typer(token_app, name="token")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
user_app = typer.Typer(help="People who sign in: roles and sites.", no_args_is_help=True)
app.add_typer(user_app, name="user")
for sub_app, name in ((workflow.team_app, "team"), (workflow.contract_app, "contract"),
                      (workflow.radiologist_app, "radiologist"), (workflow.roster_app, "roster"),
                      (exams.protocol_app, "protocol"), (exams.exam_app, "exam"),
                      (reports.endpoint_app, "endpoint"), (reports.template_app, "template"),
                      (reports.delivery_app, "delivery")):
    app.add_typer(sub_app, name=name)
app.command("simulate")(simulate.simulate)


def _address(value: str, option: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(f"{option} wants HOST:PORT, not {value!r}")
    return host, int(port)


@app.command()
def serve(  # noqa: PLR0917 - the options of a command
    data_dir: DataDir,
    http: Annotated[str, typer.Option(help="HTTP address HOST:PORT")] = "127.0.0.1:8042",
    dicom: Annotated[str, typer.Option(help="DICOM address HOST:PORT")] = "127.0.0.1:11112",
    ae_title: Annotated[str, typer.Option("--ae-title", help="Our AE title")] = "TELERAD",
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
    mllp: Annotated[str | None, typer.Option(
        help="HL7 MLLP address HOST:PORT for the RIS's orders (none: no listener)")] = None,
) -> None:
    """Run the web/DICOMweb server, the DICOM gateway, the HL7 listener (with --mllp) and
    the worker in one process."""
    from telerad.cli.server import run_server  # noqa: PLC0415 - heavy imports only here

    logs.configure(log_level)
    http_host, http_port = _address(http, "--http")
    dicom_host, dicom_port = _address(dicom, "--dicom")
    hl7 = _address(mllp, "--mllp") if mllp is not None else None
    runtime = _open(data_dir, ae_title=ae_title)
    run_server(runtime, http_host=http_host, http_port=http_port, dicom_host=dicom_host,
               dicom_port=dicom_port, mllp=hl7)


@site_app.command("add")
def site_add(
    name: str,
    data_dir: DataDir,
    ae_title: Annotated[list[str], typer.Option("--ae-title", help="Calling AE title of a sender")],
    timezone: Annotated[str, typer.Option(help="IANA time zone")] = "Europe/Paris",
) -> None:
    """Add a site and the AE titles of its senders; print the site's id."""
    from telerad.workflow.sites.service import add_site  # noqa: PLC0415

    with step(data_dir) as (runtime, session):
        site = add_site(session, name=name, ae_titles=ae_title, timezone=timezone,
                        now=runtime.clock.now())
        site_id = site.id
    typer.echo(site_id)


@site_app.command("reporting")
def site_reporting(  # noqa: PLR0917 - the options of a command
    name: str,
    data_dir: DataDir,
    hl7_facility: Annotated[str | None, typer.Option(
        help="MSH-4 Sending Facility of the site's RIS orders ('' for none)")] = None,
    critical_minutes: Annotated[int | None, typer.Option(
        help="Minutes the site has to acknowledge a critical finding")] = None,
    on_call_manager: Annotated[str | None, typer.Option(
        help="Who is called when a critical finding stays unacknowledged")] = None,
    on_call_phone: Annotated[str | None, typer.Option(help="Their phone number")] = None,
) -> None:
    """Set what a site's reports depend on; the options not given keep their value."""
    from telerad.workflow.sites.service import (  # noqa: PLC0415
        site_by_name,
        update_reporting_settings,
    )

    with step(data_dir) as (_runtime, session):
        site = site_by_name(session, name)
        update_reporting_settings(
            session, site_id=site.id,
            hl7_facility=site.hl7_facility or "" if hl7_facility is None else hl7_facility,
            critical_ack_minutes=(site.critical_ack_minutes if critical_minutes is None
                                  else critical_minutes),
            on_call_manager=(site.on_call_manager if on_call_manager is None
                             else on_call_manager),
            on_call_phone=site.on_call_phone if on_call_phone is None else on_call_phone)
        console.print(f"{site.name}: HL7 facility {site.hl7_facility or '—'}, critical "
                      f"findings acknowledged within {site.critical_ack_minutes} min, "
                      f"on-call manager {site.on_call_manager or '—'} "
                      f"{site.on_call_phone}".rstrip())


@site_app.command("list")
def site_list(data_dir: DataDir) -> None:
    """List sites with their AE titles."""
    from telerad.workflow.sites.service import list_sites  # noqa: PLC0415

    with step(data_dir, readonly=True) as (_runtime, session):
        for site in list_sites(session):
            titles = " ".join(d.ae_title for d in site.devices)
            typer.echo(f"{site.id}\t{site.name}\t{site.timezone}\t{titles}")


@token_app.command("create")
def token_create(
    data_dir: DataDir, name: Annotated[str, typer.Option(help="Who the token is for")]
) -> None:
    """Create a service-account bearer token (archive-wide read/write) and print it once."""
    from telerad.auth.service import create_token  # noqa: PLC0415

    with step(data_dir) as (runtime, session):
        _row, clear = create_token(session, name=name, now=runtime.clock.now())
    typer.echo(clear)


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Part-10 files or folders")],
    data_dir: DataDir,
    site: Annotated[str, typer.Option(help="Name of the site the files come from")],
) -> None:
    """Import Part-10 files through the same intake as C-STORE and STOW-RS."""
    from telerad.cli.importer import run_import  # noqa: PLC0415

    runtime = _open(data_dir)
    try:
        code = run_import(runtime, paths=paths, site_name=site, console=console)
    except TeleradError as exc:
        _fail(exc)
    raise typer.Exit(code)


@user_app.command("add")
def user_add(  # noqa: PLR0917 - the options of a command
    username: str,
    data_dir: DataDir,
    role: Annotated[str, typer.Option(help="One of: " + ", ".join(r.value for r in Role))],
    site: Annotated[list[str], typer.Option("--site", help="Name of a site the user may see")
                    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    display_name: Annotated[str, typer.Option(help="Name shown to others")] = "",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin")] = False,
) -> None:
    """Add a person with a role and the sites whose patients they may see; print their id."""
    from telerad.auth.users import create_user  # noqa: PLC0415
    from telerad.workflow.sites.service import site_by_name  # noqa: PLC0415

    try:
        chosen = Role(role)
    except ValueError:
        raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role") from None
    password = (sys.stdin.readline().rstrip("\n") if password_stdin
                else typer.prompt("password", hide_input=True, confirmation_prompt=True))
    with step(data_dir) as (runtime, session):
        site_ids = [site_by_name(session, name).id for name in site]
        user = create_user(session, username=username, display_name=display_name,
                           role=chosen, password=password, site_ids=site_ids,
                           now=runtime.clock.now())
        user_id = user.id
    typer.echo(user_id)


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir) -> None:
    """Create or migrate the database to the newest schema."""
    _open(data_dir).close()
    typer.echo("database is up to date")


@audit_app.command("verify")
def audit_verify(data_dir: DataDir) -> None:
    """Check the hash chain of the audit trail; exit 1 and list the breaks if it was edited."""
    from telerad.audit.service import count, verify  # noqa: PLC0415

    with step(data_dir, readonly=True) as (_runtime, session):
        total = count(session)
        breaks = list(verify(session))
    for item in breaks[:100]:
        typer.echo(f"event #{item.event_id}: {item.reason}")
    if breaks:
        console.print(f"[red]audit trail altered[/red]: {len(breaks)} break(s) in {total} events")
        raise typer.Exit(1)
    typer.echo(f"audit trail intact: {total} events")


@app.command()
def demo(  # noqa: PLR0917 - the options of a command
    data_dir: Annotated[Path, typer.Option(
        "--data-dir", help="Data directory: new or empty, or one `telerad demo` created")
    ] = Path("demo-data"),
    http: Annotated[str, typer.Option(help="HTTP address HOST:PORT")] = "127.0.0.1:8042",
    dicom: Annotated[str, typer.Option(help="DICOM address HOST:PORT")] = "127.0.0.1:11112",
    every: Annotated[float, typer.Option(
        min=0.5, help="Seconds between two requests of the simulated hospitals")] = 20.0,
    stream: Annotated[bool, typer.Option(
        "--stream/--no-stream", help="Simulate the hospitals' requests and scanners")] = True,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "WARNING",
) -> None:
    """Start telerad with two example hospitals, their radiologists and a roster, print the
    sign-ins, and simulate requests and scanners sending CT over DICOM, live."""
    from rich.console import Console  # noqa: PLC0415 - the demo's own output, on stdout

    from telerad.cli.demo import run_demo  # noqa: PLC0415

    logs.configure(log_level)
    http_host, http_port = _address(http, "--http")
    dicom_host, dicom_port = _address(dicom, "--dicom")
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    try:
        run_demo(data_dir, http_host=http_host, http_port=http_port, dicom_host=dicom_host,
                 dicom_port=dicom_port, every=every, stream=stream, console=out)
    except TeleradError as exc:
        _fail(exc)


@app.command("demo-code")
def demo_code(
    username: str,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The demo's data directory")
                        ] = Path("demo-data"),
) -> None:
    """Print the current second-factor code of an example account of `telerad demo`."""
    from telerad.cli.demo_world import demo_code as current  # noqa: PLC0415

    try:
        code, left = current(data_dir, username)
    except TeleradError as exc:
        _fail(exc)
    console.print(f"valid for {left} more seconds, once", highlight=False)
    typer.echo(code)


def main() -> None:
    """Entry point of the ``telerad`` script."""
    # A broken pipe (``telerad ... | head``) is not an error worth a traceback.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    logging.captureWarnings(True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app(prog_name="telerad")
    sys.exit(0)
