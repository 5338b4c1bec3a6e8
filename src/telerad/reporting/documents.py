"""From a released version to the documents the hospital receives: the PDF it files, the
ORU^R01 for its RIS, the SR and Encapsulated PDF for its PACS.

Everything sent is built here, once, at the release, and kept in the outbox row: a retry
sends the very same bytes (same MSH-10, same SOP Instance UIDs), which the peer takes as the
same message. UIDs derive from the study's own UID, so they are unique and stable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.archive.queries import instance_uids
from telerad.auth.service import Permission, Scope
from telerad.delivery.models import ChannelKind, Endpoint
from telerad.delivery.outbox import Document, endpoints
from telerad.dicom import reports as dicom_reports
from telerad.hl7.results import ReportResult, oru_r01
from telerad.reporting import critical, rules
from telerad.reporting.models import Report, ReportVersion, VersionKind
from telerad.reporting.pdf import Addendum, PdfReport, render_pdf
from telerad.reporting.templates import Template, render_sections
from telerad.workflow.exams.models import Exam
from telerad.workflow.requests.models import Protocol
from telerad.workflow.sites.models import Site

#: Urgencies in the hospital's words (the report is in French, the site's language).
URGENCY_LABELS = {"stroke_alert": "Alerte AVC", "life_threatening": "Urgence vitale",
                  "urgent": "Urgent", "scheduled": "Programmé"}
#: Our sending application (MSH-3) and the manufacturer of the DICOM objects.
APPLICATION = "TELERAD"


@dataclass(frozen=True, kw_only=True)
class Bundle:
    """What a release produces."""

    pdf: bytes
    deliveries: list[Document]


def _birth_date(value: str) -> str:
    """YYYYMMDD, or "" (DICOM DA and HL7 DT both refuse anything else)."""
    return value if re.fullmatch(r"\d{8}", value or "") else ""


def _sex(value: str) -> str:
    return value if value in ("M", "F", "O") else ""


def _single(value: str, length: int = 64) -> str:
    """One DICOM value (LO, PN): no backslash (the value separator), no control character."""
    return "".join(c for c in value.replace("\\", "/") if c >= " ")[:length]


def uid(study_instance_uid: str, *parts: str) -> str:
    """A UID derived from the study's (pydicom's root, a hash of the parts: PS3.5 §9)."""
    return str(generate_uid(entropy_srcs=[study_instance_uid, "telerad-report", *parts]))


def _signed_versions(session: Session, report: Report, upto: ReportVersion
                     ) -> list[ReportVersion]:
    return list(session.scalars(select(ReportVersion).where(
        ReportVersion.report_id == report.id, ReportVersion.number <= upto.number)
        .order_by(ReportVersion.number)))


def build(session: Session, *, exam: Exam, report: Report, template: Template,
          version: ReportVersion) -> Bundle:
    """The PDF of ``version`` and its deliveries to each of the site's endpoints (the
    ``template`` is the report's own, as it began)."""
    site = session.get(Site, exam.site_id)
    assert site is not None
    kind = VersionKind(version.kind)
    history = _signed_versions(session, report, version)
    # The body is the last preliminary or final; an addendum adds to the final's body.
    body = next(v for v in reversed(history) if v.kind != VersionKind.ADDENDUM)
    addenda = [v for v in history if v.kind == VersionKind.ADDENDUM]
    sections = tuple(render_sections(template, json.loads(body.content)))
    protocol = session.get(Protocol, exam.protocol_code) if exam.protocol_code else None
    findings = critical.summaries(session, exam, timezone=site.timezone)
    pdf = render_pdf(PdfReport(
        site_name=site.name, site_timezone=site.timezone,
        kind="preliminary" if kind is VersionKind.PRELIMINARY else "final",
        title=template.title, patient_name=exam.patient_name, patient_id=exam.patient_id,
        ins=exam.ins, patient_birth_date=_birth_date(exam.patient_birth_date),
        patient_sex=_sex(exam.patient_sex),
        accession_number=exam.accession_number or "",
        requesting_physician=exam.requesting_physician,
        urgency=URGENCY_LABELS.get(exam.urgency or "", ""),
        clinical_context=exam.clinical_context, clinical_question=exam.clinical_question,
        protocol=protocol.name if protocol else "", study_date=exam.first_image_at,
        sections=sections, critical_findings=findings, radiologist_name=body.signer_name,
        signed_at=body.signed_at, content_sha256=body.content_sha256,
        version_number=body.number,
        addenda=tuple(Addendum(number=a.number, text=a.text, signer_name=a.signer_name,
                               signed_at=a.signed_at, content_sha256=a.content_sha256)
                      for a in addenda)))
    # The images the report was read from: the SR's evidence (PS3.3 C.17.2.3), read with
    # the exam's own site as the only scope.
    site_scope = Scope(permissions=frozenset({Permission.ARCHIVE_READ}),
                       site_ids=frozenset({exam.site_id}))
    evidence = tuple(dicom_reports.InstanceReference(
        series_instance_uid=series, sop_instance_uid=sop, sop_class_uid=sop_class)
        for series, sop, sop_class in (instance_uids(
            session, scope=site_scope, study_instance_uid=exam.study_instance_uid)
            if exam.study_instance_uid else []))
    release = _Release(
        exam=exam, site=site, version=version, body=body, kind=kind, title=template.title,
        sections=sections + tuple((f"Addendum {a.number}", a.text) for a in addenda),
        text=body.text + "".join(
            f"\n\nADDENDUM {a.number} ({a.signer_name.replace('^', ' ')}, "
            f"{a.signed_at:%Y-%m-%d %H:%M} UTC)\n{a.text}" for a in addenda),
        pdf=pdf, critical=bool(findings), evidence=evidence)
    deliveries: list[Document] = []
    for endpoint in endpoints(session, site.id):
        if endpoint.channel == ChannelKind.HL7_MLLP:
            deliveries.append(_oru(release, endpoint))
        elif endpoint.channel == ChannelKind.DICOM_STORE:
            deliveries.extend(_dicom(release, endpoint))
    return Bundle(pdf=pdf, deliveries=deliveries)


@dataclass(frozen=True, kw_only=True)
class _Release:
    """What every document of one release is made of."""

    exam: Exam
    site: Site
    version: ReportVersion
    #: The preliminary or final this version is (or, for an addendum, adds to).
    body: ReportVersion
    kind: VersionKind
    title: str
    #: The body's sections, then each addendum's.
    sections: tuple[tuple[str, str], ...]
    text: str
    pdf: bytes
    critical: bool
    evidence: tuple[dicom_reports.InstanceReference, ...]


def _oru(r: _Release, endpoint: Endpoint) -> Document:
    exam = r.exam
    # MSH-10 is ST(20) in v2.5: short, unique per version and endpoint, stable on resends.
    control_id = f"TR{r.version.id}E{endpoint.id}"
    message = oru_r01(ReportResult(
        control_id=control_id, sending_facility=r.site.hl7_facility or r.site.name[:20],
        receiving_application=endpoint.receiving_application,
        receiving_facility=endpoint.receiving_facility,
        patient_id=exam.patient_id, ins=exam.ins, patient_name=exam.patient_name,
        patient_birth_date=_birth_date(exam.patient_birth_date), patient_sex=_sex(exam.patient_sex),
        accession_number=exam.accession_number or "", filler_order_number=str(exam.id),
        procedure_code=exam.protocol_code or "", procedure_text=exam.exam_asked,
        requesting_physician=exam.requesting_physician,
        result_status=rules.RESULT_STATUS[r.kind],
        observed_at=exam.first_image_at or r.body.signed_at, signed_at=r.version.signed_at,
        radiologist_name=r.body.signer_name, text=r.text, pdf=r.pdf, critical=r.critical,
    ), now=r.version.signed_at)
    return Document(endpoint_id=endpoint.id, document="ORU^R01",
                    payload=message.encode("utf-8"), idempotency_key=control_id)


def _dicom(r: _Release, endpoint: Endpoint) -> list[Document]:
    exam, number = r.exam, r.version.number
    study_uid = exam.study_instance_uid or uid(str(exam.id), "study")
    taken = exam.first_image_at
    study = dicom_reports.StudyContext(
        patient_id=_single(exam.patient_id), patient_name=_single(exam.patient_name),
        patient_birth_date=_birth_date(exam.patient_birth_date), patient_sex=_sex(exam.patient_sex),
        study_instance_uid=study_uid, accession_number=exam.accession_number or "",
        study_date=f"{taken:%Y%m%d}" if taken else "",
        study_time=f"{taken:%H%M%S}" if taken else "",
        study_description=_single(exam.exam_asked),
        referring_physician_name=_single(exam.requesting_physician),
        institution_name=_single(r.site.name))
    content = dicom_reports.ReportContent(
        title=r.title, sections=r.sections, final=r.kind is not VersionKind.PRELIMINARY,
        signer_name=r.body.signer_name, signer_organization=APPLICATION,
        signed_at=r.version.signed_at)
    sr_uid = uid(study_uid, "sr", str(number))
    sr = dicom_reports.structured_report(
        study, content, series_instance_uid=uid(study_uid, "sr-series"),
        sop_instance_uid=sr_uid, instance_number=number,
        predecessor_sop_instance_uid=uid(study_uid, "sr", str(number - 1)) if number > 1
        else None, evidence=r.evidence)
    pdf_uid = uid(study_uid, "pdf", str(number))
    encapsulated = dicom_reports.encapsulated_pdf(
        study, pdf=r.pdf, title=r.title, signed_at=r.version.signed_at,
        series_instance_uid=uid(study_uid, "pdf-series"), sop_instance_uid=pdf_uid,
        instance_number=number)
    return [Document(endpoint_id=endpoint.id, document="SR",
                     payload=dicom_reports.to_bytes(sr), idempotency_key=sr_uid),
            Document(endpoint_id=endpoint.id, document="PDF",
                     payload=dicom_reports.to_bytes(encapsulated), idempotency_key=pdf_uid)]
