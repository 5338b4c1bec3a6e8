"""Frames of a stored instance and their rendering to JPEG/PNG. Pure: no HTTP, no index.

:class:`PixelSource` reads the header of a Part-10 file once and reaches each frame without
loading the others: native pixel data is sliced at its offset in the file, encapsulated
pixel data is walked item by item (PS3.5 §A.4) with :func:`pydicom.encaps.get_frame`.
Big endian and deflated files (rare, and small) are read whole.

Rendering follows the grayscale pipeline of PS3.4 §N.2: Modality LUT (Rescale Slope and
Intercept, PS3.3 §C.11.1), VOI LUT (window, PS3.3 §C.11.2.1.2), then the presentation
polarity (MONOCHROME1 is inverted); color images are passed through (palette color is
looked up), then scaled to a viewport (PS3.18 §8.3.5.1.3).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, get_frame
from pydicom.errors import InvalidDicomError
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut
from pydicom.pixels.utils import pack_bits, pixel_array
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
)

from telerad.errors import InvalidDicom, InvalidQuery, NotFound, UndecodablePixelData

PIXEL_DATA = 0x7FE00010
#: Header values above this size stay on disk until used.
_DEFER = 4096
#: Largest side of a rendered image (a viewport beyond it is refused).
MAX_SIDE = 8192
#: Default bounding box of a thumbnail (PS3.18 §8.3.5: the size is the server's choice).
THUMBNAIL_SIDE = 128


class WindowFunction:
    """VOI LUT Function values (PS3.3 §C.11.2.1.3)."""

    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"


@dataclass(frozen=True, kw_only=True)
class Window:
    """A VOI window (PS3.3 §C.11.2.1.2) in the units after the Modality LUT."""

    center: float
    width: float
    function: str = WindowFunction.LINEAR


@dataclass(frozen=True, kw_only=True)
class Viewport:
    """PS3.18 §8.3.5.1.3: the box the image is scaled to fit, and an optional source region."""

    width: int | None
    height: int | None
    #: (sx, sy, sw, sh): the region of the image to render, in pixels.
    region: tuple[int, int, int, int] | None = None


def parse_window(text: str) -> Window:
    """``window=center,width[,function]`` (PS3.18 §8.3.5.1.4)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3):
        raise InvalidQuery("window must be center,width[,function]")
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise InvalidQuery("window center and width must be numbers") from exc
    function = (parts[2] if len(parts) == 3 else "linear").upper().replace("-", "_")
    if function not in (WindowFunction.LINEAR, WindowFunction.LINEAR_EXACT,
                        WindowFunction.SIGMOID):
        raise InvalidQuery("window function must be linear, linear-exact or sigmoid")
    if not (math.isfinite(center) and math.isfinite(width)):
        raise InvalidQuery("window center and width must be finite")
    # PS3.3 §C.11.2.1.2.1: width >= 1 for LINEAR, > 0 for the others.
    if width < 1 if function == WindowFunction.LINEAR else width <= 0:
        raise InvalidQuery("window width must be at least 1 (linear) or above 0")
    return Window(center=center, width=width, function=function)


def parse_viewport(text: str) -> Viewport:
    """``viewport=vw,vh`` or ``vw,vh,sx,sy,sw,sh``; one of vw, vh may be empty."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 6):
        raise InvalidQuery("viewport must be vw,vh or vw,vh,sx,sy,sw,sh")
    try:
        numbers = [int(p) if p else None for p in parts]
    except ValueError as exc:
        raise InvalidQuery("viewport values must be integers") from exc
    width, height = numbers[0], numbers[1]
    if width is None and height is None:
        raise InvalidQuery("viewport needs a width or a height")
    for side in (width, height):
        if side is not None and not 1 <= side <= MAX_SIDE:
            raise InvalidQuery(f"viewport sides must be between 1 and {MAX_SIDE}")
    region = None
    if len(numbers) == 6:
        sx, sy, sw, sh = numbers[2:]
        if sx is None or sy is None or sw is None or sh is None or sx < 0 or sy < 0 \
                or sw <= 0 or sh <= 0:
            raise InvalidQuery("viewport region must be sx,sy,sw,sh with positive sizes")
        region = (sx, sy, sw, sh)
    return Viewport(width=width, height=height, region=region)


# -- windowing --------------------------------------------------------------------------


def apply_window(values: NDArray[Any], window: Window) -> NDArray[np.uint8]:
    """Map values through a VOI window to 0..255 (PS3.3 §C.11.2.1.2.1 - .3)."""
    x = values.astype(np.float64, copy=False)
    c, w = window.center, window.width
    if window.function == WindowFunction.SIGMOID:
        y = 255.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    elif window.function == WindowFunction.LINEAR_EXACT:
        y = ((x - c) / w + 0.5) * 255.0
    else:  # LINEAR: the half-pixel offsets of the standard's formula
        y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0 if w > 1 else np.where(
            x <= c - 0.5, 0.0, 255.0)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def min_max_window(values: NDArray[Any]) -> Window:
    """A window spanning the values present, when the header gives none."""
    low, high = float(np.min(values)), float(np.max(values))
    return Window(center=(low + high) / 2, width=max(high - low, 1.0),
                  function=WindowFunction.LINEAR_EXACT)


def header_window(ds: Dataset) -> Window | None:
    """The first Window Center/Width of the header (PS3.3 §C.11.2), if usable."""
    try:
        center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
        if center is None or width is None or center == "" or width == "":
            return None
        c = float(center[0] if _multi(center) else center)
        w = float(width[0] if _multi(width) else width)
        function = str(ds.get("VOILUTFunction", "") or WindowFunction.LINEAR).upper()
    except (TypeError, ValueError, IndexError):
        return None
    if function not in (WindowFunction.LINEAR, WindowFunction.LINEAR_EXACT,
                        WindowFunction.SIGMOID):
        function = WindowFunction.LINEAR
    if not (math.isfinite(c) and math.isfinite(w)) or w <= 0 or (
            function == WindowFunction.LINEAR and w < 1):
        return None
    return Window(center=c, width=w, function=function)


def _multi(value: object) -> bool:
    return isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"


def to_display(arr: NDArray[Any], ds: Dataset, *, window: Window | None = None
               ) -> NDArray[np.uint8]:
    """A decoded frame → 8-bit gray (rows, columns) or RGB (rows, columns, 3)."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
        return _color_to_8bit(arr, 16 if arr.dtype.itemsize > 1 else 8)
    if arr.ndim == 3:  # RGB (pydicom converted YBR to RGB when decoding)
        return _color_to_8bit(arr, int(ds.get("BitsStored", 8) or 8))
    values = apply_modality_lut(arr, ds)
    chosen = window or header_window(ds) or min_max_window(values)
    out = apply_window(values, chosen)
    if photometric == "MONOCHROME1":  # minimum value is white (PS3.3 §C.7.6.3.1.2)
        out = 255 - out
    return out


def _color_to_8bit(arr: NDArray[Any], bits: int) -> NDArray[np.uint8]:
    if arr.dtype == np.uint8:
        return arr
    top = float(2 ** max(bits, 1) - 1)
    scaled = np.clip(arr.astype(np.float64) * (255.0 / top), 0, 255)
    return np.rint(scaled).astype(np.uint8)


def fit(size: tuple[int, int], viewport: Viewport) -> tuple[int, int]:
    """(width, height) of an image of ``size`` scaled to fit the viewport, aspect kept."""
    width, height = size
    scales = []
    if viewport.width is not None:
        scales.append(viewport.width / width)
    if viewport.height is not None:
        scales.append(viewport.height / height)
    scale = min(scales)
    return max(1, round(width * scale)), max(1, round(height * scale))


def encode_image(pixels: NDArray[np.uint8], *, media_type: str,
                 viewport: Viewport | None = None, quality: int = 90) -> bytes:
    """8-bit gray or RGB pixels → JPEG or PNG bytes, cropped and scaled to ``viewport``."""
    image = Image.fromarray(pixels, mode="RGB" if pixels.ndim == 3 else "L")
    if viewport is not None:
        if viewport.region is not None:
            sx, sy, sw, sh = viewport.region
            if sx >= image.width or sy >= image.height:
                raise InvalidQuery("viewport region lies outside the image")
            image = image.crop((sx, sy, min(sx + sw, image.width), min(sy + sh, image.height)))
        target = fit(image.size, viewport)
        if target != image.size:
            image = image.resize(target, Image.Resampling.BILINEAR if target[0] > image.width
                                 else Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if media_type == "image/png":
        image.save(out, format="PNG", optimize=False)
    else:
        image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


# -- frames -----------------------------------------------------------------------------


class PixelSource:
    """One Part-10 file opened for frame access; the file must stay open while used."""

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        try:
            fp.seek(0)
            ds = dcmread(fp, defer_size=_DEFER)
            ts = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
            if ts in (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian):
                # Deferred reads of a deflated stream are not seekable; big endian needs
                # byte swapping of every value: both are read whole (and are rare).
                fp.seek(0)
                ds = dcmread(fp)
        except (InvalidDicomError, EOFError, ValueError, KeyError, OSError) as exc:
            raise InvalidDicom(f"stored file unreadable: {type(exc).__name__}") from exc
        if PIXEL_DATA not in ds:
            raise NotFound("this instance has no pixel data")
        self.header = ds
        self.transfer_syntax_uid = ts
        self.rows = int(ds.get("Rows", 0) or 0)
        self.columns = int(ds.get("Columns", 0) or 0)
        self.samples_per_pixel = int(ds.get("SamplesPerPixel", 1) or 1)
        self.bits_allocated = int(ds.get("BitsAllocated", 8) or 8)
        self.planar_configuration = int(ds.get("PlanarConfiguration", 0) or 0)
        try:
            self.number_of_frames = max(int(ds.get("NumberOfFrames", 1) or 1), 1)
        except (TypeError, ValueError):
            self.number_of_frames = 1
        self._element = ds.get_item(PIXEL_DATA, keep_deferred=True)
        self._whole = ts in (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian)

    @property
    def frame_length(self) -> int:
        """Bytes of one native frame (PS3.5 §8.1.1); YBR_FULL_422 stores two samples per
        pixel (PS3.3 §C.7.6.3.1.2)."""
        photometric = str(self.header.get("PhotometricInterpretation", "")).strip()
        samples = 2 if photometric == "YBR_FULL_422" else self.samples_per_pixel
        return self.rows * self.columns * samples * self.bits_allocated // 8

    @property
    def encapsulated(self) -> bool:
        return bool(self.transfer_syntax_uid.is_encapsulated)

    def check(self, number: int) -> int:
        """The 0-based index of 1-based frame ``number`` (NotFound beyond the last)."""
        if not 1 <= number <= self.number_of_frames:
            raise NotFound(f"frame {number} does not exist: the instance has "
                           f"{self.number_of_frames}")
        return number - 1

    def _value(self) -> bytes:
        """The whole pixel data value (only for files read whole or small values)."""
        value = self.header[PIXEL_DATA].value
        return bytes(value)

    def _deferred(self) -> RawDataElement | None:
        element = self._element
        if isinstance(element, RawDataElement) and element.value is None:
            return element
        return None

    def stored_frame(self, index: int) -> bytes:
        """Frame ``index`` as stored: the compressed bitstream, or native little endian bytes.

        Native frames of big endian files are sent in little endian order (the byte order
        of the ``application/octet-stream`` representation, PS3.18 §8.7.3).
        """
        if self.encapsulated:
            return self._encapsulated_frame(index)
        if self._whole or self.bits_allocated < 8:
            return self.native_frame(index)
        length = self.frame_length
        deferred = self._deferred()
        if deferred is not None:
            if (index + 1) * length > deferred.length:
                raise InvalidDicom("pixel data shorter than its frames")
            self._fp.seek(deferred.value_tell + index * length)
            data = self._fp.read(length)
        else:
            data = self._value()[index * length: (index + 1) * length]
        if len(data) != length:
            raise InvalidDicom("pixel data shorter than its frames")
        return data

    def _encapsulated_frame(self, index: int) -> bytes:
        ds = self.header
        offsets = None
        if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
            offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        deferred = self._deferred()
        try:
            if deferred is not None:
                self._fp.seek(deferred.value_tell)
                return get_frame(self._fp, index, number_of_frames=self.number_of_frames,
                                 extended_offsets=offsets)
            return get_frame(self._value(), index, number_of_frames=self.number_of_frames,
                             extended_offsets=offsets)
        except (ValueError, KeyError, EOFError) as exc:
            raise InvalidDicom(f"cannot find frame {index + 1}: {exc}") from exc

    def frame_array(self, index: int) -> NDArray[Any]:
        """Frame ``index`` decoded as pydicom decodes it (YBR converted to RGB)."""
        if self._whole or (not self.encapsulated and self.bits_allocated < 8):
            # pydicom slices the frame itself; the whole value is in memory already.
            try:
                return pixel_array(self.header,
                                   index=index if self.number_of_frames > 1 else None)
            except Exception as exc:
                raise UndecodablePixelData(f"frame {index + 1} cannot be decoded here") from exc
        # A one-frame dataset with the Image Pixel module (PS3.3 §C.7.6.3, group 0028)
        # and this frame alone: decoding never touches the other frames.
        single = Dataset()
        for tag in self.header.keys():  # noqa: SIM118 - keys() keeps deferred items unread
            if tag.group != 0x0028:
                continue
            item = self.header.get_item(tag, keep_deferred=True)
            if isinstance(item, RawDataElement) and item.value is None:
                continue  # large LUT data: not needed to decode
            single.add(self.header[tag])
        single.file_meta = self.header.file_meta
        single.NumberOfFrames = 1
        frame = self.stored_frame(index)
        single.PixelData = encapsulate([frame]) if self.encapsulated else frame
        single["PixelData"].VR = "OB" if self.encapsulated or self.bits_allocated <= 8 else "OW"
        try:
            return single.pixel_array
        except Exception as exc:
            raise UndecodablePixelData(
                f"frame {index + 1} ({self.transfer_syntax_uid.name}) cannot be decoded here; "
                "it can be retrieved as stored (transfer-syntax=*)"
            ) from exc

    def native_frame(self, index: int) -> bytes:
        """Frame ``index`` uncompressed, as Explicit VR Little Endian pixel data holds it."""
        if not self.encapsulated and not self._whole and self.bits_allocated >= 8:
            return self.stored_frame(index)
        arr = self.frame_array(index)
        if self.bits_allocated == 1:
            return pack_bits(arr)
        if arr.ndim == 3 and self.planar_configuration == 1:
            arr = arr.transpose(2, 0, 1)  # color-by-plane as the header declares
        little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        if self.bits_allocated > 8 and little.dtype.itemsize * 8 < self.bits_allocated:
            little = little.astype(f"<u{self.bits_allocated // 8}")
        return bytes(np.ascontiguousarray(little).tobytes())

    def render(self, index: int, *, media_type: str, window: Window | None = None,
               viewport: Viewport | None = None, quality: int = 90) -> bytes:
        """Frame ``index`` rendered to ``media_type`` (image/jpeg or image/png)."""
        pixels = to_display(self.frame_array(index), self.header, window=window)
        return encode_image(pixels, media_type=media_type, viewport=viewport, quality=quality)


__all__ = [
    "ExplicitVRLittleEndian", "PixelSource", "Viewport", "Window", "apply_window",
    "encode_image", "fit", "header_window", "min_max_window", "parse_viewport",
    "parse_window", "to_display",
]
