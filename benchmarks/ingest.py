"""Ingest benchmark: the same synthetic CT sent with dcmtk storescu, over one association,
to telerad, to dcmtk storescp (the native floor) and to Orthanc (Debian defaults, SQLite).

    .venv/bin/python benchmarks/ingest.py [--slices 300 1500] [--database-url URL]

Prints seconds, images/s, MB/s and the ratios telerad/Orthanc and telerad/storescp.
Targets (issue 2): ratio to Orthanc >= 1.0 and >= 125 MB/s on the 300-slice study.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from common import cache_root, row, synthetic_ct, timed

from telerad.testing.peers import Orthanc, TeleradServer, storescp, storescu, telerad_command

SENDER = "BENCH_SCU"
PDU = ["-pdu", "131072"]  # dcmtk's largest; telerad and Orthanc accept it


def send(files_folder: Path, port: int, called: str) -> None:
    result = storescu([files_folder], port=port, calling=SENDER, called=called, extra=PDU)
    if result.returncode != 0:
        raise SystemExit(f"storescu to {called} failed:\n{result.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, nargs="+", default=[300, 1500])
    parser.add_argument("--database-url", default="", help="telerad index (default SQLite)")
    parser.add_argument("--skip-orthanc", action="store_true")
    args = parser.parse_args()
    root = cache_root()
    print(f"{'target':<34} {'time':>9} {'rate':>14} {'throughput':>13}")
    for slices in args.slices:
        data = synthetic_ct(root, slices)
        images, size = len(data.files), data.bytes
        print(f"-- {slices}-slice CT 512x512, {size / 1e6:.0f} MB, one association, PDU 128 KiB")
        with tempfile.TemporaryDirectory(prefix="telerad-bench-") as tmp:
            work = Path(tmp)
            with storescp(work / "storescp") as port:
                floor = timed(lambda port=port: send(data.folder, port, "STORESCP"))
            print(row("dcmtk storescp (native floor)", floor, images, size))

            orthanc_time = None
            if not args.skip_orthanc and Orthanc.available():
                with Orthanc(work / "orthanc") as orthanc:
                    orthanc_time = timed(lambda: send(data.folder, orthanc.dicom_port, "ORTHANC"))
                print(row("Orthanc 1.10 (SQLite, defaults)", orthanc_time, images, size))

            env = {"TELERAD_DATABASE_URL": args.database_url} if args.database_url else {}
            data_dir = work / "telerad"
            telerad_command("site", "add", "Bench Hospital", "--ae-title", SENDER,
                            data_dir=data_dir, env=env)
            with TeleradServer(data_dir=data_dir, env=env) as server:
                telerad_time = timed(lambda: send(data.folder, server.dicom_port, "TELERAD"))
            print(row("telerad", telerad_time, images, size))
            if orthanc_time:
                print(f"{'ratio telerad/Orthanc (speed)':<34} {orthanc_time / telerad_time:7.2f}")
            print(f"{'ratio telerad/storescp (speed)':<34} {floor / telerad_time:7.2f}")
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
