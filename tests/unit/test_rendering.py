"""Frames and rendering: window math (PS3.3 §C.11.2.1.2), polarity, color, viewport, codecs."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from telerad.dicom.rendering import (
    PixelSource,
    Viewport,
    Window,
    apply_window,
    encode_image,
    fit,
    header_window,
    parse_viewport,
    parse_window,
    to_display,
)
from telerad.errors import InvalidQuery, NotFound


def linear(x: float, c: float, w: float) -> float:
    """PS3.3 §C.11.2.1.2.1, written as the standard does, to 0..255."""
    if x <= c - 0.5 - (w - 1) / 2:
        return 0.0
    if x > c - 0.5 + (w - 1) / 2:
        return 255.0
    return ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0


@given(
    x=st.floats(min_value=-5000, max_value=5000),
    c=st.floats(min_value=-2000, max_value=2000),
    w=st.floats(min_value=2, max_value=5000),
)
def test_linear_window_matches_the_standard(x: float, c: float, w: float) -> None:
    out = apply_window(np.array([x]), Window(center=c, width=w))
    assert abs(int(out[0]) - linear(x, c, w)) <= 0.5 + 1e-6


def test_window_examples() -> None:
    brain = Window(center=40, width=80)
    out = apply_window(np.array([-1000, 0, 40, 79, 80, 3000]), brain)
    # 0 is the window's bottom (c - 0.5 - (w-1)/2), 79 its top; the center is mid-gray.
    assert out.tolist() == [0, 0, 129, 255, 255, 255]
    exact = apply_window(np.array([0.0, 40.0, 80.0]),
                         Window(center=40, width=80, function="LINEAR_EXACT"))
    assert exact.tolist() == [0, 128, 255]
    sigmoid = apply_window(np.array([-1000.0, 40.0, 1000.0]),
                           Window(center=40, width=80, function="SIGMOID"))
    assert sigmoid.tolist() == [0, 128, 255]


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("40,400", Window(center=40, width=400)),
        ("-600,1500,linear", Window(center=-600, width=1500)),
        ("0.5,2.5,LINEAR-EXACT", Window(center=0.5, width=2.5, function="LINEAR_EXACT")),
        ("10,0.5,sigmoid", Window(center=10, width=0.5, function="SIGMOID")),
    ],
)
def test_parse_window(text: str, window: Window) -> None:
    assert parse_window(text) == window


@pytest.mark.parametrize("text", ["40", "a,b", "40,0", "40,0.5,linear", "40,10,cubic",
                                  "nan,10", "1,2,3,4"])
def test_bad_windows(text: str) -> None:
    with pytest.raises(InvalidQuery):
        parse_window(text)


def test_viewport_fit_keeps_the_aspect_ratio() -> None:
    assert parse_viewport("64,64") == Viewport(width=64, height=64)
    assert parse_viewport("100,") == Viewport(width=100, height=None)
    assert parse_viewport("10,20,1,2,3,4").region == (1, 2, 3, 4)
    assert fit((640, 480), Viewport(width=64, height=64)) == (64, 48)
    assert fit((480, 640), Viewport(width=64, height=64)) == (48, 64)
    assert fit((100, 50), Viewport(width=None, height=100)) == (200, 100)
    assert fit((512, 512), Viewport(width=128, height=1000)) == (128, 128)
    for bad in ("0,10", "a,b", ",", "10", "10,10,0,0,0,5", "99999,1"):
        with pytest.raises(InvalidQuery):
            parse_viewport(bad)


def _gray(photometric: str, **extra: object) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 1
    ds.BitsAllocated = ds.BitsStored = 16
    ds.PixelRepresentation = 0
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def test_rescale_comes_before_the_window() -> None:
    """Stored 1064 with intercept -1024 is 40 HU: the center of a 40/80 window."""
    ds = _gray("MONOCHROME2", RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=40,
               WindowWidth=80)
    out = to_display(np.array([[984, 1064, 1104]], dtype=np.uint16), ds)
    assert out[0, 0] == 0
    assert 126 <= out[0, 1] <= 129
    assert out[0, 2] == 255
    # An explicit window overrides the header's.
    wide = to_display(np.array([[1064]], dtype=np.uint16), ds,
                      window=Window(center=1040, width=100))
    assert wide[0, 0] == 0


def test_monochrome1_is_inverted() -> None:
    arr = np.array([[0, 100, 200, 300]], dtype=np.uint16)
    m2 = to_display(arr, _gray("MONOCHROME2"))
    m1 = to_display(arr, _gray("MONOCHROME1"))
    assert m2.tolist() == [[0, 85, 170, 255]]  # no window in the header: min/max
    assert (m1.astype(int) + m2.astype(int) == 255).all()


def test_header_window_multi_valued_and_invalid() -> None:
    ds = _gray("MONOCHROME2", WindowCenter=[40, 300], WindowWidth=[80, 1500])
    assert header_window(ds) == Window(center=40, width=80)
    assert header_window(_gray("MONOCHROME2", WindowCenter=40, WindowWidth=0)) is None
    assert header_window(_gray("MONOCHROME2")) is None


def test_rgb_passes_through_and_deep_color_is_scaled() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    ds = Dataset()
    ds.PhotometricInterpretation = "RGB"
    ds.BitsStored = 8
    assert np.array_equal(to_display(rgb, ds), rgb)
    ds.BitsStored = 16
    deep = np.array([[[0, 32896, 65535]]], dtype=np.uint16)
    assert to_display(deep, ds).tolist() == [[[0, 128, 255]]]


@pytest.mark.parametrize(("media_type", "fmt"), [("image/jpeg", "JPEG"), ("image/png", "PNG")])
def test_encoded_images_decode_at_the_right_size(media_type: str, fmt: str) -> None:
    gray = np.tile(np.arange(200, dtype=np.uint8), (100, 1))
    data = encode_image(gray, media_type=media_type, viewport=Viewport(width=50, height=50))
    image = Image.open(io.BytesIO(data))
    assert image.format == fmt
    assert image.size == (50, 25)
    assert image.mode == "L"
    if fmt == "PNG":  # lossless: the gradient survives
        assert np.asarray(image)[0, 0] < np.asarray(image)[0, -1]
    cropped = encode_image(gray, media_type=media_type,
                           viewport=Viewport(width=20, height=20, region=(10, 10, 40, 40)))
    assert Image.open(io.BytesIO(cropped)).size == (20, 20)


# -- frames of real files ---------------------------------------------------------------


def _testfile(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(str(path))


FILES = [
    "CT_small.dcm",  # native, explicit LE, signed 16-bit
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",  # read whole, swapped to little endian
    "image_dfl.dcm",  # deflated
    "JPEG2000.dcm",
    "emri_small_jpeg_ls_lossless.dcm",  # 10 frames
    "SC_rgb_rle_2frame.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",  # YBR JPEG baseline
    "OBXXXX1A_2frame.dcm",  # native multi-frame, palette color
    "liver_1frame.dcm",  # 1 bit per pixel
]


@pytest.mark.parametrize("name", FILES)
def test_frames_decode_like_pydicom(name: str) -> None:
    path = _testfile(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = pydicom.dcmread(path)
        expected = reference.pixel_array
    frames = int(reference.get("NumberOfFrames", 1) or 1)
    with path.open("rb") as fp:
        source = PixelSource(fp)
        assert source.number_of_frames == frames
        for index in range(frames):
            arr = source.frame_array(index)
            assert np.array_equal(arr, expected[index] if frames > 1 else expected)
            native = source.native_frame(index)
            rows, columns = reference.Rows, reference.Columns
            samples, bits = reference.SamplesPerPixel, reference.BitsAllocated
            assert len(native) == (rows * columns * samples * bits + 7) // 8
        image = Image.open(io.BytesIO(source.render(0, media_type="image/png")))
        assert image.size == (reference.Columns, reference.Rows)
        with pytest.raises(NotFound):
            source.check(frames + 1)


def test_native_frames_are_the_stored_bytes() -> None:
    path = _testfile("OBXXXX1A_2frame.dcm")
    ds = pydicom.dcmread(path)
    size = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
    with path.open("rb") as fp:
        source = PixelSource(fp)
        assert source.stored_frame(1) == ds.PixelData[size: 2 * size]


def test_encapsulated_frames_are_the_stored_bitstream() -> None:
    path = _testfile("emri_small_jpeg_ls_lossless.dcm")
    ds = pydicom.dcmread(path)
    expected = list(generate_frames(ds.PixelData, number_of_frames=ds.NumberOfFrames))
    with path.open("rb") as fp:
        source = PixelSource(fp)
        assert [source.stored_frame(i) for i in range(ds.NumberOfFrames)] == expected


def test_big_endian_native_frames_come_little_endian() -> None:
    little, big = _testfile("MR_small.dcm"), _testfile("MR_small_bigendian.dcm")
    with little.open("rb") as a, big.open("rb") as b:
        assert PixelSource(a).native_frame(0) == PixelSource(b).native_frame(0)


def test_no_pixel_data() -> None:
    with _testfile("rtplan.dcm").open("rb") as fp, pytest.raises(NotFound):
        PixelSource(fp)
