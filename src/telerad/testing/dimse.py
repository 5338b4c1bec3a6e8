"""A raw C-STORE SCU for tests: pynetdicom sending the bytes of files as they are.

With ``STORE_SEND_CHUNKED_DATASET`` pynetdicom streams a file's dataset from disk after its
File Meta Information, never decoding it: exactly what a test of malformed input needs
(a truncated or garbage dataset behind a valid meta group), and a byte-exact sender for
checks that what was stored is what was sent.
"""

from __future__ import annotations

import contextlib
import struct
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.presentation import build_context

from telerad.dicom.part10 import PREAMBLE

_lock = threading.Lock()
_users = 0
_default = _config.STORE_SEND_CHUNKED_DATASET


def _chunked(delta: int) -> None:
    """pynetdicom's switch is global: on while any raw association (in any thread) is open."""
    global _users  # noqa: PLW0603 - one process-wide switch
    with _lock:
        _users += delta
        _config.STORE_SEND_CHUNKED_DATASET = True if _users else _default


@contextlib.contextmanager
def raw_association(
    port: int, *, calling: str, called: str = "TELERAD",
    contexts: Iterable[tuple[str, str]] = (), host: str = "127.0.0.1",
) -> Iterator[Association]:
    """An association proposing each (SOP Class, transfer syntax) in its own context; file
    paths given to ``send_c_store`` are sent as raw bytes. Released (or aborted) on exit."""
    _chunked(+1)
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    pairs = sorted(set(contexts))
    if len(pairs) > 128:
        raise ValueError("more than 128 presentation contexts")
    ae.requested_contexts = [build_context(cls, [ts]) for cls, ts in pairs]
    assoc = ae.associate(host, port, ae_title=called)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        _chunked(-1)
        ae.shutdown()


def store_status(assoc: Association, path: Path) -> int | None:
    """C-STORE the file's dataset bytes; the response status, or None without a response."""
    response = assoc.send_c_store(path)
    if response is None or "Status" not in response:
        return None
    return int(response.Status)


def part10_file(path: Path, *, sop_class_uid: str, sop_instance_uid: str,
                transfer_syntax_uid: str, dataset: bytes) -> Path:
    """Write a Part-10 file: a valid meta group, then ``dataset`` as it is (even garbage)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.8.498.77.9")
    with path.open("wb") as fp:
        fp.write(PREAMBLE)
        write_file_meta_info(fp, meta, enforce_standard=True)  # type: ignore[arg-type]
        fp.write(dataset)
    return path


def garbage(size: int, *, seed: int = 7) -> bytes:
    """Bytes that are no DICOM dataset: an impossible VR in the first element header."""
    head = struct.pack("<HH2sH", 0x0008, 0x0016, b"\x01\x02", 0x7FFF)
    body = bytes((seed * 131 + i * 29) % 251 for i in range(max(size - len(head), 0)))
    return head + body
