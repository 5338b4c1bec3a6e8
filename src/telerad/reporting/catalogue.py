"""The templates a report may start from: the built-in ones shipped with telerad, and those
an administrator imported (JSON, or IHE MRRT HTML), the newest version of a code winning."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from telerad.errors import Conflict, InvalidInput
from telerad.reporting.models import ImportedTemplate
from telerad.reporting.mrrt import from_mrrt
from telerad.reporting.templates import (
    Template,
    builtin_templates,
    choose_template,
    load_template,
    template_json,
)
from telerad.workflow.exams.models import Exam

__all__ = ["MRRT_SUFFIXES", "all_templates", "choose", "import_template", "is_mrrt",
           "next_version", "read_template", "template_json"]


def all_templates(session: Session) -> list[Template]:
    """Every template, the newest version of each code only."""
    newest: dict[str, Template] = {}
    imported = [load_template(json.loads(definition))
                for definition in session.scalars(select(ImportedTemplate.definition))]
    for template in [*builtin_templates(), *imported]:
        current = newest.get(template.code)
        if current is None or template.version > current.version:
            newest[template.code] = template
    return sorted(newest.values(), key=lambda t: (t.modality, t.title))


def choose(templates: list[Template], exam: Exam) -> Template | None:
    """The template for the exam's protocol, else the generic one of its modality."""
    return choose_template(templates, protocol_code=exam.protocol_code, modality=exam.modality)


#: File names taken as an IHE MRRT template (an XHTML5 document); else JSON.
MRRT_SUFFIXES = (".html", ".htm", ".xhtml")


def is_mrrt(*, name: str = "", text: str = "") -> bool:
    """Whether a file is an MRRT template: by its name, else by its first character."""
    lowered = name.lower()
    if lowered.endswith(MRRT_SUFFIXES):
        return True
    return not lowered.endswith(".json") and text.lstrip()[:1] == "<"


def next_version(session: Session, code: str) -> int:
    """One above the highest built-in or imported version of ``code``."""
    builtin = max((t.version for t in builtin_templates() if t.code == code), default=0)
    imported = session.scalar(select(func.max(ImportedTemplate.version)).where(
        ImportedTemplate.code == code)) or 0
    return max(builtin, imported) + 1


def read_template(session: Session, text: str, *, mrrt: bool, modality: str = ""
                  ) -> Template:
    """A template from a file's text: telerad's JSON (its version as written), or an IHE
    MRRT HTML template, which dates templates but never numbers them: it takes the next
    version of its code."""
    if mrrt:
        template = from_mrrt(text, modality=modality.strip().upper())
        return replace(template, version=next_version(session, template.code))
    if text.lstrip()[:1] != "{":
        raise InvalidInput("a template is a JSON object, or an IHE MRRT HTML file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("a template is a JSON object")
    return load_template(data)


def import_template(session: Session, template: Template, *, now: dt.datetime
                    ) -> ImportedTemplate:
    """Add a template; a code's version is never replaced, only superseded by a higher one."""
    taken = {(t.code, t.version) for t in builtin_templates()} | set(session.execute(
        select(ImportedTemplate.code, ImportedTemplate.version)))
    if (template.code, template.version) in taken:
        raise Conflict(f"template {template.code} version {template.version} exists: "
                       "import it with a higher version")
    row = ImportedTemplate(code=template.code, version=template.version,
                           definition=json.dumps(template_json(template), ensure_ascii=False),
                           imported_at=now)
    session.add(row)
    session.flush()
    return row
