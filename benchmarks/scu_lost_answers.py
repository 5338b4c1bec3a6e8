"""Lost C-STORE answers: how many of N small instances sent to telerad's gateway get no
answer (the sender waits out its DIMSE timeout, then aborts), by sender.

Senders:

- ``pynetdicom``: a plain pynetdicom 3 association, as ``send_datasets`` was before its fix;
- ``pynetdicom-nodelay``: the same with TCP_NODELAY (shorter round trips: the race of
  pynetdicom's reactor is lost more often);
- ``send_datasets``: telerad's C-STORE SCU (``telerad.gateway.scu``);
- ``storescu``: dcmtk's, one process for all the files (no race possible: no threads).

The gateway runs in this process (as in ``telerad demo``) on a throw-away SQLite data dir,
or in its own (``--server process``, ``telerad serve``). ``--burn N`` adds N busy Python
threads to the sender's process (bursts of work between short waits), as a loaded demo
process has: more contention for the GIL, more lost answers. A lost answer is waited for
``--timeout`` seconds (DIMSE timeout), then the sending resumes from the first image not
confirmed, on a new association.

    .venv/bin/python benchmarks/scu_lost_answers.py [--images 3000]
        [--sender pynetdicom pynetdicom-nodelay send_datasets storescu]
        [--server inprocess|process] [--burn 0] [--timeout 2]

Prints per sender: images, associations, lost answers, "Received unexpected" warnings of
pynetdicom's reactor (``stolen``), the reactor's polls of the DIMSE queue while a request
waited for its answer (``unsafe``: each could have taken the answer; none should happen),
seconds and images per second.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.presentation import build_context

from telerad.config import Settings
from telerad.db import transaction
from telerad.dicom.synthetic import SyntheticStudy, instances, write_study
from telerad.errors import StorageFailure
from telerad.gateway import scu
from telerad.gateway.dicom import DicomGateway
from telerad.runtime import Runtime
from telerad.testing.peers import TeleradServer, storescu
from telerad.workflow.sites.service import add_site

SENDER_AE = "BENCH_SCU"


class _Warnings(logging.Handler):
    """pynetdicom's reactor taking a response it did not ask for."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.stolen = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Received unexpected" in record.getMessage():
            self.stolen += 1


@dataclass
class Result:
    sender: str
    images: int
    associations: int
    lost: int
    stolen: int
    unsafe: int
    seconds: float


def _seed(data_dir: Path, database_url: str) -> None:
    runtime = Runtime.open(Settings(data_dir=data_dir, database_url=database_url))
    try:
        with transaction(runtime.sessions) as session:
            add_site(session, name="Bench", ae_titles=[SENDER_AE], now=runtime.clock.now())
    finally:
        runtime.close()


@contextlib.contextmanager
def gateway(kind: str, root: Path) -> Iterator[int]:
    """A gateway on a fresh data dir, its port."""
    data_dir, url = root / "data", f"sqlite:///{root / 'index.sqlite3'}"
    _seed(data_dir, url)
    if kind == "process":
        server = TeleradServer(data_dir=data_dir, env={"TELERAD_DATABASE_URL": url,
                                                       "TELERAD_STABLE_AGE": "3600"})
        with server:
            yield server.dicom_port
        return
    runtime = Runtime.open(Settings(data_dir=data_dir, database_url=url, stable_age=3600))
    gw = DicomGateway(runtime=runtime, host="127.0.0.1", port=0, ae_title="TELERAD")
    gw.start()
    try:
        yield gw.port
    finally:
        gw.stop()
        runtime.close()


class _Polls:
    """Counts the reactor's polls of the DIMSE queue while a request waits for its answer:
    each one could take that answer (pynetdicom's race), whether or not it did."""

    def __init__(self) -> None:
        self.waiting = False
        self.unsafe = 0

    def instrument(self, event: evt.Event) -> None:
        assoc, dimse = event.assoc, event.assoc.dimse
        send_msg, get_msg = dimse.send_msg, dimse.get_msg

        def sending(primitive: Any, context_id: int) -> None:
            self.waiting = True
            send_msg(primitive, context_id)

        def getting(block: bool = False) -> Any:
            if threading.current_thread() is assoc:  # the reactor
                self.unsafe += self.waiting
                return get_msg(block)
            try:
                return get_msg(block)
            finally:
                self.waiting = False

        dimse.send_msg = sending  # type: ignore[method-assign]
        dimse.get_msg = getting  # type: ignore[method-assign]


POLLS = _Polls()
FIXED_HANDLERS = list(scu.REQUESTOR_HANDLERS)


def _nodelay(event: evt.Event) -> None:
    raw = getattr(event.assoc.dul.socket, "socket", None)
    if isinstance(raw, socket.socket):
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _plain(datasets: list[Dataset], port: int, timeout: float, nodelay: bool,
           confirmed: list[int]) -> None:
    """send_datasets as it was before its fix (with an optional TCP_NODELAY)."""
    ae = AE(ae_title=SENDER_AE)
    ae.dimse_timeout = timeout
    ae.requested_contexts = [build_context(CTImageStorage, [ExplicitVRLittleEndian])]
    handlers: list[evt.EventHandlerType] = [(evt.EVT_CONN_OPEN, _nodelay)] if nodelay else []
    handlers.append((evt.EVT_CONN_OPEN, POLLS.instrument))
    assoc = ae.associate("127.0.0.1", port, ae_title="TELERAD", evt_handlers=handlers)
    if not assoc.is_established:
        raise StorageFailure("association refused")
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            if status.get("Status", 0xFFFF) != 0x0000:
                raise StorageFailure(f"C-STORE failed: {status!r}")
            confirmed[0] += 1
    finally:
        assoc.release()


def send(sender: str, datasets: list[Dataset], port: int, timeout: float) -> Result:
    """Send every dataset, resuming after each lost answer; count them."""
    warnings = _Warnings()
    logging.getLogger("pynetdicom").addHandler(warnings)
    scu.ANSWER_TIMEOUT = timeout
    scu.REQUESTOR_HANDLERS = [*FIXED_HANDLERS, (evt.EVT_CONN_OPEN, POLLS.instrument)]
    POLLS.unsafe = 0
    sent, associations, lost = 0, 0, 0
    started = time.perf_counter()
    confirmed = [0]

    def progress(count: int) -> None:
        confirmed[0] = count

    try:
        while sent < len(datasets):
            confirmed[0] = 0
            associations += 1
            try:
                if sender == "send_datasets":
                    scu.send_datasets(
                        datasets[sent:], host="127.0.0.1", port=port,
                        calling_ae_title=SENDER_AE, called_ae_title="TELERAD",
                        sop_class_uid=CTImageStorage, transfer_syntax_uid=ExplicitVRLittleEndian,
                        progress=progress)
                else:
                    _plain(datasets[sent:], port, timeout, sender.endswith("nodelay"),
                           confirmed)
                sent = len(datasets)
            except StorageFailure:
                lost += 1
                sent += confirmed[0]  # resent: the gateway answers a duplicate as stored
    finally:
        logging.getLogger("pynetdicom").removeHandler(warnings)
    return Result(sender, len(datasets), associations, lost, warnings.stolen, POLLS.unsafe,
                  time.perf_counter() - started)


def send_storescu(folder: Path, count: int, port: int) -> Result:
    started = time.perf_counter()
    result = storescu([folder], port=port, calling=SENDER_AE)
    seconds = time.perf_counter() - started
    failed = result.returncode != 0 or "Store Failed" in result.stderr
    return Result("storescu", count, 1, int(failed), 0, 0, seconds)


def burn(stop: threading.Event, seed: int) -> None:
    """A busy thread of a server: bursts of Python work (up to 2 ms) between short waits."""
    rng = random.Random(seed)
    while not stop.is_set():
        until = time.perf_counter() + rng.uniform(0, 0.002)
        while time.perf_counter() < until:
            pass
        time.sleep(rng.uniform(0, 0.001))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--sender", nargs="+", default=["pynetdicom-nodelay", "send_datasets"],
                        choices=["pynetdicom", "pynetdicom-nodelay", "send_datasets",
                                 "storescu"])
    parser.add_argument("--server", choices=["inprocess", "process"], default="inprocess")
    parser.add_argument("--burn", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()

    stop = threading.Event()
    for seed in range(args.burn):
        threading.Thread(target=burn, args=(stop, seed), daemon=True).start()
    print(f"{args.images} images of 16x16 per sender, gateway {args.server}, "
          f"{args.burn} busy threads, DIMSE timeout {args.timeout:g} s, "
          f"{os.cpu_count()} CPUs")
    print(f"{'sender':<20} {'images':>7} {'assocs':>7} {'lost':>5} {'stolen':>7} "
          f"{'unsafe':>7} {'seconds':>8} {'img/s':>7}")
    try:
        for sender in args.sender:
            if sender == "storescu" and shutil.which("storescu") is None:
                print("storescu: dcmtk is not installed")
                continue
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                study = SyntheticStudy(slices=args.images, rows=16, columns=16)
                with gateway(args.server, root) as port:
                    if sender == "storescu":
                        write_study(study, root / "ct")
                        result = send_storescu(root / "ct", args.images, port)
                    else:
                        result = send(sender, list(instances(study)), port, args.timeout)
            print(f"{result.sender:<20} {result.images:>7} {result.associations:>7} "
                  f"{result.lost:>5} {result.stolen:>7} {result.unsafe:>7} {result.seconds:>8.1f} "
                  f"{result.images / result.seconds:>7.0f}", flush=True)
    finally:
        stop.set()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
