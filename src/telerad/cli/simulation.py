"""The engine of ``telerad simulate``: nights of emergency CT replayed through telerad's real
workflow services on an injected clock, with simple radiologist agents (the scenario, the
figures and the command are in :mod:`telerad.cli.simulate`).

Requests are filed (``requests.file_request``), justified by a radiologist on duty
(``requests.decide``), acquired (one tiny instance per exam through ``Runtime.ingest``, so the
intake matches it by accession number), completed (``exams.mark_done`` or the archive's
stable age), routed, claimed (``assignments.claim``) and escalated by the real jobs; the one
thing simulated outside telerad is the report, a move to FINAL. Everything random comes from
one ``random.Random(seed)`` drawn in a fixed order: a run is reproducible.

The clock moves one minute per step; a step runs, in order, the hospital's events due
(requests filed, images sent, acquisitions marked done), phone calls for requests waiting
too long, the jobs due (until none is left), then each radiologist, in a random order. At
08:00 the hospital's events stop, readings in progress are finished, and whatever is not
reported is handed over to the day team (not simulated): it is counted as pending, and the
radiologists of later nights leave it alone (its escalation jobs still run).
"""
from __future__ import annotations

import datetime as dt
import heapq
import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from pydicom.uid import generate_uid
from sqlalchemy.orm import Session

from telerad import jobs
from telerad.archive.models import Origin
from telerad.auth.service import Scope
from telerad.clock import FrozenClock
from telerad.db import transaction
from telerad.dicom.synthetic import UID_PREFIX, SyntheticStudy, instance
from telerad.errors import Conflict, Forbidden
from telerad.runtime import Runtime
from telerad.workflow.assignments import service as assignments
from telerad.workflow.exams import service as exams
from telerad.workflow.exams.intake import Sender
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.exams.timeline import move
from telerad.workflow.requests.service import Decision, RequestForm, decide, file_request
from telerad.workflow.roster.models import Radiologist
from telerad.workflow.sites.models import Urgency

PARIS = ZoneInfo("Europe/Paris")
MINUTE = dt.timedelta(minutes=1)
#: Seconds without a new image after which the archive finds a study complete.
STABLE_AGE = 60.0
#: An idle radiologist looks at the worklist this often (simulated minutes).
POLL_MINUTES = 2
#: A request nobody justified this long after it could be is phoned to a radiologist.
PHONE_AFTER = dt.timedelta(minutes=3)
PROVIDER, REGION = "Provider", "Region"

#: Minutes a radiologist of ordinary speed reads an exam of each protocol (uniform range).
READING_MINUTES = {"CT_HEAD": (5, 12), "CT_STROKE": (8, 15), "CT_CTPA": (8, 16),
                   "CT_ABDO_PELVIS": (12, 25), "CT_TRAUMA": (15, 25)}
#: (exam asked, clinical context, clinical question) per protocol.
REQUESTS = {
    "CT_HEAD": ("CT head", "fall at home under anticoagulant", "intracranial bleeding?"),
    "CT_STROKE": ("stroke CT", "aphasia and right hemiplegia for 40 min",
                  "ischaemic stroke, occlusion? thrombolysis?"),
    "CT_CTPA": ("CT pulmonary angiography", "dyspnoea, D-dimers 2400", "pulmonary embolism?"),
    "CT_ABDO_PELVIS": ("CT abdomen-pelvis", "right iliac fossa pain, fever",
                       "appendicitis? abscess?"),
    "CT_TRAUMA": ("whole-body CT", "road accident, high kinetics", "traumatic lesions?"),
}
@dataclass(frozen=True, kw_only=True)
class Plan:
    """What to simulate."""

    nights: int
    sites: int
    seed: int
    exams_min: int
    exams_max: int
    first_night: dt.date


@dataclass(frozen=True, kw_only=True)
class SimSite:
    id: int
    name: str
    ae_title: str
    weight: float


@dataclass(frozen=True, kw_only=True)
class NightWindow:
    start: dt.datetime
    end: dt.datetime

    @property
    def minutes(self) -> int:
        return int((self.end - self.start) / MINUTE)


@dataclass(kw_only=True)
class Case:
    """One simulated request, and what was drawn for it when it arrived."""

    index: int
    night: int
    site: int
    urgency: Urgency
    protocol: str
    arrives_at: dt.datetime
    justify_delay: dt.timedelta
    acquisition_delay: dt.timedelta
    refused: bool
    marked_done: bool
    exam_id: int = 0
    accession_number: str = ""
    justifiable_at: dt.datetime | None = None
    decided: bool = False

    @property
    def patient_id(self) -> str:
        return f"SIM{self.index + 1:06d}"

    @property
    def patient_name(self) -> str:
        return f"SIMULATED^PATIENT {self.index + 1}"


@dataclass(kw_only=True)
class Agent:
    """A radiologist: idle (polling), reacting to what the worklist shows, or busy."""

    radiologist_id: int
    user_id: int
    name: str
    team: str
    backup: bool
    neuro: bool
    slowness: float
    scope: Scope
    state: str = "idle"
    until: dt.datetime | None = None
    #: The exam being read (busy).
    exam_id: int | None = None
    next_poll: dt.datetime | None = None
    busy_minutes: float = 0.0
    justified: int = 0


@dataclass(kw_only=True)
class Outcome:
    """The simulated world (sites, radiologists, nights, requests) and what the run did
    besides what the database holds."""

    sites: list[SimSite]
    agents: list[Agent]
    windows: list[NightWindow]
    cases: list[Case] = field(default_factory=list)
    #: Claims lost to another radiologist (AlreadyClaimed).
    races: int = 0
    phoned: int = 0


class Simulation:
    """The minute-by-minute loop over the nights of ``plan`` on ``runtime`` (whose clock is
    ``clock``), in the ``world`` set up for it (sites, roster: ``cli.simulate.set_up``)."""

    def __init__(self, runtime: Runtime, clock: FrozenClock, plan: Plan, world: Outcome,
                 rng: random.Random) -> None:
        self.runtime, self.clock, self.plan, self.outcome, self.rng = (
            runtime, clock, plan, world, rng)
        self.events: list[tuple[dt.datetime, int, str, int]] = []  # (when, seq, kind, case)
        self.night_cases: dict[int, Case] = {}  # exam id -> case, this night's only
        self._seq = 0

    def run(self, *, on_night: Callable[[int, NightWindow], None],
            on_minute: Callable[[], None]) -> Outcome:
        agents = self.outcome.agents
        for night, window in enumerate(self.outcome.windows):
            on_night(night, window)
            self._tick(window.start)
            self.events.clear()
            self.night_cases.clear()
            for case in self.outcome.cases:
                if case.night == night:
                    self._at(case.arrives_at, "file", case)
            for index, agent in enumerate(agents):
                agent.state, agent.until, agent.exam_id = "idle", None, None
                agent.next_poll = window.start + (index % POLL_MINUTES) * MINUTE
            for minute in range(window.minutes):
                now = window.start + minute * MINUTE
                self.clock.advance(now - self.clock.now())
                self._hospital(now)
                self._phone(now)
                self._tick(now)
                self._radiologists(now)
                on_minute()
            # 08:00: readings in progress are finished; the rest goes to the day team.
            now = window.end
            while any(a.state == "busy" and a.exam_id for a in agents):
                self._tick(now)
                for agent in agents:
                    if agent.state == "busy" and agent.until is not None and agent.until <= now:
                        self._finish(agent, now)
                now += MINUTE
        return self.outcome

    def _tick(self, now: dt.datetime) -> None:
        """The clock to ``now``, and every job due run (those they enqueue due now too)."""
        self.clock.advance(now - self.clock.now())
        while jobs.run_due(self.runtime.sessions, self.clock, limit=50):
            pass

    def _at(self, when: dt.datetime, kind: str, case: Case) -> None:
        self._seq += 1  # events due at the same minute run in the order they were planned
        heapq.heappush(self.events, (when, self._seq, kind, case.index))

    # -- the hospital ---------------------------------------------------------------------

    def _hospital(self, now: dt.datetime) -> None:
        while self.events and self.events[0][0] <= now:
            _when, _seq, kind, index = heapq.heappop(self.events)
            case = self.outcome.cases[index]
            site = self.outcome.sites[case.site]
            if kind == "file":
                asked, context, question = REQUESTS[case.protocol]
                form = RequestForm(
                    site_id=site.id, patient_id=case.patient_id,
                    patient_name=case.patient_name, patient_sex="MF"[index % 2],
                    requesting_physician=f"Emergency physician, CH {site.name}",
                    clinical_context=context, clinical_question=question,
                    urgency=case.urgency, modality="CT", exam_asked=asked)
                with transaction(self.runtime.sessions) as session:
                    case.exam_id = file_request(session, form, filed_by=None, now=now,
                                                actor=f"requesting_physician:{site.ae_title}").id
                case.justifiable_at = now + case.justify_delay
                self.night_cases[case.exam_id] = case
            elif kind == "image":
                self._image(case, site, now)
            else:  # the technologist marks the acquisition done
                with transaction(self.runtime.sessions) as session:
                    exam = session.get(Exam, case.exam_id)
                    if exam is not None and exam.state == ExamState.ACQUIRING:
                        exams.mark_done(session, exam, now=now,
                                        actor=f"technologist:{site.ae_title}")

    def _image(self, case: Case, site: SimSite, now: dt.datetime) -> None:
        """One tiny instance, sent by the scanner with the request's accession number (and a
        Study Instance UID of its own: the intake matches by accession number)."""
        entropy = [str(self.plan.seed), str(case.exam_id)]
        study = SyntheticStudy(
            slices=1, rows=8, columns=8, patient_id=case.patient_id,
            patient_name=case.patient_name, accession_number=case.accession_number,
            study_description=REQUESTS[case.protocol][0].upper(), series_description="AXIAL",
            study_instance_uid=generate_uid(UID_PREFIX, entropy_srcs=[*entropy, "study"]),
            series_instance_uid=generate_uid(UID_PREFIX, entropy_srcs=[*entropy, "series"]),
            study_datetime=now.astimezone(PARIS).replace(tzinfo=None),
            institution_name=f"CH {site.name}", seed=case.exam_id)
        buffer = io.BytesIO()
        instance(study, 0).save_as(buffer, enforce_file_format=True)
        staged = self.runtime.store.stage()
        staged.write(buffer.getvalue())
        self.runtime.ingest(staged, sender=Sender(origin=Origin.DICOM, site_id=site.id,
                                                  ae_title=site.ae_title))
        if case.marked_done:
            self._at(now + MINUTE, "done", case)

    # -- the radiologists -----------------------------------------------------------------

    def _phone(self, now: dt.datetime) -> None:
        """Requests nobody justified in time: the emergency physician phones a primary, who
        justifies between two images (a minute added to what they were doing)."""
        primaries = [a for a in self.outcome.agents if a.team == PROVIDER and not a.backup]
        for case in self.night_cases.values():
            waiting = case.justifiable_at
            if case.decided or waiting is None or waiting + PHONE_AFTER > now:
                continue
            agent = primaries[self.rng.randrange(len(primaries))]
            if self._justify(agent, case, now):
                self.outcome.phoned += 1
                agent.busy_minutes += 1
                if agent.state == "busy" and agent.until is not None:
                    agent.until += MINUTE

    def _radiologists(self, now: dt.datetime) -> None:
        """Those who finished sign; those due to look at the worklist all look at once, then
        act in a random order on what they saw: two who saw the same exam race for it."""
        agents = self.rng.sample(self.outcome.agents, len(self.outcome.agents))
        for agent in agents:
            if agent.state == "busy" and agent.until is not None and agent.until <= now:
                self._finish(agent, now)
        looking = [a for a in agents if (a.state == "reacting" and a.until is not None
                                         and a.until <= now)
                   or (a.state == "idle" and a.next_poll is not None and a.next_poll <= now)]
        seen = [self._worklist(agent, now) for agent in looking]
        for agent, items in zip(looking, seen, strict=True):
            self._act(agent, items, now, claim=agent.state == "reacting")

    def _finish(self, agent: Agent, now: dt.datetime) -> None:
        """The report is signed (no report module yet: the exam moves to FINAL)."""
        if agent.exam_id is not None:
            with transaction(self.runtime.sessions) as session:
                exam = session.get(Exam, agent.exam_id)
                assert exam is not None
                move(session, exam, ExamState.FINAL, actor=f"radiologist:{agent.radiologist_id}",
                     now=now, kind="reported")
                exam.reported_at = now
        agent.state, agent.until, agent.exam_id, agent.next_poll = "idle", None, None, now

    def _worklist(self, agent: Agent, now: dt.datetime) -> list[tuple[str, int, Urgency]]:
        """(kind, exam id, urgency) of the agent's worklist, this night's exams only."""
        with transaction(self.runtime.sessions, readonly=True) as session:
            return [(i.kind, i.exam.id, Urgency(i.exam.urgency or Urgency.SCHEDULED))
                    for i in assignments.worklist(session, scope=agent.scope, now=now,
                                                  radiologist_id=agent.radiologist_id)
                    if i.exam.id in self.night_cases]

    def _act(self, agent: Agent, items: list[tuple[str, int, Urgency]], now: dt.datetime, *,
             claim: bool) -> None:
        """Justify first; else claim the first ready exam, after a reaction delay unless it
        was already being reacted to."""
        for kind, exam_id, _urgency in items:
            case = self.night_cases[exam_id]
            if (kind == "justify" and case.justifiable_at is not None
                    and case.justifiable_at <= now and self._justify(agent, case, now)):
                minutes = self.rng.randint(1, 2)
                agent.state, agent.until, agent.exam_id = "busy", now + minutes * MINUTE, None
                agent.busy_minutes += minutes
                return
        ready = [(exam_id, urgency) for kind, exam_id, urgency in items if kind == "ready"]
        if ready and not claim and (delay := self._reaction(agent, now, ready[0][1])):
            agent.state, agent.until = "reacting", now + delay * MINUTE
            return
        if not any(self._claim(agent, exam_id, now) for exam_id, _urgency in ready[:3]):
            agent.state, agent.until, agent.exam_id = "idle", None, None
            agent.next_poll = now + (MINUTE if ready else POLL_MINUTES * MINUTE)

    def _reaction(self, agent: Agent, now: dt.datetime, urgency: Urgency) -> int:
        """Minutes before an idle radiologist takes up what the worklist shows: longer in
        the small hours, shorter for the most urgent, longer for the slower ones."""
        top = 10.0 if now.astimezone(PARIS).hour < 6 else 5.0
        if urgency == Urgency.STROKE_ALERT:
            top = 2.0
        elif urgency == Urgency.LIFE_THREATENING:
            top /= 2
        return round(self.rng.uniform(0, top) * agent.slowness)

    def _justify(self, agent: Agent, case: Case, now: dt.datetime) -> bool:
        try:
            with transaction(self.runtime.sessions) as session:
                exam, radiologist = _rows(session, case.exam_id, agent)
                if exam.state != ExamState.FILED:
                    case.decided = True
                    return False
                decide(session, exam, radiologist=radiologist, user_id=agent.user_id, now=now,
                       decision=Decision.REFUSE if case.refused else Decision.ACCEPT,
                       protocol_code=case.protocol,
                       reason="not justified: no sign of severity" if case.refused else "")
                case.accession_number = exam.accession_number or ""
        except Forbidden:
            return False
        case.decided = True
        agent.justified += 1
        if not case.refused:
            self._at(now + case.acquisition_delay, "image", case)
        return True

    def _claim(self, agent: Agent, exam_id: int, now: dt.datetime) -> bool:
        try:
            with transaction(self.runtime.sessions) as session:
                exam, radiologist = _rows(session, exam_id, agent)
                assignments.claim(session, exam, radiologist=radiologist, now=now)
        except assignments.AlreadyClaimed:
            self.outcome.races += 1
            return False
        except (Forbidden, Conflict):
            return False
        low, high = READING_MINUTES[self.night_cases[exam_id].protocol]
        minutes = round(self.rng.uniform(low, high) * agent.slowness)
        agent.state, agent.until, agent.exam_id = "busy", now + minutes * MINUTE, exam_id
        agent.busy_minutes += minutes
        return True


def _rows(session: Session, exam_id: int, agent: Agent) -> tuple[Exam, Radiologist]:
    exam = session.get(Exam, exam_id)
    radiologist = session.get(Radiologist, agent.radiologist_id)
    if exam is None or radiologist is None:
        raise LookupError(f"exam #{exam_id} or radiologist #{agent.radiologist_id} vanished")
    return exam, radiologist
