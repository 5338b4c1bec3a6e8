"""Sites resolve senders by AE title; errors carry stable codes and statuses."""

from __future__ import annotations

import datetime as dt
import inspect
from pathlib import Path

import pytest

from telerad import errors
from telerad.audit.service import Action, RecentReads, Who
from telerad.config import Settings
from telerad.db import transaction
from telerad.errors import Conflict, InvalidInput
from telerad.runtime import Runtime
from telerad.workflow.sites.service import add_site, normalise_ae_title, site_for_ae_title

NOW = dt.datetime(2026, 11, 23, 20, 0, tzinfo=dt.UTC)


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return Runtime.open(Settings(data_dir=tmp_path))


def test_sender_resolves_to_its_site(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        site = add_site(session, name="Carcassonne", ae_titles=["CT_URG ", "PACS"], now=NOW)
    with transaction(runtime.sessions, readonly=True) as session:
        found = site_for_ae_title(session, "  CT_URG")
        assert found is not None
        assert found.id == site.id
        assert site_for_ae_title(session, "UNKNOWN") is None
        assert site_for_ae_title(session, "bad\\title") is None


def test_an_ae_title_belongs_to_one_site(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        add_site(session, name="A", ae_titles=["CT1"], now=NOW)
    with pytest.raises(Conflict), transaction(runtime.sessions) as session:
        add_site(session, name="B", ae_titles=["CT1"], now=NOW)
    with transaction(runtime.sessions, readonly=True) as session:  # nothing of B was kept
        assert site_for_ae_title(session, "CT1") is not None


@pytest.mark.parametrize("bad", ["", "x" * 17, "A\\B", "tab\there"])
def test_invalid_ae_titles(bad: str) -> None:
    with pytest.raises(InvalidInput):
        normalise_ae_title(bad)


def test_unknown_time_zone_is_refused(runtime: Runtime) -> None:
    with pytest.raises(InvalidInput), transaction(runtime.sessions) as session:
        add_site(session, name="X", ae_titles=[], now=NOW, timezone="Mars/Olympus")


def test_every_error_has_its_own_code_and_sane_statuses() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, errors.TeleradError)]
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    for cls in classes:
        assert 400 <= cls.http_status <= 599
        assert cls.dimse_status != 0x0000
        assert cls.__doc__


def test_repeated_reads_of_a_study_are_folded_within_the_window() -> None:
    recent = RecentReads(window=dt.timedelta(seconds=60))
    reader = Who(kind="service", id="1:viewer", source="10.0.0.1")
    other = Who(kind="service", id="2:other", source="10.0.0.1")
    assert recent.should_record(reader, Action.RETRIEVE, "1.2.3", NOW)
    later = NOW + dt.timedelta(seconds=59)
    assert not recent.should_record(reader, Action.RETRIEVE, "1.2.3", later)
    assert recent.should_record(reader, Action.READ_METADATA, "1.2.3", NOW)
    assert recent.should_record(other, Action.RETRIEVE, "1.2.3", NOW)
    assert recent.should_record(reader, Action.RETRIEVE, "1.2.4", NOW)
    assert recent.should_record(reader, Action.RETRIEVE, "1.2.3", NOW + dt.timedelta(seconds=61))
    assert recent.should_record(reader, Action.SEARCH, "", NOW)
    assert recent.should_record(reader, Action.SEARCH, "", NOW)
