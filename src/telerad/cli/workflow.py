"""``telerad team | contract | radiologist | roster``: the reading workflow's set-up."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Annotated

import typer

from telerad.cli.common import DataDir, console, step
from telerad.workflow.roster.service import (
    add_radiologist,
    import_shifts,
    roster_gaps,
)
from telerad.workflow.sites.contracts import (
    add_contract,
    add_team,
    cascade,
    contracts_of,
    coverage,
    parse_window,
    targets,
)
from telerad.workflow.sites.models import TeamKind, Urgency
from telerad.workflow.sites.service import site_by_name

team_app = typer.Typer(help="Reading teams.", no_args_is_help=True)
contract_app = typer.Typer(help="Sites' contracts: coverage, cascade of teams, turnaround.",
                           no_args_is_help=True)
radiologist_app = typer.Typer(help="Radiologists and their credentials.", no_args_is_help=True)
roster_app = typer.Typer(help="The duty roster: shifts and coverage checks.",
                         no_args_is_help=True)


@team_app.command("add")
def team_add(
    name: str,
    data_dir: DataDir,
    kind: Annotated[str, typer.Option(help="local, group, region or provider")] = "provider",
) -> None:
    """Add a reading team; print its id."""
    try:
        team_kind = TeamKind(kind)
    except ValueError:
        raise typer.BadParameter(f"unknown kind {kind!r}", param_hint="--kind") from None
    with step(data_dir) as (_runtime, session):
        team_id = add_team(session, name=name, kind=team_kind).id
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
    minutes: dict[Urgency, int] = {}
    for item in target:
        name, _, value = item.partition("=")
        try:
            minutes[Urgency(name.strip())] = int(value)
        except ValueError:
            raise typer.BadParameter(f"{item!r}: write URGENCY=MINUTES",
                                     param_hint="--target") from None
    with step(data_dir) as (runtime, session):
        contract = add_contract(
            session, site_id=site_by_name(session, site).id, modality=modality,
            windows=[parse_window(w) for w in window], team_names=team,
            target_minutes=minutes, now=runtime.clock.now(),
        )
        contract_id = contract.id
    typer.echo(contract_id)


@contract_app.command("list")
def contract_list(site: str, data_dir: DataDir) -> None:
    """A site's contracts: modality, windows, cascade, targets."""
    with step(data_dir, readonly=True) as (_runtime, session):
        for contract in contracts_of(session, site_by_name(session, site).id):
            windows = "; ".join(
                f"{','.join(sorted(d.value for d in w.days))} {w.start:%H:%M}-{w.end:%H:%M}"
                for w in coverage(contract))
            teams = " > ".join(t.name for t in cascade(session, contract))
            turnaround = ", ".join(f"{u.value} {int(d.total_seconds() // 60)} min"
                                   for u, d in targets(contract).items())
            typer.echo(f"{contract.modality}\t{windows}\t{teams}\t{turnaround}")


@radiologist_app.command("add")
def radiologist_add(
    name: str,
    data_dir: DataDir,
    site: Annotated[list[str], typer.Option("--site", help="A site they may read for")],
    subspecialty: Annotated[list[str], typer.Option(
        "--subspecialty", help="neuro, paediatric, msk, cardiac, ...")] = [],  # noqa: B006
    user: Annotated[str | None, typer.Option(
        help="Their sign-in account (role radiologist or expert)")] = None,
) -> None:
    """Add a radiologist credentialed for the sites given; print their id."""
    with step(data_dir) as (runtime, session):
        radiologist = add_radiologist(
            session, name=name, site_ids=[site_by_name(session, s).id for s in site],
            subspecialties=subspecialty, now=runtime.clock.now(), username=user,
        )
        radiologist_id = radiologist.id
    typer.echo(radiologist_id)


@roster_app.command("import")
def roster_import(
    path: Path,
    data_dir: DataDir,
    timezone: Annotated[str, typer.Option(
        help="Zone of times written without offset (CSV) or floating (iCalendar)")] = (
        "Europe/Paris"),
) -> None:
    """Import shifts, all or none, from CSV (radiologist,team,start,end,role: primary or
    backup) or iCalendar (.ics, told by its content: one VEVENT a shift, recurrences over
    the next 120 days)."""
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(f"unknown time zone {timezone!r}", param_hint="--timezone"
                                 ) from None
    with step(data_dir) as (runtime, session):
        # utf-8-sig: spreadsheets and calendar exports often begin with a byte-order mark.
        count = import_shifts(session, text=path.read_text(encoding="utf-8-sig"), zone=zone,
                              now=runtime.clock.now())
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
    try:
        first_day = dt.date.fromisoformat(start) if start else None
    except ValueError:
        raise typer.BadParameter(f"{start!r}: write YYYY-MM-DD", param_hint="--from") from None
    with step(data_dir, readonly=True) as (runtime, session):
        found = site_by_name(session, site)
        zone = zoneinfo.ZoneInfo(found.timezone)
        first = first_day or runtime.clock.now().astimezone(zone).date()
        begin = dt.datetime.combine(first, dt.time(0), tzinfo=zone)
        end = dt.datetime.combine(first + dt.timedelta(days=days), dt.time(0), tzinfo=zone)
        holes = roster_gaps(session, site_id=found.id, modality=modality, start=begin, end=end)
    for hole in holes:
        typer.echo(f"gap\t{hole.start.astimezone(zone):%a %Y-%m-%d %H:%M}"
                   f"\t{hole.end.astimezone(zone):%a %Y-%m-%d %H:%M}")
    if holes:
        console.print(f"[red]{len(holes)} gap(s)[/red] in {modality.upper()} coverage at {site}")
        raise typer.Exit(1)
    typer.echo(f"{modality.upper()} at {site}: covered from {begin:%Y-%m-%d} for {days} days")
