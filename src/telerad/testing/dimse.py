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
from pydicom.filereader import read_file_meta_info
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.presentation import build_context

from telerad.dicom.part10 import PREAMBLE
from telerad.gateway.scu import REQUESTOR_HANDLERS

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
    assoc = ae.associate(host, port, ae_title=called, evt_handlers=list(REQUESTOR_HANDLERS))
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


def _command_element(element: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0x0000, element, len(value)) + value


def c_store_rq(*, message_id: int, sop_class_uid: str, sop_instance_uid: str) -> bytes:
    """A C-STORE-RQ command set, Implicit VR Little Endian (PS3.7 §9.3.1.1, §6.3.1)."""

    def ui(value: str) -> bytes:
        raw = value.encode("ascii")
        return raw + b"\x00" * (len(raw) % 2)

    body = (
        _command_element(0x0002, ui(sop_class_uid))
        + _command_element(0x0100, struct.pack("<H", 0x0001))  # C-STORE-RQ
        + _command_element(0x0110, struct.pack("<H", message_id))
        + _command_element(0x0700, struct.pack("<H", 0x0000))  # medium priority
        + _command_element(0x0800, struct.pack("<H", 0x0000))  # a data set follows
        + _command_element(0x1000, ui(sop_instance_uid))
    )
    return _command_element(0x0000, struct.pack("<I", len(body))) + body


def p_data_tf(context_id: int, fragment: bytes, *, command: bool, last: bool) -> bytes:
    """One P-DATA-TF PDU holding one PDV (PS3.8 §9.3.5, message control header §E.2)."""
    control = (0x01 if command else 0x00) | (0x02 if last else 0x00)
    pdv = struct.pack(">IBB", 2 + len(fragment), context_id, control) + fragment
    return struct.pack(">BxI", 0x04, len(pdv)) + pdv


def send_part_of_store(assoc: Association, path: Path, *, dataset: bytes, fraction: float,
                       message_id: int = 1) -> None:
    """Send a C-STORE-RQ for the file and only the first ``fraction`` of its data set, never
    the last fragment: the SCP is left waiting for the rest (a sender that dies mid-image)."""
    meta = read_file_meta_info(path)
    sop_class_uid, ts = str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)
    (context,) = [cx for cx in assoc.accepted_contexts
                  if cx.abstract_syntax == sop_class_uid and cx.transfer_syntax[0] == ts]
    assert context.context_id is not None
    sock = assoc.dul.socket
    assert sock is not None
    sock.send(p_data_tf(context.context_id, c_store_rq(
        message_id=message_id, sop_class_uid=sop_class_uid,
        sop_instance_uid=str(meta.MediaStorageSOPInstanceUID)), command=True, last=True))
    part = dataset[: int(len(dataset) * fraction)]
    for start in range(0, len(part), 16_000):
        sock.send(p_data_tf(context.context_id, part[start : start + 16_000],
                            command=False, last=False))
