"""Sending instances to a DICOM peer (C-STORE SCU), for the demo and tools.

pynetdicom 3.0.4 loses an answer now and then, to its own reactor thread. A request pauses
the association's reactor with ``_reactor_checkpoint.clear()``, then waits until the reactor
says ``_is_paused``; the reactor loops on ``_is_paused = True``, a wait at the checkpoint,
``_is_paused = False``, and taking any received message off the DIMSE queue. When the end of
one request has just woken it, but it has not yet run ``_is_paused = False`` (it waits for
the GIL on a busy machine), the next request sees the stale ``True`` and sends; the reactor,
running while the request waits, may then take the C-STORE-RSP off the queue first ("Received
unexpected C-STORE service message"). The sender waits out its DIMSE timeout and aborts,
though the image was stored: about 1 image in 1,000 to 10,000 under load
(``benchmarks/scu_lost_answers.py``; pydicom/pynetdicom#875 shows the same for C-FIND).

:class:`_ReactorCheckpoint` closes the window: the reactor is marked running under the lock
that ``clear()`` takes, so a request either finds the reactor blocked at the checkpoint or
waits for it to get back there. It replaces the association's checkpoint before its reactor
thread starts. Should pynetdicom change these internals, nothing is replaced (a warning is
logged), and the DIMSE timeout, proportionate to each instance, still bounds the wait for a
lost answer.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.presentation import build_context

from telerad.errors import StorageFailure

LOGGER = logging.getLogger(__name__)

#: Seconds a peer has to answer a C-STORE, beyond the time its data set takes to travel.
ANSWER_TIMEOUT = 10.0
#: The slowest transfer the DIMSE timeout allows for, in bytes per second (pynetdicom's
#: timeout runs from when the request is queued, before its data set is on the wire).
SLOWEST_TRANSFER = 1_000_000
#: Bytes of a data set not counted in its Pixel Data: its header, at most.
HEADER_ALLOWANCE = 64 * 1024


class _ReactorCheckpoint:
    """A stand-in for ``Association._reactor_checkpoint`` (a :class:`threading.Event`)
    whose ``wait()`` marks the reactor running under the lock ``clear()`` takes.

    pynetdicom pauses the reactor with ``clear()`` then waits for ``_is_paused``: with
    this checkpoint a reactor past ``wait()`` has ``_is_paused`` false before ``clear()``
    returns, so the request waits until the reactor is back at the checkpoint, and blocks."""

    def __init__(self, assoc: Association) -> None:
        self._assoc = assoc
        self._cond = threading.Condition(threading.Lock())
        self._flag = True

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._cond:
            self._flag = True
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        with self._cond:
            if not self._cond.wait_for(lambda: self._flag, timeout):
                return False
            self._assoc._is_paused = False
            return True


def _prepare_requestor(event: evt.Event) -> None:
    """EVT_CONN_OPEN of an association we request: before its reactor thread starts, give
    it the race-free checkpoint, and send small PDUs without waiting for Nagle's algorithm
    (the C-STORE-RQ command and a small data set are two writes: 40 ms more per small
    image, 20 images a second instead of 270 for 16x16 ones)."""
    assoc = event.assoc
    if isinstance(getattr(assoc, "_reactor_checkpoint", None), threading.Event) and isinstance(
            getattr(assoc, "_is_paused", None), bool):
        assoc._reactor_checkpoint = _ReactorCheckpoint(assoc)  # type: ignore[assignment]
    else:
        LOGGER.warning("pynetdicom's association reactor changed: its checkpoint is kept")
    raw = getattr(assoc.dul.socket, "socket", None)
    if isinstance(raw, socket.socket) and raw.family in (socket.AF_INET, socket.AF_INET6):
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


#: Pass to ``AE.associate(evt_handlers=...)`` for any association telerad requests.
REQUESTOR_HANDLERS: list[tuple[evt.EventType, Callable[[evt.Event], None]]] = [
    (evt.EVT_CONN_OPEN, _prepare_requestor),
]


def dimse_timeout(ds: Dataset) -> float:
    """Seconds to wait for the answer to the C-STORE of ``ds``: :data:`ANSWER_TIMEOUT`,
    plus its Pixel Data and header at :data:`SLOWEST_TRANSFER`."""
    pixel_data = ds.get("PixelData")
    size = len(pixel_data) if isinstance(pixel_data, bytes | bytearray) else 0
    return ANSWER_TIMEOUT + (size + HEADER_ALLOWANCE) / SLOWEST_TRANSFER


def send_datasets(
    datasets: Iterable[Dataset], *, host: str, port: int, calling_ae_title: str,
    called_ae_title: str, sop_class_uid: str, transfer_syntax_uid: str,
    progress: Callable[[int], None] | None = None,
) -> int:
    """C-STORE each dataset over one association; return how many were stored.

    StorageFailure when the association is refused, a C-STORE is refused, or its answer
    does not come within :func:`dimse_timeout` (the association is then aborted) or before
    the association ends:
    ``progress`` has been called with the count confirmed so far, from which a caller
    resends (a duplicate of a stored instance is answered as stored)."""
    ae = AE(ae_title=calling_ae_title)
    ae.requested_contexts = [build_context(sop_class_uid, [transfer_syntax_uid])]
    assoc = ae.associate(host, port, ae_title=called_ae_title,
                         evt_handlers=list(REQUESTOR_HANDLERS))
    if not assoc.is_established:
        raise StorageFailure(f"association with {called_ae_title}@{host}:{port} refused")
    stored = 0
    try:
        for ds in datasets:
            assoc.dimse_timeout = dimse_timeout(ds)
            status = assoc.send_c_store(ds)
            if "Status" not in status:
                raise StorageFailure(
                    f"no C-STORE answer for {ds.SOPInstanceUID}: none within "
                    f"{assoc.dimse_timeout:.0f} s, or the association ended")
            if status.Status != 0x0000:
                raise StorageFailure(f"C-STORE refused with status {status!r}")
            stored += 1
            if progress is not None:
                progress(stored)
    finally:
        if assoc.is_established:
            assoc.release()
    return stored
