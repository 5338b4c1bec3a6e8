"""Fixtures of the reading workflow's tests: a seeded night served in this process."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import generate_uid

from telerad.archive.models import Origin
from telerad.clock import FrozenClock
from telerad.config import Settings
from telerad.dicom.synthetic import SyntheticStudy, instance
from telerad.runtime import Runtime
from telerad.testing.workflow import EVENING, Api, InProcessServer, Night, seed_night
from telerad.workflow.exams.intake import Sender


@dataclass
class Env:
    runtime: Runtime
    clock: FrozenClock
    server: InProcessServer
    night: Night

    def api(self, username: str | None = None) -> Api:
        return self.server.api(username)

    def advance(self, minutes: float) -> int:
        """Move the clock and run the jobs now due."""
        self.clock.advance(dt.timedelta(minutes=minutes))
        return self.server.run_jobs()

    def send(self, study: SyntheticStudy, *, site: str = "carcassonne",
             indexes: range | None = None) -> None:
        """Images in through the one intake, as the DICOM gateway would pass them."""
        ae = {"carcassonne": "CT_CARCA", "narbonne": "CT_NARBO"}[site]
        for index in indexes if indexes is not None else range(study.slices):
            staged = self.runtime.store.stage()
            path = Path(self.runtime.settings.data_dir) / "tmp.dcm"
            instance(study, index).save_as(path, enforce_file_format=True)
            staged.write(path.read_bytes())
            self.runtime.ingest(staged, sender=Sender(
                origin=Origin.DICOM, site_id=self.night.sites[site], ae_title=ae))


@pytest.fixture
def env(settings: Settings) -> Iterator[Env]:
    clock = FrozenClock(EVENING.astimezone(dt.UTC))
    runtime = Runtime.open(settings, clock=clock)
    night = seed_night(runtime)
    try:
        with InProcessServer(runtime) as server:
            yield Env(runtime=runtime, clock=clock, server=server, night=night)
    finally:
        runtime.close()


def request_body(env: Env, *, site: str = "carcassonne", urgency: str = "urgent",
                 patient_id: str = "PAT001", modality: str = "CT") -> dict[str, Any]:
    return {
        "site_id": env.night.sites[site], "patient_id": patient_id,
        "patient_name": "DUPONT^MARIE", "patient_birth_date": "19580312", "patient_sex": "F",
        "requesting_physician": "Dr Urgentiste", "clinical_context": "fall at home",
        "clinical_question": "intracranial bleeding?", "urgency": urgency,
        "modality": modality, "exam_asked": "CT head without contrast",
        "contraindications": {"pregnancy": "no", "egfr": 75, "contrast_allergy": False},
    }


def file_and_accept(env: Env, *, urgency: str = "urgent", protocol: str = "CT_HEAD",
                     patient_id: str = "PAT001") -> dict[str, Any]:
    exam = env.api("er_carcassonne").ok("POST", "/api/requests",
                                        request_body(env, urgency=urgency, patient_id=patient_id))
    assert exam["state"] == "filed"
    return env.api("dr_alice").ok("POST", f"/api/requests/{exam['id']}/decision",
                                  {"decision": "accept", "protocol_code": protocol})


def ready_exam(env: Env, **kwargs: Any) -> dict[str, Any]:
    exam = file_and_accept(env, **kwargs)
    protocol = next(p for p in env.api("dr_alice").ok("GET", "/api/protocols")
                    if p["code"] == exam["protocol_code"])
    study = SyntheticStudy(slices=2, rows=16, columns=16, patient_id=exam["patient_id"],
                           accession_number=exam["accession_number"])
    for series in protocol["expected_series"]:  # one series of each the protocol expects
        env.send(replace(study, series_instance_uid=generate_uid(),
                         series_description=f"{series.upper()} 1.0"))
    env.advance(minutes=1)  # the archive's stable age passes
    answer = env.api("tech_carcassonne").ok("GET", f"/api/exams/{exam['id']}")
    assert answer["state"] == "ready", answer
    return answer
