"""Orthanc, a PACS no one here wrote, pushes a study to telerad with C-STORE."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.filereader import read_file_meta_info

from telerad.dicom.synthetic import SyntheticStudy, write_study
from telerad.testing.archive import file_dataset, open_archive, wait_for_study_status
from telerad.testing.peers import Orthanc
from tests.conftest import Served

pytestmark = [
    pytest.mark.peers,
    pytest.mark.skipif(not Orthanc.available(), reason="Orthanc with its DICOMweb plugin"),
]


def test_orthanc_pushes_a_study_to_telerad(served: Served, tmp_path: Path) -> None:
    served.server.command("site", "add", "Orthanc Hospital", "--ae-title", "ORTHANC")
    study = SyntheticStudy(slices=12, rows=128, columns=128, accession_number="ORTH001")
    paths = write_study(study, tmp_path / "ct")
    peer = Orthanc(tmp_path / "orthanc", aet="ORTHANC",
                   modalities={"telerad": (served.server.ae_title, served.server.dicom_port)})
    with peer:
        answers = [peer.upload(path.read_bytes()) for path in paths]
        assert {a["Status"] for a in answers} == {"Success"}
        (orthanc_study,) = {a["ParentStudy"] for a in answers}
        job = peer.request("POST", "/modalities/telerad/store",
                           {"Resources": [orthanc_study], "Synchronous": True})
        assert isinstance(job, dict), job
        assert job.get("FailedInstancesCount", 0) == 0, (job, peer.log()[-3000:])
        assert job.get("InstancesCount") == len(paths), job

    complete = wait_for_study_status(served.server, served.token, study.study_instance_uid)
    assert complete["number_of_instances"] == len(paths)
    assert complete["site_id"] != served.site_id  # Orthanc Hospital's, not Test Hospital's
    with open_archive(served.server) as archive:
        stored = archive.instances()
        assert len(stored) == len(paths)
        for path in paths:
            instance = stored[str(read_file_meta_info(path).MediaStorageSOPInstanceUID)]
            assert (instance.origin, instance.source_ae_title) == ("dicom", "ORTHANC")
            assert instance.transfer_syntax_uid == str(read_file_meta_info(path).TransferSyntaxUID)
            assert archive.dataset(instance.blob_key) == file_dataset(path), path.name
