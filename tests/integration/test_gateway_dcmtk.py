"""The DICOM gateway against peers no one here wrote: dcmtk's echoscu, storescu and storescp,
and pynetdicom as a raw SCU for input no well-behaved peer sends.

What is stored must be what was sent: the Transfer Syntax the peer used, and the dataset
bytes unchanged (only the File Meta Information is telerad's own, PS3.10 §7.1).
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID, ExplicitVRLittleEndian

from telerad.dicom.synthetic import SyntheticStudy, write_study
from telerad.testing import samples
from telerad.testing.archive import (
    api_get,
    dataset_bytes,
    file_dataset,
    open_archive,
    wait_for_study_status,
)
from telerad.testing.dimse import (
    garbage,
    part10_file,
    raw_association,
    send_part_of_store,
    store_status,
)
from telerad.testing.peers import echoscu, storescp, storescu
from tests.conftest import SENDER_AE, Served

pytestmark = [
    pytest.mark.peers,
    pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk is not installed"),
]


def _is_failure(status: int | None) -> bool:
    """A C-STORE failure status (PS3.4 B.2.3: Axxx refused or error, Cxxx cannot
    understand; PS3.7 C.4: the general 01xx and 02xx failures)."""
    return status is not None and (status >> 12 in (0xA, 0xC) or 0x0100 <= status <= 0x02FF)


# -- association ---------------------------------------------------------------------------


def test_echoscu_succeeds(served: Served) -> None:
    result = echoscu(port=served.server.dicom_port, calling=SENDER_AE)
    assert result.returncode == 0, result.stderr


def test_unknown_calling_ae_title_is_refused_at_association(served: Served, tmp_path: Path
                                                              ) -> None:
    port = served.server.dicom_port
    echo = echoscu(port=port, calling="NOBODY")
    assert echo.returncode != 0
    assert "Calling AE Title Not Recognized" in echo.stderr
    paths = write_study(SyntheticStudy(slices=2, rows=32, columns=32), tmp_path / "ct")
    store = storescu(paths, port=port, calling="NOBODY")
    assert store.returncode != 0
    assert "Calling AE Title Not Recognized" in store.stderr
    with open_archive(served.server) as archive:
        assert archive.instances() == {}
        assert archive.blob_keys() == set()
        assert archive.staged_files() == []


def test_wrong_called_ae_title_is_refused(served: Served, tmp_path: Path) -> None:
    port = served.server.dicom_port
    echo = echoscu(port=port, calling=SENDER_AE, called="NOT_TELERAD")
    assert echo.returncode != 0
    assert "Called AE Title Not Recognized" in echo.stderr
    paths = write_study(SyntheticStudy(slices=2, rows=32, columns=32), tmp_path / "ct")
    store = storescu(paths, port=port, calling=SENDER_AE, called="NOT_TELERAD")
    assert store.returncode != 0
    assert "Called AE Title Not Recognized" in store.stderr
    with open_archive(served.server) as archive:
        assert archive.instances() == {}
        assert archive.blob_keys() == set()


# -- a whole CT study ------------------------------------------------------------------------


def test_storescu_sends_a_ct_study(served: Served, tmp_path: Path) -> None:
    study = SyntheticStudy(slices=250, rows=256, columns=256, accession_number="ACC250")
    paths = write_study(study, tmp_path / "ct")
    result = storescu([tmp_path / "ct"], port=served.server.dicom_port, calling=SENDER_AE)
    assert result.returncode == 0, result.stderr[-2000:]

    with open_archive(served.server) as archive:
        stored = archive.instances()
        assert len(stored) == 250
        for path in paths:
            sop_instance_uid = str(read_file_meta_info(path).MediaStorageSOPInstanceUID)
            instance = stored[sop_instance_uid]
            assert instance.study_instance_uid == study.study_instance_uid
            assert instance.series_instance_uid == study.series_instance_uid
            assert instance.transfer_syntax_uid == ExplicitVRLittleEndian
            assert (instance.origin, instance.source_ae_title) == ("dicom", SENDER_AE)
            assert archive.dataset(instance.blob_key) == file_dataset(path), path.name
        assert len(archive.blob_keys()) == 250
        assert archive.staged_files() == []

    listed = api_get(served.server, served.token, "/api/studies")
    assert isinstance(listed, list)
    assert [s["study_instance_uid"] for s in listed] == [study.study_instance_uid]
    complete = wait_for_study_status(served.server, served.token, study.study_instance_uid)
    assert complete["site_id"] == served.site_id
    assert complete["accession_number"] == "ACC250"
    assert complete["modalities_in_study"] == ["CT"]
    assert (complete["number_of_series"], complete["number_of_instances"]) == (1, 250)
    # Complete only once nothing arrived for the stable age (1 s in tests).
    last = dt.datetime.fromisoformat(str(complete["last_instance_at"]))
    completed = dt.datetime.fromisoformat(str(complete["completed_at"]))
    assert completed - last >= dt.timedelta(seconds=1)


# -- every transfer syntax, stored as received --------------------------------------------


def _transfer_syntax_selection(folder: Path) -> list[samples.SampleFile]:
    """One real file per required syntax (all with distinct SOP Instance UIDs), then every
    other valid test file whose SOP Instance UID is still free. Retired SOP classes are
    tested on their own (test_retired_storage_sop_class_is_accepted)."""
    candidates = [s for s in samples.valid_instances() if not UID(s.sop_class_uid).is_retired]
    required = list(samples.REQUIRED_TRANSFER_SYNTAXES)
    chosen = samples.distinct_instances(candidates, required)
    for ts in required:
        if ts not in chosen:  # no whole instance of it in pydicom's data: dcmtk makes one
            chosen[ts] = samples.make_with_dcmtk(ts, folder)
    assert set(chosen) == set(required), "a required transfer syntax has no test file"
    assert {s.transfer_syntax_uid for s in chosen.values()} == set(required)
    selection = list(chosen.values())
    used = {s.sop_instance_uid for s in selection}
    for sample in candidates:
        if sample.sop_instance_uid not in used:
            used.add(sample.sop_instance_uid)
            selection.append(sample)
    return selection


def _received_by(folder: Path) -> dict[str, bytes]:
    """Dataset bytes of each file storescp wrote, by SOP Instance UID."""
    received = {}
    for path in folder.iterdir():
        if path.is_file():
            received[str(read_file_meta_info(path).MediaStorageSOPInstanceUID)] = \
                file_dataset(path)
    return received


def test_every_transfer_syntax_is_stored_as_storescu_sent_it(served: Served, tmp_path: Path
                                                             ) -> None:
    selection = _transfer_syntax_selection(tmp_path / "made")
    # storescu proposes each file's own (SOP Class, Transfer Syntax) and nothing else, so
    # it sends every file in its syntax, never converting it.
    config, profile = samples.storescu_profile(selection, tmp_path / "storescu.cfg")
    args = ["-nh", "-xf", str(config), profile]
    paths = [s.path for s in selection]

    result = storescu(paths, port=served.server.dicom_port, calling=SENDER_AE, extra=args)
    assert result.returncode == 0, result.stderr[-3000:]
    # dcmtk re-encodes a dataset when it sends it (group lengths dropped, ...): the witness
    # of what went over the wire is dcmtk's storescp writing it bit for bit (+B), accepting
    # exactly the same contexts.
    scp_config, scp_profile = samples.storescp_profile(selection, tmp_path / "storescp.cfg")
    with storescp(tmp_path / "witness", extra=["+B", "-xf", str(scp_config), scp_profile],
                  keep=True) as port:
        witness = storescu(paths, port=port, calling=SENDER_AE, called="STORESCP", extra=args)
    assert witness.returncode == 0, witness.stderr[-3000:]
    sent = _received_by(tmp_path / "witness")

    with open_archive(served.server) as archive:
        stored = archive.instances()
        problems = []
        for sample in selection:
            instance = stored.get(sample.sop_instance_uid)
            if instance is None:
                problems.append(f"{sample.name} ({sample.transfer_syntax_uid}): not stored")
            elif instance.transfer_syntax_uid != sample.transfer_syntax_uid:
                problems.append(f"{sample.name}: stored as {instance.transfer_syntax_uid}, "
                                f"sent as {sample.transfer_syntax_uid}")
            elif archive.dataset(instance.blob_key) != sent[sample.sop_instance_uid]:
                problems.append(f"{sample.name} ({sample.transfer_syntax_uid}): other bytes")
        assert problems == []
        assert len(stored) == len(selection)
        covered = {stored[s.sop_instance_uid].transfer_syntax_uid for s in selection}
        assert set(samples.REQUIRED_TRANSFER_SYNTAXES) <= covered


def test_every_transfer_syntax_is_stored_byte_for_byte(served: Served, tmp_path: Path) -> None:
    """pynetdicom sends each file's dataset bytes untouched: the stored dataset is the file's."""
    selection = _transfer_syntax_selection(tmp_path / "made")
    contexts = {(s.sop_class_uid, s.transfer_syntax_uid) for s in selection}
    statuses = {}
    with raw_association(served.server.dicom_port, calling=SENDER_AE,
                         contexts=contexts) as assoc:
        assert assoc.is_established
        for sample in selection:
            statuses[sample.name] = store_status(assoc, sample.path)
    assert {name: status for name, status in statuses.items() if status != 0} == {}

    with open_archive(served.server) as archive:
        stored = archive.instances()
        for sample in selection:
            instance = stored[sample.sop_instance_uid]
            assert instance.transfer_syntax_uid == sample.transfer_syntax_uid, sample.name
            assert archive.dataset(instance.blob_key) == file_dataset(sample.path), sample.name


def test_retired_storage_sop_class_is_accepted(served: Served) -> None:
    """Old ultrasound machines still send Ultrasound Image Storage (Retired), PS3.4 B.5;
    a store SCP must take it as it takes any storage SOP Class (telerad import does)."""
    retired = [s for s in samples.valid_instances() if UID(s.sop_class_uid).is_retired]
    assert retired, "pydicom's test data has no instance of a retired storage SOP class"
    sample = retired[0]
    contexts = {(sample.sop_class_uid, sample.transfer_syntax_uid)}
    with raw_association(served.server.dicom_port, calling=SENDER_AE,
                         contexts=contexts) as assoc:
        # pynetdicom aborts an association in which no context was accepted
        assert assoc.is_established, (
            f"{UID(sample.sop_class_uid).name} ({sample.sop_class_uid}) of {sample.name} "
            "refused at negotiation")
        assert store_status(assoc, sample.path) == 0x0000
    with open_archive(served.server) as archive:
        instance = archive.instances()[sample.sop_instance_uid]
        assert archive.dataset(instance.blob_key) == file_dataset(sample.path)


# -- the same instance twice -----------------------------------------------------------------


def test_duplicate_is_success_and_nothing_is_duplicated(served: Served, tmp_path: Path) -> None:
    (path,) = write_study(SyntheticStudy(slices=1, rows=64, columns=64), tmp_path / "ct")
    uid = str(read_file_meta_info(path).MediaStorageSOPInstanceUID)
    for _ in range(2):
        result = storescu([path], port=served.server.dicom_port, calling=SENDER_AE)
        assert result.returncode == 0, result.stderr
    with open_archive(served.server) as archive:
        assert archive.instance_count(uid) == 1
        (instance,) = archive.instances().values()
        assert archive.blob_keys() == {instance.blob_key}
        assert archive.dataset(instance.blob_key) == file_dataset(path)
        assert archive.conflicts() == []
        assert archive.staged_files() == []
        assert [counts[:2] for counts in archive.studies().values()] == [(1, 1)]


def test_conflict_is_refused_and_the_first_copy_kept(served: Served, tmp_path: Path) -> None:
    (path,) = write_study(SyntheticStudy(slices=1, rows=64, columns=64), tmp_path / "ct")
    ds = dcmread(path)
    changed = bytearray(ds.PixelData)
    changed[1000] ^= 0x01  # one pixel differs
    ds.PixelData = bytes(changed)
    other = tmp_path / "other.dcm"
    ds.save_as(other, enforce_file_format=True)
    uid = str(ds.SOPInstanceUID)
    first = storescu([path], port=served.server.dicom_port, calling=SENDER_AE)
    assert first.returncode == 0, first.stderr

    second = storescu([other], port=served.server.dicom_port, calling=SENDER_AE, extra=["-v"])
    assert second.returncode != 0
    assert "Status: 0x111" in second.stderr  # PS3.7 C.4: Duplicate SOP Instance

    with open_archive(served.server) as archive:
        assert archive.instance_count(uid) == 1
        (instance,) = archive.instances().values()
        assert archive.dataset(instance.blob_key) == file_dataset(path)
        conflicts = archive.conflicts()
        assert [(c_uid, ae) for c_uid, _key, ae in conflicts] == [(uid, SENDER_AE)]
        # The refused copy is kept aside for review, under its own key.
        refused_key = conflicts[0][1]
        assert refused_key != instance.blob_key
        assert archive.dataset(refused_key) == file_dataset(other)
        assert archive.blob_keys() == {instance.blob_key, refused_key}
        assert [counts[:2] for counts in archive.studies().values()] == [(1, 1)]


# -- malformed data sets over DICOM ----------------------------------------------------------


def test_malformed_data_sets_fail_and_the_association_goes_on(served: Served, tmp_path: Path
                                                              ) -> None:
    study = SyntheticStudy(slices=3, rows=128, columns=128)
    good, cut, _ = write_study(study, tmp_path / "ct")
    whole = cut.read_bytes()
    meta = read_file_meta_info(cut)
    truncated = tmp_path / "truncated.dcm"
    part10_file(truncated, sop_class_uid=str(meta.MediaStorageSOPClassUID),
                sop_instance_uid=str(meta.MediaStorageSOPInstanceUID),
                transfer_syntax_uid=ExplicitVRLittleEndian,
                dataset=dataset_bytes(whole)[: len(dataset_bytes(whole)) // 2])  # mid pixels
    nonsense = tmp_path / "garbage.dcm"
    part10_file(nonsense, sop_class_uid=str(meta.MediaStorageSOPClassUID),
                sop_instance_uid="1.2.826.0.1.3680043.8.498.77.999.1",
                transfer_syntax_uid=ExplicitVRLittleEndian, dataset=garbage(20_000))

    # A whole data set announced under another SOP Instance UID (PS3.4 B.2.3: A900).
    mismatched = tmp_path / "mismatched.dcm"
    part10_file(mismatched, sop_class_uid=str(meta.MediaStorageSOPClassUID),
                sop_instance_uid="1.2.826.0.1.3680043.8.498.77.999.2",
                transfer_syntax_uid=ExplicitVRLittleEndian, dataset=file_dataset(good))

    context = {(str(meta.MediaStorageSOPClassUID), ExplicitVRLittleEndian)}
    with raw_association(served.server.dicom_port, calling=SENDER_AE, contexts=context) as assoc:
        assert assoc.is_established
        truncated_status = store_status(assoc, truncated)
        garbage_status = store_status(assoc, nonsense)
        mismatched_status = store_status(assoc, mismatched)
        with open_archive(served.server) as archive:
            assert archive.instances() == {}
            assert archive.blob_keys() == set()
            assert archive.staged_files() == []
        good_status = store_status(assoc, good)
        assert assoc.is_established

    assert _is_failure(truncated_status), hex(truncated_status or 0)
    assert _is_failure(garbage_status), hex(garbage_status or 0)
    assert _is_failure(mismatched_status), hex(mismatched_status or 0)
    assert good_status == 0x0000
    with open_archive(served.server) as archive:
        stored = archive.instances()
        assert set(stored) == {str(read_file_meta_info(good).MediaStorageSOPInstanceUID)}
        (instance,) = stored.values()
        assert archive.dataset(instance.blob_key) == file_dataset(good)
        assert archive.blob_keys() == {instance.blob_key}


@pytest.mark.parametrize("ending", ["abort", "disconnect"])
def test_association_ending_mid_data_set_leaves_nothing(served: Served, tmp_path: Path,
                                                        ending: str) -> None:
    """A sender that aborts (A-ABORT) or vanishes (TCP closed) half-way through an image:
    nothing indexed, nothing committed, the staged part removed; the image can come again."""
    (path,) = write_study(SyntheticStudy(slices=1, rows=256, columns=256), tmp_path / "ct")
    meta = read_file_meta_info(path)
    context = {(str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID))}
    with raw_association(served.server.dicom_port, calling=SENDER_AE, contexts=context) as assoc:
        assert assoc.is_established
        send_part_of_store(assoc, path, dataset=file_dataset(path), fraction=0.6)
        with open_archive(served.server) as archive:
            _wait_until(lambda: len(archive.staged_files()) == 1)  # it is being received
        if ending == "abort":
            assoc.abort()
        else:
            assert assoc.dul.socket is not None
            assoc.dul.socket.close()
    with open_archive(served.server) as archive:
        _wait_until(lambda: archive.staged_files() == [])
        assert archive.instances() == {}
        assert archive.blob_keys() == set()

    with raw_association(served.server.dicom_port, calling=SENDER_AE, contexts=context) as assoc:
        assert store_status(assoc, path) == 0x0000
    with open_archive(served.server) as archive:
        (instance,) = archive.instances().values()
        assert archive.dataset(instance.blob_key) == file_dataset(path)


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_sigterm_with_idle_associations_stops_promptly(served: Served) -> None:
    """PACS keep associations open between sends (Orthanc for 5 s by default). SIGTERM must
    not wait for the peers to hang up: running exchanges finish, idle associations end."""
    verification = {("1.2.840.10008.1.1", "1.2.840.10008.1.2")}
    port = served.server.dicom_port
    with raw_association(port, calling=SENDER_AE, contexts=verification) as first, \
            raw_association(port, calling=SENDER_AE, contexts=verification) as second:
        assert first.is_established
        assert second.is_established
        assert first.send_c_echo().Status == second.send_c_echo().Status == 0x0000
        started = time.monotonic()
        assert served.server.stop() == 0
        took = time.monotonic() - started
    assert took < 12, f"telerad serve took {took:.1f} s to stop with two idle associations"
