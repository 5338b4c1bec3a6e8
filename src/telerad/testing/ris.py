"""A RIS for tests: python-hl7's MLLP server (asyncio), answering every message with the ACK
python-hl7 builds, not one telerad wrote, so that telerad's sender meets a peer's ACK.

It listens on 127.0.0.1 in a thread of its own, keeps what it received, and can be stopped
and started again on the same port (a RIS down for a while). ``ack_code`` may be changed
while it runs: ``AE`` (error in the message) or ``AR`` (rejected, e.g. system down).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import hl7.mllp  # type: ignore[import-untyped]

from telerad.hl7.mllp import DEFAULT_MAX_SIZE


class RisPeer:
    """python-hl7's ``start_hl7_server`` on 127.0.0.1:``port`` (0: a free one)."""

    def __init__(self, *, port: int = 0, ack_code: str = "AA") -> None:
        self._port = port
        #: MSA-1 of the next ACKs: AA, AE, AR (or CA, CE, CR).
        self.ack_code = ack_code
        self._received: list[str] = []
        self._arrived = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[Any] = set()

    @property
    def port(self) -> int:
        return self._port

    @property
    def received(self) -> list[str]:
        """The messages received so far, in order, as python-hl7 reads them (segments
        separated by CR)."""
        with self._arrived:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[str]:
        """The messages received, once there are at least ``count``; TimeoutError else."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._received) >= count, timeout):
                raise TimeoutError(f"the RIS received {len(self._received)} messages, "
                                   f"not {count}, in {timeout} s")
            return list(self._received)

    def start(self, timeout: float = 10.0) -> RisPeer:
        if self._thread is not None:
            raise RuntimeError("the RIS peer is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="ris-peer", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            server = asyncio.run_coroutine_threadsafe(self._listen(), loop).result(timeout)
        except BaseException:
            self._halt()
            raise
        self._server = server
        self._port = int(server.sockets[0].getsockname()[1])
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listening socket and every connection; the port may be reused."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout)
        self._halt(timeout)

    def __enter__(self) -> RisPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _halt(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)
        if loop is not None and not loop.is_running():
            loop.close()
        self._loop, self._thread, self._server = None, None, None

    async def _listen(self) -> asyncio.Server:
        # reuse_address (asyncio's default on POSIX) lets a restarted peer take its port
        # back while the old connections are in TIME_WAIT.
        server: asyncio.Server = await hl7.mllp.start_hl7_server(
            self._serve, "127.0.0.1", self._port, limit=DEFAULT_MAX_SIZE, encoding="utf-8",
            reuse_address=True)
        return server

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: Any, writer: Any) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    message = await reader.readmessage()
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the sender closed the connection
                except (hl7.mllp.InvalidBlockError, hl7.HL7Exception, ValueError):
                    return  # not MLLP, too large, or not HL7: a strict RIS hangs up
                with self._arrived:
                    self._received.append(str(message))
                    self._arrived.notify_all()
                writer.writemessage(message.create_ack(ack_code=self.ack_code))
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()
