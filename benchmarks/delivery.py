"""Delivery of signed reports: how long from the signature to the peer's acknowledgement,
and how fast the outbox drains.

1. **Latency.** A final report is signed (the release transaction, as the web application
   runs it) and the delivery worker, woken by the commit, sends it to a real RIS
   (python-hl7's MLLP server: the ORU^R01 with the PDF) and a real PACS (Debian's Orthanc:
   the SR and the Encapsulated PDF). Measured per report: signature -> ACK AA, and
   signature -> the last C-STORE success; target under 1 s on loopback. The reference, in
   the same run: the same bytes sent straight over the transport, without database or
   outbox (``raw``).
2. **Throughput.** 10,000 ORU^R01 pending for the RIS (written straight into the outbox,
   as 1,000 exams' worth), then the worker drains them; the reference is the same
   10,000 messages sent straight over one MLLP connection. Then ``--dicom`` pending
   C-STOREs to Orthanc, with the same reference.

    .venv/bin/python benchmarks/delivery.py [--reports 20] [--pending 10000] [--dicom 500]

The index is SQLite in a throw-away folder, or PostgreSQL with TELERAD_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from telerad.clock import SystemClock
from telerad.config import Settings
from telerad.db import transaction
from telerad.delivery import outbox
from telerad.delivery.channels import Address, Outgoing
from telerad.delivery.models import Delivery, DeliveryState
from telerad.delivery.worker import DeliveryWorker
from telerad.gateway.channels import senders
from telerad.gateway.mllp import MllpClient
from telerad.hl7.mllp import frame
from telerad.reporting.models import ReportVersion, VersionKind
from telerad.runtime import Runtime
from telerad.testing.peers import Orthanc, free_port
from telerad.testing.reports import Hospital
from telerad.testing.ris import RisPeer
from telerad.workflow.exams.models import Exam


def _wait(runtime: Runtime, done: int, timeout: float = 600, *, keys: str = "") -> float:
    """Seconds until ``done`` deliveries (whose idempotency key starts with ``keys``) are
    acknowledged."""
    start = time.perf_counter()
    while True:
        with transaction(runtime.sessions, readonly=True) as session:
            acked = session.scalar(select(func.count()).select_from(Delivery).where(
                Delivery.state == DeliveryState.ACKNOWLEDGED,
                Delivery.idempotency_key.startswith(keys))) or 0
        if acked >= done:
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{acked} of {done} acknowledged after {timeout} s")
        time.sleep(0.01)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(runtime: Runtime, hospital: Hospital, reports: int) -> None:
    hl7, dicom = [], []
    for n in range(reports):
        exam_id = hospital.exam_in_reading(1000 + n)
        before = len(hospital.deliveries())
        hospital.release(exam_id, VersionKind.FINAL)
        runtime.outbox_signal.set()
        _wait(runtime, before + 3, timeout=60)
        with transaction(runtime.sessions, readonly=True) as session:
            signed_at = session.scalar(select(ReportVersion.signed_at).where(
                ReportVersion.exam_id == exam_id))
            assert signed_at is not None
            for document, acked in session.execute(select(
                    Delivery.document, Delivery.acknowledged_at).where(
                    Delivery.exam_id == exam_id)):
                assert acked is not None
                seconds = (acked - signed_at).total_seconds()
                (hl7 if document == "ORU^R01" else dicom).append(seconds)
    dicom_per_report = [max(pair) for pair in zip(dicom[::2], dicom[1::2], strict=True)]
    for name, values in (("HL7 ORU^R01 -> ACK AA", hl7),
                         ("DICOM SR + PDF -> success", dicom_per_report)):
        print(f"  {name:28s} median {statistics.median(values) * 1000:6.0f} ms   "
              f"p95 {_pct(values, 0.95) * 1000:6.0f} ms   max {max(values) * 1000:6.0f} ms"
              f"   (target < 1000 ms)")


def _fill(runtime: Runtime, hospital: Hospital, *, count: int, document: str,
          endpoint_id: int, per_exam: int = 10) -> list[bytes]:
    """``count`` pending deliveries of copies of a real signed document, ``per_exam`` per
    exam; returns their payloads (for the reference run)."""
    exam_id = hospital.exam_in_reading(90_000 + endpoint_id)
    hospital.release(exam_id, VersionKind.FINAL)
    now = runtime.clock.now()
    with transaction(runtime.sessions) as session:
        model = session.scalars(select(Delivery).where(
            Delivery.exam_id == exam_id, Delivery.document == document)).first()
        assert model is not None
        template_exam = session.get(Exam, exam_id)
        version = session.scalars(select(ReportVersion).where(
            ReportVersion.exam_id == exam_id)).one()
        assert template_exam is not None
        session.execute(Delivery.__table__.delete().where(Delivery.exam_id == exam_id))
        session.expunge_all()  # the deleted rows' ids may be taken again
        payloads = []
        for start in range(0, count, per_exam):
            exam = Exam(**{c.key: getattr(template_exam, c.key)
                           for c in Exam.__table__.columns
                           if c.key not in ("id", "accession_number", "study_instance_uid")})
            session.add(exam)
            session.flush()
            docs = []
            for i in range(start, min(start + per_exam, count)):
                key = f"B{endpoint_id}-{i}"
                payload = model.payload.replace(model.idempotency_key.encode(), key.encode()) \
                    if document == "ORU^R01" else model.payload
                payloads.append(payload)
                docs.append(outbox.Document(endpoint_id=endpoint_id, document=document,
                                            payload=payload, idempotency_key=key))
            outbox.plan(session, exam_id=exam.id, report_version_id=version.id, documents=docs,
                        now=now)
    return payloads


def throughput_hl7(runtime: Runtime, hospital: Hospital, ris: RisPeer, count: int) -> None:
    payloads = _fill(runtime, hospital, count=count, document="ORU^R01", endpoint_id=1)
    runtime.outbox_signal.set()
    seconds = _wait(runtime, count, keys="B1-")
    print(f"  outbox, {count} ORU^R01 pending: {seconds:6.1f} s, {count / seconds:7.0f}/s")
    start = time.perf_counter()
    with MllpClient(host="127.0.0.1", port=ris.port) as client:
        for payload in payloads:
            client.exchange(payload)
    raw = time.perf_counter() - start
    print(f"  raw MLLP, same messages:      {raw:6.1f} s, {count / raw:7.0f}/s   "
          f"outbox / raw: {seconds / raw:.2f}x  (ORU of {len(frame(payloads[0])) // 1024} KiB)")


def throughput_dicom(runtime: Runtime, hospital: Hospital, pacs: Orthanc, count: int) -> None:
    payloads = _fill(runtime, hospital, count=count, document="SR", endpoint_id=2)
    runtime.outbox_signal.set()
    seconds = _wait(runtime, count, keys="B2-")
    print(f"  outbox, {count} SR pending:      {seconds:6.1f} s, {count / seconds:7.0f}/s")
    sender = senders()["dicom_store"]
    start = time.perf_counter()
    address = Address(host="127.0.0.1", port=pacs.dicom_port, called_ae_title="ORTHANC")
    for at in range(0, count, 200):
        sender.send(address, [Outgoing(delivery_id=i, document="SR", payload=p)
                              for i, p in enumerate(payloads[at:at + 200])])
    raw = time.perf_counter() - start
    print(f"  raw C-STORE, same objects:    {raw:6.1f} s, {count / raw:7.0f}/s   "
          f"outbox / raw: {seconds / raw:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=20)
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--dicom", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="telerad-bench-") as folder:
        root = Path(folder)
        settings = Settings.from_env(root / "telerad", delivery_max_backoff=1.0)
        runtime = Runtime.open(settings, clock=SystemClock())
        ris = RisPeer(port=free_port()).start()
        pacs = Orthanc(root / "orthanc").start()
        hospital = Hospital(runtime, ris_port=ris.port, pacs_port=pacs.dicom_port)
        worker = DeliveryWorker(runtime.sessions, runtime.clock, senders(),
                                calling_ae_title="TELERAD",
                                max_backoff=dt.timedelta(seconds=1), poll_interval=0.5,
                                wake=runtime.outbox_signal)
        worker.start()
        try:
            print(f"index: {'SQLite' if settings.is_sqlite else 'PostgreSQL'}; "
                  f"RIS: python-hl7 MLLP server; PACS: Orthanc; "
                  f"{os.cpu_count()} cores")
            print(f"signature -> acknowledged delivery, {args.reports} final reports:")
            latency(runtime, hospital, args.reports)
            print("outbox throughput:")
            throughput_hl7(runtime, hospital, ris, args.pending)
            if args.dicom:
                throughput_dicom(runtime, hospital, pacs, args.dicom)
        finally:
            worker.stop()
            ris.stop()
            pacs.stop()
            runtime.close()


if __name__ == "__main__":
    main()
