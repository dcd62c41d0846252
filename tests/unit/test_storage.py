"""app.storage.LocalBlobStore in a temporary folder."""

from __future__ import annotations

import hashlib

import pytest

from app.storage import LocalBlobStore, blob_key

DATA = b"%PDF-1.4\n% a small test document\n%%EOF\n"


@pytest.fixture
def store(tmp_path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def _files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_returns_the_sha256_of_the_bytes(store):
    key = store.put(DATA)
    assert key == hashlib.sha256(DATA).hexdigest() == blob_key(DATA)


def test_blob_lands_in_a_two_level_fan_out(store, tmp_path):
    key = store.put(DATA)
    path = tmp_path / "blobs" / key[:2] / key[2:4] / key
    assert path.read_bytes() == DATA


def test_same_bytes_are_stored_once(store, tmp_path):
    first = store.put(DATA)
    second = store.put(bytes(DATA))
    assert first == second
    files = _files(tmp_path / "blobs")
    assert [f.name for f in files] == [first]  # no second copy, no leftover temp file


def test_different_bytes_get_different_keys(store, tmp_path):
    keys = {store.put(DATA), store.put(DATA + b" "), store.put(b"")}
    assert len(keys) == 3
    assert len(_files(tmp_path / "blobs")) == 3


def test_open_exists_and_size(store):
    key = store.put(DATA)
    with store.open(key) as fh:
        assert fh.read() == DATA
    assert store.exists(key) is True
    assert store.size(key) == len(DATA)


def test_empty_blob(store):
    key = store.put(b"")
    assert key == hashlib.sha256(b"").hexdigest()
    assert store.exists(key) and store.size(key) == 0


def test_unknown_key(store):
    unknown = hashlib.sha256(b"never stored").hexdigest()
    assert store.exists(unknown) is False
    with pytest.raises(FileNotFoundError):
        store.open(unknown)
    with pytest.raises(FileNotFoundError):
        store.size(unknown)


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
    ],
)
def test_invalid_key_is_refused(store, key):
    for method in (store.open, store.exists, store.size):
        with pytest.raises(ValueError):
            method(key)


def test_nothing_is_written_outside_the_root(store, tmp_path):
    with pytest.raises(ValueError):
        store.open("../" * 10 + "etc/passwd")
    assert not (tmp_path / "etc").exists()
    store.put(DATA)
    assert {p.relative_to(tmp_path).parts[0] for p in _files(tmp_path)} == {"blobs"}
