"""``telerad demo``: the example world built once and completed without duplicates, and the
demo itself in a child process — sign-ins printed, the emergency doctor sees the requests
filed, the radiologist on duty sees the worklist fill, Ctrl-C stops it within seconds.

The child process runs at whatever hour the test does: the contracts cover every hour (CT by
night, MRI by day) and the radiologist the demo names "on duty now" is the one to sign in as.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
from rich.console import Console
from sqlalchemy import func, select

from telerad import jobs
from telerad.auth.models import User
from telerad.auth.users import actor_for
from telerad.cli import demo_stream
from telerad.cli.demo_stream import Stream
from telerad.cli.demo_world import MARKER, PARIS, RADIOLOGISTS, STAFF, build, on_duty_now
from telerad.clock import FrozenClock
from telerad.config import Settings
from telerad.db import transaction
from telerad.gateway.dicom import DicomGateway
from telerad.runtime import Runtime
from telerad.testing.peers import free_port, telerad_command
from telerad.workflow.assignments import service as assignments
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.requests.service import cancel
from telerad.workflow.roster.models import Radiologist, ShiftRow
from telerad.workflow.sites.models import Contract, Site, Team

pytestmark = pytest.mark.slow


class Demo:
    """``telerad demo`` in a child process, its output read line by line as it comes."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.http_port, self.dicom_port = free_port(), free_port()
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "telerad", "demo", "--data-dir", str(data_dir),
             "--http", f"127.0.0.1:{self.http_port}", "--dicom", f"127.0.0.1:{self.dicom_port}",
             *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "TELERAD_STABLE_AGE": "1"})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """The first line so far or to come matching ``pattern``."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if found := re.search(pattern, line):
                return found
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if found := re.search(pattern, line):
                return found
        raise AssertionError(f"no line matches {pattern!r}:\n" + "\n".join(self.lines))

    def stop(self) -> float:
        """SIGINT, as Ctrl-C does; the seconds it took to exit."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self._drain()
        return time.monotonic() - started

    def _drain(self) -> None:
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _call(base_url: str, method: str, path: str, body: Any = None, token: str | None = None
          ) -> tuple[int, Any]:
    request = urllib.request.Request(base_url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _sign_in(base_url: str, username: str, password: str, code: str | None = None) -> str:
    status, answer = _call(base_url, "POST", "/api/login",
                           {"username": username, "password": password, "code": code})
    assert status == 200, answer
    assert not answer["second_factor_enrolment_required"]
    return str(answer["token"])


def _until(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what}: nothing after {timeout} s")


def _counts(data_dir: Path) -> dict[str, int]:
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        with transaction(runtime.sessions, readonly=True) as session:
            counted = {name: session.scalar(select(func.count()).select_from(table)) or 0
                       for name, table in (("sites", Site), ("users", User), ("teams", Team),
                                           ("radiologists", Radiologist),
                                           ("contracts", Contract), ("shifts", ShiftRow))}
            starts = Counter(session.execute(select(ShiftRow.radiologist_id,
                                                    ShiftRow.starts_at)).all())
    finally:
        runtime.close()
    assert max(starts.values()) == 1, "a shift twice on the roster"
    return counted


def test_the_demo_fills_the_worklist_live_and_restarts_without_duplicates(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    demo = Demo(data_dir, "--every", "1")
    try:
        demo.wait_for(r"telerad demo ready at ")
        password = demo.wait_for(r"every account's password: (\S+)")[1]
        on_duty = demo.wait_for(r"On duty now: (\S+) ")[1]
        secret = demo.wait_for(rf"│ {re.escape(on_duty)} .*│ ([A-Z2-7]{{32}}) *│")[1]
        for account in [*STAFF, *RADIOLOGISTS]:
            demo.wait_for(rf"│ {re.escape(account.username)} +│")
        assert (data_dir / MARKER).is_file()
        for path in ("/signin", "/worklist", "/portal", "/docs"):
            demo.wait_for(re.escape(f"{demo.base_url}{path}"))

        # The emergency doctor of Carcassonne (covered day and night) sees requests filed.
        doctor = _sign_in(demo.base_url, "urgences.carcassonne", password)
        filed = _until("requests at CH Carcassonne", lambda: _call(
            demo.base_url, "GET", "/api/exams", token=doctor)[1], timeout=40)
        assert {e["patient_id"][:4] for e in filed} == {"DEMO"}
        demo.wait_for(r"filed #\d+ ")

        # The radiologist on duty signs in with a code from `telerad demo-code`, and sees
        # the worklist fill.
        done = telerad_command("demo-code", on_duty, data_dir=data_dir)
        code = done.stdout.strip()
        assert re.fullmatch(r"\d{6}", code), done
        assert code in {pyotp.TOTP(secret).at(time.time() + d) for d in (-30, 0, 30)}
        radiologist = _sign_in(demo.base_url, on_duty, password, code)
        items = _until("items on the worklist", lambda: _call(
            demo.base_url, "GET", "/api/worklist", token=radiologist)[1], timeout=40)
        assert {i["kind"] for i in items} <= {"justify", "ready", "reading"}
        if any(e["modality"] == "CT" for e in filed):  # a night: images come over DICOM
            sent = demo.wait_for(r"sent (\d+) images for TR\d{10} from CT_(CARCA|NARBO)",
                                 timeout=45)
            assert 20 <= int(sent[1]) <= 40
            demo.wait_for(r"ready #\d+", timeout=30)

        assert demo.stop() < 15
        assert demo.process.returncode == 0, "\n".join(demo.lines)
        assert any("demo stopped" in line for line in demo.lines)
        assert not any("Traceback" in line for line in demo.lines), "\n".join(demo.lines)
        assert not any("failed" in line for line in demo.lines), "\n".join(demo.lines)
    finally:
        demo.kill()
    first = _counts(data_dir)
    assert (first["sites"], first["radiologists"], first["contracts"]) == (2, 6, 3)
    assert first["users"] == len(STAFF) + len(RADIOLOGISTS)

    again = Demo(data_dir, "--no-stream")
    try:
        again.wait_for(r"telerad demo ready at ")
        assert not any(line.startswith("created in") for line in again.lines)
        assert not any(re.match(r"\d\d:\d\d:\d\d filed", line) for line in again.lines)
        assert again.stop() < 15
    finally:
        again.kill()
    assert _counts(data_dir) == first


def test_a_folder_the_demo_did_not_create_is_refused(tmp_path: Path) -> None:
    (tmp_path / "telerad.sqlite3").write_bytes(b"")
    demo = telerad_command("demo", data_dir=tmp_path, check=False)
    assert demo.returncode == 2
    assert "new or empty folder" in demo.stderr
    code = telerad_command("demo-code", "dr.martin", data_dir=tmp_path, check=False)
    assert code.returncode == 2
    assert "not created by `telerad demo`" in " ".join(code.stderr.split())


def test_building_twice_adds_nothing_and_a_later_week_extends_the_roster(
        runtime: Runtime) -> None:
    monday = dt.datetime(2026, 3, 23, 9, 0, tzinfo=PARIS)  # the week clocks go forward
    with transaction(runtime.sessions) as session:
        first = build(session, now=monday)
    with transaction(runtime.sessions) as session:
        second = build(session, now=monday + dt.timedelta(hours=30))
    assert first.created
    assert first.shifts_added == 6 * 15
    assert (second.created, second.shifts_added) == ([], 0)
    with transaction(runtime.sessions) as session:
        later = build(session, now=monday + dt.timedelta(days=8))
    assert (later.created, later.shifts_added) == ([], 6 * 7)  # the week after next
    with transaction(runtime.sessions, readonly=True) as session:
        users = session.scalars(select(User)).all()
        assert len(users) == len(STAFF) + len(RADIOLOGISTS)
        secrets = [u.totp_secret for u in users if u.totp_enabled_at is not None]
        assert len(secrets) == len(set(secrets)) == len(RADIOLOGISTS) + 2  # + expert, admin
        for hour, who in ((3, "dr.martin"), (12, "dr.blanc"), (18, "dr.martin"),
                          (7, "dr.blanc")):
            at = dt.datetime(2026, 3, 29, hour, 45, tzinfo=PARIS)  # a day of DST change
            assert on_duty_now(session, now=at)[0][0] == who, (hour, who)


@pytest.fixture(scope="module")
def built_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the example world, built once (its 15 Argon2 hashes take seconds):
    the demo always runs on SQLite, so each test below starts from a copy of the file."""
    folder = tmp_path_factory.mktemp("world")
    runtime = Runtime.open(Settings(data_dir=folder))
    try:
        with transaction(runtime.sessions) as session:
            build(session, now=dt.datetime(2026, 1, 5, 12, 0, tzinfo=PARIS))
    finally:
        runtime.close()
    assert not (folder / "telerad.sqlite3-wal").exists()  # all in the one file
    return folder / "telerad.sqlite3"


@dataclass
class World:
    """The example world in a copy of ``built_world``, on a frozen clock, served by an
    in-process DICOM gateway, with the stream's steps to call one by one."""

    runtime: Runtime
    clock: FrozenClock
    stream: Stream
    out: io.StringIO

    def run_jobs(self, after: dt.timedelta) -> None:
        self.clock.advance(after)
        while jobs.run_due(self.runtime.sessions, self.clock, limit=100):
            pass

    def worklist_of_who_is_on_duty(self) -> Counter[str]:
        with transaction(self.runtime.sessions, readonly=True) as session:
            username = on_duty_now(session, now=self.clock.now())[0][0]
            user = session.scalars(select(User).where(User.username == username)).one()
            radiologist = session.scalars(
                select(Radiologist).where(Radiologist.user_id == user.id)).one()
            return Counter(i.kind for i in assignments.worklist(
                session, scope=actor_for(session, user).scope, radiologist_id=radiologist.id,
                now=self.clock.now()))

    def modalities(self) -> set[str]:
        with transaction(self.runtime.sessions, readonly=True) as session:
            return {e.modality for e in session.scalars(select(Exam))}


@contextmanager
def world_at(tmp_path: Path, built_world: Path, local: dt.datetime,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    # Small studies: the subprocess test sends the demo's real ones.
    monkeypatch.setattr(demo_stream, "SLICES", (4, 6))
    settings = Settings(data_dir=tmp_path / "data", stable_age=1.0)
    settings.data_dir.mkdir()
    shutil.copyfile(built_world, settings.data_dir / "telerad.sqlite3")
    clock = FrozenClock(local.replace(tzinfo=PARIS))
    runtime = Runtime.open(settings, clock=clock)
    gateway = DicomGateway(runtime=runtime, host="127.0.0.1", port=0,
                           ae_title=settings.ae_title)
    out = io.StringIO()
    try:
        with transaction(runtime.sessions) as session:
            assert build(session, now=clock.now()).created == []  # the roster extended
        gateway.start()
        yield World(runtime=runtime, clock=clock, out=out, stream=Stream(
            runtime, every=1, dicom_host="127.0.0.1", dicom_port=gateway.port,
            console=Console(file=out, width=200), seed=local.hour))
    finally:
        gateway.stop()
        runtime.close()
    assert "failed" not in out.getvalue(), out.getvalue()


@pytest.mark.parametrize("local", [
    dt.datetime(2026, 11, 24, 2, 0),  # a night: CT at both hospitals
    dt.datetime(2026, 11, 24, 12, 0),  # a day: MRI at Carcassonne
    dt.datetime(2026, 11, 24, 7, 50),  # the day team is in, the night's coverage runs
    dt.datetime(2026, 11, 24, 18, 20),  # the night team is in, the day's coverage runs
    dt.datetime(2026, 12, 25, 12, 0),  # Christmas day
    dt.datetime(2026, 10, 25, 4, 0),  # the night clocks go back
    dt.datetime(2026, 3, 29, 3, 30),  # the night clocks go forward
], ids=lambda d: d.strftime("%b%d-%H%M"))
def test_whatever_the_hour_the_radiologist_on_duty_gets_work(
        tmp_path: Path, built_world: Path, local: dt.datetime,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with world_at(tmp_path, built_world, local, monkeypatch) as world:
        stream = world.stream
        filed = [stream.file_one() for _ in range(8)]
        assert None not in filed, world.out.getvalue()
        accepted = [i for i in list(stream.cases) if stream.decide_one(i)]
        sent = [stream.acquire(i) for i in stream.sweep()]
        assert stream.sweep() == []  # nothing acquired twice
        world.run_jobs(dt.timedelta(seconds=2))
        stream.sweep()
        modalities = world.modalities()
        kinds = world.worklist_of_who_is_on_duty()
    text = world.out.getvalue()
    if local.hour < 8 or (local.hour, local.minute) >= (18, 30):
        assert modalities == {"CT"}, text
        assert accepted, text
        assert len(sent) == len(accepted), text
        assert all(4 <= n <= 6 for n in sent), text
        assert kinds["ready"] == len(accepted), (kinds, text)
        assert re.search(r"ready #\d+", text)
    else:
        assert modalities == {"MR"}, text
        assert (accepted, sent) == ([], []), text
    assert kinds["justify"] + kinds["ready"] == len(filed) - text.count("refused #"), (
        kinds, text)


def test_exams_nobody_takes_in_time_are_escalated_and_a_colleague_claims_them(
        tmp_path: Path, built_world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with world_at(tmp_path, built_world, dt.datetime(2026, 11, 24, 1, 0), monkeypatch) as world:
        stream = world.stream
        for _ in range(6):
            stream.file_one()
        accepted = [i for i in list(stream.cases) if stream.decide_one(i)]
        for exam_id in stream.sweep():
            stream.acquire(exam_id)
        world.run_jobs(dt.timedelta(seconds=2))
        assert stream.take_over() == []  # offered to the newcomer first
        assert world.worklist_of_who_is_on_duty()["ready"] == len(accepted)
        claimed: list[int] = []
        for _ in range(15):  # claim windows: a third of the target, two hours at most
            world.run_jobs(dt.timedelta(minutes=20))  # the night goes on: 01:00 -> 06:00
            claimed += stream.take_over()
        assert sorted(claimed) == sorted(accepted), world.out.getvalue()
        assert world.worklist_of_who_is_on_duty()["ready"] == 0
        # The colleague signs each report: the hospital sees it (no endpoint: delivered).
        assert all(stream.report_one(exam_id) for exam_id in claimed)
        assert not any(stream.report_one(exam_id) for exam_id in claimed), "once"
        with transaction(world.runtime.sessions) as session:
            states = {session.get(Exam, i).state for i in claimed}  # type: ignore[union-attr]
        assert states == {ExamState.DELIVERED}
    assert world.out.getvalue().count("it was escalated") == len(accepted)
    assert world.out.getvalue().count("final report, version 1") == len(accepted)


def test_the_hospitals_pause_while_too_much_waits_and_say_it_once(
        tmp_path: Path, built_world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_stream, "MAX_OPEN", 12)
    with world_at(tmp_path, built_world, dt.datetime(2026, 11, 24, 12, 0), monkeypatch) as world:
        filed = [world.stream.file_one() for _ in range(14)]  # MRI by day: all wait for you
        assert None not in filed[:12]
        assert filed[12:] == [None, None]
        with transaction(world.runtime.sessions) as session:
            for exam_id in filed[:11]:  # 1 left: ten below the limit
                exam = session.get(Exam, exam_id)
                assert exam is not None
                cancel(session, exam, reason="patient transferred", actor="test",
                       now=world.clock.now())
        assert world.stream.file_one() is not None
    text = world.out.getvalue()
    assert text.count("exams wait for someone") == 1, text
    assert text.count("file requests again") == 1, text


def test_an_error_in_the_stream_is_printed_and_the_stream_goes_on(
        tmp_path: Path, built_world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Counter[str]()
    real_draw = demo_stream.draw

    def draw_failing_once(*args: Any, **kwargs: Any) -> Any:
        calls["draw"] += 1
        if calls["draw"] == 1:
            raise RuntimeError("the emergency department's printer is out of paper")
        return real_draw(*args, **kwargs)

    monkeypatch.setattr(demo_stream, "draw", draw_failing_once)
    with world_at(tmp_path, built_world, dt.datetime(2026, 11, 24, 12, 0), monkeypatch) as world:
        world.stream.every = 0.3
        world.stream.start()
        try:
            _until("requests filed after the error", lambda: world.out.getvalue().count(
                "filed #") >= 2, timeout=15)
        finally:
            world.stream.stop()
        assert not world.stream._thread.is_alive()
        lines = world.out.getvalue().splitlines()
        world.out.seek(0)  # the failure is expected: world_at checks there is no other
        world.out.truncate()
    assert "stream: file failed: RuntimeError: the emergency department's printer is out of " \
           "paper" in lines[0], lines
