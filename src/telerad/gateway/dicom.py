"""The DICOM edge: C-ECHO and C-STORE SCP (PS3.4 Annex A and B) into the one intake, and
the Modality Worklist C-FIND SCP (PS3.4 Annex K) of the sender's site.

A handler translates and calls one domain function: the calling AE title is resolved to a
site at association (unknown senders are rejected, PS3.8 §9.3.4), each data set streams
into a staged blob, and 0x0000 is answered only after :func:`intake.prepare` made the bytes
durable and the intake transaction committed. A worklist query sees only the site's own
scheduled steps, and is recorded in the audit trail.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from telerad.archive.blobstore import StagedBlob
from telerad.archive.models import Origin
from telerad.audit import service as audit
from telerad.db import transaction
from telerad.dicom import mwl
from telerad.dicom.part10 import file_meta
from telerad.errors import InstanceConflict, StorageFailure, TeleradError, TooLarge
from telerad.gateway.upper_layer import Association, AssociationRejected
from telerad.runtime import Runtime
from telerad.workflow.exams import intake
from telerad.workflow.requests.worklist import worklist_entries
from telerad.workflow.sites.service import site_for_ae_title

LOGGER = logging.getLogger(__name__)

#: Most associations served at once; more are rejected as "local limit exceeded".
MAX_ASSOCIATIONS = 64


@dataclass
class _StoreSink:
    """One C-STORE data set on its way to the intake."""

    runtime: Runtime
    sender: intake.Sender
    expected: intake.Expected
    staged: StagedBlob
    #: Why the data set is refused already (too large, disk full); answered at its end.
    refused: TeleradError | None = None

    def write(self, fragment: memoryview) -> None:
        if self.refused is not None:
            return  # keep reading so the association stays usable; answer at the end
        try:
            if self.staged.size + len(fragment) > self.runtime.settings.max_upload_bytes:
                raise TooLarge("instance above the configured size limit")
            self.staged.write(fragment)
        except (TeleradError, OSError) as exc:
            LOGGER.warning("C-STORE of %s: cannot keep receiving: %s",
                           self.expected.sop_instance_uid, type(exc).__name__)
            self.refused = exc if isinstance(exc, TeleradError) else StorageFailure(
                "cannot write the received data")
            self.staged.discard()

    def finish(self) -> tuple[int, str]:
        runtime = self.runtime
        try:
            if self.refused is not None:
                raise self.refused
            receipt = runtime.ingest(self.staged, sender=self.sender, expected=self.expected)
        except TeleradError as exc:
            LOGGER.warning("C-STORE of %s from %s refused: %s (%s)",
                           self.expected.sop_instance_uid, self.sender.ae_title, exc.code,
                           exc.message)
            return exc.dimse_status, exc.message
        except Exception:
            LOGGER.exception("C-STORE of %s failed", self.expected.sop_instance_uid)
            return StorageFailure.dimse_status, "internal error while storing"
        if receipt.outcome == intake.Outcome.CONFLICT:
            return InstanceConflict.dimse_status, "SOP Instance UID stored with other content"
        return 0x0000, ""

    def abort(self) -> None:
        if self.refused is None:
            self.staged.discard()


@dataclass
class _Handler:
    runtime: Runtime
    sender: intake.Sender

    def begin_store(
        self, *, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str
    ) -> _StoreSink:
        staged = self.runtime.store.stage()
        # Store what was received, as a Part-10 file: our meta group, then the data set
        # bytes exactly as sent, in their negotiated transfer syntax (PS3.10 §7.1).
        staged.write(file_meta(
            sop_class_uid=sop_class_uid,
            sop_instance_uid=sop_instance_uid,
            transfer_syntax_uid=transfer_syntax_uid,
            source_ae_title=self.sender.ae_title,
        ))
        return _StoreSink(
            runtime=self.runtime,
            sender=self.sender,
            expected=intake.Expected(
                sop_class_uid=sop_class_uid, sop_instance_uid=sop_instance_uid
            ),
            staged=staged,
        )

    def find(self, *, sop_class_uid: str, identifier: Dataset) -> list[Dataset]:
        """Modality Worklist C-FIND (PS3.4 §K.4.1.3): the site's scheduled steps matching
        ``identifier``, each answered with the attributes it asks for."""
        site_id = self.sender.site_id
        if sop_class_uid != mwl.MODALITY_WORKLIST_FIND or site_id is None:
            raise TeleradError(f"no C-FIND of {sop_class_uid} for this sender")
        with transaction(self.runtime.sessions, readonly=True) as session:
            entries = worklist_entries(session, site_id=site_id, now=self.runtime.clock.now())
        answers = [mwl.response(identifier, entry) for entry in entries
                   if mwl.matches(identifier, entry)]
        ae_title = self.sender.ae_title
        self.runtime.audit(audit.Who(kind="dicom", id=ae_title, source=ae_title),
                           audit.Action.SEARCH, detail={"route": "mwl", "matches": len(answers)})
        LOGGER.info("worklist query from %s (site %d): %d of %d steps match",
                    ae_title, site_id, len(answers), len(entries))
        return answers


@dataclass
class DicomGateway:
    """Listens for associations and serves each in its own thread."""

    runtime: Runtime
    host: str
    port: int
    ae_title: str
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _active: dict[threading.Thread, Association] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def _acceptor(self, calling: str, _called: str, peer: tuple[str, int]) -> _Handler:
        with self._lock:
            if len(self._active) > MAX_ASSOCIATIONS:
                raise AssociationRejected(0x02, 0x03, 0x02, "too many associations")
        with transaction(self.runtime.sessions, readonly=True) as session:
            site = site_for_ae_title(session, calling)
            site_id = site.id if site is not None else None
        if site_id is None:
            # rejected-permanent, service-user, calling AE title not recognized
            raise AssociationRejected(0x01, 0x01, 0x03, f"calling AE title {calling!r} is unknown")
        return _Handler(
            runtime=self.runtime,
            sender=intake.Sender(origin=Origin.DICOM, site_id=site_id, ae_title=calling),
        )

    def start(self) -> None:
        sock = socket.create_server((self.host, self.port), reuse_port=False, backlog=64)
        self.port = sock.getsockname()[1]
        sock.settimeout(0.5)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="dicom-accept", daemon=True)
        self._thread.start()
        LOGGER.info("DICOM gateway %s listening on %s:%d", self.ae_title, self.host, self.port)

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                raise
            # Small responses must not wait for Nagle's algorithm (about 40 ms each).
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            association = Association(
                conn, peer, ae_title=self.ae_title, acceptor=self._acceptor,
                maximum_pdu_size=self.runtime.settings.maximum_pdu_size,
                network_timeout=self.runtime.settings.network_timeout,
            )
            thread = threading.Thread(target=self._serve, args=(association,),
                                      name=f"dicom-{peer[0]}:{peer[1]}", daemon=True)
            with self._lock:
                self._active[thread] = association
            thread.start()

    def _serve(self, association: Association) -> None:
        try:
            association.run()
        finally:
            with self._lock:
                self._active.pop(threading.current_thread(), None)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting; abort idle associations, let the others finish the instance they
        are receiving, and give up on them all after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        if self._sock is not None:
            self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            active = dict(self._active)
        for association in active.values():
            association.stop()
        for thread, association in active.items():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():  # still receiving at the deadline: its sender will retry
                with contextlib.suppress(OSError):
                    association.sock.shutdown(socket.SHUT_RDWR)
