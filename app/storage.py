"""Content-addressed blob storage behind a small interface.

Files are named by the SHA-256 of their bytes, so the same file is stored once and
a document can be copied by copying its key. ``LocalBlobStore`` keeps them in a
folder; an S3-compatible store can implement the same four methods.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

from flask import Flask, current_app


class BlobStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store ``data``; return its key (hex SHA-256). Storing twice is harmless."""

    def open(self, key: str) -> BinaryIO:
        """A readable binary file of the blob; ``FileNotFoundError`` if unknown."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...


def blob_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalBlobStore:
    """Blobs in ``root/ab/cd/<sha256>``, written atomically."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError("not a blob key")
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> str:
        key = blob_key(data)
        path = self._path(key)
        if path.exists():
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size


def init_storage(app: Flask) -> None:
    app.extensions["blob_store"] = LocalBlobStore(app.config["BLOB_ROOT"])


def blob_store() -> BlobStore:
    """The application's blob store."""
    return current_app.extensions["blob_store"]
