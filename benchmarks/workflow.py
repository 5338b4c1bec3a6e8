"""Reading workflow benchmark (issue 3): how routing, the worklist and claims grow with the
roster, with 100,000 exams in the index.

For each roster size (10, 100 and 1,000 radiologists) a fresh database holds 20 sites (CT
contracts every night 18:30-08:00, a cascade of 3 teams), radiologists spread over the teams
(each credentialed for 3 to 6 sites, one in five for all, about a third with "neuro"), half
of them on duty tonight (a third of those as back-ups), a week of past nights (7 shifts per
radiologist), and the exams: mostly final, delivered, cancelled or refused over the past six
months, plus a live set of 300 ready, 100 in reading, 50 filed. On a frozen clock at 23:30 on
a Tuesday night, each ``--repeat`` times:

1. ``assignments.worklist`` of five on-duty radiologists in turn (the first credentialed for
   every site), in a read-only transaction, as the GET /api/worklist route runs it;
2. ``Router.explain`` of ready exams, in a read-only transaction (GET /api/exams/{id}/routing);
3. ``assignments.claim`` of distinct ready exams by a radiologist they are offered to, each in
   its own write transaction, commit included (given back untimed when there are more
   repetitions than claimable exams);
4. GET /api/worklist end to end through FastAPI's TestClient, signed in as those five
   radiologists (the route also commits its audit event).

It prints p50 / p95 / max of each, the SQL statements of one call, the full garbage
collections during the measures, a cProfile of one worklist call when its p95 misses the
target, then a table, the growth of each p95 relative to the first size, and PASS / FAIL.

    .venv/bin/python benchmarks/workflow.py [--radiologists 10 100 1000] [--exams 100000]
        [--repeat 200] [--quick] [--no-http] [--profile] [--no-gc-freeze]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

With ``--database-url`` each size runs in a throw-away database created on that server and
dropped afterwards (as tests/conftest.py does). ``--quick``: 10,000 exams, 50 repetitions.
``--profile`` prints the cProfile even when the worklist meets its target. After seeding the
script calls ``gc.freeze()``, as ``telerad serve`` does once started; ``--no-gc-freeze``
skips it, to see what full collections of a large heap cost.

Run time on a 2-vCPU machine: the full run about 85 s on SQLite (20 s of it seeding) and
120 s on PostgreSQL; ``--quick`` about 30 s.

Targets (SQLite): worklist p95 under 50 ms, claim p95 under 20 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import gc
import io
import math
import os
import pstats
import random
import secrets
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import event, insert, select, update

from telerad.auth.models import Role
from telerad.auth.service import Permission, Scope
from telerad.auth.users import ROLE_PERMISSIONS, create_user, sign_in
from telerad.clock import FrozenClock
from telerad.config import Settings
from telerad.db import transaction
from telerad.runtime import Runtime
from telerad.workflow.assignments import service as assignments
from telerad.workflow.assignments.routing import Router
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.exams.queries import get_exam
from telerad.workflow.exams.rules import URGENCY_RANK, claim_window
from telerad.workflow.requests.service import add_protocol
from telerad.workflow.roster.models import Radiologist, ShiftRow
from telerad.workflow.roster.service import add_radiologist
from telerad.workflow.sites.contracts import add_contract, add_team, parse_window
from telerad.workflow.sites.models import DEFAULT_TARGETS, TeamKind, Urgency
from telerad.workflow.sites.service import add_site

# Imported before any measure, as in a server: the collector then walks the same heap.
with warnings.catch_warnings():  # Starlette's notice about httpx: not ours to act on
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

    from telerad.web.app import create_app

PARIS = ZoneInfo("Europe/Paris")
#: A Tuesday night: every contract's coverage (18:30-08:00) is running.
NOW = dt.datetime(2026, 11, 24, 23, 30, tzinfo=PARIS)
SITES = 20
TEAMS = [("Bench GHT", TeamKind.GROUP), ("Bench Region", TeamKind.REGION),
         ("Bench Provider", TeamKind.PROVIDER)]
PASSWORD = "correct horse battery"
#: The live set: ready exams offered for reading, exams in reading, requests to justify.
LIVE = {ExamState.READY: 300, ExamState.IN_READING: 100, ExamState.FILED: 50,
        ExamState.VALIDATED: 30, ExamState.ACQUIRING: 20}
TERMINAL = [(ExamState.DELIVERED, 65), (ExamState.FINAL, 20), (ExamState.CANCELLED, 10),
            (ExamState.REFUSED, 5)]
URGENCIES = [(Urgency.STROKE_ALERT, 5), (Urgency.LIFE_THREATENING, 15), (Urgency.URGENT, 40),
             (Urgency.SCHEDULED, 40)]
WORKLIST_TARGET, CLAIM_TARGET = 50.0, 20.0  # ms, p95, on SQLite
PROBES = 5  # radiologists whose worklist is measured


@dataclass
class World:
    """What one size's database holds, by id."""

    runtime: Runtime
    radiologists: int
    exams: int
    credentials: dict[int, list[int]] = field(default_factory=dict)
    on_duty: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)


@dataclass
class Timings:
    """Milliseconds per call of one measure."""

    samples: list[float]

    def p(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    def line(self, label: str) -> str:
        return (f"   {label:<34} p50 {statistics.median(self.samples):7.2f}  "
                f"p95 {self.p(0.95):7.2f}  max {max(self.samples):7.2f} ms  "
                f"(n={len(self.samples)})")


class SqlMeter:
    """Statements sent to the database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *_args: Any) -> None:
        self.count += 1


class GcMeter:
    """Full (generation 2) garbage collections and the time they stopped the process."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self._started) * 1000)

    def report(self) -> str:
        if not self.pauses:
            return "no full collection"
        return (f"{len(self.pauses)} full collections, median {statistics.median(self.pauses):.1f}"
                f" ms, max {max(self.pauses):.1f} ms")

    def close(self) -> None:
        gc.callbacks.remove(self._callback)


def measure(repeat: int, fn: Callable[[int], object], *, warmup: int = 3) -> Timings:
    for i in range(warmup):
        fn(i)
    samples = []
    for i in range(repeat):
        started = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - started) * 1000)
    return Timings(samples)


def weighted(rng: random.Random, choices: list[tuple[Any, int]]) -> Any:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def night(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return (dt.datetime.combine(day, dt.time(18, 30), tzinfo=PARIS),
            dt.datetime.combine(day + dt.timedelta(days=1), dt.time(8, 0), tzinfo=PARIS))


def seed_roster(world: World, rng: random.Random) -> list[int]:
    """Sites, teams, contracts, protocols, radiologists and shifts; returns the site ids."""
    now = NOW - dt.timedelta(days=200)
    with transaction(world.runtime.sessions) as session:
        sites = [add_site(session, name=f"CH Bench {i:02d}", ae_titles=[f"CT_BENCH{i:02d}"],
                          now=now).id for i in range(SITES)]
        teams = [add_team(session, name=name, kind=kind) for name, kind in TEAMS]
        for i, site_id in enumerate(sites):  # each site prefers another team first
            order = teams[i % 3:] + teams[:i % 3]
            add_contract(session, site_id=site_id, modality="CT", now=now,
                         windows=[parse_window("every 18:30-08:00")],
                         team_names=[t.name for t in order])
        add_protocol(session, code="CT_HEAD_STROKE", name="Stroke CT", modality="CT",
                     subspecialty="neuro")
        add_protocol(session, code="CT_ABDO", name="CT abdomen", modality="CT")
        add_protocol(session, code="CT_THORAX", name="CT thorax", modality="CT")
        shifts: list[dict[str, Any]] = []
        for r in range(world.radiologists):
            site_ids = sites if r % 5 == 0 else rng.sample(sites, rng.randint(3, 6))
            radiologist = add_radiologist(
                session, name=f"Dr Bench {r:04d}", site_ids=site_ids, now=now,
                subspecialties=["neuro"] if rng.random() < 1 / 3 else [])
            world.credentials[radiologist.id] = sorted(site_ids)
            team = teams[r % 3].id
            for k in range(1, 8):  # the past week, one night each
                start, end = night(NOW.date() - dt.timedelta(days=k))
                shifts.append({"radiologist_id": radiologist.id, "team_id": team,
                               "starts_at": start, "ends_at": end, "backup": False})
            if (r // 3) % 2 == 0:  # tonight: half the roster, a third of it as back-ups
                start, end = night(NOW.date())
                shifts.append({"radiologist_id": radiologist.id, "team_id": team,
                               "starts_at": start, "ends_at": end,
                               "backup": (r // 6) % 3 == 1})
                world.on_duty.append(radiologist.id)
        session.execute(insert(ShiftRow), shifts)
    return sites


def exam_row(n: int, state: ExamState, *, rng: random.Random, sites: list[int],
             readers: list[int]) -> dict[str, Any]:
    """One exam as a row: terminal ones over the past six months, live ones tonight."""
    live = state in LIVE
    urgency: Urgency = weighted(rng, URGENCIES)
    target = dt.timedelta(minutes=DEFAULT_TARGETS[urgency])
    created = (NOW - dt.timedelta(minutes=rng.uniform(20, 300)) if live
               else NOW - dt.timedelta(days=rng.uniform(1, 180)))
    decided = None if state == ExamState.FILED else created + dt.timedelta(minutes=5)
    accepted = state not in (ExamState.FILED, ExamState.REFUSED)
    imaged = state not in (ExamState.FILED, ExamState.REFUSED, ExamState.VALIDATED,
                           ExamState.CANCELLED)
    ready = created + dt.timedelta(minutes=rng.uniform(10, 20)) if imaged else None
    if state == ExamState.READY:  # within the last two hours, so escalations are running
        ready = NOW - dt.timedelta(minutes=rng.uniform(1, 120))
    level = rng.choice([0, 0, 0, 1, 1, 2]) if state == ExamState.READY else 0
    read = state in (ExamState.FINAL, ExamState.DELIVERED)
    protocol = None
    if decided and state != ExamState.REFUSED:
        protocol = ("CT_HEAD_STROKE" if urgency == Urgency.STROKE_ALERT or rng.random() < 0.2
                    else rng.choice(["CT_ABDO", "CT_THORAX"]))
    return {
        "site_id": rng.choice(sites), "state": str(state), "urgency": str(urgency),
        "urgency_rank": URGENCY_RANK[urgency], "modality": "CT",
        "patient_id": f"P{n:07d}", "patient_name": f"BENCH^PATIENT{n:07d}",
        "patient_birth_date": "19500101", "patient_sex": rng.choice("FM"), "ins": "",
        "requesting_physician": "URGENCES^DR", "clinical_context": "",
        "clinical_question": "suspicion of stroke", "exam_asked": "CT head",
        "contraindications": "{}", "filed_by": None, "filed_at": created,
        "protocol_code": protocol, "decided_by": None, "decided_at": decided,
        "refusal_reason": "not justified" if state == ExamState.REFUSED else "",
        "accession_number": f"B{n:09d}" if accepted else None,
        "study_instance_uid": f"1.2.826.0.1.3680043.8.498.78.{n}" if accepted else None,
        "first_image_at": ready - dt.timedelta(minutes=5) if ready else None,
        "ready_at": ready, "completion": "expected_series" if ready else "",
        "reader_id": rng.choice(readers) if read or state == ExamState.IN_READING else None,
        "claimed_at": ready + dt.timedelta(minutes=3) if ready and state != ExamState.READY
        else None,
        "claim_due_at": ready + claim_window(target) * (level + 1) if ready else None,
        "due_at": ready + target if ready else None, "escalation_level": level,
        "coordinator_called_at": None,
        "reported_at": ready + target / 2 if read and ready else None,
        "created_at": created, "version": 5,
    }


def seed_exams(world: World, sites: list[int], rng: random.Random) -> None:
    states = [s for s, count in LIVE.items() for _ in range(count)]
    states += [weighted(rng, TERMINAL) for _ in range(world.exams - len(states))]
    rng.shuffle(states)
    readers = list(world.credentials)
    with transaction(world.runtime.sessions) as session:
        for chunk in range(0, len(states), 10_000):
            session.execute(insert(Exam), [
                exam_row(n, state, rng=rng, sites=sites,
                         readers=world.on_duty if state == ExamState.IN_READING else readers)
                for n, state in enumerate(states[chunk:chunk + 10_000], start=chunk)])
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            session.execute(sa.text("ANALYZE"))  # what autovacuum does soon after a bulk load
        world.ready = list(session.scalars(
            select(Exam.id).where(Exam.state == ExamState.READY).order_by(Exam.id)))


def radiologist_scope(site_ids: list[int]) -> Scope:
    return Scope(permissions=ROLE_PERMISSIONS[Role.RADIOLOGIST], site_ids=frozenset(site_ids))


EVERYWHERE = Scope(permissions=frozenset(Permission))


@dataclass
class Result:
    radiologists: int
    exams: int
    on_duty: int
    worklist: Timings
    explain: Timings
    claim: Timings
    http: Timings | None


def run_worklist(world: World, radiologist_id: int) -> int:
    with transaction(world.runtime.sessions, readonly=True) as session:
        return len(assignments.worklist(
            session, scope=radiologist_scope(world.credentials[radiologist_id]),
            radiologist_id=radiologist_id, now=world.runtime.clock.now()))


def run_explain(world: World, exam_id: int) -> None:
    with transaction(world.runtime.sessions, readonly=True) as session:
        exam = get_exam(session, scope=EVERYWHERE, exam_id=exam_id)
        Router(session, world.runtime.clock.now()).explain(exam)


def claimable(world: World) -> list[tuple[int, int]]:
    """(ready exam, a radiologist it is offered to now), for the exams offered to anyone."""
    rng, pairs = random.Random(3), []
    with transaction(world.runtime.sessions, readonly=True) as session:
        router = Router(session, world.runtime.clock.now())
        for exam_id in world.ready:
            _ladder, verdicts, _covered = router.explain(session.get_one(Exam, exam_id))
            eligible = [v.radiologist_id for v in verdicts if v.eligible]
            if eligible:
                pairs.append((exam_id, rng.choice(eligible)))
    return pairs


def run_claim(world: World, exam_id: int, radiologist_id: int) -> None:
    with transaction(world.runtime.sessions) as session:
        exam = get_exam(session, scope=radiologist_scope(world.credentials[radiologist_id]),
                        exam_id=exam_id)
        assignments.claim(session, exam, radiologist=session.get_one(Radiologist, radiologist_id),
                          now=world.runtime.clock.now())


def give_back(world: World, exam_ids: list[int]) -> None:
    """Put claimed exams back in the ready set (untimed), so the live set stays the same."""
    with transaction(world.runtime.sessions) as session:
        session.execute(update(Exam).where(Exam.id.in_(exam_ids))
                        .values(state=ExamState.READY, reader_id=None, claimed_at=None))


def measure_claims(world: World, repeat: int) -> Timings:
    pairs = claimable(world)
    if not pairs:
        raise SystemExit("no ready exam is offered to anyone on duty: check the roster")
    print(f"   {len(pairs)} of {len(world.ready)} ready exams are offered to someone on duty")
    samples: list[float] = []
    for first in range(0, repeat, len(pairs)):
        batch = pairs[:min(len(pairs), repeat - first)]
        for exam_id, radiologist_id in batch:
            started = time.perf_counter()
            run_claim(world, exam_id, radiologist_id)
            samples.append((time.perf_counter() - started) * 1000)
        give_back(world, [e for e, _ in batch])
    return Timings(samples)


def measure_http(world: World, probes: list[int], repeat: int) -> Timings:
    tokens = []
    with transaction(world.runtime.sessions) as session:
        for radiologist_id in probes:
            username = f"bench_{radiologist_id}"
            user = create_user(session, username=username, display_name=username,
                               role=Role.RADIOLOGIST, password=PASSWORD, now=NOW,
                               site_ids=world.credentials[radiologist_id])
            session.get_one(Radiologist, radiologist_id).user_id = user.id
            tokens.append(sign_in(session, username=username, password=PASSWORD,
                                  now=NOW).token)
    client = TestClient(create_app(world.runtime))

    def get(i: int) -> None:
        response = client.get("/api/worklist",
                              headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"})
        assert response.status_code == 200, response.text

    return measure(repeat, get)


def profile_worklist(world: World, radiologist_id: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    run_worklist(world, radiologist_id)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(10)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    print(f"   cProfile of one worklist call (radiologist #{radiologist_id}), top 10 cumulative:")
    for line in lines[start:]:
        print(f"     {line[:140]}")


def benchmark(world: World, args: argparse.Namespace) -> Result:
    rng = random.Random(world.radiologists)
    started = time.perf_counter()
    sites = seed_roster(world, rng)
    roster_time = time.perf_counter() - started
    seed_exams(world, sites, rng)
    print(f"-- {world.radiologists} radiologists ({len(world.on_duty)} on duty tonight), "
          f"{world.exams:,} exams: roster {roster_time:.1f} s, "
          f"exams {time.perf_counter() - started - roster_time:.1f} s")
    if args.gc_freeze:  # what telerad serve does once started: the heap so far is permanent
        gc.collect()
        gc.freeze()
    meter, pauses = SqlMeter(world.runtime.engine), GcMeter()
    # Probes: the first all-sites radiologist on duty, and others on duty at random.
    probes = [world.on_duty[0], *rng.sample(world.on_duty[1:], min(PROBES, len(world.on_duty)) - 1)]
    sizes = {r: run_worklist(world, r) for r in probes}
    worklist = measure(args.repeat, lambda i: run_worklist(world, probes[i % len(probes)]))
    print(worklist.line("worklist (read-only transaction)"))
    print("   worklist p50 by radiologist: " + ", ".join(
        f"#{r} ({len(world.credentials[r])} sites, {sizes[r]} items) "
        f"{statistics.median(worklist.samples[k::len(probes)]):.1f} ms"
        for k, r in enumerate(probes)))
    explain = measure(args.repeat, lambda i: run_explain(world, world.ready[i % len(world.ready)]))
    print(explain.line("explain (routing of one exam)"))
    for label, call in (("worklist", lambda: run_worklist(world, probes[0])),
                        ("explain", lambda: run_explain(world, world.ready[0]))):
        meter.count = 0
        call()
        print(f"   one {label} call: {meter.count} SQL statements")
    if args.profile or worklist.p(0.95) > WORKLIST_TARGET:
        profile_worklist(world, probes[0])
    claim = measure_claims(world, args.repeat)
    print(claim.line("claim (write transaction, commit)"))
    http = None
    if args.http:
        http = measure_http(world, probes, args.repeat)
        print(http.line("GET /api/worklist (TestClient)"))
    print(f"   garbage collector during the measures: {pauses.report()}")
    pauses.close()
    if args.gc_freeze:
        gc.unfreeze()
    return Result(world.radiologists, world.exams, len(world.on_duty), worklist, explain,
                  claim, http)


@contextlib.contextmanager
def database(server_url: str, work: Path) -> Iterator[str]:
    """A SQLite file in ``work``, or a throw-away database on the PostgreSQL server."""
    if not server_url:
        yield f"sqlite:///{work / 'index.sqlite3'}"
        return
    url = sa.make_url(server_url)
    name = f"telerad_bench_{secrets.token_hex(6)}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def summary(results: list[Result], backend: str) -> None:
    def pair(t: Timings | None) -> str:
        return f"{statistics.median(t.samples):6.1f} /{t.p(0.95):6.1f}" if t else f"{'-':>14}"

    print(f"-- summary ({backend}), milliseconds p50 / p95")
    print(f"{'radiologists':>12} {'on duty':>8} {'exams':>8} | {'worklist':>14} | "
          f"{'explain':>14} | {'claim':>14} | {'GET /worklist':>14}")
    for r in results:
        print(f"{r.radiologists:>12} {r.on_duty:>8} {r.exams:>8} | {pair(r.worklist)} | "
              f"{pair(r.explain)} | {pair(r.claim)} | {pair(r.http)}")
    base = results[0]
    print(f"-- growth of p95 relative to {base.radiologists} radiologists")
    for r in results[1:]:
        ratios = [f"{name} {getattr(r, name).p(0.95) / getattr(base, name).p(0.95):5.1f}x"
                  for name in ("worklist", "explain", "claim")]
        if r.http and base.http:
            ratios.append(f"http {r.http.p(0.95) / base.http.p(0.95):5.1f}x")
        print(f"{r.radiologists:>12} radiologists: " + "  ".join(ratios))
    print(f"-- targets ({backend}; the issue sets them for SQLite)")
    for r in results:
        for name, timings, target in (("worklist", r.worklist, WORKLIST_TARGET),
                                      ("claim", r.claim, CLAIM_TARGET)):
            p95 = timings.p(0.95)
            verdict = "PASS" if p95 < target else "FAIL"
            print(f"   {verdict} {r.radiologists:>5} radiologists: {name} p95 {p95:6.1f} ms "
                  f"(target < {target:.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--radiologists", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--exams", type=int, default=None, help="default 100,000")
    parser.add_argument("--repeat", type=int, default=None, help="default 200")
    parser.add_argument("--quick", action="store_true", help="10,000 exams, 50 repetitions")
    parser.add_argument("--no-http", dest="http", action="store_false")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false",
                        help="skip gc.freeze() after seeding (telerad serve freezes its "
                             "start-up heap): shows what full collections cost")
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL server to create throw-away databases on")
    args = parser.parse_args()
    args.exams = args.exams or (10_000 if args.quick else 100_000)
    args.repeat = args.repeat or (50 if args.quick else 200)
    if args.exams < sum(LIVE.values()):
        parser.error(f"--exams must be at least {sum(LIVE.values())} (the live set)")
    backend = "PostgreSQL" if args.database_url else "SQLite"
    began = time.perf_counter()
    print(f"-- {backend}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
          f"{', gc.freeze() after seeding' if args.gc_freeze else ''}")
    results = []
    for size in args.radiologists:
        with tempfile.TemporaryDirectory(prefix="telerad-bench-") as tmp, \
                database(args.database_url, Path(tmp)) as url:
            runtime = Runtime.open(Settings(data_dir=Path(tmp) / "data", database_url=url),
                                   clock=FrozenClock(NOW))
            try:
                results.append(benchmark(World(runtime, size, args.exams), args))
            finally:
                runtime.close()
    summary(results, backend)
    print(f"-- run time {time.perf_counter() - began:.0f} s, "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
