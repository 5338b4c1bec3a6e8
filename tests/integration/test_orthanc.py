"""Orthanc, a PACS no one here wrote, pushes studies to telerad with C-STORE."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.filereader import read_file_meta_info

from telerad.dicom.synthetic import SyntheticStudy, write_study
from telerad.testing import samples
from telerad.testing.archive import file_dataset, open_archive, wait_for_study_status
from telerad.testing.peers import Orthanc, storescp
from tests.conftest import Served

pytestmark = [
    pytest.mark.peers,
    pytest.mark.skipif(not Orthanc.available(), reason="Orthanc with its DICOMweb plugin"),
]

#: A real file of each syntax goes along with the synthetic CT; Orthanc sends each in its own.
SYNTAXES = list(samples.REQUIRED_TRANSFER_SYNTAXES)


def _sop_instance_uid(path: Path) -> str:
    return str(read_file_meta_info(path).MediaStorageSOPInstanceUID)


def test_orthanc_pushes_studies_to_telerad(served: Served, tmp_path: Path) -> None:
    site_id = int(served.server.command("site", "add", "Orthanc Hospital",
                                        "--ae-title", "ORTHANC"))
    study = SyntheticStudy(slices=12, rows=128, columns=128, accession_number="ORTH001")
    paths = write_study(study, tmp_path / "ct")
    real = list(samples.distinct_instances(
        samples.valid_instances(), SYNTAXES, taken=[_sop_instance_uid(p) for p in paths],
    ).values())
    have = {r.transfer_syntax_uid for r in real}
    real += [samples.make_with_dcmtk(ts, tmp_path / "made") for ts in SYNTAXES if ts not in have]
    assert {r.transfer_syntax_uid for r in real} == set(SYNTAXES)
    sent = {_sop_instance_uid(p): p for p in paths} | {s.sop_instance_uid: s.path for s in real}

    # The witness accepts each file's own syntax (telerad accepts them all), so that Orthanc
    # sends the same bytes to both, never transcoding for one of them.
    synthetic = [samples.describe(path, "synthetic") for path in paths]
    scp_config = samples.storescp_profile(
        [*real, *[d for d in synthetic if d is not None]], tmp_path / "storescp.cfg")
    assert None not in synthetic
    with storescp(tmp_path / "witness", extra=["+B", "-xf", *map(str, scp_config)],
                  keep=True) as witness_port:
        peer = Orthanc(tmp_path / "orthanc", aet="ORTHANC", modalities={
            "telerad": (served.server.ae_title, served.server.dicom_port),
            "witness": ("STORESCP", witness_port),
        })
        with peer:
            assert peer.request("POST", "/modalities/telerad/echo", {}) is not None  # C-ECHO
            answers = [peer.upload(path.read_bytes()) for path in sent.values()]
            assert {a["Status"] for a in answers} == {"Success"}
            resources = [a["ID"] for a in answers]
            for modality in ("telerad", "witness"):
                job = peer.request("POST", f"/modalities/{modality}/store",
                                   {"Resources": resources, "Synchronous": True})
                assert isinstance(job, dict), job
                assert job.get("FailedInstancesCount") == 0, (job, peer.log()[-3000:])
                assert job.get("InstancesCount") == len(sent), job

    # Orthanc re-encodes what it sends (dcmtk drops group lengths): the witness, dcmtk's
    # storescp in bit-preserving mode, holds the bytes that went over the wire.
    witnessed = {_sop_instance_uid(p): p for p in (tmp_path / "witness").iterdir()}
    assert set(witnessed) == set(sent)

    complete = wait_for_study_status(served.server, served.token, study.study_instance_uid)
    assert complete["number_of_instances"] == len(paths)
    assert complete["site_id"] == site_id != served.site_id  # the sender's site
    with open_archive(served.server) as archive:
        stored = archive.instances()
        assert set(stored) == set(sent)
        for uid, path in sent.items():
            instance = stored[uid]
            assert (instance.origin, instance.source_ae_title) == ("dicom", "ORTHANC")
            assert instance.transfer_syntax_uid == str(read_file_meta_info(path).TransferSyntaxUID)
            assert archive.dataset(instance.blob_key) == file_dataset(witnessed[uid]), path.name
        # What needs no re-encoding comes through untouched: the synthetic CT.
        for path in paths:
            assert archive.dataset(stored[_sop_instance_uid(path)].blob_key) == \
                file_dataset(path)
