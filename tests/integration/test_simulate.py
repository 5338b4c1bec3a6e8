"""``telerad simulate``: a small night through the real workflow, in a child process; its
figures add up, agree with the database, and come out the same for the same seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from telerad.config import Settings
from telerad.db import transaction
from telerad.runtime import Runtime
from telerad.testing.peers import telerad_command
from telerad.workflow.exams.models import Exam, ExamEvent

ARGS = ("simulate", "--nights", "1", "--sites", "2", "--seed", "1",
        "--exams-per-night", "30-40")


def _run(tmp_path: Path, name: str) -> tuple[str, dict[str, Any], Path]:
    data_dir, figures = tmp_path / name, tmp_path / f"{name}.json"
    done = telerad_command(*ARGS, "--json", str(figures), data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    return done.stdout, json.loads(figures.read_text(encoding="utf-8")), data_dir


def _without_wall_clock(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if not line.startswith("wall-clock:")]


def test_a_simulated_night_adds_up_and_is_reproducible(tmp_path: Path) -> None:
    stdout, fig, data_dir = _run(tmp_path, "first")

    exams = fig["exams"]
    assert 30 <= exams["total"] <= 40
    assert exams["total"] == exams["reported"] + exams["refused"] + exams["pending"]
    assert sum(exams["states"].values()) == exams["total"]
    assert exams["reported"] > 0
    (night,) = fig["volumes"]
    assert sum(night["sites"].values()) == night["total"] == exams["total"]
    assert night["reported"] + night["refused"] + night["pending"] == night["total"]
    assert (f"exams: {exams['total']} = {exams['reported']} reported + {exams['refused']} "
            f"refused + {exams['pending']} pending") in stdout

    for spread in fig["turnaround_minutes"]:
        values = [spread[k] for k in ("p50", "p90", "p95", "max")]
        if spread["count"] == 0:
            assert values == [None] * 4
        else:
            assert 0 <= values[0] <= values[1] <= values[2] <= values[3], spread
    reported_all = next(s for s in fig["turnaround_minutes"]
                        if s["clock"] == "ready -> reported" and s["urgency"] == "all")
    assert reported_all["count"] == exams["reported"]
    by_urgency = [s["count"] for s in fig["turnaround_minutes"]
                  if s["clock"] == "ready -> reported" and s["urgency"] != "all"]
    assert sum(by_urgency) == exams["reported"]

    escalations = fig["escalations"]
    assert escalations["total"] >= 0
    assert sum(escalations["by_target"].values()) == escalations["total"]
    assert set(escalations["by_target"]) <= {"back-ups of team Provider", "team Region",
                                             "coordinator"}
    assert f"escalations: {escalations['total']} " in stdout
    assert sum(r["read"] for r in fig["radiologists"]) == exams["reported"]
    assert all(0 <= r["busy_share"] <= 1 for r in fig["radiologists"])
    assert fig["failed_jobs"] == 0

    # The figures are the database's.
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        with transaction(runtime.sessions, readonly=True) as session:
            in_db = session.scalar(select(func.count()).select_from(ExamEvent)
                                   .where(ExamEvent.kind == "escalated"))
            ready = session.scalar(select(func.count()).select_from(Exam)
                                   .where(Exam.due_at.is_not(None)))
            decided = session.scalar(select(func.count()).select_from(Exam)
                                     .where(Exam.decided_at.is_not(None)))
            final = session.scalar(select(func.count()).select_from(Exam)
                                   .where(Exam.reported_at.is_not(None)))
    finally:
        runtime.close()
    assert escalations["total"] == in_db
    assert final == exams["reported"]
    (everyone,) = (d for d in fig["deadlines"] if d["urgency"] == "all")
    assert everyone["met"] + everyone["late"] + everyone["not_yet_due"] == ready
    assert sum(r["justified"] for r in fig["radiologists"]) == decided

    # Same seed, same night, same figures (only the wall-clock time differs).
    again_stdout, again, _ = _run(tmp_path, "second")
    assert _without_wall_clock(again_stdout) == _without_wall_clock(stdout)
    fig.pop("wall_clock_seconds")
    again.pop("wall_clock_seconds")
    assert again == fig


def test_bad_options_change_nothing(tmp_path: Path) -> None:
    done = telerad_command("simulate", "--nights", "1", "--sites", "2", "--exams-per-night",
                           "40-30", data_dir=tmp_path / "bad", check=False)
    assert done.returncode == 2
    assert "MIN-MAX" in done.stderr
    assert not (tmp_path / "bad").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("keep me", encoding="utf-8")
    done = telerad_command("simulate", "--nights", "1", "--sites", "2", data_dir=busy,
                           check=False)
    assert done.returncode == 2
    assert "not empty" in done.stderr
    assert [p.name for p in busy.iterdir()] == ["something"]
