"""Orders in: ORM^O01 (HL7 v2.5 §4.4) and OMI^O23 (§4.4.9, imaging order) read into plain
:class:`Order` values, one per ORC/OBR group, holding what an imaging request needs.

Where each value comes from, first non-empty wins:

=====================  ==================================================================
patient_id             PID-3, first identifier that is not the INS (else the INS; PID-2)
ins                    PID-3 identifier typed ``INS`` or assigned by an INS authority
patient_name           PID-5 (the legal name, type L, if repeated) as DICOM PN
birth date, sex        PID-7 (first 8 digits, YYYYMMDD), PID-8 (M, F, O; others empty)
requesting_physician   ORC-12, OBR-16 (XCN) as DICOM PN, or the ID when no name is given
placer / filler        ORC-2 / ORC-3, OBR-2 / OBR-3 (entity identifier, component 1)
accession_number       IPC-1 (OMI), OBR-18 (placer field 1, used so by most RIS)
procedure              OBR-4 (else OBR-44, procedure code): code (component 1) and text
                       (component 2, else 5, else 1)
modality               IPC-5 (OMI), OBR-24 (table 0074), else guessed from OBR-4's text
clinical_question      OBR-31 (reason for study), else OBR-13 (relevant clinical info)
clinical_context       OBR-13 when OBR-31 gave the question
priority -> urgency    TQ1-9, ORC-7.6, OBR-27.6, OBR-5: S/STAT -> life_threatening,
                       A/ASAP -> urgent, R/ROUTINE -> scheduled, others ``""``
=====================  ==================================================================

Stroke alerts are not read here: no HL7 priority says so (a later rule may look at the
procedure and the question). :class:`IncompleteOrder` lists every missing field at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telerad.hl7.messages import InvalidHl7, Message, Segment

#: Orders this module reads, as (MSH-9.1, MSH-9.2).
SUPPORTED = frozenset({("ORM", "O01"), ("OMI", "O23")})
#: ORC-1 values (HL7 table 0119) that ask for a new exam; they must name a procedure.
NEW_ORDER = frozenset({"NW", "XO", "SN"})
#: Assigning authorities of the INS (ANS referentiel INS: INS-NIR, INS-NIA test, INS-C).
_INS_AUTHORITIES = ("1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10",
                    "1.2.250.1.213.1.4.11", "INS-NIR", "INS-NIA", "INS-C")
_PRIORITIES = {"S": "life_threatening", "STAT": "life_threatening", "A": "urgent",
               "ASAP": "urgent", "R": "scheduled", "ROUTINE": "scheduled"}
#: Table 0074 diagnostic service sections and DICOM modalities, as a DICOM Modality.
_SECTIONS = {"CT": "CT", "CAT": "CT", "MR": "MR", "MRI": "MR", "NMR": "MR", "US": "US",
             "NM": "NM", "NMS": "NM", "PT": "PT", "PET": "PT", "CR": "CR", "DX": "DX",
             "MG": "MG", "XA": "XA", "RF": "RF", "XRC": "RF", "OT": "OT"}
_GUESSES = [
    ("CT", r"\bct\b|scanner|\btdm\b|tomodensit|computed tomograph|\bcta\b|angioscan"),
    ("MR", r"\bmri?\b|\birm\b|\brmn\b|magneti|\bmra\b"),
    ("PT", r"\bpet\b|\btep\b"),
    ("NM", r"scintig|\bspect\b|\btemp\b"),
    ("MG", r"mammo"),
    ("US", r"\bus\b|ultraso|[ée]chograph|doppler|\becho"),
    ("DX", r"x-?ray|\bxr\b|radiograph|\brx\b|\bradio\b"),
]


class UnsupportedMessage(InvalidHl7):
    """A message type or event this reader does not take (ACK AR)."""

    code = "unsupported_hl7_message"
    hl7_error = "200"


class IncompleteOrder(InvalidHl7):
    """An order without a field telerad cannot do without (ACK AE, error 101)."""

    code = "incomplete_hl7_order"
    hl7_error = "101"

    def __init__(self, missing: list[str]) -> None:
        super().__init__("the order lacks " + ", ".join(missing))
        self.missing = missing
        #: ERR-2: the first missing field, e.g. ``PID^1^3``.
        self.hl7_location = missing[0].split(" ")[0].replace("-", "^1^", 1)


@dataclass(frozen=True, kw_only=True)
class Order:
    """One ordered procedure, as the RIS sent it."""

    message_type: str  # e.g. "ORM^O01"
    control_id: str
    order_control: str  # ORC-1: NW new, CA cancel, XO change, SC status, DC discontinue
    patient_id: str
    patient_id_authority: str = ""
    ins: str = ""
    patient_name: str  # DICOM PN: FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX
    patient_birth_date: str = ""
    patient_sex: str = ""
    requesting_physician: str = ""
    requesting_physician_id: str = ""
    placer_order_number: str = ""
    filler_order_number: str = ""
    accession_number: str = ""
    procedure_code: str = ""
    procedure_text: str = ""
    modality: str = ""
    clinical_question: str = ""
    clinical_context: str = ""
    priority: str = ""  # as sent, e.g. "S"
    urgency: str = ""  # a telerad Urgency value, or "" when the priority says nothing


def _identifiers(pid: Segment) -> tuple[str, str, str]:
    """(patient ID, its assigning authority, INS) from PID-3 (CX repetitions)."""
    first: tuple[str, str] | None = None
    ins = ""
    for r in range(1, len(pid.repetitions(3)) + 1):
        value = pid.value(3, 1, repetition=r)
        if not value:
            continue
        authority = pid.components(3, repetition=r)[3:4]
        authority_text = authority[0] if authority else ""
        kind = pid.value(3, 5, repetition=r).upper()
        if kind.startswith("INS") or any(a in authority_text for a in _INS_AUTHORITIES):
            ins = ins or value
        elif first is None:
            first = (value, pid.value(3, 4, repetition=r))
    if first is None:
        first = (ins or pid.value(2, 1), "")
    return first[0], first[1], ins


def _name(seg: Segment, n: int, *, offset: int = 0) -> str:
    """An XPN (offset 0) or XCN (offset 1, after the ID) as DICOM PN, the legal name (type
    L) preferred among repetitions."""
    reps = range(1, len(seg.repetitions(n)) + 1)
    kind = 10 if offset else 7  # XCN-10, XPN-7: name type code (table 0200)
    legal = [r for r in reps if seg.value(n, kind, repetition=r).upper() == "L"]
    r = legal[0] if legal else 1
    family, given, middle, suffix, prefix = (seg.value(n, c + offset, repetition=r)
                                             for c in (1, 2, 3, 4, 5))
    parts = (re.sub(r"[\^=\\]", " ", p).strip() for p in (family, given, middle, prefix, suffix))
    return "^".join(parts).rstrip("^")  # no PN delimiter may stay inside a component


def _urgency(priority: str) -> str:
    return _PRIORITIES.get(priority.strip().upper(), "")


def guess_modality(text: str) -> str:
    """The DICOM Modality a procedure's name suggests, or ``""``."""
    for modality, pattern in _GUESSES:
        if re.search(pattern, text, re.IGNORECASE):
            return modality
    return ""


def _first(*values: str) -> str:
    return next((v for v in values if v), "")


def read_orders(message: Message) -> list[Order]:
    """Every order of an ORM^O01 or OMI^O23, in message order."""
    kind = (message.message_type, message.trigger_event)
    if kind not in SUPPORTED:
        raise UnsupportedMessage(
            f"telerad takes ORM^O01 and OMI^O23 orders, not {kind[0] or '?'}^{kind[1] or '?'}")
    pid = message.segment("PID")
    groups: list[dict[str, Segment]] = []
    for seg in message.all_segments:
        if seg.name == "ORC" or (seg.name == "OBR" and (not groups or "OBR" in groups[-1])):
            groups.append({})
        if seg.name in ("ORC", "OBR", "TQ1", "IPC") and groups and seg.name not in groups[-1]:
            groups[-1][seg.name] = seg
    missing = [] if pid is not None else ["PID (patient)"]
    if not groups:
        missing.append("ORC (common order)")
    if missing:
        raise IncompleteOrder(missing)
    assert pid is not None
    return [_order(message, pid, group) for group in groups]


def _order(message: Message, pid: Segment, group: dict[str, Segment]) -> Order:
    orc, obr = group.get("ORC"), group.get("OBR")
    tq1, ipc = group.get("TQ1"), group.get("IPC")

    def v(seg: Segment | None, n: int, component: int = 1) -> str:
        return seg.value(n, component) if seg is not None else ""

    patient_id, authority, ins = _identifiers(pid)
    control = _first(v(orc, 1), "NW" if obr is not None else "").upper()
    physician_seg, physician_field = (orc, 12) if v(orc, 12, 2) or v(orc, 12) else (obr, 16)
    physician = _name(physician_seg, physician_field, offset=1) if physician_seg else ""
    physician_id = v(physician_seg, physician_field)
    reasons = [obr.value(31, 2, repetition=r) or obr.value(31, 1, repetition=r)
               for r in range(1, len(obr.repetitions(31)) + 1)] if obr else []
    question = "; ".join(r for r in reasons if r)
    info = _text(obr, 13) if obr is not None else ""
    # OBR-4 is required (§4.5.3.4), yet some senders (dcm4che's IHE RAD samples) name the
    # procedure only in OBR-44, Procedure Code (CE, §4.5.3.44): read that when OBR-4 is empty.
    service = 4 if _first(v(obr, 4), v(obr, 4, 2), v(obr, 4, 5)) else 44
    procedure_text = _first(v(obr, service, 2), v(obr, service, 5), v(obr, service, 1))
    section = _first(v(ipc, 5), v(obr, 24)).upper()
    priority = _first(v(tq1, 9), v(orc, 7, 6), v(obr, 27, 6), v(obr, 5)).upper()
    order = Order(
        message_type=f"{message.message_type}^{message.trigger_event}",
        control_id=message.control_id,
        order_control=control,
        patient_id=patient_id,
        patient_id_authority=authority,
        ins=ins,
        patient_name=_name(pid, 5),
        patient_birth_date=_birth_date(pid.value(7)),
        patient_sex=pid.value(8).upper() if pid.value(8).upper() in ("M", "F", "O") else "",
        requesting_physician=physician or physician_id,
        requesting_physician_id=physician_id,
        placer_order_number=_first(v(orc, 2), v(obr, 2)),
        filler_order_number=_first(v(orc, 3), v(obr, 3)),
        accession_number=_first(v(ipc, 1), v(obr, 18)),
        procedure_code=v(obr, service),
        procedure_text=procedure_text,
        modality=_SECTIONS.get(section, "") or guess_modality(procedure_text),
        clinical_question=question or info,
        clinical_context=info if question else "",
        priority=priority,
        urgency=_urgency(priority),
    )
    _check(order)
    return order


def _text(seg: Segment, n: int) -> str:
    """A free text that is ST in v2.5 and CWE in v2.7 (OBR-13): the coded text when a
    coding system is named, else every component (an unescaped ``^`` in a text)."""
    components = [c.strip() for c in seg.components(n)]
    if len(components) >= 3 and components[2]:
        return components[1] or components[0]
    return " ".join(c for c in components if c)


def _birth_date(value: str) -> str:
    digits = value.replace("-", "")[:8]  # a sender writing 1971-03-02
    return digits if len(digits) == 8 and digits.isdigit() else ""


def _check(order: Order) -> None:
    missing = []
    if not order.patient_id:
        missing.append("PID-3 (patient identifier)")
    if not order.patient_name:
        missing.append("PID-5 (patient name)")
    if not order.order_control:
        missing.append("ORC-1 (order control)")
    if not (order.placer_order_number or order.filler_order_number):
        missing.append("ORC-2 or OBR-2 (placer order number)")
    if order.order_control in NEW_ORDER and not (order.procedure_code or order.procedure_text):
        missing.append("OBR-4 (universal service identifier)")
    if missing:
        raise IncompleteOrder(missing)
