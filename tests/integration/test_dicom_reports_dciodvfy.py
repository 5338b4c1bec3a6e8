"""The report objects telerad sends to the hospital PACS, checked by validators no one here
wrote: dicom3tools' ``dciodvfy`` (every module and attribute of the IOD, PS3.3 §A.35.2 and
§A.45.1) and dcmtk's ``dsrdump`` (the SR content tree and its relationship constraints).

Warnings are reviewed, not ignored: each one ``dciodvfy`` may print is listed below with why
it stays; any other fails the test.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from reportlab.pdfgen import canvas

from telerad.dicom import reports

pytestmark = [
    pytest.mark.peers,
    pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) missing"),
]

#: Warnings that are not defects of the object, and why.
ACCEPTED_WARNINGS = (
    # DICOMDIR (PS3.11) wants them; the imaged study's ID, date and time may be unknown:
    # type 2, sent empty rather than made up (the PACS files the report with the images).
    re.compile(r"needed to build DICOMDIR - Study (ID|Date|Time)$"),
    # A heading CID 7001 lacks uses telerad's private scheme (PS3.16 §8.2), which the
    # object declares in its Coding Scheme Identification Sequence; dciodvfy knows none.
    re.compile(r"Unrecognized defined term <99TELERAD> .*Coding Scheme Designator"),
)
STUDY_UID = "1.2.826.0.1.3680043.8.498.88.1"
SIGNED = dt.datetime(2026, 11, 24, 3, 12, 40, tzinfo=ZoneInfo("Europe/Paris"))
FULL = reports.StudyContext(
    patient_id="IPP778899", issuer_of_patient_id="CHCARC", patient_name="DUPRÉ^Hélène^Anaïs",
    patient_birth_date="19500312", patient_sex="F", study_instance_uid=STUDY_UID,
    accession_number="CAR26-0042", study_date="20261124", study_time="025012",
    study_id="CT4521", study_description="TDM crâne sans injection",
    referring_physician_name="DURAND^Jean", institution_name="Centre hospitalier de Carcassonne",
    requested_procedure_id="RP0042", requested_procedure_description="Scanner cérébral",
)
#: Only what must be known: every optional field empty.
BARE = reports.StudyContext(patient_id="IPP1", patient_name="", study_instance_uid=STUDY_UID)
SECTIONS = (("Indication", "Chute sous anticoagulant : hématome intracrânien ?"),
            ("Technique", "Acquisition hélicoïdale sans injection, coupes de 1 mm."),
            ("Résultats", "Pas d'hémorragie intracrânienne.\r\nPas d'effet de masse."),
            ("Conclusion", "Examen sans anomalie décelable."))


def content(*, final: bool, sections: tuple[tuple[str, str], ...] = SECTIONS,
            signer: str = "MARTIN^Paul") -> reports.ReportContent:
    return reports.ReportContent(
        title="Scanner cérébral sans injection", sections=sections, final=final,
        signer_name=signer, signer_organization="Téléradiologie Sud", signed_at=SIGNED)


def sr(name: str, number: int, ctx: reports.StudyContext, body: reports.ReportContent,
       **kwargs: Any) -> tuple[str, bytes]:
    ds = reports.structured_report(ctx, body, series_instance_uid=f"{STUDY_UID}.9901",
                                   sop_instance_uid=f"{STUDY_UID}.9901.{number}",
                                   instance_number=number, **kwargs)
    return name, reports.to_bytes(ds)


def pdf(name: str, number: int, ctx: reports.StudyContext, document: bytes) -> tuple[str, bytes]:
    ds = reports.encapsulated_pdf(ctx, pdf=document, title="Compte rendu — scanner cérébral",
                                  signed_at=SIGNED, series_instance_uid=f"{STUDY_UID}.9902",
                                  sop_instance_uid=f"{STUDY_UID}.9902.{number}",
                                  instance_number=number)
    return name, reports.to_bytes(ds)


def real_pdf() -> bytes:
    """A PDF reportlab made, of even length (so that one more byte makes it odd)."""
    out = io.BytesIO()
    page = canvas.Canvas(out, invariant=True)
    page.drawString(72, 720, "Compte rendu")
    page.save()
    document = out.getvalue()
    return document if len(document) % 2 == 0 else document + b"\n"


CT = "1.2.840.10008.5.1.4.1.1.2"
IMAGES = [reports.InstanceReference(series_instance_uid=f"{STUDY_UID}.{s}",
                                    sop_instance_uid=f"{STUDY_UID}.{s}.{i}", sop_class_uid=CT)
          for s in (2, 3) for i in (1, 2)]
ADDENDUM = (*SECTIONS, ("Addendum", "Complément : pas de fracture."),
            ("Avis neurochirurgical", "Pas d'indication opératoire."))
CASES = [
    sr("preliminary-bare", 1, BARE, content(final=False, signer="MARTIN")),
    sr("final-full", 2, FULL, content(final=True), evidence=IMAGES,
       predecessor_sop_instance_uid=f"{STUDY_UID}.9901.1"),
    sr("addendum-with-predecessor", 3, FULL, content(final=True, sections=ADDENDUM),
       evidence=IMAGES, predecessor_sop_instance_uid=f"{STUDY_UID}.9901.2"),
    sr("final-bare", 1, BARE, content(final=True)),
    pdf("pdf-full-even-length", 1, FULL, real_pdf()),
    pdf("pdf-bare-odd-length", 2, BARE, real_pdf() + b"\n"),
]


@pytest.mark.parametrize(("name", "data"), CASES, ids=[name for name, _ in CASES])
def test_dciodvfy_finds_no_error_and_no_unreviewed_warning(
    name: str, data: bytes, tmp_path: Path,
) -> None:
    path = tmp_path / f"{name}.dcm"
    path.write_bytes(data)
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60,
                         check=False)
    output = run.stdout + run.stderr
    print(output)  # shown on failure
    assert ("EnhancedSR" if name.startswith(("preliminary", "final", "addendum"))
            else "EncapsulatedPDF") in output  # the IOD it recognised
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    assert errors == []
    warnings = [line for line in output.splitlines() if line.startswith("Warning")]
    unreviewed = [line for line in warnings
                  if not any(pattern.search(line) for pattern in ACCEPTED_WARNINGS)]
    assert unreviewed == []


@pytest.mark.skipif(shutil.which("dsrdump") is None, reason="dsrdump (dcmtk) missing")
@pytest.mark.parametrize(("name", "data"), [case for case in CASES if "pdf" not in case[0]],
                         ids=[name for name, _ in CASES if "pdf" not in name])
def test_dcmtk_reads_the_sr_tree_without_error(name: str, data: bytes, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.dcm"
    path.write_bytes(data)
    run = subprocess.run(["dsrdump", str(path)],
                         capture_output=True, text=True, timeout=60, check=False)
    print(run.stdout, run.stderr)
    assert run.returncode == 0
    assert not [line for line in run.stderr.splitlines() if line.startswith(("E:", "F:"))]
    assert "Diagnostic Imaging Report" in run.stdout
    assert "Conclusions" in run.stdout
