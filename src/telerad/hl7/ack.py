"""Acknowledgements (HL7 v2.5 §2.9.2, original acknowledgement mode; MSA §2.15.8, ERR
§2.15.5).

:func:`ack` answers a received message: MSA-1 ``AA`` (accepted), ``AE`` (error while
processing: the sender should correct and resend) or ``AR`` (rejected: unsupported type,
version, or unreadable), MSA-2 the received MSH-10. The MSH mirrors the received one:
sending and receiving application/facility swapped, MSH-9 ``ACK^<trigger>^ACK``, the same
processing ID and version. For AE and AR, an ERR segment carries the HL7 table 0357 code,
the severity, telerad's error code (ERR-5) and its English message (ERR-8; also MSA-3, which
v2.5 deprecates but many RIS still display). Messages never carry patient data.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from telerad.errors import TeleradError
from telerad.hl7.messages import Message, escape, render

#: HL7 table 0357 texts for the codes telerad uses.
HL7_ERRORS = {"0": "Message accepted", "100": "Segment sequence error",
              "101": "Required field missing", "102": "Data type error",
              "103": "Table value not found", "200": "Unsupported message type",
              "201": "Unsupported event code", "203": "Unsupported version id",
              "204": "Unknown key identifier", "205": "Duplicate key identifier",
              "207": "Application internal error"}


class AckCode(StrEnum):
    """MSA-1, HL7 table 0008 (original mode)."""

    ACCEPT = "AA"
    """Accepted and processed."""
    ERROR = "AE"
    """Processing failed; the sender may correct the message and resend it."""
    REJECT = "AR"
    """Rejected: the message cannot be handled at all (type, version, unreadable)."""


def timestamp(now: dt.datetime) -> str:
    """A DTM (§2.A.22) to the second, with the UTC offset when ``now`` is aware."""
    return now.strftime("%Y%m%d%H%M%S") + (now.strftime("%z") if now.tzinfo else "")


def ack(received: Message | None, *, code: AckCode, control_id: str, now: dt.datetime,
        error: TeleradError | None = None, application: str = "TELERAD",
        facility: str = "") -> str:
    """The ACK to ``received`` as ER7 text (to be encoded and framed by the caller).

    ``received`` is None when the bytes could not be parsed at all: the ACK then names
    nobody and echoes no control ID. ``error`` is required for AE and AR; its class's
    ``hl7_error`` attribute (table 0357) defaults to 207, application internal error.
    """
    if code is not AckCode.ACCEPT and error is None:
        raise ValueError("an AE or AR acknowledgement needs the error it reports")
    msh = received.msh if received is not None else None

    def mirrored(n: int) -> str:
        return msh.transcoded(n) if msh is not None else ""

    trigger = received.trigger_event if received is not None else ""
    version = (received.version if received is not None else "") or "2.5"
    segments: list[list[str]] = [
        ["MSH", escape(application), escape(facility) or "", mirrored(3), mirrored(4),
         timestamp(now), "", f"ACK^{escape(trigger)}^ACK" if trigger else "ACK",
         escape(control_id), mirrored(11) or "P", escape(version)],
    ]
    # The received MSH-5/MSH-6 (that was us, as the sender saw us) win over the defaults.
    if mirrored(5):
        segments[0][1] = mirrored(5)
    if mirrored(6):
        segments[0][2] = mirrored(6)
    received_id = escape(received.control_id) if received is not None else ""
    if error is None:
        segments.append(["MSA", code.value, received_id])
        return render(segments)
    hl7_error = str(getattr(error, "hl7_error", "207"))
    text = escape(error.message)
    segments.append(["MSA", code.value, received_id, escape(error.message[:80])])
    # ERR-2 (ERL): segment^sequence^field, each component escaped on its own.
    location = "^".join(escape(c) for c in str(getattr(error, "hl7_location", "")).split("^"))
    segments.append(["ERR", "", location,
                     f"{hl7_error}^{HL7_ERRORS.get(hl7_error, '')}^HL70357",
                     "E", f"{escape(error.code)}^^L", "", "", text])
    return render(segments)
