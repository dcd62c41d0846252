"""The bytes of an upload in progress: one file ``<token>.part`` in ``UPLOAD_ROOT``.

A chunk is appended by streaming the request body in reads of ``CHUNK`` (1 MiB), so
memory stays constant whatever the size. While a chunk streams, the spool file is held
with an exclusive ``flock`` (non-blocking: a second PATCH of the same upload is told
"busy" at once), so two chunks never interleave, without a database transaction being
held open for the minutes a chunk of a slow connection takes. ``UPLOAD_ROOT`` must be a
volume every host serving uploads shares (Linux NFS clients lock with ``flock`` too).

When the last byte has arrived the file becomes a blob: for a local blob store on the
same filesystem it is hashed and renamed into place (no copy); otherwise it is handed
to ``store.put``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flask import current_app

from app.storage import CHUNK, LocalBlobStore, blob_store, fan_out


class SpoolBusy(Exception):
    """Another request is writing to this upload right now."""


class ChunkTooLarge(Exception):
    """The chunk would carry the upload past its declared length; nothing was kept."""


class ChecksumMismatch(Exception):
    """The chunk's bytes do not match its ``Upload-Checksum``; nothing was kept."""


class SpoolShort(Exception):
    """The spool file holds fewer bytes than the recorded offset: chunks acknowledged
    just before a power cut never reached the disk. ``size`` is what it holds."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def size(token: str) -> int:
    return path_for(token).stat().st_size


_SYNC_FILE_RANGE_WRITE = 2  # start write-back of dirty pages, do not wait


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing this range to disk now, without waiting for it
    (Linux ``sync_file_range``), so the disk works while the next chunk arrives and the
    final sync has little left to do. Nothing where the C library lacks it."""
    global _sync_file_range
    if _sync_file_range is None:
        libc = ctypes.util.find_library("c")
        call = getattr(ctypes.CDLL(libc, use_errno=True), "sync_file_range", None) if libc else None
        if call is not None:
            call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        _sync_file_range = call or False
    if _sync_file_range and length:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


_sync_file_range = None


@dataclass(frozen=True)
class Written:
    """What one chunk added: the new end of the file, and whether the body arrived whole
    (False: the client went away before its Content-Length; the bytes that came stay)."""

    offset: int
    whole: bool


def root() -> Path:
    return Path(current_app.config.get("UPLOAD_ROOT") or Path(current_app.instance_path, "uploads"))


def path_for(token: str) -> Path:
    # Tokens are ``secrets.token_urlsafe`` output: letters, digits, ``-`` and ``_`` only.
    if not token or not all(c.isalnum() or c in "-_" for c in token):
        raise ValueError("not an upload token")
    return root() / f"{token}.part"


def create(token: str) -> None:
    folder = root()
    folder.mkdir(parents=True, exist_ok=True)
    path_for(token).touch(exist_ok=False)


def remove(token: str) -> None:
    path_for(token).unlink(missing_ok=True)


def parse_checksum(header: str | None) -> bytes | None:
    """The digest of ``Upload-Checksum: sha256 <base64>``; ``ValueError`` when the header
    names another algorithm or is not base64 of a SHA-256."""
    if header is None:
        return None
    algorithm, _, value = header.strip().partition(" ")
    if algorithm.lower() != "sha256":
        raise ValueError("unsupported checksum algorithm")
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("checksum is not base64") from None
    if len(digest) != hashlib.sha256().digest_size:
        raise ValueError("not a sha256 digest")
    return digest


@contextlib.contextmanager
def locked(token: str) -> Iterator[BinaryIO]:
    """The spool file, open for writing and held exclusively; ``SpoolBusy`` when
    another request holds it, ``FileNotFoundError`` when it is gone."""
    fd = os.open(path_for(token), os.O_RDWR)
    file = os.fdopen(fd, "r+b", buffering=0)
    try:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise SpoolBusy() from None
            raise
        if os.fstat(file.fileno()).st_nlink > 1:
            # Linked into the blob store already (a completion whose row was not
            # committed): write on a copy, never on the blob's own bytes.
            file = _unlinked_copy(file, token)
        yield file
    finally:
        file.close()  # closing releases the lock


def _unlinked_copy(file: BinaryIO, token: str) -> BinaryIO:
    """Replace the spool file by a locked copy of itself and return the copy."""
    path = path_for(token)
    tmp = path.with_name(f".{token}.copy")
    copy = open(tmp, "w+b", buffering=0)  # noqa: SIM115 - handed to the caller
    try:
        fcntl.flock(copy.fileno(), fcntl.LOCK_EX)
        file.seek(0)
        while chunk := file.read(CHUNK):
            copy.write(chunk)
        os.fsync(copy.fileno())
        os.replace(tmp, path)
    except BaseException:
        copy.close()
        tmp.unlink(missing_ok=True)
        raise
    file.close()
    return copy


def append(
    file: BinaryIO,
    stream: BinaryIO,
    *,
    offset: int,
    room: int,
    checksum: bytes | None = None,
) -> Written:
    """Write ``stream`` to ``file`` at ``offset`` (the upload's committed offset; any
    bytes after it, left by a request that died before it could record them, are cut
    first), at most ``room`` bytes.

    More than ``room`` bytes, or a ``checksum`` that does not match, cut the file back to
    ``offset`` and raise (nothing of the chunk is kept). A body that ends early (the
    client went away) keeps what arrived, unless a checksum was given, which an
    incomplete chunk cannot be checked against.
    """
    from werkzeug.exceptions import ClientDisconnected

    held = os.fstat(file.fileno()).st_size
    if held < offset:
        raise SpoolShort(held)
    file.truncate(offset)
    file.seek(offset)
    digest = hashlib.sha256() if checksum is not None else None
    written = 0
    whole = True
    try:
        while True:
            try:
                data = stream.read(CHUNK)
            except ClientDisconnected:
                whole = False
                break
            if not data:
                break
            if written + len(data) > room:
                raise ChunkTooLarge()
            file.write(data)
            if digest is not None:
                digest.update(data)
            written += len(data)
        if digest is not None and (not whole or digest.digest() != checksum):
            raise ChecksumMismatch()
        # Acknowledged once written and its write-back started; ``to_blob`` syncs the
        # whole file before it becomes a blob, and after a power cut ``SpoolShort``
        # sets the offset back to what reached the disk.
        _start_writeback(file.fileno(), offset, written)
    except BaseException:
        file.truncate(offset)
        raise
    return Written(offset=offset + written, whole=whole)


def to_blob(token: str) -> str:
    """Store the whole spool file as a blob and return its key; the spool file stays
    (the caller removes it once the upload row says complete)."""
    path = path_for(token)
    store = blob_store()
    if isinstance(store, LocalBlobStore):
        key = _rename_into(store, path)
        if key is not None:
            return key
    with path.open("rb") as file:
        return store.put(file)


def _rename_into(store: LocalBlobStore, path: Path) -> str | None:
    """The local store's fast path: hash the spool file and hard-link it under its key
    (same filesystem only; ``None`` otherwise). A gigabyte is read once instead of read,
    written and synced again."""
    store.root.mkdir(parents=True, exist_ok=True)
    if os.stat(store.root).st_dev != os.stat(path).st_dev:
        return None
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
        os.fsync(file.fileno())  # on disk before any row names it as a blob
    key = digest.hexdigest()
    target = store.root / fan_out(key)
    if target.is_file():
        return key
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # A link, not a rename: the spool file stays until the row says complete, and a
        # blob appears whole or not at all.
        os.link(path, target)
    except FileExistsError:
        pass
    except OSError:
        return None  # a filesystem without hard links: copy instead
    return key
