"""The floor of bench/migration_file.py's upload: a bare WSGI app that reads a request's
body to the end and answers 204 (served by the same gunicorn command as the app; a
module, not a benchmark: ``make bench`` skips ``_*.py``)."""

from __future__ import annotations

PIECE = 1024 * 1024


def app(environ, start_response):
    stream = environ["wsgi.input"]
    received = 0
    while data := stream.read(PIECE):
        received += len(data)
    start_response("204 No Content", [("X-Received", str(received))])
    return [b""]
