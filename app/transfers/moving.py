"""The move an administration is in now: on offer, being copied, or failed."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from app.extensions import db
from app.transfers.domain import OPEN_ITEM_STATES, ItemState
from app.transfers.models import TransferItem


def moving_of(administration_ids: Iterable[int]) -> dict[int, ItemState]:
    """The state of the open move (offered, being copied, failed) of each administration
    that is in one; an administration is in at most one at a time."""
    ids = list(administration_ids)
    if not ids:
        return {}
    return dict(
        db.session.execute(
            select(TransferItem.administration_id, TransferItem.state).where(
                TransferItem.administration_id.in_(ids), TransferItem.state.in_(OPEN_ITEM_STATES)
            )
        ).all()
    )
