"""The Upper Layer's C-FIND exchange (PS3.7 §9.1.2, §9.3.2.3) over a socket pair: responses,
fragmentation to the peer's maximum PDU length, failures, and C-CANCEL."""

from __future__ import annotations

import io
import socket
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.dsutils import encode

from telerad.dicom.mwl import MODALITY_WORKLIST_FIND
from telerad.errors import InvalidQuery
from telerad.gateway import c_find
from telerad.gateway.dimse import C_CANCEL_RQ, C_FIND_RQ, C_STORE_RQ, data_set_pdus
from telerad.gateway.upper_layer import Association
from telerad.testing.dimse import garbage, p_data_tf

CONTEXT = 1


@dataclass
class _Handler:
    answers: Iterable[Dataset] = ()
    queries: list[Dataset] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)

    def begin_store(self, **kwargs: str) -> None:
        self.stored.append(kwargs["sop_instance_uid"])
        raise AssertionError("no store on a C-FIND context")

    def find(self, *, sop_class_uid: str, identifier: Dataset) -> Iterable[Dataset]:
        assert sop_class_uid == MODALITY_WORKLIST_FIND
        self.queries.append(identifier)
        return self.answers


@dataclass
class Peer:
    """The SCU's end of the socket pair."""

    sock: socket.socket
    syntax: str

    def send_command(self, command: Dataset) -> None:
        raw = encode(command, True, True)
        assert raw is not None
        self.sock.sendall(p_data_tf(CONTEXT, raw, command=True, last=True))

    def find(self, identifier: Dataset | bytes | None, *, message_id: int = 1) -> None:
        command = Dataset()
        command.AffectedSOPClassUID = MODALITY_WORKLIST_FIND
        command.CommandField = C_FIND_RQ
        command.MessageID = message_id
        command.Priority = 0
        command.CommandDataSetType = 0x0101 if identifier is None else 0x0001
        self.send_command(command)
        if identifier is not None:
            raw = identifier if isinstance(identifier, bytes) else self.encode(identifier)
            for start in range(0, max(len(raw), 1), 16_000):
                self.sock.sendall(p_data_tf(CONTEXT, raw[start:start + 16_000], command=False,
                                            last=start + 16_000 >= len(raw)))

    def cancel(self, message_id: int = 1) -> None:
        command = Dataset()
        command.CommandField = C_CANCEL_RQ
        command.MessageIDBeingRespondedTo = message_id
        command.CommandDataSetType = 0x0101
        self.send_command(command)

    def encode(self, ds: Dataset) -> bytes:
        fp = DicomBytesIO()
        fp.is_implicit_VR = self.syntax == ImplicitVRLittleEndian
        fp.is_little_endian = True
        write_dataset(fp, ds)
        return fp.getvalue()

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "the association ended"
            data += chunk
        return data

    def response(self, pdu_sizes: list[int] | None = None) -> tuple[Dataset, Dataset | None]:
        """One response: its command set, and its identifier if one follows."""
        command, data = b"", b""
        while True:
            pdu_type, length = struct.unpack(">BxI", self._exactly(6))
            assert pdu_type == 0x04, f"PDU type {pdu_type:#x}"
            if pdu_sizes is not None:
                pdu_sizes.append(length)
            body, pos = self._exactly(length), 0
            while pos < length:
                item_length, _context, control = struct.unpack_from(">IBB", body, pos)
                fragment = body[pos + 6 : pos + 4 + item_length]
                pos += 4 + item_length
                if control & 0x01:
                    command += fragment
                    if control & 0x02:
                        rsp = read_dataset(io.BytesIO(command), True, True)
                        if rsp.CommandDataSetType == 0x0101:
                            return rsp, None
                else:
                    data += fragment
                    if control & 0x02:
                        implicit = self.syntax == ImplicitVRLittleEndian
                        return rsp, read_dataset(io.BytesIO(data), implicit, True)

    def responses(self) -> list[tuple[int, Dataset | None]]:
        """Every response up to the final one: (status, identifier)."""
        got = []
        while True:
            rsp, identifier = self.response()
            got.append((int(rsp.Status), identifier))
            if rsp.Status not in (0xFF00, 0xFF01):
                return got


@pytest.fixture(params=[ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[Association, _Handler, Peer]]:
    ours, theirs = socket.socketpair()
    handler = _Handler()
    association = Association(ours, ("127.0.0.1", 0), ae_title="TELERAD",
                              acceptor=lambda *_args: handler,  # type: ignore[arg-type, return-value]
                              maximum_pdu_size=16384, network_timeout=10)
    association._handler = handler  # type: ignore[assignment]
    association._find_contexts = {CONTEXT: (MODALITY_WORKLIST_FIND, request.param)}
    association.peer_maximum_pdu_size = 16384
    thread = threading.Thread(target=association._serve, daemon=True)
    thread.start()
    yield association, handler, Peer(theirs, request.param)
    theirs.sendall(struct.pack(">BxIxxxx", 0x05, 4))  # A-RELEASE-RQ
    thread.join(5)
    assert not thread.is_alive()
    theirs.close()
    ours.close()


def _answer(accession: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.AccessionNumber = accession
    ds.PatientName = "DOÉ^JANE"
    return ds


def _query() -> Dataset:
    ds = Dataset()
    ds.AccessionNumber = ""
    ds.PatientName = "doé*"
    return ds


def test_one_pending_response_per_match_then_success(pair: tuple[Association, _Handler, Peer]
                                                      ) -> None:
    _association, handler, peer = pair
    handler.answers = [_answer("A1"), _answer("A2")]
    peer.find(_query(), message_id=7)
    first, _ = peer.response()
    assert (first.CommandField, first.MessageIDBeingRespondedTo) == (0x8020, 7)
    assert first.AffectedSOPClassUID == MODALITY_WORKLIST_FIND
    got = [(int(first.Status), None), *peer.responses()]
    assert [status for status, _ in got] == [0xFF00, 0xFF00, 0x0000]
    assert got[1][1] is not None
    assert got[1][1].AccessionNumber == "A2"
    assert got[1][1].PatientName == "DOÉ^JANE"
    (query,) = handler.queries
    assert query.PatientName == "doé*"  # decoded in the negotiated syntax


def test_an_empty_identifier_is_answered_with_empty_identifiers(
        pair: tuple[Association, _Handler, Peer]) -> None:
    _association, handler, peer = pair
    handler.answers = [Dataset(), Dataset()]
    peer.find(b"")  # a data set of zero bytes: one PDV, empty, last (no key at all)
    got = peer.responses()
    assert [status for status, _ in got] == [0xFF00, 0xFF00, 0x0000]
    assert [len(identifier) for _, identifier in got[:2] if identifier is not None] == [0, 0]
    (query,) = handler.queries
    assert len(query) == 0


def test_no_match_is_a_lone_success(pair: tuple[Association, _Handler, Peer]) -> None:
    peer = pair[2]
    peer.find(_query())
    assert peer.responses() == [(0x0000, None)]


def test_identifiers_are_fragmented_to_the_peers_maximum_pdu(
        pair: tuple[Association, _Handler, Peer]) -> None:
    association, handler, peer = pair
    association.peer_maximum_pdu_size = 64
    handler.answers = [_answer("A" * 16)]
    peer.find(_query())
    sizes: list[int] = []
    rsp, identifier = peer.response(sizes)
    assert rsp.Status == 0xFF00
    assert identifier is not None
    assert identifier.AccessionNumber == "A" * 16
    assert len(sizes) > 2
    assert max(sizes[1:]) <= 64  # after the command's own PDU
    assert peer.responses() == [(0x0000, None)]


def test_an_undecodable_identifier_is_a900_and_the_association_goes_on(
        pair: tuple[Association, _Handler, Peer]) -> None:
    _association, handler, peer = pair
    peer.find(garbage(300))
    ((status, identifier),) = peer.responses()
    assert (status, identifier) == (0xA900, None)
    assert handler.queries == []
    handler.answers = [_answer("A1")]
    peer.find(_query(), message_id=2)
    assert [status for status, _ in peer.responses()] == [0xFF00, 0x0000]


def test_a_find_without_identifier_is_a900(pair: tuple[Association, _Handler, Peer]) -> None:
    peer = pair[2]
    peer.find(None)
    assert peer.responses() == [(0xA900, None)]


def test_an_identifier_above_the_limit_is_refused_unread(
        pair: tuple[Association, _Handler, Peer]) -> None:
    _association, handler, peer = pair
    peer.find(b"\x00" * (c_find.MAX_IDENTIFIER_BYTES + 2))
    assert peer.responses() == [(0xA700, None)]
    assert handler.queries == []


def test_a_failing_handler_is_c001_an_invalid_key_a900(
        pair: tuple[Association, _Handler, Peer]) -> None:
    _association, handler, peer = pair

    def failing() -> Iterator[Dataset]:
        yield _answer("A1")
        raise RuntimeError("database gone")

    handler.answers = failing()
    peer.find(_query())
    assert [status for status, _ in peer.responses()] == [0xFF00, 0xC001]

    def invalid() -> Iterator[Dataset]:
        raise InvalidQuery("DA key 'tomorrow' is not a valid value or range")
        yield  # pragma: no cover - a generator

    handler.answers = invalid()
    peer.find(_query(), message_id=2)
    rsp, identifier = peer.response()
    assert (rsp.Status, identifier) == (0xA900, None)
    assert "tomorrow" in rsp.ErrorComment


def test_a_cancel_between_responses_ends_them_with_fe00(
        pair: tuple[Association, _Handler, Peer]) -> None:
    _association, handler, peer = pair
    cancelled, closed = threading.Event(), threading.Event()

    def slow() -> Iterator[Dataset]:
        try:
            yield _answer("A1")
            assert cancelled.wait(5)  # the cancel is on the wire before the second answer
            yield _answer("A2")
            yield _answer("A3")
        finally:
            closed.set()

    handler.answers = slow()
    peer.find(_query(), message_id=5)
    rsp, identifier = peer.response()
    assert (rsp.Status, identifier is not None) == (0xFF00, True)
    peer.cancel(message_id=5)
    cancelled.set()
    rsp, identifier = peer.response()
    assert (rsp.Status, identifier) == (0xFE00, None)  # PS3.4 Table K.4-2: Cancel
    assert rsp.MessageIDBeingRespondedTo == 5
    assert closed.wait(5)
    handler.answers = [_answer("B1")]
    peer.find(_query(), message_id=6)  # the association goes on
    assert [status for status, _ in peer.responses()] == [0xFF00, 0x0000]


def test_a_cancel_after_the_final_response_is_not_answered(
        pair: tuple[Association, _Handler, Peer]) -> None:
    _association, handler, peer = pair
    handler.answers = [_answer("A1")]
    peer.find(_query(), message_id=3)
    assert [status for status, _ in peer.responses()] == [0xFF00, 0x0000]
    peer.cancel(message_id=3)  # too late: C-CANCEL-RQ has no response (PS3.7 §9.3.2.3)
    peer.find(_query(), message_id=4)
    rsp, _identifier = peer.response()
    assert (rsp.MessageIDBeingRespondedTo, rsp.Status) == (4, 0xFF00)
    assert peer.responses() == [(0x0000, None)]


def test_a_store_on_the_find_context_is_never_begun(
        pair: tuple[Association, _Handler, Peer]) -> None:
    _association, handler, peer = pair
    command = Dataset()
    command.AffectedSOPClassUID = MODALITY_WORKLIST_FIND
    command.CommandField = C_STORE_RQ
    command.MessageID = 9
    command.Priority = 0
    command.CommandDataSetType = 0x0001
    command.AffectedSOPInstanceUID = "1.2.3.4"
    peer.send_command(command)
    peer.sock.sendall(p_data_tf(CONTEXT, peer.encode(_answer("X")), command=False, last=True))
    rsp, _identifier = peer.response()
    assert rsp.Status == 0x0211  # PS3.7 C.4: unrecognized operation
    assert handler.stored == []


@pytest.mark.parametrize(("size", "maximum"), [(0, 0), (0, 64), (1000, 0), (1000, 64),
                                               (1000, 65), (58, 64), (59, 64)])
def test_data_set_pdus_respect_the_maximum_and_mark_the_last(size: int, maximum: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    raw, pos, got, lasts = data_set_pdus(3, data, maximum), 0, b"", []
    while pos < len(raw):
        pdu_type, length = struct.unpack_from(">BxI", raw, pos)
        item_length, context_id, control = struct.unpack_from(">IBB", raw, pos + 6)
        assert (pdu_type, context_id, item_length) == (0x04, 3, length - 4)
        assert not maximum or length <= maximum
        assert not control & 0x01  # a data set fragment
        lasts.append(bool(control & 0x02))
        got += raw[pos + 12 : pos + 6 + length]
        pos += 6 + length
    assert got == data
    assert lasts == [False] * (len(lasts) - 1) + [True]
