"""What every view, API endpoint, CLI command and job shares: the unit of work, the
request's origin for the audit trail, and safe redirects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from flask import has_request_context, request
from sqlalchemy.orm import Session

from app.db import has_written
from app.extensions import db


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One unit of work: commit when the block succeeds, roll back when it raises.

    The only place that commits. Services inside only flush and raise typed errors
    (``app.errors``); the error passes on to the caller after the rollback, so a view
    can show it as a form error and the error handler as a 404/403/409/422.

    A unit that wrote nothing (most API reads, which only might have recorded
    something) ends its transaction without expiring what it loaded, so the rest of the
    request does not read the same rows again.
    """
    session = db.session
    try:
        yield session
        session.flush()
        if not session().in_transaction():
            return
        if has_written(session):
            session.commit()
        else:
            _end_read_only(session())
    except BaseException:
        session.rollback()
        raise


def _end_read_only(session: Session) -> None:
    """End a transaction that has written nothing, keeping what it loaded: nothing of
    ours can have gone stale, and expiring would only make the request read it again."""
    saved = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = saved


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
