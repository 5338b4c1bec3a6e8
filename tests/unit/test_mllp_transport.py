"""MLLP over loopback TCP: telerad's server and client, and the HL7 sender's reading of ACKs.

The peer is telerad's own :class:`MllpServer` with a fake handler; the real RIS (python-hl7)
is met in tests/integration/test_delivery_channels.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from telerad.delivery.channels import Address, Outcome, Outgoing, Verdict
from telerad.gateway.channels import Hl7MllpSender, ack_outcome
from telerad.gateway.mllp import MllpClient, MllpError, MllpServer, _pieces
from telerad.hl7.messages import parse
from telerad.hl7.mllp import Deframer, frame
from telerad.testing.peers import free_port


def oru(control_id: str, text: str = "No abnormality.") -> bytes:
    return ("MSH|^~\\&|TELERAD|TR|RIS|CH_VALENCE|20250314101502||ORU^R01^ORU_R01|"
            f"{control_id}|P|2.5\rPID|1||784512^^^CHV^PI||SYNTHETIC^PATIENT\r"
            f"OBR|1|ORD1|ACC1|CTHEAD^CT head\rOBX|1|TX|CTHEAD^CT head||{text}||||||F\r"
            ).encode()


def ack_text(control_id: str, code: str = "AA", *, extra: str = "") -> bytes:
    return (f"MSH|^~\\&|RIS|CH_VALENCE|TELERAD|TR|20250314101503||ACK^R01^ACK|A{control_id}|"
            f"P|2.5\rMSA|{code}|{control_id}\r{extra}").encode()


class FakeRis:
    """A handler for :class:`MllpServer`: records what it gets, answers ``answer(message)``
    (an ACK AA by default), and notes which connection (thread) carried each message."""

    def __init__(self, answer: Callable[[bytes], bytes] | None = None) -> None:
        self.messages: list[bytes] = []
        self.threads: list[str] = []
        self.answer = answer or (lambda message: ack_text(parse(message).control_id))

    def __call__(self, message: bytes) -> bytes:
        self.messages.append(message)
        self.threads.append(threading.current_thread().name)
        return self.answer(message)

    @property
    def control_ids(self) -> list[str]:
        return [parse(m).control_id for m in self.messages]


@pytest.fixture
def ris() -> FakeRis:
    return FakeRis()


@pytest.fixture
def server(ris: FakeRis) -> Iterator[MllpServer]:
    with MllpServer(host="127.0.0.1", port=0, handle=ris) as server:
        yield server


def connect(server: MllpServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answers(sock: socket.socket, count: int) -> list[bytes]:
    deframer = Deframer()
    answers: list[bytes] = []
    while len(answers) < count:
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        answers += deframer.feed(data)
    return answers


def outgoing(*control_ids: str) -> list[Outgoing]:
    return [Outgoing(delivery_id=n, document="ORU^R01", payload=oru(c))
            for n, c in enumerate(control_ids, start=1)]


def send(server: MllpServer, documents: list[Outgoing]) -> list[Outcome]:
    return Hl7MllpSender(timeout=5).send(Address(host="127.0.0.1", port=server.port),
                                         documents)


# --- the server -------------------------------------------------------------------------

def test_a_message_split_across_packets_is_answered_once(server: MllpServer, ris: FakeRis):
    stream = frame(oru("MSG1"))
    # Cut after the start block, inside MSH, and between the two end block bytes.
    cuts = [1, 9, len(stream) - 1, len(stream)]
    with connect(server) as sock:
        for start, end in zip([0, *cuts], cuts, strict=False):
            sock.sendall(stream[start:end])
            time.sleep(0.01)  # let each piece travel alone
        [answer] = read_answers(sock, 1)
    assert parse(answer).field("MSA", 2) == "MSG1"
    assert ris.messages == [oru("MSG1")]


def test_every_byte_in_its_own_packet(server: MllpServer, ris: FakeRis):
    stream = frame(oru("MSG1"))
    with connect(server) as sock:
        for i in range(len(stream)):
            sock.sendall(stream[i : i + 1])
        [answer] = read_answers(sock, 1)
    assert parse(answer).field("MSA", 2) == "MSG1"
    assert ris.messages == [oru("MSG1")]


def test_several_messages_in_one_write_are_answered_in_order(server: MllpServer,
                                                             ris: FakeRis):
    with connect(server) as sock:
        sock.sendall(b"\r\n" + b"".join(frame(oru(f"MSG{n}")) for n in range(5)))
        answers = read_answers(sock, 5)
    assert [parse(a).field("MSA", 2) for a in answers] == [f"MSG{n}" for n in range(5)]
    assert ris.control_ids == [f"MSG{n}" for n in range(5)]
    assert len(set(ris.threads)) == 1


def test_pieces_end_at_each_end_block():
    data = b"\x0bA\x1c\r\x0bB\x1c\r\x0bC"
    assert list(_pieces(data, after_first_end_byte=False)) == [
        b"\x0bA\x1c\r", b"\x0bB\x1c\r", b"\x0bC"]
    assert list(_pieces(b"\r\x0bD\x1c\r", after_first_end_byte=True)) == [
        b"\r", b"\x0bD\x1c\r"]
    assert list(_pieces(b"\r\x0bD", after_first_end_byte=False)) == [b"\r\x0bD"]


def test_an_oversized_message_is_refused_and_the_connection_kept(ris: FakeRis):
    with MllpServer(host="127.0.0.1", port=0, handle=ris, max_message_bytes=400) as server:
        big = oru("BIG", text="x" * 1000)
        with connect(server) as sock:
            # The message after the big one, in the same write, is still answered.
            sock.sendall(frame(big) + frame(oru("SMALL")))
            refused, answered = read_answers(sock, 2)
    assert (parse(refused).field("MSA", 1), parse(refused).field("MSA", 2)) == ("AR", "")
    assert parse(refused).field("ERR", 5) == "too_large"
    assert parse(answered).field("MSA", 2) == "SMALL"
    assert ris.control_ids == ["SMALL"]


def test_a_failing_handler_closes_its_connection_not_the_server(server: MllpServer,
                                                                ris: FakeRis):
    def answer(message: bytes) -> bytes:
        if parse(message).control_id == "BOOM":
            raise RuntimeError("bug")
        return ack_text(parse(message).control_id)

    ris.answer = answer
    with connect(server) as sock:
        sock.sendall(frame(oru("BOOM")))
        assert sock.recv(100) == b""
    with MllpClient(host="127.0.0.1", port=server.port) as client:
        assert parse(client.exchange(oru("NEXT"))).field("MSA", 2) == "NEXT"


def test_stop_closes_open_connections_and_the_port(ris: FakeRis):
    server = MllpServer(host="127.0.0.1", port=0, handle=ris).start()
    sock = connect(server)
    sock.sendall(frame(oru("MSG1")))
    read_answers(sock, 1)
    server.stop()
    assert sock.recv(100) == b""
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5)


def test_an_idle_connection_is_closed(ris: FakeRis):
    with MllpServer(host="127.0.0.1", port=0, handle=ris, idle_timeout=0.1) as server, \
            connect(server) as sock:
        sock.sendall(frame(oru("MSG1")))
        read_answers(sock, 1)
        assert sock.recv(100) == b""  # closed by the server, not by our 5 s timeout


def test_binds_the_host_it_is_given(ris: FakeRis):
    with MllpServer(host="127.0.0.1", port=0, handle=ris) as server:
        assert server._listener is not None
        assert server._listener.getsockname()[0] == "127.0.0.1"
        assert server.port != 0


# --- the client -------------------------------------------------------------------------

def test_the_client_keeps_one_connection(server: MllpServer, ris: FakeRis):
    with MllpClient(host="127.0.0.1", port=server.port) as client:
        answers = [client.exchange(oru(f"MSG{n}")) for n in range(3)]
    assert [parse(a).field("MSA", 2) for a in answers] == ["MSG0", "MSG1", "MSG2"]
    assert len(set(ris.threads)) == 1


def test_the_client_reconnects_once_when_the_idle_connection_was_closed(ris: FakeRis):
    server = MllpServer(host="127.0.0.1", port=0, handle=ris).start()
    try:
        with MllpClient(host="127.0.0.1", port=server.port) as client:
            client.exchange(oru("MSG1"))
            server.stop()  # closes the kept connection while nothing is in flight
            server.start()  # same port
            assert parse(client.exchange(oru("MSG2"))).field("MSA", 2) == "MSG2"
    finally:
        server.stop()
    assert ris.control_ids == ["MSG1", "MSG2"]
    assert ris.threads[0] != ris.threads[1]


def test_the_client_does_not_resend_what_the_peer_may_have_read(server: MllpServer,
                                                                ris: FakeRis):
    def hang_up(message: bytes) -> bytes:
        raise RuntimeError("the peer read it, then closed without answering")

    ris.answer = hang_up
    with MllpClient(host="127.0.0.1", port=server.port) as client, \
            pytest.raises(MllpError, match="closed by the peer"):
        client.exchange(oru("MSG1"))
    assert ris.control_ids == ["MSG1"]


def test_the_client_gives_up_when_no_answer_comes(server: MllpServer, ris: FakeRis):
    release = threading.Event()

    def silent(message: bytes) -> bytes:
        release.wait(5)
        return ack_text(parse(message).control_id)

    ris.answer = silent
    try:
        with MllpClient(host="127.0.0.1", port=server.port, timeout=0.2) as client, \
                pytest.raises(MllpError, match="no answer"):
            client.exchange(oru("MSG1"))
    finally:
        release.set()


def test_the_client_says_when_the_connection_is_refused():
    with MllpClient(host="127.0.0.1", port=free_port()) as client, \
            pytest.raises(MllpError, match="connection refused"):
        client.exchange(oru("MSG1"))


# --- the HL7 sender -----------------------------------------------------------------------

@pytest.mark.parametrize(("code", "verdict"), [
    ("AA", Verdict.ACKNOWLEDGED), ("CA", Verdict.ACKNOWLEDGED),
    ("AE", Verdict.REJECTED), ("CE", Verdict.REJECTED),
    ("AR", Verdict.RETRY), ("CR", Verdict.RETRY),
])
def test_msa_1_decides(server: MllpServer, ris: FakeRis, code: str, verdict: Verdict):
    ris.answer = lambda message: ack_text(parse(message).control_id, code)
    [outcome] = send(server, outgoing("MSG1"))
    assert outcome == Outcome(delivery_id=1, verdict=verdict, answer=code)


def test_an_error_is_told_in_a_few_words(server: MllpServer, ris: FakeRis):
    err = ("ERR||PID^1^5|101^Required field missing^HL70357|E|incomplete_hl7_order^^L|||"
           "the result lacks OBX-5\\.br\\in its first OBX\r")
    ris.answer = lambda message: ack_text(parse(message).control_id, "AE", extra=err)
    [outcome] = send(server, outgoing("MSG1"))
    assert outcome.verdict is Verdict.REJECTED
    assert outcome.answer == "AE: 101 the result lacks OBX-5 in its first OBX"


def test_msa_3_and_the_older_err_1_are_read_too():
    answer = parse(ack_text("MSG1", "AE", extra="ERR|OBX^1^5^102&Data type error&HL70357\r")
                   .replace(b"MSA|AE|MSG1", b"MSA|AE|MSG1|" + b"y" * 300))
    outcome = ack_outcome(answer, delivery_id=7, control_id="MSG1")
    assert outcome.verdict is Verdict.REJECTED
    assert outcome.answer.startswith("AE: 102 yyy")
    assert len(outcome.answer) == 200


def test_an_ack_for_another_message_is_not_an_acknowledgement(server: MllpServer,
                                                              ris: FakeRis):
    ris.answer = lambda message: ack_text("SOMEONE-ELSE")
    [outcome] = send(server, outgoing("MSG1"))
    assert (outcome.verdict, outcome.answer) == (Verdict.RETRY, "ACK for another message")


@pytest.mark.parametrize(("answer", "said"), [
    (b"garbage", "answer is not an HL7 message"),
    (b"MSH|^~\\&|RIS|CH|TELERAD|TR|20250314||ORR^O02|X1|P|2.5\rMSA|AA|MSG1\r",
     "answer is not an ACK (MSH-9 'ORR')"),
    (b"MSH|^~\\&|RIS|CH|TELERAD|TR|20250314||ACK|X1|P|2.5\r", "answer is not an ACK"),
    (ack_text("MSG1", "ZZ"), "unknown acknowledgement code 'ZZ'"),
])
def test_an_answer_that_is_not_a_usable_ack_means_retry(server: MllpServer, ris: FakeRis,
                                                        answer: bytes, said: str):
    ris.answer = lambda message: answer
    [outcome] = send(server, outgoing("MSG1"))
    assert outcome.verdict is Verdict.RETRY
    assert outcome.answer.startswith(said)


def test_a_peer_that_cannot_be_reached_gives_one_retry():
    outcomes = Hl7MllpSender(timeout=5).send(Address(host="127.0.0.1", port=free_port()),
                                             outgoing("MSG1", "MSG2"))
    assert outcomes == [Outcome(delivery_id=1, verdict=Verdict.RETRY,
                                answer="connection refused")]


def test_the_batch_goes_in_order_on_one_connection(server: MllpServer, ris: FakeRis):
    outcomes = send(server, outgoing("MSG1", "MSG2", "MSG3"))
    assert [o.verdict for o in outcomes] == [Verdict.ACKNOWLEDGED] * 3
    assert [o.delivery_id for o in outcomes] == [1, 2, 3]
    assert ris.control_ids == ["MSG1", "MSG2", "MSG3"]
    assert len(set(ris.threads)) == 1


def test_the_batch_stops_at_the_first_document_not_acknowledged(server: MllpServer,
                                                                ris: FakeRis):
    codes = iter(["AA", "AE", "AA"])
    ris.answer = lambda message: ack_text(parse(message).control_id, next(codes))
    outcomes = send(server, outgoing("MSG1", "MSG2", "MSG3"))
    assert [(o.delivery_id, o.verdict) for o in outcomes] == [
        (1, Verdict.ACKNOWLEDGED), (2, Verdict.REJECTED)]
    assert ris.control_ids == ["MSG1", "MSG2"]


def test_a_payload_that_is_not_hl7_is_not_sent(server: MllpServer, ris: FakeRis):
    documents = [*outgoing("MSG1"),
                 Outgoing(delivery_id=2, document="ORU^R01", payload=b"%PDF-1.7"),
                 *outgoing("MSG3")]
    outcomes = send(server, documents)
    assert [(o.delivery_id, o.verdict) for o in outcomes] == [
        (1, Verdict.ACKNOWLEDGED), (2, Verdict.REJECTED)]
    assert ris.control_ids == ["MSG1"]


def test_a_peer_gone_in_the_middle_of_the_batch_gives_retry(server: MllpServer,
                                                             ris: FakeRis):
    def answer(message: bytes) -> bytes:
        if parse(message).control_id == "MSG2":
            raise RuntimeError("the RIS crashed")
        return ack_text(parse(message).control_id)

    ris.answer = answer
    outcomes = send(server, outgoing("MSG1", "MSG2", "MSG3"))
    assert [(o.delivery_id, o.verdict) for o in outcomes] == [
        (1, Verdict.ACKNOWLEDGED), (2, Verdict.RETRY)]
    assert outcomes[1].answer == "connection closed by the peer before its answer"
