"""Scheduled work of transfers. Each job is one unit of work that commits itself and
may run twice, or in two schedulers at once, without doing anything twice."""

from __future__ import annotations

from app.transfers import services
from app.transfers.copy import copy_waiting


def sweep_expired() -> int:
    """Mark expired offers, free their administrations, tell the requester."""
    return services.expire_due()


def remind_expiring() -> int:
    """Remind both sides a few days before an offer expires."""
    return services.send_reminders()


def copy_claimed() -> int:
    """Copy accepted administrations whose claim is waiting (all or nothing, once)."""
    return copy_waiting()
