"""``telerad import`` as an operator runs it: a folder of good, duplicate and broken files."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from pydicom.filereader import read_file_meta_info

from telerad.config import Settings
from telerad.dicom.synthetic import SyntheticStudy, write_study
from telerad.testing import samples
from telerad.testing.archive import file_dataset, open_archive
from telerad.testing.peers import TeleradServer, telerad_command
from tests.conftest import SITE, seed

#: Rich wraps at the terminal width; a wide one keeps each rejected path on one line.
WIDE = {"COLUMNS": "1000"}


#: What the reason given for each rejected file must say.
WHY = {
    "notes.txt": "not a DICOM Part-10 file",
    "truncated.dcm": "truncated",
    "rtplan_truncated.dcm": "truncated",
    "MR_truncated.dcm": "truncated",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "truncated",
    "meta_missing_tsyntax.dcm": "TransferSyntaxUID",
    "no_meta.dcm": "not a DICOM Part-10 file",
    "ExplVR_LitEndNoMeta.dcm": "not a DICOM Part-10 file",
}


def _server(settings: Settings) -> TeleradServer:
    """Not started: only its data directory and database, for ``command`` and inspection."""
    return TeleradServer(data_dir=settings.data_dir,
                         env={"TELERAD_DATABASE_URL": settings.database_url, **WIDE})


def _count(output: str, label: str) -> int:
    match = re.search(rf"(?m)^\W*{label}\W+(\d+)\W*$", output)
    assert match, f"no {label!r} row in the summary:\n{output}"
    return int(match.group(1))


def test_import_stores_the_good_and_rejects_the_bad(settings: Settings, tmp_path: Path) -> None:
    seed(settings)
    server = _server(settings)
    folder = tmp_path / "incoming"
    good = write_study(SyntheticStudy(slices=3, rows=64, columns=64), folder / "ct")
    duplicate = shutil.copy(good[0], folder / "copy_of_first.dcm")
    not_dicom = folder / "notes.txt"
    not_dicom.write_text("not a DICOM file\n" * 20)
    truncated = folder / "truncated.dcm"
    truncated.write_bytes(good[1].read_bytes()[: good[1].stat().st_size // 2])
    (folder / "pydicom").mkdir()
    broken = [Path(shutil.copy(samples.data_file(name), folder / "pydicom" / name))
              for name in samples.BROKEN_FILES]  # pydicom's deliberately broken files
    bad = [not_dicom, truncated, *broken]

    result = telerad_command("import", str(folder), "--site", SITE,
                             data_dir=settings.data_dir, env=server.env, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert _count(output, "stored") == 3
    assert _count(output, "already stored") == 1
    assert _count(output, "rejected") == len(bad)
    rejected = dict(re.findall(r"(?m)^\s*rejected (\S+): (.+)$", output))
    assert set(rejected) == {str(path) for path in bad}
    for path in bad:  # each with its reason: the error code, then what is wrong
        code, _, why = rejected[str(path)].partition(": ")
        assert code == "invalid_dicom", rejected[str(path)]
        assert WHY[path.name] in why, rejected[str(path)]
    assert str(duplicate) not in rejected

    with open_archive(server) as archive:
        stored = archive.instances()
        expected = {str(read_file_meta_info(p).MediaStorageSOPInstanceUID): p for p in good}
        assert set(stored) == set(expected)
        for uid, path in expected.items():
            assert stored[uid].origin == "import"
            assert archive.dataset(stored[uid].blob_key) == file_dataset(path)
        assert archive.blob_keys() == {i.blob_key for i in stored.values()}
        assert archive.staged_files() == []
        assert archive.conflicts() == []


def test_import_into_an_unknown_site_is_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    seed(settings)
    server = _server(settings)
    good = write_study(SyntheticStudy(slices=1, rows=32, columns=32), tmp_path / "ct")
    result = telerad_command("import", str(good[0]), "--site", "Nowhere General",
                             data_dir=settings.data_dir, env=server.env, check=False)
    assert result.returncode == 2
    assert "no site named 'Nowhere General'" in result.stderr
    assert "Traceback" not in result.stderr
    with open_archive(server) as archive:
        assert archive.instances() == {}
        assert archive.blob_keys() == set()
