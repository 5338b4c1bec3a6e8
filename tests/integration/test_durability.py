"""No acknowledged image is ever lost: ``telerad serve`` killed with SIGKILL mid-study.

Three associations stream a 300-slice CT at once; the server is killed after about a
hundred C-STORE-RSP 0x0000, while data sets are in flight (staged, durable but not yet
indexed, indexed but not yet answered). After a restart on the same data directory and
database, every acknowledged instance must be there byte for byte, and nothing half-written
may be visible.
"""

from __future__ import annotations

import re
import threading
import urllib.request
from pathlib import Path

import pytest
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


def _assert_whole(data: bytes, what: str) -> str:
    """A whole Part-10 file (every element fits, PS3.5 §7); its transfer syntax."""
    offset = dataset_offset(data)
    match = re.search(rb"\x02\x00\x10\x00UI(..)", data[:offset], re.DOTALL)
    assert match, f"{what}: no Transfer Syntax UID"
    length = int.from_bytes(match.group(1), "little")
    ts = data[match.end() : match.end() + length].rstrip(b"\x00 ").decode()
    check_complete(data, offset, ts)
    return ts


def _wado_instance_route(served: Served) -> bool:
    """Whether WADO-RS retrieval of one instance exists yet (it is being written)."""
    try:
        with urllib.request.urlopen(f"{served.server.base_url}/openapi.json", timeout=10) as r:
            spec = r.read().decode()
    except OSError:
        return False
    return re.search(r'"/dicomweb/studies/\{[^}]+\}/series/\{[^}]+\}/instances/\{[^}]+\}"',
                     spec) is not None


def _wado_instance(served: Served, study: str, series: str, instance: str) -> bytes:
    """The one Part-10 file of a WADO-RS instance retrieval (PS3.18 §10.4, multipart)."""
    request = urllib.request.Request(
        f"{served.server.dicomweb_url}/studies/{study}/series/{series}/instances/{instance}",
        headers={**served.headers,
                 "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    with urllib.request.urlopen(request, timeout=30) as response:
        content_type = response.headers["Content-Type"]
        body = response.read()
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    assert boundary, content_type
    delimiter = b"--" + boundary.group(1).encode()
    parts = [p for p in body.split(delimiter)[1:] if not p.startswith(b"--")]
    assert len(parts) == 1, f"{len(parts)} parts"
    _headers, _, payload = parts[0].partition(b"\r\n\r\n")
    return payload[:-2] if payload.endswith(b"\r\n") else payload


def _check_archive(archive: ArchiveView, sent: dict[str, Path]) -> dict[str, bytes]:
    """Every committed blob whole and equal to what was sent; return datasets by UID."""
    datasets = {}
    for key in archive.blob_keys():
        data = archive.blob(key)
        _assert_whole(data, key)
        uid = str(read_file_meta_info(archive.runtime.store.local_path(key) or key)
                  .MediaStorageSOPInstanceUID)
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

    if _wado_instance_route(served):
        for uid in acked[:: max(len(acked) // 10, 1)]:
            instance = indexed[uid]
            part10 = _wado_instance(served, instance.study_instance_uid,
                                    instance.series_instance_uid, uid)
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


@pytest.fixture(autouse=True)
def _enough_files(tmp_path: Path) -> None:
    """Keep the slices' folder to the study alone (storescu sends the folder again)."""
    (tmp_path / "ct").mkdir()
