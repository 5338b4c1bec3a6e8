"""Part-10 codec: the meta group we write, and the completeness walk that refuses truncation."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from telerad.dicom.header import read_instance_bytes
from telerad.dicom.part10 import check_complete, dataset_offset, file_meta, walk
from telerad.dicom.synthetic import SyntheticStudy, instance
from telerad.errors import InvalidDicom

FILES = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm",
         "SC_rgb_rle.dcm", "image_dfl.dcm", "JPEG-LL.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm"]


def _file(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(path).read_bytes()


def _ts(data: bytes) -> str:
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(ds.file_meta.TransferSyntaxUID)


def test_file_meta_is_read_back_by_pydicom() -> None:
    meta = file_meta(sop_class_uid="1.2.840.10008.5.1.4.1.1.2", sop_instance_uid="1.2.3.4.5",
                     transfer_syntax_uid="1.2.840.10008.1.2.4.50", source_ae_title="CT01")
    element = b"\x08\x00\x16\x00UI\x1a\x001.2.840.10008.5.1.4.1.1.2\x00"
    ds = pydicom.dcmread(io.BytesIO(meta + element))
    assert ds.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4.5"
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert ds.file_meta.SourceApplicationEntityTitle == "CT01"
    assert ds.file_meta.ImplementationVersionName == "TELERAD_010"
    assert dataset_offset(meta) == len(meta)


@pytest.mark.parametrize("name", FILES)
def test_whole_files_pass_and_every_top_level_element_is_found(name: str) -> None:
    data = _file(name)
    walked = walk(data, dataset_offset(data), _ts(data))
    tags = {e.tag for e in walked.elements}
    ds = pydicom.dcmread(io.BytesIO(data))
    assert {int(t) for t in ds.keys()} <= tags  # noqa: SIM118


@pytest.mark.parametrize("name", [f for f in FILES if f != "image_dfl.dcm"])
def test_any_cut_is_refused(name: str) -> None:
    data = _file(name)
    offset, ts = dataset_offset(data), _ts(data)
    cuts = sorted({len(data) - 1, len(data) - 2, len(data) - 7, offset + 3,
                   (offset + len(data)) // 2})
    for cut in cuts:
        with pytest.raises(InvalidDicom):
            check_complete(data[:cut], offset, ts)


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=1, max_value=32 * 32 * 2 + 200))
def test_truncated_synthetic_slice_is_refused_wherever_cut(cut: int) -> None:
    # A cut at an element boundary leaves a well-formed, shorter data set: the walk cannot
    # see it, the image checks of read_instance (no or short pixel data) do — for any cut
    # after Rows (0028,0010), that is the pixel data and the elements before it.
    ds = instance(SyntheticStudy(slices=1, rows=32, columns=32), 0)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    read_instance_bytes(data)
    with pytest.raises(InvalidDicom):
        read_instance_bytes(data[: len(data) - cut])


def test_deflated_dataset_cut_short_is_refused() -> None:
    data = _file("image_dfl.dcm")
    offset = dataset_offset(data)
    deflated = data[offset:]
    assert zlib.decompressobj(-zlib.MAX_WBITS).decompress(deflated)
    with pytest.raises(InvalidDicom):
        check_complete(data[: offset + len(deflated) // 2], offset, _ts(data))


def test_not_dicom_is_refused() -> None:
    with pytest.raises(InvalidDicom, match="DICM"):
        dataset_offset(b"hello world" * 20)
    with pytest.raises(InvalidDicom):
        dataset_offset(b"\x00" * 128 + b"DICM" + b"\x02\x00")
