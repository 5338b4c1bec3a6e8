"""Real DICOM files for integration tests: pydicom's and pydicom-data's test files.

Files are judged without telerad's own reader, so that a test using them can catch telerad
refusing a good file: pydicom reads the whole file strictly enough (File Meta Information
with a Transfer Syntax UID, the four UIDs every instance has, PS3.10 §7.1 and PS3.3 C.12.1),
and dcmtk's ``dcmdump`` parses it without error when dcmtk is installed.

No file here is downloaded: pydicom's own test files and those of the installed pydicom-data
package are read where they are.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydicom import dcmread
from pydicom.data.data_manager import DATA_ROOT, external_data_sources
from pydicom.uid import UID

#: The transfer syntaxes (PS3.5 Annex A, PS3.6 Annex A) an archive must store as received.
REQUIRED_TRANSFER_SYNTAXES: dict[str, str] = {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2.2": "Explicit VR Big Endian (retired)",
    "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline (Process 1)",
    "1.2.840.10008.1.2.4.51": "JPEG Extended (Process 2 & 4)",
    "1.2.840.10008.1.2.4.57": "JPEG Lossless, Non-Hierarchical (Process 14)",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless, Process 14, Selection Value 1",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Near-Lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 (Lossless Only)",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.5": "RLE Lossless",
}

#: pydicom's deliberately broken test files, and why each one is not a whole instance.
BROKEN_FILES: dict[str, str] = {
    "rtplan_truncated.dcm": "cut short inside a sequence",
    "MR_truncated.dcm": "cut short inside the pixel data",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "encapsulated pixel data never closed",
    "meta_missing_tsyntax.dcm": "File Meta Information without a Transfer Syntax UID",
    "no_meta.dcm": "no preamble and no File Meta Information",
    "ExplVR_LitEndNoMeta.dcm": "no preamble and no File Meta Information",
}

#: Syntaxes of which neither pydicom nor pydicom-data ships a whole, valid instance, and the
#: dcmtk command that makes one from a real file of them: (source file, command).
#: JPEG Process 14 (.57) has no test file at all; pydicom's JPEG-LS near-lossless (.81) files
#: have no Study or Series Instance UID, so no archive can index them.
DCMTK_MADE: dict[str, tuple[str, tuple[str, ...]]] = {
    "1.2.840.10008.1.2.4.57": ("CT_small.dcm", ("dcmcjpeg", "+el", "+ua")),
    "1.2.840.10008.1.2.4.81": ("emri_small.dcm", ("dcmcjpls", "+en", "+ua")),
}


#: SOP Class, SOP Instance, Study Instance and Series Instance UID, in this order.
_UID_TAGS = (0x00080016, 0x00080018, 0x0020000D, 0x0020000E)


@dataclass(frozen=True, kw_only=True)
class SampleFile:
    """One Part-10 file of an instance, with what a test needs to know about it."""

    path: Path
    transfer_syntax_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    #: Where it comes from: "pydicom", "pydicom-data", or the dcmtk command that made it.
    origin: str

    @property
    def name(self) -> str:
        return self.path.name


def pydicom_test_files() -> list[tuple[Path, str]]:
    """Every DICOM test file of pydicom and of the installed pydicom-data: (path, origin)."""
    files = [(p, "pydicom") for p in sorted((Path(DATA_ROOT) / "test_files").rglob("*"))
             if p.is_file()]
    for name, source in external_data_sources().items():
        files.extend((Path(p), name) for p in sorted(source.get_paths("**/*", 0)))
    return files


def data_file(name: str) -> Path:
    """The test file called ``name`` (pydicom's or pydicom-data's), never downloaded."""
    for path, _origin in pydicom_test_files():
        if path.name == name:
            return path
    raise FileNotFoundError(f"no pydicom test file named {name!r}")


def _dcmtk_parses(path: Path) -> bool:
    dcmdump = shutil.which("dcmdump")
    if dcmdump is None:
        return True
    result = subprocess.run([dcmdump, "-q", "+E", str(path)], capture_output=True, timeout=60,
                            check=False)
    return result.returncode == 0 and not result.stderr.strip()


def describe(path: Path, origin: str) -> SampleFile | None:
    """The file as a :class:`SampleFile` if it is a whole, valid instance; else None."""
    if path.name in BROKEN_FILES:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path)
            meta = ds.file_meta
            ts = str(meta.TransferSyntaxUID)
            # UIDs written with VR UN (PS3.5 §6.2.2) are left out: dcmtk's storescu does
            # not find them either, and no archive must guess them.
            if any(getattr(ds.get_item(tag), "VR", "UN") == "UN" for tag in _UID_TAGS):
                return None
            uids = [str(ds[tag].value) for tag in _UID_TAGS]
            media_uid = str(meta.get("MediaStorageSOPInstanceUID", ""))
    except Exception:  # not DICOM, not Part-10, or missing one of the UIDs
        return None
    if not all(UID(u).is_valid for u in uids) or media_uid != uids[1]:
        return None
    if not _dcmtk_parses(path):
        return None
    return SampleFile(path=path, transfer_syntax_uid=ts, sop_class_uid=uids[0],
                      sop_instance_uid=uids[1], origin=origin)


@cache
def valid_instances() -> tuple[SampleFile, ...]:
    """Every whole, valid instance among the test files."""
    found = (describe(path, origin) for path, origin in pydicom_test_files())
    return tuple(f for f in found if f is not None)


def make_with_dcmtk(transfer_syntax_uid: str, folder: Path) -> SampleFile:
    """An instance of ``transfer_syntax_uid`` made by dcmtk from a real test file."""
    source, command = DCMTK_MADE[transfer_syntax_uid]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"dcmtk_{transfer_syntax_uid}.dcm"
    subprocess.run([*command, str(data_file(source)), str(target)], check=True,
                   capture_output=True, timeout=120)
    made = describe(target, f"{' '.join(command)} {source}")
    if made is None or made.transfer_syntax_uid != transfer_syntax_uid:
        raise RuntimeError(f"{command[0]} did not make a valid {transfer_syntax_uid} file")
    return made


def distinct_instances(
    candidates: Iterable[SampleFile], syntaxes: Sequence[str], *, taken: Iterable[str] = ()
) -> dict[str, SampleFile]:
    """One file per syntax, no two with the same SOP Instance UID (pydicom's test files
    share a few UIDs across encodings of one image); syntaxes without a file are left out.

    A small matching by backtracking: the syntaxes with the fewest candidates go first.
    """
    by_syntax: dict[str, list[SampleFile]] = {ts: [] for ts in syntaxes}
    for sample in candidates:
        if sample.transfer_syntax_uid in by_syntax:
            by_syntax[sample.transfer_syntax_uid].append(sample)
    order = sorted((ts for ts in syntaxes if by_syntax[ts]), key=lambda ts: len(by_syntax[ts]))
    chosen: dict[str, SampleFile] = {}
    used = set(taken)

    def place(i: int) -> bool:
        if i == len(order):
            return True
        for sample in by_syntax[order[i]]:
            if sample.sop_instance_uid not in used:
                used.add(sample.sop_instance_uid)
                chosen[order[i]] = sample
                if place(i + 1):
                    return True
                used.discard(sample.sop_instance_uid)
                del chosen[order[i]]
        return False

    if not place(0):
        raise RuntimeError("no choice of test files gives each syntax its own SOP Instance UID")
    return chosen


def storescu_profile(samples: Iterable[SampleFile], path: Path, *, profile: str = "ASRECEIVED"
                     ) -> tuple[Path, str]:
    """A dcmtk association profile (``storescu -xf PATH PROFILE``) proposing each file's own
    SOP Class with exactly its own transfer syntax, one presentation context per pair, so
    that storescu sends every file as it is instead of converting it (PS3.8 §7.1.1.13)."""
    pairs = sorted({(s.sop_class_uid, s.transfer_syntax_uid) for s in samples})
    if len(pairs) > 128:  # presentation context ids are odd numbers 1..255 (PS3.8 §9.3.2.2)
        raise ValueError("more than 128 presentation contexts")
    return _write_profile(path, profile, [(cls, [ts]) for cls, ts in pairs])


def storescp_profile(samples: Iterable[SampleFile], path: Path, *, profile: str = "ASRECEIVED"
                     ) -> tuple[Path, str]:
    """The acceptor's side of :func:`storescu_profile` (``storescp -xf PATH PROFILE``): each
    SOP Class once, with every transfer syntax its files use."""
    by_class: dict[str, set[str]] = {}
    for sample in samples:
        by_class.setdefault(sample.sop_class_uid, set()).add(sample.transfer_syntax_uid)
    contexts = [(cls, sorted(syntaxes)) for cls, syntaxes in sorted(by_class.items())]
    return _write_profile(path, profile, contexts)


def _write_profile(path: Path, profile: str, contexts: list[tuple[str, list[str]]]
                   ) -> tuple[Path, str]:
    groups = sorted({tuple(syntaxes) for _cls, syntaxes in contexts})
    names = {group: f"TS{i}" for i, group in enumerate(groups)}
    lines = ["[[TransferSyntaxes]]"]
    for group in groups:
        lines.append(f"[{names[group]}]")
        lines += [f"TransferSyntax{i} = {ts}" for i, ts in enumerate(group, start=1)]
    lines += ["[[PresentationContexts]]", "[CONTEXTS]"]
    lines += [f"PresentationContext{i} = {cls}\\{names[tuple(syntaxes)]}"
              for i, (cls, syntaxes) in enumerate(contexts, start=1)]
    lines += ["[[Profiles]]", f"[{profile}]", "PresentationContexts = CONTEXTS"]
    path.write_text("\n".join(lines) + "\n")
    return path, profile
