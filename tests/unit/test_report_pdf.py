"""The report PDF: every block, local times, pages, addenda, determinism, escaping, odd text."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io

import pypdf
import pytest

from telerad.errors import InvalidInput
from telerad.reporting.pdf import (
    Addendum,
    InvalidPdfReport,
    PdfReport,
    clean_text,
    person_name,
    render_pdf,
)

_SIGNED = dt.datetime(2026, 11, 24, 2, 12, tzinfo=dt.UTC)  # 03:12 in Paris (CET, UTC+1)
_REPORT = PdfReport(
    site_name="Centre hospitalier de Carcassonne",
    site_timezone="Europe/Paris",
    kind="final",
    title="Scanner cérébral sans injection",
    patient_name="DUPONT^Marie",
    patient_id="IPP778899",
    ins="2500312345678",
    patient_birth_date="19500312",
    patient_sex="F",
    accession_number="CAR26-0042",
    requesting_physician="DURAND^Jean",
    urgency="Urgence vitale",
    clinical_context="Chute de sa hauteur sous anticoagulant",
    clinical_question="Hématome intracrânien ?",
    protocol="TDM crâne sans injection",
    study_date=dt.datetime(2026, 11, 24, 1, 50, tzinfo=dt.UTC),
    sections=(
        ("Indication", "Traumatisme crânien sous AVK."),
        ("Technique", "Acquisition hélicoïdale sans injection."),
        ("Résultats", "Pas d'hématome extra-dural.\n\nPas d'effet de masse."),
        ("Conclusion", "Hématome sous-dural aigu droit de 8 mm."),
    ),
    critical_findings=("Hématome sous-dural — appelé au Dr DURAND à 03:05, relu",),
    radiologist_name="MARTIN^Alice",
    signed_at=_SIGNED,
    content_sha256="ab" * 32,
    version_number=2,
)
_ADDENDA = (
    Addendum(number=1, text="Contrôle à 6 h recommandé.", signer_name="MARTIN^Alice",
             signed_at=dt.datetime(2026, 11, 24, 7, 30, tzinfo=dt.UTC), content_sha256="cd" * 32),
    Addendum(number=2, text="Avis neurochirurgical pris.", signer_name="LEROY^Paul^^Pr",
             signed_at=dt.datetime(2027, 7, 1, 10, 0, tzinfo=dt.UTC), content_sha256="ef" * 32),
)


def _pages(pdf: bytes) -> list[str]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return [page.extract_text().replace("\xa0", " ") for page in reader.pages]


def _text(pdf: bytes) -> str:
    return "\n".join(_pages(pdf))


def _in_order(text: str, *parts: str) -> None:
    at = -1
    for part in parts:
        found = text.find(part, at + 1)
        assert found > at, f"{part!r} missing or out of order"
        at = found


def test_every_block_appears_in_order():
    pdf = render_pdf(_REPORT)
    assert pdf.startswith(b"%PDF-")
    text = _text(pdf)
    _in_order(
        text,
        "Compte rendu définitif",
        "Nom : DUPONT Marie", "Date de naissance : 12/03/1950", "Sexe : féminin",
        "IPP : IPP778899", "INS : 2500312345678",
        "Médecin demandeur : Dr Jean DURAND", "Urgence : Urgence vitale",
        "Contexte clinique : Chute de sa hauteur sous anticoagulant",
        "Question posée : Hématome intracrânien ?",
        "Scanner cérébral sans injection", "Protocole : TDM crâne sans injection",
        "N° d'examen : CAR26-0042", "Date de l'examen : 24/11/2026 à 02:50",
        "Indication", "Traumatisme crânien sous AVK.", "Technique", "Résultats",
        "Pas d'hématome extra-dural.", "Pas d'effet de masse.",
        "Conclusion", "Hématome sous-dural aigu droit de 8 mm.",
        "Résultats critiques communiqués", "appelé au Dr DURAND à 03:05, relu",
        "Signé électroniquement par Dr Alice MARTIN le 24/11/2026 à 03:12 (Europe/Paris)",
        "Version 2", "Empreinte SHA-256 du contenu : " + "ab" * 32,
    )
    assert "Centre hospitalier de Carcassonne" in text
    assert "Téléradiologie — telerad" in text


def test_pages_are_a4_with_metadata_but_no_patient_name():
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(_REPORT)))
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)
    meta = reader.metadata
    assert meta is not None
    assert meta.title == "Compte rendu définitif — Scanner cérébral sans injection"
    assert meta.author == "Dr Alice MARTIN"
    assert meta.subject == "CAR26-0042"
    assert str(meta["/CreationDate"]) == "D:20261124021200+00'00'"
    assert "DUPONT" not in repr(dict(meta))
    assert "Marie" not in repr(dict(meta))


def test_empty_optional_fields_and_sections_are_left_out():
    report = dataclasses.replace(_REPORT, ins="", clinical_context="", protocol="",
                                 sections=(("Technique", "  "), ("Conclusion", "Normal.")))
    text = _text(render_pdf(report))
    assert "INS" not in text
    assert "Contexte clinique" not in text
    assert "Protocole" not in text
    assert "Technique" not in text
    assert "Conclusion\nNormal." in text


def test_a_long_report_flows_over_pages_with_numbers_and_identity_on_each():
    findings = " ".join(["Parenchyme cérébral de densité normale, sans lésion focale."] * 40)
    report = dataclasses.replace(
        _REPORT, sections=(("Résultats", "\n\n".join([findings] * 6)),
                           ("Conclusion", "Pas d'anomalie.")))
    pages = _pages(render_pdf(report))
    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        assert f"page {number}/{len(pages)}" in page
        assert "DUPONT Marie" in page
        assert "N° d'examen CAR26-0042" in page
        assert "Centre hospitalier de Carcassonne" in page
    assert "Signé électroniquement" in pages[-1]
    assert "Signé électroniquement" not in pages[0]


def test_a_word_longer_than_a_line_is_split_not_lost():
    report = dataclasses.replace(_REPORT, sections=(("Conclusion", "x" * 400),))
    assert _text(render_pdf(report)).replace("\n", "").count("x") >= 400


def test_addenda_follow_the_report_with_their_own_signatures_in_local_time():
    text = _text(render_pdf(dataclasses.replace(_REPORT, addenda=_ADDENDA)))
    _in_order(
        text,
        "Conclusion",
        "Signé électroniquement par Dr Alice MARTIN le 24/11/2026 à 03:12 (Europe/Paris)",
        "Addendum n° 1", "Contrôle à 6 h recommandé.",
        "Signé électroniquement par Dr Alice MARTIN le 24/11/2026 à 08:30 (Europe/Paris)",
        "Empreinte SHA-256 du contenu : " + "cd" * 32,
        "Addendum n° 2", "Avis neurochirurgical pris.",
        # July: summer time, UTC+2; the PN prefix replaces "Dr".
        "Signé électroniquement par Pr Paul LEROY le 01/07/2027 à 12:00 (Europe/Paris)",
    )


def test_the_same_report_gives_the_same_bytes(monkeypatch: pytest.MonkeyPatch):
    report = dataclasses.replace(_REPORT, addenda=_ADDENDA)
    first = hashlib.sha256(render_pdf(report)).hexdigest()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # reportlab reads it; we must not
    assert hashlib.sha256(render_pdf(report)).hexdigest() == first
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(report)))
    assert reader.metadata is not None
    assert str(reader.metadata["/CreationDate"]) == "D:20270701100000+00'00'"  # latest signature


def test_another_version_gets_another_document_id():
    def document_id(report: PdfReport) -> object:
        return pypdf.PdfReader(io.BytesIO(render_pdf(report))).trailer["/ID"]

    assert document_id(_REPORT) != document_id(dataclasses.replace(_REPORT, version_number=3))
    assert document_id(_REPORT) == document_id(_REPORT)


def test_user_text_is_never_read_as_markup():
    report = dataclasses.replace(
        _REPORT,
        patient_name="O'<b>NEIL</b>^Anne & Co",
        clinical_question="<font size=40>big</font> & <unclosed",
        sections=(("Résultats <i>", "Lésion <b>gras</b> &amp; AT&T <br/> fin"),
                  ("Conclusion", "a < b > c")),
        critical_findings=("<b>Dissection</b> & hémopéricarde — appelé à 03:01",),
    )
    text = _text(render_pdf(report))
    assert "Lésion <b>gras</b> &amp; AT&T <br/> fin" in text
    assert "<font size=40>big</font> & <unclosed" in text
    assert "Résultats <i>" in text
    assert "a < b > c" in text
    assert "<b>Dissection</b> & hémopéricarde" in text
    assert "O'<B>NEIL</B>" in text


def test_french_and_odd_characters_render_or_are_replaced():
    report = dataclasses.replace(
        _REPORT,
        sections=(("Conclusion",
                   "Œdème, cœur, 12 € l\u2019unité « ok » … ≥ 3\u200b cm e\u0301 \x07ő 字 ①"),),
    )
    text = _text(render_pdf(report))
    # U+2019, œ, € are drawn (and extracted) as themselves; decomposed é is composed.
    assert "Œdème, cœur, 12 € l\u2019unité « ok » … ≥ 3 cm é o ? 1" in text


@pytest.mark.parametrize(("raw", "shown"), [
    ("a\u200bb\x00c", "abc"),
    ("ligne 1\r\nligne 2\rligne 3", "ligne 1\nligne 2\nligne 3"),
    ("tab\there", "tab here"),
    ("Ångström ñ ß", "Ångström ñ ß"),
    ("→ ✓ 字", "? ? ?"),
    ("Łódź", "Łódz"),  # Vera has Ł but not ź: its accent is dropped
])
def test_clean_text(raw: str, shown: str):
    assert clean_text(raw) == shown


def test_english_labels():
    report = dataclasses.replace(_REPORT, language="en", addenda=_ADDENDA[:1])
    text = _text(render_pdf(report))
    _in_order(
        text,
        "Final report", "Name: DUPONT Marie", "Date of birth: 12/03/1950", "Sex: female",
        "Requesting physician: Dr Jean DURAND", "Clinical question:",
        "Accession number: CAR26-0042", "Exam date: 24/11/2026 at 02:50",
        "Critical findings communicated",
        "Electronically signed by Dr Alice MARTIN on 24/11/2026 at 03:12 (Europe/Paris)",
        "SHA-256 of the content: " + "ab" * 32,
        "Addendum 1",
    )
    assert "Teleradiology — telerad" in text
    assert "Signé" not in text
    assert "Médecin" not in text


def test_preliminary_reports_say_so():
    text = _text(render_pdf(dataclasses.replace(_REPORT, kind="preliminary")))
    assert "Compte rendu préliminaire" in text
    assert "définitif" not in text


def test_times_follow_the_site_zone():
    report = dataclasses.replace(_REPORT, site_timezone="America/Martinique")
    text = _text(render_pdf(report)).replace("\n", " ")  # the longer line wraps
    assert "le 23/11/2026 à 22:12 (America/Martinique)" in text


@pytest.mark.parametrize("change", [
    {"signed_at": dt.datetime(2026, 11, 24, 2, 12)},
    {"addenda": (dataclasses.replace(_ADDENDA[0], signed_at=dt.datetime(2026, 11, 24)),)},
    {"site_timezone": "Europe/Nowhere"},
    {"site_timezone": "../etc"},
    {"kind": "draft"},
    {"language": "de"},
])
def test_what_cannot_be_rendered_is_refused(change: dict[str, object]):
    with pytest.raises(InvalidPdfReport) as caught:
        render_pdf(dataclasses.replace(_REPORT, **change))  # type: ignore[arg-type]
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.code == "invalid_pdf_report"


@pytest.mark.parametrize(("pn", "doctor", "shown"), [
    ("DUPONT^Marie", False, "DUPONT Marie"),
    ("dupont^MARIE-CLAIRE", False, "DUPONT Marie-Claire"),
    ("DUPONT^Marie^Louise", False, "DUPONT Marie Louise"),
    ("MARTIN^Alice", True, "Dr Alice MARTIN"),
    ("LEROY^Paul^^Pr", True, "Pr Paul LEROY"),
    ("YAMADA^Tarou=山田^太郎=やまだ^たろう", False, "YAMADA Tarou"),
    ("", False, "—"),
    ("", True, "—"),
])
def test_person_name(pn: str, doctor: bool, shown: str):
    assert person_name(pn, doctor=doctor) == shown
