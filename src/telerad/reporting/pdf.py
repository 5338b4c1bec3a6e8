"""The signed report as a PDF: the document the hospital files (issue 5, point 4).

:func:`render_pdf` lays out one :class:`PdfReport` on A4 with reportlab's platypus: the site's
header, the kind of report, the patient, the request, the exam, the sections (indication,
technique, findings, conclusion), the critical findings that were called, the signature, then
each addendum with its own signature. Every page repeats the header and a footer with the
patient's name, birth date and accession number and "page i/n", so a loose page can be matched
to its patient. Every time is shown in the site's zone (e.g. Europe/Paris), with the zone named.

Choices, and why:

- **Font: Bitstream Vera, as shipped inside the reportlab package** (``reportlab/fonts``). The
  14 standard PDF fonts only cover WinAnsi, and a TTF is needed anyway to embed the glyphs.
  Vera covers Latin-1 plus what French writes outside it ("œ", "Œ", "€", "…", "—", "«»",
  "≤≥", the apostrophe U+2019), and since it comes with reportlab the same report gives the
  same bytes on every machine. DejaVu Sans (Vera's superset) was not taken: it is present on
  some machines only, and looking it up in system folders would make the PDF depend on the
  machine. A character Vera lacks is folded to its compatibility form without accents ("ő" ->
  "o", "①" -> "1") when Vera has that, else replaced by "?"; control and zero-width characters
  are dropped. It never fails.
- **User text is never markup.** Paragraph parses an XML-like markup: every value is escaped
  (``& < >``) before it reaches it; only this module's labels carry ``<b>`` and ``<br/>``.
- **Deterministic bytes.** The document is built with reportlab's ``invariant`` mode; its
  creation and modification dates are the latest signature time (the report's, or the last
  addendum's, in UTC); its document ID (PDF 1.7 §14.4, the trailer's ``/ID``) is derived from
  the content hashes, version and language, not from the clock nor ``SOURCE_DATE_EPOCH``.
  The same :class:`PdfReport` gives the same bytes with the same reportlab and zlib.
- **Metadata keep the patient out.** Title (kind and exam), author (the radiologist), subject
  (the accession number) and language are set; the patient's name is not: the document
  information dictionary is read and indexed by file managers, desktop search, DMS and mail
  gateways, and logged by tools that would never show the body. The name is in the body and
  on every footer, where the filed document needs it.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import reportlab
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer

from telerad.errors import InvalidInput


class InvalidPdfReport(InvalidInput):
    """A report that cannot be rendered: unknown kind, language or zone, or a naive time."""

    code = "invalid_pdf_report"


@dataclass(frozen=True, kw_only=True)
class Addendum:
    """A signed addendum, shown after the report with its own signature."""

    number: int
    text: str
    signer_name: str  # PN: FAMILY^Given
    signed_at: dt.datetime  # aware
    content_sha256: str


@dataclass(frozen=True, kw_only=True)
class PdfReport:
    """What the PDF shows; names are DICOM PN values, dates DICOM DA (YYYYMMDD)."""

    site_name: str
    site_timezone: str  # IANA zone: every time is shown in the site's local time
    kind: str  # "preliminary" | "final"
    title: str  # exam title
    patient_name: str
    patient_id: str
    ins: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""  # PS3.3 C.7.1.1 Patient's Sex: M, F or O
    accession_number: str = ""
    requesting_physician: str = ""
    urgency: str = ""  # already a label
    clinical_context: str = ""
    clinical_question: str = ""
    protocol: str = ""
    study_date: dt.datetime | None = None  # naive: already the site's local time (PS3.5 DT)
    sections: tuple[tuple[str, str], ...]  # (heading, text)
    critical_findings: tuple[str, ...] = ()  # each already worded, with the call
    radiologist_name: str
    signed_at: dt.datetime  # aware
    content_sha256: str
    version_number: int
    addenda: tuple[Addendum, ...] = ()
    language: str = "fr"  # "fr" | "en"


_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "preliminary": "Compte rendu préliminaire", "final": "Compte rendu définitif",
        "service": "Téléradiologie — telerad", "patient": "Patient", "name": "Nom",
        "birth": "Date de naissance", "sex": "Sexe", "ipp": "IPP", "ins": "INS",
        "request": "Demande", "physician": "Médecin demandeur", "urgency": "Urgence",
        "context": "Contexte clinique", "question": "Question posée", "exam": "Examen",
        "protocol": "Protocole", "accession": "N° d'examen", "date": "Date de l'examen",
        "critical": "Résultats critiques communiqués",
        "signed": "Signé électroniquement par {name} le {date} à {time} ({zone})",
        "version": "Version {number}", "sha": "Empreinte SHA-256 du contenu : {sha}",
        "addendum": "Addendum n° {number}", "at": "{date} à {time}", "born": "né(e) le {date}",
        "page": "page {page}/{pages}", "colon": " : ", "F": "féminin", "M": "masculin",
        "O": "autre",
    },
    "en": {
        "preliminary": "Preliminary report", "final": "Final report",
        "service": "Teleradiology — telerad", "patient": "Patient", "name": "Name",
        "birth": "Date of birth", "sex": "Sex", "ipp": "Patient ID (IPP)", "ins": "INS",
        "request": "Request", "physician": "Requesting physician", "urgency": "Urgency",
        "context": "Clinical context", "question": "Clinical question", "exam": "Exam",
        "protocol": "Protocol", "accession": "Accession number", "date": "Exam date",
        "critical": "Critical findings communicated",
        "signed": "Electronically signed by {name} on {date} at {time} ({zone})",
        "version": "Version {number}", "sha": "SHA-256 of the content: {sha}",
        "addendum": "Addendum {number}", "at": "{date} at {time}", "born": "born {date}",
        "page": "page {page}/{pages}", "colon": ": ", "F": "female", "M": "male",
        "O": "other",
    },
}

_FONT_DIR = Path(reportlab.__file__).parent / "fonts"
REGULAR = "TeleradVera"
BOLD = "TeleradVera-Bold"
_MARGIN = 20 * mm
_INK = colors.HexColor("#1f2937")
_ACCENT = colors.HexColor("#1e3a8a")
_ALERT_HEX = "#b91c1c"
_ALERT = colors.HexColor(_ALERT_HEX)
_DA = re.compile(r"\d{8}")


@functools.cache
def _covered() -> frozenset[int]:
    """Register the fonts once; the code points both faces can draw."""
    faces = [TTFont(REGULAR, str(_FONT_DIR / "Vera.ttf")),
             TTFont(BOLD, str(_FONT_DIR / "VeraBd.ttf"))]
    for face in faces:
        pdfmetrics.registerFont(face)
    pdfmetrics.registerFontFamily(REGULAR, normal=REGULAR, bold=BOLD, italic=REGULAR,
                                  boldItalic=BOLD)
    maps = [{c for c, glyph in face.face.charToGlyph.items() if glyph} for face in faces]
    return frozenset(maps[0] & maps[1])


def clean_text(text: str) -> str:
    """``text`` with only characters the font draws (see the module's docstring); newlines
    are kept as ``\\n``."""
    covered = _covered()
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    out: list[str] = []
    for char in text:
        if char == "\n" or ord(char) in covered:
            out.append(char)
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Mn", "Me"):
            out.append(" " if char in "\t\v\f" else "")  # controls, zero-width, lone marks
        elif category.startswith("Z"):
            out.append(" ")
        else:
            folded = [c for c in unicodedata.normalize("NFKD", char)
                      if not unicodedata.category(c).startswith("M")]
            ok = folded and all(ord(c) in covered for c in folded)
            out.append("".join(folded) if ok else "?")
    return "".join(out)


def _markup(text: str) -> str:
    """User text as Paragraph markup that means exactly that text."""
    return escape(clean_text(text)).replace("\n", "<br/>")


def person_name(value: str, *, doctor: bool = False) -> str:
    """A DICOM PN (PS3.5 §6.2: FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX) as it is written on a
    report: "DUPONT Marie" for a patient (family name in capitals, as French identity
    rules want it), "Dr Alice MARTIN" for a doctor (PN prefix, else "Dr"). Only the first
    component group is shown: the ideographic and phonetic ones ("=") are not in the font."""
    alphabetic = value.partition("=")[0]
    family, given, middle, prefix, suffix = ([p.strip() for p in alphabetic.split("^")]
                                             + [""] * 5)[:5]
    given = " ".join(p for p in (given, middle) if p)
    if given.isupper():
        given = given.title()  # "MARIE-CLAIRE" from a RIS -> "Marie-Claire"
    family = family.upper()
    if doctor:
        parts = [prefix or ("Dr" if family or given else ""), given, family, suffix]
    else:
        parts = [family, given, suffix]
    return " ".join(p for p in parts if p) or "—"


def _da(value: str) -> str:
    """DICOM DA (YYYYMMDD) as dd/mm/yyyy; anything else is shown as written."""
    return f"{value[6:8]}/{value[4:6]}/{value[:4]}" if _DA.fullmatch(value) else value


def _aware(moment: dt.datetime, what: str) -> dt.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidPdfReport(f"{what} must be timezone-aware")
    return moment


@dataclass(frozen=True, kw_only=True)
class _Context:
    labels: dict[str, str]
    zone: ZoneInfo
    zone_name: str

    def when(self, moment: dt.datetime) -> tuple[str, str]:
        """(dd/mm/yyyy, HH:MM) in the site's zone; a naive time is already local."""
        local = moment.astimezone(self.zone) if moment.tzinfo is not None else moment
        return local.strftime("%d/%m/%Y"), local.strftime("%H:%M")

    def signature(self, signer: str, moment: dt.datetime) -> str:
        date, time = self.when(moment)
        return self.labels["signed"].format(name=person_name(signer, doctor=True), date=date,
                                            time=time, zone=self.zone_name)


def _styles() -> dict[str, ParagraphStyle]:
    body = ParagraphStyle("body", fontName=REGULAR, fontSize=10, leading=13.5, textColor=_INK,
                          spaceAfter=4)
    return {
        "body": body,
        "field": ParagraphStyle("field", parent=body, spaceAfter=1.5),
        "title": ParagraphStyle("title", parent=body, fontName=BOLD, fontSize=16, leading=20,
                                textColor=_ACCENT, spaceAfter=6),
        "block": ParagraphStyle("block", parent=body, fontName=BOLD, fontSize=11, leading=14,
                                textColor=_ACCENT, spaceBefore=8, spaceAfter=3, keepWithNext=1),
        "heading": ParagraphStyle("heading", parent=body, fontName=BOLD, fontSize=10.5,
                                  spaceBefore=8, spaceAfter=3, keepWithNext=1),
        "critical": ParagraphStyle("critical", parent=body, borderColor=_ALERT, borderWidth=1,
                                   borderPadding=6, backColor=colors.HexColor("#fef2f2"),
                                   spaceBefore=12, spaceAfter=10),
        "small": ParagraphStyle("small", parent=body, fontSize=8, leading=10.5,
                                textColor=colors.HexColor("#4b5563")),
    }


def _field(label: str, value: str, ctx: _Context, style: ParagraphStyle) -> Paragraph:
    return Paragraph(f"<b>{_markup(label + ctx.labels['colon'])}</b>{_markup(value)}", style)


def _story(report: PdfReport, ctx: _Context) -> list[Any]:
    labels, st = ctx.labels, _styles()
    story: list[Any] = [Paragraph(_markup(labels[report.kind]), st["title"])]

    def block(heading: str, fields: list[tuple[str, str]], *, keep: tuple[str, ...] = ()) -> None:
        story.append(Paragraph(_markup(heading), st["block"]))
        story.extend(_field(labels[key], value, ctx, st["field"])
                     for key, value in fields if value.strip() or key in keep)

    block(labels["patient"], [
        ("name", person_name(report.patient_name)), ("birth", _da(report.patient_birth_date)),
        ("sex", labels.get(report.patient_sex.strip().upper(), report.patient_sex)),
        ("ipp", report.patient_id), ("ins", report.ins)], keep=("name", "ipp"))
    block(labels["request"], [
        ("physician", person_name(report.requesting_physician, doctor=True)
         if report.requesting_physician.strip() else ""),
        ("urgency", report.urgency), ("context", report.clinical_context),
        ("question", report.clinical_question)])
    story.append(Paragraph(_markup(labels["exam"]), st["block"]))
    story.append(Paragraph(f"<b>{_markup(report.title)}</b>", st["field"]))
    date = ""
    if report.study_date is not None:
        day, time = ctx.when(report.study_date)
        date = labels["at"].format(date=day, time=time)
    story.extend(_field(labels[key], value, ctx, st["field"]) for key, value in (
        ("protocol", report.protocol), ("accession", report.accession_number), ("date", date))
        if value.strip())

    for heading, text in report.sections:
        if not text.strip():
            continue  # an optional section left empty is not shown
        story.append(Paragraph(_markup(heading), st["heading"]))
        story.extend(Paragraph(_markup(part.strip("\n")), st["body"])
                     for part in re.split(r"\n\s*\n", text) if part.strip())

    if report.critical_findings:
        lines = [f"<font color='{_ALERT_HEX}'><b>{_markup(labels['critical'])}</b></font>"]
        lines += [f"• {_markup(finding)}" for finding in report.critical_findings]
        story.append(Paragraph("<br/>".join(lines), st["critical"]))

    story.append(Spacer(1, 10))
    story.append(KeepTogether([
        Paragraph(f"<b>{_markup(ctx.signature(report.radiologist_name, report.signed_at))}</b>",
                  st["body"]),
        Paragraph(_markup(labels["version"].format(number=report.version_number)), st["small"]),
        Paragraph(_markup(labels["sha"].format(sha=report.content_sha256)), st["small"])]))

    for addendum in report.addenda:
        story.append(Paragraph(_markup(labels["addendum"].format(number=addendum.number)),
                               st["block"]))
        story.extend(Paragraph(_markup(part.strip("\n")), st["body"])
                     for part in re.split(r"\n\s*\n", addendum.text) if part.strip())
        story.append(KeepTogether([
            Paragraph(f"<b>{_markup(ctx.signature(addendum.signer_name, addendum.signed_at))}"
                      "</b>", st["body"]),
            Paragraph(_markup(labels["sha"].format(sha=addendum.content_sha256)),
                      st["small"])]))
    return story


def _fit(text: str, font: str, size: float, width: float) -> str:
    """``text`` cut with "…" to fit ``width`` points on one line."""
    if pdfmetrics.stringWidth(text, font, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


@dataclass(frozen=True, kw_only=True)
class _Decor:
    """What every page shows around the flow: header, footer, page i/n."""

    site: str
    service: str
    footer: str
    page: str

    def draw(self, canvas: Any, page: int, pages: int) -> None:
        width, height = A4
        right, usable = width - _MARGIN, width - 2 * _MARGIN
        canvas.saveState()
        canvas.setFillColor(_ACCENT)
        canvas.setFont(REGULAR, 9)
        canvas.drawRightString(right, height - 15 * mm, self.service)
        room = usable - pdfmetrics.stringWidth(self.service, REGULAR, 9) - 6 * mm
        canvas.setFont(BOLD, 12)
        canvas.drawString(_MARGIN, height - 15 * mm, _fit(self.site, BOLD, 12, room))
        canvas.setStrokeColor(_ACCENT)
        canvas.setLineWidth(0.8)
        canvas.line(_MARGIN, height - 18 * mm, right, height - 18 * mm)
        canvas.setStrokeColor(colors.grey)
        canvas.setLineWidth(0.4)
        canvas.line(_MARGIN, 15 * mm, right, 15 * mm)
        canvas.setFillColor(colors.HexColor("#4b5563"))
        canvas.setFont(REGULAR, 8)
        number = self.page.format(page=page, pages=pages)
        canvas.drawRightString(right, 10 * mm, number)
        room = usable - pdfmetrics.stringWidth(number, REGULAR, 8) - 6 * mm
        canvas.drawString(_MARGIN, 10 * mm, _fit(self.footer, REGULAR, 8, room))
        canvas.restoreState()


class _Canvas(Canvas):  # type: ignore[misc]  # reportlab has no type hints
    """A canvas that holds its pages back until the end, to print "page i/n" (the total is
    known only then), and that pins the PDF's dates and document ID."""

    def __init__(self, *args: Any, decor: _Decor, created: str, seed: bytes,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._telerad_pages: list[dict[str, Any]] = []
        self._telerad_decor = decor
        # PDF 1.7 §7.9.4 date string for /CreationDate and /ModDate, instead of the clock.
        self.setDateFormatter(lambda *_: created)
        # The trailer's /ID (PDF 1.7 §14.4) is reportlab's MD5 of this and the info fields.
        self._doc.signature = hashlib.md5(seed, usedforsecurity=False)

    def showPage(self) -> None:
        self._telerad_pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        pages = len(self._telerad_pages)
        for number, state in enumerate(self._telerad_pages, start=1):
            self.__dict__.update(state)
            self._telerad_decor.draw(self, number, pages)
            super().showPage()
        super().save()


def render_pdf(report: PdfReport) -> bytes:
    """The report as PDF bytes, the same bytes for the same ``report``."""
    labels = _LABELS.get(report.language)
    if labels is None:
        raise InvalidPdfReport(f"no labels in language {report.language!r}: fr or en")
    if report.kind not in ("preliminary", "final"):
        raise InvalidPdfReport(f"a report PDF is preliminary or final, not {report.kind!r}")
    try:
        zone = ZoneInfo(report.site_timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidPdfReport(f"unknown time zone {report.site_timezone!r}") from error
    moments = [_aware(report.signed_at, "signed_at")]
    moments += [_aware(a.signed_at, f"addendum {a.number} signed_at") for a in report.addenda]
    _covered()
    ctx = _Context(labels=labels, zone=zone, zone_name=report.site_timezone)

    birth = _da(report.patient_birth_date)
    footer = [person_name(report.patient_name),
              labels["born"].format(date=birth) if birth else "",
              f"{labels['ipp']} {report.patient_id}" if report.patient_id else "",
              f"{labels['accession']} {report.accession_number}"
              if report.accession_number else ""]
    decor = _Decor(site=clean_text(report.site_name).replace("\n", " "),
                   service=labels["service"], page=labels["page"],
                   footer=clean_text(" · ".join(p for p in footer if p)).replace("\n", " "))
    latest = max(moments).astimezone(dt.UTC)
    seed = "|".join([report.content_sha256, str(report.version_number), report.kind,
                     report.language, *(a.content_sha256 for a in report.addenda)])
    canvasmaker = functools.partial(
        _Canvas, decor=decor, seed=seed.encode(),
        created=latest.strftime("D:%Y%m%d%H%M%S+00'00'"))

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer, pagesize=A4, leftMargin=_MARGIN, rightMargin=_MARGIN, topMargin=26 * mm,
        bottomMargin=22 * mm, invariant=1, lang=report.language, creator="telerad",
        title=clean_text(f"{labels[report.kind]} — {report.title}").replace("\n", " "),
        author=person_name(report.radiologist_name, doctor=True),
        subject=report.accession_number, keywords="")
    document.build(_story(report, ctx), canvasmaker=canvasmaker)
    return buffer.getvalue()
