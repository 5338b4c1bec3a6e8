"""One process: HTTP (uvicorn), the DICOM gateway, the HL7 listener when asked for, and the
job worker, stopped by SIGTERM/SIGINT."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import signal
import threading
from collections.abc import Callable, Iterator

import uvicorn

from telerad.archive.blobstore import FolderBlobStore
from telerad.archive.maintenance import quarantine_orphans
from telerad.db import transaction
from telerad.delivery.worker import DeliveryWorker
from telerad.gateway.channels import senders
from telerad.gateway.dicom import DicomGateway
from telerad.gateway.hl7 import Hl7Gateway
from telerad.jobs import Worker
from telerad.runtime import Runtime
from telerad.web.app import create_app

LOGGER = logging.getLogger(__name__)
#: Present while a server runs on the data directory; found at start, it means a crash.
RUNNING_MARKER = "serve.running"


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after its shutdown, which would kill the process
    before the gateway and the worker stop; here the signal only asks for a clean exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in
                    (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def delivery_worker(runtime: Runtime) -> DeliveryWorker:
    """The outbox's sender, over the real transports (MLLP, DICOM C-STORE)."""
    settings = runtime.settings
    return DeliveryWorker(
        runtime.sessions, runtime.clock, senders(), calling_ae_title=settings.ae_title,
        max_backoff=dt.timedelta(seconds=settings.delivery_max_backoff),
        poll_interval=settings.worker_poll_interval, wake=runtime.outbox_signal)


def run_server(
    runtime: Runtime, *, http_host: str, http_port: int, dicom_host: str, dicom_port: int,
    on_ready: Callable[[DicomGateway], None] | None = None,
    mllp: tuple[str, int] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; then stop accepting, finish what is running, exit.
    ``mllp``: (host, port) of the HL7 listener for the RIS's orders; None: no listener."""
    settings = runtime.settings
    recover_after_crash(runtime)
    running = settings.data_dir / RUNNING_MARKER
    running.touch()
    gateway = DicomGateway(runtime=runtime, host=dicom_host, port=dicom_port,
                           ae_title=settings.ae_title)
    hl7 = Hl7Gateway(runtime=runtime, host=mllp[0], port=mllp[1]) if mllp else None
    worker = Worker(runtime.sessions, runtime.clock, poll_interval=settings.worker_poll_interval)
    deliverer = delivery_worker(runtime)
    config = uvicorn.Config(
        create_app(runtime), host=http_host, port=http_port, log_level="warning",
        access_log=False, timeout_graceful_shutdown=10,
    )
    server = _Server(config)
    # Everything imported and built so far lives as long as the process: move it out of the
    # collector's sight, so that a full collection costs milliseconds, not the ~100 ms that
    # set the worklist's and claim's p95 with a thousand radiologists on duty
    # (benchmarks/workflow.py).
    gc.freeze()
    gateway.start()
    if hl7 is not None:
        hl7.start()
    worker.start()
    deliverer.start()
    LOGGER.info("telerad ready: http://%s:%d  dicom %s@%s:%d%s", http_host, http_port,
                settings.ae_title, dicom_host, gateway.port,
                f"  mllp {hl7.server.host}:{hl7.port}" if hl7 is not None else "")
    if on_ready is not None:
        on_ready(gateway)
    try:
        server.run()  # returns after SIGTERM/SIGINT (uvicorn installs the handlers)
    finally:
        LOGGER.info("stopping")
        if hl7 is not None:
            hl7.stop()
        gateway.stop()
        worker.stop()
        deliverer.stop()
        running.unlink(missing_ok=True)  # a clean stop: nothing to recover at next start
        runtime.close()
        LOGGER.info("stopped")


def recover_after_crash(runtime: Runtime) -> None:
    """After an unclean stop: drop staged (never acknowledged) data and quarantine blobs
    that no index entry refers to (see telerad.archive.maintenance)."""
    store = runtime.store
    if isinstance(store, FolderBlobStore):
        removed = store.clear_staging()
        if removed:
            LOGGER.info("removed %d staged files never acknowledged (previous crash)", removed)
    if not (runtime.settings.data_dir / RUNNING_MARKER).exists():
        return
    LOGGER.warning("the previous run did not stop cleanly: checking the blob store")
    with transaction(runtime.sessions, readonly=True) as session:
        quarantine_orphans(session, store, runtime.settings.data_dir / "quarantine")
