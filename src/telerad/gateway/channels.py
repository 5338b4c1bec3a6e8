"""The outbox's transports (:class:`telerad.delivery.channels.Sender`): HL7 v2 over MLLP to
a RIS, DICOM C-STORE to a hospital PACS.

Each ``send`` opens one connection (one association) for its batch, sends the documents in
order, waits for each answer, and stops at the first one not acknowledged, so that a final
report never overtakes its preliminary. What the peer said is kept in a few words for the
people who look after deliveries ("AE: 101 Required field missing", "0xA700"); never patient
data in logs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext, build_context

from telerad.delivery.channels import Address, Outcome, Outgoing, Sender, Verdict
from telerad.delivery.models import ChannelKind
from telerad.gateway.mllp import MllpClient, MllpError
from telerad.gateway.scu import (
    ANSWER_TIMEOUT,
    REQUESTOR_HANDLERS,
    SLOWEST_TRANSFER,
    dimse_timeout,
)
from telerad.hl7.messages import InvalidHl7, Message, parse

LOGGER = logging.getLogger(__name__)

#: Longest answer kept for a delivery.
ANSWER_LENGTH = 200

#: MSA-1 (HL7 table 0008) -> verdict. Original mode (HL7 v2.5 §2.9.2.3): AA accepted; AE
#: an error in the message, which the sender must correct before resending; AR rejected for
#: reasons unrelated to its content (system down, unsupported type or version), worth
#: resending later. Enhanced mode commit acknowledgements (§2.9.3) read the same: CA the
#: receiver has it in safe storage; CE error; CR rejected.
_ACK_CODES = {
    "AA": Verdict.ACKNOWLEDGED, "CA": Verdict.ACKNOWLEDGED,
    "AE": Verdict.REJECTED, "CE": Verdict.REJECTED,
    "AR": Verdict.RETRY, "CR": Verdict.RETRY,
}


def _short(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:ANSWER_LENGTH]


def ack_outcome(answer: Message, *, delivery_id: int, control_id: str) -> Outcome:
    """What an ACK to the message whose MSH-10 is ``control_id`` means for its delivery."""
    def outcome(verdict: Verdict, text: str) -> Outcome:
        return Outcome(delivery_id=delivery_id, verdict=verdict, answer=_short(text))

    if answer.message_type != "ACK" or answer.segment("MSA") is None:
        return outcome(Verdict.RETRY, f"answer is not an ACK (MSH-9 {answer.message_type!r})")
    if answer.field("MSA", 2) != control_id:
        return outcome(Verdict.RETRY, "ACK for another message")
    code = answer.field("MSA", 1).upper()
    verdict = _ACK_CODES.get(code)
    if verdict is None:
        return outcome(Verdict.RETRY, f"unknown acknowledgement code {code!r}")
    if verdict is Verdict.ACKNOWLEDGED:
        return outcome(verdict, code)
    # ERR-3 (v2.5: HL7 table 0357 code) and ERR-8 (user message); before v2.5 the code was
    # ERR-1.4 and the text only MSA-3 (deprecated since, but still what many RIS fill).
    err = answer.segment("ERR")
    error_code = (err.value(3) or err.value(1, 4)) if err is not None else ""
    text = (err.value(8) if err is not None else "") or answer.field("MSA", 3)
    detail = " ".join(part for part in (error_code, text) if part)
    return outcome(verdict, f"{code}: {detail}" if detail else code)


@dataclass(frozen=True, kw_only=True)
class Hl7MllpSender:
    """ER7 messages (ORU^R01) to a RIS over MLLP, each waiting for its ACK."""

    #: Seconds to connect, and for each ACK to come.
    timeout: float = 10.0

    def send(self, address: Address, documents: Sequence[Outgoing]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        with MllpClient(host=address.host, port=address.port, timeout=self.timeout) as client:
            for document in documents:
                outcome = self._send_one(client, document)
                outcomes.append(outcome)
                LOGGER.info("delivery %d (%s) to %s:%d: %s %s", document.delivery_id,
                            document.document, address.host, address.port, outcome.verdict,
                            outcome.answer)
                if outcome.verdict is not Verdict.ACKNOWLEDGED:
                    break
        return outcomes

    @staticmethod
    def _send_one(client: MllpClient, document: Outgoing) -> Outcome:
        try:
            control_id = parse(document.payload).control_id
            answer = client.exchange(document.payload)
        except InvalidHl7:
            return Outcome(delivery_id=document.delivery_id, verdict=Verdict.REJECTED,
                           answer="not sent: the payload is not an HL7 v2 message")
        except ValueError:  # MLLP cannot frame a message holding 0x0B or 0x1C
            return Outcome(delivery_id=document.delivery_id, verdict=Verdict.REJECTED,
                           answer="not sent: the payload holds MLLP block characters")
        except MllpError as exc:
            return Outcome(delivery_id=document.delivery_id, verdict=Verdict.RETRY,
                           answer=_short(str(exc)))
        try:
            ack = parse(answer)
        except InvalidHl7:
            return Outcome(delivery_id=document.delivery_id, verdict=Verdict.RETRY,
                           answer="answer is not an HL7 message")
        return ack_outcome(ack, delivery_id=document.delivery_id, control_id=control_id)


def store_outcome(status: int, *, delivery_id: int, comment: str = "") -> Outcome:
    """What a C-STORE status means for its delivery (PS3.4 Annex B.2.3, PS3.7 Annex C)."""
    def outcome(verdict: Verdict, text: str) -> Outcome:
        detail = f"0x{status:04X} {text}".strip()
        return Outcome(delivery_id=delivery_id, verdict=verdict,
                       answer=_short(f"{detail}: {comment}" if comment else detail))

    if status == 0x0000:
        return outcome(Verdict.ACKNOWLEDGED, "")
    # Warnings (PS3.7 C.1.3): the instance is stored. B000 coercion of data elements,
    # B006 elements discarded, B007 data set does not match SOP class (PS3.4 B.2.3); 0001,
    # 0107 attribute list error and 0116 value out of range are the general ones (C.4).
    if 0xB000 <= status <= 0xBFFF or status in (0x0001, 0x0107, 0x0116):
        return outcome(Verdict.ACKNOWLEDGED, "warning")
    # Refused: out of resources (PS3.4 B.2.3 A7xx; PS3.7 C.5.x 0213 resource limitation):
    # the same instance may well be stored later.
    if 0xA700 <= status <= 0xA7FF or status == 0x0213:
        return outcome(Verdict.RETRY, "out of resources")
    # Any other failure (A9xx does not match SOP class, Cxxx cannot understand, 0122 SOP
    # class not supported, 0124 not authorized, ...) would fail again with the same bytes.
    return outcome(Verdict.REJECTED, "failure")


@dataclass(frozen=True)
class _Decoded:
    document: Outgoing
    dataset: Dataset | None
    #: Why the payload cannot be sent, when ``dataset`` is None.
    problem: str = ""


def _decode(document: Outgoing) -> _Decoded:
    problem = ("not sent: the payload is not a DICOM Part 10 file with its SOP Class, "
               "SOP Instance and Transfer Syntax UIDs")
    try:
        ds = dcmread(BytesIO(document.payload), force=False)
    except (InvalidDicomError, EOFError, ValueError, KeyError, AttributeError):
        return _Decoded(document, None, problem)
    # PS3.10 §7.1: the meta information names the transfer syntax, the data set its UIDs.
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta or not (
            "SOPClassUID" in ds and "SOPInstanceUID" in ds):
        return _Decoded(document, None, problem)
    return _Decoded(document, ds)


def _contexts(datasets: Sequence[Dataset]) -> list[PresentationContext]:
    """A presentation context per SOP class (PS3.8 §9.3.2.2): the uncompressed syntaxes,
    between which pynetdicom converts, Explicit VR first (it keeps the value
    representations of private and unknown elements); and a compressed file's own
    syntax in a context of its own, since it cannot be converted."""
    wanted: dict[tuple[str, tuple[UID, ...]], None] = {}
    for ds in datasets:
        syntax = UID(ds.file_meta.TransferSyntaxUID)
        if syntax.is_compressed:
            wanted[str(ds.SOPClassUID), (syntax,)] = None
        wanted[str(ds.SOPClassUID), (ExplicitVRLittleEndian, ImplicitVRLittleEndian)] = None
    return [build_context(sop_class, list(syntaxes)) for sop_class, syntaxes in wanted]


@dataclass(frozen=True, kw_only=True)
class DicomStoreSender:
    """DICOM Part 10 files (SR, Encapsulated PDF) to a PACS by C-STORE (PS3.4 Annex B)."""

    #: Seconds to connect, to negotiate the association, and of silence on it.
    timeout: float = 10.0

    def send(self, address: Address, documents: Sequence[Outgoing]) -> list[Outcome]:
        decoded: list[_Decoded] = []
        for document in documents:
            decoded.append(_decode(document))
            if decoded[-1].dataset is None:
                break  # nothing after it goes before it is sent
        if not decoded:
            return []
        readable = [d.dataset for d in decoded if d.dataset is not None]
        if not readable:
            return [self._log(address, Outcome(delivery_id=decoded[0].document.delivery_id,
                                               verdict=Verdict.REJECTED,
                                               answer=decoded[0].problem))]
        first = decoded[0].document.delivery_id
        try:
            ae = AE(ae_title=address.calling_ae_title)
        except ValueError:
            return [self._log(address, Outcome(delivery_id=first, verdict=Verdict.RETRY,
                                               answer="invalid calling AE title"))]
        ae.connection_timeout = ae.acse_timeout = ae.network_timeout = self.timeout
        ae.requested_contexts = _contexts(readable)
        watch = _Watch()
        try:
            assoc = ae.associate(address.host, address.port, ae_title=address.called_ae_title,
                                 evt_handlers=[*REQUESTOR_HANDLERS, *watch.handlers()])
        except ValueError:
            return [self._log(address, Outcome(delivery_id=first, verdict=Verdict.RETRY,
                                               answer="invalid called AE title"))]
        if not assoc.is_established and assoc.rejected_contexts and not assoc.accepted_contexts:
            # Every presentation context refused (PS3.8 §9.3.3.2): pynetdicom aborts. The
            # PACS takes none of these SOP classes; the first document says so.
            return [self._log(address, Outcome(delivery_id=first, verdict=Verdict.REJECTED,
                                               answer="SOP class not accepted by the PACS"))]
        if not assoc.is_established:
            return [self._log(address, Outcome(delivery_id=first, verdict=Verdict.RETRY,
                                               answer=watch.why(assoc)))]
        outcomes: list[Outcome] = []
        try:
            for item in decoded:
                outcome = self._log(address, self._store(assoc, item))
                outcomes.append(outcome)
                if outcome.verdict is not Verdict.ACKNOWLEDGED:
                    break
        finally:
            if assoc.is_established:
                assoc.release()
        return outcomes

    @staticmethod
    def _store(assoc: Association, item: _Decoded) -> Outcome:
        delivery_id = item.document.delivery_id
        ds = item.dataset
        if ds is None:
            return Outcome(delivery_id=delivery_id, verdict=Verdict.REJECTED,
                           answer=item.problem)
        if not assoc.is_established:  # the previous answer ended the association
            return Outcome(delivery_id=delivery_id, verdict=Verdict.RETRY,
                           answer="association ended by the peer")
        if not any(cx.abstract_syntax == ds.SOPClassUID for cx in assoc.accepted_contexts):
            return Outcome(delivery_id=delivery_id, verdict=Verdict.REJECTED,
                           answer="SOP class not accepted by the PACS")
        # scu.dimse_timeout counts Pixel Data only; an Encapsulated PDF's bytes are in
        # Encapsulated Document: allow for the whole file at the slowest transfer.
        assoc.dimse_timeout = max(dimse_timeout(ds),
                                  ANSWER_TIMEOUT + len(item.document.payload) / SLOWEST_TRANSFER)
        try:
            status = assoc.send_c_store(ds)
        except ValueError:  # no accepted context its transfer syntax can use, or unencodable
            return Outcome(delivery_id=delivery_id, verdict=Verdict.REJECTED,
                           answer="transfer syntax not accepted by the PACS, or the data "
                                  "set cannot be encoded")
        if "Status" not in status:
            # No answer within the DIMSE timeout (pynetdicom then aborts), or the peer
            # ended the association: the instance may be stored; resending is harmless
            # (a PACS answers a duplicate SOP Instance as stored, or with a warning).
            return Outcome(delivery_id=delivery_id, verdict=Verdict.RETRY,
                           answer="no C-STORE answer")
        return store_outcome(int(status.Status), delivery_id=delivery_id,
                             comment=str(status.get("ErrorComment", "")))

    @staticmethod
    def _log(address: Address, outcome: Outcome) -> Outcome:
        LOGGER.info("delivery %d to %s@%s:%d: %s %s", outcome.delivery_id,
                    address.called_ae_title, address.host, address.port, outcome.verdict,
                    outcome.answer)
        return outcome


class _Watch:
    """What happened while an association was requested, for the delivery's answer."""

    def __init__(self) -> None:
        self.connected = False
        self.rejection = ""

    def handlers(self) -> list[tuple[evt.EventType, Callable[[evt.Event], None]]]:
        return [(evt.EVT_CONN_OPEN, self._opened), (evt.EVT_ACSE_RECV, self._received)]

    def _opened(self, _event: evt.Event) -> None:
        self.connected = True

    def _received(self, event: evt.Event) -> None:
        # A-ASSOCIATE-RJ (PS3.8 §9.3.4): result 1 permanent, 2 transient, and a reason.
        primitive = getattr(event, "primitive", None)
        if primitive is not None and getattr(primitive, "result", None) in (0x01, 0x02):
            self.rejection = f"{primitive.result_str}, {primitive.reason_str}"

    def why(self, assoc: Association) -> str:
        if not self.connected:
            return "no connection to the PACS"
        if assoc.is_rejected:
            return f"association rejected: {self.rejection}" if self.rejection else \
                "association rejected"
        return "association aborted"


def senders() -> dict[str, Sender]:
    """A transport for each channel kind, for the delivery worker."""
    return {ChannelKind.HL7_MLLP: Hl7MllpSender(), ChannelKind.DICOM_STORE: DicomStoreSender()}
