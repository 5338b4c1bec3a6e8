"""Archive benchmark (issue 2), in one run on this machine:

1. ingest: the same synthetic 512x512 CT (300 and 1,500 slices) sent with dcmtk storescu over
   one association to telerad, to dcmtk storescp (the native floor) and to Orthanc (Debian
   defaults, SQLite): seconds, images/s, MB/s, ratios;
2. DICOMweb on the 1,500-slice study, telerad against Orthanc's DICOMweb plugin: WADO-RS
   study metadata and full-study retrieval (multipart, read to the end);
3. QIDO-RS ``studies?limit=100`` with 10,000 studies indexed in telerad.

    .venv/bin/python benchmarks/archive.py [--slices 300 1500] [--studies 10000]
        [--database-url postgresql+psycopg://...]

Targets: ingest ratio to Orthanc >= 1.0 and >= 125 MB/s on the 300-slice study; metadata of
the 1,500-slice study >= 3x faster than Orthanc; QIDO-RS limit=100 under 50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from common import Dataset, best_of, cache_root, row, synthetic_ct, timed
from telerad.archive.models import Origin
from telerad.config import Settings
from telerad.dicom.synthetic import SyntheticStudy, instance
from telerad.runtime import Runtime
from telerad.testing.peers import (
    Orthanc,
    TeleradServer,
    storescp,
    storescu,
    telerad_command,
)
from telerad.workflow.exams import intake

SENDER = "BENCH_SCU"
PDU = ["-pdu", "131072"]  # dcmtk's largest; telerad and Orthanc accept it


def send(data: Dataset, port: int, called: str) -> None:
    result = storescu([data.folder], port=port, calling=SENDER, called=called, extra=PDU)
    if result.returncode != 0:
        raise SystemExit(f"storescu to {called} failed:\n{result.stderr[-2000:]}")


@contextlib.contextmanager
def telerad(work: Path, database_url: str) -> Iterator[tuple[TeleradServer, str]]:
    env = {"TELERAD_DATABASE_URL": database_url} if database_url else {}
    data_dir = work / "telerad"
    telerad_command("site", "add", "Bench Hospital", "--ae-title", SENDER, data_dir=data_dir,
                    env=env)
    token = telerad_command("token", "create", "--name", "bench", data_dir=data_dir,
                            env=env).stdout.strip()
    with TeleradServer(data_dir=data_dir, env=env) as server:
        yield server, token


def get_all(client: httpx.Client, url: str, accept: str) -> int:
    """GET ``url`` and read the body to the end; return its size."""
    size = 0
    with client.stream("GET", url, headers={"Accept": accept}) as response:
        response.raise_for_status()
        for chunk in response.iter_raw(1024 * 1024):
            size += len(chunk)
    return size


def dicomweb(label: str, client: httpx.Client, base: str, study_uid: str) -> tuple[float, float]:
    metadata = f"{base}/studies/{study_uid}/metadata"
    get_all(client, metadata, "application/dicom+json")  # warm-up, and a check it works
    meta_time = best_of(3, lambda: get_all(client, metadata, "application/dicom+json"))
    study = f"{base}/studies/{study_uid}"
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    size = get_all(client, study, accept)
    retrieve_time = best_of(2, lambda: get_all(client, study, accept))
    print(f"{label + ' metadata':<34} {meta_time:7.3f} s")
    rate = size / retrieve_time / 1e6
    print(f"{label + ' whole study':<34} {retrieve_time:7.3f} s {rate:23.1f} MB/s")
    return meta_time, retrieve_time


def ingest(args: argparse.Namespace, data: Dataset, work: Path,
           keep: contextlib.ExitStack) -> tuple[TeleradServer, str, bool]:
    images, size = len(data.files), data.bytes
    print(f"-- {len(data.files)}-slice CT 512x512, {size / 1e6:.0f} MB, one association")
    with storescp(work / "storescp") as port:
        floor = timed(lambda: send(data, port, "STORESCP"))
    print(row("dcmtk storescp (native floor)", floor, images, size))
    orthanc_time = None
    if Orthanc.available() and not args.skip_orthanc:
        # Stopped once it has its copy (restarted on the same folder for DICOMweb), so that
        # its background writes do not share the disk with telerad's measure.
        with Orthanc(work / "orthanc") as orthanc:
            orthanc_time = timed(lambda: send(data, orthanc.dicom_port, "ORTHANC"))
        print(row("Orthanc 1.10 (SQLite, defaults)", orthanc_time, images, size))
    server, token = keep.enter_context(telerad(work, args.database_url))
    telerad_time = timed(lambda: send(data, server.dicom_port, "TELERAD"))
    print(row("telerad", telerad_time, images, size))
    if orthanc_time:
        print(f"{'ingest speed telerad/Orthanc':<34} {orthanc_time / telerad_time:7.2f}x")
    print(f"{'ingest speed telerad/storescp':<34} {floor / telerad_time:7.2f}x")
    return server, token, orthanc_time is not None


def populate(server: TeleradServer, studies: int) -> None:
    """Index ``studies`` small studies through the intake of a second, in-process runtime."""
    runtime = Runtime.open(Settings.from_env(server.data_dir, env=server.env))
    sender = intake.Sender(origin=Origin.IMPORT, site_id=None)
    started = time.perf_counter()
    try:
        for n in range(studies):
            study = SyntheticStudy(slices=1, rows=8, columns=8, patient_id=f"P{n:06d}",
                                   patient_name=f"BENCH^{n:06d}", accession_number=f"A{n:07d}")
            buffer = io.BytesIO()
            instance(study, 0).save_as(buffer, enforce_file_format=True)
            staged = runtime.store.stage()
            staged.write(buffer.getvalue())
            runtime.ingest(staged, sender=sender)
            if n and n % 2000 == 0:
                print(f"   ... {n} studies indexed ({time.perf_counter() - started:.0f} s)")
    finally:
        runtime.close()


def qido(server: TeleradServer, token: str, studies: int) -> None:
    print(f"-- QIDO-RS with {studies} more studies indexed")
    populate(server, studies)
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        url = f"{server.dicomweb_url}/studies?limit=100"
        response = client.get(url, headers={"Accept": "application/dicom+json"})
        response.raise_for_status()
        assert len(response.json()) == 100
        samples = []
        for _ in range(20):
            started = time.perf_counter()
            client.get(url, headers={"Accept": "application/dicom+json"}).raise_for_status()
            samples.append(time.perf_counter() - started)
        filtered = f"{server.dicomweb_url}/studies?PatientName=BENCH^00*&limit=100"
        match_time = best_of(5, lambda: client.get(filtered).raise_for_status())
    print(f"{'QIDO studies?limit=100 (median)':<34} {statistics.median(samples) * 1000:7.1f} ms")
    print(f"{'QIDO PatientName=BENCH^00*':<34} {match_time * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--slices", type=int, nargs="+", default=[300, 1500])
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--database-url", default="", help="telerad index (default SQLite)")
    parser.add_argument("--skip-orthanc", action="store_true")
    args = parser.parse_args()
    root = cache_root()
    print(f"{'':<34} {'time':>9} {'rate':>14} {'throughput':>13}")
    for slices in args.slices:
        data = synthetic_ct(root, slices)
        with tempfile.TemporaryDirectory(prefix="telerad-bench-") as tmp, \
                contextlib.ExitStack() as keep:
            server, token, with_orthanc = ingest(args, data, Path(tmp), keep)
            if slices != max(args.slices):
                continue
            print(f"-- DICOMweb on the {slices}-slice study")
            uid = data.study.study_instance_uid
            with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=600) as c:
                ours = dicomweb("telerad", c, server.dicomweb_url, uid)
            if with_orthanc:
                with Orthanc(Path(tmp) / "orthanc") as orthanc, \
                        httpx.Client(timeout=600) as client:
                    theirs = dicomweb("Orthanc", client, f"{orthanc.base_url}/dicom-web", uid)
                print(f"{'metadata speed telerad/Orthanc':<34} {theirs[0] / ours[0]:7.1f}x")
                print(f"{'retrieve speed telerad/Orthanc':<34} {theirs[1] / ours[1]:7.1f}x")
            if args.studies:
                qido(server, token, args.studies)


if __name__ == "__main__":
    main()
