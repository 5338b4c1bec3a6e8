"""The ``telerad`` command line: serve, site, token, import, db, demo."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from telerad import logs
from telerad.auth.models import Role
from telerad.config import Settings
from telerad.db import transaction
from telerad.errors import TeleradError
from telerad.runtime import Runtime

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
team_app = typer.Typer(help="Reading teams.", no_args_is_help=True)
app.add_typer(team_app, name="team")
contract_app = typer.Typer(help="Sites' contracts: coverage, cascade of teams, turnaround.",
                           no_args_is_help=True)
app.add_typer(contract_app, name="contract")
radiologist_app = typer.Typer(help="Radiologists and their credentials.", no_args_is_help=True)
app.add_typer(radiologist_app, name="radiologist")
roster_app = typer.Typer(help="The duty roster: shifts and coverage checks.",
                         no_args_is_help=True)
app.add_typer(roster_app, name="roster")
console = Console(stderr=True)

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="TELERAD_DATA_DIR", help="Data directory (index + blobs)."),
]


def _address(value: str, option: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(f"{option} wants HOST:PORT, not {value!r}")
    return host, int(port)


def _open(data_dir: Path, **overrides: Any) -> Runtime:
    return Runtime.open(Settings.from_env(data_dir, **overrides))


def _fail(exc: TeleradError) -> None:
    console.print(f"[red]error[/red] ({exc.code}): {exc.message}")
    raise typer.Exit(2)


@app.command()
def serve(
    data_dir: DataDir,
    http: Annotated[str, typer.Option(help="HTTP address HOST:PORT")] = "127.0.0.1:8042",
    dicom: Annotated[str, typer.Option(help="DICOM address HOST:PORT")] = "127.0.0.1:11112",
    ae_title: Annotated[str, typer.Option("--ae-title", help="Our AE title")] = "TELERAD",
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Run the web/DICOMweb server, the DICOM gateway and the worker in one process."""
    from telerad.cli.server import run_server  # noqa: PLC0415 - heavy imports only here

    logs.configure(log_level)
    http_host, http_port = _address(http, "--http")
    dicom_host, dicom_port = _address(dicom, "--dicom")
    runtime = _open(data_dir, ae_title=ae_title)
    run_server(runtime, http_host=http_host, http_port=http_port, dicom_host=dicom_host,
               dicom_port=dicom_port)


@site_app.command("add")
def site_add(
    name: str,
    data_dir: DataDir,
    ae_title: Annotated[list[str], typer.Option("--ae-title", help="Calling AE title of a sender")],
    timezone: Annotated[str, typer.Option(help="IANA time zone")] = "Europe/Paris",
) -> None:
    """Add a site and the AE titles of its senders; print the site's id."""
    from telerad.workflow.sites.service import add_site  # noqa: PLC0415

    runtime = _open(data_dir)
    try:
        with transaction(runtime.sessions) as session:
            site = add_site(session, name=name, ae_titles=ae_title, timezone=timezone,
                            now=runtime.clock.now())
            site_id = site.id
    except TeleradError as exc:
        _fail(exc)
    typer.echo(site_id)


@site_app.command("list")
def site_list(data_dir: DataDir) -> None:
    """List sites with their AE titles."""
    from telerad.workflow.sites.service import list_sites  # noqa: PLC0415

    runtime = _open(data_dir)
    with transaction(runtime.sessions, readonly=True) as session:
        for site in list_sites(session):
            titles = " ".join(d.ae_title for d in site.devices)
            typer.echo(f"{site.id}\t{site.name}\t{site.timezone}\t{titles}")


@token_app.command("create")
def token_create(
    data_dir: DataDir, name: Annotated[str, typer.Option(help="Who the token is for")]
) -> None:
    """Create a service-account bearer token (archive-wide read/write) and print it once."""
    from telerad.auth.service import create_token  # noqa: PLC0415

    runtime = _open(data_dir)
    try:
        with transaction(runtime.sessions) as session:
            _row, clear = create_token(session, name=name, now=runtime.clock.now())
    except TeleradError as exc:
        _fail(exc)
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
    runtime = _open(data_dir)
    try:
        with transaction(runtime.sessions) as session:
            site_ids = [site_by_name(session, name).id for name in site]
            user = create_user(session, username=username, display_name=display_name,
                               role=chosen, password=password, site_ids=site_ids,
                               now=runtime.clock.now())
            user_id = user.id
    except TeleradError as exc:
        _fail(exc)
    typer.echo(user_id)


@team_app.command("add")
def team_add(
    name: str,
    data_dir: DataDir,
    kind: Annotated[str, typer.Option(help="local, group, region or provider")] = "provider",
) -> None:
    """Add a reading team; print its id."""
    from telerad.workflow.sites.contracts import add_team  # noqa: PLC0415
    from telerad.workflow.sites.models import TeamKind  # noqa: PLC0415

    try:
        team_kind = TeamKind(kind)
    except ValueError:
        raise typer.BadParameter(f"unknown kind {kind!r}", param_hint="--kind") from None
    runtime = _open(data_dir)
    try:
        with transaction(runtime.sessions) as session:
            team_id = add_team(session, name=name, kind=team_kind).id
    except TeleradError as exc:
        _fail(exc)
    typer.echo(team_id)


@contract_app.command("add")
def contract_add(  # noqa: PLR0917 - the options of a command
    site: str,
    data_dir: DataDir,
    modality: Annotated[str, typer.Option(help="DICOM Modality: CT, MR, ...")],
    window: Annotated[list[str], typer.Option(
        "--window", help='Coverage, e.g. "every 18:30-08:00" or "sat,sun,holiday 00:00-00:00"')],
    team: Annotated[list[str], typer.Option("--team", help="Reading team, in cascade order")],
    target: Annotated[list[str], typer.Option(
        "--target", help="Turnaround, e.g. stroke_alert=15 (minutes)")] = [],  # noqa: B006
) -> None:
    """Add a site's contract for one modality: coverage windows, cascade, turnaround."""
    from telerad.workflow.sites.contracts import add_contract, parse_window  # noqa: PLC0415
    from telerad.workflow.sites.models import Urgency  # noqa: PLC0415
    from telerad.workflow.sites.service import site_by_name  # noqa: PLC0415

    runtime = _open(data_dir)
    try:
        minutes: dict[Urgency, int] = {}
        for item in target:
            name, _, value = item.partition("=")
            try:
                minutes[Urgency(name.strip())] = int(value)
            except ValueError:
                raise typer.BadParameter(f"{item!r}: write URGENCY=MINUTES",
                                         param_hint="--target") from None
        with transaction(runtime.sessions) as session:
            contract = add_contract(
                session, site_id=site_by_name(session, site).id, modality=modality,
                windows=[parse_window(w) for w in window], team_names=team,
                target_minutes=minutes, now=runtime.clock.now(),
            )
            contract_id = contract.id
    except TeleradError as exc:
        _fail(exc)
    typer.echo(contract_id)


@contract_app.command("list")
def contract_list(site: str, data_dir: DataDir) -> None:
    """A site's contracts: modality, windows, cascade, targets."""
    from telerad.workflow.sites.contracts import (  # noqa: PLC0415
        cascade,
        contracts_of,
        coverage,
        targets,
    )
    from telerad.workflow.sites.service import site_by_name  # noqa: PLC0415

    runtime = _open(data_dir)
    try:
        with transaction(runtime.sessions, readonly=True) as session:
            for contract in contracts_of(session, site_by_name(session, site).id):
                windows = "; ".join(
                    f"{','.join(sorted(d.value for d in w.days))} {w.start:%H:%M}-{w.end:%H:%M}"
                    for w in coverage(contract))
                teams = " > ".join(t.name for t in cascade(session, contract))
                turnaround = ", ".join(f"{u.value} {int(d.total_seconds() // 60)} min"
                                       for u, d in targets(contract).items())
                typer.echo(f"{contract.modality}\t{windows}\t{teams}\t{turnaround}")
    except TeleradError as exc:
        _fail(exc)


@radiologist_app.command("add")
def radiologist_add(
    name: str,
    data_dir: DataDir,
    site: Annotated[list[str], typer.Option("--site", help="A site they may read for")],
    subspecialty: Annotated[list[str], typer.Option(
        "--subspecialty", help="neuro, paediatric, msk, cardiac, ...")] = [],  # noqa: B006
) -> None:
    """Add a radiologist credentialed for the sites given; print their id."""
    from telerad.workflow.roster.service import add_radiologist  # noqa: PLC0415
    from telerad.workflow.sites.service import site_by_name  # noqa: PLC0415

    runtime = _open(data_dir)
    try:
        with transaction(runtime.sessions) as session:
            radiologist = add_radiologist(
                session, name=name, site_ids=[site_by_name(session, s).id for s in site],
                subspecialties=subspecialty, now=runtime.clock.now(),
            )
            radiologist_id = radiologist.id
    except TeleradError as exc:
        _fail(exc)
    typer.echo(radiologist_id)


@roster_app.command("import")
def roster_import(
    path: Path,
    data_dir: DataDir,
    timezone: Annotated[str, typer.Option(help="Zone of times written without offset")] = (
        "Europe/Paris"),
) -> None:
    """Import shifts from CSV: radiologist,team,start,end,role (primary or backup)."""
    import zoneinfo  # noqa: PLC0415

    from telerad.workflow.roster.service import import_shifts  # noqa: PLC0415

    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(f"unknown time zone {timezone!r}", param_hint="--timezone"
                                 ) from None
    runtime = _open(data_dir)
    try:
        with transaction(runtime.sessions) as session:
            count = import_shifts(session, text=path.read_text(encoding="utf-8"), zone=zone)
    except TeleradError as exc:
        _fail(exc)
    typer.echo(f"{count} shifts imported")


@roster_app.command("check")
def roster_check(
    site: str,
    data_dir: DataDir,
    modality: Annotated[str, typer.Option(help="The contract's modality")],
    start: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (default today)")
                     ] = "",
    days: Annotated[int, typer.Option(min=1, max=366)] = 7,
) -> None:
    """Report the spans of the coming days that the contract requires and nobody covers;
    exit 1 if there is any."""
    import datetime as dt  # noqa: PLC0415
    import zoneinfo  # noqa: PLC0415

    from telerad.workflow.roster.service import roster_gaps  # noqa: PLC0415
    from telerad.workflow.sites.service import site_by_name  # noqa: PLC0415

    runtime = _open(data_dir)
    try:
        with transaction(runtime.sessions, readonly=True) as session:
            found = site_by_name(session, site)
            zone = zoneinfo.ZoneInfo(found.timezone)
            first = (dt.date.fromisoformat(start) if start
                     else runtime.clock.now().astimezone(zone).date())
            begin = dt.datetime.combine(first, dt.time(0), tzinfo=zone)
            end = dt.datetime.combine(first + dt.timedelta(days=days), dt.time(0), tzinfo=zone)
            holes = roster_gaps(session, site_id=found.id, modality=modality, start=begin,
                                end=end)
    except TeleradError as exc:
        _fail(exc)
    except ValueError:
        raise typer.BadParameter(f"{start!r}: write YYYY-MM-DD", param_hint="--from") from None
    for hole in holes:
        typer.echo(f"gap\t{hole.start.astimezone(zone):%a %Y-%m-%d %H:%M}"
                   f"\t{hole.end.astimezone(zone):%a %Y-%m-%d %H:%M}")
    if holes:
        console.print(f"[red]{len(holes)} gap(s)[/red] in {modality.upper()} coverage at {site}")
        raise typer.Exit(1)
    typer.echo(f"{modality.upper()} at {site}: covered from {begin:%Y-%m-%d} for {days} days")


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir) -> None:
    """Create or migrate the database to the newest schema."""
    _open(data_dir).close()
    typer.echo("database is up to date")


@audit_app.command("verify")
def audit_verify(data_dir: DataDir) -> None:
    """Check the hash chain of the audit trail; exit 1 and list the breaks if it was edited."""
    from telerad.audit.service import count, verify  # noqa: PLC0415

    runtime = _open(data_dir)
    with transaction(runtime.sessions, readonly=True) as session:
        total = count(session)
        breaks = list(verify(session))
    for item in breaks[:100]:
        typer.echo(f"event #{item.event_id}: {item.reason}")
    if breaks:
        console.print(f"[red]audit trail altered[/red]: {len(breaks)} break(s) in {total} events")
        raise typer.Exit(1)
    typer.echo(f"audit trail intact: {total} events")


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Data directory")] = Path(
        "demo-data"
    ),
    http: Annotated[str, typer.Option(help="HTTP address HOST:PORT")] = "127.0.0.1:8042",
    dicom: Annotated[str, typer.Option(help="DICOM address HOST:PORT")] = "127.0.0.1:11112",
    slices: Annotated[int, typer.Option(help="Slices of the synthetic CT sent")] = 120,
) -> None:
    """Start telerad with an example site and send it a synthetic CT study over DICOM."""
    from telerad.cli.demo import run_demo  # noqa: PLC0415

    logs.configure("INFO")
    runtime = _open(data_dir)
    http_host, http_port = _address(http, "--http")
    dicom_host, dicom_port = _address(dicom, "--dicom")
    run_demo(runtime, http_host=http_host, http_port=http_port, dicom_host=dicom_host,
             dicom_port=dicom_port, slices=slices, console=console)


def main() -> None:
    """Entry point of the ``telerad`` script."""
    # A broken pipe (``telerad ... | head``) is not an error worth a traceback.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    logging.captureWarnings(True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app(prog_name="telerad")
    sys.exit(0)
