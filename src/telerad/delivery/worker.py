"""The thread that empties the outbox: claim, send over the endpoint's channel, settle.

Sending happens outside any transaction (a peer may take seconds; the database is not held
meanwhile): one short transaction leases the rows, the senders talk to the peers, another
short transaction records what they answered.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from itertools import groupby

from sqlalchemy.orm import Session, sessionmaker

from telerad.clock import Clock
from telerad.db import transaction
from telerad.delivery import outbox
from telerad.delivery.channels import Address, Outcome, Outgoing, Sender, Verdict
from telerad.delivery.models import Delivery, Endpoint

LOGGER = logging.getLogger(__name__)


def deliver_due(sessions: sessionmaker[Session], clock: Clock, senders: Mapping[str, Sender],
                *, calling_ae_title: str, max_backoff: dt.timedelta, limit: int = 200) -> int:
    """Send what is due now, once; return how many deliveries were tried."""
    with transaction(sessions) as session:
        claimed = outbox.claim(session, now=clock.now(), limit=limit)
        batches = []
        for endpoint_id, group in groupby(claimed, key=lambda r: r.endpoint_id):
            endpoint = session.get(Endpoint, endpoint_id)
            assert endpoint is not None
            address = Address(host=endpoint.host, port=endpoint.port,
                              called_ae_title=endpoint.called_ae_title,
                              calling_ae_title=calling_ae_title)
            batches.append((endpoint.channel, address, [
                Outgoing(delivery_id=r.id, document=r.document, payload=r.payload)
                for r in group]))
    if not batches:
        return 0
    tried = 0
    # Each endpoint's answers are recorded as soon as it gave them: a slow PACS does not
    # hold back the RIS's acknowledgements (nor, after a crash, make them be sent again).
    for channel, address, documents in batches:
        sender = senders.get(channel)
        outcomes = sender.send(address, documents) if sender is not None else [
            Outcome(delivery_id=documents[0].delivery_id, verdict=Verdict.RETRY,
                    answer=f"no sender for channel {channel}")]
        tried += len(outcomes)
        with transaction(sessions) as session:
            settled = [row for d in documents
                       if (row := session.get(Delivery, d.delivery_id)) is not None]
            outbox.settle(session, claimed=settled, outcomes=outcomes, now=clock.now(),
                          max_backoff=max_backoff)
    return tried


class DeliveryWorker:
    """A background thread that delivers until stopped; :meth:`wake` after a signature
    sends at once instead of at the next poll."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock,
                 senders: Mapping[str, Sender], *, calling_ae_title: str,
                 max_backoff: dt.timedelta, poll_interval: float = 0.5,
                 wake: threading.Event | None = None) -> None:
        self._sessions = sessions
        self._clock = clock
        self._senders = senders
        self._calling = calling_ae_title
        self._max_backoff = max_backoff
        self._poll_interval = poll_interval
        self._stop = threading.Event()
        #: Set by whoever commits new deliveries (the runtime's outbox signal).
        self._wake = wake or threading.Event()
        self._thread = threading.Thread(target=self._loop, name="telerad-delivery", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                tried = deliver_due(self._sessions, self._clock, self._senders,
                                    calling_ae_title=self._calling, max_backoff=self._max_backoff)
            except Exception:
                LOGGER.exception("delivery round failed; retrying")
                tried = 0
            if tried == 0:
                self._wake.wait(self._poll_interval)
