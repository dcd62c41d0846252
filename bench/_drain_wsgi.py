"""The floors of bench/migration_file.py's upload: a bare WSGI app (served by the same
gunicorn command as the app; a module, not a benchmark: ``make bench`` skips ``_*.py``).

- ``/drain`` reads a request's body to the end and answers 204: the network and
  gunicorn alone.
- ``/store`` also writes the body to a file in ``UPLOAD_ROOT`` and syncs it to disk
  before answering (then removes it): what any upload endpoint must at least do with
  the bytes it accepts, so that on a disk slower than loopback the ratio measures the
  app, not the disk.
"""

from __future__ import annotations

import os
import tempfile

PIECE = 1024 * 1024


def app(environ, start_response):
    stream = environ["wsgi.input"]
    received = 0
    if environ.get("PATH_INFO") == "/store":
        folder = os.environ.get("UPLOAD_ROOT") or tempfile.gettempdir()
        os.makedirs(folder, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix="floor-")
        try:
            with os.fdopen(fd, "wb", buffering=0) as out:
                while data := stream.read(PIECE):
                    out.write(data)
                    received += len(data)
                os.fsync(out.fileno())
        finally:
            os.unlink(name)
    else:
        while data := stream.read(PIECE):
            received += len(data)
    start_response("204 No Content", [("X-Received", str(received))])
    return [b""]
