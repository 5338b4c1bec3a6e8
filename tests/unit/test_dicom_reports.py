"""The SR and Encapsulated PDF telerad sends to the hospital PACS (PS3.3 §A.35.2, §A.45.1):
every object is written to Part-10 bytes and read back with pydicom before it is checked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import warnings
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import EncapsulatedPDFStorage, EnhancedSRStorage, ExplicitVRLittleEndian

from telerad.dicom import reports

PARIS = ZoneInfo("Europe/Paris")
SIGNED = dt.datetime(2026, 1, 12, 10, 32, 5, 123456, tzinfo=PARIS)  # CET, UTC+1
STUDY_UID = "1.2.826.0.1.3680043.8.498.77.1"
SR_SERIES, SR_UID = "1.2.826.0.1.3680043.8.498.77.1.9901", "1.2.826.0.1.3680043.8.498.77.1.9901.2"
PDF_SERIES, PDF_UID = "1.2.826.0.1.3680043.8.498.77.1.9902", "1.2.826.0.1.3680043.8.498.77.1.9902.2"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"  # odd length

STUDY = reports.StudyContext(
    patient_id="IPP778899", issuer_of_patient_id="CHCARC", patient_name="DUPRÉ^Hélène",
    patient_birth_date="19500312", patient_sex="F", study_instance_uid=STUDY_UID,
    accession_number="CAR26-0042", study_date="20260112", study_time="095012",
    study_id="CT4521", study_description="TDM crâne sans injection",
    referring_physician_name="DURAND^Jean", institution_name="CH de Carcassonne",
)
CONTENT = reports.ReportContent(
    title="Scanner cérébral sans injection",
    sections=(("Indication", "Chute sous anticoagulant : hématome ?"),
              ("Technique", "Acquisition hélicoïdale sans injection."),
              ("Résultats", "Pas d'hémorragie intracrânienne.\nPas d'effet de masse."),
              ("Conclusion", "Examen sans anomalie.")),
    final=True, signer_name="MARTIN^Paul", signer_organization="Téléradiologie Sud",
    signed_at=SIGNED,
)


def study(**changes: Any) -> reports.StudyContext:
    return dataclasses.replace(STUDY, **changes)


def content(**changes: Any) -> reports.ReportContent:
    return dataclasses.replace(CONTENT, **changes)


def read(data: bytes) -> Dataset:
    """Part-10 bytes back to a dataset, every value decoded now."""
    ds = dcmread(io.BytesIO(data))
    for element in ds.iterall():
        _ = element.value
    return ds


def sr_bytes(ctx: reports.StudyContext = STUDY, body: reports.ReportContent = CONTENT,
             **kwargs: Any) -> bytes:
    kwargs = {"series_instance_uid": SR_SERIES, "sop_instance_uid": SR_UID, **kwargs}
    return reports.to_bytes(reports.structured_report(ctx, body, **kwargs))


def pdf_bytes(ctx: reports.StudyContext = STUDY, **kwargs: Any) -> bytes:
    kwargs = {"pdf": PDF, "title": "Compte rendu : scanner cérébral", "signed_at": SIGNED,
              "series_instance_uid": PDF_SERIES, "sop_instance_uid": PDF_UID, **kwargs}
    return reports.to_bytes(reports.encapsulated_pdf(ctx, **kwargs))


def code(item: Dataset) -> tuple[str, str, str]:
    return item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning


def sections(ds: Dataset) -> list[tuple[tuple[str, str, str], tuple[str, str, str], str]]:
    """(heading code, element code, text) of each section CONTAINER of the root."""
    return [(code(item.ConceptNameCodeSequence[0]),
             code(item.ContentSequence[0].ConceptNameCodeSequence[0]),
             item.ContentSequence[0].TextValue)
            for item in ds.ContentSequence if item.ValueType == "CONTAINER"]


def patient_and_study(ds: Dataset) -> tuple[Any, ...]:
    return (ds.PatientName, ds.PatientID, ds.IssuerOfPatientID, ds.PatientBirthDate,
            ds.PatientSex, ds.StudyInstanceUID, ds.AccessionNumber, ds.StudyDate, ds.StudyTime,
            ds.StudyID, ds.StudyDescription, ds.ReferringPhysicianName, ds.InstitutionName)


EXPECTED_PATIENT_AND_STUDY = (
    "DUPRÉ^Hélène", "IPP778899", "CHCARC", "19500312", "F", STUDY_UID, "CAR26-0042",
    "20260112", "095012", "CT4521", "TDM crâne sans injection", "DURAND^Jean",
    "CH de Carcassonne")


# -- the Structured Report ------------------------------------------------------------------


def test_final_sr_read_back_is_a_signed_tid_2000_report_in_the_study() -> None:
    ds = read(sr_bytes())
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID == SR_UID
    assert (ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID) == (
        EnhancedSRStorage, SR_UID, SR_SERIES)
    assert (ds.Modality, ds.SeriesNumber, ds.InstanceNumber) == ("SR", 9901, 1)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.Manufacturer == "telerad"
    assert patient_and_study(ds) == EXPECTED_PATIENT_AND_STUDY
    assert ds.PatientName.family_name == "DUPRÉ"
    # PS3.3 §C.17.2: signed
    assert (ds.CompletionFlag, ds.VerificationFlag, ds.PreliminaryFlag) == (
        "COMPLETE", "VERIFIED", "FINAL")
    (observer,) = ds.VerifyingObserverSequence
    assert observer.VerifyingObserverName == "MARTIN^Paul"
    assert observer.VerifyingOrganization == "Téléradiologie Sud"
    assert observer.VerificationDateTime == "20260112103205+0100"
    assert (ds.ContentDate, ds.ContentTime, ds.TimezoneOffsetFromUTC) == (
        "20260112", "103205", "+0100")
    assert (ds.InstanceCreationDate, ds.InstanceCreationTime) == ("20260112", "103205")
    assert "ContributingEquipmentSequence" not in ds
    assert "CurrentRequestedProcedureEvidenceSequence" not in ds  # no evidence given
    assert "PredecessorDocumentsSequence" not in ds
    # TID 2000 root, its language, title and observer
    assert code(ds.ConceptNameCodeSequence[0]) == ("18748-4", "LN", "Diagnostic Imaging Report")
    assert ds.ContinuityOfContent == "SEPARATE"
    template = ds.ContentTemplateSequence[0]
    assert (template.MappingResource, template.TemplateIdentifier) == ("DCMR", "2000")
    language, title, observer_type, name, organization = list(ds.ContentSequence)[:5]
    assert language.RelationshipType == "HAS CONCEPT MOD"
    assert code(language.ConceptCodeSequence[0]) == ("fr", "RFC5646", "French")
    assert code(title.ConceptNameCodeSequence[0])[0] == "121050"
    assert title.TextValue == "Scanner cérébral sans injection"
    assert code(observer_type.ConceptCodeSequence[0]) == ("121006", "DCM", "Person")
    assert (name.RelationshipType, name.PersonName) == ("HAS OBS CONTEXT", "MARTIN^Paul")
    assert organization.TextValue == "Téléradiologie Sud"
    # CID 7001 headings, CID 7002 elements, texts in order
    assert sections(ds) == [
        (("18785-6", "LN", "Indications for Procedure"), ("55115-0", "LN", "Request"),
         "Chute sous anticoagulant : hématome ?"),
        (("55111-9", "LN", "Current Procedure Descriptions"),
         ("121065", "DCM", "Procedure Description"), "Acquisition hélicoïdale sans injection."),
        (("59776-5", "LN", "Findings"), ("121071", "DCM", "Finding"),
         "Pas d'hémorragie intracrânienne.\nPas d'effet de masse."),
        (("55110-1", "LN", "Conclusions"), ("121077", "DCM", "Conclusion"),
         "Examen sans anomalie."),
    ]
    assert "CodingSchemeIdentificationSequence" not in ds  # no private code used
    (request,) = ds.ReferencedRequestSequence
    assert (request.StudyInstanceUID, request.AccessionNumber) == (STUDY_UID, "CAR26-0042")


def test_preliminary_sr_is_partial_and_unverified_with_no_verifier() -> None:
    ds = read(sr_bytes(body=content(final=False)))
    assert (ds.CompletionFlag, ds.VerificationFlag, ds.PreliminaryFlag) == (
        "PARTIAL", "UNVERIFIED", "PRELIMINARY")
    assert "VerifyingObserverSequence" not in ds
    observer = [item for item in ds.ContentSequence if item.ValueType == "PNAME"]
    assert [item.PersonName for item in observer] == ["MARTIN^Paul"]  # still its author


def test_final_after_preliminary_names_it_as_predecessor_in_the_same_series() -> None:
    previous = SR_UID[:-1] + "1"
    ds = read(sr_bytes(instance_number=2, predecessor_sop_instance_uid=previous))
    (item,) = ds.PredecessorDocumentsSequence
    assert item.StudyInstanceUID == STUDY_UID
    (series,) = item.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == SR_SERIES
    (sop,) = series.ReferencedSOPSequence
    assert (sop.ReferencedSOPClassUID, sop.ReferencedSOPInstanceUID) == (
        EnhancedSRStorage, previous)
    assert ds.InstanceNumber == 2


def test_addendum_names_its_predecessor_in_another_series_and_keeps_the_signed_text() -> None:
    addendum = content(sections=(*CONTENT.sections, ("Addendum", "Complément : pas de fracture.")))
    ds = read(sr_bytes(body=addendum, predecessor_sop_instance_uid="1.2.3.4.5",
                       predecessor_series_instance_uid="1.2.3.4"))
    series = ds.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == "1.2.3.4"
    assert series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == "1.2.3.4.5"
    assert [text for _, _, text in sections(ds)][:4] == [text for _, text in CONTENT.sections]
    assert sections(ds)[-1] == (("55107-7", "LN", "Addendum"), ("55107-7", "LN", "Addendum"),
                                "Complément : pas de fracture.")


def test_evidence_lists_the_images_once_grouped_by_series() -> None:
    ct = "1.2.840.10008.5.1.4.1.1.2"
    images = [reports.InstanceReference(series_instance_uid=f"1.2.3.{s}",
                                        sop_instance_uid=f"1.2.3.{s}.{i}", sop_class_uid=ct)
              for s, i in ((1, 1), (2, 1), (1, 2), (1, 1))]
    ds = read(sr_bytes(evidence=images))
    (item,) = ds.CurrentRequestedProcedureEvidenceSequence
    assert item.StudyInstanceUID == STUDY_UID
    assert [(s.SeriesInstanceUID, [r.ReferencedSOPInstanceUID for r in s.ReferencedSOPSequence])
            for s in item.ReferencedSeriesSequence] == [
        ("1.2.3.1", ["1.2.3.1.1", "1.2.3.1.2"]), ("1.2.3.2", ["1.2.3.2.1"])]


@pytest.mark.parametrize(("heading", "expected"), [
    ("Résultats", "59776-5"), ("RESULTATS :", "59776-5"), ("Findings", "59776-5"),
    ("Indications", "18785-6"), ("Renseignements cliniques", "55752-0"),
    ("Comparaison", "18834-2"), ("Conduite à tenir", "18783-1"), ("Impression", "19005-8"),
    ("Dosimétrie", "73569-6"), ("Histoire clinique", "11329-0"), ("Technique", "55111-9"),
])
def test_headings_are_recognised_in_french_and_english(heading: str, expected: str) -> None:
    assert reports.heading_codes(heading)[0].value == expected
    assert reports.heading_codes(heading)[0].scheme_designator == "LN"


def test_a_heading_cid_7001_lacks_gets_a_stable_declared_private_code() -> None:
    heading, element = reports.heading_codes("Avis neurochirurgical")
    assert heading == element
    assert heading.scheme_designator == "99TELERAD"
    assert heading.meaning == "Avis neurochirurgical"
    assert len(heading.value) <= 16  # SH
    assert reports.heading_codes(" avis  NEUROCHIRURGICAL ")[0].value == heading.value
    assert reports.heading_codes("Avis radiothérapeute")[0].value != heading.value
    ds = read(sr_bytes(body=content(sections=(("Avis neurochirurgical", "Pas d'indication."),))))
    assert sections(ds) == [((heading.value, "99TELERAD", "Avis neurochirurgical"),
                             (heading.value, "99TELERAD", "Avis neurochirurgical"),
                             "Pas d'indication.")]
    (scheme,) = ds.CodingSchemeIdentificationSequence
    assert scheme.CodingSchemeDesignator == "99TELERAD"


def test_backslashes_and_line_breaks_stay_out_of_single_valued_strings() -> None:
    body = content(title="Scanner C1\\C2\ncervical",
                   sections=(("Avis\\conseil", "Texte libre \\ avec barre."),))
    ds = read(sr_bytes(body=body))
    assert ds.SeriesDescription == "Scanner C1 C2 cervical"  # LO: one value
    assert sections(ds)[0][0][2] == "Avis conseil"
    assert sections(ds)[0][2] == "Texte libre \\ avec barre."  # UT keeps it (PS3.5 §6.2)
    pdf = read(pdf_bytes(title="Scanner C1\\C2"))
    assert (pdf.SeriesDescription, pdf.DocumentTitle) == ("Scanner C1 C2", "Scanner C1\\C2")


def test_blank_sections_are_left_out_and_texts_trimmed() -> None:
    body = content(sections=(("Comparaison", "  \n"), ("Résultats", "  Normal.\n")))
    assert [text for _, _, text in sections(read(sr_bytes(body=body)))] == ["Normal."]


def test_empty_optional_fields_are_type_2_empty_and_optional_modules_absent() -> None:
    bare = reports.StudyContext(patient_id="P1", patient_name="", study_instance_uid=STUDY_UID)
    for ds in (read(sr_bytes(bare)), read(pdf_bytes(bare))):
        for keyword in ("PatientName", "PatientBirthDate", "PatientSex", "StudyDate",
                        "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"):
            assert keyword in ds, keyword
            assert ds[keyword].value in ("", None), keyword
        for keyword in ("IssuerOfPatientID", "StudyDescription", "InstitutionName",
                        "ReferencedRequestSequence"):
            assert keyword not in ds, keyword


def test_single_component_names_are_written_without_warning_or_change() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # highdicom warns with the name in the message
        ds = read(sr_bytes(study(patient_name="DUPRÉ"), content(signer_name="MARTIN")))
    assert ds.PatientName == "DUPRÉ"  # the hospital's spelling, untouched
    assert ds.VerifyingObserverSequence[0].VerifyingObserverName == "MARTIN^"


def test_same_inputs_give_the_same_bytes() -> None:
    assert sr_bytes() == sr_bytes()
    assert pdf_bytes() == pdf_bytes()
    assert sr_bytes() != sr_bytes(body=content(signed_at=SIGNED + dt.timedelta(seconds=1)))


def test_signed_at_is_written_in_its_own_zone() -> None:
    utc = read(sr_bytes(body=content(signed_at=SIGNED.astimezone(dt.UTC))))
    assert utc.VerifyingObserverSequence[0].VerificationDateTime == "20260112093205+0000"
    assert (utc.ContentTime, utc.TimezoneOffsetFromUTC) == ("093205", "+0000")


@settings(max_examples=20, deadline=None)
@given(st.text(st.characters(categories=("L", "N", "P", "Zs"), exclude_characters="\\"),
               min_size=1, max_size=200).filter(str.strip))
def test_any_text_survives_the_round_trip(text: str) -> None:
    ds = read(sr_bytes(body=content(sections=(("Résultats", text),))))
    assert sections(ds)[0][2] == text.strip()


@pytest.mark.parametrize(("changes", "message"), [
    ({"signed_at": dt.datetime(2026, 1, 12, 10, 32)}, "timezone-aware"),
    ({"language": "klingon"}, "language"),
    ({"sections": (("Résultats", " "),)}, "at least one section"),
    ({"sections": ((" ", "Normal."),)}, "heading"),
    ({"signer_name": "^"}, "signer_name"),
    ({"signer_organization": ""}, "signer_organization"),
    ({"title": ""}, "title"),
])
def test_invalid_content_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        content(**changes)


@pytest.mark.parametrize(("changes", "message"), [
    ({"study_instance_uid": "1.2.03"}, "study_instance_uid"),
    ({"patient_sex": "X"}, "patient_sex"),
    ({"patient_birth_date": "1950-03-12"}, "patient_birth_date"),
    ({"study_time": "9h50"}, "study_time"),
    ({"accession_number": "A" * 17}, "accession_number"),
    ({"patient_id": "P\\1"}, "patient_id"),
    ({"patient_name": "DUPRÉ\nHélène"}, "patient_name"),
])
def test_invalid_study_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        study(**changes)


def test_invalid_references_are_refused() -> None:
    with pytest.raises(ValueError, match="own predecessor"):
        sr_bytes(predecessor_sop_instance_uid=SR_UID)
    with pytest.raises(ValueError, match="without predecessor_sop_instance_uid"):
        sr_bytes(predecessor_series_instance_uid=SR_SERIES)
    with pytest.raises(ValueError, match="sop_instance_uid"):
        sr_bytes(sop_instance_uid="not-a-uid")


# -- the Encapsulated PDF ------------------------------------------------------------------


def test_encapsulated_pdf_read_back_holds_the_pdf_in_the_study() -> None:
    ds = read(pdf_bytes())
    assert ds.file_meta.MediaStorageSOPClassUID == EncapsulatedPDFStorage
    assert (ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID) == (
        EncapsulatedPDFStorage, PDF_UID, PDF_SERIES)
    assert (ds.Modality, ds.ConversionType, ds.SeriesNumber, ds.InstanceNumber) == (
        "DOC", "WSD", 9902, 1)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.Manufacturer == "telerad"
    assert patient_and_study(ds) == EXPECTED_PATIENT_AND_STUDY
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.BurnedInAnnotation == "YES"
    assert ds.DocumentTitle == "Compte rendu : scanner cérébral"
    assert code(ds.ConceptNameCodeSequence[0]) == ("18748-4", "LN", "Diagnostic Imaging Report")
    assert (ds.ContentDate, ds.ContentTime, ds.AcquisitionDateTime) == (
        "20260112", "103205", "20260112103205+0100")
    # odd length: one NUL pads it (PS3.5 §6.2), the length says where the PDF ends
    assert len(PDF) % 2 == 1
    assert ds.EncapsulatedDocument == PDF + b"\x00"
    assert ds.EncapsulatedDocument[:ds.EncapsulatedDocumentLength] == PDF


def test_an_even_length_pdf_is_not_padded() -> None:
    even = PDF + b"\n"
    ds = read(pdf_bytes(pdf=even))
    assert (ds.EncapsulatedDocument, ds.EncapsulatedDocumentLength) == (even, len(even))


def test_invalid_pdf_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="not a PDF"):
        pdf_bytes(pdf=b"<html>")
    with pytest.raises(ValueError, match="timezone-aware"):
        pdf_bytes(signed_at=dt.datetime(2026, 1, 12))
    with pytest.raises(ValueError, match="title"):
        pdf_bytes(title=" ")
