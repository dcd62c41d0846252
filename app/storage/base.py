"""The blob store's contract: content-addressed keys, the protocol, its errors.

A blob is named by the hex SHA-256 of its bytes, so the same file is stored once and
a document is copied by copying its key. Every store takes its input as a stream and
hands it back as one, in chunks of ``CHUNK`` bytes, so a file of any size passes
through in constant memory.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol

CHUNK = 1024 * 1024  # bytes read from a stream at a time
_KEY = re.compile(r"[0-9a-f]{64}")


class StorageUnavailable(Exception):
    """The blob store cannot be reached or refuses the request right now.

    The message names the operation and what went wrong (an error code, an exception
    class, the endpoint), never credentials or a signed URL, so it may be logged.
    """


class BlobStore(Protocol):
    def put(self, fileobj: BinaryIO) -> str:
        """Store the rest of ``fileobj``, read in chunks while it is hashed; return
        its key (hex SHA-256). Storing the same bytes twice is harmless. When it
        fails, nothing is stored under the key (no half-written blob)."""

    def put_bytes(self, data: bytes) -> str:
        """``put`` for small content already in memory (generated files, tests)."""

    def deferred_sync(self) -> AbstractContextManager[None]:
        """A block whose puts are made durable together when it ends (one flush instead
        of one per blob); rows naming them are committed only after the block."""

    def open(self, key: str) -> BinaryIO:
        """A readable binary stream of the blob; ``FileNotFoundError`` if unknown."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int:
        """The blob's length in bytes; ``FileNotFoundError`` if unknown."""

    def missing(self, keys: Iterable[str]) -> set[str]:
        """The keys among ``keys`` that are not stored, checked in bulk (an object
        store is not asked once per key)."""

    def download_url(
        self, key: str, *, filename: str, content_type: str, as_attachment: bool = True
    ) -> str | None:
        """A short-lived URL the browser can fetch the blob from directly, served with
        ``content_type`` and ``filename`` (as an attachment, or inline); ``None`` when
        the store has none and the application must stream the file itself."""


def blob_key(data: bytes) -> str:
    """The key ``put_bytes(data)`` returns."""
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    """``key`` if it is a blob key (64 lower-case hex digits), else ``ValueError``; a
    key is never a path, so no key reaches outside the store."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError("not a blob key")
    return key


def fan_out(key: str) -> str:
    """The key's place in a two-level fan-out, ``ab/cd/abcd…``: at most 65,536 folders
    of a few files each, and an order that is the keys' own order."""
    check_key(key)
    return f"{key[:2]}/{key[2:4]}/{key}"


def content_disposition(filename: str, *, as_attachment: bool = True) -> str:
    """A ``Content-Disposition`` value for ``filename`` (RFC 6266): an ASCII fallback
    and, when the name is not plain ASCII, the exact UTF-8 name as ``filename*``."""
    from urllib.parse import quote

    kind = "attachment" if as_attachment else "inline"
    ascii_name = filename.encode("ascii", "replace").decode("ascii").replace("?", "_")
    ascii_name = "".join(c for c in ascii_name if c.isprintable() and c not in '"\\')
    value = f'{kind}; filename="{ascii_name or "document"}"'
    if ascii_name != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value
