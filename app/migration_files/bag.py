"""A zipped BagIt 1.0 bag (RFC 8493) written as a stream of byte chunks.

``write_bag`` yields the zip as it is built: the first bytes at once, memory bounded by
about one ``CHUNK`` whatever the number or size of the files (``zipfile`` on a writer
that cannot seek: each entry's sizes and CRC follow it in a data descriptor; ZIP64 for
large entries and archives). Payload files are stored as they are (PDFs and images do not
compress); generated text (CSVs, tag files) is deflated.

The layout is ``app.migration_files.format``'s: the payload first, then
``manifest-sha256.txt``, ``bag-info.txt`` (with ``Payload-Oxum``), ``bagit.txt`` and
``tagmanifest-sha256.txt`` at the end. The writer knows no domain: the caller hands it
the payload entries, each named below ``data/``.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from app.migration_files import format as fmt
from app.storage.base import CHUNK

# Entries this large get ZIP64 headers up front (a known size is only a hint to zipfile;
# half the limit leaves room for a blob that turns out larger than recorded).
LARGE_ENTRY = zipfile.ZIP64_LIMIT // 2
# A generated entry of unknown size is spooled to a temporary file past this many bytes.
SPOOL_IN_MEMORY = 4 * CHUNK


class BagError(Exception):
    """A payload entry is not what it claimed (its bytes do not match its hash or size)."""


@dataclass(frozen=True)
class PayloadEntry:
    """One payload file: ``name`` below ``data/`` (``files/<sha256>.pdf``).

    ``chunks()`` gives its bytes in pieces. With ``sha256`` and ``size`` known (a blob:
    its key is its hash) the bytes go straight into the zip and are checked as they
    pass; without them (generated CSVs) they are spooled first, hashed and counted, so
    the zip entry's size is known before it is written.
    """

    name: str
    chunks: Callable[[], Iterable[bytes]]
    sha256: str | None = None
    size: int | None = None
    compress: bool = False


class _Sink:
    """The zip's output: an unseekable writer whose bytes the generator hands on."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> Iterator[bytes]:
        if self._parts:
            data = b"".join(self._parts)
            self._parts.clear()
            if data:
                yield data


def _read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def stream_chunks(open_stream: Callable[[], BinaryIO]) -> Callable[[], Iterator[bytes]]:
    """``chunks`` for a ``PayloadEntry`` read from a stream opened when its turn comes
    (a blob: ``lambda: store.open(key)``), in ``CHUNK`` pieces, closed afterwards."""

    def chunks() -> Iterator[bytes]:
        stream = open_stream()
        try:
            yield from _read_chunks(stream)
        finally:
            stream.close()

    return chunks


def _zipinfo(name: str, compress: bool, size: int | None) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=time.gmtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    if size is not None:
        info.file_size = size
    return info


def _bag_info(info: Mapping[str, str], payload_bytes: int, payload_files: int) -> bytes:
    values = dict(info)
    values[fmt.INFO_OXUM] = f"{payload_bytes}.{payload_files}"
    lines = []
    for key, value in values.items():
        # A tag value is one line; a newline in a name would start a new key.
        clean = " ".join(str(value).split())
        lines.append(f"{key}: {clean}\n")
    return "".join(lines).encode("utf-8")


def write_bag(
    bag_name: str, info: Mapping[str, str], payload: Iterable[PayloadEntry]
) -> Iterator[bytes]:
    """The zip of the bag ``bag_name`` (its one top folder) as byte chunks.

    ``info`` are the ``bag-info.txt`` values (``Payload-Oxum`` is added); ``payload``
    is read lazily, one entry at a time. A payload entry whose bytes do not match its
    declared hash or size stops the stream with ``BagError``: a bag that says what is
    not there is never finished.
    """
    sink = _Sink()
    prefix = f"{bag_name}/"
    payload_bytes = payload_files = 0
    # The manifest grows by one line per file: spooled, so 100,000 files stay cheap.
    manifest = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    try:
        with zipfile.ZipFile(sink, mode="w", allowZip64=True) as archive:
            for entry in payload:
                name = "data/" + entry.name
                if entry.sha256 is None or entry.size is None:
                    digest, size = yield from _write_generated(archive, sink, prefix + name, entry)
                else:
                    digest, size = yield from _write_known(archive, sink, prefix + name, entry)
                manifest.write(f"{digest}  {name}\n".encode())
                payload_bytes += size
                payload_files += 1
            yield from sink.drain()

            tags: list[tuple[str, str]] = []
            manifest.seek(0)
            digest, _size = yield from _write_stream(
                archive, sink, prefix + fmt.MANIFEST, manifest, compress=True
            )
            tags.append((digest, fmt.MANIFEST))
            for name, data in (
                (fmt.BAG_INFO, _bag_info(info, payload_bytes, payload_files)),
                (fmt.BAGIT, fmt.BAGIT_TXT.encode("utf-8")),
            ):
                archive.writestr(_zipinfo(prefix + name, True, len(data)), data)
                tags.append((hashlib.sha256(data).hexdigest(), name))
                yield from sink.drain()
            tagmanifest = "".join(f"{d}  {n}\n" for d, n in sorted(tags, key=lambda t: t[1]))
            archive.writestr(
                _zipinfo(prefix + fmt.TAGMANIFEST, True, len(tagmanifest)),
                tagmanifest.encode("utf-8"),
            )
        yield from sink.drain()
    finally:
        manifest.close()


def _write_known(archive: zipfile.ZipFile, sink: _Sink, name: str, entry: PayloadEntry):
    """Stream an entry of known hash and size into the zip, checking both as it passes."""
    hasher = hashlib.sha256()
    size = 0
    info = _zipinfo(name, entry.compress, entry.size)
    with archive.open(info, mode="w", force_zip64=entry.size > LARGE_ENTRY) as out:
        for chunk in entry.chunks():
            hasher.update(chunk)
            size += len(chunk)
            out.write(chunk)
            yield from sink.drain()
    digest = hasher.hexdigest()
    if digest != entry.sha256 or size != entry.size:
        raise BagError(f"{entry.name}: the stored bytes do not match their hash or size")
    yield from sink.drain()
    return digest, size


def _write_generated(archive: zipfile.ZipFile, sink: _Sink, name: str, entry: PayloadEntry):
    """Spool a generated entry (hashing and counting it), then copy it into the zip."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        for chunk in entry.chunks():
            spool.write(chunk)
        spool.seek(0)
        return (yield from _write_stream(archive, sink, name, spool, compress=entry.compress))


def _write_stream(
    archive: zipfile.ZipFile, sink: _Sink, name: str, stream: BinaryIO, *, compress: bool
):
    """Copy the rest of a seekable ``stream`` into the zip; its hash and size."""
    start = stream.tell()
    stream.seek(0, 2)
    size = stream.tell() - start
    stream.seek(start)
    hasher = hashlib.sha256()
    info = _zipinfo(name, compress, size)
    with archive.open(info, mode="w", force_zip64=size > LARGE_ENTRY) as out:
        for chunk in _read_chunks(stream):
            hasher.update(chunk)
            out.write(chunk)
            yield from sink.drain()
    yield from sink.drain()
    return hasher.hexdigest(), size
