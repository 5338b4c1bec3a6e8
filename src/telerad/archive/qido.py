"""QIDO-RS on the archive's index: a parsed query → one scoped SQL query → the matches.

Matching follows PS3.18 §8.3.4 and PS3.4 §C.2.2.2 on the attributes the index holds:
single value, universal (empty or ``*``), wildcard (``*`` and ``?`` on string VRs), range
(DA, TM; DT parsing is ready for when a DT attribute is indexed), UID list (comma or
backslash), and ModalitiesInStudy "any of". The HTTP edge parses the query parameters
(:mod:`telerad.dicomweb.qido_codec`) into a :class:`QidoQuery` of the attributes below.

Results carry the attributes of PS3.18 Tables 10.6.3-3 (study), -4 (series) and -5
(instance) from the index; for any other attribute asked by ``includefield`` the same query
fetches the DICOM JSON stored at ingest for the first instance of the study or series (or
for the instance itself). The edge writes the results as DICOM JSON.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from sqlalchemy import ColumnElement, and_, func, literal, or_
from sqlalchemy.orm import Session, aliased

from telerad.archive.models import Instance, Series, Study
from telerad.archive.queries import scoped_select
from telerad.auth.service import Scope
from telerad.errors import InvalidQuery

#: Most results of one query; more are paged with ``offset`` (PS3.18 §8.3.4.4).
MAX_RESULTS = 5000
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_DA = re.compile(r"\d{8}")
_TM = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")
_DT = re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?")
#: The latest value each position of a partial TM / DT can take: an upper bound "1030"
#: means up to 10:30:59.999999 (PS3.4 §C.2.2.2.5, range matching is inclusive).
_TM_MAX = "235959.999999"
_DT_MAX = "99991231235959.999999"


class Level(IntEnum):
    """Query/retrieve levels of PS3.18 §10.6 (and PS3.4 §C.6.1), top down."""

    STUDY = 1
    SERIES = 2
    INSTANCE = 3


class Matching(StrEnum):
    """How an attribute of the index is matched (PS3.4 §C.2.2.2)."""

    TEXT = "text"
    """Single value or wildcard, case-sensitive."""
    PERSON_NAME = "person_name"
    """Single value or wildcard, case-insensitive (allowed for PN, PS3.4 §C.2.2.2.1)."""
    UID_LIST = "uid_list"
    """One UID or a list of them (PS3.4 §C.2.2.2.2)."""
    DATE = "date"
    """Single value or range of DA (PS3.4 §C.2.2.2.5)."""
    TIME = "time"
    """Single value or range of TM."""
    INTEGER = "integer"
    """Single value of IS / US."""
    ANY_OF = "any_of"
    """Multi-valued attribute matching if any of its values is one of the key's values."""
    NONE = "none"
    """Returned, never matched."""


@dataclass(frozen=True, kw_only=True)
class Attribute:
    """An attribute the index holds, at one level."""

    keyword: str
    level: Level
    column: Any  # an instrumented column of the index, or None for a constant
    matching: Matching
    #: Returned without being asked (PS3.18 Table 10.6.3-3/-4/-5); else on includefield.
    default: bool = True
    constant: str | None = None
    multi_valued: bool = False
    tag: int = field(init=False)
    vr: str = field(init=False)

    def __post_init__(self) -> None:
        tag = tag_for_keyword(self.keyword)
        assert tag is not None, self.keyword
        object.__setattr__(self, "tag", int(tag))
        object.__setattr__(self, "vr", dictionary_VR(tag))


def _a(keyword: str, level: Level, column: Any, matching: Matching, **kw: Any) -> Attribute:
    return Attribute(keyword=keyword, level=level, column=column, matching=matching, **kw)


S, SE, I = Level.STUDY, Level.SERIES, Level.INSTANCE  # noqa: E741
M = Matching
ATTRIBUTES: tuple[Attribute, ...] = (
    # PS3.18 Table 10.6.3-3, study level (with the patient attributes, Study Root).
    _a("SpecificCharacterSet", S, None, M.NONE, constant="ISO_IR 192"),  # JSON is UTF-8
    _a("StudyDate", S, Study.study_date, M.DATE),
    _a("StudyTime", S, Study.study_time, M.TIME),
    _a("AccessionNumber", S, Study.accession_number, M.TEXT),
    _a("InstanceAvailability", S, None, M.NONE, constant="ONLINE"),
    _a("ModalitiesInStudy", S, Study.modalities_in_study, M.ANY_OF, multi_valued=True),
    _a("ReferringPhysicianName", S, Study.referring_physician_name, M.PERSON_NAME),
    _a("PatientName", S, Study.patient_name, M.PERSON_NAME),
    _a("PatientID", S, Study.patient_id, M.TEXT),
    _a("PatientBirthDate", S, Study.patient_birth_date, M.DATE),
    _a("PatientSex", S, Study.patient_sex, M.TEXT),
    _a("StudyInstanceUID", S, Study.study_instance_uid, M.UID_LIST),
    _a("StudyID", S, Study.study_id, M.TEXT),
    _a("NumberOfStudyRelatedSeries", S, Study.number_of_series, M.NONE),
    _a("NumberOfStudyRelatedInstances", S, Study.number_of_instances, M.NONE),
    _a("StudyDescription", S, Study.study_description, M.TEXT),
    # Table 10.6.3-4, series level.
    _a("Modality", SE, Series.modality, M.TEXT),
    _a("SeriesDescription", SE, Series.series_description, M.TEXT),
    _a("SeriesNumber", SE, Series.series_number, M.INTEGER),
    _a("SeriesInstanceUID", SE, Series.series_instance_uid, M.UID_LIST),
    _a("NumberOfSeriesRelatedInstances", SE, Series.number_of_instances, M.NONE),
    _a("SeriesDate", SE, Series.series_date, M.DATE),
    _a("SeriesTime", SE, Series.series_time, M.TIME),
    _a("BodyPartExamined", SE, Series.body_part_examined, M.TEXT, default=False),
    # Table 10.6.3-5, instance level.
    _a("SOPClassUID", I, Instance.sop_class_uid, M.UID_LIST),
    _a("SOPInstanceUID", I, Instance.sop_instance_uid, M.UID_LIST),
    _a("InstanceNumber", I, Instance.instance_number, M.INTEGER),
    _a("Rows", I, Instance.rows, M.INTEGER),
    _a("Columns", I, Instance.columns, M.INTEGER),
    _a("NumberOfFrames", I, Instance.number_of_frames, M.INTEGER),
    _a("AvailableTransferSyntaxUID", I, Instance.transfer_syntax_uid, M.UID_LIST,
       default=False),
)
BY_TAG: dict[int, Attribute] = {a.tag: a for a in ATTRIBUTES}
#: Retrieve URL (0008,1190) of the result's own level (PS3.18 §10.6.3.3).
RETRIEVE_URL = 0x00081190
_STUDY_UID, _SERIES_UID = 0x0020000D, 0x0020000E


@dataclass(frozen=True, kw_only=True)
class Filter:
    """One matching key and its value as sent."""

    attribute: Attribute
    value: str


@dataclass(frozen=True, kw_only=True)
class QidoQuery:
    """A parsed QIDO-RS request."""

    level: Level
    #: The resource's fixed parent: None (/studies, /series, /instances), STUDY or SERIES.
    within: Level | None
    filters: tuple[Filter, ...]
    include: frozenset[int]
    include_all: bool
    limit: int
    offset: int
    #: The server's maximum applies (no limit asked, or a larger one): say so if reached.
    server_limited: bool


@dataclass(frozen=True, kw_only=True)
class QidoMatch:
    """One matching study, series or instance, as the index has it."""

    #: Study, series, instance UIDs down to the result's level.
    uids: tuple[str, ...]
    #: Index values of the returned attributes held by the index, by tag.
    values: dict[int, object]
    #: The stored DICOM JSON of the first instance (or of the instance), when needed.
    stored_json: str | None


@dataclass(frozen=True, kw_only=True)
class QidoResult:
    """What a query found, and what each result must show."""

    level: Level
    attributes: list[Attribute]
    #: Tags asked by includefield that the index does not hold (from the stored JSON).
    extra: list[int]
    include_all: bool
    matches: list[QidoMatch]
    #: More results exist beyond the server's maximum (PS3.18 §8.3.4.4: Warning 299).
    truncated: bool


# -- values ---------------------------------------------------------------------------


def universal(value: str) -> bool:
    """Universal matching (PS3.4 §C.2.2.2.3): an empty value, or ``*`` alone."""
    return value in ("", "*")


def uid_list(value: str, *, name: str = "UID") -> list[str]:
    """UIDs separated by commas (PS3.18 §8.3.4.1) or backslashes (PS3.4 §C.2.2.2.2)."""
    uids = [u.strip() for u in re.split(r"[,\\]", value)]
    for uid in uids:
        if len(uid) > 64 or not _UID.fullmatch(uid):
            raise InvalidQuery(f"{name}: {uid!r} is not a UID (wildcards do not apply to UIDs)")
    return uids


@dataclass(frozen=True, kw_only=True)
class Range:
    """Inclusive bounds on the stored strings; None is open (PS3.4 §C.2.2.2.5)."""

    lower: str | None
    upper: str | None


def _upper(value: str, maximum: str) -> str:
    """The latest instant a partial TM/DT denotes, as a comparable string."""
    if len(value) >= len(maximum):
        return value
    return value + maximum[len(value):]


def _sensible(vr: str, text: str) -> bool:
    """Calendar and clock limits the patterns cannot express (PS3.5 Table 6.2-1)."""
    if vr == "DT":
        text = re.sub(r"[+-]\d{4}$", "", text)
    date, clock = ("", text) if vr == "TM" else (text[:8], text[8:] if vr == "DT" else "")
    if len(date) == 8:
        try:
            dt.date(int(date[:4]), int(date[4:6]), int(date[6:]))
        except ValueError:
            return False
    elif len(date) >= 6 and not 1 <= int(date[4:6]) <= 12:
        return False
    limits = (23, 59, 60)  # a leap second is a valid TM
    digits = clock.split(".")[0][:6]
    return all(int(digits[i:i + 2]) <= limit
               for i, limit in zip(range(0, len(digits) - 1, 2), limits, strict=False))


def parse_range(vr: str, value: str, *, name: str = "") -> Range:
    """A single value or range of DA, TM or DT, as bounds comparable with stored strings.

    ``20200101-20201231``, ``-20201231`` (up to), ``20200101-`` (from); a single value is
    the range it denotes (``1030`` is 10:30:00 to 10:30:59.999999). DT timezone offsets
    are kept for validation and ignored for comparison (stored values have none).
    """
    label = name or vr
    pattern = {"DA": _DA, "TM": _TM, "DT": _DT}[vr]
    maximum = {"DA": "", "TM": _TM_MAX, "DT": _DT_MAX}[vr]

    def valid(text: str) -> bool:
        return text == "" or (pattern.fullmatch(text) is not None and _sensible(vr, text))

    def strip_offset(text: str) -> str:
        return re.sub(r"[+-]\d{4}$", "", text) if vr == "DT" else text

    value = value.strip()
    if "-" not in value or (vr == "DT" and valid(value)):
        if not value or not valid(value):
            raise InvalidQuery(f"{label}: {value!r} is not a valid {vr} value")
        core = strip_offset(value)
        return Range(lower=core, upper=_upper(core, maximum) if maximum else core)
    # A DT may hold "-" in its offset: take the first split where both sides are valid.
    for index, char in enumerate(value):
        if char != "-":
            continue
        low, high = value[:index], value[index + 1:]
        if valid(low) and valid(high) and (low or high):
            low, high = strip_offset(low), strip_offset(high)
            if low and high and low > _upper(high, maximum):
                raise InvalidQuery(f"{label}: range {value!r} ends before it starts")
            return Range(lower=low or None,
                         upper=(_upper(high, maximum) if maximum else high) if high else None)
    raise InvalidQuery(f"{label}: {value!r} is not a valid {vr} value or range")


# -- SQL --------------------------------------------------------------------------------


def wildcard_pattern(value: str, *, dialect: str) -> tuple[str, str]:
    """A DICOM wildcard value → (operator, pattern) for ``dialect``.

    PS3.4 §C.2.2.2.4: ``*`` matches any sequence of characters (including none), ``?`` any
    single character; every other character is literal. SQLite's GLOB is case-sensitive
    like DICOM matching (its LIKE is not), with ``*``/``?`` already its wildcards: only
    ``[`` needs escaping. Elsewhere LIKE, escaping ``%``, ``_`` and the escape character.
    """
    if dialect == "sqlite":
        return "GLOB", value.replace("[", "[[]")
    return "LIKE", _like_pattern(value)


_LIKE_ESCAPES = str.maketrans({"%": "\\%", "_": "\\_", "\\": "\\\\", "*": "%", "?": "_"})


def _like_pattern(value: str) -> str:
    """DICOM ``*``/``?`` as LIKE's ``%``/``_``, LIKE's own wildcards escaped with ``\\``."""
    return value.translate(_LIKE_ESCAPES)


def _like_insensitive(column: Any, value: str) -> ColumnElement[bool]:
    """Case-insensitive wildcard match (LIKE with ``\\`` escapes, lower-cased both sides)."""
    pattern = _like_pattern(value.lower())
    lowered = func.lower(column)
    # Stored person names may carry ideographic/phonetic groups after "=" (PS3.5 §6.2.1):
    # the key matches the alphabetic group.
    return or_(lowered.like(pattern, escape="\\"), lowered.like(pattern + "=%", escape="\\"))


def _wildcard(column: Any, value: str, dialect: str) -> ColumnElement[bool]:
    operator, pattern = wildcard_pattern(value, dialect=dialect)
    if operator == "GLOB":
        return column.op("GLOB")(pattern)  # type: ignore[no-any-return]
    return column.like(pattern, escape="\\")  # type: ignore[no-any-return]


def condition(attribute: Attribute, value: str, *, dialect: str) -> ColumnElement[bool] | None:
    """The SQL condition of one matching key; None for universal matching."""
    if universal(value):
        return None
    column = attribute.column
    matching = attribute.matching
    if matching is M.TEXT:
        if "*" in value or "?" in value:
            return _wildcard(column, value, dialect)
        return column == value  # type: ignore[no-any-return]
    if matching is M.PERSON_NAME:
        return _like_insensitive(column, value)
    if matching is M.UID_LIST:
        uids = uid_list(value, name=attribute.keyword)
        return column == uids[0] if len(uids) == 1 else column.in_(uids)  # type: ignore[no-any-return]
    if matching in (M.DATE, M.TIME):
        bounds = parse_range("DA" if matching is M.DATE else "TM", value, name=attribute.keyword)
        parts = [column != ""]  # an empty stored value never matches a range
        if bounds.lower is not None:
            parts.append(column >= bounds.lower)
        if bounds.upper is not None:
            parts.append(column <= bounds.upper)
        return and_(*parts)
    if matching is M.INTEGER:
        return column == int(value)  # type: ignore[no-any-return]
    if matching is M.ANY_OF:
        # Stored sorted and backslash-separated: "\CT\MR\" contains "\CT\".
        wrapped = literal("\\") + column + literal("\\")
        return or_(*(
            _wildcard(wrapped, f"*\\{item.strip()}\\*", dialect)
            for item in re.split(r"[,\\]", value)
        ))
    raise InvalidQuery(f"cannot match on {attribute.keyword}")  # pragma: no cover


def returned_attributes(query: QidoQuery) -> list[Attribute]:
    """The index attributes a result holds (PS3.18 §10.6.3.3): its level's, those of the
    levels above when the resource is not within one, the matching keys, includefield."""
    top = Level.STUDY if query.within is None else Level(query.within + 1)
    asked = query.include | {f.attribute.tag for f in query.filters}
    out = []
    for attribute in ATTRIBUTES:
        if attribute.level > query.level:
            continue
        wanted = (
            (attribute.level >= top and (attribute.default or query.include_all))
            or attribute.tag in asked
            or attribute.tag in (_STUDY_UID, _SERIES_UID)  # a result names its parents
        )
        if wanted:
            out.append(attribute)
    return out


def search(
    session: Session, *, scope: Scope, query: QidoQuery,
    study_instance_uid: str | None = None, series_instance_uid: str | None = None,
) -> QidoResult:
    """Run ``query`` in ``scope``: one SQL statement, ordered by id, limited and offset."""
    dialect = session.get_bind().dialect.name
    attributes = returned_attributes(query)
    columns = [a.column for a in attributes if a.column is not None]
    extra = sorted(query.include - {a.tag for a in attributes} - {RETRIEVE_URL})
    need_json = query.include_all or bool(extra)
    level = query.level
    if level is Level.STUDY:
        order, uid_columns = Study.id, [Study.study_instance_uid]
    elif level is Level.SERIES:
        order, uid_columns = Series.id, [Study.study_instance_uid, Series.series_instance_uid]
    else:
        order, uid_columns = Instance.id, [Study.study_instance_uid, Series.series_instance_uid,
                                           Instance.sop_instance_uid]
    first = aliased(Instance)
    json_column: list[Any] = []
    if need_json:
        json_column = [Instance.metadata_json if level is Level.INSTANCE else first.metadata_json]
    selected = [c.label(f"c{i}") for i, c in enumerate([*uid_columns, *columns, *json_column])]
    statement = scoped_select(scope, *selected)
    if level is Level.SERIES:
        statement = statement.join(Series, Series.study_id == Study.id)
    elif level is Level.INSTANCE:
        statement = statement.join(Instance, Instance.study_id == Study.id).join(
            Series, Series.id == Instance.series_id)
    if need_json and level is Level.STUDY:
        statement = statement.outerjoin(first, first.id == Study.first_instance_id)
    elif need_json and level is Level.SERIES:
        statement = statement.outerjoin(first, first.id == Series.first_instance_id)
    if study_instance_uid is not None:
        statement = statement.where(Study.study_instance_uid == study_instance_uid)
    if series_instance_uid is not None:
        statement = statement.where(Series.series_instance_uid == series_instance_uid)
    for item in query.filters:
        clause = condition(item.attribute, item.value, dialect=dialect)
        if clause is not None:
            statement = statement.where(clause)
    statement = statement.order_by(order).offset(query.offset).limit(query.limit + 1)
    rows = session.execute(statement).all()
    count = len(uid_columns)
    indexed = [a for a in attributes if a.column is not None]
    matches = [
        QidoMatch(
            uids=tuple(row[:count]),
            values={a.tag: row[count + i] for i, a in enumerate(indexed)},
            stored_json=row[count + len(indexed)] if need_json else None,
        )
        for row in rows[: query.limit]
    ]
    return QidoResult(level=level, attributes=attributes, extra=extra,
                      include_all=query.include_all, matches=matches,
                      truncated=len(rows) > query.limit and query.server_limited)
