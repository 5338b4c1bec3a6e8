"""``telerad simulate``: nights of emergency CT at S hospitals replayed through the real
workflow services on an injected clock, and the figures a site manager and a coordinator look
at: volumes, turnaround, deadlines met, escalations, each radiologist's load.

Here: the scenario (sites, contracts, roster; the requests of each night) and the figures;
the minute-by-minute engine and its radiologist agents are in :mod:`telerad.cli.simulation`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from telerad.auth.models import Role
from telerad.cli.common import console
from telerad.cli.simulation import (
    MINUTE,
    PARIS,
    PROVIDER,
    REGION,
    STABLE_AGE,
    Agent,
    Case,
    NightWindow,
    Outcome,
    Plan,
    SimSite,
    Simulation,
)
from telerad.clock import FrozenClock
from telerad.config import Settings
from telerad.db import transaction
from telerad.jobs import Job
from telerad.runtime import Runtime
from telerad.workflow.exams.models import Exam, ExamEvent, ExamState
from telerad.workflow.roster.service import add_radiologist
from telerad.workflow.sites.contracts import add_contract, add_team, parse_window
from telerad.workflow.sites.models import TeamKind, Urgency
from telerad.workflow.sites.service import add_site

URGENCY_MIX = ((Urgency.STROKE_ALERT, 5), (Urgency.LIFE_THREATENING, 15),
               (Urgency.URGENT, 50), (Urgency.SCHEDULED, 30))
PROTOCOL_MIX: dict[Urgency, tuple[tuple[str, int], ...]] = {
    Urgency.STROKE_ALERT: (("CT_STROKE", 1),),
    Urgency.LIFE_THREATENING: (("CT_TRAUMA", 35), ("CT_CTPA", 25), ("CT_HEAD", 25),
                               ("CT_ABDO_PELVIS", 15)),
    Urgency.URGENT: (("CT_HEAD", 55), ("CT_ABDO_PELVIS", 25), ("CT_CTPA", 15),
                     ("CT_TRAUMA", 5)),
    Urgency.SCHEDULED: (("CT_HEAD", 50), ("CT_ABDO_PELVIS", 35), ("CT_CTPA", 15)),
}
REFUSAL_SHARE = 0.03
#: Share of acquisitions the technologist marks done (the others wait for the stable age).
MARKED_DONE_SHARE = 0.7
#: Arrival intensity by local hour counted from the evening's midnight (linear in between):
#: busy evenings, a trough around 4 am, the morning picking up.
ARRIVAL_CURVE = ((18.5, 1.0), (21.0, 1.1), (24.0, 0.7), (28.0, 0.25), (32.0, 0.5))
CITIES = ("Carcassonne", "Narbonne", "Castelnaudary", "Limoux", "Béziers", "Perpignan",
          "Lézignan", "Quillan", "Prades", "Céret", "Sète", "Agde")
FIRST = ("Alice", "Bruno", "Chloé", "David", "Emma", "Farid", "Gaëlle", "Hugo", "Inès",
         "Julien", "Karima", "Louis", "Manon", "Nicolas", "Océane", "Paul", "Quentin", "Rose",
         "Samir", "Théo")
LAST = ("Martin", "Petit", "Roux", "Noir", "Blanc", "Gris", "Moreau", "Laurent", "Simon",
        "Michel", "Lefèvre", "Garcia", "Durand", "Bertrand", "Morel", "Fournier", "Girard",
        "Bonnet", "Dupont", "Lambert")
PASSWORD = "simulated night shift"  # noqa: S105 - accounts of a throw-away database
URGENCIES = [str(u) for u, _ in URGENCY_MIX]
ESCALATION_ORDER = (f"back-ups of team {PROVIDER}", f"team {REGION}", "coordinator")


# -- the scenario ---------------------------------------------------------------------------

def night_windows(plan: Plan) -> list[NightWindow]:
    """Each night 18:30 -> 08:00 Paris time, as UTC instants (a DST night lasts what it lasts)."""
    windows = []
    for index in range(plan.nights):
        day = plan.first_night + dt.timedelta(days=index)
        start = dt.datetime.combine(day, dt.time(18, 30), tzinfo=PARIS)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(8, 0), tzinfo=PARIS)
        windows.append(NightWindow(start=start.astimezone(dt.UTC), end=end.astimezone(dt.UTC)))
    return windows


def set_up(runtime: Runtime, plan: Plan, rng: random.Random) -> Outcome:
    """Sites with a CT contract every night 18:30-08:00 (cascade Provider then Region);
    max(4, S) radiologists at Provider (the last one back-up) and two at Region, all
    credentialed for every site, half of them neuro, every third one slower; a shift for
    each of them every night."""
    from telerad.auth.users import actor_for, create_user  # noqa: PLC0415 - Argon2 only here
    from telerad.workflow.roster.shifts import add_shift  # noqa: PLC0415

    now, windows = runtime.clock.now(), night_windows(plan)
    world = Outcome(sites=[], agents=[], windows=windows)
    with transaction(runtime.sessions) as session:
        for index in range(plan.sites):
            city = CITIES[index] if index < len(CITIES) else f"Site {index + 1}"
            ae_title = f"CT_SIM{index + 1:02d}"
            site_id = add_site(session, name=f"CH {city}", ae_titles=[ae_title], now=now).id
            world.sites.append(SimSite(id=site_id, name=city, ae_title=ae_title,
                                       weight=rng.uniform(0.6, 1.4)))
        teams = {PROVIDER: add_team(session, name=PROVIDER, kind=TeamKind.PROVIDER).id,
                 REGION: add_team(session, name=REGION, kind=TeamKind.REGION).id}
        for site in world.sites:
            add_contract(session, site_id=site.id, modality="CT", now=now,
                         windows=[parse_window("every 18:30-08:00")],
                         team_names=[PROVIDER, REGION])
        providers = max(4, plan.sites)
        members = [(PROVIDER, i, i == providers - 1) for i in range(providers)]
        members += [(REGION, i, False) for i in range(2)]
        for index, (team, rank, backup) in enumerate(members):
            name = f"Dr {FIRST[index % len(FIRST)]} {LAST[index * 7 % len(LAST)]}"
            name += f" {index // len(FIRST) + 1}" if index >= len(FIRST) else ""
            user = create_user(session, username=f"sim.rad{index + 1:02d}", display_name=name,
                               role=Role.RADIOLOGIST, password=PASSWORD, site_ids=[], now=now)
            radiologist = add_radiologist(
                session, name=name, site_ids=[s.id for s in world.sites], now=now,
                subspecialties=["neuro"] if rank % 2 == 0 else [], username=user.username)
            for window in windows:
                add_shift(session, radiologist_id=radiologist.id, team_id=teams[team],
                          start=window.start, end=window.end, backup=backup)
            world.agents.append(Agent(
                radiologist_id=radiologist.id, user_id=user.id, name=name, team=team,
                backup=backup, neuro=rank % 2 == 0, slowness=1.5 if index % 3 == 2 else 1.0,
                scope=actor_for(session, user).scope))
    return world


def _intensity(instant: dt.datetime) -> float:
    local = instant.astimezone(PARIS)
    hour = local.hour + local.minute / 60 + (24 if local.hour < 12 else 0)
    for (h0, w0), (h1, w1) in itertools.pairwise(ARRIVAL_CURVE):
        if hour <= h1:
            return w0 + (w1 - w0) * max(0.0, hour - h0) / (h1 - h0)
    return ARRIVAL_CURVE[-1][1]


def arrivals(plan: Plan, world: Outcome, night: int, rng: random.Random) -> list[Case]:
    """The night's requests: how many, when, where, how urgent, and what becomes of them."""
    window = world.windows[night]
    count = rng.randint(plan.exams_min, plan.exams_max)
    weights = [_intensity(window.start + m * MINUTE) for m in range(window.minutes)]
    offsets = sorted(rng.choices(range(window.minutes), weights=weights, k=count))
    cases: list[Case] = []
    for offset in offsets:
        urgency = rng.choices([u for u, _ in URGENCY_MIX], [w for _, w in URGENCY_MIX])[0]
        mix, stroke = PROTOCOL_MIX[urgency], urgency == Urgency.STROKE_ALERT
        cases.append(Case(
            index=len(world.cases) + len(cases), night=night,
            site=rng.choices(range(len(world.sites)), [s.weight for s in world.sites])[0],
            urgency=urgency, protocol=rng.choices([p for p, _ in mix], [w for _, w in mix])[0],
            arrives_at=window.start + offset * MINUTE,
            justify_delay=rng.randint(1, 5) * MINUTE,
            acquisition_delay=rng.randint(5, 10 if stroke else 20) * MINUTE,
            refused=rng.random() < REFUSAL_SHARE,
            marked_done=not stroke and rng.random() < MARKED_DONE_SHARE))
    return cases


# -- the figures ----------------------------------------------------------------------------

def spread(clock: str, urgency: str, minutes: list[float]) -> dict[str, Any]:
    """Count and nearest-rank percentiles of a list of durations in minutes."""
    values = sorted(minutes)

    def rank(p: float) -> float | None:
        return values[max(math.ceil(p / 100 * len(values)) - 1, 0)] if values else None

    return {"clock": clock, "urgency": urgency, "count": len(values), "p50": rank(50),
            "p90": rank(90), "p95": rank(95), "max": values[-1] if values else None}


def _minutes(later: dt.datetime, earlier: dt.datetime) -> float:
    return round((later - earlier).total_seconds() / 60, 1)


def figures(runtime: Runtime, plan: Plan, world: Outcome) -> dict[str, Any]:
    """The run's figures, from the database (exams, timelines, jobs) and the agents."""
    with transaction(runtime.sessions, readonly=True) as session:
        rows = {e.id: e for e in session.scalars(select(Exam))}
        escalations = list(session.execute(select(ExamEvent.exam_id, ExamEvent.at,
                                                  ExamEvent.detail)
                                           .where(ExamEvent.kind == "escalated")))
        failed_jobs = session.scalar(select(func.count()).select_from(Job)
                                     .where(Job.last_error.is_not(None)))
    night_of = {c.exam_id: c.night for c in world.cases}
    by_target = Counter(str(json.loads(e.detail).get("to")) for e in escalations)
    volumes, states = [], Counter[str]()
    for night, window in enumerate(world.windows):
        cases = [c for c in world.cases if c.night == night]
        per_state = Counter(rows[c.exam_id].state for c in cases)
        states.update(per_state)
        volumes.append({
            "night": window.start.astimezone(PARIS).date().isoformat(),
            "sites": {s.name: sum(c.site == i for c in cases) for i, s in enumerate(world.sites)},
            "total": len(cases), "reported": per_state[ExamState.FINAL],
            "refused": per_state[ExamState.REFUSED],
            "pending": len(cases) - per_state[ExamState.FINAL] - per_state[ExamState.REFUSED]})
    turnaround, deadlines = [], []
    for clock in ("ready -> reported", "filed -> validated"):
        for urgency in (*URGENCIES, "all"):
            exams = [rows[c.exam_id] for c in world.cases if urgency in ("all", c.urgency)]
            turnaround.append(spread(clock, urgency, [
                _minutes(e.reported_at, e.ready_at) for e in exams if e.reported_at and e.ready_at
            ] if clock.startswith("ready") else [
                _minutes(e.decided_at, e.filed_at) for e in exams
                if e.decided_at and e.filed_at and e.state != ExamState.REFUSED]))
    for urgency in (*URGENCIES, "all"):
        met = late = not_due = 0
        for case in world.cases:
            exam = rows[case.exam_id]
            if urgency not in ("all", case.urgency) or exam.due_at is None:
                continue
            if exam.reported_at is not None:
                met, late = met + (exam.reported_at <= exam.due_at), late + (
                    exam.reported_at > exam.due_at)
            elif exam.due_at <= world.windows[case.night].end:  # overdue when handed over
                late += 1
            else:
                not_due += 1
        deadlines.append({"urgency": urgency, "met": met, "late": late, "not_yet_due": not_due,
                          "share_met": round(met / (met + late), 3) if met + late else None})
    on_duty = sum(w.minutes for w in world.windows)
    load = []
    for agent in world.agents:
        read = [_minutes(e.reported_at, e.claimed_at) for e in rows.values()
                if e.reader_id == agent.radiologist_id and e.reported_at and e.claimed_at]
        load.append({
            "name": agent.name, "team": agent.team, "backup": agent.backup,
            "neuro": agent.neuro, "slow": agent.slowness > 1, "read": len(read),
            "justified": agent.justified,
            "mean_reading_minutes": round(sum(read) / len(read), 1) if read else None,
            "busy_share": round(min(agent.busy_minutes / on_duty, 1.0), 3)})
    return {
        "plan": {"nights": plan.nights, "sites": plan.sites, "seed": plan.seed,
                 "exams_per_night": [plan.exams_min, plan.exams_max],
                 "first_night": plan.first_night.isoformat()},
        "exams": {"total": len(world.cases), "states": dict(sorted(states.items())),
                  "reported": states[ExamState.FINAL], "refused": states[ExamState.REFUSED],
                  "pending": len(world.cases) - states[ExamState.FINAL]
                  - states[ExamState.REFUSED]},
        "volumes": volumes,
        "turnaround_minutes": turnaround,
        "deadlines": deadlines,
        "escalations": {
            "total": len(escalations),
            "by_target": dict(sorted(by_target.items(), key=lambda kv: (
                *ESCALATION_ORDER, kv[0]).index(kv[0]))),
            "after_handover": sum(e.at > world.windows[night_of[e.exam_id]].end
                                  for e in escalations if e.exam_id in night_of)},
        "radiologists": load,
        "claims_lost_to_a_colleague": world.races,
        "requests_phoned": world.phoned,
        "failed_jobs": failed_jobs or 0,
    }


def _table(title: str, columns: list[str], rows: list[list[str]], left: int = 1) -> Table:
    table = Table(title=title)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index < left else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _cell(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}"


def render(out: Console, fig: dict[str, Any]) -> None:
    plan, exams, escalations = fig["plan"], fig["exams"], fig["escalations"]
    out.print(f"[bold]telerad simulate[/bold]: {plan['nights']} night(s) from "
              f"{plan['first_night']}, {plan['sites']} site(s), seed {plan['seed']}, "
              f"{plan['exams_per_night'][0]}-{plan['exams_per_night'][1]} exams per night")
    sites = list(fig["volumes"][0]["sites"])
    out.print(_table("Exams per night and site",
                     ["night", *sites, "total", "reported", "refused", "pending"],
                     [[v["night"], *(str(v["sites"][s]) for s in sites),
                       *(str(v[k]) for k in ("total", "reported", "refused", "pending"))]
                      for v in fig["volumes"]]))
    pending = ", ".join(f"{state} {n}" for state, n in exams["states"].items()
                        if state not in (ExamState.FINAL, ExamState.REFUSED)) or "none"
    out.print(f"exams: {exams['total']} = {exams['reported']} reported + {exams['refused']} "
              f"refused + {exams['pending']} pending, handed over at 08:00 ({pending})")
    out.print(_table("Turnaround (minutes)",
                     ["clock", "urgency", "exams", "p50", "p90", "p95", "max"],
                     [[s["clock"], s["urgency"], str(s["count"]),
                       *(_cell(s[k]) for k in ("p50", "p90", "p95", "max"))]
                      for s in fig["turnaround_minutes"]], left=2))
    out.print(_table("Deadlines (reported before due_at)",
                     ["urgency", "met", "late", "not yet due", "share met"],
                     [[d["urgency"], str(d["met"]), str(d["late"]), str(d["not_yet_due"]),
                       _cell(None if d["share_met"] is None else round(100 * d["share_met"], 1),
                             " %")] for d in fig["deadlines"]]))
    out.print(f"escalations: {escalations['total']} ({escalations['after_handover']} of exams "
              "already handed over)" + "".join(f"\n  to {target}: {count}" for target, count
                                               in escalations["by_target"].items()))
    out.print(_table("Radiologists",
                     ["radiologist", "team", "read", "justified", "mean reading min", "busy"],
                     [[r["name"] + " (back-up)" * r["backup"] + " (neuro)" * r["neuro"]
                       + " (slow)" * r["slow"], r["team"], str(r["read"]), str(r["justified"]),
                       _cell(r["mean_reading_minutes"]), f"{100 * r['busy_share']:.0f} %"]
                      for r in fig["radiologists"]], left=2))
    out.print(f"claims lost to a colleague: {fig['claims_lost_to_a_colleague']}; requests "
              f"phoned to a busy radiologist: {fig['requests_phoned']}; failed jobs: "
              f"{fig['failed_jobs']}")


# -- the command ----------------------------------------------------------------------------

def _range(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    low, high = (int(match[1]), int(match[2] or match[1])) if match else (0, -1)
    if not 1 <= low <= high <= 5000:
        raise typer.BadParameter(f"MIN-MAX with 1 <= MIN <= MAX <= 5000, not {text!r}",
                                 param_hint="--exams-per-night")
    return low, high


@contextmanager
def _folder(chosen: Path | None) -> Iterator[Path]:
    if chosen is None:
        with tempfile.TemporaryDirectory(prefix="telerad-simulate-") as folder:
            yield Path(folder)
    elif chosen.exists() and any(chosen.iterdir()):
        console.print(f"[red]error[/red]: --data-dir {chosen} is not empty; the simulation "
                      "builds its own sites and roster in a new database", soft_wrap=True)
        raise typer.Exit(2)
    else:
        yield chosen


def simulate(  # noqa: PLR0917 - the options of a command
    nights: Annotated[int, typer.Option(min=1, max=366, help="Nights to simulate.")],
    sites: Annotated[int, typer.Option(min=1, max=100, help="Hospitals (CT every night).")],
    seed: Annotated[int, typer.Option(help="Seed of every random draw: same seed, "
                                           "same figures.")] = 1,
    exams_per_night: Annotated[str, typer.Option(
        "--exams-per-night", metavar="MIN-MAX",
        help="Requests per night over all sites, drawn uniformly.")] = "100-300",
    first_night: Annotated[str, typer.Option(
        "--first-night", metavar="YYYY-MM-DD", help="Date of the first evening.")
    ] = "2026-11-24",
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Keep the database and images in this new or empty folder "
                           "(default: a temporary folder, removed afterwards).")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", metavar="FILE", help="Also write the figures as JSON.")] = None,
) -> None:
    """Replay nights of emergency CT (requests, justification, images, routing, claims,
    escalations) through telerad's real workflow services on a simulated clock; print the
    figures."""
    low, high = _range(exams_per_night)
    try:
        first = dt.date.fromisoformat(first_night)
    except ValueError:
        raise typer.BadParameter("YYYY-MM-DD", param_hint="--first-night") from None
    plan = Plan(nights=nights, sites=sites, seed=seed, exams_min=low, exams_max=high,
                first_night=first)
    out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 110)
    started = time.perf_counter()
    with _folder(data_dir) as folder:
        clock = FrozenClock(night_windows(plan)[0].start - dt.timedelta(hours=1))
        runtime = Runtime.open(Settings(data_dir=folder, stable_age=STABLE_AGE), clock=clock)
        try:
            rng = random.Random(seed)
            world = set_up(runtime, plan, rng)
            for night in range(nights):
                world.cases += arrivals(plan, world, night, rng)
            set_up_seconds = time.perf_counter() - started
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("simulated minutes"), TimeElapsedColumn(),
                          console=console) as progress:
                tasks: list[Any] = []

                def on_night(night: int, window: NightWindow) -> None:
                    label = window.start.astimezone(PARIS).strftime("%a %d %b")
                    tasks.append(progress.add_task(f"night {night + 1}/{nights} ({label})",
                                                   total=window.minutes))

                Simulation(runtime, clock, plan, world, rng).run(
                    on_night=on_night, on_minute=lambda: progress.advance(tasks[-1]))
            fig = figures(runtime, plan, world)
        finally:
            runtime.close()
    elapsed = time.perf_counter() - started
    render(out, fig)
    out.print(f"wall-clock: {elapsed:.1f} s (set-up {set_up_seconds:.1f} s; "
              f"{1000 * elapsed / max(1, fig['exams']['total']):.0f} ms per exam)")
    if json_out is not None:
        json_out.write_text(json.dumps({**fig, "wall_clock_seconds": round(elapsed, 2)},
                                       indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
