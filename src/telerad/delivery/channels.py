"""What the outbox asks of a transport: send these documents, in this order, to this peer,
and say for each what the peer answered.

The transports themselves (MLLP, DICOM C-STORE) live at the network edge
(:mod:`telerad.gateway.channels`) and are handed to the worker; tests hand it fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Verdict(StrEnum):
    """What the peer's answer means for the outbox."""

    ACKNOWLEDGED = "acknowledged"
    """The peer has it (ACK AA; C-STORE 0x0000, or a warning 0xB000-0xB007)."""
    RETRY = "retry"
    """Not delivered, worth trying again later: peer down, timeout, ACK AR (HL7 v2.5
    §2.9.2.3: rejected for reasons unrelated to the content, e.g. system down), DICOM
    0xA7xx (out of resources)."""
    REJECTED = "rejected"
    """The peer refuses this content: ACK AE (error in the content), a DICOM failure other
    than out of resources. Sending it again would fail again."""


@dataclass(frozen=True, kw_only=True)
class Address:
    """Where a peer is and how it is named."""

    host: str
    port: int
    #: DICOM: the PACS's AE title; our own is ``calling_ae_title``.
    called_ae_title: str = ""
    calling_ae_title: str = "TELERAD"


@dataclass(frozen=True, kw_only=True)
class Outgoing:
    """One document to send."""

    delivery_id: int
    document: str
    payload: bytes


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """The peer's answer to one document."""

    delivery_id: int
    verdict: Verdict
    #: As the peer said it, for the people who look after deliveries: "AA", "AE: 101
    #: required field missing", "0x0000", "connection refused". Never patient data.
    answer: str


class Sender(Protocol):
    """A transport for one channel kind."""

    def send(self, address: Address, documents: Sequence[Outgoing]) -> list[Outcome]:
        """Send ``documents`` in order over one connection, waiting for each answer.

        Stops at the first document not acknowledged: its outcome is the last one returned,
        and the documents after it are not sent (their order must hold). A peer that cannot
        be reached gives one RETRY outcome, for the first document. Never raises for a
        peer's failure; raises only for a bug.
        """
        ...
