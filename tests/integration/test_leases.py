"""Leases on the database (app.leases), on both kinds of queue row that use them: the
copy's transfer items and the outbox's messages. Of two workers exactly one takes a
row; a held row stays held until its lease passes; a backed-off row stays out of reach
until its back-off passes; only the owner renews; and on PostgreSQL the heartbeat keeps
the lease of a copy running in one long transaction alive, so nobody takes it over."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import leases
from app.db import begin_write, utcnow
from app.extensions import db
from app.leases import LeasePolicy
from app.outbox import OutboxMessage, OutboxState
from app.transfers.domain import ItemState
from app.transfers.models import TransferItem
from tests.helpers import fresh, offer

POLICY = LeasePolicy(seconds=60, heartbeat_seconds=20, max_attempts=5, backoff_base=30)
T0 = utcnow().replace(microsecond=0)
TINY = timedelta(microseconds=1)


def on_postgresql() -> bool:
    return db.engine.dialect.name == "postgresql"


@dataclass
class Queue:
    """A table of leased work, with rows to take and what makes a row available."""

    model: type
    ids: list[int]
    make: Callable[[int], list[int]]  # n more untaken rows

    @property
    def available(self):
        if self.model is TransferItem:
            return TransferItem.state == ItemState.OFFERED
        return OutboxMessage.state.in_((OutboxState.PENDING, OutboxState.SENDING))

    def make_unavailable(self, row_id: int) -> None:
        state = ItemState.WITHDRAWN if self.model is TransferItem else OutboxState.SENT
        db.session.execute(update(self.model).where(self.model.id == row_id).values(state=state))
        db.session.commit()


def transfer_items(build, office, n: int) -> list[int]:
    administrations = [build.administration(office.connection) for _ in range(n)]
    transfer, _code = offer(office.superuser, administrations)
    return [i.id for i in transfer.items]


def outbox_messages(n: int) -> list[int]:
    rows = [
        OutboxMessage(
            message_id=f"<{uuid.uuid4().hex}@tests>",
            kind="test",
            to_email=f"ontvanger{k}@zuid.example",
            language="nl",
            subject="Onderwerp",
            body_text="Tekst",
            body_html="<p>Tekst</p>",
            next_attempt_at=T0,
        )
        for k in range(n)
    ]
    db.session.add_all(rows)
    db.session.commit()
    return [r.id for r in rows]


def make_queue(kind: str, build, office) -> Queue:
    if kind == "transfer_items":
        model, make = TransferItem, lambda n: transfer_items(build, office, n)
    else:
        model, make = OutboxMessage, outbox_messages
    ids = make(3)
    fresh()
    return Queue(model, ids, make)


@pytest.fixture(params=["transfer_items", "outbox_messages"])
def queue(request, build, office) -> Queue:
    return make_queue(request.param, build, office)


@pytest.fixture
def copy_queue(build, office) -> Queue:
    """The copy's items: the queue whose work runs in one long transaction."""
    return make_queue("transfer_items", build, office)


def lease_of(model, row_id: int) -> tuple[str | None, object, int]:
    """(owner, lease until, attempts) as committed."""
    fresh()
    owner, until, attempts = db.session.execute(
        select(model.lease_owner, model.lease_until, model.attempts).where(model.id == row_id)
    ).one()
    db.session.commit()
    return owner, until, attempts


def take(queue: Queue, row_id: int, owner: str, now, policy: LeasePolicy = POLICY) -> bool:
    """One worker's take, in a short write transaction of its own, committed."""
    begin_write(db.session)
    won = leases.take(
        db.session, queue.model, row_id, queue.available, owner=owner, policy=policy, now=now
    )
    db.session.commit()
    return won


def candidates(queue: Queue, now, limit: int = 10) -> list[int]:
    found = leases.candidates(db.session, queue.model, queue.available, now, limit)
    db.session.commit()
    return found


# --------------------------------------------------------------------------- take


def test_a_free_row_is_taken_for_its_owner_until_the_lease_ends_and_the_attempt_counts(queue):
    row = queue.ids[0]

    assert take(queue, row, "worker-a", T0) is True

    assert lease_of(queue.model, row) == ("worker-a", T0 + timedelta(seconds=60), 1)


def test_of_two_workers_taking_one_row_at_the_same_instant_exactly_one_wins(app, queue):
    rounds = 10
    for round_no in range(rounds):
        [row] = queue.make(1)
        now = utcnow()
        barrier = threading.Barrier(2)
        results: dict[str, object] = {}

        def worker(name: str, row=row, now=now, barrier=barrier, results=results) -> None:
            with app.app_context():
                try:
                    barrier.wait()
                    results[name] = take(queue, row, name, now)
                except Exception as error:  # noqa: BLE001 - reported to the test
                    db.session.rollback()
                    results[name] = error
                finally:
                    db.session.remove()

        threads = [threading.Thread(target=worker, args=(n,)) for n in ("worker-a", "worker-b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive(), "a worker hung"

        assert sorted(results.values(), key=str) == [False, True], f"round {round_no}: {results}"
        [winner] = [name for name, won in results.items() if won is True]
        owner, _until, attempts = lease_of(queue.model, row)
        assert (owner, attempts) == (winner, 1), f"round {round_no}"


def test_a_taken_row_cannot_be_taken_again_while_its_lease_runs(queue):
    row = queue.ids[0]
    take(queue, row, "worker-a", T0)

    assert take(queue, row, "worker-b", T0) is False
    assert take(queue, row, "worker-b", T0 + timedelta(seconds=59)) is False
    assert take(queue, row, "worker-a", T0 + timedelta(seconds=30)) is False
    # The lease runs up to and including its last instant.
    assert take(queue, row, "worker-b", T0 + timedelta(seconds=60)) is False

    assert lease_of(queue.model, row) == ("worker-a", T0 + timedelta(seconds=60), 1)


def test_once_the_lease_has_passed_another_worker_takes_the_row_and_the_attempts_grow(queue):
    row = queue.ids[0]
    take(queue, row, "worker-a", T0)
    lapsed = T0 + timedelta(seconds=60) + TINY

    assert take(queue, row, "worker-b", lapsed) is True

    assert lease_of(queue.model, row) == ("worker-b", lapsed + timedelta(seconds=60), 2)
    later = lapsed + timedelta(seconds=61)
    assert take(queue, row, "worker-c", later) is True
    assert lease_of(queue.model, row)[2] == 3


def test_a_row_that_is_not_available_is_not_taken_even_with_a_free_lease(queue):
    row = queue.ids[0]
    queue.make_unavailable(row)

    assert take(queue, row, "worker-a", T0) is False

    assert lease_of(queue.model, row) == (None, None, 0)


def test_a_take_that_is_rolled_back_leaves_the_row_free(queue):
    row = queue.ids[0]
    begin_write(db.session)
    assert leases.take(
        db.session, queue.model, row, queue.available, owner="worker-a", policy=POLICY, now=T0
    )
    db.session.rollback()

    assert lease_of(queue.model, row) == (None, None, 0)
    assert take(queue, row, "worker-b", T0) is True


def test_a_take_does_not_touch_the_other_rows(queue):
    first, second, third = queue.ids
    take(queue, second, "worker-a", T0)

    assert lease_of(queue.model, first) == (None, None, 0)
    assert lease_of(queue.model, third) == (None, None, 0)


# --------------------------------------------------------------------------- held_by


def test_held_by_matches_the_row_only_for_the_owner_of_its_current_lease(queue):
    row = queue.ids[0]
    model = queue.model
    take(queue, row, "worker-a", T0)

    def held(owner):
        return db.session.scalars(
            select(model.id).where(model.id.in_(queue.ids), leases.held_by(model, owner))
        ).all()

    assert held("worker-a") == [row]
    assert held("worker-b") == []

    take(queue, row, "worker-b", T0 + timedelta(seconds=61))
    assert held("worker-a") == [], "a lease taken over is no longer the old worker's"
    assert held("worker-b") == [row]


# --------------------------------------------------------------------------- candidates


def test_candidates_are_the_free_available_rows_oldest_first_up_to_the_limit(queue):
    first, second, third = queue.ids

    assert candidates(queue, T0) == [first, second, third]
    assert candidates(queue, T0, limit=2) == [first, second]

    take(queue, second, "worker-a", T0)
    assert candidates(queue, T0) == [first, third]
    assert candidates(queue, T0 + timedelta(seconds=61)) == [first, second, third]

    queue.make_unavailable(first)
    assert candidates(queue, T0) == [third]


# --------------------------------------------------------------------------- back_off


def test_backing_off_releases_the_owner_and_keeps_the_row_out_of_reach_until_it_passes(queue):
    row = queue.ids[0]
    take(queue, row, "worker-a", T0)
    failed_at = T0 + timedelta(seconds=5)

    begin_write(db.session)
    leases.back_off(db.session, queue.model, row, "worker-a", 1, POLICY, now=failed_at)
    db.session.commit()

    retry_at = failed_at + POLICY.backoff(1)
    assert lease_of(queue.model, row) == (None, retry_at, 1)
    assert row not in candidates(queue, failed_at)
    assert row not in candidates(queue, retry_at - TINY)
    assert take(queue, row, "worker-b", retry_at - TINY) is False
    assert row in candidates(queue, retry_at + TINY)
    assert take(queue, row, "worker-b", retry_at + TINY) is True
    assert lease_of(queue.model, row)[::2] == ("worker-b", 2)


def test_the_back_off_grows_with_the_attempts(queue):
    row = queue.ids[0]
    moment = T0
    waits = []
    for attempt in range(1, 4):
        assert take(queue, row, f"worker-{attempt}", moment) is True
        begin_write(db.session)
        leases.back_off(
            db.session, queue.model, row, f"worker-{attempt}", attempt, POLICY, now=moment
        )
        db.session.commit()
        _owner, until, attempts = lease_of(queue.model, row)
        assert attempts == attempt
        waits.append(until - moment)
        moment = until + TINY

    assert waits == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]


def test_a_worker_that_lost_the_lease_cannot_back_the_row_off(queue):
    row = queue.ids[0]
    take(queue, row, "worker-a", T0)
    taken_over = T0 + timedelta(seconds=61)
    take(queue, row, "worker-b", taken_over)

    begin_write(db.session)
    leases.back_off(db.session, queue.model, row, "worker-a", 1, POLICY, now=taken_over)
    db.session.commit()

    assert lease_of(queue.model, row) == ("worker-b", taken_over + timedelta(seconds=60), 2)


# --------------------------------------------------------------------------- renew


def test_the_owner_renews_its_lease_from_a_connection_of_its_own(queue):
    row = queue.ids[0]
    now = utcnow()
    take(queue, row, "worker-a", now)
    _owner, before, _attempts = lease_of(queue.model, row)

    assert leases.renew(db.engine, queue.model, row, "worker-a", 3600) is True

    owner, after, attempts = lease_of(queue.model, row)
    assert owner == "worker-a"
    assert attempts == 1, "a renewal is no new attempt"
    assert after >= now + timedelta(seconds=3600)
    assert after > before


def test_another_worker_cannot_renew_a_lease_it_does_not_hold(queue):
    row = queue.ids[0]
    take(queue, row, "worker-a", T0)

    assert leases.renew(db.engine, queue.model, row, "worker-b", 3600) is False

    assert lease_of(queue.model, row) == ("worker-a", T0 + timedelta(seconds=60), 1)


def test_a_lease_taken_over_can_no_longer_be_renewed_by_its_old_owner(queue):
    row = queue.ids[0]
    take(queue, row, "worker-a", T0)
    take(queue, row, "worker-b", T0 + timedelta(seconds=61))

    assert leases.renew(db.engine, queue.model, row, "worker-a", 3600) is False
    assert leases.renew(db.engine, queue.model, row, "worker-b", 3600) is True
    assert lease_of(queue.model, row)[0] == "worker-b"


def test_renewing_a_row_of_another_id_changes_nothing_here(queue):
    first, second, _third = queue.ids
    take(queue, first, "worker-a", T0)

    assert leases.renew(db.engine, queue.model, second, "worker-a", 3600) is False
    assert lease_of(queue.model, first) == ("worker-a", T0 + timedelta(seconds=60), 1)


# --------------------------------------------------------------------------- the heartbeat

FAST = LeasePolicy(seconds=1, heartbeat_seconds=0.2, max_attempts=5)


def test_the_heartbeat_keeps_the_lease_alive_while_a_long_transaction_of_the_work_is_open(
    copy_queue,
):
    if not on_postgresql():
        pytest.skip(
            "SQLite: the work's write transaction holds the database's write lock, which "
            "no other worker can take while it runs; that lock is the heartbeat there"
        )
    model, row = copy_queue.model, copy_queue.ids[0]
    taken_at = utcnow()
    assert take(copy_queue, row, "worker-a", taken_at, policy=FAST) is True
    first_until = taken_at + timedelta(seconds=FAST.seconds)

    with leases.Heartbeat(db.engine, model, row, "worker-a", FAST) as heartbeat:
        # The work: one long transaction on the test session's connection, holding the
        # row as a copy does (FOR KEY SHARE: its provenance refers to the item) and
        # writing meanwhile.
        db.session.execute(
            select(model.id).where(model.id == row).with_for_update(read=True, key_share=True)
        )
        db.session.execute(
            update(model).where(model.id == copy_queue.ids[1]).values(attempts=model.attempts)
        )
        time.sleep(1.3)  # well past the first lease
        # Meanwhile, from elsewhere: the lease has moved on and nobody can take the row.
        with db.engine.connect() as other:
            owner, until = other.execute(
                select(model.lease_owner, model.lease_until).where(model.id == row)
            ).one()
            other.rollback()
        thief = Session(db.engine)
        try:
            stolen = leases.take(
                thief, model, row, copy_queue.available, owner="worker-b", policy=FAST, now=utcnow()
            )
            thief.commit()
        finally:
            thief.close()
        db.session.commit()  # the work ends

    assert heartbeat.lost is False
    assert owner == "worker-a"
    assert until > first_until + timedelta(seconds=0.5), "the heartbeat renewed the lease"
    assert stolen is False, "a living worker's row was taken over"
    assert lease_of(model, row)[::2] == ("worker-a", 1)


def test_without_a_heartbeat_the_same_lease_lapses_and_is_taken_over(copy_queue):
    """The control for the test above: it is the heartbeat that keeps the row."""
    if not on_postgresql():
        pytest.skip("SQLite: the work's write lock is the heartbeat there (see app.leases)")
    model, row = copy_queue.model, copy_queue.ids[0]
    taken_at = utcnow()
    take(copy_queue, row, "worker-a", taken_at, policy=FAST)

    time.sleep(1.1)

    assert take(copy_queue, row, "worker-b", utcnow(), policy=FAST) is True
    assert lease_of(model, row)[::2] == ("worker-b", 2)


def test_the_heartbeat_notices_when_its_lease_was_taken_over_and_stops(copy_queue):
    if not on_postgresql():
        pytest.skip("SQLite: the heartbeat does nothing there (see app.leases)")
    model, row = copy_queue.model, copy_queue.ids[0]
    take(copy_queue, row, "worker-a", utcnow(), policy=FAST)

    with leases.Heartbeat(db.engine, model, row, "worker-a", FAST) as heartbeat:
        db.session.execute(update(model).where(model.id == row).values(lease_owner="worker-b"))
        db.session.commit()
        deadline = time.monotonic() + 3
        while not heartbeat.lost and time.monotonic() < deadline:
            time.sleep(0.05)

    assert heartbeat.lost is True
    assert lease_of(model, row)[0] == "worker-b", "the old owner did not write the lease back"


def test_on_sqlite_the_heartbeat_starts_no_thread_and_leaves_the_lease_as_it_is(copy_queue):
    if on_postgresql():
        pytest.skip("PostgreSQL: the heartbeat renews (tested above)")
    model, row = copy_queue.model, copy_queue.ids[0]
    take(copy_queue, row, "worker-a", T0, policy=FAST)
    threads_before = threading.active_count()

    with leases.Heartbeat(db.engine, model, row, "worker-a", FAST):
        assert threading.active_count() == threads_before
        time.sleep(0.5)

    assert lease_of(model, row) == ("worker-a", T0 + timedelta(seconds=FAST.seconds), 1)
