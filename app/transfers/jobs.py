"""Scheduled work of transfers. Each job owns its loop and its units of work, and may
run twice, or in two schedulers at once, without doing anything twice: the state
changes in ``lifecycle`` are conditional UPDATEs."""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.transfers import lifecycle
from app.transfers.copying import copy_waiting
from app.transfers.models import Transfer
from app.web import unit_of_work


def _each(condition, step) -> int:
    """Run ``step(transfer)`` for every transfer matching ``condition``, one unit of work
    each; returns how many steps did something."""
    with unit_of_work():
        ids = list(db.session.scalars(select(Transfer.id).where(condition).order_by(Transfer.id)))
    done = 0
    for transfer_id in ids:
        with unit_of_work():
            transfer = db.session.get(Transfer, transfer_id)
            done += bool(transfer is not None and step(transfer))
    return done


def sweep_expired(now: datetime | None = None) -> int:
    """Mark expired offers, free their administrations, tell the requester."""
    now = now or utcnow()
    return _each(lifecycle.due_for_expiry(now), lambda t: lifecycle.expire(t, now=now))


def remind_expiring(now: datetime | None = None) -> int:
    """Remind both sides a few days before an offer expires."""
    now = now or utcnow()
    days = current_app.config["TRANSFER_REMINDER_DAYS"]
    return _each(lifecycle.due_for_reminder(now, days), lambda t: lifecycle.remind(t, now=now))


def report_slow_copies(now: datetime | None = None) -> int:
    """Tell support once about each copy still running ``COPY_SLOW_AFTER_MINUTES`` after
    its claim."""
    now = now or utcnow()
    minutes = current_app.config["COPY_SLOW_AFTER_MINUTES"]
    return _each(
        lifecycle.due_for_slow_report(now, minutes),
        lambda t: lifecycle.report_slow(t, minutes=minutes, now=now),
    )


def copy_claimed() -> int:
    """Copy accepted administrations whose claim is waiting (all or nothing, once)."""
    return copy_waiting()
