"""Work taken with a lease: take a row, renew it by a heartbeat, back off, give up.

Used by every queue of background work (the mail relay, the copy of a claimed
administration, the coming import): a row is *taken* by one conditional UPDATE that
writes a lease (``lease_owner``, ``lease_until``) and counts the attempt, so of any
number of workers exactly one wins. While the work runs, a heartbeat renews the lease
from a connection of its own, so the work's own long transaction never blocks it;
when the worker dies or hangs the heartbeat stops, the lease lapses and another
worker takes the row over. A failed attempt backs off exponentially (the lease is
pushed into the future with no owner) and the caller gives up after its maximum.

The model needs ``id``, ``lease_owner``, ``lease_until`` and ``attempts`` columns.
On SQLite (one machine) the work's write transaction holds the database's write lock,
which nobody else can take while it runs and which dies with its process; the
heartbeat is not needed there and does nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.db import utcnow

log = logging.getLogger(__name__)

_HOST = socket.gethostname()


def new_owner() -> str:
    """A name for one take of a lease: ``host:pid:random``, unique per take, so a worker
    can tell its own lease from a later one and support can tell which process holds it."""
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class LeasePolicy:
    """How long a lease lasts, how often it is renewed, and when to give up.

    ``backoff_base`` seconds before the first retry, doubling up to ``backoff_cap``.
    """

    seconds: int
    heartbeat_seconds: int
    max_attempts: int
    backoff_base: int = 30
    backoff_cap: int = 1800

    def backoff(self, attempts: int) -> timedelta:
        """How long to wait before retry number ``attempts`` (1-based)."""
        return timedelta(
            seconds=min(self.backoff_base * 2 ** max(attempts - 1, 0), self.backoff_cap)
        )


def _untouched(table) -> dict:
    """``SET col = col`` for every column with an ``onupdate`` (such as ``updated_at``): a
    lease is bookkeeping of who works on a row, not a change of what the row says, so it
    must not look like one (support judges a copy's age by ``updated_at``)."""
    return {c.name: c for c in table.c if c.onupdate is not None}


def free(model, now: datetime):
    """Rows whose lease is not held: never taken, backed off until before ``now``, or lapsed."""
    return or_(model.lease_until.is_(None), model.lease_until < now)


def candidates(session: Session, model, available, now: datetime, limit: int) -> list[int]:
    """Ids of rows that could be taken now, oldest first. On PostgreSQL rows another
    worker is taking at this moment are skipped; the take itself decides anyway."""
    stmt = select(model.id).where(available, free(model, now)).order_by(model.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def take(
    session: Session,
    model,
    row_id: int,
    available,
    *,
    owner: str,
    policy: LeasePolicy,
    now: datetime | None = None,
) -> bool:
    """Take one row for ``owner`` if it is ``available`` and its lease is free; counts the
    attempt. One conditional UPDATE (flushed, not committed): True when this worker won."""
    now = now or utcnow()
    result = session.execute(
        update(model)
        .where(model.id == row_id, available, free(model, now))
        .values(
            lease_owner=owner,
            lease_until=now + timedelta(seconds=policy.seconds),
            attempts=model.attempts + 1,
            **_untouched(model.__table__),
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def held_by(model, owner: str):
    """The condition that ``owner`` still holds the row's lease (for the work's last write)."""
    return model.lease_owner == owner


def back_off(
    session: Session,
    model,
    row_id: int,
    owner: str,
    attempts: int,
    policy: LeasePolicy,
    now: datetime | None = None,
) -> None:
    """Release the lease and keep the row out of reach until its back-off has passed."""
    now = now or utcnow()
    session.execute(
        update(model)
        .where(model.id == row_id, model.lease_owner == owner)
        .values(
            lease_owner=None,
            lease_until=now + policy.backoff(attempts),
            **_untouched(model.__table__),
        )
        .execution_options(synchronize_session=False)
    )


def release(
    session: Session, model, row_id: int, owner: str, retry_at: datetime, *, refund: bool = False
) -> bool:
    """Let go of ``owner``'s lease until ``retry_at``; ``refund`` gives the attempt back
    (the work could not start, e.g. a lock another worker holds: not a failed attempt)."""
    values: dict = {"lease_owner": None, "lease_until": retry_at, **_untouched(model.__table__)}
    if refund:
        values["attempts"] = model.attempts - 1
    result = session.execute(
        update(model)
        .where(model.id == row_id, model.lease_owner == owner)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


# --- bounded waits on PostgreSQL ------------------------------------------------------------------

LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's lock_not_available (psycopg's LockNotAvailable)


def bound_waits(
    session: Session, *, lock_seconds: float | None = None, idle_seconds: float | None = None
) -> None:
    """PostgreSQL, for the current transaction only (``SET LOCAL``): wait at most
    ``lock_seconds`` for a row lock, and let the server end this session when it sits idle
    inside the transaction for ``idle_seconds`` (its process was stopped), which releases
    every lock it holds. Nothing on SQLite, whose write lock dies with its process."""
    if session.get_bind().dialect.name != "postgresql":
        return
    connection = session.connection()
    if lock_seconds is not None:
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_seconds * 1000)}")
    if idle_seconds is not None:
        connection.exec_driver_sql(
            f"SET LOCAL idle_in_transaction_session_timeout = {int(idle_seconds * 1000)}"
        )


def is_lock_timeout(error: BaseException) -> bool:
    """Whether ``error`` (SQLAlchemy's wrapper or the driver's own) is a lock wait that ran
    past ``lock_timeout``."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if getattr(error, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            return True
        if getattr(error, "pgcode", None) == LOCK_NOT_AVAILABLE:
            return True
        error = getattr(error, "orig", None) or error.__cause__
    return False


def renew(engine: Engine, model, row_id: int, owner: str, seconds: int) -> bool:
    """Extend ``owner``'s lease from a connection of its own; False when it is no longer held."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Never wait long behind the work's own row locks: the next beat tries again.
            connection.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
        result = connection.execute(
            update(model.__table__)
            .where(model.__table__.c.id == row_id, model.__table__.c.lease_owner == owner)
            .values(
                lease_until=utcnow() + timedelta(seconds=seconds),
                **_untouched(model.__table__),
            )
        )
        connection.commit()
        return result.rowcount == 1


class Heartbeat:
    """Renew a lease every ``policy.heartbeat_seconds`` while the block runs.

    ``with Heartbeat(engine, Model, row_id, owner, policy): …`` runs a daemon thread
    with its own database connection. On SQLite it does nothing (see the module's note).
    """

    def __init__(self, engine: Engine, model, row_id: int, owner: str, policy: LeasePolicy) -> None:
        self.engine, self.model, self.row_id, self.owner, self.policy = (
            engine,
            model,
            row_id,
            owner,
            policy,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _beat(self) -> None:
        while not self._stop.wait(self.policy.heartbeat_seconds):
            try:
                if not renew(self.engine, self.model, self.row_id, self.owner, self.policy.seconds):
                    self.lost = True
                    log.warning(
                        "lease on %s %s is no longer held by %s",
                        self.model.__tablename__,
                        self.row_id,
                        self.owner,
                    )
                    return
            except Exception:  # noqa: BLE001 - a missed beat is retried at the next one
                log.warning(
                    "heartbeat for %s %s failed",
                    self.model.__tablename__,
                    self.row_id,
                    exc_info=True,
                )

    def __enter__(self) -> Heartbeat:
        if self.engine.dialect.name != "sqlite":
            self._thread = threading.Thread(target=self._beat, daemon=True, name="lease-heartbeat")
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.policy.heartbeat_seconds + 5)
