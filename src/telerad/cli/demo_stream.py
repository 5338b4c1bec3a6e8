"""The simulated hospitals of ``telerad demo``: background threads that keep the worklist
moving while a newcomer looks at it.

Every ``every`` seconds, for a site and modality whose contract covers the present instant,
the site's emergency doctor files a request (:mod:`telerad.cli.demo_cases`). Some are left
for the newcomer's radiologist account; a simulated colleague on duty decides the others,
through the same service as the API. The site's technologist then acquires every validated
CT — the colleague's and the newcomer's alike — and the scanner sends a small synthetic study
over DICOM C-STORE to the gateway with the request's Study Instance UID, accession number and
patient, as a scanner reading the Modality Worklist would: the intake matches it, the study
becomes complete, the exam ready, and it shows on the worklist. Ready exams nobody takes in
time are escalated by telerad's jobs; a colleague they then reach claims them.

Everything goes through telerad's edges and services (the DICOM gateway, the request and
routing services, the audit trail); only the people are simulated. An error is printed and
the stream goes on; it stops when asked, or when the server it feeds is gone.
"""

from __future__ import annotations

import datetime as dt
import heapq
import queue
import random
import socket
import threading
import time
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from telerad.audit.service import Action, record, who_for
from telerad.auth.models import User
from telerad.auth.users import actor_for
from telerad.cli.demo_cases import Case, draw
from telerad.cli.demo_scanner import send_study, synthetic_study
from telerad.cli.demo_world import PARIS, RADIOLOGISTS, SITES, covered
from telerad.db import transaction
from telerad.errors import Forbidden, StorageFailure
from telerad.reporting import service as reports
from telerad.reporting.models import VersionKind
from telerad.runtime import Runtime
from telerad.workflow.assignments import service as assignments
from telerad.workflow.assignments.routing import Router
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.requests.models import Protocol
from telerad.workflow.requests.service import Decision, RequestForm, decide, file_request
from telerad.workflow.roster.models import Radiologist
from telerad.workflow.roster.rules import HolidayCalendar, french_holidays
from telerad.workflow.sites.models import Site, Urgency

#: Where the audit trail says the simulated people acted from.
SOURCE = "telerad demo"
#: Exams waiting for someone at which the hospitals stop filing: a demo left running
#: overnight does not pile up thousands of requests.
MAX_OPEN = 60
OPEN_STATES = (ExamState.FILED, ExamState.VALIDATED, ExamState.ACQUIRING, ExamState.READY)
#: Slices per synthetic study, over all its series (256 x 256: a second or so to send).
SLICES = (20, 40)
URGENCY_TEXT = {Urgency.STROKE_ALERT: "[bold red]stroke alert[/bold red]",
                Urgency.LIFE_THREATENING: "[red]life-threatening[/red]",
                Urgency.URGENT: "[yellow]urgent[/yellow]", Urgency.SCHEDULED: "scheduled"}
#: Tries of a study's sending (each resuming where the last stopped), and of an exam whose
#: sending failed (at the next sweeps).
SEND_ATTEMPTS = 3


@dataclass(frozen=True, kw_only=True)
class Hospital:
    site_id: int
    name: str
    key: str
    ct_ae_title: str
    er_username: str


def _clock(now: dt.datetime) -> str:
    return now.astimezone(PARIS).strftime("%H:%M:%S")


class Stream:
    """The simulated hospitals: a thread running a scheduler of timed events, each handled by
    one of the public steps (which tests call directly, on a frozen clock), and a thread for
    the scanners' sending."""

    def __init__(self, runtime: Runtime, *, every: float, dicom_host: str, dicom_port: int,
                 console: Console, seed: int | None = None) -> None:
        self.runtime, self.every, self.console = runtime, every, console
        self.dicom_host = "127.0.0.1" if dicom_host in ("0.0.0.0", "::", "") else dicom_host  # noqa: S104
        self.dicom_port = dicom_port
        self.rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-stream", daemon=True)
        # The scanners send from a thread of their own: a slow send never holds up the
        # requests (see acquire()).
        self._scans: queue.Queue[int] = queue.Queue()
        self._scanner = threading.Thread(target=self._scan, name="demo-scanners", daemon=True)
        self._scanner_rng = random.Random(self.rng.random())
        self._events: list[tuple[float, int, str, int]] = []  # (when, seq, kind, exam id)
        self._seq = 0
        self.cases: dict[int, Case] = {}  # filed, not decided yet
        self._handled: set[int] = set()  # validated exams acquired (or being acquired)
        self._failures: dict[int, int] = {}
        self._waiting_ready: set[int] = set()
        self._told: set[str] = set()
        self._holidays: HolidayCalendar = french_holidays()
        self._mine = frozenset(p.username for p in RADIOLOGISTS if p.you)
        self.hospitals: dict[int, Hospital] = {}
        with transaction(runtime.sessions, readonly=True) as session:
            for spec in SITES:
                site = session.scalar(select(Site).where(Site.name == spec.name))
                if site is not None:
                    self.hospitals[site.id] = Hospital(
                        site_id=site.id, name=site.name, key=spec.key,
                        ct_ae_title=spec.ct_ae_title, er_username=f"urgences.{spec.key}")

    # -- life ---------------------------------------------------------------------------

    def start(self) -> None:
        first = min(2.0, self.every)
        self._at(first, "file")
        self._at(first + self._sweep_period() / 2, "sweep")
        self._thread.start()
        self._scanner.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in (self._thread, self._scanner):
            if thread.is_alive():
                thread.join(timeout)

    def _sweep_period(self) -> float:
        return max(0.5, min(self.every / 2, 5.0))

    def _later(self, low: float, high: float) -> float:
        """A human delay: a share of the pace, a few seconds at most at the default pace."""
        return max(0.3, min(self.every, 10.0) * self.rng.uniform(low, high))

    def _at(self, delay: float, kind: str, exam_id: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._events, (time.monotonic() + delay, self._seq, kind, exam_id))

    def _run(self) -> None:
        while not self._stop.is_set() and self._events:
            when, _seq, kind, exam_id = self._events[0]
            wait = when - time.monotonic()
            if wait > 0:
                self._stop.wait(min(wait, 0.5))
                continue
            heapq.heappop(self._events)
            try:
                self._handle(kind, exam_id)
            except Exception as exc:  # the demo's stream never stops the server: say it, go on
                if not self._report(kind, exc):
                    return

    def _scan(self) -> None:
        while not self._stop.is_set():
            try:
                exam_id = self._scans.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self.acquire(exam_id)
            except Exception as exc:  # as in _run()
                if not self._report("acquire", exc):
                    return

    def _report(self, kind: str, exc: Exception) -> bool:
        """Print what failed; False if the server is stopping (then silently)."""
        if self._stop.is_set() or self._server_gone():
            return False
        self._say(f"[red]stream[/red]: {kind} failed: {type(exc).__name__}: {escape(str(exc))}")
        return True

    def _handle(self, kind: str, exam_id: int) -> None:
        if kind == "file":
            self._at(self.every, "file")  # the pace holds whatever becomes of this one
            filed = self.file_one()
            if filed is not None and filed in self.cases:
                self._at(self._later(0.2, 0.5), "decide", filed)
        elif kind == "decide":
            if self.decide_one(exam_id):
                self._at(0.1, "sweep", -1)  # the technologist sees it at once
        elif kind == "sweep":
            if exam_id == 0:  # the periodic one (-1: an extra one)
                self._at(self._sweep_period(), "sweep")
            for found in self.sweep():
                self._at(self._later(0.15, 0.3), "acquire", found)
            for claimed in self.take_over():
                self._at(self._later(0.5, 1.0), "report", claimed)
        elif kind == "acquire":
            self._scans.put(exam_id)
        elif kind == "report":
            self.report_one(exam_id)

    def _server_gone(self) -> bool:
        """Whether the gateway stopped listening: the server is shutting down."""
        try:
            with socket.create_connection((self.dicom_host, self.dicom_port), timeout=1.0):
                return False
        except OSError:
            return True

    def _say(self, text: str) -> None:
        self.console.print(f"{_clock(self.runtime.clock.now())} {text}", soft_wrap=True,
                           highlight=False)

    def _once(self, key: str, text: str) -> None:
        if key not in self._told:
            self._told.add(key)
            self._say(text)

    # -- the emergency departments ---------------------------------------------------------

    def file_one(self) -> int | None:
        """A request at a site and modality covered now, as its emergency doctor files it;
        its id, or None when nothing is covered or too much waits already. A request a
        colleague is to decide stays in ``cases`` until then."""
        now = self.runtime.clock.now()
        with transaction(self.runtime.sessions) as session:
            waiting = session.scalar(select(func.count()).select_from(Exam).where(
                Exam.site_id.in_(self.hospitals), Exam.state.in_([str(s) for s in OPEN_STATES])))
            # Paused at MAX_OPEN, on again ten below it: one message each way, not one a minute.
            if (waiting or 0) >= MAX_OPEN - (10 if "paused" in self._told else 0):
                self._once("paused", f"[yellow]{waiting} exams wait for someone[/yellow]: the "
                           "hospitals stop filing until some are read or cancelled")
                return None
            if "paused" in self._told:
                self._told.discard("paused")
                self._say("the hospitals file requests again")
            choices = [c for c in covered(session, now, site_ids=set(self.hospitals),
                                          holidays=self._holidays)
                       if c.modality in ("CT", "MR")]
            if not choices:
                self._once("uncovered", "no contract covers this hour: the hospitals wait")
                return None
            self._told.discard("uncovered")
            target = self.rng.choice(choices)
            hospital = self.hospitals[target.site_id]
            case = draw(self.rng, modality=target.modality, today=now.astimezone(PARIS).date())
            doctor = session.scalar(select(User).where(User.username == hospital.er_username))
            physician = (f"{doctor.display_name}, urgences {hospital.name}" if doctor
                         else f"Urgences {hospital.name}")
            form = RequestForm(
                site_id=hospital.site_id, patient_id=case.patient_id,
                patient_name=case.patient_name, patient_sex=case.sex,
                patient_birth_date=case.birth_date.strftime("%Y%m%d"),
                requesting_physician=physician, clinical_context=case.indication.context,
                clinical_question=case.indication.question, urgency=case.urgency,
                modality=case.exam.modality, exam_asked=case.exam.asked,
                contraindications=case.contraindications)
            exam = file_request(session, form, filed_by=doctor.id if doctor else None,
                                actor=f"user:{doctor.id}" if doctor else "demo", now=now)
            if doctor is not None:  # as the API does: the change and its audit event together
                record(session, who=who_for(actor_for(session, doctor), SOURCE),
                       action=Action.CREATE, now=now,
                       detail={"exam_id": exam.id, "what": "filed"})
            exam_id = exam.id
        if case.left_for_you:
            fate = "[cyan]left for you to justify[/cyan]"
        else:
            fate = "a colleague on duty will decide"
            self.cases[exam_id] = case
        self._say(
            f"filed #{exam_id} {URGENCY_TEXT[case.urgency]} {case.exam.modality} at "
            f"{escape(hospital.name)}: {escape(case.patient_name)} ({case.sex}, "
            f"{case.age_on(now.astimezone(PARIS).date())} y), "
            f"{escape(case.indication.question)} — {fate}")
        return exam_id

    # -- the simulated colleague -----------------------------------------------------------

    def decide_one(self, exam_id: int) -> bool:
        """A colleague on duty (not one of the newcomer's accounts) accepts or refuses the
        request, through the service the API calls; whether it was accepted."""
        case = self.cases.pop(exam_id, None)
        if case is None:
            return False
        now = self.runtime.clock.now()
        with transaction(self.runtime.sessions) as session:
            exam = session.get(Exam, exam_id)
            if exam is None or exam.state != ExamState.FILED:
                return False  # the newcomer, or the hospital, was quicker
            router = Router(session, now)
            colleagues = self._colleagues(session, router.offered(
                exam, level=len(router.ladder(exam).steps)))
            if not colleagues:
                self._say(f"#{exam_id}: no colleague on duty for it — it waits for you")
                return False
            radiologist, user = self.rng.choice(colleagues)
            refuse = bool(case.refusal_reason)
            decide(session, exam, radiologist=radiologist, user_id=user.id, now=now,
                   decision=Decision.REFUSE if refuse else Decision.ACCEPT,
                   protocol_code=None if refuse else case.exam.protocol,
                   reason=case.refusal_reason)
            record(session, who=who_for(actor_for(session, user), SOURCE),
                   action=Action.UPDATE, now=now,
                   study_instance_uid=exam.study_instance_uid or "",
                   detail={"exam_id": exam.id,
                           "what": f"decision:{'refuse' if refuse else 'accept'}"})
            accession = exam.accession_number
        if refuse:
            self._say(f"refused #{exam_id} by {escape(radiologist.name)}: "
                      f"{escape(case.refusal_reason)}")
            return False
        self._say(f"accepted #{exam_id} by {escape(radiologist.name)}: "
                  f"{case.exam.protocol}, accession {accession}")
        return True

    def take_over(self) -> list[int]:
        """Ready exams nobody took in time were escalated: a colleague they are now offered
        to (a back-up, the regional team) claims them, as the escalation intends. The ids
        claimed."""
        now = self.runtime.clock.now()
        with transaction(self.runtime.sessions, readonly=True) as session:
            escalated = list(session.scalars(select(Exam.id).where(
                Exam.site_id.in_(self.hospitals), Exam.state == ExamState.READY,
                Exam.escalation_level > 0)))
        claimed = []
        for exam_id in escalated:
            with transaction(self.runtime.sessions) as session:
                exam = session.get(Exam, exam_id)
                if exam is None or exam.state != ExamState.READY:
                    continue
                colleagues = self._colleagues(session, Router(session, now).offered(exam))
                if not colleagues:
                    continue
                radiologist, user = self.rng.choice(colleagues)
                try:
                    assignments.claim(session, exam, radiologist=radiologist, now=now)
                except (assignments.AlreadyClaimed, Forbidden):
                    continue
                record(session, who=who_for(actor_for(session, user), SOURCE),
                       action=Action.UPDATE, now=now,
                       study_instance_uid=exam.study_instance_uid or "",
                       detail={"exam_id": exam.id, "what": "claimed"})
                claimed.append(exam_id)
            self._say(f"claimed #{exam_id} by {escape(radiologist.name)}: nobody took it in "
                      "time, it was escalated")
        return claimed

    def report_one(self, exam_id: int) -> bool:
        """The colleague who took an escalated exam signs its report: the normal findings
        of its template (the demo's synthetic images show nothing else). The hospital's
        portal then shows it, with its PDF."""
        now = self.runtime.clock.now()
        with transaction(self.runtime.sessions) as session:
            exam = session.get(Exam, exam_id)
            if exam is None or exam.state != ExamState.IN_READING or exam.reader_id is None:
                return False
            radiologist = session.get(Radiologist, exam.reader_id)
            user = session.get(User, radiologist.user_id) if radiologist and \
                radiologist.user_id else None
            if radiologist is None or user is None or user.username in self._mine:
                return False
            author = reports.Author(user_id=user.id, radiologist_id=radiologist.id,
                                    name=reports.person_name(radiologist.name))
            report = reports.start(session, exam, author=author, now=now)
            version = reports.release(session, exam, report, kind=VersionKind.FINAL,
                                      author=author, now=now)
            record(session, who=who_for(actor_for(session, user), SOURCE),
                   action=Action.UPDATE, now=now,
                   study_instance_uid=exam.study_instance_uid or "",
                   detail={"exam_id": exam.id, "what": "report final"})
            accession = exam.accession_number
        self.runtime.outbox_signal.set()
        self._say(f"signed #{exam_id} ({accession}) by {escape(radiologist.name)}: final "
                  f"report, version {version.number}, in the hospital's portal with its PDF")
        return True

    def _colleagues(self, session: Session, offered: frozenset[int]
                    ) -> list[tuple[Radiologist, User]]:
        """The radiologists among ``offered`` who are not the newcomer's accounts."""
        return [(r, u) for r, u in session.execute(
            select(Radiologist, User).join(User, User.id == Radiologist.user_id)
            .where(Radiologist.id.in_(offered), User.username.not_in(self._mine))
            .order_by(Radiologist.id))]

    # -- the technologists and their scanners ----------------------------------------------

    def sweep(self) -> list[int]:
        """The validated CTs not acquired yet (to acquire now); says which exams became
        ready since the last sweep."""
        with transaction(self.runtime.sessions, readonly=True) as session:
            validated = list(session.execute(
                select(Exam.id, Exam.modality, Exam.accession_number).where(
                    Exam.site_id.in_(self.hospitals), Exam.state == ExamState.VALIDATED)))
            arrived = {row.id: row.state for row in session.execute(
                select(Exam.id, Exam.state).where(Exam.id.in_(self._waiting_ready)))}
        to_acquire = []
        for found_id, modality, accession in validated:
            if found_id in self._handled:
                continue
            if modality != "CT":
                self._once(f"mr{found_id}", f"#{found_id} ({accession}) validated for "
                           f"{modality}: the demo's scanners make synthetic CT only, so its "
                           "images will not come")
                continue
            self._handled.add(found_id)
            to_acquire.append(found_id)
        for found_id, state in arrived.items():
            if state in (ExamState.READY, ExamState.IN_READING):
                self._waiting_ready.discard(found_id)
                self._say(f"[green]ready[/green] #{found_id}: on the worklist of the "
                          "radiologists on duty")
            elif state not in (ExamState.ACQUIRING, ExamState.VALIDATED):
                self._waiting_ready.discard(found_id)
        return to_acquire

    def acquire(self, exam_id: int) -> int:
        """The site's CT scanner sends the exam's synthetic study over DICOM C-STORE; how
        many images it sent (0: the exam no longer waits for images)."""
        with transaction(self.runtime.sessions, readonly=True) as session:
            exam = session.get(Exam, exam_id)
            if exam is None or exam.state != ExamState.VALIDATED:
                return 0
            protocol = session.get(Protocol, exam.protocol_code or "")
            hospital = self.hospitals[exam.site_id]
            datasets = synthetic_study(
                exam, protocol, institution=hospital.name, taken=self.runtime.clock.now(),
                slices=self._scanner_rng.randint(*SLICES))
            accession = exam.accession_number
        started = time.perf_counter()
        try:
            sent, resumed = send_study(
                datasets, host=self.dicom_host, port=self.dicom_port,
                calling_ae_title=hospital.ct_ae_title,
                called_ae_title=self.runtime.settings.ae_title, attempts=SEND_ATTEMPTS,
                stopping=self._stop)
        except StorageFailure:
            self._failures[exam_id] = self._failures.get(exam_id, 0) + 1
            if self._failures[exam_id] < SEND_ATTEMPTS:
                self._handled.discard(exam_id)  # the next sweep tries again
            raise
        self._waiting_ready.add(exam_id)
        series = len({d.SeriesInstanceUID for d in datasets})
        again = f", resumed {resumed} time(s)" if resumed else ""
        self._say(f"sent {sent} images for {accession} from {hospital.ct_ae_title} "
                  f"({series} series, {time.perf_counter() - started:.1f} s{again})")
        return sent

