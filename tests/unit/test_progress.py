"""app.progress: the same contract for the file store and the Redis store, the Redis
store's expiry and namespace, an unreachable Redis that costs no time and raises
nothing, and choosing the store by ``PROGRESS_STORE``.

Redis runs at 127.0.0.1:6379 (here and in CI); these tests use database 13 only and
empty only that database.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
import redis
from flask import Flask

from app.progress import (
    FileProgressStore,
    RedisProgressStore,
    init_progress,
    make_progress_store,
    progress_store,
)

REDIS_URL = "redis://127.0.0.1:6379/13"
DAY = 24 * 3600


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    """Database 13, empty before and after the test."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(params=["file", "redis"])
def make_store(request, tmp_path):
    """``make_store()``: a new store of the parametrized kind on the same place (a second
    instance stands for another process reading what this one wrote)."""
    if request.param == "file":
        return lambda: FileProgressStore(tmp_path / "progress")
    request.getfixturevalue("redis_db")
    return lambda: RedisProgressStore(REDIS_URL)


@pytest.fixture
def store(make_store):
    return make_store()


# --- the contract, for both stores ------------------------------------------------------


def test_an_unknown_key_reads_as_none(store):
    assert store.read("item-1") is None


def test_a_report_is_read_back_as_done_and_total(store):
    store.report("item-1", 0, 30000)
    assert store.read("item-1") == (0, 30000)
    store.report("item-1", 5000, 30000)
    assert store.read("item-1") == (5000, 30000)


def test_another_instance_reads_what_one_reported(make_store):
    writer, reader = make_store(), make_store()
    writer.report("item-7", 3, 9)
    assert reader.read("item-7") == (3, 9)
    writer.clear("item-7")
    assert reader.read("item-7") is None


def test_keys_are_independent(store):
    store.report("item-1", 1, 10)
    store.report("item-2", 2, 20)
    store.clear("item-1")
    assert store.read("item-1") is None
    assert store.read("item-2") == (2, 20)


def test_clearing_an_unknown_key_is_harmless(store):
    store.clear("item-404")
    store.clear("item-404")
    assert store.read("item-404") is None


@pytest.mark.parametrize("key", ["", "../etc/passwd", "item 1", "item:1", "a/b"])
def test_a_key_that_is_not_letters_digits_and_dashes_is_refused(store, key):
    with pytest.raises(ValueError):
        store.report(key, 1, 2)
    with pytest.raises(ValueError):
        store.read(key)
    with pytest.raises(ValueError):
        store.clear(key)


# --- Redis: namespace and expiry --------------------------------------------------------


def test_redis_keys_live_under_the_progress_namespace(redis_db):
    RedisProgressStore(REDIS_URL).report("item-3", 1, 2)
    assert redis_db.keys("*") == [b"overdracht:progress:item-3"]


def test_redis_progress_expires_a_day_after_the_last_report(redis_db):
    store = RedisProgressStore(REDIS_URL)
    store.report("item-3", 1, 2)
    name = "overdracht:progress:item-3"
    assert DAY - 5 <= redis_db.ttl(name) <= DAY
    redis_db.expire(name, 10)
    store.report("item-3", 2, 2)  # each report starts the day again
    assert DAY - 5 <= redis_db.ttl(name) <= DAY


def test_redis_progress_that_expired_reads_as_none(redis_db):
    store = RedisProgressStore(REDIS_URL, ttl_seconds=1)
    store.report("item-3", 1, 2)
    redis_db.pexpire("overdracht:progress:item-3", 1)
    time.sleep(0.05)
    assert store.read("item-3") is None


def test_a_garbled_redis_value_reads_as_none(redis_db):
    redis_db.set("overdracht:progress:item-3", b"not json")
    assert RedisProgressStore(REDIS_URL).read("item-3") is None
    redis_db.set("overdracht:progress:item-3", b'{"done": 1}')
    assert RedisProgressStore(REDIS_URL).read("item-3") is None


# --- Redis unreachable: no exception, no waiting ------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung Redis)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def _exercise(store) -> float:
    started = time.monotonic()
    store.report("item-1", 1, 2)
    assert store.read("item-1") is None
    store.clear("item-1")
    return time.monotonic() - started


def test_an_unreachable_redis_reads_none_at_once_and_raises_nothing(caplog):
    store = RedisProgressStore(f"redis://127.0.0.1:{_closed_port()}/13", pause_seconds=0)
    with caplog.at_level(logging.WARNING, logger="app.progress"):
        assert _exercise(store) < 2


def test_a_redis_that_never_answers_costs_one_short_timeout(silent_server):
    store = RedisProgressStore(f"redis://127.0.0.1:{silent_server}/13", timeout_seconds=0.3)
    started = time.monotonic()
    assert store.read("item-1") is None
    assert time.monotonic() - started < 2
    # Within the pause after a fault the store does not wait on Redis again.
    assert _exercise(store) < 0.1


def test_an_unreachable_redis_is_warned_about_once_not_per_call(caplog):
    store = RedisProgressStore(f"redis://127.0.0.1:{_closed_port()}/13", pause_seconds=0)
    with caplog.at_level(logging.WARNING, logger="app.progress"):
        for _ in range(20):
            _exercise(store)
    warnings = [r for r in caplog.records if r.name == "app.progress"]
    assert len(warnings) == 1
    assert "Redis unreachable" in warnings[0].getMessage()


def test_after_a_fault_the_store_leaves_redis_alone_for_a_pause(monkeypatch):
    store = RedisProgressStore(f"redis://127.0.0.1:{_closed_port()}/13", pause_seconds=60)
    calls = []
    real_get = store.client.get
    monkeypatch.setattr(store.client, "get", lambda name: calls.append(name) or real_get(name))
    assert store.read("item-1") is None
    assert store.read("item-1") is None
    assert len(calls) == 1


def test_the_store_works_again_once_redis_is_back(redis_db, caplog):
    store = RedisProgressStore(REDIS_URL, pause_seconds=0)
    reachable = store.client
    store.client = redis.Redis.from_url(
        f"redis://127.0.0.1:{_closed_port()}/13", socket_connect_timeout=0.5
    )
    store.report("item-1", 1, 2)  # lost
    store.client = reachable
    with caplog.at_level(logging.INFO, logger="app.progress"):
        store.report("item-1", 2, 2)
    assert store.read("item-1") == (2, 2)
    assert "Redis reachable again" in caplog.text


# --- choosing the store -----------------------------------------------------------------


def _bare_app(**config) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    return app


def test_progress_store_file_is_the_file_store(tmp_path):
    app = _bare_app(PROGRESS_STORE="file", PROGRESS_ROOT=str(tmp_path))
    init_progress(app)
    with app.app_context():
        assert isinstance(progress_store(), FileProgressStore)
        assert progress_store().root == tmp_path


def test_progress_store_redis_is_the_redis_store(redis_db):
    app = _bare_app(PROGRESS_STORE="redis", REDIS_URL=REDIS_URL)
    init_progress(app)
    with app.app_context():
        store = progress_store()
        assert isinstance(store, RedisProgressStore)
        store.report("item-9", 4, 8)
    assert redis_db.exists("overdracht:progress:item-9")


def test_an_unknown_progress_store_stops_the_start_with_the_choices():
    with pytest.raises(RuntimeError, match="Unknown PROGRESS_STORE 'memcached'") as excinfo:
        init_progress(_bare_app(PROGRESS_STORE="memcached", PROGRESS_ROOT="/tmp"))
    assert "file, redis" in str(excinfo.value)


def test_the_redis_store_without_a_url_stops_the_start():
    with pytest.raises(RuntimeError, match="REDIS_URL"):
        make_progress_store({"PROGRESS_STORE": "redis", "REDIS_URL": ""})


def test_creating_the_redis_store_does_not_connect():
    # An app starts even when Redis is down; progress just is not kept until it is up.
    make_progress_store(
        {"PROGRESS_STORE": "redis", "REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/13"}
    )
