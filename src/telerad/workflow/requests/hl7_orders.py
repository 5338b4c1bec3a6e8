"""Orders and patient updates from a site's RIS over HL7 v2: what one received message does.

:func:`receive` takes one parsed message, in the caller's transaction (it never commits):

- the site is the one whose ``hl7_facility`` is MSH-4 (HD, first component; HL7 v2.5
  §2.14.9.4 codes it with user-defined table 0362, Facility: telerad's table is the sites'
  ``hl7_facility``). None: :class:`UnknownFacility`, and nothing changes. Every query below
  is filtered by that site: a RIS never touches another site's exams;
- ORM^O01 / OMI^O23 (§4.4.1, §4.4.9), per ORC/OBR group, by ORC-1 (order control, table
  0119): ``NW`` files a request with the rules of the portal's form
  (:func:`~telerad.workflow.requests.checks.problems`); the order's key is ORC-2 (else
  OBR-2, else the filler number ORC-3) and an order already filed under that key for the
  site is not filed again (the RIS resends what it sent when an ACK was lost: original mode,
  §2.9.2). ``CA``, ``DC`` (requests) and ``OC``, ``OD`` (notifications) cancel the exam of
  that key; an exam already cancelled stays so. Other controls (``XO`` change, ``SC``
  status...) are refused: :class:`UnsupportedOrderControl`;
- ADT^A08 (§3.3.8): the non-empty identity fields of PID update the site's exams of that
  patient that are not closed (an empty field means "not sent", not "erase": §2.5.3);
- ADT^A40 (§3.3.40): for each PID/MRG pair, the site's exams of the prior patient ID (MRG-1)
  take the PID's identifier (closed ones too), and the open ones its identity where given.

Every change is on the exam's timeline with actor ``hl7:<facility>`` (field names, never
values, for identity updates) and in the audit trail, in the same transaction. A message is
all or nothing: the first refused order or update rolls every change back with it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from telerad.audit import service as audit
from telerad.errors import Conflict, InvalidInput, NotFound, UnknownSender
from telerad.hl7.messages import Message
from telerad.hl7.orders import SUPPORTED as ORDER_MESSAGES
from telerad.hl7.orders import Order, UnsupportedMessage, read_orders
from telerad.hl7.patients import SUPPORTED_EVENTS as PATIENT_EVENTS
from telerad.hl7.patients import PatientUpdate, read_patient_updates
from telerad.workflow.exams.models import Exam, ExamState
from telerad.workflow.exams.rules import TERMINAL_STATES, InvalidTransition
from telerad.workflow.exams.timeline import record_event
from telerad.workflow.requests.checks import LIMITS, RequestForm, explain, ins_valid, problems
from telerad.workflow.requests.service import cancel, file_request
from telerad.workflow.sites.models import Site, Urgency

#: ORC-1 values (HL7 table 0119) that withdraw an order: cancel and discontinue requests
#: from the placer, and the same as notifications (order cancelled / discontinued).
CANCEL = frozenset({"CA", "DC", "OC", "OD"})
NEW = "NW"
#: When the order names no priority: the urgency of an emergency department's request.
DEFAULT_URGENCY = Urgency.URGENT
#: Where each field of the request comes from (``orders``' table), as an ERR-2 location
#: (segment, field) and the name the ACK's text gives it.
_SOURCES = {
    "patient_id": ("PID", 3, "PID-3"), "patient_name": ("PID", 5, "PID-5"),
    "patient_birth_date": ("PID", 7, "PID-7"), "patient_sex": ("PID", 8, "PID-8"),
    "ins": ("PID", 3, "PID-3 (INS)"),
    "requesting_physician": ("ORC", 12, "ORC-12 or OBR-16"),
    "clinical_question": ("OBR", 31, "OBR-31 or OBR-13"),
    "modality": ("OBR", 24, "OBR-24 or IPC-5"), "exam_asked": ("OBR", 4, "OBR-4"),
}
#: HL7 table 0357 code of each problem code of ``checks.problems``.
_HL7_ERRORS = {"required": "101", "choice": "103"}  # format, too_long, range: 102


class UnknownFacility(UnknownSender):
    """MSH-4 names no site's RIS (ACK AR): nothing of the message is read further."""

    code = "unknown_hl7_facility"
    #: Table 0357 103, table value not found: MSH-4 is coded with user-defined table 0362
    #: (Facility), whose values here are the sites' ``hl7_facility``. Not 204 (unknown key
    #: identifier), which names a record the message points to, such as a patient.
    hl7_error = "103"
    hl7_location = "MSH^1^4"


class UnsupportedType(UnsupportedMessage):
    """A message type telerad does not read (ACK AR, table 0357 200)."""

    hl7_location = "MSH^1^9"


class UnsupportedEvent(UnsupportedMessage):
    """A message type telerad reads, with an event it does not (ACK AR, table 0357 201)."""

    code = "unsupported_hl7_event"
    hl7_error = "201"
    hl7_location = "MSH^1^9"


class UnsupportedOrderControl(UnsupportedMessage):
    """An ORC-1 telerad does not act on, such as XO (change order): ACK AR."""

    code = "unsupported_order_control"
    #: Table 0357 103: a value of HL7 table 0119 that telerad's table does not hold.
    hl7_error = "103"

    def __init__(self, control: str, *, sequence: int) -> None:
        super().__init__(f"order control {control!r} (ORC-1) is not supported: telerad "
                         f"takes NW to file a request and CA, DC, OC or OD to cancel it; "
                         f"a changed order is cancelled and sent again")
        self.hl7_location = f"ORC^{sequence}^1"


class InvalidField(InvalidInput):
    """A value read from the message that the request's rules refuse (ACK AE)."""

    code = "invalid_hl7_field"

    def __init__(self, message: str, *, hl7_error: str, hl7_location: str) -> None:
        super().__init__(message)
        #: Table 0357 code and ERR-2 location (segment^sequence^field).
        self.hl7_error = hl7_error
        self.hl7_location = hl7_location


class UnknownOrder(NotFound):
    """A cancellation of an order the site never sent, or sent to another site (ACK AE)."""

    code = "unknown_hl7_order"
    #: Table 0357 204, unknown key identifier: the order number is the record's key.
    hl7_error = "204"

    def __init__(self, key: str, *, sequence: int) -> None:
        super().__init__(f"no order {key!r} was received from this facility")
        self.hl7_location = f"ORC^{sequence}^2"


class OrderClosed(Conflict):
    """An order whose exam can no longer change as asked (ACK AE)."""

    code = "hl7_order_closed"

    def __init__(self, message: str, *, hl7_error: str, sequence: int) -> None:
        super().__init__(message)
        #: 206 (application record locked) for an exam read or reported, that an order may
        #: no longer cancel; 205 (duplicate key identifier) for a new order reusing the
        #: number of a cancelled one.
        self.hl7_error = hl7_error
        self.hl7_location = f"ORC^{sequence}^2"


@dataclass(frozen=True, kw_only=True)
class Applied:
    """What one message did: exam ids, for the edge's log."""

    site_id: int
    filed: tuple[int, ...] = ()
    #: Orders already filed under their number: nothing done (a resent message).
    already_filed: tuple[int, ...] = ()
    cancelled: tuple[int, ...] = ()
    updated: tuple[int, ...] = ()
    merged: tuple[int, ...] = ()


def site_for_facility(session: Session, facility: str) -> Site:
    """The site whose RIS is MSH-4 ``facility`` (first component), or UnknownFacility."""
    site = session.scalar(select(Site).where(Site.hl7_facility == facility.strip())
                          ) if facility.strip() else None
    if site is None:
        raise UnknownFacility(f"the sending facility {facility.strip()[:64]!r} (MSH-4) is not "
                              f"the RIS of any site")
    return site


def receive(session: Session, message: Message, *, now: dt.datetime) -> Applied:
    """Act on one order or patient message from a site's RIS (see the module's text)."""
    facility = message.field(message.msh, 4)
    site = site_for_facility(session, facility)
    kind, event = message.message_type, message.trigger_event
    context = _Context(session=session, site=site, facility=facility, now=now,
                       control_id=message.control_id)
    if kind in {k for k, _e in ORDER_MESSAGES}:
        if (kind, event) not in ORDER_MESSAGES:
            raise UnsupportedEvent(f"telerad takes ORM^O01 and OMI^O23, not {kind}^{event}")
        _take_orders(context, read_orders(message))
    elif kind == "ADT":
        event = event or message.field("EVN", 1).upper()  # as telerad.hl7.patients reads it
        if event not in PATIENT_EVENTS:
            raise UnsupportedEvent(f"telerad takes ADT^A08 and ADT^A40, not ADT^{event}")
        _take_patient_updates(context, read_patient_updates(message))
    else:
        raise UnsupportedType(f"telerad takes orders (ORM^O01, OMI^O23) and patient "
                              f"updates (ADT^A08, ADT^A40), not {kind or '?'}^{event or '?'}")
    done = context.done
    return Applied(site_id=site.id, filed=tuple(done["filed"]),
                   already_filed=tuple(done["already_filed"]),
                   cancelled=tuple(done["cancelled"]), updated=tuple(done["updated"]),
                   merged=tuple(done["merged"]))


@dataclass(frozen=True, kw_only=True)
class _Context:
    """One message being applied: where it comes from, and what it did so far."""

    session: Session
    site: Site
    facility: str
    now: dt.datetime
    control_id: str
    #: Exam ids by what was done to them (the fields of Applied).
    done: defaultdict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    @property
    def actor(self) -> str:
        return f"hl7:{self.facility}"

    def audit(self, exam: Exam, *, action: audit.Action, what: str) -> None:
        """The change's audit event, in its transaction (the sender as the trail names
        it: the RIS, by its facility)."""
        audit.record(self.session, who=audit.Who(kind="hl7", id=self.facility,
                                                 source=self.facility),
                     action=action, now=self.now, study_instance_uid=exam.study_instance_uid
                     or "", detail={"exam_id": exam.id, "what": what,
                                    "control_id": self.control_id[:64]})


def _take_orders(context: _Context, orders: Sequence[Order]) -> None:
    """File or cancel each order, in message order."""
    for sequence, order in enumerate(orders, 1):
        control = order.order_control
        if control == NEW:
            _file(context, order, sequence)
        elif control in CANCEL:
            _cancel(context, order, sequence)
        else:
            raise UnsupportedOrderControl(control, sequence=sequence)


def _key(order: Order, sequence: int) -> str:
    """The order's number for this site: the placer's (ORC-2, OBR-2), else the filler's."""
    key = order.placer_order_number or order.filler_order_number
    if len(key) > 64:
        raise InvalidField("the order number (ORC-2) is at most 64 characters",
                           hl7_error="102", hl7_location=f"ORC^{sequence}^2")
    return key


def _find(context: _Context, key: str) -> Exam | None:
    return context.session.scalar(select(Exam).where(Exam.site_id == context.site.id,
                                                     Exam.placer_order_number == key))


def _file(context: _Context, order: Order, sequence: int) -> None:
    key = _key(order, sequence)
    existing = _find(context, key)
    if existing is not None:
        if existing.state == ExamState.CANCELLED:
            raise OrderClosed(f"order {key!r} was cancelled: a new order needs a new number",
                              hl7_error="205", sequence=sequence)
        context.done["already_filed"].append(existing.id)
        return
    form = RequestForm(
        site_id=context.site.id, patient_id=order.patient_id, patient_name=order.patient_name,
        patient_birth_date=order.patient_birth_date, patient_sex=order.patient_sex,
        ins=order.ins, requesting_physician=order.requesting_physician,
        clinical_context=order.clinical_context, clinical_question=order.clinical_question,
        urgency=Urgency(order.urgency) if order.urgency else DEFAULT_URGENCY,
        modality=order.modality, exam_asked=order.procedure_text or order.procedure_code)
    _check(form, sequence)
    exam = file_request(context.session, form, filed_by=None, actor=context.actor,
                        now=context.now)
    exam.placer_order_number = key
    context.session.flush()  # the unique (site, order number) index speaks here
    # The RIS's accession number stays the RIS's: telerad gives its own at validation, the
    # one the worklist hands to the scanner; the RIS's is kept on the timeline.
    record_event(context.session, exam, kind="hl7_order", actor=context.actor,
                 now=context.now, message_type=order.message_type,
                 control_id=order.control_id, placer_order_number=order.placer_order_number,
                 filler_order_number=order.filler_order_number,
                 ris_accession_number=order.accession_number, priority=order.priority)
    context.audit(exam, action=audit.Action.CREATE, what="filed:hl7")
    context.done["filed"].append(exam.id)


def _check(form: RequestForm, sequence: int) -> None:
    """InvalidField naming every problem of the request, located at the first one."""
    found = problems(form)
    if not found:
        return
    if "modality" in found and not form.modality.strip():
        found["modality"] = "required"  # no modality sent, rather than a malformed one
    texts = []
    for name, code in found.items():
        texts.append(f"{explain(name, code)} ({_SOURCES.get(name, ('', 0, 'OBR'))[2]})")
    name, code = next(iter(found.items()))
    segment, number, _label = _SOURCES.get(name, ("OBR", 4, ""))
    raise InvalidField("; ".join(texts), hl7_error=_HL7_ERRORS.get(code, "102"),
                       hl7_location=f"{segment}^{1 if segment == 'PID' else sequence}^{number}")


def _cancel(context: _Context, order: Order, sequence: int) -> None:
    key = _key(order, sequence)
    exam = _find(context, key)
    if exam is None:
        raise UnknownOrder(key, sequence=sequence)
    if exam.state == ExamState.CANCELLED:
        return  # cancelled already: the RIS resent its cancellation
    try:
        cancel(context.session, exam, actor=context.actor, now=context.now,
               reason=f"order {order.order_control} from the RIS ({order.message_type} "
                      f"{order.control_id})")
    except InvalidTransition as exc:
        raise OrderClosed(f"order {key!r} can no longer be cancelled: its exam is "
                          f"{exam.state.replace('_', ' ')}", hl7_error="206",
                          sequence=sequence) from exc
    context.audit(exam, action=audit.Action.UPDATE, what="cancelled:hl7")
    context.done["cancelled"].append(exam.id)


def _take_patient_updates(context: _Context, updates: Sequence[PatientUpdate]) -> None:
    """Apply each A08 update or A40 merge, in message order."""
    for sequence, update in enumerate(updates, 1):
        identity = _identity(update, sequence)
        if update.event == "A40":
            _merge(context, update, identity, sequence)
        else:
            _update(context, update, identity)


def _identity(update: PatientUpdate, sequence: int) -> dict[str, str]:
    """The identity fields the message gives (empty ones are not sent, §2.5.3, and ``""``,
    the HL7 null, never erases an identity here), checked as a request's are."""
    given = {"patient_name": update.patient_name, "patient_birth_date":
             update.patient_birth_date, "patient_sex": update.patient_sex, "ins": update.ins}
    identity = {k: v.strip() for k, v in given.items() if v.strip() not in ("", '""')}
    name = identity.get("patient_name", "")
    if len(name) > LIMITS["patient_name"] or "\\" in name:
        raise InvalidField(explain("patient_name", "too_long") + " (PID-5)",
                           hl7_error="102", hl7_location=f"PID^{sequence}^5")
    if identity.get("ins") and not ins_valid(identity["ins"]):
        raise InvalidField(explain("ins", "format") + " (PID-3)", hl7_error="102",
                           hl7_location=f"PID^{sequence}^3")
    return identity


def _changes(exam: Exam, identity: dict[str, str]) -> list[str]:
    """Apply ``identity`` to ``exam``; the names of the fields that changed."""
    changed = []
    for name, value in identity.items():
        if getattr(exam, name) != value:
            setattr(exam, name, value)
            changed.append(name)
    return changed


def _exams(context: _Context, patient_id: str, *, open_only: bool) -> list[Exam]:
    query = select(Exam).where(Exam.site_id == context.site.id, Exam.patient_id == patient_id)
    if open_only:
        query = query.where(Exam.state.not_in([str(s) for s in TERMINAL_STATES]))
    return list(context.session.scalars(query.order_by(Exam.id)))


def _update(context: _Context, update: PatientUpdate, identity: dict[str, str]) -> None:
    """A08: the open exams of the patient take the identity the RIS now knows. Closed ones
    (refused, cancelled, delivered) keep what their report or refusal was made with."""
    for exam in _exams(context, update.patient_id, open_only=True):
        changed = _changes(exam, identity)
        if not changed:
            continue
        exam.version += 1
        record_event(context.session, exam, kind="patient_updated", actor=context.actor,
                     now=context.now, fields=sorted(changed), control_id=update.control_id)
        context.audit(exam, action=audit.Action.UPDATE, what="patient_updated:hl7")
        context.done["updated"].append(exam.id)


def _merge(context: _Context, update: PatientUpdate, identity: dict[str, str],
           sequence: int) -> None:
    """A40: the prior identifier no longer exists at the hospital. Every exam of the site
    under it takes the surviving identifier, closed ones included (so that the patient's
    priors are found under one ID); only open ones take the identity fields, as with A08."""
    new_id, prior_id = update.patient_id.strip(), update.prior_patient_id.strip()
    if len(new_id) > LIMITS["patient_id"] or "\\" in new_id:
        raise InvalidField(explain("patient_id", "too_long") + " (PID-3)", hl7_error="102",
                           hl7_location=f"PID^{sequence}^3")
    if new_id == prior_id:
        return
    for exam in _exams(context, prior_id, open_only=False):
        exam.patient_id = new_id
        changed = _changes(exam, identity) if exam.state not in TERMINAL_STATES else []
        exam.version += 1
        record_event(context.session, exam, kind="patient_merged", actor=context.actor,
                     now=context.now, prior_patient_id=prior_id, patient_id=new_id,
                     fields=sorted(changed), control_id=update.control_id)
        context.audit(exam, action=audit.Action.UPDATE, what="patient_merged:hl7")
        context.done["merged"].append(exam.id)
