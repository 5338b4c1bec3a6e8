"""The DICOM objects a report goes back to the hospital PACS as, pure: an Enhanced SR
(PS3.3 §A.35.2) and an Encapsulated PDF (PS3.3 §A.45.1), both in the exam's study.

Both take their Patient and General Study modules (PS3.3 §C.7.1.1, §C.7.2.1) from one
:class:`StudyContext`, so the PACS files them with the images. Same inputs, same bytes: the
caller gives the UIDs, and every date and time comes from ``signed_at`` (no clock and no
``generate_uid`` here), so a retried C-STORE sends the very object the PACS may already hold.

The SR content tree is PS3.16 TID 2000 "Basic Diagnostic Imaging Report": a root CONTAINER
(18748-4, LN, "Diagnostic Imaging Report") with the language (TID 1204), the report's own
title as "Equivalent Meaning of Concept Name" (TID 1210: what a viewer may show instead of
the coded title) and the radiologist as person observer (TID 1001-1003); then one CONTAINER
per section, coded from CID 7001 (its LOINC codes, which CID 7001 prefers to the older DCM
ones), holding one TEXT coded from CID 7002 (TID 2002). :func:`heading_codes` recognises
French and English headings; one CID 7001 lacks (it is a baseline group) gets a code of the
private scheme ``99TELERAD`` (PS3.16 §8.2), declared in the Coding Scheme Identification
Sequence (PS3.3 §C.12.1).

Conformance choices, stated once:

- Enhanced SR rather than Basic Text SR: highdicom builds and checks it; TID 2000 fits both.
- Final: Completion Flag COMPLETE, Verification Flag VERIFIED, Verifying Observer Sequence;
  preliminary: PARTIAL, UNVERIFIED (PS3.3 §C.17.2); the Preliminary Flag says the same.
- A report that replaces another (a final its preliminary; an addendum, which repeats the
  signed sections and adds its own, the final) names it in the Predecessor Documents
  Sequence (PS3.3 §C.17.2.1).
- Current Requested Procedure Evidence Sequence (type 1C, PS3.3 §C.17.2): the images the
  report was read from, as the caller gives them in ``evidence``, else absent. highdicom
  insists on an evidence dataset: it gets one holding only the patient and study.
- Referenced Request Sequence (type 1C): present when the study has an accession number or
  a requested procedure ID, i.e. when the report fulfils an order.
- highdicom's clock readings (instance creation, verification date and time, contributing
  equipment) are replaced or removed: they would make every retry differ.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from highdicom import sr as hd_sr
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import EncapsulatedPDFStorage, EnhancedSRStorage, ExplicitVRLittleEndian

from telerad.dicom import part10

CHARACTER_SET = "ISO_IR 192"  # UTF-8 (PS3.3 §C.12.1.1.2): French names and texts carry accents
MANUFACTURER = "telerad"
PRIVATE_SCHEME = "99TELERAD"  # a private coding scheme (PS3.16 §8.2: "99" prefix)
#: Series numbers high enough to sort report series after the scanner's.
SR_SERIES_NUMBER = 9901
PDF_SERIES_NUMBER = 9902
DIAGNOSTIC_IMAGING_REPORT = Code("18748-4", "LN", "Diagnostic Imaging Report")  # CID 7000
_EQUIVALENT_MEANING = Code("121050", "DCM", "Equivalent Meaning of Concept Name")  # TID 1210
#: CID 5000 "Language" (RFC 5646 tags) for the languages a report may be written in.
LANGUAGES = {"fr": "French", "en": "English", "de": "German", "it": "Italian",
             "es": "Spanish", "nl": "Dutch"}
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_DA = re.compile(r"\d{8}")
_TM = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")
_SEXES = frozenset({"M", "F", "O", ""})
#: (field, maximum length) of the StudyContext values in their VR (PS3.5 Table 6.2-1).
_LIMITS = (("patient_id", 64), ("issuer_of_patient_id", 64), ("accession_number", 16),
           ("study_id", 16), ("study_description", 64), ("institution_name", 64),
           ("requested_procedure_id", 16), ("requested_procedure_description", 64))
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")  # not in SH, LO, PN (PS3.5 §6.2): nor backslash


#: CID 7001 heading, CID 7002 element of its text (None: the heading's own code), and the
#: headings, French or English, lower case without accents, that name it.
_HEADING_ROWS: tuple[tuple[Code, Code | None, str], ...] = (
    (Code("11329-0", "LN", "History"), None, "history|histoire|histoire clinique|antecedents"),
    (Code("55752-0", "LN", "Clinical Information"), Code("11329-0", "LN", "History"),
     "clinical information|renseignements cliniques|contexte|contexte clinique"),
    (Code("55115-0", "LN", "Request"), None, "request|demande|question clinique"),
    (Code("18785-6", "LN", "Indications for Procedure"), Code("55115-0", "LN", "Request"),
     "indications for procedure|indication|indications|motif|motif de l examen"),
    (Code("55111-9", "LN", "Current Procedure Descriptions"),
     Code("121065", "DCM", "Procedure Description"),
     "current procedure descriptions|technique|protocole|technique d examen"),
    (Code("18834-2", "LN", "Previous Findings"), Code("121069", "DCM", "Previous Finding"),
     "previous findings|comparison|comparaison|examens anterieurs|anteriorites"),
    (Code("59776-5", "LN", "Findings"), Code("121071", "DCM", "Finding"),
     "findings|resultats|resultat|constatations|description"),
    (Code("19005-8", "LN", "Impressions"), Code("121073", "DCM", "Impression"),
     "impressions|impression|interpretation"),
    (Code("55110-1", "LN", "Conclusions"), Code("121077", "DCM", "Conclusion"),
     "conclusions|conclusion|synthese"),
    (Code("18783-1", "LN", "Recommendations"), Code("121075", "DCM", "Recommendation"),
     "recommendations|recommandations|recommandation|conduite a tenir"),
    (Code("55109-3", "LN", "Complications"),
     Code("116224001", "SCT", "Complication of Procedure"), "complications|complication"),
    (Code("55112-7", "LN", "Summary"), None, "summary|resume"),
    (Code("55107-7", "LN", "Addendum"), None, "addendum|additif|complement"),
    (Code("73569-6", "LN", "Radiation Exposure and Protection Information"), None,
     "radiation exposure and protection information|dosimetrie|dose|radioprotection"),
    (Code("73568-8", "LN", "Communication of Critical Results"), None,
     "communication of critical results|communication des resultats critiques|appel"),
)
_HEADINGS = {alias: (heading, element or heading)
             for heading, element, aliases in _HEADING_ROWS for alias in aliases.split("|")}


def _normalise(heading: str) -> str:
    """Lower case, no accents, words only: "Résultats :" -> "resultats"."""
    text = unicodedata.normalize("NFKD", heading)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def heading_codes(heading: str) -> tuple[Code, Code]:
    """The (CID 7001 heading, CID 7002 element) codes of a section heading; a heading CID 7001
    lacks gets one private code, the same for the same words, naming it as written."""
    key = _normalise(heading)
    if key in _HEADINGS:
        return _HEADINGS[key]
    digest = hashlib.sha256(key.encode()).hexdigest()[:12].upper()
    private = Code(f"H{digest}", PRIVATE_SCHEME, _lo(heading))  # Code Value SH: 16 at most
    return private, private


@dataclass(frozen=True, kw_only=True)
class InstanceReference:
    """One instance of the study: an image the report was read from, or a previous SR."""

    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str

    def __post_init__(self) -> None:
        for name in ("series_instance_uid", "sop_instance_uid", "sop_class_uid"):
            _check_uid(name, getattr(self, name))


@dataclass(frozen=True, kw_only=True)
class StudyContext:
    """The imaged study the report objects join: patient and study as the hospital sent them."""

    patient_id: str
    issuer_of_patient_id: str = ""
    patient_name: str  # DICOM PN, e.g. "DUPONT^MARIE"
    patient_birth_date: str = ""  # YYYYMMDD or ""
    patient_sex: str = ""  # M, F, O or ""
    study_instance_uid: str
    accession_number: str = ""
    study_date: str = ""  # of the imaged study, if known ("" -> type 2 empty)
    study_time: str = ""
    study_id: str = ""
    study_description: str = ""
    referring_physician_name: str = ""  # PN
    institution_name: str = ""  # the hospital the report is filed at (General Equipment)
    #: The order the report fulfils (Referenced Request Sequence, PS3.3 §C.17.2), if known.
    requested_procedure_id: str = ""
    requested_procedure_description: str = ""

    def __post_init__(self) -> None:
        """Strict when writing: a context that would make an invalid object is refused here."""
        _check_uid("study_instance_uid", self.study_instance_uid)
        if self.patient_sex not in _SEXES:
            raise ValueError("patient_sex is not M, F, O or empty")  # no patient data here
        for name, pattern in (("patient_birth_date", _DA), ("study_date", _DA),
                              ("study_time", _TM)):
            value = getattr(self, name)
            if value and not pattern.fullmatch(value):
                raise ValueError(f"{name} is not a DICOM {'TM' if pattern is _TM else 'DA'}")
        for name, limit in _LIMITS:
            value = getattr(self, name)
            if len(value) > limit or _CONTROL.search(value):
                raise ValueError(f"{name} is longer than {limit} or holds a control character")
        for name in ("patient_name", "referring_physician_name"):
            _check_person_name(name, getattr(self, name))


@dataclass(frozen=True, kw_only=True)
class ReportContent:
    """What the radiologist wrote and signed (or released as preliminary)."""

    title: str  # e.g. "Scanner cérébral sans injection"
    #: (heading, text) in order; sections whose text is blank are left out.
    sections: tuple[tuple[str, str], ...]
    final: bool  # True: COMPLETE + VERIFIED (signed); False: PARTIAL + UNVERIFIED
    signer_name: str  # PN of the radiologist
    signer_organization: str
    signed_at: dt.datetime  # timezone-aware; its own offset is written
    language: str = "fr"  # CID 5000 (RFC 5646)

    def __post_init__(self) -> None:
        _check_signed(self.title, self.signed_at)
        if self.language not in LANGUAGES:
            raise ValueError(f"language {self.language!r} is not one of {sorted(LANGUAGES)}")
        if not any(text.strip() for _, text in self.sections):
            raise ValueError("a report needs at least one section with text")
        if any(not _lo(heading) for heading, _ in self.sections):
            raise ValueError("every section needs a heading")
        _check_person_name("signer_name", self.signer_name, required=True)
        if not self.signer_organization.strip() or len(self.signer_organization) > 64:
            raise ValueError("signer_organization must be 1 to 64 characters")  # LO


def _check_uid(name: str, value: str) -> None:
    if len(value) > 64 or not _UID.fullmatch(value):
        raise ValueError(f"{name} {value!r} is not a UID")


def _check_signed(title: str, signed_at: dt.datetime) -> None:
    if signed_at.tzinfo is None or signed_at.utcoffset() is None:
        raise ValueError("signed_at must be timezone-aware")
    if not title.strip() or len(title) > 1024:  # ST, as Document Title (0042,0010)
        raise ValueError("title must be 1 to 1024 characters")


def _check_person_name(name: str, value: str, *, required: bool = False) -> None:
    if required and not value.strip("^ "):
        raise ValueError(f"{name} must not be empty")
    if _CONTROL.search(value) or any(len(part) > 64 for part in value.split("^")):
        raise ValueError(f"{name} is not a DICOM person name")  # PS3.5 §6.2.1


def _lo(text: str) -> str:
    """``text`` as one LO value (PS3.5 §6.2): no control character nor backslash, 64 at most."""
    return " ".join(_CONTROL.sub(" ", text).split())[:64]


def _date_time(moment: dt.datetime) -> tuple[str, str, str]:
    """(DA, TM, DT with offset) of an aware moment, in its own zone, to the second."""
    return moment.strftime("%Y%m%d"), moment.strftime("%H%M%S"), moment.strftime("%Y%m%d%H%M%S%z")


def _observer_name(name: str) -> str:
    """A single-component PN is written "NAME^" (PS3.5 §6.2.1 allows it): highdicom reads a
    name without a caret as a likely mistake and warns with the name in the message."""
    return name if "^" in name else f"{name}^"


def _content_tree(content: ReportContent) -> tuple[hd_sr.ContainerContentItem, list[Code]]:
    """The TID 2000 tree, and the private codes it uses."""
    rel = hd_sr.RelationshipTypeValues
    items = hd_sr.ContentSequence()
    items.extend(hd_sr.LanguageOfContentItemAndDescendants(  # TID 1204
        hd_sr.CodedConcept(content.language, "RFC5646", LANGUAGES[content.language])))
    items.append(hd_sr.TextContentItem(name=_EQUIVALENT_MEANING, value=content.title.strip(),
                                       relationship_type=rel.HAS_CONCEPT_MOD))  # TID 1210
    person = hd_sr.PersonObserverIdentifyingAttributes(
        name=_observer_name(content.signer_name), organization_name=content.signer_organization)
    items.extend(hd_sr.ObservationContext(observer_person_context=hd_sr.ObserverContext(
        observer_type=codes.cid270.Person, observer_identifying_attributes=person)))
    private: list[Code] = []
    for heading, text in content.sections:
        if not text.strip():
            continue
        heading_code, element_code = heading_codes(heading)
        if heading_code.scheme_designator == PRIVATE_SCHEME:
            private.append(heading_code)
        section = hd_sr.ContainerContentItem(name=heading_code, relationship_type=rel.CONTAINS)
        section.ContentSequence = hd_sr.ContentSequence([hd_sr.TextContentItem(
            name=element_code, value=text.strip(), relationship_type=rel.CONTAINS)])
        items.append(section)
    root = hd_sr.ContainerContentItem(name=DIAGNOSTIC_IMAGING_REPORT,
                                      is_content_continuous=False, template_id="2000")
    root.ContentSequence = items
    return root, private


def _patient_and_study(ds: Dataset, study: StudyContext) -> None:
    """Patient (PS3.3 §C.7.1.1) and General Study (§C.7.2.1) modules; type 2 left empty."""
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    if study.issuer_of_patient_id:
        ds.IssuerOfPatientID = study.issuer_of_patient_id
    ds.PatientBirthDate = study.patient_birth_date
    ds.PatientSex = study.patient_sex
    ds.StudyInstanceUID = study.study_instance_uid
    ds.StudyDate = study.study_date
    ds.StudyTime = study.study_time
    ds.ReferringPhysicianName = study.referring_physician_name
    ds.StudyID = study.study_id
    ds.AccessionNumber = study.accession_number
    if study.study_description:
        ds.StudyDescription = study.study_description


def _instance(ds: Dataset, *, sop_class_uid: str, sop_instance_uid: str,
              signed_at: dt.datetime) -> None:
    """SOP Common (PS3.3 §C.12.1), its dates from ``signed_at``."""
    date, time, _ = _date_time(signed_at)
    ds.SpecificCharacterSet = CHARACTER_SET
    ds.InstanceCreationDate = date
    ds.InstanceCreationTime = time
    ds.TimezoneOffsetFromUTC = signed_at.strftime("%z")  # (0008,0201), e.g. "+0100"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid


def _subject(study: StudyContext, *, series_instance_uid: str, sop_instance_uid: str) -> Dataset:
    """What highdicom reads its patient and study from; the name is written afterwards."""
    ds = Dataset()
    _patient_and_study(ds, study)
    ds.PatientName = ""
    ds.SOPClassUID = EnhancedSRStorage
    ds.SOPInstanceUID = sop_instance_uid
    ds.SeriesInstanceUID = series_instance_uid
    return ds


def _hierarchical(study_instance_uid: str, references: Sequence[InstanceReference]) -> Dataset:
    """Hierarchical SOP Instance Reference Macro (PS3.3 Table C.17-3), series in given order."""
    series: dict[str, list[Dataset]] = {}
    seen: set[str] = set()
    for ref in references:
        if ref.sop_instance_uid in seen:
            continue
        seen.add(ref.sop_instance_uid)
        item = Dataset()
        item.ReferencedSOPClassUID = ref.sop_class_uid
        item.ReferencedSOPInstanceUID = ref.sop_instance_uid
        series.setdefault(ref.series_instance_uid, []).append(item)
    study = Dataset()
    study.StudyInstanceUID = study_instance_uid
    study.ReferencedSeriesSequence = []
    for series_uid, items in series.items():
        entry = Dataset()
        entry.SeriesInstanceUID = series_uid
        entry.ReferencedSOPSequence = items
        study.ReferencedSeriesSequence.append(entry)
    return study


def _referenced_request(study: StudyContext) -> Dataset:
    """Referenced Request Sequence item (PS3.3 Table C.17-2): the order; its type 2 values
    left empty, its type 3 identifier sequences (issuer, placer, filler) left out."""
    item = Dataset()
    item.StudyInstanceUID = study.study_instance_uid
    item.ReferencedStudySequence = []
    item.AccessionNumber = study.accession_number
    item.PlacerOrderNumberImagingServiceRequest = ""
    item.FillerOrderNumberImagingServiceRequest = ""
    item.RequestedProcedureID = study.requested_procedure_id
    item.RequestedProcedureDescription = study.requested_procedure_description
    item.RequestedProcedureCodeSequence = []
    return item


def structured_report(
    study: StudyContext, content: ReportContent, *, series_instance_uid: str,
    sop_instance_uid: str, instance_number: int = 1, series_number: int = SR_SERIES_NUMBER,
    predecessor_sop_instance_uid: str | None = None,
    predecessor_series_instance_uid: str | None = None,
    evidence: Sequence[InstanceReference] = (),
) -> Dataset:
    """The report as an Enhanced SR (PS3.3 §A.35.2) of TID 2000, in the study of ``study``.

    ``predecessor_sop_instance_uid``: the Enhanced SR this one replaces, in the same study
    and in ``predecessor_series_instance_uid``, by default this SR's own series (where
    telerad keeps every version of a report). ``evidence``: the study's images it was read from.
    """
    _check_uid("series_instance_uid", series_instance_uid)
    _check_uid("sop_instance_uid", sop_instance_uid)
    predecessor = None
    if predecessor_sop_instance_uid is not None:
        if predecessor_sop_instance_uid == sop_instance_uid:
            raise ValueError("a report cannot be its own predecessor")
        predecessor = InstanceReference(
            series_instance_uid=predecessor_series_instance_uid or series_instance_uid,
            sop_instance_uid=predecessor_sop_instance_uid, sop_class_uid=EnhancedSRStorage)
    elif predecessor_series_instance_uid is not None:
        raise ValueError("predecessor_series_instance_uid without predecessor_sop_instance_uid")
    root, private = _content_tree(content)
    date, time, moment = _date_time(content.signed_at)
    final = content.final
    sr = hd_sr.EnhancedSR(
        evidence=[_subject(study, series_instance_uid=series_instance_uid,
                           sop_instance_uid=sop_instance_uid)],
        content=root, series_instance_uid=series_instance_uid, series_number=series_number,
        sop_instance_uid=sop_instance_uid, instance_number=instance_number,
        manufacturer=MANUFACTURER, is_complete=final, is_final=final, is_verified=final,
        institution_name=study.institution_name or None,
        verifying_observer_name=_observer_name(content.signer_name) if final else None,
        verifying_organization=content.signer_organization if final else None,
        record_evidence=False, specific_character_set=CHARACTER_SET,
        content_date=date, content_time=time, series_description=_lo(content.title))
    _patient_and_study(sr, study)  # with the name, which highdicom did not see
    _instance(sr, sop_class_uid=EnhancedSRStorage, sop_instance_uid=sop_instance_uid,
              signed_at=content.signed_at)
    del sr.ContributingEquipmentSequence  # type 3; highdicom's carries a clock reading
    if "CurrentRequestedProcedureEvidenceSequence" in sr:  # the subject, not evidence
        del sr.CurrentRequestedProcedureEvidenceSequence
    if final:
        sr.VerifyingObserverSequence[0].VerificationDateTime = moment
    if predecessor is not None:
        sr.PredecessorDocumentsSequence = [_hierarchical(study.study_instance_uid,
                                                         [predecessor])]
    if evidence:
        sr.CurrentRequestedProcedureEvidenceSequence = [
            _hierarchical(study.study_instance_uid, evidence)]
    if study.accession_number or study.requested_procedure_id:
        sr.ReferencedRequestSequence = [_referenced_request(study)]
    if private:
        scheme = Dataset()
        scheme.CodingSchemeDesignator = PRIVATE_SCHEME
        scheme.CodingSchemeName = "telerad report headings"
        scheme.CodingSchemeResponsibleOrganization = MANUFACTURER
        sr.CodingSchemeIdentificationSequence = [scheme]
    return sr


def encapsulated_pdf(
    study: StudyContext, *, pdf: bytes, title: str, signed_at: dt.datetime,
    series_instance_uid: str, sop_instance_uid: str, instance_number: int = 1,
    series_number: int = PDF_SERIES_NUMBER,
) -> Dataset:
    """The rendered report as an Encapsulated PDF (PS3.3 §A.45.1) in the study of ``study``."""
    _check_uid("series_instance_uid", series_instance_uid)
    _check_uid("sop_instance_uid", sop_instance_uid)
    if not pdf.startswith(b"%PDF-"):
        raise ValueError("pdf is not a PDF document")
    _check_signed(title, signed_at)
    if instance_number < 1 or series_number < 1:
        raise ValueError("instance_number and series_number must be positive")
    date, time, moment = _date_time(signed_at)
    ds = Dataset()
    _instance(ds, sop_class_uid=EncapsulatedPDFStorage, sop_instance_uid=sop_instance_uid,
              signed_at=signed_at)
    _patient_and_study(ds, study)
    # Encapsulated Document Series (PS3.3 §C.24.1)
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = series_instance_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = _lo(title)
    # General Equipment (§C.7.5.1) and SC Equipment (§C.8.6.1): made on a workstation
    ds.Manufacturer = MANUFACTURER
    if study.institution_name:
        ds.InstitutionName = study.institution_name
    ds.ConversionType = "WSD"
    # Encapsulated Document (§C.24.2)
    ds.InstanceNumber = instance_number
    ds.ContentDate = date
    ds.ContentTime = time
    ds.AcquisitionDateTime = moment
    ds.BurnedInAnnotation = "YES"  # the PDF names the patient
    ds.DocumentTitle = title.strip()
    ds.ConceptNameCodeSequence = [hd_sr.CodedConcept.from_code(DIAGNOSTIC_IMAGING_REPORT)]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    # OB of even length, padded with one NUL (PS3.5 §6.2); the true length is kept beside it
    ds.EncapsulatedDocument = pdf + b"\x00" * (len(pdf) % 2)
    ds.EncapsulatedDocumentLength = len(pdf)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    """A Part-10 file (PS3.10 §7) of ``ds``, Explicit VR Little Endian, telerad's File Meta."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    meta = part10.file_meta(sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
                            transfer_syntax_uid=ExplicitVRLittleEndian)
    return meta + fp.getvalue()
