"""What every view, API endpoint, CLI command and job shares: the unit of work, the
request's origin for the audit trail, and safe redirects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from flask import has_request_context, request
from sqlalchemy.orm import Session

from app.extensions import db


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One unit of work: commit when the block succeeds, roll back when it raises.

    The only place that commits. Services inside only flush and raise typed errors
    (``app.errors``); the error passes on to the caller after the rollback, so a view
    can show it as a form error and the error handler as a 404/403/409/422.
    """
    session = db.session
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def origin() -> str:
    """Where a request came from, for the audit trail."""
    if not has_request_context():
        return "system"
    return f"web {request.remote_addr or '-'}"


def safe_next(target: str | None) -> str | None:
    """Only same-site relative paths may be redirected to after login."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target
