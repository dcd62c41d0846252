"""The blob store's contract, for the local folder and for S3 (moto's server over HTTP),
and what each store adds: the folder's fan-out, S3's bulk ``missing``, presigned
links, its errors and its start-up check."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from flask import Flask

from app.storage import (
    CHUNK,
    LocalBlobStore,
    StorageUnavailable,
    blob_key,
    content_disposition,
    init_storage,
    make_store,
)
from tests.s3server import closed_port_url

DATA = b"%PDF-1.4\n% a small test document\n%%EOF\n"
MiB = 1024 * 1024


def s3_names(store) -> list[str]:
    listed = store.client.list_objects_v2(Bucket=store.bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    """Each contract test runs against both stores."""
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    return request.getfixturevalue("s3_store")


def stored(store) -> list[str]:
    """The names of everything the store holds (files, objects), temporary ones too."""
    if isinstance(store, LocalBlobStore):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    return s3_names(store)


def unknown(text: str = "never stored") -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Reads(io.BytesIO):
    """A stream that remembers how much each read asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int | None] = []

    def read(self, size=-1):
        self.asked.append(size)
        return super().read(size)


class Pipe(io.RawIOBase):
    """A stream that cannot seek (a pipe, a socket), remembering its reads."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.asked: list[int | None] = []

    def readable(self) -> bool:
        return True

    def read(self, size=-1):
        self.asked.append(size)
        return self._data.read(size)


class Breaks(io.RawIOBase):
    """A stream that gives ``good`` bytes, then fails like a dropped upload."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def read(self, size=-1):
        if self.left <= 0:
            raise ConnectionResetError("the client went away")
        n = min(self.left, size if size and size > 0 else self.left)
        self.left -= n
        return b"x" * n


# --- the contract, for both stores ------------------------------------------------------


def test_put_returns_the_sha256_of_the_bytes(store):
    key = store.put(io.BytesIO(DATA))
    assert key == hashlib.sha256(DATA).hexdigest() == blob_key(DATA)
    assert store.put_bytes(DATA) == key


@pytest.mark.parametrize("seekable", [True, False], ids=["seekable", "pipe"])
def test_a_multi_mib_stream_goes_in_and_comes_out_in_chunks(store, seekable):
    data = os.urandom(5 * MiB + 123)
    stream = Reads(data) if seekable else Pipe(data)

    key = store.put(stream)

    assert key == blob_key(data)
    assert all(size is not None and 0 < size <= CHUNK for size in stream.asked)
    assert store.size(key) == len(data)
    with store.open(key) as fh:
        pieces = iter(lambda: fh.read(CHUNK), b"")
        assert b"".join(pieces) == data


def test_put_stores_the_rest_of_the_stream(store):
    stream = io.BytesIO(b"ignored:" + DATA)
    stream.seek(8)

    key = store.put(stream)

    assert key == blob_key(DATA)
    with store.open(key) as fh:
        assert fh.read() == DATA


def test_the_same_content_stored_twice_is_stored_once(store):
    first = store.put_bytes(DATA)
    second = store.put(io.BytesIO(bytes(DATA)))

    assert first == second
    assert [Path(name).name for name in stored(store)] == [first]  # no copy, no temp file


def test_different_bytes_get_different_keys(store):
    keys = {store.put_bytes(DATA), store.put_bytes(DATA + b" "), store.put_bytes(b"")}
    assert len(keys) == 3
    assert len(stored(store)) == 3


def test_open_exists_and_size(store):
    key = store.put_bytes(DATA)
    with store.open(key) as fh:
        assert fh.read() == DATA
    assert store.exists(key) is True
    assert store.size(key) == len(DATA)


def test_an_empty_blob(store):
    key = store.put_bytes(b"")
    assert key == hashlib.sha256(b"").hexdigest()
    assert store.exists(key) and store.size(key) == 0
    with store.open(key) as fh:
        assert fh.read() == b""


def test_an_unknown_key_is_missing_and_cannot_be_opened(store):
    assert store.exists(unknown()) is False
    with pytest.raises(FileNotFoundError):
        store.open(unknown())
    with pytest.raises(FileNotFoundError):
        store.size(unknown())


def test_missing_names_the_absent_keys_of_a_mix(store):
    present = {store.put_bytes(f"document {n}".encode()) for n in range(20)}
    absent = {unknown(f"absent {n}") for n in range(7)}

    assert store.missing([*present, *absent, *absent]) == absent
    assert store.missing(present) == set()
    assert store.missing([]) == set()
    assert store.missing(iter(absent)) == absent


def test_a_failed_put_stores_nothing(store):
    store.put_bytes(DATA)
    before = stored(store)

    with pytest.raises(ConnectionResetError):
        store.put(Breaks(3 * MiB + 5))

    assert stored(store) == before


def test_a_failed_put_leaves_no_spool_file(store, tmp_path, monkeypatch):
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))

    with pytest.raises(ConnectionResetError):
        store.put(Breaks(CHUNK + 1))
    store.put_bytes(DATA)

    assert list(spool.iterdir()) == []


@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        "",
        "abc",
        "../" + "a" * 61,
        "/" + "a" * 63,
        "A" * 64,  # upper case is not a key put() ever returns
        "g" * 64,
        "a" * 63,
        "a" * 65,
        "a" * 62 + "\x00a",
        "a" * 64 + "\n",
    ],
)
def test_an_invalid_key_is_refused(store, key):
    for method in (store.open, store.exists, store.size):
        with pytest.raises(ValueError):
            method(key)
    with pytest.raises(ValueError):
        store.missing([blob_key(DATA), key])
    with pytest.raises(ValueError):
        store.download_url(key, filename="a.pdf", content_type="application/pdf")


# --- the local folder -------------------------------------------------------------------


@pytest.fixture
def local(tmp_path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def test_a_local_blob_lands_in_a_two_level_fan_out(local, tmp_path):
    key = local.put_bytes(DATA)
    path = tmp_path / "blobs" / key[:2] / key[2:4] / key
    assert path.read_bytes() == DATA


def test_nothing_is_written_outside_the_root(local, tmp_path):
    with pytest.raises(ValueError):
        local.open("../" * 10 + "etc/passwd")
    assert not (tmp_path / "etc").exists()
    local.put_bytes(DATA)
    assert {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()} == {
        "blobs"
    }


def test_the_local_store_has_no_download_url(local):
    key = local.put_bytes(DATA)
    assert local.download_url(key, filename="a.pdf", content_type="application/pdf") is None


# --- S3 -----------------------------------------------------------------------------------


def test_an_s3_blob_is_the_object_ab_cd_key(s3_store):
    key = s3_store.put_bytes(DATA)
    assert s3_names(s3_store) == [f"{key[:2]}/{key[2:4]}/{key}"]


def test_a_large_s3_blob_goes_up_in_parts_and_only_once(s3_store, monkeypatch):
    from app.storage.s3 import S3BlobStore

    store = S3BlobStore(
        s3_store.client, s3_store.bucket, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB
    )
    data = os.urandom(11 * MiB + 7)
    calls = []
    store.client.meta.events.register(
        "before-call.s3", lambda model, **kw: calls.append(model.name)
    )

    key = store.put(io.BytesIO(data))
    assert "CreateMultipartUpload" in calls and calls.count("UploadPart") == 3
    calls.clear()
    assert store.put(io.BytesIO(data)) == key

    assert calls == ["HeadObject"]  # already there: not uploaded again
    assert store.size(key) == len(data)
    with store.open(key) as fh:
        assert fh.read() == data


def test_missing_lists_pages_instead_of_asking_once_per_key(s3_store, monkeypatch):
    monkeypatch.setattr(type(s3_store), "list_page_size", 10)
    present = sorted(s3_store.put_bytes(f"blob {n}".encode()) for n in range(60))
    absent = {unknown(f"absent {n}") for n in range(15)}
    calls = []
    s3_store.client.meta.events.register(
        "before-call.s3", lambda model, **kw: calls.append(model.name)
    )

    assert s3_store.missing([*present, *absent]) == absent
    assert set(calls) == {"ListObjectsV2"}
    assert len(calls) <= 60 / 10 + 1  # a walk over the pages, not one request per key
    calls.clear()

    # A few keys far apart: a jump to each, never the whole listing.
    assert s3_store.missing([present[0], present[30], present[59]]) == set()
    assert len(calls) <= 3


def test_download_url_is_a_working_presigned_link(s3_store):
    content = DATA + b"% presigned\n"
    key = s3_store.put_bytes(content)

    url = s3_store.download_url(key, filename="factuur 2024.pdf", content_type="application/pdf")

    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == content
        assert response.headers["Content-Type"] == "application/pdf"
        assert response.headers["Content-Disposition"] == 'attachment; filename="factuur 2024.pdf"'


def test_download_url_can_serve_inline_and_keeps_a_non_ascii_name(s3_store):
    key = s3_store.put_bytes(DATA)

    url = s3_store.download_url(
        key, filename="bon café €.png", content_type="image/png", as_attachment=False
    )

    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"] == "image/png"
        assert response.headers["Content-Disposition"] == content_disposition(
            "bon café €.png", as_attachment=False
        )


def test_content_disposition_has_an_ascii_fallback_and_the_exact_name():
    assert content_disposition("a.pdf") == 'attachment; filename="a.pdf"'
    assert content_disposition('x"y\\.pdf', as_attachment=False) == (
        "inline; filename=\"xy.pdf\"; filename*=UTF-8''x%22y%5C.pdf"
    )
    assert content_disposition("café.pdf") == (
        "attachment; filename=\"caf_.pdf\"; filename*=UTF-8''caf%C3%A9.pdf"
    )


def test_an_unreachable_s3_is_storage_unavailable_within_seconds(fake_aws_credentials, monkeypatch):
    from app.storage.s3 import S3BlobStore, s3_client

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    store = S3BlobStore(s3_client(closed_port_url()), "bucket")  # the app's own settings
    key = blob_key(DATA)
    started = time.monotonic()
    for call in (
        lambda: store.put_bytes(DATA),
        lambda: store.open(key),
        lambda: store.exists(key),
        lambda: store.size(key),
        lambda: store.missing([key]),
    ):
        with pytest.raises(StorageUnavailable) as caught:
            call()
        message = str(caught.value)
        assert "EndpointConnectionError" in message and "'bucket'" in message
        assert "very-secret-value" not in message and "testing" not in message
    assert time.monotonic() - started < 30


def test_a_missing_bucket_is_storage_unavailable(s3_server):
    from app.storage.s3 import S3BlobStore, s3_client

    store = S3BlobStore(s3_client(s3_server), "no-such-bucket")

    with pytest.raises(StorageUnavailable, match="refused: NoSuchBucket"):
        store.put_bytes(DATA)
    with pytest.raises(StorageUnavailable, match="does not exist"):
        store.check()


# --- choosing the store at start-up -------------------------------------------------------


def app_with(**config) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    init_storage(app)
    return app


def test_the_local_store_is_the_default(tmp_path):
    app = app_with(BLOB_ROOT=str(tmp_path))
    assert isinstance(app.extensions["blob_store"], LocalBlobStore)
    assert app.extensions["blob_store"].root == tmp_path


def test_s3_is_chosen_by_blob_store_and_checked_at_start_up(s3_server, s3_bucket):
    from app.storage.s3 import S3BlobStore

    app = app_with(
        BLOB_STORE="s3", S3_BUCKET=s3_bucket, S3_ENDPOINT_URL=s3_server, S3_PRESIGN_SECONDS=30
    )

    store = app.extensions["blob_store"]
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.presign_seconds) == (s3_bucket, 30)
    assert store.exists(store.put_bytes(DATA))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"BLOB_STORE": "ftp"}, "BLOB_STORE must be 'local' or 's3', not 'ftp'"),
        ({"BLOB_STORE": "s3"}, "BLOB_STORE=s3 needs S3_BUCKET"),
        ({"BLOB_STORE": "s3", "S3_BUCKET": ""}, "BLOB_STORE=s3 needs S3_BUCKET"),
    ],
)
def test_a_wrong_blob_store_setting_stops_the_start(config, message):
    with pytest.raises(RuntimeError, match=message):
        app_with(BLOB_ROOT="/nonexistent", **config)


def test_a_bucket_that_does_not_exist_stops_the_start(s3_server):
    with pytest.raises(RuntimeError, match="'no-such-bucket' does not exist"):
        app_with(BLOB_STORE="s3", S3_BUCKET="no-such-bucket", S3_ENDPOINT_URL=s3_server)


def test_an_unreachable_s3_stops_the_start_within_seconds(fake_aws_credentials):
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="cannot be used: .*EndpointConnectionError"):
        app_with(BLOB_STORE="s3", S3_BUCKET="bucket", S3_ENDPOINT_URL=closed_port_url())
    assert time.monotonic() - started < 10


def test_the_start_up_check_can_be_skipped(fake_aws_credentials):
    store = make_store(
        {
            "BLOB_STORE": "s3",
            "S3_BUCKET": "bucket",
            "S3_ENDPOINT_URL": closed_port_url(),
            "BLOB_STORE_CHECK": False,
        }
    )
    assert store.bucket == "bucket"


# --- many blobs made durable at once ------------------------------------------------------


def test_blobs_stored_in_a_deferred_sync_block_are_there_whole_afterwards(store):
    contents = [f"document {n}".encode() * 100 for n in range(20)]
    with store.deferred_sync():
        keys = [store.put(io.BytesIO(data)) for data in contents]
    for key, data in zip(keys, contents, strict=True):
        with store.open(key) as stream:
            assert stream.read() == data
    assert not [name for name in stored(store) if ".tmp-" in name]


def test_a_deferred_block_flushes_once_instead_of_once_per_blob(tmp_path, monkeypatch):
    import app.storage.local as local

    store = LocalBlobStore(tmp_path / "blobs")
    fsyncs, flushes = [], []
    real_fsync = os.fsync
    monkeypatch.setattr(local.os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    real_sync_all = local._sync_all
    monkeypatch.setattr(
        local,
        "_sync_all",
        lambda root, paths: (flushes.append(len(paths)), real_sync_all(root, paths)),
    )
    store.put_bytes(b"one on its own")
    assert len(fsyncs) == 1, "an ordinary put is durable by itself"

    fsyncs.clear()
    with store.deferred_sync():
        for n in range(30):
            store.put_bytes(f"blob {n}".encode())
        assert flushes == [], "nothing is flushed inside the block"
    assert flushes == [30], "one flush for the whole block, naming every new blob"
    # syncfs flushes the filesystem in one call; without it, each file is synced at the end.
    assert fsyncs == [] or len(fsyncs) == 30
