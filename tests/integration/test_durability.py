"""No acknowledged image is ever lost: ``telerad serve`` killed with SIGKILL mid-study.

Three associations stream a 300-slice CT at once; the server is killed after about a
hundred C-STORE-RSP 0x0000, while data sets are in flight (staged, durable but not yet
indexed, indexed but not yet answered). After a restart on the same data directory and
database, every acknowledged instance must be there byte for byte, and nothing half-written
may be visible.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

from pydicom.filereader import read_file_meta_info

from telerad.dicom.part10 import check_complete, dataset_offset
from telerad.dicom.synthetic import SyntheticStudy, write_study
from telerad.testing.archive import ArchiveView, file_dataset, open_archive, wait_for_study_status
from telerad.testing.dimse import raw_association, store_status
from telerad.testing.peers import storescu
from tests.conftest import SENDER_AE, Served

SLICES = 300
KILL_AFTER = 100
ASSOCIATIONS = 3


def _wado_instance(served: Served, study: str, series: str, instance: str) -> bytes | None:
    """The one Part-10 file of a WADO-RS instance retrieval (PS3.18 §10.4, multipart), or
    None while WADO-RS does not exist yet (it is being written): the framework's own 404."""
    request = urllib.request.Request(
        f"{served.server.dicomweb_url}/studies/{study}/series/{series}/instances/{instance}",
        headers={**served.headers,
                 "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            content_type = str(response.headers["Content-Type"])
            body: bytes = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 405) and json.loads(exc.read() or b"{}") == {
                "detail": "Not Found" if exc.code == 404 else "Method Not Allowed"}:
            return None  # no such route
        raise
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    assert boundary, content_type
    delimiter = b"--" + boundary.group(1).encode()
    parts = [p for p in body.split(delimiter)[1:] if not p.startswith(b"--")]
    assert len(parts) == 1, f"{len(parts)} parts"
    _headers, _, payload = parts[0].partition(b"\r\n\r\n")
    return payload[:-2] if payload.endswith(b"\r\n") else payload


def _check_archive(archive: ArchiveView, sent: dict[str, Path]) -> dict[str, bytes]:
    """Every committed blob is a whole Part-10 file (each element fits, PS3.5 §7) holding the
    very dataset that was sent; return the datasets by SOP Instance UID."""
    datasets = {}
    for key in archive.blob_keys():
        path = archive.runtime.store.local_path(key)
        assert path is not None
        meta = read_file_meta_info(path)
        data = archive.blob(key)
        check_complete(data, dataset_offset(data), str(meta.TransferSyntaxUID))
        uid = str(meta.MediaStorageSOPInstanceUID)
        assert uid in sent, f"{key}: a blob of nothing that was sent"
        assert data[dataset_offset(data) :] == file_dataset(sent[uid]), f"{key}: other bytes"
        datasets[uid] = data[dataset_offset(data) :]
    return datasets


def test_acknowledged_instances_survive_sigkill(served: Served, tmp_path: Path) -> None:
    study = SyntheticStudy(slices=SLICES, rows=256, columns=256, accession_number="KILL300")
    paths = write_study(study, tmp_path / "ct")
    sent = {str(read_file_meta_info(p).MediaStorageSOPInstanceUID): p for p in paths}
    cls = str(read_file_meta_info(paths[0]).MediaStorageSOPClassUID)
    ts = str(read_file_meta_info(paths[0]).TransferSyntaxUID)

    acknowledged: list[str] = []
    lock, enough = threading.Lock(), threading.Event()

    def send(chunk: list[Path]) -> None:
        with raw_association(served.server.dicom_port, calling=SENDER_AE,
                             contexts={(cls, ts)}) as assoc:
            for path in chunk:
                try:
                    status = store_status(assoc, path)
                except Exception:  # the association died with the server
                    return
                if status != 0x0000:
                    return
                with lock:
                    acknowledged.append(str(read_file_meta_info(path).MediaStorageSOPInstanceUID))
                    if len(acknowledged) >= KILL_AFTER:
                        enough.set()

    senders = [threading.Thread(target=send, args=(paths[i::ASSOCIATIONS],), daemon=True)
               for i in range(ASSOCIATIONS)]
    for thread in senders:
        thread.start()
    assert enough.wait(120), f"only {len(acknowledged)} acknowledged"
    served.server.kill()  # SIGKILL: no chance to clean up
    for thread in senders:
        thread.join(60)
    assert not any(t.is_alive() for t in senders)
    with lock:
        acked = list(acknowledged)
    assert KILL_AFTER <= len(acked) < SLICES, "the kill did not land mid-study"

    served.server.start()  # same ports, data directory and database
    with open_archive(served.server) as archive:
        assert archive.staged_files() == [], "staged files of the crash not cleared on start"
        indexed = archive.instances()
        missing = [uid for uid in acked if uid not in indexed]
        assert missing == [], f"{len(missing)} acknowledged instances lost"
        datasets = _check_archive(archive, sent)
        for uid, instance in indexed.items():
            assert uid in datasets, f"{uid}: indexed without its blob"
            assert instance.blob_key in archive.blob_keys()
        # The index's counters agree with its rows, even after the crash.
        (counts,) = archive.studies().values()
        assert counts[:2] == (1, len(indexed))

    for uid in acked[:: max(len(acked) // 10, 1)]:  # over HTTP too, once WADO-RS exists
        instance = indexed[uid]
        part10 = _wado_instance(served, instance.study_instance_uid,
                                instance.series_instance_uid, uid)
        if part10 is None:
            break
        assert part10[dataset_offset(part10) :] == file_dataset(sent[uid]), uid

    # The modality sends the whole study again, as it would after an error: what was kept
    # is a duplicate (success), the rest is stored, and the study completes.
    again = storescu([tmp_path / "ct"], port=served.server.dicom_port, calling=SENDER_AE)
    assert again.returncode == 0, again.stderr[-2000:]
    complete = wait_for_study_status(served.server, served.token, study.study_instance_uid)
    assert complete["number_of_instances"] == SLICES
    with open_archive(served.server) as archive:
        assert set(archive.instances()) == set(sent)
        assert set(_check_archive(archive, sent)) == set(sent)
        assert archive.conflicts() == []
