"""Synthetic CT studies for the demo, the tests and the benchmarks.

The images are a water-filled cylinder with a few denser structures and noise, stored as
signed 16-bit Hounsfield-scaled values (RescaleIntercept -1024), written as Part-10 files in
Explicit VR Little Endian. No real patient is involved: names and ids are obviously synthetic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

#: Root for the UIDs telerad generates (pydicom's root plus a fixed arc; see PS3.5 §9).
UID_PREFIX = "1.2.826.0.1.3680043.8.498.77."


@dataclass(frozen=True, kw_only=True)
class SyntheticStudy:
    """What a synthetic CT study looks like; every field has a sensible default."""

    slices: int = 300
    rows: int = 512
    columns: int = 512
    patient_id: str = "SYN0001"
    patient_name: str = "SYNTHETIC^PATIENT"
    accession_number: str = "ACC0001"
    study_description: str = "CT HEAD WITHOUT CONTRAST"
    series_description: str = "AXIAL 1.0"
    study_instance_uid: str = field(default_factory=lambda: generate_uid(UID_PREFIX))
    series_instance_uid: str = field(default_factory=lambda: generate_uid(UID_PREFIX))
    study_datetime: dt.datetime = field(
        default_factory=lambda: dt.datetime.now().replace(microsecond=0)
    )
    institution_name: str = "Example Hospital"
    seed: int = 0


def _phantom(rows: int, columns: int, index: int, slices: int, rng: np.random.Generator) -> bytes:
    """One slice: air outside, water cylinder, a bony ring and a dense dot that moves."""
    y, x = np.ogrid[:rows, :columns]
    cy, cx = rows / 2, columns / 2
    r2 = (y - cy) ** 2 + (x - cx) ** 2
    radius = min(rows, columns) * 0.42
    img = np.zeros((rows, columns), dtype=np.int16)  # stored 0 = -1024 HU (air)
    img[r2 < radius**2] = 1024 + 40  # soft tissue
    ring = (r2 < radius**2) & (r2 > (radius * 0.92) ** 2)
    img[ring] = 1024 + 900  # bone
    t = index / max(slices - 1, 1)
    dy, dx = cy + radius * 0.4 * np.sin(6.28 * t), cx + radius * 0.4 * np.cos(6.28 * t)
    img[(y - dy) ** 2 + (x - dx) ** 2 < (radius * 0.08) ** 2] = 1024 + 300
    noise = rng.integers(-12, 12, size=(rows, columns), dtype=np.int16)
    return (img + noise).astype("<i2").tobytes()


def instance(study: SyntheticStudy, index: int) -> Dataset:
    """The ``index``-th slice (0-based) of ``study`` as a Part-10-ready dataset."""
    rng = np.random.default_rng(study.seed * 100_003 + index)
    sop_instance_uid = generate_uid(
        UID_PREFIX, entropy_srcs=[study.series_instance_uid, str(index)]
    )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_instance_uid
    date, time = study.study_datetime.strftime("%Y%m%d"), study.study_datetime.strftime("%H%M%S")
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = time
    ds.AccessionNumber = study.accession_number
    ds.Modality = "CT"
    ds.Manufacturer = "telerad synthetic"
    ds.InstitutionName = study.institution_name
    ds.ReferringPhysicianName = "EMERGENCY^DOCTOR"
    ds.StudyDescription = study.study_description
    ds.SeriesDescription = study.series_description
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.BodyPartExamined = "HEAD"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.StudyInstanceUID = study.study_instance_uid
    ds.SeriesInstanceUID = study.series_instance_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [-125.0, -125.0, float(-index)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.FrameOfReferenceUID = generate_uid(UID_PREFIX, entropy_srcs=[study.study_instance_uid])
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = float(-index)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = study.rows
    ds.Columns = study.columns
    ds.PixelSpacing = [250 / study.rows, 250 / study.columns]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "80"
    ds.PixelData = _phantom(study.rows, study.columns, index, study.slices, rng)
    return ds


def instances(study: SyntheticStudy) -> Iterator[Dataset]:
    """Every slice of ``study`` in acquisition order."""
    for index in range(study.slices):
        yield instance(study, index)


def write_study(study: SyntheticStudy, folder: Path) -> list[Path]:
    """Write ``study`` as Part-10 files into ``folder``; return their paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, ds in enumerate(instances(study)):
        path = folder / f"CT{index + 1:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
