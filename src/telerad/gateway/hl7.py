"""The HL7 edge: orders and patient updates from the sites' RIS over MLLP.

Each message is answered in original acknowledgement mode (HL7 v2.5 §2.9.2): it is parsed
(tolerantly, :mod:`telerad.hl7.messages`), applied in one transaction by
:func:`telerad.workflow.requests.hl7_orders.receive`, and ACK AA is sent only once that
transaction has committed. Errors are translated here, once, into MSA-1 and an ERR segment
(table 0357 code, ERR-2 location when known; :func:`telerad.hl7.ack.ack`):

=============================================  ====  =====================================
raised                                         MSA   ERR-3 (table 0357)
=============================================  ====  =====================================
unreadable bytes (:class:`InvalidHl7` of parse) AR   100 segment sequence error
message type / event / ORC-1 not taken          AR   200, 201, 103 (UnsupportedMessage)
unknown sending facility (MSH-4)                AR   103 table value not found (table 0362)
order or update lacking or spoiling a field     AE   101 required, 102 format, 103 choice
cancellation of an unknown order                AE   204 unknown key identifier
exam that can no longer change as asked         AE   206 record locked, 205 duplicate key
anything else                                   AE   207 application internal error
=============================================  ====  =====================================

AR says "this cannot be taken from you at all" (§2.9.2.3: type, event, sender); AE says
"this message could not be processed", and the RIS's operator corrects and resends. An
unexpected failure is logged by its type only (the message holds patient data), and its
transaction rolled back: nothing of the message stays.
"""

from __future__ import annotations

import logging
import uuid

from telerad.errors import Conflict, InvalidInput, NotFound, TeleradError, UnknownSender
from telerad.gateway.mllp import MllpServer
from telerad.hl7.ack import AckCode, ack
from telerad.hl7.messages import InvalidHl7, Message, parse
from telerad.hl7.orders import UnsupportedMessage
from telerad.runtime import Runtime
from telerad.workflow.requests import hl7_orders
from telerad.workflow.requests.hl7_orders import Applied

LOGGER = logging.getLogger(__name__)

#: Refused whole (AR): what the sender cannot fix by correcting the message's content.
_REJECTED = (UnsupportedMessage, UnknownSender)
#: Table 0357 code of errors that do not name their own, most specific class first.
_DEFAULT_HL7_ERRORS: tuple[tuple[type[TeleradError], str], ...] = (
    (NotFound, "204"), (Conflict, "205"), (InvalidInput, "102"))
INTERNAL_ERROR = "207"


class _Reported(TeleradError):
    """The error as the ACK reports it: its code and text, with the table 0357 code and
    location this edge chose."""

    def __init__(self, error: TeleradError, *, hl7_error: str) -> None:
        super().__init__(error.message)
        self.code = error.code
        self.hl7_error = hl7_error
        self.hl7_location = str(getattr(error, "hl7_location", ""))


def _verdict(error: TeleradError) -> tuple[AckCode, _Reported]:
    """MSA-1 and the reported error for ``error`` (the table in the module's text)."""
    code = AckCode.REJECT if isinstance(error, _REJECTED) else AckCode.ERROR
    own = getattr(error, "hl7_error", "")
    default = next((e for cls, e in _DEFAULT_HL7_ERRORS if isinstance(error, cls)),
                   INTERNAL_ERROR)
    return code, _Reported(error, hl7_error=str(own or default))


class _InternalError(TeleradError):
    code = "internal_error"
    hl7_error = INTERNAL_ERROR


class Hl7Gateway:
    """The MLLP listener for orders and patient updates (``telerad serve --mllp``)."""

    def __init__(self, *, runtime: Runtime, host: str, port: int) -> None:
        self.runtime = runtime
        self.server = MllpServer(host=host, port=port, handle=self.handle,
                                 clock=runtime.clock)

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> Hl7Gateway:
        self.server.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.stop(timeout)

    def __enter__(self) -> Hl7Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, data: bytes) -> bytes:
        """The ACK to one received message (never raises: every failure is an ACK)."""
        charset = _charset(data)
        try:
            message = parse(data)
        except InvalidHl7 as exc:
            LOGGER.warning("HL7 message of %d bytes unreadable: refused (%s)", len(data),
                           exc.code)
            return self._ack(None, AckCode.REJECT, _verdict(exc)[1], charset)
        facility = message.field(message.msh, 4)
        kind = f"{message.message_type}^{message.trigger_event}"
        try:
            applied = self._apply(message)
        except TeleradError as exc:
            code, reported = _verdict(exc)
            LOGGER.warning("HL7 %s %s from %r: %s %s (%s)", kind, message.control_id[:40],
                           facility[:40], code, reported.hl7_error, exc.code)
            return self._ack(message, code, reported, charset)
        except Exception as exc:
            LOGGER.error("HL7 %s %s from %r failed: %s", kind, message.control_id[:40],
                         facility[:40], type(exc).__name__)
            failure = _InternalError("application internal error: the message was not "
                                     "applied; send it again later")
            return self._ack(message, AckCode.ERROR, _verdict(failure)[1], charset)
        LOGGER.info("HL7 %s %s from %r (site %d): %s", kind, message.control_id[:40],
                    facility[:40], applied.site_id, _summary(applied))
        return self._ack(message, AckCode.ACCEPT, None, charset)

    def _apply(self, message: Message) -> Applied:
        """One transaction; tried twice when the same order arrived at the same moment on
        another connection (the unique order number refuses the second insert: the second
        try finds the first's exam) or the database connection was lost since its last use."""
        return self.runtime.step_twice(
            lambda session: hl7_orders.receive(session, message, now=self.runtime.clock.now()))

    def _ack(self, message: Message | None, code: AckCode, error: TeleradError | None,
             charset: str) -> bytes:
        text = ack(message, code=code, control_id=uuid.uuid4().hex[:20],
                   now=self.runtime.clock.now(), error=error)
        return text.encode(charset, errors="replace")


def _charset(data: bytes) -> str:
    """The ACK is written in the received message's character set, as :func:`parse` read
    it: UTF-8 when it decodes so, else Latin-1 (MSH-18 is rarely right)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def _summary(applied: Applied) -> str:
    counts = {"filed": applied.filed, "already filed": applied.already_filed,
              "cancelled": applied.cancelled, "updated": applied.updated,
              "merged": applied.merged}
    return ", ".join(f"{len(ids)} {what}" for what, ids in counts.items() if ids) or "no change"
