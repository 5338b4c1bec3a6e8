"""Report templates as data, in the spirit of IHE MRRT (IHE RAD TF Suppl. MRRT: a template is
a document, not code, and a report names the template it was written from).

A :class:`Template` is a list of sections, each a list of fields: free text, a choice among
options, or a number with its unit and range. Templates are read from JSON by
:func:`load_template` (strict: every problem named at once) and written back by
:func:`template_json`; the built-in ones ship as JSON files in ``template_files/``, one per
file; :mod:`telerad.reporting.mrrt` imports MRRT HTML templates. The rules below are pure:
which template fits a protocol, the normal-findings content, the problems of a content
(required fields only at signing), the report as text.

A report's content is a flat ``{field id: text}`` mapping (what the editor posts and what
:class:`telerad.reporting.models.Report` keeps as JSON), so a field id is unique in its
template, not only in its section. Values are kept as typed (a number may use the French
decimal comma) and checked, never rewritten.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources

from telerad.errors import InvalidInput

#: The longest value a field takes, in characters (a report is pages, not a book).
MAX_VALUE_LENGTH = 20_000
#: Field and section ids: HTML-id-like (MRRT field ids are HTML ids, e.g. ``TEXT_1459554442189``).
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
#: Template codes: what Report.template_code (64 characters) holds, e.g. ``ct_head``.
_CODE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
#: DICOM Modality (0008,0060) is a CS value (PS3.5 Table 6.2-1: upper case, digits, "_").
_MODALITY = re.compile(r"[A-Z0-9_]{1,16}")
#: ISO 639 language code, optionally with a region (MRRT dcterms.language).
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")
#: A number as typed: optional sign, a decimal point or the French decimal comma.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)")

_TEMPLATE_KEYS = frozenset({"code", "version", "title", "modality", "protocols", "language",
                            "sections"})
_SECTION_KEYS = frozenset({"id", "title", "fields"})
_FIELD_KEYS = frozenset({"id", "label", "kind", "required", "multiline", "options", "unit",
                         "minimum", "maximum", "normal", "help"})
_MEANINGS = {"not_a_number": "is not a number", "below_minimum": "is below the minimum",
             "above_maximum": "is above the maximum", "not_an_option": "is not among the options",
             "too_long": f"is longer than {MAX_VALUE_LENGTH} characters"}


class InvalidTemplate(InvalidInput):
    """A template that cannot be used; :attr:`problems` names every problem found."""

    code = "invalid_template"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid report template: " + "; ".join(problems))
        self.problems = problems


class FieldKind(StrEnum):
    """What a field holds."""

    TEXT = "text"
    """Free text: a line, or a paragraph when the field is multiline."""
    CHOICE = "choice"
    """One of the field's options, e.g. the site of an arterial occlusion."""
    NUMBER = "number"
    """A number with an optional unit and range, e.g. a midline shift in mm, an ASPECTS score."""


_KINDS = {kind.value: kind for kind in FieldKind}


@dataclass(frozen=True, kw_only=True)
class Field:
    """One thing the radiologist fills in."""

    id: str
    label: str
    kind: FieldKind
    required: bool = False
    #: CHOICE: the values it may take, in display order.
    options: tuple[str, ...] = ()
    #: NUMBER: the unit printed after the value (UCUM-like, e.g. "mm", "mL"), and the range.
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    #: The normal-findings default ("" for none): what a normal exam says here.
    normal: str = ""
    #: TEXT: a paragraph rather than a line; rendered as the paragraph itself.
    multiline: bool = False
    help: str = ""


@dataclass(frozen=True, kw_only=True)
class Section:
    """A titled part of the report (Indication, Technique, Résultats, Conclusion...)."""

    id: str
    title: str
    fields: tuple[Field, ...]


@dataclass(frozen=True, kw_only=True)
class Template:
    """A report template; a report keeps the one it began with (``code`` and ``version``)."""

    code: str
    version: int
    title: str
    #: DICOM Modality, e.g. "CT", "MR"; "" when an imported template names none.
    modality: str
    #: The protocol codes this template is meant for (none for a generic template).
    protocols: tuple[str, ...]
    language: str = "fr"
    sections: tuple[Section, ...]

    def fields(self) -> list[Field]:
        """Every field, in report order."""
        return [field for section in self.sections for field in section.fields]

    def field(self, field_id: str) -> Field:
        """The field with this id; KeyError if the template has none."""
        for field in self.fields():
            if field.id == field_id:
                return field
        raise KeyError(field_id)


def parse_number(text: str) -> float | None:
    """The finite number a value holds (decimal point or comma), or None if it holds none."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    number = float(text.replace(",", "."))
    return number if math.isfinite(number) else None


def _value_problem(field: Field, value: str) -> str | None:
    """The problem code of a value that is not blank, or None if it is fine."""
    if len(value) > MAX_VALUE_LENGTH:
        return "too_long"
    if field.kind is FieldKind.NUMBER:
        number = parse_number(value)
        if number is None:
            return "not_a_number"
        if field.minimum is not None and number < field.minimum:
            return "below_minimum"
        if field.maximum is not None and number > field.maximum:
            return "above_maximum"
    elif field.kind is FieldKind.CHOICE and value.strip() not in field.options:
        return "not_an_option"
    return None


# -- reading and writing JSON ---------------------------------------------------------------


def _show(value: object) -> str:
    """A value quoted in a problem, cut short."""
    if isinstance(value, str) and len(value) > 36:
        value = value[:33] + "..."
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _unknown_keys(data: Mapping[str, object], known: frozenset[str], where: str,
                  problems: list[str]) -> None:
    for key in data:
        if key not in known:
            problems.append(f"{where}: unknown key {_show(key)}")


def _string(data: Mapping[str, object], key: str, where: str, problems: list[str], *,
            default: str | None = None, pattern: re.Pattern[str] | None = None) -> str:
    """``data[key]`` as a string: required and not blank unless a default is given."""
    value = data.get(key, default)
    if value is None:
        problems.append(f"{where}: {key} is missing")
        return ""
    if not isinstance(value, str):
        problems.append(f"{where}: {key} is not a string")
        return ""
    if default is None and not value.strip():
        problems.append(f"{where}: {key} is empty")
    elif value and pattern is not None and not pattern.fullmatch(value):
        problems.append(f"{where}: {key} {_show(value)} is not a valid {key}")
    return value


def _flag(data: Mapping[str, object], key: str, where: str, problems: list[str]) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        problems.append(f"{where}: {key} is not true or false")
        return False
    return value


def _bound(data: Mapping[str, object], key: str, where: str,
           problems: list[str]) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.append(f"{where}: {key} is not a number")
        return None
    return float(value)


def _strings(data: Mapping[str, object], key: str, where: str, problems: list[str]) -> tuple[
        str, ...]:
    """A list of distinct, non-blank strings without surrounding spaces (options, protocols)."""
    value = data.get(key, [])
    if not isinstance(value, list):
        problems.append(f"{where}: {key} is not a list")
        return ()
    found: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or item != item.strip():
            problems.append(f"{where}: {key} holds {_show(item)}, not a trimmed text")
        elif item in found:
            problems.append(f"{where}: {key} holds {_show(item)} twice")
        else:
            found.append(item)
    return tuple(found)


def _read_field(data: object, where: str, problems: list[str]) -> Field | None:
    if not isinstance(data, Mapping):
        problems.append(f"{where}: not an object")
        return None
    _unknown_keys(data, _FIELD_KEYS, where, problems)
    field_id = _string(data, "id", where, problems, pattern=_ID)
    where = f"{where} ({field_id})" if field_id else where
    label = _string(data, "label", where, problems)
    kind_name = _string(data, "kind", where, problems)
    kind = _KINDS.get(kind_name)
    if kind_name and kind is None:
        problems.append(f"{where}: unknown kind {_show(kind_name)}")
    field = Field(id=field_id, label=label, kind=kind or FieldKind.TEXT,
                  required=_flag(data, "required", where, problems),
                  options=_strings(data, "options", where, problems),
                  unit=_string(data, "unit", where, problems, default=""),
                  minimum=_bound(data, "minimum", where, problems),
                  maximum=_bound(data, "maximum", where, problems),
                  normal=_string(data, "normal", where, problems, default=""),
                  multiline=_flag(data, "multiline", where, problems),
                  help=_string(data, "help", where, problems, default=""))
    if kind is None:
        return None
    if kind is FieldKind.CHOICE and not field.options:
        problems.append(f"{where}: a choice without options")
    if kind is not FieldKind.CHOICE and field.options:
        problems.append(f"{where}: options belong to choice fields")
    if kind is not FieldKind.NUMBER and (field.unit or field.minimum is not None
                                         or field.maximum is not None):
        problems.append(f"{where}: unit, minimum and maximum belong to number fields")
    if kind is not FieldKind.TEXT and field.multiline:
        problems.append(f"{where}: multiline belongs to text fields")
    if field.minimum is not None and field.maximum is not None and field.minimum > field.maximum:
        problems.append(f"{where}: minimum {field.minimum:g} > maximum {field.maximum:g}")
    elif field.normal.strip() and (field.options or kind is not FieldKind.CHOICE) and (
            problem := _value_problem(field, field.normal)):
        problems.append(f"{where}: the normal default {_show(field.normal)} {_MEANINGS[problem]}")
    return field


def _read_section(data: object, where: str, problems: list[str]) -> Section | None:
    if not isinstance(data, Mapping):
        problems.append(f"{where}: not an object")
        return None
    _unknown_keys(data, _SECTION_KEYS, where, problems)
    section_id = _string(data, "id", where, problems, pattern=_ID)
    where = f"{where} ({section_id})" if section_id else where
    title = _string(data, "title", where, problems)
    raw = data.get("fields")
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: fields is not a non-empty list")
        raw = []
    fields = [_read_field(item, f"{where}.fields[{i}]", problems) for i, item in enumerate(raw)]
    return Section(id=section_id, title=title, fields=tuple(f for f in fields if f is not None))


def load_template(data: Mapping[str, object]) -> Template:
    """The template this JSON object describes; :class:`InvalidTemplate` naming every problem
    (unknown kind or key, duplicate ids, a choice without options, a normal default that is
    not a valid value, minimum above maximum, a missing title...) if it is not usable."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise InvalidTemplate(["the template is not a JSON object"])
    where = "template"
    _unknown_keys(data, _TEMPLATE_KEYS, where, problems)
    code = _string(data, "code", where, problems, pattern=_CODE)
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append(f"{where}: version is not a whole number from 1")
        version = 1
    title = _string(data, "title", where, problems)
    modality = _string(data, "modality", where, problems, default="", pattern=_MODALITY)
    language = _string(data, "language", where, problems, default="fr", pattern=_LANGUAGE)
    protocols = _strings(data, "protocols", where, problems)
    raw = data.get("sections")
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: sections is not a non-empty list")
        raw = []
    sections = [_read_section(item, f"sections[{i}]", problems) for i, item in enumerate(raw)]
    template = Template(code=code, version=version, title=title, modality=modality,
                        protocols=protocols, language=language,
                        sections=tuple(s for s in sections if s is not None))
    for kind, ids in (("section", Counter(s.id for s in template.sections)),
                      ("field", Counter(f.id for f in template.fields()))):
        problems += [f"{where}: duplicate {kind} id {_show(i)}"
                     for i, n in ids.items() if i and n > 1]
    if problems:
        raise InvalidTemplate(problems)
    return template


def _json_number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def _field_json(field: Field) -> dict[str, object]:
    data: dict[str, object] = {"id": field.id, "label": field.label, "kind": field.kind.value}
    optional: dict[str, object] = {
        "required": field.required, "multiline": field.multiline, "options": list(field.options),
        "unit": field.unit,
        "minimum": None if field.minimum is None else _json_number(field.minimum),
        "maximum": None if field.maximum is None else _json_number(field.maximum),
        "normal": field.normal, "help": field.help}
    # Default values are left out (0 is a value: a minimum of 0 is kept).
    data |= {k: v for k, v in optional.items() if v not in ("", [], None) and v is not False}
    return data


def template_json(template: Template) -> dict[str, object]:
    """The JSON object :func:`load_template` reads back into the same template (a field's
    default values are left out)."""
    return {"code": template.code, "version": template.version, "title": template.title,
            "modality": template.modality, "protocols": list(template.protocols),
            "language": template.language,
            "sections": [{"id": s.id, "title": s.title,
                          "fields": [_field_json(f) for f in s.fields]}
                         for s in template.sections]}


@cache
def _builtins() -> tuple[Template, ...]:
    folder = resources.files("telerad.reporting").joinpath("template_files")
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".json")),
                     key=lambda e: e.name)
    found: list[Template] = []
    for entry in entries:
        try:
            found.append(load_template(json.loads(entry.read_text(encoding="utf-8"))))
        except InvalidTemplate as error:
            raise InvalidTemplate([f"{entry.name}: {p}" for p in error.problems]) from error
    return tuple(found)


def builtin_templates() -> list[Template]:
    """The templates shipped with telerad (``template_files/*.json``), by file name."""
    return list(_builtins())


def from_mrrt(html: str, *, modality: str = "", version: int = 1) -> Template:
    """The template an IHE MRRT HTML document describes (see :mod:`telerad.reporting.mrrt`);
    InvalidTemplate naming what is wrong."""
    # Imported here: the reader builds on this module, which must not import it at load time.
    from telerad.reporting.mrrt import from_mrrt as read  # noqa: PLC0415

    return read(html, modality=modality, version=version)


# -- rules -----------------------------------------------------------------------------------


def choose_template(templates: Sequence[Template], *, protocol_code: str | None,
                    modality: str) -> Template | None:
    """The template for the protocol (the highest version of those naming it), else the generic
    one of the modality (code ``generic_ct``, ``generic_mr``...), else None."""
    if protocol_code and protocol_code.strip():
        wanted = protocol_code.strip().upper()
        fitting = [t for t in templates if wanted in (p.upper() for p in t.protocols)]
        if fitting:
            return max(fitting, key=lambda t: t.version)
    generic = f"generic_{modality.strip().lower()}"
    fitting = [t for t in templates if t.code == generic]
    return max(fitting, key=lambda t: t.version) if fitting else None


def normal_content(template: Template) -> dict[str, str]:
    """The normal-findings content: every field that has a normal default, set to it."""
    return {field.id: field.normal for field in template.fields() if field.normal}


def problems(template: Template, content: Mapping[str, str], *,
             signing: bool) -> dict[str, str]:
    """Field id -> problem code of a report's content: ``required`` (a required field left
    blank, only when signing), ``not_a_number``, ``below_minimum``, ``above_maximum``,
    ``not_an_option``, ``too_long``, and ``unknown_field`` for an id the template lacks.
    A blank value is no value: a draft may leave any field blank."""
    fields = {field.id: field for field in template.fields()}
    found = {key: "unknown_field" for key in content if key not in fields}
    for field in fields.values():
        value = content.get(field.id, "")
        if len(value) > MAX_VALUE_LENGTH:
            found[field.id] = "too_long"
        elif not value.strip():
            if field.required and signing:
                found[field.id] = "required"
        elif problem := _value_problem(field, value):
            found[field.id] = problem
    return found


def _render_field(field: Field, value: str) -> str:
    # HTML form submission normalises a textarea's line breaks to CR LF: keep LF only.
    value = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not value:
        return ""
    if field.kind is FieldKind.TEXT and field.multiline:
        return value
    if field.kind is FieldKind.NUMBER and field.unit:
        return f"{field.label}: {value} {field.unit}"
    return f"{field.label}: {value}"


def render_sections(template: Template, content: Mapping[str, str]) -> list[tuple[str, str]]:
    """(section title, text) in report order, leaving out sections with nothing filled in: a
    multiline text is the paragraph itself, other fields ``label: value`` (and unit)."""
    rendered: list[tuple[str, str]] = []
    for section in template.sections:
        lines = [_render_field(f, content.get(f.id, "")) for f in section.fields]
        text = "\n".join(line for line in lines if line)
        if text:
            rendered.append((section.title, text))
    return rendered


def render_text(template: Template, content: Mapping[str, str]) -> str:
    """The report as plain text: the template's title, then each section's title and text,
    blocks separated by a blank line (what the ORU's OBX lines and the PDF carry)."""
    blocks = [template.title]
    blocks += [f"{title}\n{text}" for title, text in render_sections(template, content)]
    return "\n\n".join(blocks)
