"""MLLP framing (HL7 v2 Appendix C, "MLLP release 2"; IHE ITI TF-2 Appendix C.2.1).

A message travels as ``<VT> message <FS><CR>``: start block 0x0B, end block 0x1C 0x0D.
:func:`frame` wraps one message; :class:`Deframer` takes the bytes of a TCP stream as they
come (split anywhere, several messages in one read) and returns whole messages.

Tolerance, stated once: bytes outside a frame (keep-alive newlines, a peer's garbage) are
dropped and counted in :attr:`Deframer.dropped`; a start block inside an unfinished frame
means the sender gave up on the first one, which is dropped as well. A frame growing past
``max_size`` raises :class:`~telerad.errors.TooLarge` (the edge answers and closes).
"""

from __future__ import annotations

from telerad.errors import TooLarge

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
#: Large enough for an ORU^R01 carrying a base64 PDF in an OBX.
DEFAULT_MAX_SIZE = 16 * 1024 * 1024


def frame(message: bytes) -> bytes:
    """One message in its MLLP envelope; a message holding a block character cannot be
    framed (MLLP has no escape for them)."""
    if START_BLOCK in message or b"\x1c" in message:
        raise ValueError("an HL7 message cannot contain MLLP block characters 0x0B or 0x1C")
    return START_BLOCK + message + END_BLOCK


class FrameTooLarge(TooLarge):
    """A frame outgrew the limit; ``completed`` holds the messages whole before it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.completed: list[bytes] = []


class Deframer:
    """Incremental MLLP decoder for one connection."""

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size
        #: Bytes dropped so far because they were outside a frame or in an abandoned one.
        self.dropped = 0
        self._buffer = bytearray()
        self._in_frame = False

    @property
    def pending(self) -> bool:
        """Whether a frame is started and not finished (the peer closing now loses it)."""
        return self._in_frame

    def feed(self, data: bytes) -> list[bytes]:
        """The messages completed by ``data``, in order. FrameTooLarge when a frame outgrows
        the limit; the messages completed before it in ``data`` are then its ``completed``."""
        messages: list[bytes] = []
        self._buffer += data
        try:
            self._deframe(messages)
        except FrameTooLarge as exc:
            exc.completed = messages
            raise
        return messages

    def _deframe(self, messages: list[bytes]) -> None:
        while self._buffer:
            if not self._in_frame:
                start = self._buffer.find(START_BLOCK)
                if start < 0:
                    self.dropped += len(self._buffer)
                    self._buffer.clear()
                    break
                self.dropped += start
                del self._buffer[: start + 1]
                self._in_frame = True
                continue
            end = self._buffer.find(END_BLOCK)
            restart = self._buffer.find(START_BLOCK)
            if restart >= 0 and (end < 0 or restart < end):
                # A new frame before this one ended: the sender abandoned it.
                self.dropped += restart + 1
                del self._buffer[: restart + 1]
                continue
            if end < 0:
                # Keep a trailing 0x1C: its 0x0D may be in the next read.
                self._check_size(len(self._buffer) - self._buffer.endswith(b"\x1c"))
                break
            self._check_size(end)
            messages.append(bytes(self._buffer[:end]))
            del self._buffer[: end + len(END_BLOCK)]
            self._in_frame = False

    def _check_size(self, size: int) -> None:
        if size > self.max_size:
            self.dropped += len(self._buffer)
            self._buffer.clear()
            self._in_frame = False
            raise FrameTooLarge(f"an MLLP frame exceeds {self.max_size} bytes")
