"""Who may see a transfer, and from which side: the one place that decides it.

The offering environment sees its offers (``OUTGOING``, with the code); an environment
the offer was addressed to, or that redeemed it, sees it from the receiving side
(``INCOMING``, never the code); support sees every transfer's metadata (``SUPPORT``).
Anyone else gets ``NotFoundError``, exactly as for a transfer that does not exist.
"""

from __future__ import annotations

import enum

from sqlalchemy import exists, select

from app.auth.domain import Permission, has_permission
from app.auth.models import User
from app.errors import NotAllowed, NotFoundError
from app.extensions import db
from app.transfers.models import Claim, Transfer, TransferInbox, TransferItem


class Side(enum.StrEnum):
    OUTGOING = "outgoing"
    INCOMING = "incoming"
    SUPPORT = "support"


def require_migrate(actor: User) -> None:
    """The migration menu is for superusers of an environment."""
    if not has_permission(actor.role, Permission.MIGRATE):
        raise NotAllowed()


def require_support(actor: User | None) -> None:
    """Support pages and actions do not exist for anyone else (``None``: the CLI)."""
    if actor is not None and not has_permission(actor.role, Permission.SUPPORT_CONSOLE):
        raise NotFoundError()


def listed_for(environment_id: int):
    """SQL: the transfer is in this environment's inbox (addressed to it, or redeemed by it)."""
    return exists().where(
        TransferItem.transfer_id == Transfer.id,
        TransferInbox.transfer_item_id == TransferItem.id,
        TransferInbox.environment_id == environment_id,
    )


def side_of(actor: User, transfer: Transfer) -> Side | None:
    """From which side ``actor`` sees ``transfer``, or ``None`` when not at all."""
    if actor.environment_id is None:
        return Side.SUPPORT if has_permission(actor.role, Permission.SUPPORT_CONSOLE) else None
    if transfer.source_environment_id == actor.environment_id:
        return Side.OUTGOING
    if transfer.target_environment_id == actor.environment_id:
        return Side.INCOMING
    if not transfer.is_claimed and db.session.scalar(
        select(listed_for(actor.environment_id).where(Transfer.id == transfer.id))
    ):
        return Side.INCOMING
    return None


def transfer_for(
    actor: User | None, transfer_id: int, *, sides: tuple[Side, ...], lock: bool = False
) -> tuple[Transfer, Side]:
    """The transfer if ``actor`` sees it from one of ``sides``; else ``NotFoundError``.

    ``actor=None`` is the command line, which acts as support. ``lock`` takes the
    transfer's row lock first (PostgreSQL), in the order every state change takes it.
    """
    options = {"with_for_update": {"key_share": True}} if lock else {}
    transfer = db.session.get(Transfer, transfer_id, **options)
    if transfer is None:
        raise NotFoundError()
    side = Side.SUPPORT if actor is None else side_of(actor, transfer)
    if side is None or side not in sides:
        raise NotFoundError()
    return transfer, side


def claim_for(actor: User, claim_id: int) -> tuple[Claim, Side]:
    """A claim as its receiving (``INCOMING``) or offering (``OUTGOING``) side sees it."""
    claim = db.session.get(Claim, claim_id)
    if claim is None:
        raise NotFoundError()
    if claim.target_environment_id == actor.environment_id:
        return claim, Side.INCOMING
    if claim.transfer.source_environment_id == actor.environment_id:
        return claim, Side.OUTGOING
    raise NotFoundError()


def visible_items(actor: User):
    """SQL: items of transfers the actor's environment offered or redeemed (for progress)."""
    env = actor.environment_id
    return (Transfer.source_environment_id == env) | (Transfer.target_environment_id == env)
