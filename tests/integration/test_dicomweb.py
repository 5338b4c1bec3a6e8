"""DICOMweb against a real ``telerad serve``, driven by dicomweb-client and plain HTTP.

Files are pydicom's and pydicom-data's test files, one per transfer syntax an archive must
keep (two made by dcmtk), sent by STOW-RS and compared byte for byte when they come back.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient
from PIL import Image
from pydicom.encaps import generate_frames

from telerad.config import Settings
from telerad.dicom.part10 import dataset_offset
from telerad.dicom.synthetic import SyntheticStudy, write_study
from telerad.testing.peers import TeleradServer, storescu
from telerad.testing.samples import (
    BROKEN_FILES,
    data_file,
    make_with_dcmtk,
)
from tests.conftest import SENDER_AE, Served, seed

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")

EXPLICIT_LE = "1.2.840.10008.1.2.1"
#: One file per transfer syntax, no two with the same SOP Instance UID.
FILES = {
    "1.2.840.10008.1.2": "MR_small_implicit.dcm",
    EXPLICIT_LE: "CT_small.dcm",
    "1.2.840.10008.1.2.2": "ExplVR_BigEnd.dcm",
    "1.2.840.10008.1.2.1.99": "image_dfl.dcm",
    "1.2.840.10008.1.2.4.50": "SC_rgb_jpeg_dcmtk.dcm",
    "1.2.840.10008.1.2.4.51": "JPEG-lossy.dcm",
    "1.2.840.10008.1.2.4.70": "SC_rgb_jpeg_gdcm.dcm",
    "1.2.840.10008.1.2.4.80": "emri_small_jpeg_ls_lossless.dcm",
    "1.2.840.10008.1.2.4.90": "US1_J2KR.dcm",  # pydicom-data
    "1.2.840.10008.1.2.4.91": "JPEG2000.dcm",
    "1.2.840.10008.1.2.5": "OBXXXX1A_rle_2frame.dcm",  # pydicom-data: palette color, 2 frames
}
MADE_BY_DCMTK = ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.81")


@dataclass(frozen=True)
class Sent:
    path: Path
    data: bytes
    ds: pydicom.Dataset

    @property
    def url(self) -> str:
        ds = self.ds
        return (f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}")


def read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def pixels(ds: pydicom.Dataset) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ds.pixel_array


def client_for(served: Served) -> DICOMwebClient:
    return DICOMwebClient(url=served.server.dicomweb_url, headers=served.headers)


def multipart_body(parts: list[bytes], *, boundary: str = "telerad-test-boundary",
                   part_type: str = "application/dicom") -> tuple[bytes, str]:
    body = b"".join(f"\r\n--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + p
                    for p in parts) + f"\r\n--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def stow(served: Served, parts: list[bytes], *, study: str | None = None,
         headers: dict[str, str] | None = None) -> requests.Response:
    body, content_type = multipart_body(parts)
    url = served.server.dicomweb_url + "/studies" + (f"/{study}" if study else "")
    return requests.post(url, data=body, timeout=60,
                         headers={**served.headers, "Content-Type": content_type,
                                  "Accept": "application/dicom+json", **(headers or {})})


def split_multipart(response: requests.Response) -> list[tuple[str, bytes]]:
    """(Content-Type, body) of each part; an independent reading of RFC 2046 framing."""
    match = re.search(r'boundary="?([^";]+)"?', response.headers["Content-Type"])
    assert match, response.headers["Content-Type"]
    boundary = b"--" + match.group(1).encode()
    body = response.content
    assert body.startswith(boundary)
    out = []
    for chunk in body.split(b"\r\n" + boundary):
        piece = chunk.removeprefix(boundary)
        if piece.startswith(b"--"):
            break
        head, _, data = piece.partition(b"\r\n\r\n")
        content_type = next(line.split(b":", 1)[1].strip().decode()
                            for line in head.split(b"\r\n") if line.lower().startswith(
                                b"content-type"))
        out.append((content_type, data))
    assert body.rstrip(b"\r\n").endswith(boundary + b"--")
    return out


def get(served: Served, path: str, *, accept: str | None = None, **params: str
        ) -> requests.Response:
    headers = dict(served.headers)
    if accept is not None:
        headers["Accept"] = accept
    return requests.get(served.server.dicomweb_url + path, headers=headers, params=params,
                        timeout=60)


def sequence(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return list(body.get(tag, {}).get("Value", []))


def value(item: dict[str, Any], tag: str) -> Any:
    return item[tag]["Value"][0]


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    paths = [data_file(name) for name in FILES.values()]
    paths += [make_with_dcmtk(ts, tmp_path / "dcmtk").path for ts in MADE_BY_DCMTK]
    return paths


@pytest.fixture
def stored(served: Served, files: list[Path]) -> list[Sent]:
    sent = [Sent(path=p, data=p.read_bytes(), ds=read(p)) for p in files]
    response = stow(served, [s.data for s in sent])
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/dicom+json")
    body = response.json()
    referenced = sequence(body, "00081199")
    assert [value(r, "00081155") for r in referenced] == [s.ds.SOPInstanceUID for s in sent]
    assert [value(r, "00081150") for r in referenced] == [s.ds.SOPClassUID for s in sent]
    for item, s in zip(referenced, sent, strict=True):
        assert value(item, "00081190") == served.server.dicomweb_url + s.url
    assert "00081198" not in body
    return sent


# -- WADO-RS ----------------------------------------------------------------------------


def test_instances_come_back_byte_identical(served: Served, stored: list[Sent]) -> None:
    client = client_for(served)
    for s in stored:
        response = get(served, s.url, accept='multipart/related; type="application/dicom"; '
                                             "transfer-syntax=*")
        assert response.status_code == 200, (s.path.name, response.text)
        ((content_type, data),) = split_multipart(response)
        assert data == s.data, s.path.name
        assert f"transfer-syntax={s.ds.file_meta.TransferSyntaxUID}" in content_type
        # The stored syntax by name is accepted; a specific other one is not (no transcoding).
        assert get(served, s.url, accept=(
            'multipart/related; type="application/dicom"; '
            f"transfer-syntax={s.ds.file_meta.TransferSyntaxUID}")).status_code == 200
        if s.ds.file_meta.TransferSyntaxUID != EXPLICIT_LE:
            refused = get(served, s.url, accept='multipart/related; type="application/dicom"; '
                                                f"transfer-syntax={EXPLICIT_LE}")
            assert refused.status_code == 406
            assert "does not transcode" in refused.json()["message"]
    # dicomweb-client's own retrieve (no transfer-syntax parameter) and a whole study.
    ct = next(s for s in stored if s.path.name == "CT_small.dcm")
    ds = client.retrieve_instance(ct.ds.StudyInstanceUID, ct.ds.SeriesInstanceUID,
                                  ct.ds.SOPInstanceUID)
    assert ds.SOPInstanceUID == ct.ds.SOPInstanceUID
    assert ds.PixelData == ct.ds.PixelData
    same_study = [s for s in stored if s.ds.StudyInstanceUID == ct.ds.StudyInstanceUID]
    study = get(served, f"/studies/{ct.ds.StudyInstanceUID}")
    assert sorted(d for _, d in split_multipart(study)) == sorted(s.data for s in same_study)
    assert int(study.headers["Content-Length"]) == len(study.content)
    series = client.retrieve_series(ct.ds.StudyInstanceUID, ct.ds.SeriesInstanceUID)
    assert {d.SOPInstanceUID for d in series} == {s.ds.SOPInstanceUID for s in same_study
                                                  if s.ds.SeriesInstanceUID ==
                                                  ct.ds.SeriesInstanceUID}
    assert get(served, f"/studies/{ct.ds.StudyInstanceUID}",
               accept="application/zip").status_code == 406
    assert get(served, "/studies/1.2.3.4").status_code == 404


def test_metadata_matches_the_files(served: Served, stored: list[Sent]) -> None:
    client = client_for(served)
    base = served.server.dicomweb_url
    for s in stored:
        ds = s.ds
        meta = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                                 ds.SOPInstanceUID)
        got = pydicom.Dataset.from_json(meta, bulk_data_uri_handler=lambda _uri: b"")
        for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "PatientID",
                        "PatientName", "StudyDate", "Modality", "Rows", "Columns",
                        "BitsAllocated", "PhotometricInterpretation", "SamplesPerPixel"):
            if keyword in ds:
                assert got.get(keyword) == ds.get(keyword), (s.path.name, keyword)
        pixel = meta["7FE00010"]
        assert pixel["BulkDataURI"] == f"{base}{s.url}/bulkdata/7FE00010"
        assert not [k for k in meta if k.startswith("0002")]  # no File Meta Information
    study_uid = stored[0].ds.StudyInstanceUID
    study = client.retrieve_study_metadata(study_uid)
    assert {m["00080018"]["Value"][0] for m in study} == {
        s.ds.SOPInstanceUID for s in stored if s.ds.StudyInstanceUID == study_uid}
    # BulkDataURIs resolve: native pixel data as stored, big endian as little endian.
    ct = next(s for s in stored if s.path.name == "CT_small.dcm")
    (value_bytes,) = client.retrieve_bulkdata(f"{base}{ct.url}/bulkdata/7FE00010")
    assert value_bytes == ct.ds.PixelData
    big = next(s for s in stored if s.path.name == "ExplVR_BigEnd.dcm")
    (value_bytes,) = client.retrieve_bulkdata(f"{base}{big.url}/bulkdata/7FE00010")
    assert value_bytes == big.ds.PixelData  # OB: bytes have no order to swap
    assert get(served, f"{ct.url}/bulkdata/00100010").status_code == 404
    assert get(served, f"{ct.url}/metadata", accept="application/dicom+xml").status_code == 406


def decodable(ds: pydicom.Dataset) -> bool:
    try:
        pixels(ds)
    except Exception:
        return False
    return True


def _expected_uncompressed(s: Sent, index: int) -> bytes:
    """Frame ``index`` as Explicit VR Little Endian pixel data holds it."""
    ds, ts = s.ds, s.ds.file_meta.TransferSyntaxUID
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if ts in ("1.2.840.10008.1.2", EXPLICIT_LE):  # native little endian: the stored bytes
        size = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
        return bytes(ds.PixelData[index * size:(index + 1) * size])
    arr = pixels(ds)
    arr = arr[index] if frames > 1 else arr
    if arr.ndim == 3 and ds.get("PlanarConfiguration", 0) == 1:
        arr = arr.transpose(2, 0, 1)
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def test_frames_stored_and_uncompressed(served: Served, stored: list[Sent]) -> None:
    client = client_for(served)
    for s in stored:
        ds = s.ds
        ts = str(ds.file_meta.TransferSyntaxUID)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        numbers = sorted({1, frames})
        listed = ",".join(map(str, numbers))
        # Uncompressed Explicit VR Little Endian, decoded where stored compressed.
        if not decodable(ds):  # 12-bit JPEG Extended: no installed decoder
            refused = get(served, f"{s.url}/frames/1", accept=(
                f'multipart/related; type="application/octet-stream"; '
                f"transfer-syntax={EXPLICIT_LE}"))
            assert refused.status_code == 406
            assert "transfer-syntax=*" in refused.json()["message"]
            assert get(served, f"{s.url}/rendered").status_code == 406
            continue
        frames_le = client.retrieve_instance_frames(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, numbers,
            media_types=(("application/octet-stream", EXPLICIT_LE),))
        assert [bytes(f) for f in frames_le] == [_expected_uncompressed(s, n - 1)
                                                for n in numbers], s.path.name
        # As stored (OHIF's default request): the compressed bitstream of each frame.
        response = get(served, f"{s.url}/frames/{listed}",
                       accept='multipart/related; type="application/octet-stream"; '
                              "transfer-syntax=*")
        assert response.status_code == 200
        parts = split_multipart(response)
        if UIDs.encapsulated(ts):
            stored_frames = list(generate_frames(ds.PixelData, number_of_frames=frames))
            assert [d for _, d in parts] == [stored_frames[n - 1] for n in numbers]
            assert all(f"transfer-syntax={ts}" in ct for ct, _ in parts)
        else:
            assert [d for _, d in parts] == [_expected_uncompressed(s, n - 1) for n in numbers]
    jpeg = next(s for s in stored if s.path.name == "SC_rgb_jpeg_dcmtk.dcm")
    (frame,) = client.retrieve_instance_frames(
        jpeg.ds.StudyInstanceUID, jpeg.ds.SeriesInstanceUID, jpeg.ds.SOPInstanceUID, [1],
        media_types=("image/jpeg",))
    assert Image.open(io.BytesIO(frame)).size == (jpeg.ds.Columns, jpeg.ds.Rows)
    assert get(served, f"{jpeg.url}/frames/2").status_code == 404
    assert get(served, f"{jpeg.url}/frames/0").status_code == 400
    assert get(served, f"{jpeg.url}/frames/1", accept='multipart/related; type="image/jp2"'
               ).status_code == 406


class UIDs:
    @staticmethod
    def encapsulated(ts: str) -> bool:
        return bool(pydicom.uid.UID(ts).is_encapsulated)


def test_rendered_and_thumbnails(served: Served, stored: list[Sent]) -> None:
    for s in stored:
        ds = s.ds
        if not decodable(ds):
            continue  # see test_frames_stored_and_uncompressed
        response = get(served, f"{s.url}/rendered")
        assert response.status_code == 200, (s.path.name, response.text)
        assert response.headers["Content-Type"] == "image/jpeg"
        image = Image.open(io.BytesIO(response.content))
        assert image.format == "JPEG"
        assert image.size == (ds.Columns, ds.Rows)
        assert image.mode == ("L" if ds.SamplesPerPixel == 1 and
                              ds.PhotometricInterpretation != "PALETTE COLOR" else "RGB")
    ct = next(s for s in stored if s.path.name == "CT_small.dcm")
    png = get(served, f"{ct.url}/frames/1/rendered", accept="image/png",
              window="40,400,linear", viewport="64,32")
    image = Image.open(io.BytesIO(png.content))
    assert (image.format, image.size) == ("PNG", (32, 32))
    # Windowing changes the picture: a narrow window saturates more pixels than a wide one.
    narrow = np.asarray(Image.open(io.BytesIO(get(
        served, f"{ct.url}/rendered", accept="image/png", window="0,10").content)))
    wide = np.asarray(Image.open(io.BytesIO(get(
        served, f"{ct.url}/rendered", accept="image/png", window="0,5000").content)))
    assert ((narrow == 0) | (narrow == 255)).mean() > ((wide == 0) | (wide == 255)).mean()
    thumb = get(served, f"{ct.url}/thumbnail")
    assert Image.open(io.BytesIO(thumb.content)).size == (128, 128)
    for path in (f"/studies/{ct.ds.StudyInstanceUID}/thumbnail",
                 f"/studies/{ct.ds.StudyInstanceUID}/series/{ct.ds.SeriesInstanceUID}/thumbnail"):
        assert Image.open(io.BytesIO(get(served, path).content)).format == "JPEG"
    assert get(served, f"{ct.url}/rendered", accept="image/gif").status_code == 406
    assert get(served, f"{ct.url}/rendered", window="40").status_code == 400
    assert get(served, f"{ct.url}/rendered", viewport="0,0").status_code == 400


# -- QIDO-RS ----------------------------------------------------------------------------


def _uids(results: list[dict[str, Any]], tag: str = "0020000D") -> list[str]:
    return [r[tag]["Value"][0] for r in results]


def test_qido_matching(served: Served, stored: list[Sent]) -> None:
    client = client_for(served)
    by_name = {s.path.name: s.ds for s in stored}
    ct, mr, nm = by_name["CT_small.dcm"], by_name["MR_small_implicit.dcm"], by_name["JPEG2000.dcm"]
    studies = client.search_for_studies()
    all_studies = _uids(studies)
    assert len(all_studies) == len(set(all_studies)) == len({s.ds.StudyInstanceUID
                                                             for s in stored})
    first = next(r for r in studies if value(r, "0020000D") == ct.StudyInstanceUID)
    assert value(first, "00100010") == {"Alphabetic": "CompressedSamples^CT1"}
    assert value(first, "00100020") == "1CT1"
    assert value(first, "00080020") == "20040119"
    assert value(first, "00080061") == "CT"
    assert value(first, "00081190") == f"{served.server.dicomweb_url}/studies/{ct.StudyInstanceUID}"
    assert value(first, "00201208") == sum(s.ds.StudyInstanceUID == ct.StudyInstanceUID
                                           for s in stored)

    def studies_for(**filters: str) -> list[str]:
        return _uids(client.search_for_studies(search_filters=filters))

    assert studies_for(PatientID="1CT1") == [ct.StudyInstanceUID]  # single value
    assert studies_for(**{"00100020": "1CT1"}) == [ct.StudyInstanceUID]  # by tag
    assert studies_for(PatientName="compressedsamples^c*") == [ct.StudyInstanceUID]  # PN
    assert set(studies_for(PatientName="CompressedSamples^??1")) == {
        ct.StudyInstanceUID, mr.StudyInstanceUID, nm.StudyInstanceUID,
        by_name["US1_J2KR.dcm"].StudyInstanceUID}
    assert studies_for(PatientID="1CT*", StudyDate="20040101-20040131") == [
        ct.StudyInstanceUID]
    assert ct.StudyInstanceUID not in studies_for(StudyDate="20040201-")
    assert studies_for(StudyDate="-19991231", PatientID="1CT1") == []
    assert set(studies_for(StudyInstanceUID=f"{ct.StudyInstanceUID},{mr.StudyInstanceUID}")) \
        == {ct.StudyInstanceUID, mr.StudyInstanceUID}
    assert ct.StudyInstanceUID in studies_for(ModalitiesInStudy="CT")
    assert ct.StudyInstanceUID not in studies_for(ModalitiesInStudy="MR")
    assert studies_for(StudyTime="0727-0728", PatientID="1CT1") == [ct.StudyInstanceUID]
    # includefield from the stored header, limit and offset, fuzzymatching ignored.
    (with_fields,) = client.search_for_studies(
        search_filters={"PatientID": "1CT1"},
        fields=["InstitutionName", "00081030"], fuzzymatching=True)
    assert value(with_fields, "00080080") == ct.InstitutionName
    page1 = _uids(client.search_for_studies(limit=2))
    page2 = _uids(client.search_for_studies(limit=2, offset=2))
    assert page1 + page2 == all_studies[:4]
    # Series and instances, scoped and not.
    series = client.search_for_series(ct.StudyInstanceUID)
    assert _uids(series, "0020000E") == [ct.SeriesInstanceUID]
    assert value(series[0], "00080060") == "CT"
    assert _uids(client.search_for_series(search_filters={"Modality": "NM"}), "0020000E") == \
        sorted({by_name["JPEG2000.dcm"].SeriesInstanceUID,
                by_name["JPEG-lossy.dcm"].SeriesInstanceUID},
               key=_uids(client.search_for_series(), "0020000E").index)
    instances = client.search_for_instances(ct.StudyInstanceUID, ct.SeriesInstanceUID)
    assert value(instances[0], "00080018") == ct.SOPInstanceUID
    assert value(instances[0], "00280010") == ct.Rows
    assert value(instances[0], "00081190").endswith(
        f"/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}"
        f"/instances/{ct.SOPInstanceUID}")
    wanted = f"{ct.SOPInstanceUID}\\{nm.SOPInstanceUID}"
    assert set(_uids(client.search_for_instances(search_filters={"SOPInstanceUID": wanted}),
                     "00080018")) == {ct.SOPInstanceUID, nm.SOPInstanceUID}
    frames = client.search_for_instances(search_filters={"NumberOfFrames": "10"})
    assert _uids(frames, "00080018") == [s.ds.SOPInstanceUID for s in stored
                                         if s.ds.get("NumberOfFrames") == 10]
    assert len(frames) == 2  # emri_small in JPEG-LS, and its dcmtk near-lossless copy
    assert len(get(served, f"/studies/{ct.StudyInstanceUID}/instances").json()) == sum(
        s.ds.StudyInstanceUID == ct.StudyInstanceUID for s in stored)
    # Nothing matches: 200 and []; a key that cannot be matched: 400 saying why.
    empty = get(served, "/studies", PatientID="nobody")
    assert (empty.status_code, empty.json()) == (200, [])
    bad = get(served, "/studies", InstitutionName="X")
    assert bad.status_code == 400
    assert "cannot match on InstitutionName" in bad.json()["message"]
    assert get(served, "/studies", foo="1").status_code == 400
    assert get(served, "/studies", accept="application/dicom+xml").status_code == 406


# -- STOW-RS failures -------------------------------------------------------------------


def _failures(response: requests.Response) -> list[int]:
    return [value(item, "00081197") for item in sequence(response.json(), "00081198")]


def _indexed(served: Served) -> set[str]:
    return set(_uids(get(served, "/instances").json(), "00080018"))


def test_stow_refusals_store_nothing(served: Served, tmp_path: Path) -> None:
    ct_path = data_file("CT_small.dcm")
    ct_bytes = ct_path.read_bytes()
    ct = read(ct_path)
    assert stow(served, [ct_bytes]).status_code == 200
    # Already stored, same bytes: success, referenced again.
    again = stow(served, [ct_bytes])
    assert again.status_code == 200
    assert [value(r, "00081155") for r in sequence(again.json(), "00081199")] == [
        ct.SOPInstanceUID]
    # Same UID, one pixel changed: a conflict (0111H); the first copy is kept.
    changed = read(ct_path)
    arr = pixels(changed).copy()
    arr[0, 0] += 1
    changed.PixelData = arr.tobytes()
    buffer = io.BytesIO()
    changed.save_as(buffer)
    conflict = stow(served, [buffer.getvalue()])
    assert conflict.status_code == 409
    assert _failures(conflict) == [0x0111]
    (failed,) = sequence(conflict.json(), "00081198")
    assert value(failed, "00081155") == ct.SOPInstanceUID
    assert "already stored with other content" in conflict.headers["Warning"]
    kept = get(served, f"/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}"
                       f"/instances/{ct.SOPInstanceUID}")
    assert split_multipart(kept)[0][1] == ct_bytes
    before = _indexed(served)
    assert before == {ct.SOPInstanceUID}
    # Truncated, not DICOM, and pydicom's deliberately broken files: each refused, clearly.
    bad_parts = [ct_bytes[: len(ct_bytes) // 2], b"this is not a DICOM file at all"]
    bad_names = [name for name in BROKEN_FILES if _exists(name)]
    bad_parts += [data_file(name).read_bytes() for name in bad_names]
    refused = stow(served, bad_parts)
    assert refused.status_code == 409, refused.text
    assert len(_failures(refused)) == len(bad_parts)
    assert _failures(refused)[:2] == [0xC210, 0xC210]
    assert set(_failures(refused)) <= {0xC210, 0xC000}
    assert "part 1" in refused.headers["Warning"]
    assert "part 2" in refused.headers["Warning"]
    assert "00081199" not in refused.json()
    # Mixed: one good, one bad part -> 202, each listed where it belongs.
    mr_bytes = data_file("MR_small.dcm").read_bytes()
    mixed = stow(served, [b"garbage", mr_bytes])
    assert mixed.status_code == 202
    assert _failures(mixed) == [0xC210]
    assert [value(r, "00081155") for r in sequence(mixed.json(), "00081199")] == [
        read(data_file("MR_small.dcm")).SOPInstanceUID]
    # POST /studies/{study}: an instance of another study fails with A900H, is not stored.
    nm = read(data_file("JPEG2000.dcm"))
    wrong = stow(served, [data_file("JPEG2000.dcm").read_bytes()], study=ct.StudyInstanceUID)
    assert wrong.status_code == 409
    assert _failures(wrong) == [0xA900]
    right = stow(served, [ct_bytes], study=ct.StudyInstanceUID)
    assert right.status_code == 200
    assert value(right.json(), "00081190").endswith(f"/studies/{ct.StudyInstanceUID}")
    assert _indexed(served) == before | {read(data_file("MR_small.dcm")).SOPInstanceUID}
    assert nm.SOPInstanceUID not in _indexed(served)
    # Wrong media types and bodies that are not multipart.
    url = served.server.dicomweb_url + "/studies"
    as_json = requests.post(url, data=b"{}", timeout=10,
                            headers={**served.headers, "Content-Type": "application/json"})
    assert as_json.status_code == 415
    metadata_parts = requests.post(url, data=b"x", timeout=10, headers={
        **served.headers,
        "Content-Type": 'multipart/related; type="application/dicom+json"; boundary=b'})
    assert metadata_parts.status_code == 415
    raw = requests.post(url, data=ct_bytes, timeout=10, headers={
        **served.headers, "Content-Type": 'multipart/related; type="application/dicom"; '
                                          "boundary=xyz"})
    assert raw.status_code == 400
    assert "multipart" in raw.json()["message"]
    unterminated, content_type = multipart_body([ct_bytes])
    cut = requests.post(url, data=unterminated[:-30], timeout=10,
                        headers={**served.headers, "Content-Type": content_type})
    assert cut.status_code == 400
    assert _indexed(served) == before | {read(data_file("MR_small.dcm")).SOPInstanceUID}
    assert not list((served.server.data_dir / "blobs" / ".staging").iterdir())


def _exists(name: str) -> bool:
    try:
        data_file(name)
    except FileNotFoundError:
        return False
    return True


def test_stow_with_dicomweb_client(served: Served) -> None:
    """dicomweb-client encodes datasets itself (and streams large bodies chunked)."""
    client = client_for(served)
    client.set_chunk_size(16 * 1024)  # force chunked transfer encoding
    datasets = [read(data_file(n)) for n in ("CT_small.dcm", "SC_rgb_rle_2frame.dcm")]
    result = client.store_instances(datasets)
    assert [r.ReferencedSOPInstanceUID for r in result.ReferencedSOPSequence] == [
        d.SOPInstanceUID for d in datasets]
    back = client.retrieve_instance(datasets[1].StudyInstanceUID,
                                    datasets[1].SeriesInstanceUID, datasets[1].SOPInstanceUID)
    assert np.array_equal(pixels(back), pixels(datasets[1]))
    # Bulk data of a big endian file comes in little endian byte order (OW words swapped).
    big = read(data_file("MR_small_bigendian.dcm"))
    assert stow(served, [data_file("MR_small_bigendian.dcm").read_bytes()]).status_code == 200
    url = (f"{served.server.dicomweb_url}/studies/{big.StudyInstanceUID}/series/"
           f"{big.SeriesInstanceUID}/instances/{big.SOPInstanceUID}/bulkdata/7FE00010")
    (value_bytes,) = client.retrieve_bulkdata(url)
    assert value_bytes == pixels(big).astype("<i2").tobytes()
    assert value_bytes != big.PixelData


# -- C-STORE in, WADO-RS out ------------------------------------------------------------


def test_cstore_instances_retrieved_by_dataset(served: Served, tmp_path: Path) -> None:
    # A synthetic CT: dcmtk re-encodes some of pydicom's test files when it sends them
    # (it drops CT_small's Data Set Trailing Padding, for one).
    paths = write_study(SyntheticStudy(slices=3, rows=64, columns=64), tmp_path / "ct")
    result = storescu(paths, port=served.server.dicom_port, calling=SENDER_AE)
    assert result.returncode == 0, result.stderr
    client = client_for(served)
    for path in paths:
        ds = read(path)
        response = get(served, f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                               f"/instances/{ds.SOPInstanceUID}")
        ((_, data),) = split_multipart(response)
        sent = path.read_bytes()
        # The File Meta Information is the receiver's own; the dataset is the one sent.
        assert data[dataset_offset(data):] == sent[dataset_offset(sent):]
        meta = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                                 ds.SOPInstanceUID)
        assert meta["00100020"]["Value"] == [ds.PatientID]
        assert meta["00200013"]["Value"] == [ds.InstanceNumber]
        (frame,) = client.retrieve_instance_frames(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [1],
            media_types=(("application/octet-stream", EXPLICIT_LE),))
        assert frame == ds.PixelData
    (study,) = client.search_for_studies(search_filters={"PatientID": ds.PatientID})
    assert study["00201208"]["Value"] == [3]


# -- authentication and limits ----------------------------------------------------------


def test_a_bearer_token_is_required(served: Served) -> None:
    base = served.server.dicomweb_url
    body, content_type = multipart_body([data_file("CT_small.dcm").read_bytes()])
    for headers in ({}, {"Authorization": "Bearer trd_not-a-token"},
                    {"Authorization": f"Basic {served.token}"}):
        for method, path in (("GET", "/studies"), ("GET", "/studies/1.2.3/metadata"),
                             ("GET", "/studies/1.2.3/series/1.2/instances/1.2.3/frames/1"),
                             ("POST", "/studies")):
            response = requests.request(method, base + path, headers={
                **headers, "Content-Type": content_type}, data=body, timeout=10)
            assert response.status_code == 401, (headers, path)
            assert response.headers["WWW-Authenticate"] == "Bearer"
    assert get(served, "/studies").json() == []  # nothing was stored without a token


def test_oversized_bodies_are_refused_whole(settings: Settings) -> None:
    _site_id, token = seed(settings)
    limit = 45_000
    server = TeleradServer(data_dir=settings.data_dir, env={
        "TELERAD_DATABASE_URL": settings.database_url, "TELERAD_STABLE_AGE": "1",
        "TELERAD_MAX_UPLOAD_BYTES": str(limit)})
    with server:
        served = Served(server=server, token=token, site_id=_site_id)
        small = data_file("MR_small.dcm").read_bytes()
        big = data_file("CT_small.dcm").read_bytes()
        # Declared too large (Content-Length): refused before reading.
        response = stow(served, [small, big])
        assert response.status_code == 413
        assert response.json()["error"] == "too_large"
        # Streamed (chunked): refused when the limit is crossed, the parts before it too.
        client = client_for(served)
        client.set_chunk_size(8 * 1024)
        with pytest.raises(requests.HTTPError) as info:
            client.store_instances([read(data_file("MR_small.dcm")),
                                    read(data_file("CT_small.dcm")),
                                    read(data_file("CT_small.dcm"))])
        assert info.value.response.status_code == 413
        assert get(served, "/instances").json() == []
        assert not list((settings.data_dir / "blobs" / ".staging").iterdir())
        # Within the limit it is stored.
        assert stow(served, [small]).status_code == 200
