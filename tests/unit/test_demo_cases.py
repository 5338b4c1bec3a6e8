"""The simulated requests of ``telerad demo`` (pure): requests the service accepts, coherent
with their urgency and modality."""

from __future__ import annotations

import datetime as dt
import random
import re
from collections import Counter

import pytest

from telerad.cli.demo_cases import MIX, draw
from telerad.workflow.sites.models import Urgency

TODAY = dt.date(2026, 11, 24)


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_requests_are_valid_and_coherent(modality: str) -> None:
    rng = random.Random(3)
    cases = [draw(rng, modality=modality, today=TODAY) for _ in range(400)]
    for case in cases:
        assert case.exam.modality == modality
        assert case.exam.protocol in [p for _u, _w, ps in MIX[modality] for p, _ in
                                      ps if _u == case.urgency]
        assert re.fullmatch(r"DEMO\d{7}", case.patient_id)
        assert len(case.patient_name) <= 64
        assert "\\" not in case.patient_name
        assert case.sex in ("M", "F")
        low, high = case.indication.ages
        assert low <= case.age_on(TODAY) <= high
        assert case.indication.question.strip()
        assert case.urgency in case.indication.urgencies
        assert case.contraindications.pregnancy in ("no", "possible")
        if case.sex == "M":
            assert case.contraindications.pregnancy == "no"
        assert (case.contraindications.egfr is None) == (not case.exam.contrast)
        if case.refusal_reason:
            assert case.urgency in (Urgency.URGENT, Urgency.SCHEDULED)
        if case.urgency == Urgency.STROKE_ALERT:
            assert case.exam.protocol == "CT_STROKE"
    urgencies = Counter(c.urgency for c in cases)
    left = sum(c.left_for_you for c in cases)
    if modality == "MR":  # no synthetic MR: every MRI request waits for the newcomer
        assert left == len(cases)
        assert Urgency.STROKE_ALERT not in urgencies
    else:
        assert 0.2 * len(cases) < left < 0.4 * len(cases)
        assert set(urgencies) == set(Urgency)
    assert len({c.patient_id for c in cases}) > 390


def test_the_same_seed_draws_the_same_requests() -> None:
    first = [draw(random.Random(9), modality="CT", today=TODAY) for _ in range(3)]
    again = [draw(random.Random(9), modality="CT", today=TODAY) for _ in range(3)]
    assert first == again
