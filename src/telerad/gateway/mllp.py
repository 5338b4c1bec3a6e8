"""MLLP over TCP (HL7 v2 Appendix C, "MLLP release 2"; IHE ITI TF-2 Appendix C.2.1): a
threaded server for messages coming in, and a client for messages going out.

Both speak original-mode acknowledgement (HL7 v2.5 §2.9.2): one message, then its one
answer, on a connection that stays open for the next. Framing is :mod:`telerad.hl7.mllp`'s;
what a message means is the caller's business (the server's ``handle`` answers each message,
and must always answer: an ACK AE or AR when it cannot accept it).

Logs name peers by address and count bytes; never a message's content (patient data).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from telerad.clock import Clock, SystemClock
from telerad.errors import TooLarge
from telerad.hl7.ack import AckCode, ack
from telerad.hl7.mllp import DEFAULT_MAX_SIZE, END_BLOCK, Deframer, frame

LOGGER = logging.getLogger(__name__)

#: Most connections served at once; more are closed as soon as accepted.
MAX_CONNECTIONS = 64
_READ_SIZE = 64 * 1024


class MllpError(OSError):
    """The peer could not be reached, or did not answer (the text says which, in a few
    words, never with message content): the message may be resent later."""


def _pieces(data: bytes, *, after_first_end_byte: bool) -> Iterator[bytes]:
    """``data`` cut just after each end block, so that feeding a piece completes at most one
    message, at its end: a frame found too large then never takes with it a message
    completed by the same read. ``after_first_end_byte``: the previous read ended with
    0x1C, so a leading CR completes a frame on its own."""
    start = 0
    if after_first_end_byte and data[:1] == END_BLOCK[1:]:
        yield data[:1]
        start = 1
    while start < len(data):
        end = data.find(END_BLOCK, start)
        stop = len(data) if end < 0 else end + len(END_BLOCK)
        yield data[start:stop]
        start = stop


class MllpServer:
    """Accepts MLLP connections on ``host:port`` and answers each message with
    ``handle(message)``, in the order received, one thread per connection."""

    def __init__(self, *, host: str, port: int, handle: Callable[[bytes], bytes],
                 max_message_bytes: int = DEFAULT_MAX_SIZE, idle_timeout: float = 300.0,
                 clock: Clock | None = None) -> None:
        self.host = host
        self._port = port
        self.handle = handle
        self.max_message_bytes = max_message_bytes
        #: Seconds a connection may stay silent before it is closed.
        self.idle_timeout = idle_timeout
        self.clock: Clock = clock or SystemClock()
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._acceptor: threading.Thread | None = None
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        """The port listened on (the one chosen by the system when 0 was asked)."""
        return self._port

    def start(self) -> MllpServer:
        if self._listener is not None:
            raise RuntimeError("the MLLP server is already started")
        # Exactly the address given: 127.0.0.1 stays private to this machine.
        listener = socket.create_server((self.host, self._port), backlog=64)
        listener.setblocking(False)
        self._port = int(listener.getsockname()[1])
        self._listener = listener
        self._wake = socket.socketpair()
        self._stopping.clear()
        self._acceptor = threading.Thread(target=self._accept_loop, name="mllp-accept",
                                          daemon=True)
        self._acceptor.start()
        LOGGER.info("MLLP server listening on %s:%d", self.host, self._port)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let each connection finish the message it is answering, close
        them all; give up on the slow ones after ``timeout`` seconds (their peers will
        resend what was not acknowledged)."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        if self._wake is not None:
            with contextlib.suppress(OSError):
                self._wake[1].send(b"x")
        if self._acceptor is not None:
            self._acceptor.join(timeout)
        for sock in (self._listener, *(self._wake or ())):
            if sock is not None:
                sock.close()
        self._listener, self._wake, self._acceptor = None, None, None
        with self._lock:
            connections = dict(self._connections)
        # Reading side first: a thread answering a message writes its answer, then finds
        # the end of the stream and closes.
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RD)
        for conn, thread in connections.items():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        LOGGER.info("MLLP server on %s:%d stopped", self.host, self._port)

    def __enter__(self) -> MllpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        listener, wake = self._listener, self._wake
        assert listener is not None
        assert wake is not None
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake[0], selectors.EVENT_READ)
            while not self._stopping.is_set():
                if not any(key.fileobj is listener for key, _ in selector.select()):
                    continue
                try:
                    conn, peer = listener.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    continue  # the peer gave up before we took it
                except OSError:
                    if self._stopping.is_set():
                        return
                    raise
                self._admit(conn, peer)

    def _admit(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        with self._lock:
            if self._stopping.is_set() or len(self._connections) >= MAX_CONNECTIONS:
                LOGGER.warning("MLLP connection from %s:%d refused: %d connections open",
                               peer[0], peer[1], len(self._connections))
                conn.close()
                return
            # An ACK is one small write: it must not wait for Nagle's algorithm (40 ms).
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(self.idle_timeout)
            thread = threading.Thread(target=self._serve, args=(conn, peer),
                                      name=f"mllp-{peer[0]}:{peer[1]}", daemon=True)
            self._connections[conn] = thread
        thread.start()

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        LOGGER.debug("MLLP connection from %s:%d", peer[0], peer[1])
        deframer = Deframer(max_size=self.max_message_bytes)
        last = b""
        try:
            while True:
                try:
                    data = conn.recv(_READ_SIZE)
                except TimeoutError:
                    LOGGER.info("MLLP connection from %s:%d idle for %g s: closed",
                                peer[0], peer[1], self.idle_timeout)
                    return
                if not data:
                    if deframer.pending:
                        LOGGER.warning("MLLP peer %s:%d closed in the middle of a message",
                                       peer[0], peer[1])
                    return
                for piece in _pieces(data, after_first_end_byte=last == END_BLOCK[:1]):
                    if not self._answer(conn, peer, deframer, piece):
                        return
                last = data[-1:]
        except OSError as exc:
            LOGGER.info("MLLP connection from %s:%d ended: %s", peer[0], peer[1],
                        type(exc).__name__)
        finally:
            conn.close()
            with self._lock:
                self._connections.pop(conn, None)

    def _answer(self, conn: socket.socket, peer: tuple[str, int], deframer: Deframer,
                piece: bytes) -> bool:
        """Answer the message ``piece`` completes, if any; False to close the connection."""
        try:
            messages = deframer.feed(piece)
        except TooLarge as exc:
            # The frame's remaining bytes will be dropped by the deframer as outside any
            # frame: the connection stays usable for the next message, once refused.
            LOGGER.warning("MLLP message from %s:%d above %d bytes: refused (AR)",
                           peer[0], peer[1], self.max_message_bytes)
            conn.sendall(frame(self._too_large(exc).encode()))
            return True
        for message in messages:
            try:
                answer = frame(self.handle(message))
            except Exception as exc:
                # The handler must always answer (ACK AE/AR for what it refuses); one that
                # raises is a bug: the sender, without an answer, will resend.
                LOGGER.error("MLLP handler failed on a message from %s:%d (%s): "
                             "connection closed", peer[0], peer[1], type(exc).__name__)
                return False
            conn.sendall(answer)
        return True

    def _too_large(self, error: TooLarge) -> str:
        """ACK AR (HL7 v2.5 §2.9.2.3) for a message too large to be read: nothing of it is
        known, so the ACK names nobody and echoes no control ID."""
        return ack(None, code=AckCode.REJECT, control_id=uuid.uuid4().hex[:20],
                   now=self.clock.now(), error=error)


class MllpClient:
    """One connection to an MLLP peer, opened at the first exchange and kept for the next."""

    def __init__(self, *, host: str, port: int, timeout: float = 10.0,
                 max_message_bytes: int = DEFAULT_MAX_SIZE) -> None:
        self.host = host
        self.port = port
        #: Seconds to connect, and to receive a whole answer once the message is sent.
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        self._sock: socket.socket | None = None

    def exchange(self, message: bytes) -> bytes:
        """Send ``message`` and return the peer's answer (unframed).

        A kept connection the peer closed while it was idle (a RIS closes idle connections)
        is reopened once: nothing of ``message`` had reached the peer. Once a whole message
        may have reached it, a failure is never retried here: the peer may have processed
        it, and only the caller knows whether to send it again.

        :class:`MllpError` when the peer cannot be reached, does not answer within
        :attr:`timeout`, or closes the connection before answering.
        """
        framed = frame(message)
        kept = self._sock is not None and not self._closed_by_peer()
        if not kept:
            self.close()
        sock = self._sock if kept and self._sock is not None else self._connect()
        try:
            sock.sendall(framed)
        except OSError as exc:
            # A failed write never put the end block on the wire: the peer has no message.
            self.close()
            if not kept:
                raise MllpError(f"connection lost while sending ({type(exc).__name__})") from exc
            sock = self._connect()
            try:
                sock.sendall(framed)
            except OSError as again:
                self.close()
                raise MllpError(
                    f"connection lost while sending ({type(again).__name__})") from again
        try:
            return self._receive(sock)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def __enter__(self) -> MllpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except ConnectionRefusedError as exc:
            raise MllpError("connection refused") from exc
        except TimeoutError as exc:
            raise MllpError(f"no connection within {self.timeout:g} s") from exc
        except socket.gaierror as exc:
            raise MllpError("unknown host") from exc
        except OSError as exc:
            raise MllpError(f"cannot connect ({exc.strerror or type(exc).__name__})") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        return sock

    def _closed_by_peer(self) -> bool:
        """Whether the kept connection was closed by the peer; bytes it sent while no
        message was waiting for an answer are stale, and dropped."""
        sock = self._sock
        assert sock is not None
        sock.setblocking(False)
        try:
            while True:
                stale = sock.recv(_READ_SIZE)
                if not stale:
                    return True
                LOGGER.info("MLLP peer %s:%d sent %d bytes unasked: dropped",
                            self.host, self.port, len(stale))
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(self.timeout)

    def _receive(self, sock: socket.socket) -> bytes:
        deframer = Deframer(max_size=self.max_message_bytes)
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MllpError(f"no answer within {self.timeout:g} s")
            sock.settimeout(remaining)
            try:
                data = sock.recv(_READ_SIZE)
            except TimeoutError as exc:
                raise MllpError(f"no answer within {self.timeout:g} s") from exc
            except OSError as exc:
                raise MllpError(f"connection lost before the answer "
                                f"({type(exc).__name__})") from exc
            if not data:
                raise MllpError("connection closed by the peer before its answer")
            try:
                answers = deframer.feed(data)
            except TooLarge as exc:
                raise MllpError(f"answer above {self.max_message_bytes} bytes") from exc
            if answers:
                if len(answers) > 1 or deframer.pending:
                    LOGGER.info("MLLP peer %s:%d answered more than once: extra dropped",
                                self.host, self.port)
                return answers[0]
