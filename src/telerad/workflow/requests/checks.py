"""An imaging request's fields, checked field by field before it is filed, and the
contraindication warnings it raises.

:func:`problems` holds the rules :func:`telerad.workflow.requests.service.file_request`
enforces, one stable code per field, so that a form can show each problem beside its field
in the reader's language, and the API one English sentence (:func:`explain`): one set of
rules for every way a request comes in.

:func:`warnings` never blocks: a pregnant patient may need her CT, a low eGFR may be worth
the contrast. It tells the requesting physician what the radiologist will weigh.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telerad.workflow.sites.models import Urgency

#: A DICOM Modality (CS): CT, MR, ...
MODALITY = re.compile(r"^[A-Z0-9]{1,16}$")
_DATE = re.compile(r"^\d{8}$")
#: INS (Identifiant National de Santé) = the NIR: sex, year, month, department (2A and 2B in
#: Corsica), commune, order number, then a two-digit control key.
_INS = re.compile(r"^\d{5}(?:\d{2}|2A|2B)\d{8}$")
#: Lengths of the columns the request's free texts are stored in (PN and LO, 64 in DICOM).
LIMITS = {"patient_id": 64, "patient_name": 64, "ins": 32, "requesting_physician": 200,
          "exam_asked": 200}

#: Modalities that irradiate (a pregnancy must be weighed).
IONISING = frozenset({"CT", "CR", "DX", "XA", "RF", "MG", "NM", "PT"})
#: Below this eGFR (mL/min/1.73 m²), contrast media put the kidney at risk (ESUR guidelines).
EGFR_CONTRAST_LIMIT = 30.0
_NO_CONTRAST = re.compile(r"\b(?:without|sans|no|non)[\s-]+(?:contrast|contraste|injection|"
                          r"inject\w*|iode|pdc|gado\w*)", re.IGNORECASE)
_CONTRAST = re.compile(r"contrast|inject|angio|\bpdc\b|iod[ée]|gado|arthro", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class Contraindications:
    """What the radiologist weighs before contrast or radiation."""

    pregnancy: str = "unknown"  # no, possible, yes, unknown
    #: Estimated glomerular filtration rate, mL/min/1.73 m², if measured.
    egfr: float | None = None
    contrast_allergy: bool = False


@dataclass(frozen=True, kw_only=True)
class RequestForm:
    """The fields of an imaging request."""

    site_id: int
    patient_id: str
    patient_name: str
    patient_birth_date: str = ""
    patient_sex: str = ""
    ins: str = ""
    requesting_physician: str
    clinical_context: str
    clinical_question: str
    urgency: Urgency
    modality: str
    exam_asked: str
    contraindications: Contraindications = Contraindications()


def ins_valid(ins: str) -> bool:
    """The INS has its 15 characters and its control key is right (97 - NIR mod 97)."""
    ins = ins.replace(" ", "").upper()
    if not _INS.match(ins):
        return False
    nir = int(ins[:13].replace("2A", "19", 1).replace("2B", "18", 1))
    return int(ins[13:]) == 97 - nir % 97


def _text(value: str, field: str, *, required: bool) -> str | None:
    value = value.strip()
    if required and not value:
        return "required"
    # DICOM's value separator would split the value in the worklist and the images.
    if len(value) > LIMITS.get(field, 10_000) or (field in ("patient_id", "patient_name")
                                                  and "\\" in value):
        return "too_long"
    return None


def problems(form: RequestForm) -> dict[str, str]:
    """Each field's problem as a code (``required``, ``too_long``, ``format``, ``choice``,
    ``range``); empty when the request may be filed."""
    found: dict[str, str | None] = {
        "patient_id": _text(form.patient_id, "patient_id", required=True),
        "patient_name": _text(form.patient_name, "patient_name", required=True),
        "patient_birth_date": "format" if form.patient_birth_date and not _DATE.match(
            form.patient_birth_date) else None,
        "patient_sex": None if form.patient_sex in ("", "M", "F", "O") else "choice",
        "ins": "format" if form.ins.strip() and not ins_valid(form.ins) else None,
        "requesting_physician": _text(form.requesting_physician, "requesting_physician",
                                      required=True),
        "clinical_question": _text(form.clinical_question, "clinical_question",
                                   required=True),
        "modality": None if MODALITY.match(form.modality.strip().upper()) else "format",
        "exam_asked": _text(form.exam_asked, "exam_asked", required=True),
        "pregnancy": None if form.contraindications.pregnancy in (
            "no", "possible", "yes", "unknown") else "choice",
        "egfr": None if form.contraindications.egfr is None
        or 0 <= form.contraindications.egfr <= 200 else "range",
    }
    return {field: code for field, code in found.items() if code is not None}


#: What each field is called in the API's error messages.
_NAMES = {"patient_id": "the patient ID", "patient_name": "the patient's name",
          "patient_birth_date": "the birth date", "patient_sex": "the sex", "ins": "the INS",
          "requesting_physician": "the requesting physician",
          "clinical_question": "the clinical question", "modality": "the modality",
          "exam_asked": "the exam asked for", "pregnancy": "pregnancy", "egfr": "eGFR"}
#: What a format, choice or range problem of a field means.
_EXPECTED = {"patient_birth_date": "is YYYYMMDD", "patient_sex": "is M, F or O",
             "ins": "is 15 characters whose control key is right",
             "modality": "is a DICOM Modality such as CT or MR",
             "pregnancy": "is no, possible, yes or unknown",
             "egfr": "is between 0 and 200 mL/min/1.73 m²"}


def explain(field: str, code: str) -> str:
    """One problem of :func:`problems` as an English sentence (the API's message)."""
    name = _NAMES.get(field, field)
    if code == "required":
        why = ": it is what justifies the exam" if field == "clinical_question" else ""
        return f"{name} is required{why}"
    if code == "too_long":
        return f"{name} is at most {LIMITS.get(field, 10_000)} characters, without '\\'"
    return f"{name} {_EXPECTED.get(field, 'is not valid')}"


def uses_contrast(exam_asked: str) -> bool:
    """Whether the exam asked for names a contrast injection ("angio", "with contrast",
    "injecté", "gadolinium"...), and not its absence ("without contrast", "sans injection")."""
    return bool(_CONTRAST.search(_NO_CONTRAST.sub(" ", exam_asked)))


def warnings(*, modality: str, exam_asked: str, contraindications: Contraindications
             ) -> list[str]:
    """What to weigh before this exam, as codes: ``egfr_contrast``, ``allergy_contrast``,
    ``pregnancy_radiation``, ``pregnancy_gadolinium``."""
    contrast = uses_contrast(exam_asked)
    modality = modality.strip().upper()
    pregnant = contraindications.pregnancy in ("yes", "possible")
    egfr = contraindications.egfr
    found = [
        ("egfr_contrast", contrast and egfr is not None and egfr < EGFR_CONTRAST_LIMIT),
        ("allergy_contrast", contrast and contraindications.contrast_allergy),
        ("pregnancy_radiation", pregnant and modality in IONISING),
        ("pregnancy_gadolinium", pregnant and modality == "MR" and contrast),
    ]
    return [code for code, applies in found if applies]
