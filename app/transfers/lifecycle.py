"""Every change of state of a transfer and its items, in one module.

offer → (withdraw | expire | redeem → copy: complete | back off | fail → retry) | revoke,
and extend and remind on the way: an offer's expiry is extended in ``extend`` and
nowhere else. Each function is one atomic step: a conditional
UPDATE judged by the database (so of any racing steps exactly one wins, and running
a job twice does nothing twice), its audit event and its mails (through the outbox),
all flushed into the caller's unit of work; nothing here commits. A step that loses
its race raises ``Conflict`` (or returns False for the jobs' sweeps). Support's
revoke and retry, the claim and the copy job all come here instead of writing states.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import OperationalError

from app import audit, leases
from app.admin_settings.models import (
    Administration,
    AdministrationState,
    Connection,
    Document,
    Environment,
)
from app.auth.models import User
from app.errors import N_, Conflict, ServiceError, ValidationFailed
from app.extensions import db
from app.transfers import codes, domain, notifications
from app.transfers.domain import ItemState, TransferState
from app.transfers.models import (
    Claim,
    Transfer,
    TransferCodeGroup,
    TransferInbox,
    TransferItem,
    TransferRecipient,
)


def release_administrations(administration_ids) -> None:
    """Administrations on offer become active again in their own environment (an offer
    ended, or the receiver turned them down). ``administration_ids``: ids or a subquery."""
    db.session.execute(
        update(Administration)
        .where(
            Administration.id.in_(administration_ids),
            Administration.state == AdministrationState.OFFERED,
        )
        .values(state=AdministrationState.ACTIVE)
        .execution_options(synchronize_session=False)
    )


# --- offer ------------------------------------------------------------------------------------


def offer(
    actor: User,
    administrations: list[Administration],
    connection: Connection,
    recipients: list[str],
    *,
    receiving: Environment | None = None,
    origin: str,
    now: datetime,
) -> tuple[Transfer, str]:
    """Put validated administrations on offer under a new code; returns it formatted.

    Only administrations still active move to offered: a concurrent offer of the same
    administration loses here (and on the open-item unique index) with ``ValidationFailed``.
    """
    config = current_app.config
    result = db.session.execute(
        update(Administration)
        .where(
            Administration.id.in_([a.id for a in administrations]),
            Administration.state == AdministrationState.ACTIVE,
        )
        .values(state=AdministrationState.OFFERED)
        .execution_options(synchronize_session="fetch")
    )
    if result.rowcount != len(administrations):
        # Bad input as the offering side sees it: the same answer as a preflight refusal.
        raise ValidationFailed(
            [
                ServiceError(
                    "administration_ids", N_("One of the administrations is already on offer.")
                )
            ]
        )
    nonce, code, digest = codes.new_code()
    transfer = Transfer(
        source_environment_id=actor.environment_id,
        connection_id=connection.id,
        offered_by_id=actor.id,
        offered_by_name=actor.name,
        offered_by_email=actor.email,
        state=TransferState.OFFERED,
        code_nonce=nonce,
        code_digest=digest,
        terms_version=config["TRANSFER_TERMS_VERSION"],
        created_at=now,
        expires_at=domain.expiry(now, config["TRANSFER_CODE_TTL_DAYS"]),
        recipients=[TransferRecipient(email=e) for e in recipients],
        receiving_environment_id=receiving.id if receiving else None,
        items=[
            TransferItem(
                administration_id=a.id,
                source_environment_id=actor.environment_id,
                created_at=now,
                search_text=domain.search_text(
                    a.name,
                    a.code,
                    a.contact_email,
                    connection.package.value,
                    connection.package.label,
                    recipients,
                ),
                state=ItemState.OFFERED,
                administration_name=a.name,
                administration_code=a.code,
                contact_email=a.contact_email,
                package=connection.package.value,
                updated_at=now,
            )
            for a in administrations
        ],
    )
    db.session.add(transfer)
    db.session.flush()
    db.session.add_all(
        TransferCodeGroup(transfer_id=transfer.id, digest=d)
        for d in codes.group_digests(domain.code_groups(code))
    )
    _fill_inbox(transfer, recipients, actor.environment_id)
    audit.record(
        "transfer_offered",
        actor=actor,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=actor.environment_id,
        origin=origin,
        details={
            "administration_ids": [a.id for a in administrations],
            "recipients": recipients,
            "terms_version": transfer.terms_version,
            "checklist_confirmed": True,
            "expires_at": transfer.expires_at.isoformat(),
        },
        at=now,
    )
    notifications.offer_made(transfer, now=now)
    return transfer, codes.code_for(transfer)


def _fill_inbox(transfer: Transfer, recipients: list[str], source_environment_id: int) -> None:
    """List the offer in the overview of every environment with a user among the recipients."""
    environment_ids = list(
        db.session.scalars(
            select(User.environment_id)
            .where(
                func.lower(User.email).in_(recipients),
                User.environment_id.is_not(None),
                User.environment_id != source_environment_id,
            )
            .distinct()
        )
    )
    db.session.add_all(
        TransferInbox(
            environment_id=environment_id,
            transfer_item_id=item.id,
            created_at=transfer.created_at,
            search_text=item.search_text,
        )
        for environment_id in environment_ids
        for item in transfer.items
    )
    db.session.flush()


# --- ending an offer before its claim ---------------------------------------------------------


def _end(
    transfer: Transfer,
    state: TransferState,
    item_state: ItemState,
    now: datetime,
    actor: User | None,
    *,
    live: bool,
) -> bool:
    """Move an unclaimed open transfer and its offered items to a final state and free
    the administrations. ``live``: only while the code still works (withdraw), else only
    once it is past expiry (expire). False when someone else got there first."""
    condition = Transfer.is_live(now) if live else Transfer.is_dead_unswept(now)
    won = db.session.execute(
        update(Transfer)
        .where(Transfer.id == transfer.id, condition)
        .values(state=state, ended_at=now, ended_by_id=actor.id if actor else None)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:
        return False
    offered_items = select(TransferItem.administration_id).where(
        TransferItem.transfer_id == transfer.id, TransferItem.state == ItemState.OFFERED
    )
    release_administrations(offered_items)
    db.session.execute(
        update(TransferItem)
        .where(TransferItem.transfer_id == transfer.id, TransferItem.state == ItemState.OFFERED)
        .values(state=item_state, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    db.session.expire(transfer)
    return True


def why_final(transfer: Transfer, now: datetime) -> str:
    """Why an offer can no longer be withdrawn (or extended), in words."""
    if transfer.is_claimed:
        return N_(
            "The receiving office has started the claim; the offer can no longer be withdrawn."
        )
    state = domain.effective_state(transfer.state, transfer.expires_at, now)
    if state is TransferState.EXPIRED:
        return N_("This offer has expired.")
    if state is TransferState.WITHDRAWN:
        return N_("This offer has already been withdrawn.")
    return N_("This offer has ended and can no longer be withdrawn.")


def withdraw(actor: User, transfer: Transfer, *, origin: str, now: datetime) -> None:
    """End an offer before its claim starts; the code dies at once and recipients are told."""
    if not domain.can_withdraw(
        transfer.state,
        [i.state for i in transfer.items],
        transfer.expires_at,
        now,
        claimed=transfer.is_claimed,
    ):
        raise Conflict("transfer", why_final(transfer, now))
    if not _end(transfer, TransferState.WITHDRAWN, ItemState.WITHDRAWN, now, actor, live=True):
        raise Conflict("transfer", N_("This offer can no longer be withdrawn."))
    audit.record(
        "transfer_withdrawn",
        actor=actor,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=transfer.source_environment_id,
        origin=origin,
        at=now,
    )
    notifications.offer_withdrawn(transfer, now=now)


def extend(actor: User, transfer: Transfer, *, origin: str, now: datetime) -> None:
    """Give a live offer ``TRANSFER_CODE_TTL_DAYS`` from now, at most
    ``TRANSFER_MAX_EXTENSIONS`` times; the code stays the same and the reminder is due
    again before the new expiry. The recipients are told."""
    config = current_app.config
    if not transfer.is_live(now):
        raise Conflict("transfer", why_final(transfer, now))
    most = config["TRANSFER_MAX_EXTENSIONS"]
    new_expiry = domain.expiry(now, config["TRANSFER_CODE_TTL_DAYS"])
    won = db.session.execute(
        update(Transfer)
        .where(
            Transfer.id == transfer.id,
            Transfer.is_live(now),
            Transfer.extensions < most,
            Transfer.expires_at < new_expiry,
        )
        .values(
            expires_at=new_expiry,
            extensions=Transfer.extensions + 1,
            reminder_sent_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:
        db.session.expire(transfer)
        if transfer.extensions >= most:
            raise Conflict(
                "transfer",
                N_("This offer has been extended %(most)d times already; make a new offer."),
                most=most,
            )
        raise Conflict(
            "transfer", N_("This offer already runs until then; there is nothing to extend.")
        )
    db.session.expire(transfer)
    audit.record(
        "transfer_extended",
        actor=actor,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=transfer.source_environment_id,
        origin=origin,
        details={"expires_at": new_expiry.isoformat(), "extensions": transfer.extensions},
        at=now,
    )
    notifications.offer_extended(transfer, now=now)


def resend(actor: User, transfer: Transfer, *, origin: str, now: datetime) -> None:
    """Send the code mail of a live offer again to the same recipients (a copy to the
    requester), at most once per ``TRANSFER_RESEND_MINUTES``."""
    if not transfer.is_live(now):
        raise Conflict("transfer", why_final(transfer, now))
    minutes = current_app.config["TRANSFER_RESEND_MINUTES"]
    since = now - timedelta(minutes=minutes)
    won = db.session.execute(
        update(Transfer)
        .where(
            Transfer.id == transfer.id,
            Transfer.is_live(now),
            or_(Transfer.resent_at.is_(None), Transfer.resent_at <= since),
        )
        .values(resent_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.expire(transfer)
    if won.rowcount != 1:
        raise Conflict(
            "transfer",
            N_("The code mail was sent again less than %(minutes)d minutes ago."),
            minutes=minutes,
        )
    audit.record(
        "transfer_resent",
        actor=actor,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=transfer.source_environment_id,
        origin=origin,
        details={"recipients": transfer.recipient_emails},
        at=now,
    )
    notifications.offer_made(transfer, now=now)


def expire(transfer: Transfer, *, now: datetime) -> bool:
    """Mark an offer past its expiry as expired, free its administrations and tell the
    requester. False when it was not due or another sweep got there first."""
    if not _end(transfer, TransferState.EXPIRED, ItemState.EXPIRED, now, None, live=False):
        return False
    audit.record(
        "transfer_expired",
        actor=None,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=transfer.source_environment_id,
        origin="scheduler",
        at=now,
    )
    notifications.offer_expired(transfer, now=now)
    return True


def remind(transfer: Transfer, *, now: datetime) -> bool:
    """Remind both sides of an offer that expires soon; once. False if already done."""
    won = db.session.execute(
        update(Transfer)
        .where(
            Transfer.id == transfer.id,
            Transfer.is_live(now),
            Transfer.reminder_sent_at.is_(None),
        )
        .values(reminder_sent_at=now)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:
        return False
    db.session.expire(transfer)
    audit.record(
        "transfer_reminder_sent",
        actor=None,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=transfer.source_environment_id,
        origin="scheduler",
        at=now,
    )
    notifications.offer_reminder(transfer, now=now)
    return True


def report_slow(transfer: Transfer, *, minutes: int, now: datetime) -> bool:
    """Tell support, once, that the copy of ``transfer`` still runs ``minutes`` after its
    claim; both offices' pages say so from then on. False if it is not due (told already,
    or the copy ended meanwhile)."""
    won = db.session.execute(
        update(Transfer)
        .where(Transfer.id == transfer.id, due_for_slow_report(now, minutes))
        .values(slow_reported_at=now)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:
        return False
    db.session.expire(transfer)
    audit.record(
        "copy_slow",
        actor=None,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=transfer.source_environment_id,
        origin="scheduler",
        details={"minutes": minutes},
        at=now,
    )
    notifications.copy_slow(transfer, minutes=minutes, now=now)
    return True


# --- the claim --------------------------------------------------------------------------------


def redeem(
    actor: User,
    transfer: Transfer,
    accepted: list[tuple[TransferItem, int]],
    rejected: list[tuple[TransferItem, str | None]],
    *,
    terms_version: str,
    fee: Decimal,
    currency: str,
    origin: str,
    now: datetime,
) -> Claim:
    """Redeem the code for the actor's environment with the receiver's decisions.

    One conditional UPDATE of the transfer: of any number of simultaneous redemptions
    exactly one wins, and a withdraw racing it ends in exactly one of the two. A loser
    gets ``Conflict`` (``already_ours`` tells a double submit from a lost race).
    """
    won = db.session.execute(
        update(Transfer)
        .where(Transfer.id == transfer.id, Transfer.is_live(now))
        .values(target_environment_id=actor.environment_id)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:
        winner = db.session.scalar(
            select(Transfer.target_environment_id).where(Transfer.id == transfer.id)
        )
        raise RedeemLost(already_ours=winner == actor.environment_id)
    _narrow_inbox(transfer, actor.environment_id)
    claim = Claim(
        transfer_id=transfer.id,
        target_environment_id=actor.environment_id,
        claimed_by_id=actor.id,
        claimed_by_name=actor.name,
        claimed_by_email=actor.email,
        terms_version=terms_version,
        fee_per_administration=fee,
        currency=currency,
        created_at=now,
    )
    db.session.add(claim)
    # Each copy's size from the start, so its progress reads "0 of 200", not "0 of 0".
    sizes = dict(
        db.session.execute(
            select(Document.administration_id, func.count())
            .where(Document.administration_id.in_([i.administration_id for i, _c in accepted]))
            .group_by(Document.administration_id)
        ).all()
    )
    for item, connection_id in accepted:
        item.state = ItemState.CLAIMING
        item.target_connection_id = connection_id
        item.fee = fee
        item.documents_total = sizes.get(item.administration_id, 0)
        item.updated_at = now
    for item, message in rejected:
        item.state = ItemState.REJECTED
        item.reject_message = message
        item.updated_at = now
    if rejected:
        release_administrations([i.administration_id for i, _m in rejected])
    if not accepted:
        transfer.state = TransferState.COMPLETED
        transfer.ended_at = now
    db.session.flush()
    audit.record(
        "claim_submitted",
        actor=actor,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=actor.environment_id,
        origin=origin,
        details={
            "claim_id": claim.id,
            "terms_version": claim.terms_version,
            "fee_per_administration": str(claim.fee_per_administration),
            "currency": claim.currency,
            "accepted": [{"item_id": i.id, "connection_id": c} for i, c in accepted],
            "rejected": [{"item_id": i.id, "message": m} for i, m in rejected],
        },
        at=now,
    )
    audit.record(
        "transfer_claimed",
        actor=actor,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=transfer.source_environment_id,
        origin=origin,
        details={"claim_id": claim.id, "target_environment_id": actor.environment_id},
        at=now,
    )
    if rejected:
        notifications.items_rejected(
            transfer, [i for i, _m in rejected], actor.environment.name, now=now
        )
    return claim


class RedeemLost(Conflict):
    """Another redemption (or a withdraw, or the expiry) won the race for this offer."""

    def __init__(self, *, already_ours: bool) -> None:
        super().__init__("code", "")
        self.already_ours = already_ours


def _narrow_inbox(transfer: Transfer, environment_id: int) -> None:
    """Once redeemed, the offer is listed for the claiming environment only."""
    item_ids = [i.id for i in transfer.items]
    db.session.execute(
        delete(TransferInbox).where(
            TransferInbox.transfer_item_id.in_(item_ids),
            TransferInbox.environment_id != environment_id,
        )
    )
    listed = set(
        db.session.scalars(
            select(TransferInbox.transfer_item_id).where(
                TransferInbox.transfer_item_id.in_(item_ids),
                TransferInbox.environment_id == environment_id,
            )
        )
    )
    db.session.add_all(
        TransferInbox(
            environment_id=environment_id,
            transfer_item_id=item.id,
            created_at=transfer.created_at,
            search_text=item.search_text,
        )
        for item in transfer.items
        if item.id not in listed
    )


# --- the copy ---------------------------------------------------------------------------------

COPY_STILL_RUNNING = N_("The copy is still running; try again in a minute.")


@contextlib.contextmanager
def copy_may_hold_locks() -> Iterator[None]:
    """For a step that may meet a copy's row locks (revoke, retry, withdraw): on
    PostgreSQL wait at most ``COPY_LOCK_TIMEOUT_SECONDS`` for them (a hung worker holds
    them until the server ends its session), then ``Conflict`` "the copy is still running"."""
    leases.bound_waits(db.session, lock_seconds=current_app.config["COPY_LOCK_TIMEOUT_SECONDS"])
    try:
        yield
    except OperationalError as error:
        if leases.is_lock_timeout(error):
            raise Conflict("transfer", COPY_STILL_RUNNING) from error
        raise


def copy_waiting():
    """SQL: an item waiting for its copy (the lease decides who does it)."""
    return TransferItem.state == ItemState.CLAIMING


def item_migrated(
    item: TransferItem,
    target: Administration,
    *,
    copied: int,
    total: int,
    owner: str,
    now: datetime,
) -> None:
    """The copy of ``item`` is done: the item is migrated, its source read-only.

    Only while the item is still being copied under this worker's lease: a copy that
    was revoked, or taken over by another worker, raises and rolls back whole.
    """
    done = db.session.execute(
        update(TransferItem)
        .where(
            TransferItem.id == item.id,
            TransferItem.state == ItemState.CLAIMING,
            TransferItem.lease_owner == owner,
        )
        .values(
            state=ItemState.MIGRATED,
            target_administration_id=target.id,
            documents_total=total,
            documents_copied=copied,
            finished_at=now,
            lease_owner=None,
            lease_until=None,
            last_error=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        raise Conflict("item", N_("This copy was ended or taken over by another worker."))
    db.session.execute(
        update(Administration)
        .where(Administration.id == item.administration_id)
        .values(state=AdministrationState.MIGRATED)
        .execution_options(synchronize_session=False)
    )
    audit.record(
        "administration_migrated",
        actor=None,
        object_type="transfer_item",
        object_id=item.id,
        environment_id=target.environment_id,
        origin="worker",
        details={
            "transfer_id": item.transfer_id,
            "source_administration_id": item.administration_id,
            "target_administration_id": target.id,
            "documents": copied,
        },
        at=now,
    )
    db.session.flush()


def complete_if_done(transfer: Transfer, claim: Claim, *, now: datetime) -> bool:
    """When no item is open any more, the transfer is completed and both sides told."""
    open_items = db.session.scalar(
        select(func.count())
        .select_from(TransferItem)
        .where(TransferItem.transfer_id == transfer.id, TransferItem.is_open)
    )
    if open_items:
        return False
    won = db.session.execute(
        update(Transfer)
        .where(Transfer.id == transfer.id, Transfer.is_open)
        .values(state=TransferState.COMPLETED, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:
        return False
    db.session.expire_all()  # the UPDATEs above bypassed the loaded objects
    audit.record(
        "transfer_completed",
        actor=None,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=transfer.source_environment_id,
        origin="worker",
        details={"claim_id": claim.id},
        at=now,
    )
    notifications.claim_completed(transfer, claim, now=now)
    return True


def copy_failed(
    item: TransferItem,
    message: str,
    *,
    give_up: bool,
    owner: str,
    retry_at: datetime,
    now: datetime,
) -> bool:
    """Record why a copy attempt failed: back off until ``retry_at``, or, when giving up,
    the item is ``failed`` and waits for support. False when the lease was lost."""
    values = {"last_error": message[:500], "lease_owner": None}
    if give_up:
        values.update(state=ItemState.FAILED, lease_until=None, updated_at=now)
    else:
        # A back-off is no change of state: ``updated_at`` keeps the time the copy
        # entered ``claiming`` (support's "claiming too long" reads it).
        values.update(lease_until=retry_at, updated_at=TransferItem.updated_at)
    won = db.session.execute(
        update(TransferItem)
        .where(
            TransferItem.id == item.id,
            TransferItem.state == ItemState.CLAIMING,
            (TransferItem.lease_owner == owner) | TransferItem.lease_owner.is_(None),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:
        return False
    if give_up:
        audit.record(
            "copy_failed",
            actor=None,
            object_type="transfer_item",
            object_id=item.id,
            environment_id=item.transfer.source_environment_id,
            origin="worker",
            details={"transfer_id": item.transfer_id, "error": message[:500]},
            at=now,
        )
    db.session.flush()
    return True


# --- support ----------------------------------------------------------------------------------


def retry(actor: User | None, transfer: Transfer, *, origin: str, now: datetime) -> int:
    """Queue the failed items of an open transfer for another copy; returns how many."""
    failed = [i.id for i in transfer.items if i.state is ItemState.FAILED]
    if not failed or not transfer.is_open:
        raise Conflict("transfer", N_("Nothing to retry: this transfer has no failed copy."))
    result = db.session.execute(
        update(TransferItem)
        .where(TransferItem.id.in_(failed), TransferItem.state == ItemState.FAILED)
        .values(
            state=ItemState.CLAIMING,
            attempts=0,
            lease_owner=None,
            lease_until=None,
            last_error=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.expire_all()
    audit.record(
        "copy_retried",
        actor=actor,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=transfer.source_environment_id,
        origin=origin,
        details={"item_ids": failed},
        at=now,
    )
    return result.rowcount


def revoke(
    actor: User | None, transfer: Transfer, reason: str, *, origin: str, now: datetime
) -> None:
    """End a transfer for good: open items revoked, source administrations active again,
    both sides told why. A copy running at the same moment either finishes first (its
    administration stays migrated) or loses: its final conditional UPDATE finds the
    item revoked and its whole transaction rolls back, so no partial copy remains."""
    won = db.session.execute(
        update(Transfer)
        .where(Transfer.id == transfer.id, Transfer.is_open)
        .values(state=TransferState.REVOKED, ended_at=now, ended_by_id=actor.id if actor else None)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:
        raise Conflict("transfer", N_("This transfer has already ended and cannot be revoked."))
    revoked_ids = list(
        db.session.scalars(
            select(TransferItem.id).where(
                TransferItem.transfer_id == transfer.id, TransferItem.is_open
            )
        )
    )
    release_administrations(
        select(TransferItem.administration_id).where(TransferItem.id.in_(revoked_ids))
    )
    db.session.execute(
        update(TransferItem)
        .where(TransferItem.id.in_(revoked_ids), TransferItem.is_open)
        .values(state=ItemState.REVOKED, lease_owner=None, lease_until=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    db.session.expire_all()
    audit.record(
        "transfer_revoked",
        actor=actor,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=transfer.source_environment_id,
        origin=origin,
        details={"reason": reason, "revoked_item_ids": revoked_ids},
        at=now,
    )
    notifications.transfer_revoked(transfer, reason, now=now)


def due_for_expiry(now: datetime):
    """SQL: offers the sweep should mark expired."""
    return Transfer.is_dead_unswept(now)


def due_for_reminder(now: datetime, days: int):
    """SQL: live offers expiring within ``days`` whose reminder has not gone out."""
    return (
        Transfer.is_live(now)
        & Transfer.reminder_sent_at.is_(None)
        & (Transfer.expires_at <= now + timedelta(days=days))
    )


def due_for_slow_report(now: datetime, minutes: int):
    """SQL: claimed transfers still copying ``minutes`` after the claim whose slowness
    support has not been told of yet."""
    claimed_before = select(Claim.transfer_id).where(
        Claim.created_at <= now - timedelta(minutes=minutes)
    )
    copying = select(TransferItem.transfer_id).where(TransferItem.state == ItemState.CLAIMING)
    return (
        Transfer.slow_reported_at.is_(None)
        & Transfer.id.in_(claimed_before)
        & Transfer.id.in_(copying)
    )
