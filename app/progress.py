"""Progress of long copies, readable while the copy's transaction is still open.

A copy runs in one database transaction, so nothing it writes to the database is
visible before it commits; progress therefore goes around the database, into a
small store that the web processes can read. Two stores keep the same three methods:

- ``FileProgressStore`` keeps one file per key under ``PROGRESS_ROOT`` (one machine:
  web and worker share the disk);
- ``RedisProgressStore`` keeps one small string per key in Redis (``REDIS_URL``), so
  web and worker processes on several hosts see the same progress.

``PROGRESS_STORE`` ("file" or "redis") picks one at start-up. Progress is a courtesy:
a store that cannot be reached must never fail or stall a page or a copy. The Redis
store therefore uses short socket timeouts, swallows its faults (``read`` answers
``None``, which the pages show as busy) and logs them at most once a minute.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Protocol

import redis
from flask import Flask, current_app
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


class ProgressStore(Protocol):
    def report(self, key: str, done: int, total: int) -> None:
        """Remember that ``done`` of ``total`` units of the work under ``key`` are done."""

    def read(self, key: str) -> tuple[int, int] | None:
        """``(done, total)`` as last reported, or ``None`` when unknown (or unreadable)."""

    def clear(self, key: str) -> None:
        """Forget ``key``; clearing an unknown key is harmless."""


def _check_key(key: str) -> str:
    if not key or not key.replace("-", "").isalnum():
        raise ValueError("bad progress key")
    return key


class FileProgressStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / f"{_check_key(key)}.json"

    def report(self, key: str, done: int, total: int) -> None:
        path = self._path(key)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "w") as fh:
            json.dump({"done": done, "total": total}, fh)
        os.replace(tmp, path)

    def read(self, key: str) -> tuple[int, int] | None:
        path = self._path(key)
        try:
            data = json.loads(path.read_text())
            return int(data["done"]), int(data["total"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def clear(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class RedisProgressStore:
    """Progress in Redis: ``<prefix><key>`` holds ``{"done": …, "total": …}`` and expires
    ``ttl_seconds`` after the last report, so a crashed worker's progress goes away.

    Every Redis fault is swallowed: ``report`` and ``clear`` then do nothing and ``read``
    returns ``None``. After a fault the store leaves Redis alone for ``pause_seconds``
    (a host that swallows packets would otherwise cost a timeout per call, per item on a
    page); warnings are logged at most once per ``warn_every_seconds``.
    """

    PREFIX = "overdracht:progress:"

    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: int = 24 * 3600,
        timeout_seconds: float = 0.5,
        pause_seconds: float = 2.0,
        warn_every_seconds: float = 60.0,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.pause_seconds = pause_seconds
        self.warn_every_seconds = warn_every_seconds
        # No retries: one short try per call, then the caller goes on without progress.
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_seconds,
            socket_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._last_warning = float("-inf")
        self._suppressed = 0
        self._failing = False

    def name(self, key: str) -> str:
        """The Redis key that holds ``key``'s progress."""
        return self.PREFIX + _check_key(key)

    def report(self, key: str, done: int, total: int) -> None:
        value = json.dumps({"done": int(done), "total": int(total)})
        self._call("report", lambda: self.client.set(self.name(key), value, ex=self.ttl_seconds))

    def read(self, key: str) -> tuple[int, int] | None:
        raw = self._call("read", lambda: self.client.get(self.name(key)))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return int(data["done"]), int(data["total"])
        except (ValueError, KeyError, TypeError):
            return None

    def clear(self, key: str) -> None:
        self._call("clear", lambda: self.client.delete(self.name(key)))

    def _call(self, what: str, command):
        if time.monotonic() < self._paused_until:
            self._note_skipped()
            return None
        try:
            result = command()
        except redis.RedisError as error:
            self._note_failure(what, error)
            return None
        if self._failing:
            self._note_recovery()
        return result

    def _note_skipped(self) -> None:
        with self._lock:
            self._suppressed += 1

    def _note_failure(self, what: str, error: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            self._failing = True
            self._paused_until = now + self.pause_seconds
            if now - self._last_warning < self.warn_every_seconds:
                self._suppressed += 1
                return
            suppressed, self._suppressed = self._suppressed, 0
            self._last_warning = now
        log.warning(
            "progress store: Redis unreachable (%s on %s: %s); progress is not kept%s",
            type(error).__name__,
            what,
            error,
            f" ({suppressed} more calls failed or skipped since the last warning)"
            if suppressed
            else "",
        )

    def _note_recovery(self) -> None:
        with self._lock:
            if not self._failing:
                return
            self._failing = False
            self._suppressed = 0
            self._last_warning = float("-inf")
        log.info("progress store: Redis reachable again")


PROGRESS_STORES = ("file", "redis")


def make_progress_store(config) -> ProgressStore:
    """The store ``config["PROGRESS_STORE"]`` names; ``RuntimeError`` for an unknown one."""
    kind = config.get("PROGRESS_STORE") or "file"
    if kind == "file":
        return FileProgressStore(config["PROGRESS_ROOT"])
    if kind == "redis":
        if not config.get("REDIS_URL"):
            raise RuntimeError("PROGRESS_STORE=redis needs REDIS_URL (e.g. redis://host:6379/0)")
        return RedisProgressStore(config["REDIS_URL"])
    raise RuntimeError(
        f"Unknown PROGRESS_STORE {kind!r}; choose one of: {', '.join(PROGRESS_STORES)}"
    )


def init_progress(app: Flask) -> None:
    app.extensions["progress_store"] = make_progress_store(app.config)


def progress_store() -> ProgressStore:
    return current_app.extensions["progress_store"]
