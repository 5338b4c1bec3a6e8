"""Where instance bytes live: a BlobStore protocol, a folder store (default), a memory store.

Writing is two-phase so that nothing half-written is ever visible: bytes go to a *staged*
blob first (streamed as they arrive), and :meth:`BlobStore.commit` makes them durable and
visible under their key in one step — for the folder, fsync of the file, an atomic rename
into place, and fsync of the directory. Keys are never reused, so a commit never replaces
bytes the index already points at. An S3-compatible store fits the same protocol: staging
is a local spool file, commit a PUT (multipart for large objects) that returns once stored.
"""

from __future__ import annotations

import io
import mmap
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from telerad.dicom.part10 import dataset_offset
from telerad.errors import NotFound, StorageFailure


class StagedBlob(Protocol):
    """Bytes being received; not visible to readers until committed."""

    size: int

    def write(self, data: bytes | memoryview) -> None:
        """Append ``data``."""
        ...

    def view(self) -> BinaryIO:
        """A seekable read view of what was written so far (for parsing before commit)."""
        ...

    def discard(self) -> None:
        """Forget the staged bytes (rejected input, aborted association)."""
        ...


class BlobStore(Protocol):
    """Durable storage of instance bytes by key."""

    def stage(self) -> StagedBlob:
        """A new, empty staged blob."""
        ...

    def commit(self, staged: StagedBlob, key: str) -> None:
        """Make ``staged`` durable and readable under the fresh ``key``."""
        ...

    def open(self, key: str) -> BinaryIO:
        """Read the blob stored under ``key``."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A file path for zero-copy serving, when the store is a local folder."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob (unknown keys are ignored)."""
        ...

    def keys(self) -> Iterator[str]:
        """Every committed key (for consistency checks)."""
        ...


def new_key(*parts: str) -> str:
    """A key never used before: the given parts, then a random suffix."""
    return "/".join(parts) + f".{secrets.token_hex(6)}.dcm"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _StagedFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640)
        self._map: mmap.mmap | None = None

    def write(self, data: bytes | memoryview) -> None:
        if self._fd is None:
            raise StorageFailure("staged blob already closed")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self.size += written

    def view(self) -> BinaryIO:
        if self._fd is None:
            raise StorageFailure("staged blob already closed")
        if self.size == 0:
            return io.BytesIO(b"")
        self._map = mmap.mmap(self._fd, self.size, access=mmap.ACCESS_READ)
        return self._map  # type: ignore[return-value]

    def close(self, *, sync: bool) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            try:
                if sync:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def discard(self) -> None:
        self.close(sync=False)
        self.path.unlink(missing_ok=True)


class FolderBlobStore:
    """Blobs as files under ``root``; staged files live in ``root/.staging``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / ".staging"
        self.staging.mkdir(parents=True, exist_ok=True)
        self._known_dirs: set[Path] = set()
        self._lock = threading.Lock()

    def clear_staging(self) -> int:
        """Remove staged files left by a crash (never acknowledged); return how many."""
        count = 0
        for path in self.staging.iterdir():
            path.unlink(missing_ok=True)
            count += 1
        return count

    def stage(self) -> _StagedFile:
        return _StagedFile(self.staging / secrets.token_hex(12))

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise NotFound("invalid blob key")
        return self.root / key

    def _ensure_directory(self, directory: Path) -> None:
        """Create ``directory`` and make every new entry on the way durable."""
        if directory in self._known_dirs:
            return
        missing = []
        ancestor = directory
        while not ancestor.exists():
            missing.append(ancestor)
            ancestor = ancestor.parent
        directory.mkdir(parents=True, exist_ok=True)
        for created in reversed(missing):
            _fsync_dir(created.parent)
        with self._lock:
            self._known_dirs.add(directory)

    def commit(self, staged: StagedBlob, key: str) -> None:
        """Rename into place, then fsync the file and its directory.

        The rename comes first so that one journal commit makes the data and the new name
        durable together (ext4 commits every pending change of the file system on fsync;
        the directory's fsync then has little left to do). Until the index refers to the
        key, a blob cut short by a crash here is never served; it is quarantined at the
        next start (telerad.archive.maintenance).
        """
        assert isinstance(staged, _StagedFile)
        target = self._path(key)
        renamed = False
        try:
            self._ensure_directory(target.parent)
            os.rename(staged.path, target)
            renamed = True
            staged.close(sync=True)
            _fsync_dir(target.parent)
        except OSError as exc:
            staged.discard()
            if renamed:
                target.unlink(missing_ok=True)
            raise StorageFailure(f"cannot store blob: {exc.strerror}") from exc

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise NotFound("blob not found") from exc

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self) -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d != ".staging"]
            for name in filenames:
                yield str(Path(dirpath, name).relative_to(self.root))

    def usage(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())


class _StagedMemory:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.buffer.write(data)
        self.size += len(data)

    def view(self) -> BinaryIO:
        return io.BytesIO(self.buffer.getbuffer())

    def discard(self) -> None:
        self.buffer = io.BytesIO()


class MemoryBlobStore:
    """Blobs in a dict, for unit tests."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def stage(self) -> _StagedMemory:
        return _StagedMemory()

    def commit(self, staged: StagedBlob, key: str) -> None:
        assert isinstance(staged, _StagedMemory)
        if key in self.blobs:
            raise StorageFailure("blob key reused")
        self.blobs[key] = staged.buffer.getvalue()

    def open(self, key: str) -> BinaryIO:
        try:
            return io.BytesIO(self.blobs[key])
        except KeyError as exc:
            raise NotFound("blob not found") from exc

    def local_path(self, key: str) -> Path | None:
        return None

    def delete(self, key: str) -> None:
        self.blobs.pop(key, None)

    def keys(self) -> Iterator[str]:
        yield from list(self.blobs)


def same_content(store: BlobStore, key_a: str, key_b: str) -> bool:
    """Whether two committed Part-10 blobs hold the same dataset, byte for byte.

    Two copies of one instance are the same content when their datasets are equal; their
    File Meta Information may differ (another sender's implementation UID or source AE
    title), so the comparison starts after the meta group (PS3.10 §7.1).
    """
    with store.open(key_a) as fa, store.open(key_b) as fb:
        a, b = fa.read(), fb.read()
    return a[dataset_offset(a) :] == b[dataset_offset(b) :]


@contextmanager
def opened(store: BlobStore, key: str) -> Iterator[BinaryIO]:
    """``store.open(key)`` as a context manager."""
    fp = store.open(key)
    try:
        yield fp
    finally:
        fp.close()


def copy_to(store: BlobStore, key: str, out: BinaryIO) -> None:
    """Copy blob ``key`` to ``out``."""
    with opened(store, key) as fp:
        shutil.copyfileobj(fp, out, 1024 * 1024)
