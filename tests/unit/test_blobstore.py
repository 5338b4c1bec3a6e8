"""Blob stores: nothing is visible before commit, keys are never reused, content compares."""

from __future__ import annotations

from pathlib import Path

import pytest

from telerad.archive.blobstore import (
    BlobStore,
    FolderBlobStore,
    MemoryBlobStore,
    new_key,
    same_content,
)
from telerad.dicom.part10 import file_meta
from telerad.errors import NotFound


@pytest.fixture(params=["folder", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return FolderBlobStore(tmp_path / "blobs") if request.param == "folder" else MemoryBlobStore()


def _commit(store: BlobStore, data: bytes) -> str:
    staged = store.stage()
    staged.write(data[: len(data) // 2])
    staged.write(memoryview(data)[len(data) // 2 :])
    key = new_key("studies", "1.2", "1.2.3", "1.2.3.4")
    store.commit(staged, key)
    return key


def test_commit_then_read(store: BlobStore) -> None:
    key = _commit(store, b"x" * 1000)
    with store.open(key) as fp:
        assert fp.read() == b"x" * 1000
    assert key in set(store.keys())


def test_staged_bytes_are_readable_before_commit_and_invisible(store: BlobStore) -> None:
    staged = store.stage()
    staged.write(b"abc")
    assert staged.view().read() == b"abc"
    assert list(store.keys()) == []
    staged.discard()


def test_keys_are_never_reused() -> None:
    assert new_key("a", "b") != new_key("a", "b")


def test_unknown_key_is_not_found(store: BlobStore) -> None:
    with pytest.raises(NotFound):
        store.open("studies/nothing.dcm")


def test_folder_refuses_keys_outside_its_root(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        FolderBlobStore(tmp_path).open("../etc/passwd")


def test_same_content_ignores_the_meta_group(store: BlobStore) -> None:
    dataset = b"\x08\x00\x16\x00UI\x04\x001.2\x00"
    ts = "1.2.840.10008.1.2.1"
    a = file_meta(sop_class_uid="1.2", sop_instance_uid="1.2.3", transfer_syntax_uid=ts,
                  source_ae_title="A") + dataset
    b = file_meta(sop_class_uid="1.2", sop_instance_uid="1.2.3", transfer_syntax_uid=ts,
                  source_ae_title="OTHER") + dataset
    c = a[:-2] + b"4\x00"
    ka, kb, kc = _commit(store, a), _commit(store, b), _commit(store, c)
    assert same_content(store, ka, kb)
    assert not same_content(store, ka, kc)


def test_folder_staging_is_cleared(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    store.stage().write(b"half written")
    assert store.clear_staging() == 1
    assert list(store.keys()) == []
