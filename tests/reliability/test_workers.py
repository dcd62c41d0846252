"""Copy workers that die or hang, as real ``flask --app wsgi scheduler`` processes sharing
the test database (a file on SQLite, the test database on PostgreSQL).

- kill -9 of the worker that holds a copy at a random point, several rounds, Jepsen-set
  style: the source's document ids against the copies' ``source_document_id``: nothing
  lost, nothing twice, and the copy taken over within the (short) lease;
- SIGSTOP of the worker that holds a copy (PostgreSQL): support's revoke answers within
  seconds ("the copy is still running" or revoked), the other worker takes the copy over
  once the server has ended the stopped worker's idle session, and after SIGCONT the
  stopped worker does no harm: exactly one copy.

Each round and the whole file are bounded in time.
"""

from __future__ import annotations

import random
import secrets
import signal
import time
from datetime import date

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url

from app.admin_settings.models import Administration, Document, Provenance
from app.errors import Conflict
from app.extensions import db
from app.support import services as support
from app.transfers.domain import ItemState, TransferState
from app.transfers.models import Transfer, TransferItem
from app.web import unit_of_work
from tests.helpers import accept_all, fresh, offer
from tests.reliability.processes import ROOT, Process, Processes, slow_copies, wait_until

BIN = ROOT / ".venv" / "bin"

LEASE_SECONDS = 4
HEARTBEAT_SECONDS = 1
IDLE_TIMEOUT_SECONDS = 6
LOCK_TIMEOUT_SECONDS = 2
DOCUMENTS = 3000
CHUNK = 100
# PostgreSQL: a copied row costs this much (a statement trigger), so a copy lasts ~3 s.
SLOW_SECONDS_PER_ROW = 0.001
ROUND_LIMIT = 40  # seconds per round
TAKEOVER_LIMIT = 2 * LEASE_SECONDS + 8  # the lease, a scheduler tick, a busy write lock


def _is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


@pytest.fixture
def slow_copy(database_url):
    if not _is_postgres(database_url):
        yield
        return
    with slow_copies(db.session, "workers_slow_copy", SLOW_SECONDS_PER_ROW):
        yield


class Workers:
    def __init__(self, processes: Processes) -> None:
        self.processes = processes
        self.running: dict[str, Process] = {}
        self.generation = 0

    def start(self, name: str) -> Process:
        self.generation += 1
        process = self.processes.start(
            f"{name}-{self.generation}", [str(BIN / "flask"), "--app", "wsgi", "scheduler"]
        )
        process.wait_for_log("Scheduler running", timeout=30)
        self.running[name] = process
        return process

    def holding(self, owner: str | None) -> tuple[str, Process] | None:
        if not owner:
            return None
        pid = int(owner.split(":")[1])
        return next(((n, p) for n, p in self.running.items() if p.pid == pid), None)


@pytest.fixture
def workers(request, app, database_url, slow_copy, tmp_path):
    processes = Processes(
        tmp_path / "logs",
        base_env={
            "OVERDRACHT_ENV": "production",
            "SECRET_KEY": secrets.token_hex(32),
            "DATABASE_URL": database_url,
            "RATELIMIT_STORAGE_URI": "memory://",
            "BLOB_ROOT": app.config["BLOB_ROOT"],
            "PROGRESS_ROOT": app.config["PROGRESS_ROOT"],
            "COPY_LEASE_SECONDS": str(LEASE_SECONDS),
            "COPY_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "COPY_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT_SECONDS),
            "COPY_LOCK_TIMEOUT_SECONDS": str(LOCK_TIMEOUT_SECONDS),
            "SCHEDULER_COPY_SECONDS": "1",
            # SQLite has no trigger to slow a copy down: smaller chunks make it last
            # long enough to be caught (and killed) in the middle.
            "COPY_CHUNK_DOCUMENTS": str(CHUNK if _is_postgres(database_url) else 5),
            "BASE_URL": "http://127.0.0.1",
        },
    )
    started = Workers(processes)
    try:
        started.start("a")
        started.start("b")
        yield started
    finally:
        processes.stop_all(timeout=5)
        if getattr(request.node, "failed", True):
            print(f"\nlogs in {processes.log_dir}\n{processes.tails(40)}")


def _claimed_item(build, office, other_office, code: str) -> tuple[int, set[int]]:
    """A claimed administration of DOCUMENTS decided documents: (item id, source doc ids)."""
    source = build.administration(office.connection, code=code)
    table = Document.__table__
    db.session.execute(
        insert(table),
        [
            {
                "environment_id": source.environment_id,
                "administration_id": source.id,
                "blob_key": "0" * 64,
                "size": 10,
                "content_type": "application/pdf",
                "filename": f"factuur-{n}.pdf",
                "kind": "purchase_invoice",
                "counterparty": "Leverancier",
                "amount": 10 + n % 50,
                "currency": "EUR",
                "invoice_date": date(2022, 1, 1),
                "status": "approved",
                "booked_year": 2022,
                "booked_period": 1,
                "uploaded_by_name": "Uploader",
                "decided_by_name": "Beslisser",
            }
            for n in range(DOCUMENTS)
        ],
    )
    db.session.commit()
    source_ids = set(
        db.session.scalars(select(table.c.id).where(table.c.administration_id == source.id))
    )
    transfer, transfer_code = offer(office.superuser, [source])
    accept_all(other_office.superuser, transfer, transfer_code, other_office.connection)
    fresh()
    return transfer.items[0].id, source_ids


def _item(item_id: int) -> TransferItem:
    fresh()
    found = db.session.get(TransferItem, item_id)
    db.session.refresh(found)
    return found


def _check_set(item_id: int, source_ids: set[int]) -> dict:
    """Jepsen-set check of the copy of ``item_id``: lost and duplicated ids."""
    fresh()
    copies = list(
        db.session.scalars(
            select(Provenance.administration_id).where(Provenance.transfer_item_id == item_id)
        )
    )
    assert len(copies) == 1, f"{len(copies)} copies of item {item_id}"
    copied = list(
        db.session.scalars(
            select(Document.source_document_id).where(Document.administration_id == copies[0])
        )
    )
    lost = source_ids - set(copied)
    duplicated = (
        {i for i in copied if copied.count(i) > 1} if len(copied) != len(set(copied)) else set()
    )
    fresh()
    return {"lost": lost, "duplicated": duplicated, "copied": len(copied)}


def test_kill_9_of_the_copying_worker_loses_and_duplicates_nothing(
    workers, build, office, other_office, database_url
):
    rounds = 3 if _is_postgres(database_url) else 2
    rng = random.Random()
    figures = []
    for n in range(rounds):
        started = time.monotonic()
        item_id, source_ids = _claimed_item(build, office, other_office, f"9{n:03d}")
        first = wait_until(
            lambda i=item_id: workers.holding(_item(i).lease_owner),
            timeout=15,
            what="a worker to take the copy",
        )
        name, victim = first
        first_owner = _item(item_id).lease_owner
        # A random point of the copy (about 3 s on PostgreSQL, well under 1 s on SQLite).
        time.sleep(rng.uniform(0.0, 2.0 if _is_postgres(database_url) else 0.25))
        if _item(item_id).state is ItemState.MIGRATED:
            figures.append({"round": n, "killed": None})  # finished before the kill point
        else:
            victim.kill(signal.SIGKILL)
            killed_at = time.monotonic()
            del workers.running[name]

            def taken_over(i=item_id, first=first_owner) -> bool:
                current = _item(i)
                return current.state is ItemState.MIGRATED or (
                    current.lease_owner not in (None, first)
                )

            wait_until(taken_over, timeout=TAKEOVER_LIMIT, interval=0.2, what="the takeover")
            takeover = time.monotonic() - killed_at
            workers.start(name)  # a new process in the dead one's place
            figures.append({"round": n, "takeover_s": round(takeover, 1)})
        wait_until(
            lambda i=item_id: _item(i).state is ItemState.MIGRATED,
            timeout=max(ROUND_LIMIT - (time.monotonic() - started), 1),
            interval=0.3,
            what="the copy to finish",
        )
        result = _check_set(item_id, source_ids)
        assert result["lost"] == set(), f"round {n}: lost {sorted(result['lost'])[:10]}"
        assert result["duplicated"] == set(), (
            f"round {n}: duplicated {sorted(result['duplicated'])[:10]}"
        )
        assert result["copied"] == DOCUMENTS
        assert _item(item_id).attempts <= 3
        figures[-1]["round_s"] = round(time.monotonic() - started, 1)
    print(f"\nkill -9 rounds: {figures}")


def test_a_stopped_worker_blocks_nobody_and_does_no_harm_after_sigcont(
    workers, build, office, other_office, database_url, app, monkeypatch
):
    if not _is_postgres(database_url):
        pytest.skip("SIGSTOP holds no row lock on SQLite: its write lock is the file's")
    monkeypatch.setitem(app.config, "COPY_LOCK_TIMEOUT_SECONDS", LOCK_TIMEOUT_SECONDS)
    item_id, source_ids = _claimed_item(build, office, other_office, "8001")
    name, victim = wait_until(
        lambda: workers.holding(_item(item_id).lease_owner), timeout=15, what="a take"
    )
    first_owner = _item(item_id).lease_owner
    # Into the copy's transaction: the transfer's row is locked, documents are going in.
    wait_until(
        lambda: db.session.scalar(
            text(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'documents' AND l.mode = 'RowExclusiveLock' "
                "AND l.pid <> pg_backend_pid()"
            )
        ),
        timeout=15,
        interval=0.05,
        what="the copy to insert documents",
    )
    fresh()
    assert _item(item_id).state is ItemState.CLAIMING
    victim.kill(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        # Support revokes while the stopped worker holds the transfer's lock.
        transfer_id = _item(item_id).transfer_id
        asked = time.monotonic()
        try:
            with unit_of_work():
                support.revoke(None, transfer_id, "Stuck copy, test", origin="tests")
            answer = "revoked"
        except Conflict as error:
            answer = error.message
        revoke_seconds = time.monotonic() - asked
        assert revoke_seconds < LOCK_TIMEOUT_SECONDS + 3, revoke_seconds
        assert answer == "The copy is still running; try again in a minute.", answer

        def taken_over() -> bool:
            current = _item(item_id)
            return current.state is ItemState.MIGRATED or current.lease_owner not in (
                None,
                first_owner,
            )

        wait_until(taken_over, timeout=LEASE_SECONDS + IDLE_TIMEOUT_SECONDS + 15, interval=0.2)
        takeover = time.monotonic() - stopped_at
        wait_until(
            lambda: _item(item_id).state is ItemState.MIGRATED,
            timeout=30,
            interval=0.3,
            what="the other worker to finish",
        )
        finished = time.monotonic() - stopped_at
    finally:
        victim.kill(signal.SIGCONT)
    # The woken worker finds its session ended and its lease gone: it does nothing more.
    time.sleep(3)
    victim.expect_alive()
    result = _check_set(item_id, source_ids)
    assert result == {"lost": set(), "duplicated": set(), "copied": DOCUMENTS}
    fresh()
    assert db.session.get(Transfer, _item(item_id).transfer_id).state is TransferState.COMPLETED
    assert (
        db.session.scalar(
            select(func.count()).select_from(Administration).where(Administration.code == "8001")
        )
        == 2  # the source (migrated, read-only) and its one copy
    )
    fresh()
    print(
        f"\nSIGSTOP: revoke answered in {revoke_seconds:.1f} s ({answer!r}); "
        f"taken over after {takeover:.1f} s, finished after {finished:.1f} s"
    )
    assert takeover < 120


def test_a_copy_past_its_maximum_attempts_ends_failed(build, office, other_office, app):
    """The take counts attempts of workers that died before recording a failure: past the
    maximum, the item is failed (and listed as stuck) instead of tried forever."""
    from app.transfers.copying import CopyOutcome, copy_item

    item_id, _ids = _claimed_item(build, office, other_office, "7001")
    fresh()
    db.session.execute(
        TransferItem.__table__.update()
        .where(TransferItem.id == item_id)
        .values(attempts=app.config["COPY_MAX_ATTEMPTS"], lease_owner="dead:1:x", lease_until=None)
    )
    db.session.commit()
    assert copy_item(item_id) is CopyOutcome.FAILED
    item = _item(item_id)
    assert item.state is ItemState.FAILED
    assert "gave up" in (item.last_error or "")


def test_a_lapsed_lease_is_stuck_at_once(build, office, other_office):
    from datetime import timedelta

    from app.db import utcnow

    item_id, _ids = _claimed_item(build, office, other_office, "7002")
    now = utcnow()
    transfer = db.session.get(Transfer, _item(item_id).transfer_id)
    assert [r.kind for r in support.stuck_reasons(transfer, now)] == []
    db.session.execute(
        TransferItem.__table__.update()
        .where(TransferItem.id == item_id)
        .values(attempts=1, lease_owner="dead:1:x", lease_until=now - timedelta(seconds=1))
    )
    db.session.commit()
    transfer = db.session.get(Transfer, _item(item_id).transfer_id)
    assert [r.kind for r in support.stuck_reasons(transfer, now)] == ["lease_lapsed"]
    listed = support.list_transfers(None, stuck=True, now=now)
    ids = [row.transfer.id for row in listed.items]
    assert transfer.id in ids
    fresh()
