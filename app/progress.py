"""Progress of long copies, readable while the copy's transaction is still open.

A copy runs in one database transaction, so nothing it writes to the database is
visible before it commits; progress therefore goes around the database, into a
small store that the web process can read. ``FileProgressStore`` keeps one file
per item under ``PROGRESS_ROOT`` (one machine: web and worker share the disk);
several hosts would put a Redis-backed store behind the same three methods.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Protocol

from flask import Flask, current_app


class ProgressStore(Protocol):
    def report(self, key: str, done: int, total: int) -> None: ...

    def read(self, key: str) -> tuple[int, int] | None: ...

    def clear(self, key: str) -> None: ...


class FileProgressStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not key.replace("-", "").isalnum():
            raise ValueError("bad progress key")
        return self.root / f"{key}.json"

    def report(self, key: str, done: int, total: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "w") as fh:
            json.dump({"done": done, "total": total}, fh)
        os.replace(tmp, self._path(key))

    def read(self, key: str) -> tuple[int, int] | None:
        try:
            data = json.loads(self._path(key).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return int(data["done"]), int(data["total"])

    def clear(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def init_progress(app: Flask) -> None:
    app.extensions["progress_store"] = FileProgressStore(app.config["PROGRESS_ROOT"])


def progress_store() -> ProgressStore:
    return current_app.extensions["progress_store"]
