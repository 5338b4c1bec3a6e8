"""Patient updates in: ADT^A08 (update patient information, HL7 v2.5 §3.3.8) and ADT^A40
(merge patient - patient identifier list, §3.3.40) read into plain :class:`PatientUpdate`
values, one per PID (an A40 may carry several PID/MRG pairs, §3.3.40: ``{PID [PD1] MRG
[PV1]}``).

The patient is read from PID the way :mod:`telerad.hl7.orders` reads it (PID-3 first
identifier that is not the INS, else the INS, else PID-2; the INS apart; PID-5 legal name as
DICOM PN; PID-7 birth date; PID-8 sex). For an A40, ``prior_patient_id`` is the identifier
that disappears into ``patient_id``: MRG-1, the prior patient identifier list (its first
identifier that is not the INS), else MRG-4, the prior patient ID that v2.3 senders still use.

Refused: other messages and events (:class:`~telerad.hl7.orders.UnsupportedMessage`, ACK AR
200/201); a PID without identifier, an A40 PID without MRG-1, or an MRG before any PID
(:class:`IncompletePatientUpdate`, ACK AE 101, naming the field). The event is MSH-9.2, else
EVN-1 (deprecated in v2.5, but still the only place some senders write it).
"""

from __future__ import annotations

from dataclasses import dataclass

from telerad.hl7.messages import InvalidHl7, Message, Segment
from telerad.hl7.orders import (
    _INS_AUTHORITIES,
    UnsupportedMessage,
    _birth_date,
    _identifiers,
    _name,
)

#: Events this module reads (MSH-9.2, with MSH-9.1 ``ADT``).
SUPPORTED_EVENTS = ("A08", "A40")


class IncompletePatientUpdate(InvalidHl7):
    """A patient update without a field telerad cannot do without (ACK AE, error 101)."""

    code = "incomplete_hl7_patient_update"
    hl7_error = "101"

    def __init__(self, missing: list[str], *, sequence: int = 1) -> None:
        super().__init__("the patient update lacks " + ", ".join(missing))
        self.missing = missing
        #: ERR-2 (ERL, §2.15.5.2): segment^sequence^field of the first missing field,
        #: e.g. ``MRG^2^1`` for the second MRG's prior identifier list.
        name, _, field = missing[0].split(" ")[0].partition("-")
        self.hl7_location = f"{name}^{sequence}^{field}" if field else name


@dataclass(frozen=True, kw_only=True)
class PatientUpdate:
    """One patient's identity as the sending system now knows it."""

    event: str  # "A08" | "A40"
    control_id: str  # MSH-10
    patient_id: str
    patient_id_authority: str = ""
    ins: str = ""
    patient_name: str = ""  # DICOM PN: FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX
    patient_birth_date: str = ""  # YYYYMMDD
    patient_sex: str = ""  # M, F, O or ""
    prior_patient_id: str = ""  # A40: MRG-1, the identifier merged into patient_id


def read_patient_updates(message: Message) -> list[PatientUpdate]:
    """Every patient of an ADT^A08 or ADT^A40, in message order."""
    event = message.trigger_event or message.field("EVN", 1).upper()
    if message.message_type != "ADT" or event not in SUPPORTED_EVENTS:
        raise UnsupportedMessage(
            "telerad takes ADT^A08 and ADT^A40 patient updates, not "
            f"{message.message_type or '?'}^{event or '?'}")
    # Pair each MRG with the PID before it (§3.3.40: PID, then PD1, then MRG, then PV1;
    # other segments, such as a sender's NTE, may stand between them).
    pairs: list[tuple[Segment, Segment | None]] = []
    for seg in message.all_segments:
        if seg.name == "PID":
            pairs.append((seg, None))
        elif seg.name == "MRG" and event == "A40":
            if not pairs:
                raise IncompletePatientUpdate(["PID (patient) before MRG"])
            if pairs[-1][1] is None:  # a second MRG for the same PID is ignored
                pairs[-1] = (pairs[-1][0], seg)
    if not pairs:
        raise IncompletePatientUpdate(["PID (patient)"])
    if event == "A08":
        pairs = pairs[:1]  # ADT_A01 structure: one PID (§3.3.8)
    return [_update(message, event, pid, mrg, n) for n, (pid, mrg) in enumerate(pairs, 1)]


def _update(message: Message, event: str, pid: Segment, mrg: Segment | None,
            sequence: int) -> PatientUpdate:
    patient_id, authority, ins = _identifiers(pid)
    if not patient_id:
        raise IncompletePatientUpdate(["PID-3 (patient identifier)"], sequence=sequence)
    prior = ""
    if event == "A40":
        prior = _prior_identifier(mrg) if mrg is not None else ""
        if not prior:
            raise IncompletePatientUpdate(["MRG-1 (prior patient identifier list)"],
                                          sequence=sequence)
    sex = pid.value(8).upper()
    return PatientUpdate(
        event=event,
        control_id=message.control_id,
        patient_id=patient_id,
        patient_id_authority=authority,
        ins=ins,
        patient_name=_name(pid, 5),
        patient_birth_date=_birth_date(pid.value(7)),
        patient_sex=sex if sex in ("M", "F", "O") else "",
        prior_patient_id=prior,
    )


def _prior_identifier(mrg: Segment) -> str:
    """MRG-1's first identifier that is not an INS (the INS of one person does not change
    in a merge; the local identifier does), else its INS, else MRG-4."""
    ins = ""
    for r in range(1, len(mrg.repetitions(1)) + 1):
        value = mrg.value(1, 1, repetition=r)
        if not value:
            continue
        components = mrg.components(1, repetition=r)
        authority = components[3] if len(components) > 3 else ""
        if (mrg.value(1, 5, repetition=r).upper().startswith("INS")
                or any(a in authority for a in _INS_AUTHORITIES)):
            ins = ins or value
            continue
        return value
    return ins or mrg.value(4)
