"""QIDO-RS in and out: query parameters (PS3.18 §8.3.4) → a :class:`QidoQuery`, and what
the archive found → DICOM JSON (PS3.18 Annex F).

Keys are DICOM keywords or tags; ``includefield``, ``limit``, ``offset`` and
``fuzzymatching`` control the result. Every value is checked here, with the attribute's
name in the message, so that the archive only ever runs a query it understands: a key it
cannot match is a 400, never silently ignored (a client must not take an unfiltered answer
for a filtered one). RetrieveURLs are written under ``BASE_URL_TOKEN``, which the route
replaces with its own base URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from telerad.archive import qido
from telerad.archive.qido import (
    ATTRIBUTES,
    BY_TAG,
    RETRIEVE_URL,
    Attribute,
    Filter,
    Level,
    Matching,
    QidoMatch,
    QidoQuery,
    QidoResult,
    parse_range,
    uid_list,
    universal,
)
from telerad.dicom.header import BASE_URL_TOKEN
from telerad.errors import InvalidQuery

M = Matching
#: PS3.18 §8.3.4: the query parameters that are not attribute matches.
_CONTROL = frozenset({"includefield", "limit", "offset", "fuzzymatching"})
_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_CS = re.compile(r"[A-Z0-9 _]{1,16}")


def resolve_tag(key: str) -> int:
    """A keyword (``PatientID``) or tag (``00100020``) → the tag; InvalidQuery otherwise."""
    if _TAG.fullmatch(key):
        return int(key, 16)
    if "." in key:
        raise InvalidQuery(f"{key!r}: sequence attribute paths are not supported")
    tag = tag_for_keyword(key)
    if tag is None:
        raise InvalidQuery(
            f"unknown query parameter {key!r}: not a DICOM keyword or tag, nor one of "
            f"{', '.join(sorted(_CONTROL))}"
        )
    return int(tag)


def _name(tag: int) -> str:
    keyword = keyword_for_tag(tag)
    return f"{keyword} ({tag:08X})" if keyword else f"({tag:08X})"


def _nonnegative(name: str, text: str, *, minimum: int) -> int:
    if not text.isdigit() or int(text) < minimum:
        raise InvalidQuery(f"{name} must be an integer of at least {minimum}, not {text!r}")
    return int(text)


def parse_query(
    level: Level, params: Iterable[tuple[str, str]], *, within: Level | None = None
) -> QidoQuery:
    """Parse the query parameters of a QIDO-RS request at ``level`` (PS3.18 §8.3.4)."""
    filters: dict[int, Filter] = {}
    include: set[int] = set()
    include_all = False
    limit: int | None = None
    offset = 0
    for key, value in params:
        lowered = key.lower()
        if lowered == "includefield":
            for raw in re.split(r"[,\\]", value):
                item = raw.strip()
                if item.lower() == "all":
                    include_all = True
                elif item:
                    include.add(resolve_tag(item))
        elif lowered == "limit":
            limit = min(_nonnegative("limit", value, minimum=1), 10**9)
        elif lowered == "offset":
            offset = min(_nonnegative("offset", value, minimum=0), 10**12)
        elif lowered == "fuzzymatching":
            if value.lower() not in ("true", "false"):
                raise InvalidQuery("fuzzymatching must be true or false")
            # Accepted and ignored: matching is literal (PS3.18 §8.3.4.2 lets a server
            # not support fuzzy matching of person names).
        else:
            tag = resolve_tag(key)
            attribute = BY_TAG.get(tag)
            if attribute is None or attribute.level > level or attribute.matching is M.NONE:
                raise InvalidQuery(
                    f"cannot match on {_name(tag)} at the {level.name.lower()} level; "
                    f"matching keys: {', '.join(matchable(level))}"
                )
            if tag in filters:
                raise InvalidQuery(f"{_name(tag)} is given more than once")
            _check_value(attribute, value)
            filters[tag] = Filter(attribute=attribute, value=value)
    return QidoQuery(
        level=level, within=within, filters=tuple(filters.values()),
        include=frozenset(include), include_all=include_all,
        limit=min(limit or qido.MAX_RESULTS, qido.MAX_RESULTS), offset=offset,
        server_limited=limit is None or limit > qido.MAX_RESULTS,
    )


def matchable(level: Level) -> list[str]:
    """Keywords a query at ``level`` may match on."""
    return [a.keyword for a in ATTRIBUTES if a.level <= level and a.matching is not M.NONE]


def _check_value(attribute: Attribute, value: str) -> None:
    """Fail early, with the attribute's name, on a value its matching cannot take."""
    if universal(value):
        return
    name = attribute.keyword
    matching = attribute.matching
    if matching in (M.TEXT, M.PERSON_NAME) and "\\" in value:
        raise InvalidQuery(f"{name}: multiple values are only allowed for UIDs and "
                           "ModalitiesInStudy")
    if matching is M.UID_LIST:
        uid_list(value, name=name)
    elif matching is M.DATE:
        parse_range("DA", value, name=name)
    elif matching is M.TIME:
        parse_range("TM", value, name=name)
    elif matching is M.INTEGER and not re.fullmatch(r"[+-]?\d{1,10}", value.strip()):
        raise InvalidQuery(f"{name} must be an integer, not {value!r}")
    elif matching is M.ANY_OF:
        for item in re.split(r"[,\\]", value):
            if not _CS.fullmatch(item.strip()):
                raise InvalidQuery(f"{name}: {item!r} is not a code string value")


#: What ``includefield=all`` never copies from a first instance's header at the study and
#: series levels: the attributes of lower levels the index knows, and the instance's own.
_INSTANCE_ONLY = frozenset({
    0x00080008, 0x00080012, 0x00080013, 0x00080014, 0x00080016, 0x00080018,  # SOP Common
    0x00080022, 0x00080023, 0x00080032, 0x00080033, 0x0008002A, 0x00083002,
    0x00200012, 0x00200013, 0x00200032, 0x00200037, 0x00201041,  # image plane, numbers
})


# -- DICOM JSON -------------------------------------------------------------------------


def person_name(value: str) -> dict[str, str]:
    """A PN value → its DICOM JSON object (PS3.18 §F.2.2): up to three component groups."""
    groups = value.split("=")
    out = {}
    for key, group in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False):
        if group:
            out[key] = group
    return out


def element(vr: str, value: object, *, multi_valued: bool = False) -> dict[str, Any]:
    """One DICOM JSON attribute (PS3.18 §F.2.2); an empty value has no "Value"."""
    if value is None or value == "":
        return {"vr": vr}
    if vr == "PN":
        names = [person_name(v) for v in str(value).split("\\")]
        return {"vr": vr, "Value": names}
    if vr in ("IS", "US", "UL", "SS", "SL"):
        return {"vr": vr, "Value": [int(str(value))]}
    if multi_valued:
        return {"vr": vr, "Value": [v for v in str(value).split("\\") if v]}
    return {"vr": vr, "Value": [str(value)]}


def retrieve_url(level: Level, uids: Sequence[str]) -> str:
    """The WADO-RS URL of a result, under ``BASE_URL_TOKEN``."""
    url = f"{BASE_URL_TOKEN}/studies/{uids[0]}"
    if level >= Level.SERIES:
        url += f"/series/{uids[1]}"
    if level >= Level.INSTANCE:
        url += f"/instances/{uids[2]}"
    return url


def to_dicom_json(result: QidoResult) -> str:
    """The results as a DICOM JSON array (PS3.18 §F.2), keys in tag order."""
    return json.dumps([_dataset(result, match) for match in result.matches],
                      separators=(",", ":"), ensure_ascii=False)


def _dataset(result: QidoResult, match: QidoMatch) -> dict[str, Any]:
    level = result.level
    out: dict[int, dict[str, Any]] = {}
    for attribute in result.attributes:
        value = attribute.constant if attribute.column is None else match.values[attribute.tag]
        out[attribute.tag] = element(attribute.vr, value, multi_valued=attribute.multi_valued)
    out[RETRIEVE_URL] = {"vr": "UR", "Value": [retrieve_url(level, match.uids)]}
    stored: dict[str, Any] = json.loads(match.stored_json) if match.stored_json else {}
    if result.include_all:
        for key, item in stored.items():
            tag = int(key, 16)
            if tag in out or "BulkDataURI" in item or "InlineBinary" in item:
                continue
            if level < Level.INSTANCE and (tag in _INSTANCE_ONLY or tag >> 16 == 0x0028):
                continue
            if level is Level.STUDY and tag in BY_TAG and BY_TAG[tag].level > Level.STUDY:
                continue
            out[tag] = item
    for tag in result.extra:
        if tag not in out:
            out[tag] = stored.get(f"{tag:08X}") or {"vr": dictionary_vr(tag)}
    return {f"{tag:08X}": out[tag] for tag in sorted(out)}


def dictionary_vr(tag: int) -> str:
    """The VR of a tag from the data dictionary; UN when it has none or several."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return vr if len(vr) == 2 else "UN"
