"""Results out: a signed report as an HL7 v2.5 ORU^R01, unsolicited transmission of an
observation (§7.3.1), shaped as IHE RAD and IHE LTW results are (one ORDER_OBSERVATION
group: ORC, OBR, then OBX). Pure: :func:`oru_r01` returns ER7 text; the delivery channel
encodes it as UTF-8 (MSH-18 says so) and frames it with MLLP.

=======  ====================================================================================
MSH      MSH-3 ``TELERAD``, MSH-4 sending facility, MSH-5/6 receiver, MSH-7 ``now``,
         MSH-9 ``ORU^R01^ORU_R01``, MSH-10 control ID (the same for a resend: the receiver can
         drop a duplicate), MSH-11 ``P``, MSH-12 ``2.5``, MSH-18 ``UNICODE UTF-8``; MSH-15/16
         empty: original acknowledgement mode (§2.9.2), the peer answers with one ACK
PID      PID-3 the patient ID (CX, its authority as namespace, type ``PI``) then the INS
         (authority ``ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO``, type ``INS``, as IHE PAM
         FR writes it and :mod:`telerad.hl7.orders` reads it); PID-5 the DICOM PN as XPN,
         name type ``L``; PID-7 birth date; PID-8 sex
ORC      ORC-1 ``RE`` (observations to follow, table 0119), ORC-2/3 placer and filler order
         numbers, ORC-12 ordering provider
OBR      OBR-2/3 placer/filler, OBR-4 procedure (code^text), OBR-7 observation date/time (the
         exam), OBR-16 ordering provider, OBR-18 accession number (placer field 1, where RIS
         read it), OBR-22 results report/status change (the signature), OBR-24 ``RAD``
         (table 0074), OBR-25 result status, OBR-32 principal result interpreter (NDL)
OBX (TX) one per line of the report (§7.4.2.4: repeated OBX with the same OBX-3 and OBX-4
         carry one text), OBX-3 LOINC 18748-4, OBX-4 ``1``, OBX-8 ``AA`` when the report
         holds a critical finding, OBX-11 the result status, OBX-14 the signature time,
         OBX-16 the radiologist
OBX (ED) the PDF, OBX-4 ``2``, OBX-5 ``^application^pdf^Base64^<data>`` (ED, §2.A.24)
=======  ====================================================================================

Result status (OBR-25, table 0123; OBX-11, table 0085): ``P`` preliminary, ``F`` final,
``C`` correction (an addendum: the whole corrected report again). Times are TS (§2.A.77)
to the second with their UTC offset. Text is escaped (§2.7.4); control characters that MLLP
framing or a segment reader would take for delimiters travel as ``\\Xhh\\`` (§2.7.5).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum

from telerad.hl7.ack import timestamp
from telerad.hl7.messages import DEFAULT_ENCODING, escape, render

#: OBX-3 of the report text and PDF: LOINC 18748-4, diagnostic imaging study (report).
REPORT_OBSERVATION = "18748-4^Diagnostic Imaging Report^LN"
#: PID-3.4 of the INS (ANS, INS-NIR): namespace & OID & ISO, as IHE PAM FR writes it.
INS_AUTHORITY = "ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO"
#: PID-8 values (HL7 table 0001).
_SEXES = frozenset({"", "F", "M", "O", "U", "A", "N"})
_LINES = re.compile(r"\r\n|\r|\n")


class ResultStatus(StrEnum):
    """OBR-25 (HL7 table 0123) and OBX-11 (table 0085) of a report."""

    PRELIMINARY = "P"
    """Preliminary: may be released to the emergency doctor; a final will follow."""
    FINAL = "F"
    """Final: signed, it never changes."""
    CORRECTION = "C"
    """Correction of a final (an addendum): replaces what the receiver holds."""


@dataclass(frozen=True, kw_only=True)
class ReportResult:
    """One version of a report, as the hospital's RIS is to receive it. Valid once built."""

    control_id: str  # MSH-10, stable for one version (a resend is the same message)
    sending_facility: str  # MSH-4 (MSH-3 is "TELERAD")
    receiving_application: str  # MSH-5
    receiving_facility: str  # MSH-6
    patient_id: str
    patient_id_authority: str = ""
    ins: str = ""
    patient_name: str  # DICOM PN: FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX
    patient_birth_date: str = ""  # YYYYMMDD
    patient_sex: str = ""
    placer_order_number: str = ""
    filler_order_number: str = ""
    accession_number: str = ""
    procedure_code: str = ""
    procedure_text: str = ""
    requesting_physician: str = ""  # DICOM PN
    result_status: str  # a ResultStatus value
    observed_at: dt.datetime  # OBR-7, aware
    signed_at: dt.datetime  # OBR-22 and OBX-14, aware
    radiologist_name: str  # DICOM PN -> OBR-32
    radiologist_id: str = ""
    text: str  # the report, one OBX per line
    pdf: bytes | None = None  # -> one OBX of type ED
    critical: bool = False  # OBX-8 "AA" on the text OBX

    def __post_init__(self) -> None:
        problems = [name for name in ("control_id", "patient_id", "patient_name",
                                      "radiologist_name") if not getattr(self, name).strip()]
        if not self.text.strip():
            problems.append("text (empty)")
        if self.result_status not in {s.value for s in ResultStatus}:
            problems.append(f"result_status ({self.result_status!r} is not P, F or C)")
        problems += [f"{name} (not timezone-aware)" for name in ("observed_at", "signed_at")
                     if getattr(self, name).utcoffset() is None]
        if self.patient_sex not in _SEXES:
            problems.append(f"patient_sex ({self.patient_sex!r} is not in HL7 table 0001)")
        if self.patient_birth_date and not re.fullmatch(r"\d{8}", self.patient_birth_date):
            problems.append("patient_birth_date (not YYYYMMDD)")
        if self.pdf is not None and not self.pdf:
            problems.append("pdf (empty)")
        if problems:
            raise ValueError("a report result needs valid " + ", ".join(problems))


def oru_r01(result: ReportResult, *, now: dt.datetime) -> str:
    """``result`` as an ORU^R01 in ER7, segments ending with CR (§2.5.1)."""
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    r = result
    status = ResultStatus(r.result_status).value
    signed = timestamp(r.signed_at)
    ordering = _xcn("", r.requesting_physician) if r.requesting_physician else ""
    radiologist = _xcn(r.radiologist_id, r.radiologist_name)
    identifiers = [DEFAULT_ENCODING.join(escape(r.patient_id), "", "",
                                         escape(r.patient_id_authority), "PI")]
    if r.ins:
        identifiers.append(f"{escape(r.ins)}^^^{INS_AUTHORITY}^INS")
    segments: list[list[str]] = [
        ["MSH", "TELERAD", escape(r.sending_facility), escape(r.receiving_application),
         escape(r.receiving_facility), timestamp(now), "", "ORU^R01^ORU_R01",
         escape(r.control_id), "P", "2.5", "", "", "", "", "", "UNICODE UTF-8"],
        ["PID", "1", "", DEFAULT_ENCODING.repetition.join(identifiers), "",
         _xpn(r.patient_name), "", r.patient_birth_date, r.patient_sex],
        ["ORC", "RE", escape(r.placer_order_number), escape(r.filler_order_number),
         *[""] * 8, ordering],
        _obr(r, ordering=ordering, signed=signed, status=status),
    ]
    lines = _LINES.split(r.text)
    for n, line in enumerate(lines, 1):
        segments.append(["OBX", str(n), "TX", REPORT_OBSERVATION, "1", escape(line), "", "",
                         "AA" if r.critical else "", "", "", status, "", "", signed, "",
                         radiologist])
    if r.pdf is not None:
        data = base64.b64encode(r.pdf).decode("ascii")  # A-Z a-z 0-9 + / =: no delimiter
        segments.append(["OBX", str(len(lines) + 1), "ED", REPORT_OBSERVATION, "2",
                         f"^application^pdf^Base64^{data}", "", "", "", "", "", status, "", "",
                         signed, "", radiologist])
    return render(segments)


def _obr(r: ReportResult, *, ordering: str, signed: str, status: str) -> list[str]:
    fields = [""] * 33
    fields[0] = "OBR"
    fields[1] = "1"
    fields[2] = escape(r.placer_order_number)
    fields[3] = escape(r.filler_order_number)
    fields[4] = DEFAULT_ENCODING.join(escape(r.procedure_code), escape(r.procedure_text))
    fields[7] = timestamp(r.observed_at)
    fields[16] = ordering
    fields[18] = escape(r.accession_number)
    fields[22] = signed
    fields[24] = "RAD"
    fields[25] = status
    # OBR-32 is NDL: its first component is a CNN whose parts are subcomponents.
    fields[32] = "&".join([escape(r.radiologist_id), *_name_parts(r.radiologist_name)]
                          ).rstrip("&")
    return fields


def _name_parts(pn: str) -> list[str]:
    """A DICOM PN (FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX, PS3.5 §6.2.1; its alphabetic group)
    as the escaped family, given, second names, suffix, prefix of an XPN/XCN (§2.A.88)."""
    family, given, middle, prefix, suffix = (pn.split("=", 1)[0].split("^") + [""] * 5)[:5]
    return [escape(p.strip()) for p in (family, given, middle, suffix, prefix)]


def _xpn(pn: str) -> str:
    """A patient name as XPN, name type L (legal, table 0200)."""
    return DEFAULT_ENCODING.join(*_name_parts(pn), "", "L")


def _xcn(identifier: str, pn: str) -> str:
    """A person as XCN: ID number, then the name (§2.A.86)."""
    return DEFAULT_ENCODING.join(escape(identifier), *_name_parts(pn))
