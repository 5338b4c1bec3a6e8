"""A lean DICOM Upper Layer acceptor for storage (PS3.8 §9) — the transport half of the gateway.

Why not pynetdicom's own acceptor: its reactors poll queues with 1 ms sleeps in two threads
and decode every PDU into objects, about 4-5 ms of Python per image — slower than the
archive must be (ingest at least as fast as Orthanc, >= 125 MB/s on one association). This
loop reads each PDU with blocking ``recv_into`` into one reusable buffer and hands
data-set fragments straight to a sink, with no queue, thread hop or copy per fragment.

pynetdicom still does what it does well and rarely: decoding the A-ASSOCIATE-RQ, negotiating
presentation contexts and role selection, encoding the A-ASSOCIATE-AC. DIMSE command sets
(PS3.7 §9.3, §E) are tiny and fixed; they are read and written directly (:mod:`.dimse`).

The same loop answers Modality Worklist C-FIND (:mod:`.c_find`): its identifier is small and
buffered whole, on a path apart from C-STORE's, which gains no per-PDU work from it.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from pydicom import uid as pydicom_uid
from pydicom.dataset import Dataset
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
)

from telerad.gateway import c_find, dimse
from telerad.gateway.contexts import VERIFICATION_SOP_CLASS, accepted_contexts
from telerad.gateway.dimse import (
    A_ABORT_PDU,
    A_ASSOCIATE_RJ_PDU,
    A_ASSOCIATE_RQ_PDU,
    A_RELEASE_RP_PDU,
    A_RELEASE_RQ_PDU,
    C_CANCEL_RQ,
    C_ECHO_RQ,
    C_ECHO_RSP,
    C_FIND_RQ,
    C_FIND_RSP,
    C_STORE_RQ,
    NO_DATA_SET,
    P_DATA_TF_PDU,
    Command,
    data_set_pdus,
    decode_command,
    encode_response,
    p_data,
)

LOGGER = logging.getLogger(__name__)

#: Read once per PDU, so bound by assignment: CPython 3.11 compiles ``NAME.method()`` on a
#: name bound by ``import`` as an attribute load and a bound-method call (it assumes a
#: module), about 20 ns slower per PDU than the method call it makes otherwise.
_PDU_HEADER, _PDV_HEADER = dimse.PDU_HEADER, dimse.PDV_HEADER

IMPLEMENTATION_CLASS_UID = pydicom_uid.PYDICOM_IMPLEMENTATION_UID
IMPLEMENTATION_VERSION_NAME = "TELERAD_010"

#: PS3.7 C.4: "Unrecognized Operation" for a command we do not provide.
UNRECOGNIZED_OPERATION = 0x0211
_MAX_ASSOCIATE_RQ = 1024 * 1024


class AssociationRejected(Exception):
    """Refuse the association: ``(result, source, reason)`` as in PS3.8 §9.3.4."""

    def __init__(self, result: int, source: int, reason: int, why: str) -> None:
        super().__init__(why)
        self.result, self.source, self.reason = result, source, reason


class DataSetSink(Protocol):
    """Receives one C-STORE data set as it streams in."""

    def write(self, fragment: memoryview) -> None:
        """Append one fragment of the data set."""
        ...

    def finish(self) -> tuple[int, str]:
        """The data set is whole: store it; return (DIMSE status, error comment)."""
        ...

    def abort(self) -> None:
        """The association ended before the data set was whole: forget it."""
        ...


class AssociationHandler(Protocol):
    """The application side of one association."""

    def begin_store(
        self, *, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str
    ) -> DataSetSink:
        """A C-STORE-RQ arrived; its data set will follow."""
        ...

    def find(self, *, sop_class_uid: str, identifier: Dataset) -> Iterable[Dataset]:
        """A C-FIND-RQ arrived: the response identifiers of its matches (PS3.4 §K.4.1.3).
        Raise InvalidInput for a key that cannot be understood."""
        ...


#: Called with (calling AE, called AE, peer address); returns the handler or raises
#: AssociationRejected.
Acceptor = Callable[[str, str, tuple[str, int]], AssociationHandler]


def _reject_pdu(result: int, source: int, reason: int) -> bytes:
    return struct.pack(">BxIxBBB", A_ASSOCIATE_RJ_PDU, 4, result, source, reason)


def _abort_pdu(source: int = 0x02, reason: int = 0x00) -> bytes:
    return struct.pack(">BxIxxBB", A_ABORT_PDU, 4, source, reason)


@dataclass
class _Message:
    context_id: int = 0
    command_bytes: bytearray = field(default_factory=bytearray)
    command: Command | None = None
    #: Where the data set goes: a C-STORE's sink, or a C-FIND identifier's buffer (the
    #: per-PDU path is the same for both).
    sink: DataSetSink | c_find.IdentifierBuffer | None = None


class Association:
    """One accepted TCP connection, from A-ASSOCIATE-RQ to release or abort."""

    def __init__(
        self, sock: socket.socket, peer: tuple[str, int], *, ae_title: str, acceptor: Acceptor,
        maximum_pdu_size: int, network_timeout: float,
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.ae_title = ae_title
        self.acceptor = acceptor
        self.maximum_pdu_size = maximum_pdu_size
        self.sock.settimeout(network_timeout)
        self._buffer = bytearray(64 * 1024)
        self._contexts: dict[int, str] = {}
        #: C-FIND contexts apart, so that a C-STORE on one is never begun.
        self._find_contexts: dict[int, tuple[str, str]] = {}
        self.peer_maximum_pdu_size = 0
        self._handler: AssociationHandler | None = None
        self._message = _Message()
        self.calling_ae_title = ""
        self._stopping = False
        self._between_messages = True

    # -- socket helpers -------------------------------------------------------------------
    def _read_into(self, n: int) -> memoryview:
        if len(self._buffer) < n:
            self._buffer = bytearray(n)
        view = memoryview(self._buffer)[:n]
        got = 0
        while got < n:
            count = self.sock.recv_into(view[got:], n - got)
            if count == 0:
                raise ConnectionError("peer closed the connection")
            got += count
        return view

    def _read_pdu_header(self) -> tuple[int, int]:
        pdu_type, length = _PDU_HEADER.unpack(bytes(self._read_into(6)))
        return pdu_type, length

    # -- the association -----------------------------------------------------------------
    def run(self) -> None:
        """Serve the association until it ends; never raises."""
        try:
            if self._associate():
                self._serve()
        except (ConnectionError, TimeoutError, OSError) as exc:
            level = logging.INFO if self.calling_ae_title else logging.DEBUG
            LOGGER.log(level, "association from %s ended: %s", self.peer[0], type(exc).__name__)
            self._send_quietly(_abort_pdu())
        except Exception:
            LOGGER.exception("association from %s aborted after an internal error", self.peer[0])
            self._send_quietly(_abort_pdu())
        finally:
            if self._message.sink is not None:
                self._message.sink.abort()
            self.sock.close()

    def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(data)

    def _associate(self) -> bool:
        pdu_type, length = self._read_pdu_header()
        if pdu_type != A_ASSOCIATE_RQ_PDU or length > _MAX_ASSOCIATE_RQ:
            self._send_quietly(_abort_pdu(0x02, 0x02))  # unexpected PDU
            return False
        body = bytes(self._read_into(length))
        pdu = A_ASSOCIATE_RQ()
        pdu.decode(_PDU_HEADER.pack(pdu_type, length) + body)
        rq = pdu.to_primitive()
        self.calling_ae_title = str(rq.calling_ae_title).strip()
        called = str(rq.called_ae_title).strip()
        try:
            if called != self.ae_title:
                # PS3.8 §9.3.4: rejected-permanent, service-user, called AE title not recognized
                raise AssociationRejected(
                    0x01, 0x01, 0x07, f"called AE title {called!r} is not ours"
                )
            self._handler = self.acceptor(self.calling_ae_title, called, self.peer)
        except AssociationRejected as rejection:
            LOGGER.warning("association from %s (%s) rejected: %s",
                           self.calling_ae_title, self.peer[0], rejection)
            self.sock.sendall(_reject_pdu(rejection.result, rejection.source, rejection.reason))
            return False
        results, role_items = accepted_contexts(rq)
        for cx in results:
            if cx.result != 0x00:
                continue
            context_id, syntax = int(cx.context_id or 0), str(cx.transfer_syntax[0])
            if str(cx.abstract_syntax) in c_find.FIND_SOP_CLASSES:
                self._find_contexts[context_id] = (str(cx.abstract_syntax), syntax)
            else:
                self._contexts[context_id] = syntax
        # PS3.8 §D.1: the requestor's Maximum Length Received bounds the PDUs we send it.
        self.peer_maximum_pdu_size = int(rq.maximum_length_received or 0)
        ac = A_ASSOCIATE()
        ac.application_context_name = rq.application_context_name
        ac.calling_ae_title = rq.calling_ae_title
        ac.called_ae_title = rq.called_ae_title
        ac.result = 0x00
        ac.result_source = 0x01
        ac.presentation_context_definition_results_list = results
        max_length = MaximumLengthNotification()
        max_length.maximum_length_received = self.maximum_pdu_size
        class_uid = ImplementationClassUIDNotification()
        class_uid.implementation_class_uid = IMPLEMENTATION_CLASS_UID
        version = ImplementationVersionNameNotification()
        version.implementation_version_name = IMPLEMENTATION_VERSION_NAME
        ac.user_information = [max_length, class_uid, version, *role_items]
        ac_pdu = A_ASSOCIATE_AC()
        ac_pdu.from_primitive(ac)
        self.sock.sendall(ac_pdu.encode())
        LOGGER.info("association from %s (%s) accepted, %d contexts",
                    self.calling_ae_title, self.peer[0],
                    len(self._contexts) + len(self._find_contexts))
        return True

    def stop(self) -> None:
        """Ask the association to end at its next message boundary (the server stops).

        An idle association is aborted now; one receiving a data set finishes it first, so
        that what is being stored is answered. Nothing unanswered was acknowledged.
        """
        self._stopping = True
        if self._between_messages:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RD)

    def _serve(self) -> None:
        while True:
            message = self._message
            self._between_messages = message.command is None and not message.command_bytes
            if self._stopping and self._between_messages:
                self._send_quietly(_abort_pdu(0x02, 0x00))
                return
            pdu_type, length = self._read_pdu_header()
            self._between_messages = False
            if pdu_type == P_DATA_TF_PDU:
                if length > self.maximum_pdu_size + 6 and self.maximum_pdu_size:
                    raise ConnectionError("PDU above the negotiated maximum length")
                self._p_data(self._read_into(length))
            elif pdu_type in (A_RELEASE_RQ_PDU, A_ABORT_PDU) and length == 4:
                # Both carry 4 reserved or source/reason bytes (PS3.8 §9.3.6, §9.3.8).
                self._read_into(length)
                if pdu_type == A_RELEASE_RQ_PDU:
                    self.sock.sendall(struct.pack(">BxIxxxx", A_RELEASE_RP_PDU, 4))
                return
            else:
                self._send_quietly(_abort_pdu(0x02, 0x02))
                return

    def _p_data(self, pdu: memoryview) -> None:
        pos, end = 0, len(pdu)
        while pos < end:
            item_length, context_id, control = _PDV_HEADER.unpack_from(pdu, pos)
            fragment = pdu[pos + 6 : pos + 4 + item_length]
            pos += 4 + item_length
            message = self._message
            if control & 0x01:  # command fragment
                message.context_id = context_id
                message.command_bytes += fragment
                if control & 0x02:
                    message.command = decode_command(message.command_bytes)
                    self._command_complete()
            else:  # data set fragment
                if message.sink is not None:
                    message.sink.write(fragment)
                if control & 0x02:
                    self._data_set_complete()

    def _command_complete(self) -> None:
        message = self._message
        command = message.command
        assert command is not None
        if command.command_field == C_STORE_RQ and message.context_id in self._contexts:
            assert self._handler is not None
            message.sink = self._handler.begin_store(
                sop_class_uid=command.affected_sop_class_uid,
                sop_instance_uid=command.affected_sop_instance_uid,
                transfer_syntax_uid=self._contexts[message.context_id],
            )
        elif command.command_field == C_FIND_RQ and message.context_id in self._find_contexts:
            message.sink = c_find.IdentifierBuffer()
        if command.data_set_type == NO_DATA_SET:
            self._respond_without_data()

    def _respond_without_data(self) -> None:
        message = self._message
        command = message.command
        assert command is not None
        if command.command_field == C_CANCEL_RQ:
            # PS3.7 §9.3.2.3: C-CANCEL-RQ has no response. One arriving here came after the
            # final response of the operation it cancels: nothing is left to cancel.
            self._message = _Message()
            return
        if command.command_field == C_ECHO_RQ:
            response = encode_response(
                command_field=C_ECHO_RSP, message_id=command.message_id, status=0x0000,
                sop_class_uid=command.affected_sop_class_uid or VERIFICATION_SOP_CLASS,
            )
        elif isinstance(message.sink, c_find.IdentifierBuffer):  # PS3.7 §9.1.2.1.5
            response = encode_response(
                command_field=C_FIND_RSP, message_id=command.message_id,
                status=c_find.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                sop_class_uid=command.affected_sop_class_uid, error_comment="no identifier",
            )
        else:
            response = encode_response(
                command_field=command.command_field | 0x8000, message_id=command.message_id,
                status=UNRECOGNIZED_OPERATION, sop_class_uid=command.affected_sop_class_uid,
                sop_instance_uid=command.affected_sop_instance_uid,
            )
        self.sock.sendall(p_data(message.context_id, response))
        self._message = _Message()

    def _data_set_complete(self) -> None:
        message = self._message
        command = message.command
        if command is None:
            raise ConnectionError("data set without a command")
        if message.sink is None:
            status, comment = UNRECOGNIZED_OPERATION, "operation not provided"
        elif isinstance(message.sink, c_find.IdentifierBuffer):
            self._find(command, message.context_id, message.sink.identifier())
            self._message = _Message()
            return
        else:
            status, comment = message.sink.finish()
            message.sink = None
        response = encode_response(
            command_field=command.command_field | 0x8000, message_id=command.message_id,
            status=status, sop_class_uid=command.affected_sop_class_uid,
            sop_instance_uid=command.affected_sop_instance_uid, error_comment=comment,
        )
        self.sock.sendall(p_data(message.context_id, response))
        self._message = _Message()

    # -- C-FIND (PS3.7 §9.1.2) -------------------------------------------------------------
    def _find(self, command: Command, context_id: int, identifier: bytes | None) -> None:
        """Send a Pending response per match, then the final one; stop with Cancel when a
        C-CANCEL-RQ for this request arrives between two responses (PS3.7 §9.3.2.3)."""
        assert self._handler is not None
        sop_class_uid, syntax = self._find_contexts[context_id]
        answers = c_find.responses(self._handler, sop_class_uid=sop_class_uid,
                                   transfer_syntax_uid=syntax, identifier=identifier)
        for answer in answers:
            status, comment = answer.status, answer.error_comment
            if status == c_find.PENDING and self._cancel_requested(command.message_id):
                answers.close()
                status, comment = c_find.CANCEL, ""
            rsp = p_data(context_id, encode_response(
                command_field=C_FIND_RSP, message_id=command.message_id, status=status,
                sop_class_uid=command.affected_sop_class_uid or sop_class_uid,
                error_comment=comment, has_data_set=status == c_find.PENDING,
            ))
            if status == c_find.PENDING and answer.identifier is not None:
                rsp += data_set_pdus(context_id, answer.identifier, self.peer_maximum_pdu_size)
            self.sock.sendall(rsp)
            if status != c_find.PENDING:
                return

    def _cancel_requested(self, message_id: int) -> bool:
        """Whether a C-CANCEL-RQ for ``message_id`` has arrived, without waiting for one.

        Without negotiated asynchronous operations (PS3.7 §D.3.3.3) a peer may send nothing
        but a C-CANCEL-RQ while its C-FIND is answered: anything else ends the association.
        """
        if not select.select([self.sock], [], [], 0)[0]:
            return False
        command_bytes = bytearray()
        while True:
            pdu_type, length = self._read_pdu_header()
            if pdu_type != P_DATA_TF_PDU or (self.maximum_pdu_size
                                             and length > self.maximum_pdu_size + 6):
                raise ConnectionError("unexpected PDU while C-FIND responses were sent")
            pdu, pos = self._read_into(length), 0
            while pos < length:
                item_length, _context_id, control = _PDV_HEADER.unpack_from(pdu, pos)
                if not control & 0x01:
                    raise ConnectionError("a data set while C-FIND responses were sent")
                command_bytes += pdu[pos + 6 : pos + 4 + item_length]
                pos += 4 + item_length
                if control & 0x02:
                    cancel = decode_command(command_bytes)
                    if cancel.command_field != C_CANCEL_RQ:
                        raise ConnectionError("a new request while C-FIND responses were sent")
                    return cancel.message_id_being_responded_to == message_id
