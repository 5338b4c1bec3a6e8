"""The offer ladder: cascade order, back-ups, credentials, subspecialties, explanations."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from telerad.workflow.assignments.rules import Reader, TeamRef, explain, ladder, qualifies
from telerad.workflow.roster.rules import Shift

NOW = dt.datetime(2026, 11, 24, 22, 0, tzinfo=dt.UTC)
SITE = 1
LOCAL, GROUP, PROVIDER = TeamRef(id=1, name="Local"), TeamRef(id=2, name="GHT"), TeamRef(
    id=3, name="Provider")
CASCADE = [LOCAL, GROUP, PROVIDER]


def reader(rid: int, *, sites: tuple[int, ...] = (SITE,), subs: tuple[str, ...] = ()
           ) -> Reader:
    return Reader(radiologist_id=rid, name=f"R{rid}", site_ids=frozenset(sites),
                  subspecialties=frozenset(subs))


def shift(rid: int, team: TeamRef, *, backup: bool = False) -> Shift:
    return Shift(radiologist_id=rid, team=str(team.id), start=NOW - dt.timedelta(hours=3),
                 end=NOW + dt.timedelta(hours=9), backup=backup)


def test_cascade_order_primaries_backups_then_next_teams() -> None:
    readers = {i: reader(i) for i in range(1, 6)}
    running = [shift(1, LOCAL), shift(2, LOCAL, backup=True), shift(3, GROUP),
               shift(4, PROVIDER), shift(5, PROVIDER, backup=True)]
    rungs = ladder(site_id=SITE, subspecialty="", cascade=CASCADE, running=running,
                   readers=readers)
    assert [(s.label, sorted(s.radiologist_ids)) for s in rungs.steps] == [
        ("primaries of team Local", [1]), ("back-ups of team Local", [2]),
        ("team GHT", [3]), ("team Provider", [4, 5])]
    assert rungs.offered(0) == {1}
    assert rungs.offered(2) == {1, 2, 3}
    assert rungs.offered(99) == {1, 2, 3, 4, 5}
    assert rungs.coordinator_level == 4


def test_a_team_with_nobody_qualified_on_duty_is_skipped() -> None:
    readers = {1: reader(1, sites=(2,)), 2: reader(2), 3: reader(3)}
    running = [shift(1, LOCAL), shift(2, GROUP, backup=True), shift(3, PROVIDER)]
    rungs = ladder(site_id=SITE, subspecialty="", cascade=CASCADE, running=running,
                   readers=readers)
    # Local's only radiologist is not credentialed here; GHT has only a back-up on duty.
    assert [(s.label, sorted(s.radiologist_ids)) for s in rungs.steps] == [
        ("back-ups of team GHT", [2]), ("team Provider", [3])]


def test_nobody_on_duty_means_straight_to_the_coordinator() -> None:
    rungs = ladder(site_id=SITE, subspecialty="", cascade=CASCADE, running=[], readers={})
    assert rungs.steps == ()
    assert rungs.coordinator_level == 0
    assert rungs.offered(0) == frozenset()


def test_subspecialty_and_credentials() -> None:
    assert qualifies(reader(1), site_id=SITE, subspecialty="") is None
    assert qualifies(reader(1), site_id=2, subspecialty="") == "not credentialed for this site"
    assert qualifies(reader(1), site_id=SITE, subspecialty="neuro") == (
        "lacks the neuro subspecialty the protocol needs")
    assert qualifies(reader(1, subs=("neuro",)), site_id=SITE, subspecialty="neuro") is None


def test_explain_gives_every_radiologist_a_reason() -> None:
    readers = {1: reader(1, subs=("neuro",)), 2: reader(2), 3: reader(3, sites=(9,)),
               4: reader(4, subs=("neuro",)), 5: reader(5, subs=("neuro",)),
               6: reader(6, subs=("neuro",))}
    running = [shift(1, LOCAL), shift(2, LOCAL), shift(3, LOCAL), shift(5, GROUP),
               shift(6, TeamRef(id=99, name="Elsewhere"))]
    _rungs, verdicts = explain(site_id=SITE, subspecialty="neuro", cascade=CASCADE,
                               covered=True, running=running, readers=readers, level=0)
    assert [(v.radiologist_id, v.eligible, v.reason) for v in verdicts] == [
        (1, True, "primaries of team Local (step 0)"),
        (2, False, "lacks the neuro subspecialty the protocol needs"),
        (3, False, "not credentialed for this site"),
        (4, False, "not on duty now"),
        (5, False, "team GHT: offered from escalation 1"),
        (6, False, "on duty for a team outside this contract's cascade"),
    ]
    _rungs, verdicts = explain(site_id=SITE, subspecialty="neuro", cascade=CASCADE,
                               covered=False, running=running, readers=readers, level=9)
    assert not any(v.eligible for v in verdicts)
    assert {v.reason for v in verdicts} == {
        "the contract does not cover this modality at this time"}


teams = st.sampled_from(CASCADE)


@given(st.lists(st.tuples(st.integers(1, 12), teams, st.booleans(), st.booleans(),
                          st.booleans()), max_size=20),
       st.sampled_from(["", "neuro"]), st.integers(0, 6))
def test_ladder_properties(rows: list[tuple[int, TeamRef, bool, bool, bool]],
                           subspecialty: str, level: int) -> None:
    readers = {rid: reader(rid, sites=(SITE,) if credentialed else (2,),
                           subs=("neuro",) if neuro else ())
               for rid, _t, _b, credentialed, neuro in rows}
    running = [shift(rid, team, backup=backup) for rid, team, backup, _c, _n in rows]
    rungs, verdicts = explain(site_id=SITE, subspecialty=subspecialty, cascade=CASCADE,
                              covered=True, running=running, readers=readers, level=level)
    offered = rungs.offered(level)
    # Exactly the eligible verdicts are offered, and only qualified radiologists on duty.
    assert {v.radiologist_id for v in verdicts if v.eligible} == offered
    on_duty = {s.radiologist_id for s in running}
    for rid in offered:
        assert rid in on_duty
        assert qualifies(readers[rid], site_id=SITE, subspecialty=subspecialty) is None
    # Each level adds someone; no radiologist is on two rungs; offers only grow.
    seen: set[int] = set()
    for step in rungs.steps:
        assert step.radiologist_ids
        assert not step.radiologist_ids & seen
        seen |= step.radiologist_ids
    assert rungs.offered(level) <= rungs.offered(level + 1)
    # Every qualified radiologist on duty in the cascade is on the ladder.
    qualified = {rid for rid in on_duty
                 if qualifies(readers[rid], site_id=SITE, subspecialty=subspecialty) is None}
    assert seen == qualified
