"""A lean DICOM Upper Layer acceptor for storage (PS3.8 §9) — the transport half of the gateway.

Why not pynetdicom's own acceptor: its reactors poll queues with 1 ms sleeps in two threads
and decode every PDU into objects, about 4-5 ms of Python per image — slower than the
archive must be (ingest at least as fast as Orthanc, >= 125 MB/s on one association). This
loop reads each PDU with blocking ``recv_into`` into one reusable buffer and hands
data-set fragments straight to a sink, with no queue, thread hop or copy per fragment.

pynetdicom still does what it does well and rarely: decoding the A-ASSOCIATE-RQ, negotiating
presentation contexts and role selection, encoding the A-ASSOCIATE-AC. DIMSE command sets
(PS3.7 §9.3, §E) are tiny and fixed; they are read and written here directly.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pydicom import uid as pydicom_uid
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import PresentationContext, build_context, negotiate_as_acceptor

LOGGER = logging.getLogger(__name__)

VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"
IMPLEMENTATION_CLASS_UID = pydicom_uid.PYDICOM_IMPLEMENTATION_UID
IMPLEMENTATION_VERSION_NAME = "TELERAD_010"

#: Transfer syntaxes we accept and store as received (PS3.5 Annex A, §10): every one whose
#: data set header pydicom can read — uncompressed, deflated, JPEG, JPEG-LS, JPEG 2000,
#: HTJ2K, RLE, and the encapsulated video ones.
TRANSFER_SYNTAXES: list[str | pydicom_uid.UID] = [
    pydicom_uid.ExplicitVRLittleEndian,
    pydicom_uid.ImplicitVRLittleEndian,
    pydicom_uid.DeflatedExplicitVRLittleEndian,
    pydicom_uid.ExplicitVRBigEndian,
    *[ts for ts in pydicom_uid.AllTransferSyntaxes if pydicom_uid.UID(ts).is_compressed],
]
#: Storage SOP Classes live under this root (PS3.4 Annex B.5; PS3.6 Annex A), retired and
#: trial ones included: older modalities still send them.
_STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1."


def is_storage_sop_class(uid: str) -> bool:
    """Whether ``uid`` names a storage SOP class we accept: standard (current, retired or
    not yet known to our dictionaries) or private."""
    value = pydicom_uid.UID(uid)
    return value.startswith(_STORAGE_ROOT) or value.is_private or (
        value.type == "SOP Class" and "Storage" in value.name
    )

# PDU types (PS3.8 §9.3).
A_ASSOCIATE_RQ_PDU, A_ASSOCIATE_RJ_PDU, P_DATA_TF_PDU = 0x01, 0x03, 0x04
A_RELEASE_RQ_PDU, A_RELEASE_RP_PDU, A_ABORT_PDU = 0x05, 0x06, 0x07
_PDU_HEADER = struct.Struct(">BxI")
_PDV_HEADER = struct.Struct(">IBB")

# DIMSE command fields (PS3.7 §E.1).
C_STORE_RQ, C_STORE_RSP, C_ECHO_RQ, C_ECHO_RSP = 0x0001, 0x8001, 0x0030, 0x8030
NO_DATA_SET = 0x0101
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


#: Called with (calling AE, called AE, peer address); returns the handler or raises
#: AssociationRejected.
Acceptor = Callable[[str, str, tuple[str, int]], AssociationHandler]


@dataclass
class Command:
    """The fields of a DIMSE command set we act on (PS3.7 §E.1)."""

    command_field: int = 0
    message_id: int = 0
    data_set_type: int = NO_DATA_SET
    affected_sop_class_uid: str = ""
    affected_sop_instance_uid: str = ""


def decode_command(data: bytes | bytearray) -> Command:
    """Read an Implicit VR Little Endian command set (PS3.7 §6.3.1)."""
    command, pos, end = Command(), 0, len(data)
    while pos + 8 <= end:
        group, element, length = struct.unpack_from("<HHI", data, pos)
        value = bytes(data[pos + 8 : pos + 8 + length])
        pos += 8 + length
        if group != 0x0000:
            break
        if element == 0x0100:
            command.command_field = struct.unpack("<H", value[:2])[0]
        elif element == 0x0110:
            command.message_id = struct.unpack("<H", value[:2])[0]
        elif element == 0x0800:
            command.data_set_type = struct.unpack("<H", value[:2])[0]
        elif element == 0x0002:
            command.affected_sop_class_uid = value.rstrip(b"\x00 ").decode("ascii", "replace")
        elif element == 0x1000:
            command.affected_sop_instance_uid = value.rstrip(b"\x00 ").decode("ascii", "replace")
    return command


def _element(element: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0x0000, element, len(value)) + value


def _ui(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def encode_response(
    *, command_field: int, message_id: int, status: int, sop_class_uid: str,
    sop_instance_uid: str = "", error_comment: str = "",
) -> bytes:
    """A response command set, elements in tag order, group length first (PS3.7 §E.1)."""
    body = _element(0x0002, _ui(sop_class_uid))
    body += _element(0x0100, struct.pack("<H", command_field))
    body += _element(0x0120, struct.pack("<H", message_id))
    body += _element(0x0800, struct.pack("<H", NO_DATA_SET))
    body += _element(0x0900, struct.pack("<H", status))
    if error_comment:  # (0000,0902) Error Comment, LO: 64 characters at most
        comment = error_comment[:64].encode("ascii", "replace")
        body += _element(0x0902, comment + b" " * (len(comment) % 2))
    if sop_instance_uid:
        body += _element(0x1000, _ui(sop_instance_uid))
    return _element(0x0000, struct.pack("<I", len(body))) + body


def _reject_pdu(result: int, source: int, reason: int) -> bytes:
    return struct.pack(">BxIxBBB", A_ASSOCIATE_RJ_PDU, 4, result, source, reason)


def _abort_pdu(source: int = 0x02, reason: int = 0x00) -> bytes:
    return struct.pack(">BxIxxBB", A_ABORT_PDU, 4, source, reason)


def _p_data(context_id: int, command: bytes) -> bytes:
    # One PDV, command, last fragment (message control header 0b11, PS3.8 §E.2).
    return (
        _PDU_HEADER.pack(P_DATA_TF_PDU, 6 + len(command))
        + _PDV_HEADER.pack(2 + len(command), context_id, 0x03)
        + command
    )


def _accepted_contexts(
    rq: A_ASSOCIATE,
) -> tuple[list[PresentationContext], list[SCP_SCU_RoleSelectionNegotiation]]:
    """Accept Verification and every storage (or private) SOP class in our syntaxes."""
    supported = []
    for cx in rq.presentation_context_definition_list:
        abstract = pydicom_uid.UID(str(cx.abstract_syntax))
        if abstract == VERIFICATION_SOP_CLASS or is_storage_sop_class(abstract):
            supported.append(build_context(abstract, TRANSFER_SYNTAXES))
    roles = {
        pydicom_uid.UID(str(item.sop_class_uid)): (item.scu_role, item.scp_role)
        for item in rq.user_information
        if isinstance(item, SCP_SCU_RoleSelectionNegotiation)
    }
    return negotiate_as_acceptor(rq.presentation_context_definition_list, supported, roles or None)


@dataclass
class _Message:
    context_id: int = 0
    command_bytes: bytearray = field(default_factory=bytearray)
    command: Command | None = None
    sink: DataSetSink | None = None


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
        results, role_items = _accepted_contexts(rq)
        self._contexts = {
            int(cx.context_id or 0): str(cx.transfer_syntax[0])
            for cx in results
            if cx.result == 0x00
        }
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
                    self.calling_ae_title, self.peer[0], len(self._contexts))
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
        if command.data_set_type == NO_DATA_SET:
            self._respond_without_data()

    def _respond_without_data(self) -> None:
        message = self._message
        command = message.command
        assert command is not None
        if command.command_field == C_ECHO_RQ:
            response = encode_response(
                command_field=C_ECHO_RSP, message_id=command.message_id, status=0x0000,
                sop_class_uid=command.affected_sop_class_uid or VERIFICATION_SOP_CLASS,
            )
        else:
            response = encode_response(
                command_field=command.command_field | 0x8000, message_id=command.message_id,
                status=UNRECOGNIZED_OPERATION, sop_class_uid=command.affected_sop_class_uid,
                sop_instance_uid=command.affected_sop_instance_uid,
            )
        self.sock.sendall(_p_data(message.context_id, response))
        self._message = _Message()

    def _data_set_complete(self) -> None:
        message = self._message
        command = message.command
        if command is None:
            raise ConnectionError("data set without a command")
        if message.sink is None:
            status, comment = UNRECOGNIZED_OPERATION, "operation not provided"
        else:
            status, comment = message.sink.finish()
            message.sink = None
        response = encode_response(
            command_field=command.command_field | 0x8000, message_id=command.message_id,
            status=status, sop_class_uid=command.affected_sop_class_uid,
            sop_instance_uid=command.affected_sop_instance_uid, error_comment=comment,
        )
        self.sock.sendall(_p_data(message.context_id, response))
        self._message = _Message()
