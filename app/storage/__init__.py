"""Content-addressed blob storage behind one small, streaming interface.

``BLOB_STORE`` chooses the store when the app is created: ``local`` keeps blobs in the
folder ``BLOB_ROOT`` (one machine); ``s3`` keeps them in the bucket ``S3_BUCKET`` of an
S3-compatible object store at ``S3_ENDPOINT_URL`` (None: AWS), for several hosts. The
S3 store is checked at start-up (one ``HeadBucket``), so a wrong bucket or an
unreachable store stops the app from starting instead of failing the first upload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app

from app.storage.base import (
    CHUNK,
    BlobStore,
    StorageUnavailable,
    blob_key,
    check_key,
    content_disposition,
    fan_out,
)
from app.storage.local import LocalBlobStore

if TYPE_CHECKING:
    from app.storage.s3 import S3BlobStore

__all__ = [
    "CHUNK",
    "BlobStore",
    "LocalBlobStore",
    "S3BlobStore",
    "StorageUnavailable",
    "blob_key",
    "blob_store",
    "check_key",
    "content_disposition",
    "fan_out",
    "init_storage",
    "make_store",
    "open_seekable",
]


def __getattr__(name: str):
    # boto3 is imported only by apps (and tests) that use S3: it costs a few hundred
    # milliseconds at start-up, on every CLI command of a local-folder install.
    if name == "S3BlobStore":
        from app.storage.s3 import S3BlobStore

        return S3BlobStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_store(config) -> BlobStore:
    """The blob store ``config`` (a Flask config or any mapping) asks for; a
    ``RuntimeError`` saying what is wrong when it cannot be used."""
    kind = config.get("BLOB_STORE") or "local"
    if kind == "local":
        return LocalBlobStore(config["BLOB_ROOT"])
    if kind != "s3":
        raise RuntimeError(f"BLOB_STORE must be 'local' or 's3', not {kind!r}.")
    bucket = config.get("S3_BUCKET")
    if not bucket:
        raise RuntimeError("BLOB_STORE=s3 needs S3_BUCKET, the name of an existing bucket.")
    from app.storage.s3 import S3BlobStore, s3_client

    store = S3BlobStore(
        s3_client(config.get("S3_ENDPOINT_URL") or None),
        bucket,
        presign_seconds=int(config.get("S3_PRESIGN_SECONDS") or 60),
    )
    if config.get("BLOB_STORE_CHECK") is not False:
        try:
            store.check()
        except StorageUnavailable as exc:
            raise RuntimeError(f"BLOB_STORE=s3 cannot be used: {exc}.") from exc
    return store


def init_storage(app: Flask) -> None:
    app.extensions["blob_store"] = make_store(app.config)


def blob_store() -> BlobStore:
    """The application's blob store."""
    return current_app.extensions["blob_store"]


def open_seekable(key: str):
    """A seekable binary file of the blob ``key`` (``zipfile`` needs seek): the blob
    file itself in a local store; from an object store, a temporary file the blob is
    copied into in chunks (deleted when closed). The caller closes it."""
    import tempfile

    stream = blob_store().open(key)
    seekable = getattr(stream, "seekable", None)
    if callable(seekable) and seekable():
        return stream
    copy = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller
    try:
        with stream:
            while chunk := stream.read(CHUNK):
                copy.write(chunk)
        copy.seek(0)
    except BaseException:
        copy.close()
        raise
    return copy
