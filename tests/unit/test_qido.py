"""QIDO-RS parsing and matching (PS3.18 §8.3.4, PS3.4 §C.2.2.2), on the real index.

The matching tests run their SQL on the database under test (SQLite by default,
PostgreSQL with TELERAD_TEST_DATABASE=postgresql), through the same scope as the HTTP edge.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from telerad.archive import qido
from telerad.archive.models import Instance, Series, Study
from telerad.archive.qido import Level, parse_range
from telerad.auth.service import Permission, Scope
from telerad.db import transaction
from telerad.dicom.header import BASE_URL_TOKEN
from telerad.dicomweb.qido_codec import element, parse_query, resolve_tag, to_dicom_json
from telerad.errors import InvalidQuery
from telerad.runtime import Runtime
from telerad.workflow.sites.service import add_site

NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
ALL = Scope(permissions=frozenset(Permission))


# -- parsing ----------------------------------------------------------------------------


def test_keys_by_keyword_or_tag() -> None:
    by_keyword = parse_query(Level.STUDY, [("PatientID", "X")])
    by_tag = parse_query(Level.STUDY, [("00100020", "X")])
    assert by_keyword.filters == by_tag.filters
    assert by_keyword.filters[0].attribute.keyword == "PatientID"
    assert resolve_tag("0020000d") == 0x0020000D


@pytest.mark.parametrize(
    ("level", "params", "message"),
    [
        (Level.STUDY, [("Foo", "1")], "unknown query parameter 'Foo'"),
        (Level.STUDY, [("Modality", "CT")], r"cannot match on Modality \(00080060\) at the study"),
        (Level.STUDY, [("InstitutionName", "X")], "cannot match on InstitutionName"),
        (Level.SERIES, [("SOPInstanceUID", "1.2")], "cannot match on SOPInstanceUID"),
        (Level.STUDY, [("NumberOfStudyRelatedSeries", "1")], "cannot match"),
        (Level.STUDY, [("PatientID", "A"), ("00100020", "B")], "more than once"),
        (Level.STUDY, [("limit", "0")], "limit must be an integer"),
        (Level.STUDY, [("limit", "ten")], "limit must be an integer"),
        (Level.STUDY, [("offset", "-1")], "offset must be an integer"),
        (Level.STUDY, [("fuzzymatching", "maybe")], "fuzzymatching"),
        (Level.STUDY, [("includefield", "NotAKeyword")], "unknown query parameter"),
        (Level.STUDY, [("ReferencedStudySequence.ReferencedSOPInstanceUID", "1")], "sequence"),
        (Level.STUDY, [("StudyInstanceUID", "1.2.*")], "not a UID"),
        (Level.STUDY, [("StudyInstanceUID", "1.02")], "not a UID"),
        (Level.STUDY, [("StudyDate", "2020-01-01")], "not a valid DA"),
        (Level.STUDY, [("StudyDate", "20201231-20200101")], "ends before it starts"),
        (Level.STUDY, [("StudyDate", "-")], "not a valid DA"),
        (Level.STUDY, [("StudyTime", "25")], "not a valid TM"),
        (Level.SERIES, [("SeriesNumber", "1.5")], "must be an integer"),
        (Level.STUDY, [("PatientID", "A\\B")], "multiple values"),
        (Level.STUDY, [("ModalitiesInStudy", "ct")], "not a code string"),
    ],
)
def test_bad_queries_say_why(level: Level, params: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(InvalidQuery, match=message) as info:
        parse_query(level, params)
    assert info.value.http_status == 400


def test_control_parameters() -> None:
    query = parse_query(Level.STUDY, [
        ("includefield", "00081030,InstitutionName"), ("includefield", "StudyID"),
        ("limit", "10"), ("offset", "20"), ("fuzzymatching", "true"),
    ])
    assert query.include == {0x00081030, 0x00080080, 0x00200010}
    assert (query.limit, query.offset, query.server_limited) == (10, 20, False)
    assert parse_query(Level.STUDY, [("includefield", "all")]).include_all
    unlimited = parse_query(Level.STUDY, [])
    assert unlimited.limit == qido.MAX_RESULTS
    assert unlimited.server_limited


def test_higher_level_keys_match_at_lower_levels() -> None:
    query = parse_query(Level.INSTANCE, [("PatientID", "X"), ("Modality", "CT"),
                                         ("SOPClassUID", "1.2")])
    assert [f.attribute.level for f in query.filters] == [Level.STUDY, Level.SERIES,
                                                          Level.INSTANCE]


@pytest.mark.parametrize(
    ("vr", "text", "lower", "upper"),
    [
        ("DA", "20200101", "20200101", "20200101"),
        ("DA", "20200101-20201231", "20200101", "20201231"),
        ("DA", "-20201231", None, "20201231"),
        ("DA", "20200101-", "20200101", None),
        ("TM", "1030", "1030", "103059.999999"),
        ("TM", "10-1130", "10", "113059.999999"),
        ("TM", "083000.5-", "083000.5", None),
        ("DT", "2020", "2020", "20201231235959.999999"),
        ("DT", "20200101120000-0500", "20200101120000", "20200101120000.999999"),
        ("DT", "20200101-0100-20200102+0100", "20200101", "20200102235959.999999"),
        ("DT", "-202001011200", None, "20200101120059.999999"),
    ],
)
def test_ranges(vr: str, text: str, lower: str | None, upper: str | None) -> None:
    assert parse_range(vr, text) == qido.Range(lower=lower, upper=upper)


@given(
    a=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 1, 1)),
    b=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 1, 1)),
    v=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 1, 1)),
)
def test_date_range_bounds_agree_with_dates(a: dt.date, b: dt.date, v: dt.date) -> None:
    """String bounds on YYYYMMDD order exactly like the dates they stand for."""
    low, high = min(a, b), max(a, b)
    bounds = parse_range("DA", f"{low:%Y%m%d}-{high:%Y%m%d}")
    assert bounds.lower is not None
    assert bounds.upper is not None
    stored = f"{v:%Y%m%d}"
    assert (bounds.lower <= stored <= bounds.upper) == (low <= v <= high)


@given(t=st.times(), u=st.times())
def test_time_upper_bound_covers_the_partial_time(t: dt.time, u: dt.time) -> None:
    """``-HHMM`` includes every second of minute HH:MM and nothing after it."""
    bound = parse_range("TM", f"-{t:%H%M}").upper
    assert bound is not None
    stored = f"{u:%H%M%S.%f}"
    assert (stored <= bound) == ((u.hour, u.minute) <= (t.hour, t.minute))


@pytest.mark.parametrize(
    ("dialect", "value", "operator", "pattern"),
    [
        ("sqlite", "DOE*", "GLOB", "DOE*"),
        ("sqlite", "A[1]?", "GLOB", "A[[]1]?"),
        ("postgresql", "DOE*", "LIKE", "DOE%"),
        ("postgresql", "50%_a?*", "LIKE", "50\\%\\_a_%"),
        ("postgresql", "a\\b", "LIKE", "a\\\\b"),
    ],
)
def test_wildcards_escape_the_other_specials(dialect: str, value: str, operator: str,
                                              pattern: str) -> None:
    assert qido.wildcard_pattern(value, dialect=dialect) == (operator, pattern)


def test_dicom_json_elements() -> None:
    assert element("PN", "Yamada^Tarou=山田^太郎=やまだ^たろう") == {
        "vr": "PN",
        "Value": [{"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎",
                   "Phonetic": "やまだ^たろう"}],
    }
    assert element("PN", "") == {"vr": "PN"}
    assert element("IS", 3) == {"vr": "IS", "Value": [3]}
    assert element("IS", None) == {"vr": "IS"}
    assert element("CS", "CT\\MR", multi_valued=True) == {"vr": "CS", "Value": ["CT", "MR"]}


# -- matching on the index --------------------------------------------------------------


def _instance_json(**attrs: tuple[str, Any]) -> str:
    return json.dumps({tag: {"vr": vr, "Value": [value]} for tag, (vr, value) in attrs.items()})


@pytest.fixture
def index(runtime: Runtime) -> Runtime:
    """Four studies; the second at another site; a few series and instances."""
    with transaction(runtime.sessions) as session:
        other = add_site(session, name="Other", ae_titles=["OTHER"], now=NOW)
        rows = [
            dict(uid="1.2.1", pid="A_1", name="DOE^JOHN", date="20200115", time="083000",
                 mods="CT", acc="ACC1", desc="CT HEAD"),
            dict(uid="1.2.2", pid="AB1", name="doe^jane=ドウ^ジェーン", date="20200620",
                 time="101500.25", mods="CT\\MR", acc="ACC2", desc="ct head", site=other.id),
            dict(uid="1.2.3", pid="50%", name="SMITH^ANNA", date="20211231", time="2359",
                 mods="MR", acc="acc3", desc="MR BRAIN"),
            dict(uid="1.2.4", pid="X", name="", date="", time="", mods="US", acc="",
                 desc=""),
        ]
        for number, r in enumerate(rows, start=1):
            study = Study(
                study_instance_uid=r["uid"], site_id=r.get("site"), patient_id=r["pid"],
                patient_name=r["name"], study_date=r["date"], study_time=r["time"],
                modalities_in_study=r["mods"], accession_number=r["acc"],
                study_description=r["desc"], number_of_series=1, number_of_instances=2,
                first_instance_at=NOW, last_instance_at=NOW,
            )
            session.add(study)
            session.flush()
            series = Series(study_id=study.id, series_instance_uid=f"{r['uid']}.1",
                            modality=str(r["mods"]).split("\\")[0], series_number=number,
                            series_date=r["date"], number_of_instances=2)
            session.add(series)
            session.flush()
            for i in (1, 2):
                instance = Instance(
                    study_id=study.id, series_id=series.id,
                    sop_instance_uid=f"{r['uid']}.1.{i}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                    transfer_syntax_uid="1.2.840.10008.1.2.1", instance_number=i, rows=512,
                    columns=512, number_of_frames=None, blob_key=f"k{number}{i}", size=1,
                    received_at=NOW, origin="stow",
                    metadata_json=_instance_json(
                        **{"00080080": ("LO", f"HOSPITAL {number}"),
                           "00180050": ("DS", 1.25 * i),
                           "00080018": ("UI", f"{r['uid']}.1.{i}"),
                           "7FE00010": ("OW", None)},
                    ).replace('{"vr": "OW", "Value": [null]}',
                              f'{{"vr": "OW", "BulkDataURI": "{BASE_URL_TOKEN}/x"}}'),
                )
                session.add(instance)
                session.flush()
                if i == 1:
                    series.first_instance_id = instance.id
                    study.first_instance_id = instance.id
    return runtime


def search(runtime: Runtime, level: Level, params: list[tuple[str, str]], *,
           scope: Scope = ALL, **where: str) -> list[dict[str, Any]]:
    query = parse_query(level, params)
    with transaction(runtime.sessions, readonly=True) as session:
        return datasets(qido.search(session, scope=scope, query=query, **where))


def datasets(result: qido.QidoResult) -> list[dict[str, Any]]:
    """The results as the HTTP edge writes them (DICOM JSON), read back."""
    out: list[dict[str, Any]] = json.loads(to_dicom_json(result))
    return out


def uids(results: list[dict[str, Any]], tag: str = "0020000D") -> list[str]:
    return [r[tag]["Value"][0] for r in results]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], ["1.2.1", "1.2.2", "1.2.3", "1.2.4"]),
        ([("PatientID", "A_1")], ["1.2.1"]),
        ([("PatientID", "A_*")], ["1.2.1"]),  # "_" is literal, not LIKE's any-character
        ([("PatientID", "A?1")], ["1.2.1", "1.2.2"]),
        ([("PatientID", "50%")], ["1.2.3"]),
        ([("PatientID", "5*")], ["1.2.3"]),
        ([("PatientID", "*")], ["1.2.1", "1.2.2", "1.2.3", "1.2.4"]),
        ([("PatientID", "")], ["1.2.1", "1.2.2", "1.2.3", "1.2.4"]),
        ([("AccessionNumber", "ACC*")], ["1.2.1", "1.2.2"]),  # case-sensitive
        ([("StudyDescription", "CT HEAD")], ["1.2.1"]),
        ([("PatientName", "doe*")], ["1.2.1", "1.2.2"]),  # PN: case-insensitive
        ([("PatientName", "DOE^JANE")], ["1.2.2"]),  # matches the alphabetic group
        ([("PatientName", "*ann?")], ["1.2.3"]),
        ([("StudyInstanceUID", "1.2.1,1.2.3")], ["1.2.1", "1.2.3"]),
        ([("StudyInstanceUID", "1.2.2\\1.2.4")], ["1.2.2", "1.2.4"]),
        ([("0020000D", "1.2.4")], ["1.2.4"]),
        ([("StudyDate", "20200101-20201231")], ["1.2.1", "1.2.2"]),
        ([("StudyDate", "-20200615")], ["1.2.1"]),  # an empty date never matches a range
        ([("StudyDate", "20200616-")], ["1.2.2", "1.2.3"]),
        ([("StudyDate", "20211231")], ["1.2.3"]),
        ([("StudyTime", "0800-1015")], ["1.2.1", "1.2.2"]),
        ([("StudyTime", "2300-")], ["1.2.3"]),
        ([("ModalitiesInStudy", "MR")], ["1.2.2", "1.2.3"]),
        ([("ModalitiesInStudy", "US,CT")], ["1.2.1", "1.2.2", "1.2.4"]),
        ([("ModalitiesInStudy", "M")], []),
        ([("PatientID", "A*"), ("StudyDate", "20200601-")], ["1.2.2"]),
        ([("PatientID", "nobody")], []),
        ([("limit", "2")], ["1.2.1", "1.2.2"]),
        ([("limit", "2"), ("offset", "2")], ["1.2.3", "1.2.4"]),
        ([("offset", "10")], []),
    ],
)
def test_study_matching(index: Runtime, params: list[tuple[str, str]],
                        expected: list[str]) -> None:
    assert uids(search(index, Level.STUDY, params)) == expected


def test_scope_limits_results(index: Runtime) -> None:
    with transaction(index.sessions, readonly=True) as session:
        other_site = session.scalar(
            select(Study.site_id).where(Study.study_instance_uid == "1.2.2"))
    only_other = Scope(permissions=frozenset(Permission), site_ids=frozenset({other_site}))
    assert uids(search(index, Level.STUDY, [], scope=only_other)) == ["1.2.2"]
    assert uids(search(index, Level.INSTANCE, [], scope=only_other), "00080018") == [
        "1.2.2.1.1", "1.2.2.1.2"]
    nothing = Scope(permissions=frozenset(Permission), site_ids=frozenset())
    assert search(index, Level.SERIES, [], scope=nothing) == []


def test_study_attributes(index: Runtime) -> None:
    (study,) = search(index, Level.STUDY, [("PatientID", "AB1")])
    assert study["00080005"] == {"vr": "CS", "Value": ["ISO_IR 192"]}
    assert study["00080056"] == {"vr": "CS", "Value": ["ONLINE"]}
    assert study["00080061"] == {"vr": "CS", "Value": ["CT", "MR"]}
    assert study["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "doe^jane",
                                                        "Ideographic": "ドウ^ジェーン"}]}
    assert study["00201206"] == {"vr": "IS", "Value": [1]}
    assert study["00201208"] == {"vr": "IS", "Value": [2]}
    assert study["00081190"] == {"vr": "UR", "Value": [f"{BASE_URL_TOKEN}/studies/1.2.2"]}
    assert study["00100030"] == {"vr": "DA"}  # type 2: present, empty
    assert list(study) == sorted(study)
    assert "00080080" not in study
    assert "0020000E" not in study


def test_includefield_reads_the_first_instance(index: Runtime) -> None:
    (study,) = search(index, Level.STUDY, [("StudyInstanceUID", "1.2.3"),
                                           ("includefield", "InstitutionName,00180050"),
                                           ("includefield", "00081030")])
    assert study["00080080"] == {"vr": "LO", "Value": ["HOSPITAL 3"]}
    assert study["00180050"] == {"vr": "DS", "Value": [1.25]}
    (everything,) = search(index, Level.STUDY, [("StudyInstanceUID", "1.2.3"),
                                                ("includefield", "all")])
    assert everything["00080080"] == {"vr": "LO", "Value": ["HOSPITAL 3"]}
    assert "7FE00010" not in everything
    assert "00080018" not in everything
    (missing,) = search(index, Level.STUDY, [("StudyInstanceUID", "1.2.3"),
                                             ("includefield", "OperatorsName")])
    assert missing["00081070"] == {"vr": "PN"}
    instances = search(index, Level.INSTANCE, [("includefield", "SliceThickness")],
                       study_instance_uid="1.2.1", series_instance_uid="1.2.1.1")
    assert [i["00180050"]["Value"][0] for i in instances] == [1.25, 2.5]


def test_series_levels(index: Runtime) -> None:
    within = parse_query(Level.SERIES, [], within=Level.STUDY)
    with transaction(index.sessions, readonly=True) as session:
        found = qido.search(session, scope=ALL, query=within, study_instance_uid="1.2.2")
    (series,) = datasets(found)
    assert series["0020000E"]["Value"] == ["1.2.2.1"]
    assert series["00080060"]["Value"] == ["CT"]
    assert series["00201209"]["Value"] == [2]
    assert series["00200011"]["Value"] == [2]
    assert series["0020000D"]["Value"] == ["1.2.2"]  # a result names its study
    assert "00100020" not in series  # within a study: no study attributes
    assert series["00081190"]["Value"] == [f"{BASE_URL_TOKEN}/studies/1.2.2/series/1.2.2.1"]
    every = search(index, Level.SERIES, [("Modality", "MR")])
    assert uids(every, "0020000E") == ["1.2.3.1"]
    assert every[0]["00100020"]["Value"] == ["50%"]  # all series: study attributes too
    assert uids(search(index, Level.SERIES, [("SeriesNumber", "4")]), "0020000E") == ["1.2.4.1"]
    assert uids(search(index, Level.SERIES, [("PatientName", "SMITH*")]), "0020000E") == [
        "1.2.3.1"]


def test_instance_levels(index: Runtime) -> None:
    results = search(index, Level.INSTANCE, [("InstanceNumber", "2"),
                                             ("ModalitiesInStudy", "CT")])
    assert uids(results, "00080018") == ["1.2.1.1.2", "1.2.2.1.2"]
    first = results[0]
    assert first["00280010"] == {"vr": "US", "Value": [512]}
    assert first["00280008"] == {"vr": "IS"}
    assert first["00081190"]["Value"] == [
        f"{BASE_URL_TOKEN}/studies/1.2.1/series/1.2.1.1/instances/1.2.1.1.2"]
    scoped = search(index, Level.INSTANCE, [("SOPInstanceUID", "1.2.3.1.1,1.2.1.1.1")],
                    study_instance_uid="1.2.3")
    assert uids(scoped, "00080018") == ["1.2.3.1.1"]
    assert search(index, Level.INSTANCE, [], study_instance_uid="9.9") == []


def test_server_maximum_is_reported(index: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qido, "MAX_RESULTS", 3)
    query = parse_query(Level.STUDY, [])
    with transaction(index.sessions, readonly=True) as session:
        result = qido.search(session, scope=ALL, query=query)
    assert len(result.matches) == 3
    assert result.truncated
    asked = parse_query(Level.STUDY, [("limit", "3")])
    with transaction(index.sessions, readonly=True) as session:
        assert not qido.search(session, scope=ALL, query=asked).truncated
