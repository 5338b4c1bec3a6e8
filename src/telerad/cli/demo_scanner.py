"""The scanners of ``telerad demo``'s hospitals: the synthetic CT study made for a validated
request, as a scanner that read telerad's Modality Worklist makes it (the request's Study
Instance UID, accession number and patient), with the series its protocol expects; and its
sending over DICOM C-STORE."""

from __future__ import annotations

import datetime as dt
import json
import threading

from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from telerad.cli.demo_world import PARIS
from telerad.dicom.synthetic import UID_PREFIX, SyntheticStudy, instance
from telerad.errors import StorageFailure
from telerad.gateway.scu import send_datasets
from telerad.workflow.exams.models import Exam
from telerad.workflow.requests.models import Protocol

#: Small images: a study of 30 is sent in well under a second.
MATRIX = 256
BODY_PART = {"CT_CTPA": "CHEST", "CT_ABDO_PELVIS": "ABDOMEN", "CT_TRAUMA": "WHOLEBODY"}


def synthetic_study(exam: Exam, protocol: Protocol | None, *, institution: str, slices: int,
                    taken: dt.datetime) -> list[Dataset]:
    """The synthetic CT the scanner sends for ``exam``: the series its protocol expects
    (their Series Descriptions name them, so the exam completes without waiting for one
    missing), ``slices`` images in all, on the Study Instance UID, accession number and
    patient the Modality Worklist gave the scanner."""
    expected = [str(s) for s in json.loads(protocol.expected_series)] if protocol else []
    names = expected or ["axial"]
    study_uid = exam.study_instance_uid or generate_uid(UID_PREFIX)
    local = taken.astimezone(PARIS).replace(tzinfo=None, microsecond=0)
    datasets: list[Dataset] = []
    for number, name in enumerate(names, start=1):
        count = slices // len(names) + (number <= slices % len(names))
        study = SyntheticStudy(
            slices=count, rows=MATRIX, columns=MATRIX, patient_id=exam.patient_id,
            patient_name=exam.patient_name, accession_number=exam.accession_number or "",
            study_description=(protocol.name if protocol else exam.exam_asked)[:64],
            series_description=f"{name.upper()} 2.5mm", study_instance_uid=study_uid,
            series_instance_uid=generate_uid(UID_PREFIX, entropy_srcs=[study_uid, name]),
            study_datetime=local, institution_name=institution, seed=exam.id)
        for index in range(count):
            ds = instance(study, index)
            ds.SeriesNumber = number
            ds.PatientSex = exam.patient_sex or "O"
            ds.PatientBirthDate = exam.patient_birth_date
            ds.BodyPartExamined = BODY_PART.get(exam.protocol_code or "", "HEAD")
            datasets.append(ds)
    return datasets


def send_study(datasets: list[Dataset], *, host: str, port: int, calling_ae_title: str,
               called_ae_title: str, attempts: int, stopping: threading.Event
               ) -> tuple[int, int]:
    """C-STORE ``datasets`` (CT, Explicit VR Little Endian); how many were stored, and how
    many times the sending resumed. StorageFailure after ``attempts`` tries.

    An association can end mid-study (the gateway restarting, an answer lost: see
    :mod:`telerad.gateway.scu`). Like a scanner, this resends from the first image not
    confirmed (the gateway answers "already stored" for one stored but not confirmed)."""
    sent, resumed = 0, 0
    confirmed = [0]
    while sent < len(datasets):
        confirmed[0] = 0
        try:
            send_datasets(datasets[sent:], host=host, port=port,
                          calling_ae_title=calling_ae_title, called_ae_title=called_ae_title,
                          sop_class_uid=CTImageStorage, transfer_syntax_uid=ExplicitVRLittleEndian,
                          progress=lambda count: confirmed.__setitem__(0, count))
            sent = len(datasets)
        except StorageFailure:
            sent += confirmed[0]
            resumed += 1
            if resumed >= attempts or stopping.is_set():
                raise
    return sent, resumed
