"""``telerad demo``: the whole platform working live, on the embedded default (SQLite and a
folder).

Two example hospitals (CT read remotely every night, MRI every day), a provider team and a
regional team in cascade, six radiologists on a roster of the current and the next week, and
an account for every role (:mod:`telerad.cli.demo_world`); then the server, and once it
answers, the sign-ins and the URLs to open, and the simulated hospitals
(:mod:`telerad.cli.demo_stream`) filling the worklist until Ctrl-C.

``telerad demo-code USERNAME`` prints the current second-factor code of an example account
(:func:`telerad.cli.demo_world.demo_code`).
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from telerad.cli.demo_stream import Stream
from telerad.cli.demo_world import (
    CONTRACTS,
    PARIS,
    PASSWORD,
    PROVIDER,
    REGION,
    SITES,
    SignIn,
    build,
    claim_data_dir,
    covered,
    on_duty_now,
    open_demo_runtime,
    sign_ins,
)
from telerad.cli.server import run_server
from telerad.clock import SystemClock
from telerad.db import transaction
from telerad.gateway.dicom import DicomGateway
from telerad.runtime import Runtime
from telerad.workflow.roster.rules import french_holidays
from telerad.workflow.sites.models import Site

#: What each page is for, and who opens it.
PAGES = (("sign-in", "/signin", "every account"),
         ("worklist", "/worklist", "radiologists: justify, claim, read"),
         ("portal", "/portal", "emergency doctors, technologists, site manager"),
         ("admin", "/admin", "coordinator, admin: sites, contracts, roster, users"),
         ("API docs", "/docs", "the JSON API, to try from the browser"))
ROLE_TEXT = {"requesting_physician": "emergency doctor", "technologist": "technologist",
             "site_manager": "site manager", "coordinator": "coordinator", "expert": "expert",
             "admin": "admin", "radiologist": "radiologist"}


def _public(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - a URL to open


def run_demo(data_dir: Path, *, http_host: str, http_port: int, dicom_host: str,
             dicom_port: int, every: float, stream: bool, console: Console) -> None:
    """Set up (or complete) the example world in ``data_dir``, serve until SIGINT/SIGTERM."""
    new = claim_data_dir(data_dir, now=SystemClock().now())
    runtime = open_demo_runtime(data_dir)
    doing = "setting up the example hospitals" if new else "checking the roster"
    with console.status(f"{doing} ..."), transaction(runtime.sessions) as session:
        built = build(session, now=runtime.clock.now())
    if built.created:
        console.print(f"created in {data_dir}: {len(SITES)} hospitals, their contracts, the "
                      f"teams, {sum(w.startswith('radiologist') for w in built.created)} "
                      f"radiologists and {sum(w.startswith('account') for w in built.created)} "
                      "other accounts", highlight=False)
    if built.shifts_added:
        console.print(f"roster: {built.shifts_added} shifts added (this week and the next)",
                      highlight=False)
    feeder: list[Stream] = []

    def announce(gateway: DicomGateway) -> None:
        base = f"http://{_public(http_host)}:{http_port}"
        _wait_http(base + "/healthz")
        show(runtime, console, base=base, data_dir=data_dir,
             dicom=f"{runtime.settings.ae_title}@{_public(dicom_host)}:{gateway.port}")
        if stream:
            # A send cut short when the server stops makes pynetdicom's association thread
            # log an error with a traceback; the stream says itself when a send fails, and
            # keeps quiet at shutdown.
            logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
            feeder.append(Stream(runtime, every=every, dicom_host=dicom_host,
                                 dicom_port=gateway.port, console=console))
            feeder[0].start()
            console.print(f"[bold]The hospitals are busy[/bold]: a request every {every:g} s "
                          "(--every; --no-stream for none).", highlight=False)
        console.print(f"[bold green]telerad demo ready[/bold green] at {base} — Ctrl-C stops "
                      "everything.", highlight=False)

    try:
        run_server(runtime, http_host=http_host, http_port=http_port, dicom_host=dicom_host,
                   dicom_port=dicom_port,
                   on_ready=lambda gw: threading.Thread(target=announce, args=(gw,),
                                                        name="demo-announce", daemon=True).start())
    finally:
        for running in feeder:
            running.stop()
    console.print(f"demo stopped; its data stays in {data_dir} (run `telerad demo --data-dir "
                  f"{data_dir}` again to go on)", highlight=False, soft_wrap=True)


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - our own loopback URL
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)


def _table(rows: list[SignIn], on_duty: set[str]) -> Table:
    table = Table()
    for column in ("role", "username", "name", "sites or duty", "second factor (TOTP secret)"):
        table.add_column(column, no_wrap=column in ("username", "second factor (TOTP secret)"))
    for row in rows:
        name = row.display_name + (" [bold](on duty now)[/bold]" if row.username in on_duty
                                   else "")
        table.add_row(ROLE_TEXT.get(row.role, row.role), row.username, name, escape(row.where),
                      row.totp_secret or "— (password only)")
    return table


def show(runtime: Runtime, console: Console, *, base: str, data_dir: Path, dicom: str) -> None:
    """The example world, the sign-ins and the URLs, as they are now."""
    now = runtime.clock.now()
    with transaction(runtime.sessions, readonly=True) as session:
        rows = sign_ins(session)
        duty = on_duty_now(session, now=now)
        site_ids = set(session.scalars(select(Site.id).where(
            Site.name.in_([s.name for s in SITES]))))
        now_covered = covered(session, now, site_ids=site_ids, holidays=french_holidays())
    console.print()
    console.print("[bold]telerad demo[/bold] — two example hospitals, read remotely",
                  highlight=False)
    for spec in SITES:
        reading = "; ".join(f"{m} {w}" for key, m, w in CONTRACTS if key == spec.key)
        scanners = ", ".join((spec.ct_ae_title, *spec.other_ae_titles))
        console.print(f"  {spec.name}: scanners {scanners}; read remotely: {reading}",
                      highlight=False)
    console.print(f"  reading teams in cascade: {PROVIDER} (provider), then {REGION} (region); "
                  "roster: this week and the next", highlight=False)
    local = now.astimezone(PARIS)
    what = ", ".join(f"{c.modality} at {c.site_name}" for c in now_covered) or "nothing"
    console.print(f"  now ({local:%a %H:%M} Europe/Paris) covered: {what}", highlight=False)
    console.print()
    console.print(f"[bold]Sign-ins[/bold] — every account's password: {PASSWORD}",
                  highlight=False)
    console.print(_table(rows, {u for u, _n, _e in duty}))
    console.print(f"A second factor: put the secret in an authenticator app, or run "
                  f"[bold]telerad demo-code USERNAME --data-dir {data_dir}[/bold] "
                  "(a code is accepted once; the next one comes within 30 s).",
                  highlight=False, soft_wrap=True)
    for username, name, until in duty[:1]:
        console.print(f"On duty now: {username} ({name}) until "
                      f"{until.astimezone(PARIS):%a %H:%M} — sign in as {username} to justify "
                      "requests and take the exams that arrive.", highlight=False, soft_wrap=True)
    console.print("Filing a request: urgences.carcassonne (or urgences.narbonne) in the portal.",
                  highlight=False)
    console.print()
    for label, path, who in PAGES:
        console.print(f"  {label:<9} {base}{path:<10}  {who}", highlight=False, soft_wrap=True)
    console.print(f"  {'DICOM':<9} {dicom}  (C-STORE from the scanners' AE titles; Modality "
                  "Worklist)", highlight=False, soft_wrap=True)
    console.print()
