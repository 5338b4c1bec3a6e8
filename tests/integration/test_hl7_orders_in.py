"""Orders in over MLLP: ``telerad serve --mllp`` fed by python-hl7's client and its
``mllp_send`` tool with real sample orders; each ACK is read back with python-hl7's parser.
Accepted orders appear in the JSON API; refused messages get AE/AR with an ERR segment and
leave every table as it was."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hl7  # type: ignore[import-untyped]
import hl7.client  # type: ignore[import-untyped]
import pytest
from sqlalchemy import func, select

from telerad.audit.models import AuditEvent
from telerad.config import Settings
from telerad.db import transaction
from telerad.gateway.hl7 import Hl7Gateway
from telerad.runtime import Runtime
from telerad.testing.peers import TeleradServer, free_port
from telerad.workflow.exams.models import Exam, ExamEvent
from telerad.workflow.requests import hl7_orders
from telerad.workflow.sites.models import Site
from telerad.workflow.sites.service import add_site
from tests.conftest import seed

DATA = Path(__file__).parent.parent / "data" / "hl7"


@dataclass(frozen=True)
class Ack:
    """An ACK as python-hl7 reads it."""

    code: str  # MSA-1
    control_id: str  # MSA-2
    error: str = ""  # ERR-3.1, table 0357
    location: str = ""  # ERR-2
    text: str = ""  # ERR-8
    receiver: str = ""  # MSH-6 of the ACK: the RIS's facility, mirrored


def send(port: int, message: bytes | str) -> Ack:
    data = message.encode() if isinstance(message, str) else message
    with hl7.client.MLLPClient("127.0.0.1", port) as client:
        raw: bytes = client.send_message(data)
    return _read_ack(raw)


def _read_ack(raw: bytes) -> Ack:
    parsed = hl7.parse(raw.strip(b"\x0b\x1c\r\n").decode("utf-8"))
    msa = parsed.segment("MSA")
    fields: dict[str, str] = {}
    try:
        err = parsed.segment("ERR")
    except KeyError:
        pass
    else:
        fields = {"error": str(err[3][0][0]), "location": str(err[2]),
                  "text": str(err[8]) if len(err) > 8 else ""}
    return Ack(code=str(msa[1]), control_id=str(msa[2]),
               receiver=str(parsed.segment("MSH")[6]), **fields)


def sample(name: str, **replace: str) -> bytes:
    data = (DATA / name).read_bytes()
    for old, new in replace.items():
        assert old.encode() in data, old
        data = data.replace(old.encode(), new.encode())
    return data


def counts(settings: Settings) -> tuple[int, int, int]:
    """Rows of exams, their timelines and the audit trail, read by this process."""
    runtime = Runtime.open(settings, migrate=False)
    try:
        with transaction(runtime.sessions, readonly=True) as session:
            return tuple(session.scalar(select(func.count()).select_from(t)) or 0
                         for t in (Exam, ExamEvent, AuditEvent))  # type: ignore[return-value]
    finally:
        runtime.close()


def add_ris_sites(settings: Settings) -> tuple[int, str, int]:
    """The test site (its RIS: CH_VALENCE, the French samples' sender) and a second site
    whose RIS is XYZ_RADIOLOGY (the IHE samples' sender); its id, a token, the second id."""
    site_id, token = seed(settings)
    runtime = Runtime.open(settings)
    try:
        with transaction(runtime.sessions) as session:
            site = session.get(Site, site_id)
            assert site is not None
            site.hl7_facility = "CH_VALENCE"
            other = add_site(session, name="IHE Hospital", ae_titles=[],
                             now=runtime.clock.now())
            other.hl7_facility = "XYZ_RADIOLOGY"
            return site_id, token, other.id
    finally:
        runtime.close()


@dataclass
class Hospital:
    server: TeleradServer
    token: str
    site_id: int
    other_site_id: int
    settings: Settings

    @property
    def mllp_port(self) -> int:
        assert self.server.mllp_port is not None
        return self.server.mllp_port

    def get(self, path: str) -> Any:
        request = urllib.request.Request(f"{self.server.base_url}{path}",
                                         headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


@pytest.fixture
def hospital(settings: Settings) -> Iterator[Hospital]:
    site_id, token, other = add_ris_sites(settings)
    server = TeleradServer(data_dir=settings.data_dir, mllp_port=free_port(),
                           env={"TELERAD_DATABASE_URL": settings.database_url})
    server.start()
    try:
        yield Hospital(server, token, site_id, other, settings)
    finally:
        code = server.stop()
        assert code == 0, f"telerad serve exited with {code}:\n{server.log()[-3000:]}"


def test_orders_in_update_and_cancel(hospital: Hospital) -> None:
    port = hospital.mllp_port
    answer = send(port, sample("orm_o01_ct_head.hl7"))
    assert (answer.code, answer.control_id, answer.error) == ("AA", "MSG00417", "")
    assert answer.receiver == "CH_VALENCE"  # the ACK is addressed back to the RIS
    [exam] = hospital.get("/api/exams")
    assert (exam["site_id"], exam["state"], exam["patient_id"], exam["urgency"]) == (
        hospital.site_id, "filed", "784512", "life_threatening")
    assert exam["clinical_question"] == "Hématome sous-dural ?"
    # Resent after a lost ACK: accepted again, filed once.
    assert send(port, sample("orm_o01_ct_head.hl7")).code == "AA"
    assert [e["id"] for e in hospital.get("/api/exams")] == [exam["id"]]
    # ADT^A08: the patient's name as the hospital now knows it.
    assert send(port, sample("adt_a08.hl7")).code == "AA"
    detail = hospital.get(f"/api/exams/{exam['id']}")
    assert detail["patient_name"] == "MARTIN^PAUL^JEAN"
    assert [e["kind"] for e in detail["timeline"]] == ["filed", "hl7_order", "patient_updated"]
    # ORC-1 CA: cancelled, with the RIS as the actor.
    assert send(port, sample("orm_o01_cancel.hl7")).code == "AA"
    detail = hospital.get(f"/api/exams/{exam['id']}")
    assert detail["state"] == "cancelled"
    assert detail["timeline"][-1]["actor"] == "hl7:CH_VALENCE"
    # An unknown order's cancellation is an error of the message (AE 204).
    answer = send(port, sample("orm_o01_cancel.hl7", ORD448811="ORD999999"))
    assert (answer.code, answer.error, answer.location) == ("AE", "204", "ORC^1^2")


def test_ihe_samples_and_a_merge(hospital: Hospital, tmp_path: Path) -> None:
    port = hospital.mllp_port
    old = sample("upstream/dcm4che_orm_o01.hl7", **{"583295^^^ADT1": "OLD_PID_1^^^ADT1"})
    assert send(port, old).code == "AA"
    # The same patient at the other site: a merge of the IHE hospital never touches it.
    assert send(port, old.replace(b"XYZ_RADIOLOGY", b"CH_VALENCE")).code == "AA"
    # python-hl7's own command-line sender, with an OMI^O23 of dcm4che's samples.
    mllp_send = shutil.which("mllp_send") or str(Path(hl7.__file__).parents[4] / "bin"
                                                  / "mllp_send")
    result = subprocess.run(
        [mllp_send, "--loose", "--file", str(DATA / "upstream/dcm4che_omi_o23_head_ct.hl7"),
         "--port", str(port), "127.0.0.1"], capture_output=True, text=True, timeout=60,
        check=True)
    assert "MSA|AA|100112" in result.stdout
    assert send(port, sample("upstream/dcm4che_adt_a40.hl7")).code == "AA"
    exams = {(e["site_id"], e["exam_asked"]): e for e in hospital.get("/api/exams")}
    merged = exams[hospital.other_site_id, "Procedure 1"]
    assert (merged["patient_id"], merged["patient_name"]) == ("NEW_PID_1", "New_Smith^Lucy^Mark")
    assert exams[hospital.site_id, "Procedure 1"]["patient_id"] == "OLD_PID_1"
    assert exams[hospital.other_site_id, "Head CT"]["modality"] == "CT"
    entry = hospital.get(f"/api/exams/{merged['id']}")["timeline"][-1]
    assert (entry["kind"], entry["actor"]) == ("patient_merged", "hl7:XYZ_RADIOLOGY")
    assert (entry["detail"]["prior_patient_id"], entry["detail"]["patient_id"]) == (
        "OLD_PID_1", "NEW_PID_1")


def test_refused_messages_change_nothing(hospital: Hospital) -> None:
    port = hospital.mllp_port
    assert send(port, sample("orm_o01_ct_head.hl7")).code == "AA"
    before = counts(hospital.settings)
    refused = [
        # (message, MSA-1, ERR-3, ERR-2)
        (b"this is not HL7", "AR", "100", ""),
        (b"MSH|^~|broken", "AR", "100", ""),
        (sample("omi_o23_cta.hl7"), "AR", "103", "MSH^1^4"),  # CHU_LYON: no site's RIS
        (sample("upstream/nhapi_orm_o01.hl7"), "AR", "103", "MSH^1^4"),
        (sample("orm_o01_ct_head.hl7", **{"ORC|NW|ORD448811": "ORC|XO|ORD448811"}), "AR",
         "103", "ORC^1^1"),
        (sample("upstream/python_hl7_oru_r01.hl7", **{"ELAB-3": "CH_VALENCE"}), "AR", "200",
         "MSH^1^9"),
        (sample("upstream/hl7apy_adt_a01.hl7", **{"SEND FAC": "CH_VALENCE"}), "AR", "201",
         "MSH^1^9"),
        (sample("orm_o01_ct_head.hl7", ORD448811="ORD1", **{"Hématome sous-dural ?": "",
                "Chute, INR 3.2, somnolent": ""}), "AE", "101", "OBR^1^31"),
        (sample("orm_o01_cancel.hl7", ORD448811="ORD2"), "AE", "204", "ORC^1^2"),
    ]
    for message, code, error, location in refused:
        answer = send(port, message)
        assert (answer.code, answer.error, answer.location) == (code, error, location), (
            message[:60], answer)
        assert answer.text
    assert counts(hospital.settings) == before
    assert len(hospital.get("/api/exams")) == 1


# In this process: what needs a hand on the internals or many connections at once.

@pytest.fixture
def gateway(runtime: Runtime) -> Iterator[Hl7Gateway]:
    with transaction(runtime.sessions) as session:
        site = add_site(session, name="Valence", ae_titles=[], now=runtime.clock.now())
        site.hl7_facility = "CH_VALENCE"
    with Hl7Gateway(runtime=runtime, host="127.0.0.1", port=0) as gateway:
        yield gateway


def test_an_unexpected_failure_is_ae_207_and_logs_no_content(
    gateway: Hl7Gateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("MARTIN PAUL 784512")

    monkeypatch.setattr(hl7_orders, "receive", broken)
    with caplog.at_level(logging.INFO, logger="telerad.gateway.hl7"):
        answer = send(gateway.port, sample("orm_o01_ct_head.hl7"))
    assert (answer.code, answer.control_id, answer.error) == ("AE", "MSG00417", "207")
    assert "RuntimeError" in caplog.text
    assert "MARTIN" not in caplog.text
    assert "784512" not in caplog.text


def test_the_same_order_on_many_connections_at_once_is_filed_once(
    gateway: Hl7Gateway, runtime: Runtime,
) -> None:
    answers: list[Ack] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def resend() -> None:
        barrier.wait()
        answer = send(gateway.port, sample("orm_o01_ct_head.hl7"))
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=resend) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [a.code for a in answers] == ["AA"] * 6
    with transaction(runtime.sessions, readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(Exam)) == 1
