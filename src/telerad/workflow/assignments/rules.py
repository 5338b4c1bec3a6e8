"""Who may read an exam now: the offer ladder and its explanation (pure).

An exam is offered step by step down its contract's cascade. Among the radiologists on duty
now who may read it — credentialed for its site, with the subspecialty its protocol needs —

* step 0: the primaries of the first team of the cascade that has any of them on duty (its
  back-ups if it has no primary on duty);
* step 1: that team's back-ups;
* then each following team of the cascade that has any of them on duty, as a whole;
* last: the coordinator.

An exam at escalation level ``n`` is offered to steps 0..n. Teams with nobody qualified on
duty are skipped, so every escalation reaches someone new (or the coordinator).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from telerad.workflow.roster.rules import Shift


@dataclass(frozen=True, kw_only=True)
class Reader:
    """What routing needs to know of a radiologist."""

    radiologist_id: int
    name: str
    site_ids: frozenset[int]
    subspecialties: frozenset[str]


@dataclass(frozen=True, kw_only=True)
class TeamRef:
    id: int
    name: str


@dataclass(frozen=True, kw_only=True)
class Step:
    """One rung of the ladder: whom it adds, and why."""

    label: str
    radiologist_ids: frozenset[int]


@dataclass(frozen=True, kw_only=True)
class Ladder:
    """The steps an exam is offered in, ending with the coordinator."""

    steps: tuple[Step, ...]

    @property
    def coordinator_level(self) -> int:
        """The escalation level at which the coordinator is called."""
        return len(self.steps)

    def offered(self, level: int) -> frozenset[int]:
        """Radiologists the exam is offered to at escalation ``level``."""
        return frozenset().union(*(s.radiologist_ids for s in self.steps[: level + 1]))

    def level_of(self, radiologist_id: int) -> int | None:
        for level, step in enumerate(self.steps):
            if radiologist_id in step.radiologist_ids:
                return level
        return None


def qualifies(reader: Reader, *, site_id: int, subspecialty: str) -> str | None:
    """Why ``reader`` may not read for the site, or None if they may."""
    if site_id not in reader.site_ids:
        return "not credentialed for this site"
    if subspecialty and subspecialty not in reader.subspecialties:
        return f"lacks the {subspecialty} subspecialty the protocol needs"
    return None


def ladder(
    *, site_id: int, subspecialty: str, cascade: Sequence[TeamRef], running: Iterable[Shift],
    readers: Mapping[int, Reader],
) -> Ladder:
    """The offer ladder of an exam given the shifts running now (``Shift.team`` holds the
    team id as text)."""
    by_team: dict[str, list[Shift]] = {}
    for shift in running:
        by_team.setdefault(shift.team, []).append(shift)
    steps: list[Step] = []
    placed: set[int] = set()  # on duty for two teams: on the first team's rung only
    for team in cascade:
        on_duty = [s for s in by_team.get(str(team.id), ()) if s.radiologist_id in readers
                   and s.radiologist_id not in placed
                   and qualifies(readers[s.radiologist_id], site_id=site_id,
                                 subspecialty=subspecialty) is None]
        primaries = frozenset(s.radiologist_id for s in on_duty if not s.backup)
        backups = frozenset(s.radiologist_id for s in on_duty if s.backup) - primaries
        placed |= primaries | backups
        if not primaries and not backups:
            continue
        if steps:
            steps.append(Step(label=f"team {team.name}", radiologist_ids=primaries | backups))
        elif primaries:
            steps.append(Step(label=f"primaries of team {team.name}", radiologist_ids=primaries))
            if backups:
                steps.append(Step(label=f"back-ups of team {team.name}", radiologist_ids=backups))
        else:
            steps.append(Step(label=f"back-ups of team {team.name}", radiologist_ids=backups))
    return Ladder(steps=tuple(steps))


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """Whether one radiologist is offered the exam now, and why (not)."""

    radiologist_id: int
    name: str
    eligible: bool
    reason: str


def explain(
    *, site_id: int, subspecialty: str, cascade: Sequence[TeamRef], covered: bool,
    running: Iterable[Shift], readers: Mapping[int, Reader], level: int,
) -> tuple[Ladder, list[Verdict]]:
    """The ladder and a verdict for every radiologist in ``readers``, eligible ones first."""
    running = list(running)
    rungs = ladder(site_id=site_id, subspecialty=subspecialty, cascade=cascade,
                   running=running, readers=readers)
    names = {str(t.id): t.name for t in cascade}
    by_radiologist: dict[int, list[Shift]] = {}
    for shift in running:
        by_radiologist.setdefault(shift.radiologist_id, []).append(shift)
    verdicts = []
    for reader in readers.values():
        shifts = by_radiologist.get(reader.radiologist_id, [])
        step = rungs.level_of(reader.radiologist_id)
        reason: str
        eligible = False
        if not covered:
            reason = "the contract does not cover this modality at this time"
        elif (why := qualifies(reader, site_id=site_id, subspecialty=subspecialty)) is not None:
            reason = why
        elif not shifts:
            reason = "not on duty now"
        elif not any(s.team in names for s in shifts):
            reason = "on duty for a team outside this contract's cascade"
        elif step is None:  # pragma: no cover - a qualified reader on duty is on a rung
            reason = "not on the ladder"
        elif step > level:
            reason = f"{rungs.steps[step].label}: offered from escalation {step}"
        else:
            eligible, reason = True, f"{rungs.steps[step].label} (step {step})"
        verdicts.append(Verdict(radiologist_id=reader.radiologist_id, name=reader.name,
                                eligible=eligible, reason=reason))
    verdicts.sort(key=lambda v: (not v.eligible, v.name))
    return rungs, verdicts
