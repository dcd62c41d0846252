"""The copy of one accepted administration into the receiving environment.

``copy_item`` runs as a job in the scheduler/worker process. It first takes the
item with a lease (a short transaction of its own), then copies everything in ONE
transaction: the administration, its provenance, every document row (by blob
reference: the files are content-addressed, so no bytes move), the source's new
state and the item's. Any failure rolls all of it back; the lease runs out and a
later run tries again, so a copy is all or nothing and never made twice (the
unique ``provenance.transfer_item_id`` is the database's own last word on that).

Documents are copied with ``INSERT … SELECT`` in chunks of ``COPY_CHUNK_DOCUMENTS``
rows, walking the source's ids in order, so memory stays flat whatever their
number; after each chunk the progress store is told how far it got.
"""

from __future__ import annotations

import enum
import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, insert, literal, select, update

from app import audit
from app.admin_settings.domain import inbound_email
from app.admin_settings.models import (
    Administration,
    AdministrationState,
    Connection,
    Document,
    Environment,
    Plan,
)
from app.db import begin_write, utcnow
from app.errors import N_
from app.extensions import db
from app.progress import progress_store
from app.transfers import emails
from app.transfers.models import (
    Claim,
    ItemState,
    Provenance,
    Transfer,
    TransferItem,
    TransferState,
)

log = logging.getLogger(__name__)

# Columns a copied document keeps as they are.
KEPT_COLUMNS = (
    "blob_key",
    "size",
    "content_type",
    "filename",
    "kind",
    "counterparty",
    "amount",
    "currency",
    "invoice_date",
    "status",
    "booked_year",
    "booked_period",
    "uploaded_by_name",
    "decided_by_name",
    "decided_at",
    "created_at",
)


class CopyOutcome(enum.StrEnum):
    COPIED = "copied"
    BUSY = "busy"  # another worker holds the lease, or the item is no longer waiting
    RETRY = "retry"  # failed this time; tried again after a back-off
    FAILED = "failed"  # gave up: support can retry it


class CopyRefused(Exception):
    """A precondition no longer holds; retrying will not help until someone acts."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def progress_key(item_id: int) -> str:
    return f"item-{item_id}"


def copy_item(item_id: int, *, now: datetime | None = None) -> CopyOutcome:
    """Copy one claimed item if no other worker has it; commits its own transactions."""
    now = now or utcnow()
    config = current_app.config
    begin_write(db.session)
    leased = db.session.execute(
        update(TransferItem)
        .where(
            TransferItem.id == item_id,
            TransferItem.state == ItemState.CLAIMING,
            (TransferItem.lease_until.is_(None)) | (TransferItem.lease_until < now),
        )
        .values(
            lease_until=now + timedelta(seconds=config["COPY_LEASE_SECONDS"]),
            attempts=TransferItem.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if leased.rowcount != 1:
        return CopyOutcome.BUSY
    try:
        begin_write(db.session)
        _copy(item_id, now)
        db.session.commit()
    except Exception as error:  # noqa: BLE001 - every failure is recorded and retried
        db.session.rollback()
        return _record_failure(item_id, error, now)
    finally:
        progress_store().clear(progress_key(item_id))
    return CopyOutcome.COPIED


def _copy(item_id: int, now: datetime) -> None:
    item = db.session.get(TransferItem, item_id)
    # The transfer's row first, as a withdraw or revoke takes it: whoever comes second
    # waits and then finds the state changed (no deadlock, no overwritten outcome).
    transfer = db.session.get(Transfer, item.transfer_id, with_for_update={"key_share": True})
    claim = db.session.scalars(select(Claim).where(Claim.transfer_id == transfer.id)).one()
    source = db.session.get(Administration, item.administration_id)
    target_environment = db.session.get(Environment, claim.target_environment_id)
    connection = (
        db.session.get(Connection, item.target_connection_id) if item.target_connection_id else None
    )
    _check_target(item, source, target_environment, connection)

    target = Administration(
        environment_id=target_environment.id,
        connection_id=connection.id,
        name=source.name,
        code=source.code,
        contact_email=source.contact_email,
        inbound_email=_free_inbound_address(target_environment.office_code, source.code),
        state=AdministrationState.ACTIVE,
        created_at=now,
    )
    db.session.add(target)
    db.session.flush()
    db.session.add(
        Provenance(
            administration_id=target.id,
            transfer_item_id=item.id,
            transfer_id=transfer.id,
            source_environment_id=transfer.source_environment_id,
            source_environment_name=transfer.source_environment.name,
            source_administration_id=source.id,
            migrated_at=now,
        )
    )
    db.session.flush()

    copied, total = _copy_documents(item.id, source.id, target.id, target_environment.id)

    source.state = AdministrationState.MIGRATED
    done = db.session.execute(
        update(TransferItem)
        .where(TransferItem.id == item.id, TransferItem.state == ItemState.CLAIMING)
        .values(
            state=ItemState.MIGRATED,
            target_administration_id=target.id,
            documents_total=total,
            documents_copied=copied,
            finished_at=now,
            lease_until=None,
            last_error=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        raise RuntimeError("the item left the claiming state during the copy")
    audit.record(
        "administration_migrated",
        actor=None,
        object_type="transfer_item",
        object_id=item.id,
        environment_id=target_environment.id,
        origin="worker",
        details={
            "transfer_id": transfer.id,
            "source_administration_id": source.id,
            "target_administration_id": target.id,
            "documents": copied,
        },
    )
    db.session.flush()
    _complete_if_done(transfer, claim, now)


def _free_inbound_address(office_code: str, code: str) -> str:
    """``<office>.<code>@…``, or with ``-2``, ``-3``… when the environment already uses it
    (the same code under another connection, or codes that read alike in an address)."""
    domain = current_app.config["MAIL_DOMAIN"]
    candidates = [inbound_email(office_code, code, domain)]
    candidates += [inbound_email(office_code, f"{code}-{n}", domain) for n in range(2, 100)]
    taken = set(
        db.session.scalars(
            select(Administration.inbound_email).where(Administration.inbound_email.in_(candidates))
        )
    )
    return next(address for address in candidates if address not in taken)


def _check_target(
    item: TransferItem,
    source: Administration,
    environment: Environment,
    connection: Connection | None,
) -> None:
    """The claim's preconditions, checked again inside the copy's transaction."""
    if environment.plan is not Plan.PREMIUM:
        raise CopyRefused(N_("The receiving environment no longer has the premium plan."))
    if (
        connection is None
        or connection.environment_id != environment.id
        or connection.package.value != item.package
    ):
        raise CopyRefused(
            N_("The chosen connection no longer exists in the receiving environment.")
        )
    clash = db.session.scalar(
        select(func.count())
        .select_from(Administration)
        .where(Administration.connection_id == connection.id, Administration.code == source.code)
    )
    if clash:
        raise CopyRefused(
            N_("The receiving connection already has an administration with this code.")
        )


def _copy_documents(
    item_id: int, source_id: int, target_id: int, environment_id: int
) -> tuple[int, int]:
    """INSERT … SELECT the source's documents in id-ordered chunks; (copied, total)."""
    table = Document.__table__
    chunk = current_app.config["COPY_CHUNK_DOCUMENTS"]
    total = db.session.scalar(
        select(func.count()).select_from(table).where(table.c.administration_id == source_id)
    )
    columns = [table.c[name] for name in KEPT_COLUMNS]
    target_columns = [*KEPT_COLUMNS, "environment_id", "administration_id", "source_document_id"]
    of_source = table.c.administration_id == source_id
    store = progress_store()
    key = progress_key(item_id)
    store.report(key, 0, total)
    copied = 0
    # Walk the source's ids along the (administration_id, id) index: each chunk ends
    # where the next begins, found by the index, so nothing grows with the count.
    low = db.session.scalar(select(func.min(table.c.id)).where(of_source))
    while low is not None:
        high = db.session.scalar(
            select(table.c.id)
            .where(of_source, table.c.id >= low)
            .order_by(table.c.id)
            .offset(chunk)
            .limit(1)
        )
        condition = [of_source, table.c.id >= low]
        if high is not None:
            condition.append(table.c.id < high)
        result = db.session.execute(
            insert(table)
            .from_select(
                target_columns,
                select(*columns, literal(environment_id), literal(target_id), table.c.id).where(
                    *condition
                ),
            )
            # Without it, SQLAlchemy does not keep an INSERT's row count (-1 on PostgreSQL).
            .execution_options(preserve_rowcount=True)
        )
        copied += result.rowcount
        store.report(key, copied, total)
        low = high
    if copied != total:
        raise RuntimeError(f"copied {copied} documents of {total}")
    return copied, total


def _complete_if_done(transfer: Transfer, claim: Claim, now: datetime) -> None:
    """When no item is waiting any more, the transfer is completed and both sides told."""
    open_items = db.session.scalar(
        select(func.count())
        .select_from(TransferItem)
        .where(
            TransferItem.transfer_id == transfer.id,
            TransferItem.state.in_([ItemState.OFFERED, ItemState.CLAIMING, ItemState.FAILED]),
        )
    )
    if open_items:
        return
    won = db.session.execute(
        update(Transfer)
        .where(Transfer.id == transfer.id, Transfer.state == TransferState.OFFERED)
        .values(state=TransferState.COMPLETED, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:
        return
    db.session.expire_all()  # the UPDATEs above bypassed the loaded objects
    audit.record(
        "transfer_completed",
        actor=None,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=transfer.source_environment_id,
        origin="worker",
        details={"claim_id": claim.id},
    )
    emails.claim_completed(transfer, claim)


def _record_failure(item_id: int, error: Exception, now: datetime) -> CopyOutcome:
    """Note why a copy failed; retry after a back-off, or give up after the last attempt."""
    config = current_app.config
    message = (
        error.message if isinstance(error, CopyRefused) else f"{type(error).__name__}: {error}"
    )
    log.warning("copy of transfer item %s failed: %s", item_id, message)
    begin_write(db.session)
    item = db.session.get(TransferItem, item_id)
    if item is None or item.state is not ItemState.CLAIMING:
        db.session.commit()
        return CopyOutcome.BUSY
    item.last_error = message[:500]
    give_up = isinstance(error, CopyRefused) or item.attempts >= config["COPY_MAX_ATTEMPTS"]
    if give_up:
        item.state = ItemState.FAILED
        item.lease_until = None
        audit.record(
            "copy_failed",
            actor=None,
            object_type="transfer_item",
            object_id=item.id,
            environment_id=item.transfer.source_environment_id,
            origin="worker",
            details={"transfer_id": item.transfer_id, "error": item.last_error},
        )
    else:
        item.lease_until = now + timedelta(seconds=min(30 * 2 ** (item.attempts - 1), 1800))
    db.session.commit()
    return CopyOutcome.FAILED if give_up else CopyOutcome.RETRY


def copy_waiting(*, now: datetime | None = None, limit: int = 10) -> int:
    """The job: copy claimed items whose lease is free; returns how many were copied."""
    now = now or utcnow()
    stmt = (
        select(TransferItem.id)
        .where(
            TransferItem.state == ItemState.CLAIMING,
            (TransferItem.lease_until.is_(None)) | (TransferItem.lease_until < now),
        )
        .order_by(TransferItem.id)
        .limit(limit)
    )
    if db.engine.dialect.name == "postgresql":
        # Workers skip rows another worker is looking at; the lease decides anyway.
        stmt = stmt.with_for_update(skip_locked=True)
    item_ids = list(db.session.scalars(stmt))
    db.session.commit()
    return sum(copy_item(i, now=now) is CopyOutcome.COPIED for i in item_ids)
