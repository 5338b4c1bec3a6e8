"""DIMSE command sets and rejection PDUs, checked against pynetdicom's own decoders."""

from __future__ import annotations

import io
import socket
import struct
import threading

from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pynetdicom.dsutils import encode
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ

from telerad.gateway.dimse import C_STORE_RQ, C_STORE_RSP, decode_command, encode_response
from telerad.gateway.upper_layer import Association, _abort_pdu, _reject_pdu


def test_store_command_encoded_by_pynetdicom_is_understood() -> None:
    ds = Dataset()
    ds.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.CommandField = C_STORE_RQ
    ds.MessageID = 7
    ds.Priority = 0
    ds.CommandDataSetType = 0x0000
    ds.AffectedSOPInstanceUID = "1.2.3.4.5.6"
    raw = encode(ds, True, True)
    assert raw is not None
    command = decode_command(raw)
    assert command.command_field == C_STORE_RQ
    assert command.message_id == 7
    assert command.data_set_type == 0x0000
    assert command.affected_sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert command.affected_sop_instance_uid == "1.2.3.4.5.6"


def test_response_is_a_valid_implicit_little_endian_command_set() -> None:
    raw = encode_response(command_field=C_STORE_RSP, message_id=7, status=0xC210,
                          sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                          sop_instance_uid="1.2.3.4.5.6", error_comment="truncated data")
    ds = read_dataset(io.BytesIO(raw), is_implicit_VR=True, is_little_endian=True)
    assert ds.CommandField == C_STORE_RSP
    assert ds.MessageIDBeingRespondedTo == 7
    assert ds.Status == 0xC210
    assert ds.ErrorComment == "truncated data"
    assert ds.AffectedSOPInstanceUID == "1.2.3.4.5.6"
    assert ds.CommandGroupLength == len(raw) - 12  # PS3.7 E.1: bytes after the group length
    tags = [int(t) for t in ds.keys()]  # noqa: SIM118
    assert tags == sorted(tags)


def test_reject_and_abort_pdus_decode() -> None:
    rj = A_ASSOCIATE_RJ()
    rj.decode(_reject_pdu(0x01, 0x01, 0x03))
    assert (rj.result, rj.source, rj.reason_diagnostic) == (0x01, 0x01, 0x03)
    abort = A_ABORT_RQ()
    abort.decode(_abort_pdu(0x02, 0x02))
    assert (abort.source, abort.reason_diagnostic) == (0x02, 0x02)


def test_a_pdu_declaring_a_huge_length_is_aborted_without_reading_it() -> None:
    class _Handler:
        def begin_store(self, **_kwargs: str) -> None:
            raise AssertionError("no store expected")

    ours, theirs = socket.socketpair()
    association = Association(ours, ("127.0.0.1", 0), ae_title="TELERAD",
                              acceptor=lambda *_args: _Handler(),  # type: ignore[arg-type, return-value]
                              maximum_pdu_size=16384, network_timeout=5)
    association._between_messages = True
    thread = threading.Thread(target=association._serve)
    thread.start()
    theirs.sendall(struct.pack(">BxI", 0x07, 0xFFFFFFF0))  # an A-ABORT of ~4 GiB
    thread.join(5)
    assert not thread.is_alive()
    assert theirs.recv(10)[:1] == b"\x07"  # answered with an A-ABORT, nothing allocated
    theirs.close()
    ours.close()
