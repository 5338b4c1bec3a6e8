"""Writing, releasing and signing reports.

The exam's reader starts the report from the template for its protocol (normal findings
filled in, the indication from the request), saves drafts as they type, releases a
preliminary and signs the final. After the final, any radiologist of the site may sign an
addendum. Each release, in one transaction: the frozen version (text, PDF, hash of what was
signed), the exam's move and timeline entry, and the outbox rows that deliver it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from telerad.delivery import outbox
from telerad.errors import Conflict, Forbidden, InvalidInput, NotFound
from telerad.reporting import catalogue, documents, rules
from telerad.reporting.models import Report, ReportStatus, ReportVersion, VersionKind
from telerad.reporting.templates import (
    Template,
    load_template,
    normal_content,
    problems,
    render_text,
)
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.exams.timeline import move, record_event

#: Exam states in which its reader writes the report (before the final).
WRITING_STATES = frozenset({ExamState.IN_READING, ExamState.PRELIMINARY})
#: Exam states in which an addendum may follow the final.
SIGNED_STATES = frozenset({ExamState.FINAL, ExamState.DELIVERED})


@dataclass(frozen=True, kw_only=True)
class Author:
    """The radiologist writing: their account, their radiologist row, their name (PN)."""

    user_id: int
    radiologist_id: int
    name: str


class DraftConflict(Conflict):
    """The draft changed since the revision the save started from (another tab, another
    device): the newer draft is kept, and the page must reload it."""

    code = "draft_conflict"


class NoTemplate(NotFound):
    """No template fits this exam's protocol or modality."""

    code = "no_report_template"


def report_of(session: Session, exam: Exam) -> Report | None:
    return session.scalar(select(Report).where(Report.exam_id == exam.id))


def template_of(report: Report) -> Template:
    """The template as it was when the report began."""
    return load_template(json.loads(report.template))


def draft_of(report: Report) -> dict[str, str]:
    value = json.loads(report.draft)
    return {str(k): str(v) for k, v in value.items()}


def versions(session: Session, report: Report) -> list[ReportVersion]:
    return list(session.scalars(select(ReportVersion).where(
        ReportVersion.report_id == report.id).order_by(ReportVersion.number)))


def _require_reader(exam: Exam, author: Author) -> None:
    if exam.reader_id != author.radiologist_id:
        raise Forbidden(f"exam #{exam.id} is read by another radiologist: claim it first")


def start(session: Session, exam: Exam, *, author: Author, now: dt.datetime,
          template_code: str | None = None) -> Report:
    """The exam's report, begun from its template if it has none yet."""
    report = report_of(session, exam)
    if report is not None:
        return report
    if exam.state not in WRITING_STATES:
        raise Conflict(f"exam #{exam.id} is {exam.state}: it is not being read")
    _require_reader(exam, author)
    templates = catalogue.all_templates(session)
    if template_code is not None:
        template = next((t for t in sorted(templates, key=lambda t: -t.version)
                         if t.code == template_code), None)
    else:
        template = catalogue.choose(templates, exam)
    if template is None:
        raise NoTemplate(f"no report template for {exam.protocol_code or exam.modality}")
    draft = normal_content(template)
    if "indication" in {f.id for f in template.fields()}:
        draft["indication"] = " ".join(
            part for part in (exam.clinical_context, exam.clinical_question) if part).strip()
    report = Report(exam_id=exam.id, status=ReportStatus.DRAFT, template_code=template.code,
                    template_version=template.version,
                    template=json.dumps(catalogue.template_json(template)),
                    draft=json.dumps(draft), revision=1, author_id=author.user_id,
                    created_at=now, updated_at=now)
    session.add(report)
    session.flush()
    record_event(session, exam, kind="report_started", actor=f"user:{author.user_id}", now=now,
                 template=template.code)
    return report


def save_draft(session: Session, exam: Exam, report: Report, *, content: Mapping[str, str],
               base_revision: int, author: Author, now: dt.datetime) -> Report:
    """Keep what was typed. ``base_revision`` is the revision the typing started from: if
    the draft moved on since, DraftConflict (nothing is overwritten)."""
    if report.status == ReportStatus.FINAL:
        if exam.state not in SIGNED_STATES:
            raise Conflict(f"exam #{exam.id} is {exam.state}")
        extra = set(content) - {rules.ADDENDUM_FIELD}
        if extra:
            raise InvalidInput("after the final, only an addendum is written")
        if len(content.get(rules.ADDENDUM_FIELD, "")) > rules.MAX_ADDENDUM_LENGTH:
            raise InvalidInput(f"an addendum has at most {rules.MAX_ADDENDUM_LENGTH} characters")
    else:
        if exam.state not in WRITING_STATES:
            raise Conflict(f"exam #{exam.id} is {exam.state}: it is not being read")
        _require_reader(exam, author)
        found = problems(template_of(report), content, signing=False)
        if found:
            raise InvalidInput("; ".join(f"{field}: {code}" for field, code in found.items()))
    # One conditional UPDATE (as a claim): of two saves from the same revision, one wins.
    saved = session.execute(
        update(Report).where(Report.id == report.id, Report.revision == base_revision)
        .values(draft=json.dumps(dict(content)), revision=Report.revision + 1, updated_at=now)
        .execution_options(synchronize_session=False))
    assert isinstance(saved, CursorResult)
    session.refresh(report)
    if saved.rowcount != 1:
        raise DraftConflict(f"the draft is at revision {report.revision}, not {base_revision}: "
                            "reload it")
    return report


def release(session: Session, exam: Exam, report: Report, *, kind: VersionKind,
            author: Author, now: dt.datetime) -> ReportVersion:
    """Release the draft as ``kind``: check it, freeze it, move the exam, plan deliveries."""
    status = ReportStatus(report.status)
    target = rules.next_status(status, kind)
    content = draft_of(report)
    template = template_of(report)
    if kind is VersionKind.ADDENDUM:
        if exam.state not in SIGNED_STATES:
            raise Conflict(f"exam #{exam.id} is {exam.state}")
        if not content.get(rules.ADDENDUM_FIELD, "").strip():
            raise InvalidInput("the addendum is empty")
    else:
        _require_reader(exam, author)
        found = problems(template, content, signing=True)
        if found:
            raise InvalidInput("cannot sign yet: " + "; ".join(
                f"{field}: {code}" for field, code in found.items()))
    number = (session.scalar(select(func.max(ReportVersion.number)).where(
        ReportVersion.report_id == report.id)) or 0) + 1
    if kind is VersionKind.ADDENDUM:
        text = content[rules.ADDENDUM_FIELD].strip()
    else:
        text = render_text(template, content)
    sha = rules.content_sha256(kind=kind, number=number, content=content, text=text,
                               signer_name=author.name, signed_at=now)
    version = ReportVersion(report_id=report.id, exam_id=exam.id, number=number, kind=kind,
                            content=json.dumps(content, sort_keys=True), text=text,
                            signed_by=author.user_id, signer_name=author.name, signed_at=now,
                            content_sha256=sha, pdf=b"")
    session.add(version)
    session.flush()
    bundle = documents.build(session, exam=exam, report=report, template=template,
                             version=version)
    version.pdf = bundle.pdf
    report.status = target
    report.draft = "{}" if target == ReportStatus.FINAL else report.draft
    report.revision += 1
    report.updated_at = now
    after = rules.EXAM_STATE_AFTER[kind]
    actor = f"user:{author.user_id}"
    if after is not None:
        move(session, exam, after, actor=actor, now=now, kind=f"report_{kind}",
             version=number, sha256=sha)
        if exam.reported_at is None:
            exam.reported_at = now
    else:
        record_event(session, exam, kind="report_addendum", actor=actor, now=now,
                     version=number, sha256=sha)
    outbox.plan(session, exam_id=exam.id, report_version_id=version.id,
                documents=bundle.deliveries, now=now)
    if not bundle.deliveries:
        outbox.mark_delivered_if_done(session, exam, now=now)
    return version


def person_name(display_name: str) -> str:
    """A name as people write it ("Dr Alice Martin") as a DICOM PN (PS3.5 §6.2:
    FAMILY^GIVEN^MIDDLE^PREFIX), which the report's documents carry: "MARTIN^Alice^^Dr"."""
    words = display_name.split()
    prefix = words.pop(0) if words and words[0].rstrip(".").lower() in ("dr", "pr") else ""
    if not words:
        return display_name.strip()
    family, given = words[-1].upper(), " ".join(words[:-1])
    return "^".join([family, given, "", prefix]).rstrip("^")
