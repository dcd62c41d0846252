"""Scheduled work of uploads: remove the ones never finished in time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.uploads import services, spool
from app.uploads.models import Upload
from app.web import unit_of_work


def expire_due(now: datetime | None = None) -> int:
    """Mark every upload past its expiry as expired and delete its spool file; one unit
    of work each, conditional, so two schedulers at once do each upload once."""
    now = now or utcnow()
    with unit_of_work():
        ids = list(
            db.session.scalars(
                select(Upload.id).where(services.due_for_expiry(now)).order_by(Upload.id)
            )
        )
    done = 0
    for upload_id in ids:
        with unit_of_work():
            token = services.expire(upload_id, now=now)
        if token is not None:
            spool.remove(token)
            done += 1
    return done
