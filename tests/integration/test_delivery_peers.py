"""Reports reach the hospital's real peers, reliably: a RIS (python-hl7's MLLP server) and a
PACS (Debian's Orthanc) get every signed version from a ``telerad serve`` process, and keep
getting them across their own outages and telerad's crash: in order, none twice; what
Orthanc holds validates with dciodvfy."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from telerad.clock import SystemClock
from telerad.config import Settings
from telerad.db import transaction
from telerad.delivery.models import DeliveryState
from telerad.hl7.messages import parse
from telerad.reporting.models import VersionKind
from telerad.runtime import Runtime
from telerad.testing.peers import Orthanc, TeleradServer, free_port
from telerad.testing.reports import Hospital
from telerad.testing.ris import RisPeer
from telerad.workflow.exams.models import Exam, ExamState

pytestmark = [
    pytest.mark.peers,
    pytest.mark.slow,
    pytest.mark.skipif(not Orthanc.available(), reason="Orthanc with its DICOMweb plugin"),
]


def wait_until(what: str, check: Callable[[], bool], *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout} s")
        time.sleep(0.2)


def _oru_order(ris: RisPeer) -> list[tuple[str, str, str]]:
    """(accession, MSH-10, OBR-25) of each ORU the RIS received, in arrival order."""
    order = []
    for text in ris.received:
        message = parse(text)
        obr = message.segment("OBR")
        assert obr is not None
        order.append((obr.value(18) or obr.value(3), message.control_id, obr.value(25)))
    return order


def _orthanc_arrivals(pacs: Orthanc) -> list[str]:
    """SOP Instance UIDs in the order Orthanc stored them."""
    changes = pacs.request("GET", "/changes?limit=1000")
    assert isinstance(changes, dict)
    uids = []
    for change in changes["Changes"]:
        if change["ChangeType"] == "NewInstance":
            tags = pacs.request("GET", f"/instances/{change['ID']}/simplified-tags")
            assert isinstance(tags, dict)
            uids.append(tags["SOPInstanceUID"])
    return uids


def test_reports_reach_a_ris_and_a_pacs_across_outages_and_a_crash(
        settings: Settings, tmp_path: Path) -> None:
    ris_port, pacs_port = free_port(), free_port()
    env = {"TELERAD_DELIVERY_MAX_BACKOFF": "1", "TELERAD_DATABASE_URL": settings.database_url}
    settings = replace(settings, delivery_max_backoff=1.0)
    runtime = Runtime.open(settings, clock=SystemClock())
    hospital = Hospital(runtime, ris_port=ris_port, pacs_port=pacs_port)
    # Three exams signed while both peers are down: preliminary + final, final, final +
    # addendum.
    exams = [hospital.exam_in_reading(n) for n in (1, 2, 3)]
    hospital.release(exams[0], VersionKind.PRELIMINARY)
    hospital.release(exams[0], VersionKind.FINAL)
    hospital.release(exams[1], VersionKind.FINAL)
    hospital.release(exams[2], VersionKind.FINAL)
    hospital.release(exams[2], VersionKind.ADDENDUM, addendum="Pas de fracture associée.")
    planned = hospital.deliveries()
    assert len(planned) == 5 * 3  # each version: one ORU, one SR, one Encapsulated PDF

    server = TeleradServer(data_dir=settings.data_dir, env=env)
    ris = RisPeer(port=ris_port)
    pacs = Orthanc(tmp_path / "orthanc", dicom_port=pacs_port)
    try:
        server.start()
        # Peers down: telerad tries, gets no answer, keeps everything pending.
        wait_until("tried", lambda: {d.endpoint_id for d in hospital.deliveries()
                                     if d.attempts > 1} == {1, 2})
        assert {d.state for d in hospital.deliveries()} == {DeliveryState.PENDING}
        server.kill()  # telerad crashes

        ris.start()
        pacs.start()
        server.start()
        wait_until("all acknowledged", lambda: all(
            d.state == DeliveryState.ACKNOWLEDGED for d in hospital.deliveries()))
        oru = _oru_order(ris)
        assert len(oru) == 5, "each version once, none twice"
        assert len({control_id for _acc, control_id, _status in oru}) == 5
        by_exam: dict[str, list[str]] = {}
        for accession, _control_id, status in oru:
            by_exam.setdefault(accession, []).append(status)
        assert by_exam == {"ACC00001": ["P", "F"], "ACC00002": ["F"], "ACC00003": ["F", "C"]}
        arrived = _orthanc_arrivals(pacs)
        dicom = [d for d in hospital.deliveries() if d.document in ("SR", "PDF")]
        assert sorted(arrived) == sorted(d.idempotency_key for d in dicom)
        for exam_id in exams:  # within an exam: in sequence
            keys = [d.idempotency_key for d in dicom if d.exam_id == exam_id]
            assert [uid for uid in arrived if uid in keys] == keys

        # Both peers down again while a new report is signed; back, they get it.
        ris.stop()
        pacs.stop()
        late = hospital.exam_in_reading(4)
        hospital.release(late, VersionKind.FINAL)
        wait_until("tried", lambda: {d.endpoint_id for d in hospital.deliveries()
                                     if d.exam_id == late and d.attempts > 1} == {1, 2})
        ris.start()
        pacs.start()
        wait_until("all acknowledged", lambda: all(
            d.state == DeliveryState.ACKNOWLEDGED for d in hospital.deliveries()))
        assert [status for acc, _c, status in _oru_order(ris) if acc == "ACC00004"] == ["F"]
        assert len(ris.received) == 6
        with transaction(runtime.sessions, readonly=True) as session:
            assert session.scalar(select(func.count()).select_from(Exam).where(
                Exam.state == ExamState.DELIVERED)) == 4
        _validate_with_dciodvfy(pacs, tmp_path)
    except BaseException:
        print(server.log()[-5000:], pacs.log()[-3000:])
        raise
    finally:
        server.stop()
        ris.stop()
        pacs.stop()
        runtime.close()


def _validate_with_dciodvfy(pacs: Orthanc, tmp_path: Path) -> None:
    """The SR and the Encapsulated PDF, as Orthanc holds them, are valid (PS3.3 IODs)."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    instances = pacs.request("GET", "/instances")
    assert isinstance(instances, list)
    assert instances
    checked = set()
    for orthanc_id in instances:
        tags = pacs.request("GET", f"/instances/{orthanc_id}/simplified-tags")
        assert isinstance(tags, dict)
        if tags["Modality"] in checked:
            continue
        checked.add(tags["Modality"])
        path = tmp_path / f"{tags['Modality']}.dcm"
        path.write_bytes(_download(pacs, f"/instances/{orthanc_id}/file"))
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True,
                                check=False)
        errors = [line for line in (result.stdout + result.stderr).splitlines()
                  if line.startswith("Error")]
        assert errors == [], result.stderr
    assert checked == {"SR", "DOC"}


def _download(pacs: Orthanc, path: str) -> bytes:
    with urllib.request.urlopen(pacs.base_url + path, timeout=30) as response:
        data: bytes = response.read()
        return data
