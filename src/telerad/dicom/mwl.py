"""Modality Worklist items and C-FIND matching (PS3.4 Annex K), pure.

:func:`item` writes one scheduled procedure step as the whole worklist item of PS3.4
Table K.6-1; :func:`matches` applies the C-FIND matching rules of PS3.4 §C.2.2.2 (and
§K.2.2.1.1) to it; :func:`response` returns the attributes a query asked for (§C.2.2.1,
§K.6.1.2.2). The same item feeds both, so what is matched is what is returned.

Conformance choices, stated once:

- Matching keys (``_MATCHING_KEYS``): the Required keys of Table K.6-1 and the Optional
  ones telerad holds. A key outside them is ignored for matching (PS3.4 §K.2.2.1.1.2: an
  Optional key the SCP does not support is treated as universal) and returned zero-length.
- A key telerad supports whose value is unknown (zero-length) for an entry fails any
  non-universal key value (§K.2.2.1.1.1); ``*`` alone stays universal (Note 1 there).
- An empty Scheduled Station AE Title means "any station of the site": it matches any key.
- Date and time are matched independently: combined date-time matching is an extended
  negotiation (§C.2.2.2.5) the gateway does not accept.
- Person names match case-insensitively, trailing empty components ignored (§C.2.2.2.1
  allows it for PN). Multiple values in a key other than a UID list (whose semantics are
  undefined without extended negotiation, §C.2.2.2.8) match when any of them matches.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from telerad.errors import InvalidQuery

MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
CHARACTER_SET = "ISO_IR 192"  # UTF-8 (PS3.3 §C.12.1.1.2): French names carry accents
PROTOCOL_CODING_SCHEME = "99TELERAD"  # a private coding scheme (PS3.16 §8.2: "99" prefix)
#: OID of the French national health identifier (INS-NIR), issuer of Other Patient IDs.
INS_NIR_OID = "1.2.250.1.213.1.4.8"
INS_NIR_ISSUER = "INS-NIR"
PRIORITIES = frozenset({"STAT", "HIGH", "ROUTINE", "MEDIUM", "LOW"})  # PS3.3 §C.4.11 (0040,1003)
_SEXES = frozenset({"M", "F", "O", ""})
#: (field, maximum length) for the VRs of PS3.5 Table 6.2-1 the entry's text is written in.
_LIMITS = (
    ("accession_number", 16), ("patient_id", 64), ("other_patient_id", 64),
    ("study_instance_uid", 64), ("requested_procedure_id", 16),
    ("requested_procedure_description", 64), ("reason_for_requested_procedure", 64),
    ("modality", 16), ("scheduled_station_ae_title", 16), ("scheduled_procedure_step_id", 16),
    ("scheduled_procedure_step_description", 64), ("protocol_code_value", 16),
    ("protocol_code_meaning", 64),
)
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_DA = re.compile(r"\d{8}")
_TM = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")
_TM_MAX = "235959.999999"  # the latest instant a partial TM can denote (§C.2.2.2.5)
_TEXT_VRS = frozenset({"SH", "LO", "ST", "PN", "LT", "UC", "UT"})  # PS3.5 §6.1.2.3


@dataclass(frozen=True, kw_only=True)
class WorklistEntry:
    """One scheduled procedure step of a validated imaging request."""

    accession_number: str
    patient_id: str
    patient_name: str  # DICOM PN, e.g. "DOE^JANE"
    patient_birth_date: str  # YYYYMMDD or ""
    patient_sex: str  # M, F, O or ""
    #: The French INS if known, else "" (Other Patient IDs Sequence, issuer INS-NIR).
    other_patient_id: str
    study_instance_uid: str  # pre-assigned, so the scanner's images carry it
    requested_procedure_id: str
    requested_procedure_description: str
    requesting_physician: str  # PN
    reason_for_requested_procedure: str  # the clinical question
    priority: str  # Requested Procedure Priority (0040,1003)
    modality: str  # CT, MR, ...
    scheduled_station_ae_title: str  # "" = any station of the site
    scheduled_start: dt.datetime  # timezone-aware; written as the site's local date/time
    site_zone: str  # IANA zone name of the site, e.g. "Europe/Paris"
    scheduled_procedure_step_id: str
    scheduled_procedure_step_description: str
    protocol_code_value: str  # Scheduled Protocol Code Sequence, coding scheme "99TELERAD"
    protocol_code_meaning: str

    def __post_init__(self) -> None:
        """Strict when writing: an entry that would make an invalid item is refused here."""
        if self.scheduled_start.tzinfo is None:
            raise ValueError("scheduled_start must be timezone-aware")
        try:
            ZoneInfo(self.site_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.site_zone!r}") from exc
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority {self.priority!r} is not one of {sorted(PRIORITIES)}")
        if self.patient_sex not in _SEXES:
            raise ValueError(f"patient_sex {self.patient_sex!r} is not M, F, O or empty")
        if self.patient_birth_date and not _valid_date(self.patient_birth_date):
            raise ValueError(f"patient_birth_date {self.patient_birth_date!r} is not YYYYMMDD")
        if not _UID.fullmatch(self.study_instance_uid):
            raise ValueError(f"study_instance_uid {self.study_instance_uid!r} is not a UID")
        for name, limit in _LIMITS:
            if len(getattr(self, name)) > limit:
                raise ValueError(f"{name} is longer than {limit} characters")
        for name in ("patient_id", "modality", "requested_procedure_id",
                     "scheduled_procedure_step_id"):  # return key type 1 (Table K.6-1)
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")


def _valid_date(text: str) -> bool:
    if not _DA.fullmatch(text):
        return False
    try:
        dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return False
    return True


# -- the item -------------------------------------------------------------------------


def _code(value: str, meaning: str) -> Dataset:
    code = Dataset()  # Code Sequence Macro, PS3.3 Table 8.8-1
    code.CodeValue = value
    code.CodingSchemeDesignator = PROTOCOL_CODING_SCHEME
    code.CodeMeaning = meaning
    return code


def _other_patient_id(ins: str) -> Dataset:
    # PS3.3 Table 10-18 (Issuer of Patient ID Macro): the INS-NIR is named by its OID.
    qualifiers = Dataset()
    qualifiers.UniversalEntityID = INS_NIR_OID
    qualifiers.UniversalEntityIDType = "ISO"
    other = Dataset()
    other.PatientID = ins
    other.IssuerOfPatientID = INS_NIR_ISSUER
    other.IssuerOfPatientIDQualifiersSequence = [qualifiers]
    other.TypeOfPatientID = "TEXT"
    return other


def item(entry: WorklistEntry) -> Dataset:
    """The worklist item of ``entry``: the attributes of PS3.4 Table K.6-1 telerad holds,
    type 2 ones zero-length when unknown, type 1C ones only when their condition holds."""
    local = entry.scheduled_start.astimezone(ZoneInfo(entry.site_zone))
    step = Dataset()  # the Scheduled Procedure Step Sequence's one item
    step.Modality = entry.modality
    step.ScheduledStationAETitle = entry.scheduled_station_ae_title  # "" = any station
    step.ScheduledProcedureStepStartDate = local.strftime("%Y%m%d")
    step.ScheduledProcedureStepStartTime = local.strftime("%H%M%S")
    step.ScheduledPerformingPhysicianName = ""
    if entry.scheduled_procedure_step_description:
        step.ScheduledProcedureStepDescription = entry.scheduled_procedure_step_description
    if entry.protocol_code_value:
        step.ScheduledProtocolCodeSequence = [
            _code(entry.protocol_code_value, entry.protocol_code_meaning)
        ]
    step.ScheduledProcedureStepID = entry.scheduled_procedure_step_id
    step.ScheduledStationName = ""
    step.ScheduledProcedureStepLocation = ""
    step.ScheduledProcedureStepStatus = "SCHEDULED"  # validated, not yet performed

    ds = Dataset()
    ds.SpecificCharacterSet = CHARACTER_SET
    ds.AccessionNumber = entry.accession_number
    # The prescriber is also the referring physician in French outpatient imaging, and
    # scanners copy Referring Physician's Name (not Requesting Physician) into the images.
    ds.ReferringPhysicianName = entry.requesting_physician
    ds.ReferencedStudySequence = []
    ds.ReferencedPatientSequence = []
    ds.PatientName = entry.patient_name
    ds.PatientID = entry.patient_id
    ds.PatientBirthDate = entry.patient_birth_date
    ds.PatientSex = entry.patient_sex
    if entry.other_patient_id:
        ds.OtherPatientIDsSequence = [_other_patient_id(entry.other_patient_id)]
    ds.StudyInstanceUID = entry.study_instance_uid
    ds.RequestingPhysician = entry.requesting_physician
    if entry.requested_procedure_description:
        ds.RequestedProcedureDescription = entry.requested_procedure_description
    ds.ScheduledProcedureStepSequence = [step]
    ds.RequestedProcedureID = entry.requested_procedure_id
    if entry.reason_for_requested_procedure:
        ds.ReasonForTheRequestedProcedure = entry.reason_for_requested_procedure
    ds.RequestedProcedurePriority = entry.priority
    return ds


# -- matching -------------------------------------------------------------------------


def _tags(*keywords: str) -> frozenset[int]:
    tags = [tag_for_keyword(keyword) for keyword in keywords]
    assert all(tag is not None for tag in tags), keywords
    return frozenset(int(tag) for tag in tags if tag is not None)


#: The keys matched, by the keyword of the sequence holding them ("" = the top level).
_MATCHING_KEYS: dict[str, frozenset[int]] = {
    "": _tags(
        "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
        "StudyInstanceUID", "RequestedProcedureID", "RequestedProcedureDescription",
        "RequestedProcedurePriority", "RequestingPhysician", "ReferringPhysicianName",
        "ReasonForTheRequestedProcedure", "OtherPatientIDsSequence",
        "ScheduledProcedureStepSequence",
    ),
    "ScheduledProcedureStepSequence": _tags(
        "Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime", "ScheduledPerformingPhysicianName",
        "ScheduledProcedureStepID", "ScheduledProcedureStepDescription",
        "ScheduledProcedureStepStatus", "ScheduledProtocolCodeSequence",
    ),
    "ScheduledProtocolCodeSequence": _tags("CodeValue", "CodingSchemeDesignator",
                                           "CodeMeaning"),
    "OtherPatientIDsSequence": _tags("PatientID", "IssuerOfPatientID", "TypeOfPatientID",
                                     "IssuerOfPatientIDQualifiersSequence"),
    "IssuerOfPatientIDQualifiersSequence": _tags("UniversalEntityID", "UniversalEntityIDType"),
}
_STATION = int(tag_for_keyword("ScheduledStationAETitle") or 0)


def _vr(tag: int, fallback: str) -> str:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        vr = fallback
    return vr.split(" or ")[0]  # an ambiguous VR ("US or SS"): the first is as good


def _values(element: DataElement | None) -> list[str]:
    """The element's values as stripped strings (PS3.5 §6.2: padding is not significant)."""
    if element is None or element.value is None:
        return []
    raw = element.value
    values = list(raw) if isinstance(raw, MultiValue | list) else [raw]
    texts = [(v.decode("latin-1") if isinstance(v, bytes) else str(v)).strip() for v in values]
    return [text for text in texts if text]


def _person_name(text: str) -> str:
    """A PN value without trailing empty components or groups, case-folded."""
    groups = [group.rstrip("^ ") for group in text.split("=")]
    return "=".join(groups).rstrip("=").casefold()


@lru_cache(maxsize=256)
def _wildcard(pattern: str) -> re.Pattern[str]:
    # PS3.4 §C.2.2.2.4: "*" any run of characters (none included), "?" any one character.
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


def wildcard_match(pattern: str, value: str) -> bool:
    """Single value or wild card matching of a string (PS3.4 §C.2.2.2.1, §C.2.2.2.4)."""
    if "*" not in pattern and "?" not in pattern:
        return pattern == value
    return _wildcard(pattern).fullmatch(value) is not None


def _bounds(vr: str, key: str) -> tuple[str, str]:
    """Inclusive bounds of a DA or TM single value or range (PS3.4 §C.2.2.2.5), as strings
    comparable with stored values; "" is an open end."""
    pattern, maximum = (_DA, "") if vr == "DA" else (_TM, _TM_MAX)
    text = key.replace(".", "") if vr == "DA" else key.replace(":", "")  # old ACR-NEMA forms
    low, dash, high = text.partition("-")
    if not dash:
        high = low
    if (not low and not high) or any(side and not pattern.fullmatch(side)
                                     for side in (low, high)):
        raise InvalidQuery(f"{vr} key {key!r} is not a valid value or range")
    if high:
        high += maximum[len(high):]  # "1030" lasts until 10:30:59.999999
    if low and high and low > high:
        raise InvalidQuery(f"{vr} range {key!r} ends before it starts")
    return low, high


def _value_matches(vr: str, key: str, value: str) -> bool:
    if vr == "UI":  # list of UID matching (§C.2.2.2.2): no wildcards
        return key == value
    if vr in ("DA", "TM"):
        low, high = _bounds(vr, key)
        return (not low or value >= low) and (not high or value <= high)
    if vr == "PN":
        return wildcard_match(_person_name(key), _person_name(value))
    return wildcard_match(key, value)


def _sequence_matches(key: DataElement, entity: DataElement | None, keyword: str) -> bool:
    """Sequence matching (§C.2.2.2.6): some item of the entity matches every key of the
    query's single item; a sequence without items or keys is universal."""
    if key.VR != "SQ" or not key.value or len(key.value[0]) == 0:
        return True
    query_item = key.value[0]
    items = list(entity.value) if entity is not None and entity.value else [Dataset()]
    return any(_dataset_matches(query_item, each, keyword) for each in items)


def _dataset_matches(query: Dataset, entity: Dataset, parent: str) -> bool:
    supported = _MATCHING_KEYS.get(parent, frozenset())
    for key in query:
        tag = int(key.tag)
        if tag not in supported:
            continue  # not a key telerad matches on: universal (§K.2.2.1.1.2)
        held = entity.get(tag)
        if key.VR == "SQ" or (held is not None and held.VR == "SQ"):
            if not _sequence_matches(key, held, keyword_for_tag(tag)):
                return False
            continue
        vr = _vr(tag, key.VR)
        keys = _values(key)
        if not keys or all(set(k) == {"*"} for k in keys):
            continue  # universal matching (§C.2.2.2.3; "*" alone, §C.2.2.2.4, any VR)
        values = _values(held)
        if not values:
            if tag == _STATION:
                continue  # scheduled on any station of the site
            return False  # an unknown value fails any key value (§K.2.2.1.1.1)
        if not any(_value_matches(vr, k, v) for k in keys for v in values):
            return False
    return True


def matches(query: Dataset, entry: WorklistEntry) -> bool:
    """Whether ``entry`` matches the C-FIND identifier ``query`` (PS3.4 §C.2.2.2, §K.2.2.1).

    Raises InvalidQuery for a date or time key that is not a valid value or range.
    """
    return _dataset_matches(query, item(entry), "")


# -- responses ------------------------------------------------------------------------


def _empty(key: DataElement) -> DataElement:
    vr = _vr(int(key.tag), key.VR)
    return DataElement(key.tag, vr, [] if vr == "SQ" else None)


def _select(query: Dataset, entity: Dataset, parent: str) -> Dataset:
    """The attributes ``query`` asks for, with the entity's values (§C.2.2.1.2)."""
    result = Dataset()
    for key in query:
        tag = int(key.tag)
        if key.tag.element == 0 or key.tag.is_private or tag == 0x00080005:
            continue  # group lengths, private keys telerad cannot answer, the character set
        held = entity.get(tag)
        if held is None:
            result.add(_empty(key))
        elif held.VR != "SQ":
            if tag == _STATION and not held.value:  # any station: this one, if named
                literal = _values(key)
                if len(literal) == 1 and not set(literal[0]) & {"*", "?", "\\"}:
                    held = DataElement(key.tag, "AE", literal[0])
            result.add(held)
        elif key.VR != "SQ" or not key.value or len(key.value[0]) == 0:
            result.add(held)  # the entire sequence (§C.2.2.2.6)
        else:
            keyword = keyword_for_tag(tag)
            chosen = [_select(key.value[0], each, keyword) for each in held.value
                      if _dataset_matches(key.value[0], each, keyword)]
            result.add(DataElement(key.tag, "SQ", Sequence(chosen)))
    return result


def _texts(ds: Dataset) -> Iterator[str]:
    for element in ds:
        if element.VR == "SQ":
            for each in element.value:
                yield from _texts(each)
        elif element.VR in _TEXT_VRS and element.value:
            raw = element.value
            yield from (str(v) for v in (raw if isinstance(raw, MultiValue) else [raw]))


def _character_set(query: Dataset, result: Dataset) -> list[str]:
    """The Specific Character Set of a response (PS3.4 §C.2.2.1.2): the query's own when
    every value fits in it (an older scanner may only read ISO_IR 100), UTF-8 otherwise;
    none when every value is ASCII and the query named none."""
    asked = _values(query.get(0x00080005))
    texts = list(_texts(result))
    if all(text.isascii() for text in texts):
        return asked
    if asked == ["ISO_IR 100"] and all(_fits_latin1(text) for text in texts):
        return asked
    return [CHARACTER_SET]


def _fits_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def response(query: Dataset, entry: WorklistEntry) -> Dataset:
    """The C-FIND response identifier for a matching ``entry``: exactly the attributes
    ``query`` holds (PS3.4 §C.2.2.1.2, §K.6.1.2.2), valued from the entry's item, zero-length
    where telerad has no value; sequences hold the matching items with the asked
    attributes, or every item whole when the query's sequence is empty (§C.2.2.2.6)."""
    result = _select(query, item(entry), "")
    character_set = _character_set(query, result)
    if character_set:
        result.SpecificCharacterSet = (
            character_set[0] if len(character_set) == 1 else character_set
        )
    return result
