"""Where an administration went and where it came from: the completed moves that name it,
and the move it is in now (on offer, being copied, failed).

The offering office's copy was handed over ("Overgedragen aan Kantoor Zuid op …"); the
receiving office's copy was taken over ("Overgenomen van Kantoor Noord op …"). A client
that came back has both. The caller has already scoped the administrations to its office.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.transfers.domain import OPEN_ITEM_STATES, ItemState
from app.transfers.models import Transfer, TransferItem

if TYPE_CHECKING:
    from app.admin_settings.models import Environment

OUTGOING = "outgoing"  # this office handed the administration over
INCOMING = "incoming"  # this office took the administration over


@dataclass(frozen=True)
class Move:
    direction: str
    transfer_id: int
    office: Environment  # the other office
    at: datetime


def moves_of(administration_ids: Iterable[int]) -> dict[int, list[Move]]:
    """Each administration's completed moves, newest first, in one query."""
    ids = list(administration_ids)
    moves: dict[int, list[Move]] = {i: [] for i in ids}
    if not ids:
        return moves
    items = db.session.scalars(
        select(TransferItem)
        .where(
            TransferItem.state == ItemState.MIGRATED,
            or_(
                TransferItem.administration_id.in_(ids),
                TransferItem.target_administration_id.in_(ids),
            ),
        )
        .options(
            joinedload(TransferItem.transfer).joinedload(Transfer.source_environment),
            joinedload(TransferItem.transfer).joinedload(Transfer.target_environment),
        )
    )
    for item in items:
        transfer = item.transfer
        at = item.finished_at or item.updated_at
        if item.administration_id in moves and transfer.target_environment is not None:
            moves[item.administration_id].append(
                Move(OUTGOING, transfer.id, transfer.target_environment, at)
            )
        if item.target_administration_id in moves:
            moves[item.target_administration_id].append(
                Move(INCOMING, transfer.id, transfer.source_environment, at)
            )
    for found in moves.values():
        found.sort(key=lambda m: (m.at, m.transfer_id), reverse=True)
    return moves


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
