"""The copy of a claimed administration taken over from a worker that died or hung
(app.transfers.copying with app.leases): a lapsed lease is taken over and the copy made
exactly once; a live lease is left alone; the worker whose lease was taken over cannot
finish; each take counts an attempt; and a copy given up on is failed and audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select, update

from app import leases
from app.admin_settings.landing import Origin, land_administration
from app.admin_settings.models import (
    Administration,
    AdministrationState,
    Document,
    Plan,
    Provenance,
    ProvenanceOrigin,
)
from app.audit import AuditEvent
from app.db import begin_write, utcnow
from app.errors import Conflict
from app.extensions import db
from app.support.services import stuck_reasons
from app.transfers import lifecycle
from app.transfers.copying import CopyOutcome, copy_item, copy_waiting, policy
from app.transfers.domain import ItemState, TransferState
from app.transfers.models import Transfer, TransferItem
from tests.helpers import accept_all, count, fresh, offer

DOCUMENTS = 4


@pytest.fixture
def claimed(build, office, other_office):
    """A claimed item: Noord's administration of four decided documents, accepted by Zuid."""
    source = build.administration(office.connection, code="1001")
    for status in ("approved", "rejected", "approved", "rejected"):
        build.document(source, status)
    transfer, code = offer(office.superuser, [source])
    accept_all(other_office.superuser, transfer, code, other_office.connection)
    fresh()
    return db.session.get(TransferItem, transfer.items[0].id)


def leave_lease(item_id: int, owner: str, until, attempts: int = 1) -> None:
    """The lease as a worker leaves it when it is killed mid-copy: its copy's transaction
    died with it, only the committed take remains."""
    db.session.execute(
        update(TransferItem)
        .where(TransferItem.id == item_id)
        .values(lease_owner=owner, lease_until=until, attempts=attempts)
    )
    db.session.commit()


def item(item_id: int) -> TransferItem:
    fresh()
    return db.session.get(TransferItem, item_id)


def copies_in(environment_id: int, code: str = "1001") -> list[Administration]:
    fresh()
    return list(
        db.session.scalars(
            select(Administration).where(
                Administration.environment_id == environment_id, Administration.code == code
            )
        )
    )


def assert_copied_once(claimed_item: TransferItem, other_office) -> Administration:
    [target] = copies_in(other_office.environment.id)
    assert count(Provenance, Provenance.transfer_item_id == claimed_item.id) == 1
    assert count(Document, Document.administration_id == target.id) == DOCUMENTS
    assert count(Document, Document.administration_id == claimed_item.administration_id) == (
        DOCUMENTS
    )
    done = item(claimed_item.id)
    assert done.state is ItemState.MIGRATED
    assert done.target_administration_id == target.id
    assert (done.documents_copied, done.documents_total) == (DOCUMENTS, DOCUMENTS)
    assert (done.lease_owner, done.lease_until) == (None, None)
    assert db.session.get(Transfer, done.transfer_id).state is TransferState.COMPLETED
    assert db.session.get(Administration, done.administration_id).state is (
        AdministrationState.MIGRATED
    )
    return target


# --------------------------------------------------------------------------- takeover


def test_a_dead_workers_lapsed_lease_is_taken_over_and_the_copy_made_exactly_once(
    claimed, other_office
):
    leave_lease(claimed.id, "dead-host:4242:0badf00d", utcnow() - timedelta(seconds=1))

    assert copy_waiting() == 1

    assert_copied_once(claimed, other_office)
    assert item(claimed.id).attempts == 2, "the dead worker's take and the takeover"
    assert copy_waiting() == 0
    assert copy_waiting(now=utcnow() + timedelta(days=1)) == 0
    assert len(copies_in(other_office.environment.id)) == 1


def test_a_live_lease_is_not_taken_over(app, claimed, other_office):
    until = utcnow() + timedelta(seconds=app.config["COPY_LEASE_SECONDS"])
    leave_lease(claimed.id, "busy-host:1:cafe", until)

    assert copy_waiting() == 0
    assert copy_item(claimed.id) is CopyOutcome.BUSY

    assert copies_in(other_office.environment.id) == []
    assert count(Provenance) == 0
    waiting = item(claimed.id)
    assert waiting.state is ItemState.CLAIMING
    assert (waiting.lease_owner, waiting.lease_until, waiting.attempts) == (
        "busy-host:1:cafe",
        until,
        1,
    ), "a refused take counts no attempt and leaves the lease as it was"


def test_a_live_lease_is_taken_over_once_it_has_lapsed(app, claimed, other_office):
    until = utcnow() + timedelta(seconds=app.config["COPY_LEASE_SECONDS"])
    leave_lease(claimed.id, "hung-host:1:beef", until)

    assert copy_waiting(now=until - timedelta(seconds=1)) == 0
    assert copy_waiting(now=until + timedelta(seconds=1)) == 1

    assert_copied_once(claimed, other_office)


def test_each_take_counts_one_attempt(claimed, other_office):
    start = utcnow()
    lease = timedelta(seconds=policy().seconds)
    for attempt in (1, 2, 3):
        begin_write(db.session)
        assert leases.take(
            db.session,
            TransferItem,
            claimed.id,
            lifecycle.copy_waiting(),
            owner=f"worker-{attempt}",
            policy=policy(),
            now=start + (attempt - 1) * (lease + timedelta(seconds=1)),
        )
        db.session.commit()
        assert item(claimed.id).attempts == attempt

    assert copy_item(claimed.id, now=start + 3 * (lease + timedelta(seconds=1))) is (
        CopyOutcome.COPIED
    )
    assert item(claimed.id).attempts == 4
    assert_copied_once(claimed, other_office)


# --------------------------------------------------------------------------- the old worker


def old_worker_copies(claimed_item: TransferItem, other_office, owner: str, now) -> None:
    """What the old worker's copy does in its own transaction, up to its last write."""
    begin_write(db.session)
    work_item = db.session.get(TransferItem, claimed_item.id)
    target = land_administration(
        environment=other_office.environment,
        connection=other_office.connection,
        package=work_item.package,
        name=work_item.administration_name,
        code=work_item.administration_code,
        contact_email=work_item.contact_email,
        origin=Origin(
            kind=ProvenanceOrigin.TRANSFER,
            source_environment_name="Kantoor Noord",
            transfer_id=work_item.transfer_id,
            transfer_item_id=work_item.id,
        ),
        now=now,
    )
    lifecycle.item_migrated(
        work_item, target, copied=DOCUMENTS, total=DOCUMENTS, owner=owner, now=now
    )


def take_as(item_id: int, owner: str, now) -> bool:
    begin_write(db.session)
    won = leases.take(
        db.session,
        TransferItem,
        item_id,
        lifecycle.copy_waiting(),
        owner=owner,
        policy=policy(),
        now=now,
    )
    db.session.commit()
    return won


def test_a_worker_whose_lease_was_taken_over_cannot_finish_and_leaves_nothing(
    claimed, other_office
):
    start = utcnow()
    assert take_as(claimed.id, "old-owner", start)
    later = start + timedelta(seconds=policy().seconds + 1)  # the old one hung this long
    assert take_as(claimed.id, "new-owner", later)

    with pytest.raises(Conflict) as lost:
        old_worker_copies(claimed, other_office, "old-owner", later)
    db.session.rollback()

    assert lost.value.message == "This copy was ended or taken over by another worker."
    assert copies_in(other_office.environment.id) == []
    assert count(Provenance) == 0
    after = item(claimed.id)
    assert after.state is ItemState.CLAIMING
    assert (after.lease_owner, after.attempts) == ("new-owner", 2)
    assert db.session.get(Administration, after.administration_id).state is (
        AdministrationState.OFFERED
    )

    # The worker that holds the lease can.
    old_worker_copies(claimed, other_office, "new-owner", later)
    db.session.commit()
    assert len(copies_in(other_office.environment.id)) == 1
    assert item(claimed.id).state is ItemState.MIGRATED


def test_a_worker_whose_copy_was_taken_over_and_finished_cannot_finish_it_again(
    claimed, other_office
):
    start = utcnow()
    assert take_as(claimed.id, "old-owner", start)
    later = start + timedelta(seconds=policy().seconds + 1)
    assert copy_waiting(now=later) == 1

    with pytest.raises(Conflict):
        lifecycle.item_migrated(
            db.session.get(TransferItem, claimed.id),
            db.session.get(Administration, item(claimed.id).target_administration_id),
            copied=DOCUMENTS,
            total=DOCUMENTS,
            owner="old-owner",
            now=later,
        )
    db.session.rollback()

    assert_copied_once(claimed, other_office)


# --------------------------------------------------------------------------- copy_failed


def test_a_copy_given_up_on_is_failed_out_of_the_queue_and_audited(claimed, office):
    now = utcnow()
    assert take_as(claimed.id, "worker-1", now)

    recorded = lifecycle.copy_failed(
        item(claimed.id),
        "OSError: the disk is full",
        give_up=True,
        owner="worker-1",
        retry_at=now + timedelta(minutes=1),
        now=now,
    )
    db.session.commit()

    assert recorded is True
    failed = item(claimed.id)
    assert failed.state is ItemState.FAILED
    assert failed.last_error == "OSError: the disk is full"
    assert (failed.lease_owner, failed.lease_until) == (None, None)
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "copy_failed"))
    assert (event.object_type, event.object_id) == ("transfer_item", claimed.id)
    assert event.environment_id == office.environment.id
    assert event.origin == "worker"
    assert event.details == {
        "transfer_id": claimed.transfer_id,
        "error": "OSError: the disk is full",
    }
    assert copy_waiting(now=now + timedelta(days=1)) == 0, "support must retry it"


def test_a_copy_that_will_be_retried_backs_off_without_an_audit_event(claimed):
    now = utcnow()
    assert take_as(claimed.id, "worker-1", now)
    retry_at = now + timedelta(minutes=5)

    assert lifecycle.copy_failed(
        item(claimed.id), "boom", give_up=False, owner="worker-1", retry_at=retry_at, now=now
    )
    db.session.commit()

    waiting = item(claimed.id)
    assert waiting.state is ItemState.CLAIMING
    assert (waiting.lease_owner, waiting.lease_until) == (None, retry_at)
    assert count(AuditEvent, AuditEvent.action == "copy_failed") == 0
    assert copy_waiting(now=retry_at - timedelta(seconds=1)) == 0
    assert copy_waiting(now=retry_at + timedelta(seconds=1)) == 1


def test_a_worker_that_lost_its_lease_cannot_record_a_failure(claimed):
    start = utcnow()
    assert take_as(claimed.id, "old-owner", start)
    later = start + timedelta(seconds=policy().seconds + 1)
    assert take_as(claimed.id, "new-owner", later)

    recorded = lifecycle.copy_failed(
        item(claimed.id), "late", give_up=True, owner="old-owner", retry_at=later, now=later
    )
    db.session.commit()

    assert recorded is False
    after = item(claimed.id)
    assert (after.state, after.lease_owner, after.last_error) == (
        ItemState.CLAIMING,
        "new-owner",
        None,
    )
    assert count(AuditEvent, AuditEvent.action == "copy_failed") == 0


def test_a_copy_refused_by_the_receiver_is_given_up_at_once_and_audited(claimed, other_office):
    other_office.environment.plan = Plan.STANDARD
    db.session.commit()

    assert copy_item(claimed.id) is CopyOutcome.FAILED

    failed = item(claimed.id)
    assert failed.state is ItemState.FAILED
    assert failed.attempts == 1
    assert failed.last_error == "The receiving environment no longer has the premium plan."
    assert count(AuditEvent, AuditEvent.action == "copy_failed") == 1
    assert copies_in(other_office.environment.id) == []


# --------------------------------------------------------------------------- what support sees


def test_support_sees_a_copy_running_longer_than_the_stuck_threshold_while_its_lease_is_renewed(
    app, build, office, other_office
):
    minutes = app.config["SUPPORT_STUCK_AFTER_MINUTES"]
    start = utcnow() - timedelta(hours=2)
    with time_machine.travel(start, tick=False):
        source = build.administration(office.connection, code="1001")
        build.document(source, "approved")
        transfer, code = offer(office.superuser, [source])
        accept_all(other_office.superuser, transfer, code, other_office.connection)
        item_id = transfer.items[0].id
        assert take_as(item_id, "worker-1", start)
    looked_at = start + timedelta(minutes=minutes + 15)

    def reasons() -> list[str]:
        fresh()
        return [r.kind for r in stuck_reasons(db.session.get(Transfer, transfer.id), looked_at)]

    assert reasons() == ["claiming_too_long"], "with no heartbeat the copy shows as stuck"
    # The worker still lives (its copy hangs on a lock, or on a slow store): its heartbeat
    # thread renews the lease, as it does every COPY_HEARTBEAT_SECONDS.
    with time_machine.travel(looked_at - timedelta(seconds=20), tick=False):
        assert leases.renew(db.engine, TransferItem, item_id, "worker-1", policy().seconds)

    assert reasons() == ["claiming_too_long"], "still copying after more than the threshold"
