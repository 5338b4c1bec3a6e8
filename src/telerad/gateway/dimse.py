"""DIMSE command sets and P-DATA-TF framing (PS3.7 §E, PS3.8 §9.3.5), written by hand.

Command sets are tiny and fixed (Implicit VR Little Endian, PS3.7 §6.3.1): read and written
here directly, once per message, never through a generic encoder.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# PDU types (PS3.8 §9.3).
A_ASSOCIATE_RQ_PDU, A_ASSOCIATE_RJ_PDU, P_DATA_TF_PDU = 0x01, 0x03, 0x04
A_RELEASE_RQ_PDU, A_RELEASE_RP_PDU, A_ABORT_PDU = 0x05, 0x06, 0x07
PDU_HEADER = struct.Struct(">BxI")
PDV_HEADER = struct.Struct(">IBB")

# DIMSE command fields (PS3.7 §E.1).
C_STORE_RQ, C_STORE_RSP, C_ECHO_RQ, C_ECHO_RSP = 0x0001, 0x8001, 0x0030, 0x8030
C_FIND_RQ, C_FIND_RSP, C_CANCEL_RQ = 0x0020, 0x8020, 0x0FFF
#: Command Data Set Type (0000,0800): no data set follows; any other value: one does.
NO_DATA_SET, DATA_SET_PRESENT = 0x0101, 0x0001


@dataclass
class Command:
    """The fields of a DIMSE command set we act on (PS3.7 §E.1)."""

    command_field: int = 0
    message_id: int = 0
    data_set_type: int = NO_DATA_SET
    affected_sop_class_uid: str = ""
    affected_sop_instance_uid: str = ""
    #: (0000,0120): which request a C-CANCEL-RQ cancels (PS3.7 §9.3.2.3).
    message_id_being_responded_to: int = 0


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
        elif element == 0x0120:
            command.message_id_being_responded_to = struct.unpack("<H", value[:2])[0]
    return command


def _element(element: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0x0000, element, len(value)) + value


def _ui(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def encode_response(
    *, command_field: int, message_id: int, status: int, sop_class_uid: str,
    sop_instance_uid: str = "", error_comment: str = "", has_data_set: bool = False,
) -> bytes:
    """A response command set, elements in tag order, group length first (PS3.7 §E.1)."""
    body = _element(0x0002, _ui(sop_class_uid))
    body += _element(0x0100, struct.pack("<H", command_field))
    body += _element(0x0120, struct.pack("<H", message_id))
    body += _element(0x0800, struct.pack("<H", DATA_SET_PRESENT if has_data_set else NO_DATA_SET))
    body += _element(0x0900, struct.pack("<H", status))
    if error_comment:  # (0000,0902) Error Comment, LO: 64 characters at most
        comment = error_comment[:64].encode("ascii", "replace")
        body += _element(0x0902, comment + b" " * (len(comment) % 2))
    if sop_instance_uid:
        body += _element(0x1000, _ui(sop_instance_uid))
    return _element(0x0000, struct.pack("<I", len(body))) + body


def p_data(context_id: int, command: bytes) -> bytes:
    """A command set in one PDV, last fragment (message control header 0b11, PS3.8 §E.2)."""
    return (
        PDU_HEADER.pack(P_DATA_TF_PDU, 6 + len(command))
        + PDV_HEADER.pack(2 + len(command), context_id, 0x03)
        + command
    )


def data_set_pdus(context_id: int, data: bytes, maximum_pdu_size: int) -> bytes:
    """A data set as P-DATA-TF PDUs of one PDV each, none above the peer's Maximum Length
    Received (PS3.8 §D.1: the limit is on the PDU's variable field, PDV headers included;
    0 means no limit). Fragments are kept even-length, as other implementations send them."""
    step = max((maximum_pdu_size - 6) & ~1, 2) if maximum_pdu_size else max(len(data), 1)
    pdus = []
    for start in range(0, max(len(data), 1), step):
        fragment = data[start : start + step]
        control = 0x02 if start + step >= len(data) else 0x00  # data set, last or not
        pdus.append(PDU_HEADER.pack(P_DATA_TF_PDU, 6 + len(fragment))
                    + PDV_HEADER.pack(2 + len(fragment), context_id, control) + fragment)
    return b"".join(pdus)
