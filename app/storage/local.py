"""Blobs in a local folder: one machine, or a folder every host mounts."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import io
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from app.storage.base import CHUNK, check_key, fan_out


class LocalBlobStore:
    """Blobs in ``root/ab/cd/<sha256>``.

    ``put`` writes into a temporary file in ``root`` while it hashes, flushes it to
    disk (``fsync``), and only then renames it to its key with ``os.replace``, which
    is atomic on one filesystem: a blob is there whole or not at all, a crash leaves at
    most a ``.tmp-*`` file in ``root`` (never under a key), and two processes storing
    the same bytes at once both succeed with the same file. The fsync is what makes a
    blob outlive a power cut once its document row is committed; ``fsync=False`` drops
    it (tests, throwaway data).
    """

    def __init__(self, root: str | os.PathLike, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self._deferred = threading.local()

    @contextlib.contextmanager
    def deferred_sync(self) -> Iterator[None]:
        """Store many blobs and make them durable once, at the end of the block: one
        flush of the store's filesystem (``syncfs``) instead of an ``fsync`` per file,
        which for 20,000 small files costs far more than writing them. The caller must
        not commit rows naming these blobs inside the block."""
        if not self.fsync or getattr(self._deferred, "active", False):
            yield
            return
        self._deferred.active = True
        written: list[Path] = []
        self._deferred.written = written
        try:
            yield
        finally:
            self._deferred.active = False
            self._deferred.written = None
        _sync_all(self.root, written)

    def _path(self, key: str) -> Path:
        return self.root / fan_out(key)

    def put(self, fileobj: BinaryIO) -> str:
        try:
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        except FileNotFoundError:  # the first blob: make the root (folders cost, see below)
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                while chunk := fileobj.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                deferred = getattr(self._deferred, "active", False)
                if self.fsync and not deferred:
                    out.flush()
                    os.fsync(out.fileno())
            key = digest.hexdigest()
            path = self._path(key)
            if path.is_file():  # the same bytes are there already
                os.unlink(tmp)
            else:
                try:
                    os.replace(tmp, path)
                except FileNotFoundError:
                    # Its fan-out folder is new: a store makes each of its 65,536 once.
                    path.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp, path)
                if getattr(self._deferred, "active", False):
                    self._deferred.written.append(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def put_bytes(self, data: bytes) -> str:
        return self.put(io.BytesIO(data))

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def missing(self, keys: Iterable[str]) -> set[str]:
        return {key for key in set(keys) if not self._path(key).is_file()}

    def download_url(
        self, key: str, *, filename: str, content_type: str, as_attachment: bool = True
    ) -> str | None:
        check_key(key)
        return None  # the application streams the file (send_file)


def _sync_all(root: Path, paths: list[Path]) -> None:
    """Make ``paths`` durable: ``syncfs`` on ``root``'s filesystem where the C library
    has it (Linux), else an ``fsync`` of each file."""
    if not paths:
        return
    libc = ctypes.util.find_library("c")
    syncfs = getattr(ctypes.CDLL(libc, use_errno=True), "syncfs", None) if libc else None
    if syncfs is not None:
        fd = os.open(root, os.O_RDONLY)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in paths:
        with path.open("rb") as f:
            os.fsync(f.fileno())
