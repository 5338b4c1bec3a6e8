"""Shared pieces of the benchmarks: synthetic studies on disk, timing, and printing."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from telerad.dicom.synthetic import SyntheticStudy, write_study


@dataclass(frozen=True)
class Dataset:
    """A synthetic CT on disk."""

    folder: Path
    files: list[Path]
    study: SyntheticStudy

    @property
    def bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def synthetic_ct(root: Path, slices: int, *, seed: int = 1) -> Dataset:
    """A 512x512 CT of ``slices`` slices, written once and reused between runs."""
    folder = root / f"ct{slices}"
    study = SyntheticStudy(slices=slices, seed=seed,
                           study_instance_uid=f"1.2.826.0.1.3680043.8.498.77.1.{slices}",
                           series_instance_uid=f"1.2.826.0.1.3680043.8.498.77.2.{slices}",
                           accession_number=f"BENCH{slices}")
    marker = root / f"ct{slices}.complete"
    if not marker.exists():
        files = write_study(study, folder)
        marker.touch()
    else:
        files = sorted(folder.glob("CT*.dcm"))
    return Dataset(folder=folder, files=files, study=study)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def best_of(n: int, fn: Callable[[], object]) -> float:
    return min(timed(fn) for _ in range(n))


def cache_root() -> Path:
    root = Path(os.environ.get("TELERAD_BENCH_DIR", Path.cwd() / "benchmarks" / "results"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def row(label: str, seconds: float, images: int, size: int) -> str:
    return (f"{label:<34} {seconds:7.3f} s {images / seconds:8.0f} img/s "
            f"{size / seconds / 1e6:8.1f} MB/s")
