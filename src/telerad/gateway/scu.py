"""Sending instances to a DICOM peer (C-STORE SCU), for the demo and tools."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.presentation import build_context

from telerad.errors import StorageFailure


def send_datasets(
    datasets: Iterable[Dataset], *, host: str, port: int, calling_ae_title: str,
    called_ae_title: str, sop_class_uid: str, transfer_syntax_uid: str,
    progress: Callable[[int], None] | None = None,
) -> int:
    """C-STORE each dataset over one association; return how many were stored."""
    ae = AE(ae_title=calling_ae_title)
    ae.requested_contexts = [build_context(sop_class_uid, [transfer_syntax_uid])]
    assoc = ae.associate(host, port, ae_title=called_ae_title)
    if not assoc.is_established:
        raise StorageFailure(f"association with {called_ae_title}@{host}:{port} refused")
    stored = 0
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            if status is None or status.get("Status", 0xFFFF) != 0x0000:
                raise StorageFailure(f"C-STORE refused with status {status!r}")
            stored += 1
            if progress is not None:
                progress(stored)
    finally:
        assoc.release()
    return stored
