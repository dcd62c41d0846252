"""The copy of one accepted administration into the receiving environment.

``copy_item`` runs as a job in a worker process (``flask scheduler``). It takes the
item with a lease (``app.leases``, a short transaction of its own) and renews it by a
heartbeat while it copies everything in ONE transaction: the administration and its
provenance (landed through ``admin_settings.landing``), every document row (by blob
reference: the files are content-addressed, so no bytes move), the source's new state
and the item's (``lifecycle.item_migrated``, only while this worker still holds the
lease). Any failure rolls all of it back and backs off; a dead or hung worker's lease
lapses and another worker takes over. So a copy is all or nothing and never made
twice (the unique ``provenance.transfer_item_id`` is the database's last word).

Documents are copied with ``INSERT … SELECT`` in chunks of ``COPY_CHUNK_DOCUMENTS``
rows, walking the source's ids in order, so memory stays flat whatever their
number; after each chunk the progress store is told how far it got.
"""

from __future__ import annotations

import enum
import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, insert, literal, select

from app import leases
from app.admin_settings.landing import LandingRefused, Origin, land_administration
from app.admin_settings.models import (
    Administration,
    Connection,
    Document,
    Environment,
    ProvenanceOrigin,
)
from app.db import begin_write, utcnow
from app.extensions import db
from app.progress import progress_store
from app.transfers import lifecycle
from app.transfers.models import Claim, Transfer, TransferItem
from app.web import unit_of_work

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
    # A migrated ("gemigreerd") document stays locked in the receiving office.
    "locked",
)


class CopyOutcome(enum.StrEnum):
    COPIED = "copied"
    BUSY = "busy"  # another worker holds the lease, or the item is no longer waiting
    RETRY = "retry"  # failed this time; tried again after a back-off
    FAILED = "failed"  # gave up: support can retry it


def policy() -> leases.LeasePolicy:
    config = current_app.config
    return leases.LeasePolicy(
        seconds=config["COPY_LEASE_SECONDS"],
        heartbeat_seconds=config["COPY_HEARTBEAT_SECONDS"],
        max_attempts=config["COPY_MAX_ATTEMPTS"],
        backoff_base=30,
        backoff_cap=1800,
    )


def progress_key(item_id: int) -> str:
    return f"item-{item_id}"


def copy_item(item_id: int, *, now: datetime | None = None) -> CopyOutcome:
    """Copy one claimed item if no other worker has it: three units of work of its own
    (take the lease; copy; on failure, record it)."""
    now = now or utcnow()
    lease = policy()
    owner = leases.new_owner()
    with unit_of_work():
        begin_write(db.session)
        taken = leases.take(
            db.session,
            TransferItem,
            item_id,
            lifecycle.copy_waiting(),
            owner=owner,
            policy=lease,
            now=now,
        )
    if not taken:
        return CopyOutcome.BUSY
    # A new take starts from nothing: never show the figure of a worker that died.
    progress_store().clear(progress_key(item_id))
    with unit_of_work():
        # Attempts also count takes whose worker died before it could record a failure:
        # past the maximum, the item waits for support instead of being tried forever.
        item = db.session.get(TransferItem, item_id)
        if item.attempts > lease.max_attempts:
            lifecycle.copy_failed(
                item,
                f"gave up after {item.attempts - 1} attempts that did not finish",
                give_up=True,
                owner=owner,
                retry_at=now,
                now=now,
            )
            return CopyOutcome.FAILED
    try:
        with leases.Heartbeat(db.engine, TransferItem, item_id, owner, lease), unit_of_work():
            begin_write(db.session)
            # PostgreSQL: if this process is stopped mid-copy, the server ends its session
            # (and its locks) after the idle timeout; and a lock a stopped worker still
            # holds is waited for only briefly, then this take backs off.
            config = current_app.config
            leases.bound_waits(
                db.session,
                lock_seconds=config["COPY_LOCK_TIMEOUT_SECONDS"],
                idle_seconds=config["COPY_IDLE_TIMEOUT_SECONDS"],
            )
            _copy(item_id, owner, now)
    except Exception as error:  # noqa: BLE001 - every failure is recorded and retried
        if leases.is_lock_timeout(error):
            return _wait_for_lock(item_id, owner)
        return _record_failure(item_id, owner, error, now)
    finally:
        progress_store().clear(progress_key(item_id))
    return CopyOutcome.COPIED


def _copy(item_id: int, owner: str, now: datetime) -> None:
    item = db.session.get(TransferItem, item_id)
    # The transfer's row first, as a withdraw or revoke takes it: whoever comes second
    # waits and then finds the state changed (no deadlock, no overwritten outcome).
    transfer = db.session.get(Transfer, item.transfer_id, with_for_update={"key_share": True})
    claim = db.session.scalars(select(Claim).where(Claim.transfer_id == transfer.id)).one()
    source = db.session.get(Administration, item.administration_id)
    connection = (
        db.session.get(Connection, item.target_connection_id) if item.target_connection_id else None
    )
    target = land_administration(
        environment=db.session.get(Environment, claim.target_environment_id),
        connection=connection,
        package=item.package,
        name=source.name,
        code=source.code,
        contact_email=source.contact_email,
        origin=Origin(
            kind=ProvenanceOrigin.TRANSFER,
            source_environment_name=transfer.source_environment.name,
            source_environment_id=transfer.source_environment_id,
            source_administration_id=source.id,
            transfer_id=transfer.id,
            transfer_item_id=item.id,
        ),
        now=now,
    )
    copied, total = _copy_documents(item.id, source.id, target.id, target.environment_id)
    lifecycle.item_migrated(item, target, copied=copied, total=total, owner=owner, now=now)
    lifecycle.complete_if_done(transfer, claim, now=now)


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


def _wait_for_lock(item_id: int, owner: str) -> CopyOutcome:
    """Another (hung) worker still holds the transfer's locks: not a failed attempt. Let go
    of the lease and try again once the server has had time to end that worker's session."""
    log.info("copy of transfer item %s waits for a lock another worker holds", item_id)
    retry_at = utcnow() + timedelta(seconds=current_app.config["COPY_LOCK_TIMEOUT_SECONDS"])
    with unit_of_work():
        begin_write(db.session)
        leases.release(db.session, TransferItem, item_id, owner, retry_at, refund=True)
    return CopyOutcome.BUSY


def _record_failure(item_id: int, owner: str, error: Exception, now: datetime) -> CopyOutcome:
    """Note why a copy failed; retry after a back-off, or give up after the last attempt
    (at once when the receiver's preconditions no longer hold)."""
    lease = policy()
    # A refusal is kept as its message id, so support reads it in its own language.
    message = (
        error.message if isinstance(error, LandingRefused) else f"{type(error).__name__}: {error}"
    )
    log.warning("copy of transfer item %s failed: %s", item_id, message)
    with unit_of_work():
        begin_write(db.session)
        item = db.session.get(TransferItem, item_id)
        if item is None:
            return CopyOutcome.BUSY
        give_up = isinstance(error, LandingRefused) or item.attempts >= lease.max_attempts
        recorded = lifecycle.copy_failed(
            item,
            message,
            give_up=give_up,
            owner=owner,
            retry_at=now + lease.backoff(item.attempts),
            now=now,
        )
    if not recorded:
        return CopyOutcome.BUSY
    return CopyOutcome.FAILED if give_up else CopyOutcome.RETRY


def copy_waiting(*, now: datetime | None = None, limit: int = 10) -> int:
    """The job: copy claimed items whose lease is free; returns how many were copied."""
    given, now = now, now or utcnow()
    with unit_of_work():  # the candidates' row locks end with this short unit
        item_ids = leases.candidates(db.session, TransferItem, lifecycle.copy_waiting(), now, limit)
    # Each take's lease starts when its own copy starts (a given ``now`` is a test's clock).
    return sum(copy_item(i, now=given) is CopyOutcome.COPIED for i in item_ids)
