"""The scanners of ``telerad demo``: studies the intake can match and find complete, and a
sending that resumes where a lost answer cut it."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
from collections import Counter
from typing import Any

import pytest
from pydicom.dataset import Dataset

from telerad.cli import demo_scanner
from telerad.cli.demo_cases import EXAMS
from telerad.cli.demo_scanner import send_study, synthetic_study
from telerad.dicom.header import read_instance_bytes
from telerad.errors import StorageFailure
from telerad.workflow.exams.models import Exam
from telerad.workflow.requests.models import Protocol

#: The protocol catalogue as the migration seeds it (code, name, expected series).
CATALOGUE = {
    "CT_HEAD": ("CT head without contrast", ["head"]),
    "CT_STROKE": ("Stroke CT: head, angiography, perfusion", ["head", "angio", "perfusion"]),
    "CT_CTPA": ("CT pulmonary angiography", ["angio"]),
    "CT_ABDO_PELVIS": ("CT abdomen-pelvis with contrast", ["abdo"]),
    "CT_TRAUMA": ("CT trauma body scan", ["head", "body"]),
}


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_the_scanner_sends_every_series_its_protocol_expects(code: str) -> None:
    name, series = CATALOGUE[code]
    protocol = Protocol(code=code, name=name, modality="CT", subspecialty="",
                        expected_series=json.dumps(series))
    exam = Exam(id=42, site_id=1, modality="CT", patient_id="DEMO0000042",
                patient_name="DUBOIS^Marie", patient_sex="F", patient_birth_date="19480312",
                accession_number="TR0000000042", study_instance_uid="1.2.3.4.42",
                protocol_code=code, exam_asked=EXAMS[code].asked)
    taken = dt.datetime(2026, 11, 24, 21, 5, tzinfo=dt.UTC)
    datasets = synthetic_study(exam, protocol, institution="CH Carcassonne", slices=31,
                               taken=taken)
    assert len(datasets) == 31
    assert len({d.SOPInstanceUID for d in datasets}) == 31
    by_series = Counter((d.SeriesNumber, d.SeriesDescription) for d in datasets)
    assert len(by_series) == len(series)
    assert max(by_series.values()) - min(by_series.values()) <= 1
    for expected in series:  # as exams.service.missing_series matches them
        assert any(expected in description.lower() for _n, description in by_series)
    buffer = io.BytesIO()
    datasets[-1].save_as(buffer, enforce_file_format=True)
    header = read_instance_bytes(buffer.getvalue())  # what the intake reads and matches
    assert header.study_instance_uid == "1.2.3.4.42"
    assert header.accession_number == "TR0000000042"
    assert (header.patient_id, header.patient_name) == ("DEMO0000042", "DUBOIS^Marie")
    assert (header.patient_sex, header.patient_birth_date) == ("F", "19480312")
    assert (header.study_date, header.study_time) == ("20261124", "220500")  # Paris time
    assert (header.modality, header.rows, header.series_number) == ("CT", 256, len(series))


class FlakyPeer:
    """send_datasets() as a peer whose answer to the ``lose``-th image of a call is lost
    (the images before it confirmed), for the first ``failures`` calls."""

    def __init__(self, *, lose: int, failures: int) -> None:
        self.lose, self.failures = lose, failures
        self.calls: list[list[int]] = []

    def __call__(self, datasets: list[Dataset], **kwargs: Any) -> int:
        self.calls.append([d.InstanceNumber for d in datasets])
        if len(self.calls) <= self.failures:
            for count in range(1, self.lose):
                kwargs["progress"](count)
            raise StorageFailure("C-STORE refused with status (no answer)")
        for count in range(1, len(datasets) + 1):
            kwargs["progress"](count)
        return len(datasets)


def _images(count: int) -> list[Dataset]:
    images = []
    for number in range(1, count + 1):
        ds = Dataset()
        ds.InstanceNumber = number
        images.append(ds)
    return images


def _send(peer: FlakyPeer, monkeypatch: pytest.MonkeyPatch, count: int = 10) -> tuple[int, int]:
    monkeypatch.setattr(demo_scanner, "send_datasets", peer)
    return send_study(_images(count), host="127.0.0.1", port=1, calling_ae_title="CT_CARCA",
                      called_ae_title="TELERAD", attempts=3, stopping=threading.Event())


def test_a_lost_answer_resumes_from_the_first_image_not_confirmed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    peer = FlakyPeer(lose=4, failures=1)
    assert _send(peer, monkeypatch) == (10, 1)
    assert peer.calls == [list(range(1, 11)), list(range(4, 11))]


def test_the_sending_gives_up_after_its_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    peer = FlakyPeer(lose=1, failures=5)
    with pytest.raises(StorageFailure):
        _send(peer, monkeypatch)
    assert len(peer.calls) == 3
