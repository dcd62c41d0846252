"""Exactly once, under races and faults.

* Many receivers submit one code at the same instant: exactly one claim, every other
  submission a clear refusal (never a database error), and several workers copying at
  once make exactly one copy.
* A withdraw racing a claim ends in exactly one of the two.
* A copy that fails at any single statement leaves not one row behind, and the retry
  makes an exact copy.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from app.admin_settings.models import Administration, AdministrationState, Document, Provenance
from app.audit import AuditEvent
from app.auth.models import User
from app.db import utcnow
from app.errors import ServiceError
from app.extensions import db
from app.outbox import OutboxMessage
from app.storage import blob_store
from app.transfers import claims, offers
from app.transfers.claims import CodeRejected, Decision
from app.transfers.copying import CopyOutcome, copy_item, copy_waiting
from app.transfers.models import (
    Claim,
    ItemState,
    Transfer,
    TransferItem,
    TransferState,
)
from tests.integration.test_claim import (
    fresh,
    offer,
)

ALREADY_CLAIMED = "Your office has already claimed this offer; follow it in the migration overview."


def tally(model, *where) -> int:
    """A count in the test session's current transaction (call ``fresh()`` first)."""
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def on_postgresql() -> bool:
    return db.engine.dialect.name == "postgresql"


@dataclass
class Receiver:
    user_id: int
    environment_id: int
    connection_id: int
    email: str


@pytest.fixture
def quiet_offers(monkeypatch):
    """The offer mail (one per recipient, twenty here) is not what these tests are about."""
    monkeypatch.setattr("app.transfers.notifications.offer_made", lambda *args, **kwargs: None)


@pytest.fixture
def receivers(build, quiet_offers):
    """One premium office with twenty superusers: twenty people who may claim its offers
    (an offer is for one office; any of its superusers may claim it)."""
    env = build.environment("Kantoor Ontvanger", office_code="ONT")
    connection = build.connection(env)
    return [
        Receiver(user.id, env.id, connection.id, user.email)
        for user in (
            build.user(env, "superuser", email=f"super{n}@ontvanger.example") for n in range(20)
        )
    ]


def administration_with_documents(build, connection, documents: int, code=None):
    """An offerable administration whose documents are written in one commit."""
    administration = build.administration(connection, code=code)
    store = blob_store()
    for n in range(documents):
        data = f"%PDF-1.4\n% {administration.code} page {n}\n%%EOF\n".encode()
        db.session.add(
            Document(
                environment_id=administration.environment_id,
                administration_id=administration.id,
                blob_key=store.put_bytes(data),
                size=len(data),
                content_type="application/pdf",
                filename=f"{administration.code}-{n}.pdf",
                counterparty=f"Relatie {n}",
                status="approved" if n % 2 else "rejected",
                booked_year=2020 + n % 4,
                booked_period=1 + n % 12,
                decided_by_name="J. de Vries",
                uploaded_by_name="Piet Uploader",
            )
        )
    db.session.commit()
    return administration


def run_at_once(functions, timeout=120) -> list:
    """Run each function in a thread of its own with an app context of its own, all
    released at the same instant; return what each returned or raised."""
    from flask import current_app

    app = current_app._get_current_object()
    barrier = threading.Barrier(len(functions))
    results: list = [None] * len(functions)

    def runner(index, fn):
        with app.app_context():
            try:
                results[index] = ("ok", fn(barrier))
            except Exception as error:  # noqa: BLE001 - reported to the test
                db.session.rollback()
                results[index] = ("raised", error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=runner, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a thread hung"
    return results


def claimer(receiver: Receiver, code: str, item_ids: list[int]):
    """Submit a claim as ``receiver``: ('won', claim id) or ('refused', ServiceError)."""

    def submit(barrier):
        barrier.wait()
        actor = db.session.get(User, receiver.user_id)
        try:
            claim = claims.submit_claim(
                actor,
                code,
                [Decision(i, "accept", receiver.connection_id) for i in item_ids],
                accept_terms=True,
                origin="race",
            )
            db.session.commit()
            return ("won", claim.id)
        except ServiceError as error:
            db.session.rollback()
            return ("refused", error)

    return submit


def copier(barrier):
    barrier.wait()
    return copy_waiting()


# --------------------------------------------------------------------------- claim races


def test_of_many_simultaneous_claims_exactly_one_wins_and_several_workers_copy_it_once(
    build, office, receivers
):
    rounds = 50 if on_postgresql() else 5
    threads = 20
    for round_no in range(rounds):
        administration = administration_with_documents(build, office.connection, 3)
        transfer, code = offer(office.superuser, [administration], recipients=[receivers[0].email])
        item_ids = [i.id for i in transfer.items]
        contenders = receivers[:threads]

        results = run_at_once([claimer(r, code, item_ids) for r in contenders])

        errors = [r for r in results if r[0] == "raised"]
        assert errors == [], f"round {round_no}: {errors}"
        outcomes = [r[1] for r in results]
        winners = [i for i, o in enumerate(outcomes) if o[0] == "won"]
        assert len(winners) == 1, f"round {round_no}: {outcomes}"
        winner = contenders[winners[0]]
        for outcome in outcomes:
            if outcome[0] == "refused":
                assert isinstance(outcome[1], ServiceError)
                assert outcome[1].field == "code"
        fresh()
        assert tally(Claim, Claim.transfer_id == transfer.id) == 1
        claim = db.session.scalars(select(Claim).where(Claim.transfer_id == transfer.id)).one()
        assert claim.id == outcomes[winners[0]][1]
        assert claim.target_environment_id == winner.environment_id
        assert db.session.get(Transfer, transfer.id).target_environment_id == winner.environment_id
        assert db.session.get(TransferItem, item_ids[0]).target_connection_id == (
            winner.connection_id
        )

        copies = run_at_once([copier] * 3)

        assert [c for c in copies if c[0] == "raised"] == [], f"round {round_no}: {copies}"
        assert sum(c[1] for c in copies) == 1, f"round {round_no}: {copies}"
        fresh()
        assert (
            tally(
                Administration,
                Administration.code == administration.code,
                Administration.id != administration.id,
            )
            == 1
        )
        target = db.session.scalars(
            select(Administration).where(
                Administration.code == administration.code, Administration.id != administration.id
            )
        ).one()
        assert target.environment_id == winner.environment_id
        assert tally(Provenance, Provenance.transfer_item_id == item_ids[0]) == 1
        assert tally(Document, Document.administration_id == target.id) == 3
        assert db.session.get(TransferItem, item_ids[0]).state is ItemState.MIGRATED
        assert db.session.get(Transfer, transfer.id).state is TransferState.COMPLETED
        assert (
            tally(
                OutboxMessage,
                OutboxMessage.ref_id == transfer.id,
                OutboxMessage.kind == "transfer_completed",
            )
            == 2
        )


def test_two_superusers_of_one_office_claiming_at_once_make_one_claim_and_the_other_is_told(
    build, office, receivers
):
    rounds = 10 if on_postgresql() else 5
    first, second = receivers[0], receivers[1]
    assert first.environment_id == second.environment_id
    for round_no in range(rounds):
        administration = administration_with_documents(build, office.connection, 1)
        transfer, code = offer(
            office.superuser, [administration], recipients=[first.email, second.email]
        )
        item_ids = [i.id for i in transfer.items]

        results = run_at_once([claimer(first, code, item_ids), claimer(second, code, item_ids)])

        assert [r for r in results if r[0] == "raised"] == [], results
        outcomes = sorted((r[1] for r in results), key=lambda o: o[0] != "won")
        assert outcomes[0][0] == "won", outcomes
        assert outcomes[1][0] == "refused", outcomes
        refusal = outcomes[1][1]
        # A double click is no failed guess: it says what happened and is not counted.
        assert str(refusal) == ALREADY_CLAIMED, f"round {round_no}: {refusal!r}"
        assert not isinstance(refusal, CodeRejected)
        fresh()
        assert tally(Claim, Claim.transfer_id == transfer.id) == 1
    assert tally(AuditEvent, AuditEvent.action == "claim_code_failed") == 0


def test_posting_the_claim_form_twice_at_once_makes_one_claim(
    app, login, build, office, other_office
):
    rounds = 5
    other_office.superuser.language = "en"
    db.session.commit()
    tabs = [login(other_office.superuser), login(other_office.superuser)]
    for tab in tabs:
        tab.get_page("/settings/migrations/fetch")
    for _round in range(rounds):
        administration = administration_with_documents(build, office.connection, 2)
        transfer, code = offer(office.superuser, [administration])
        item = transfer.items[0]
        form = {
            "code": code,
            f"action-{item.id}": "accept",
            f"connection-{item.id}": str(other_office.connection.id),
            "accept_terms": "y",
        }
        db.session.commit()

        def post(tab, form=form):
            def run(barrier):
                barrier.wait()
                response = tab.post_form("/settings/migrations/claims", form)
                return response.status_code, response.get_data(as_text=True)

            return run

        results = run_at_once([post(tabs[0]), post(tabs[1])])

        assert [r for r in results if r[0] == "raised"] == [], results
        statuses = sorted(r[1][0] for r in results)
        assert statuses == [302, 422], statuses
        refused = next(r[1][1] for r in results if r[1][0] == 422)
        assert ALREADY_CLAIMED in refused
        fresh()
        assert tally(Claim, Claim.transfer_id == transfer.id) == 1
    assert copy_waiting() == rounds
    assert (
        tally(Administration, Administration.environment_id == other_office.environment.id)
        == rounds
    )


def test_a_withdraw_racing_a_claim_ends_in_exactly_one_of_the_two(build, office, receivers):
    rounds = 20 if on_postgresql() else 10
    receiver = receivers[0]
    seen = set()
    for round_no in range(rounds):
        administration = administration_with_documents(build, office.connection, 2)
        transfer, code = offer(office.superuser, [administration], recipients=[receiver.email])
        item_ids = [i.id for i in transfer.items]

        def withdraw(barrier, transfer_id=transfer.id, noord_id=office.superuser.id):
            # Like the withdraw view: the request has loaded its user before the service runs.
            actor = db.session.get(User, noord_id)
            barrier.wait()
            try:
                offers.withdraw(actor, transfer_id, origin="race")
                db.session.commit()
                return ("withdrawn", None)
            except ServiceError as error:
                db.session.rollback()
                return ("refused", error)

        results = run_at_once([withdraw, claimer(receiver, code, item_ids)])

        assert [r for r in results if r[0] == "raised"] == [], f"round {round_no}: {results}"
        withdrawn, claimed = results[0][1], results[1][1]
        fresh()
        transfer = db.session.get(Transfer, transfer.id)
        item = db.session.get(TransferItem, item_ids[0])
        copies = copy_waiting()
        fresh()
        if withdrawn[0] == "withdrawn":
            seen.add("withdrawn")
            assert claimed[0] == "refused", f"round {round_no}: both won"
            assert isinstance(claimed[1], CodeRejected)
            assert transfer.state is TransferState.WITHDRAWN
            assert transfer.target_environment_id is None
            assert item.state is ItemState.WITHDRAWN
            assert tally(Claim, Claim.transfer_id == transfer.id) == 0
            assert copies == 0
            assert db.session.get(Administration, administration.id).state is (
                AdministrationState.ACTIVE
            )
        else:
            seen.add("claimed")
            assert claimed[0] == "won", f"round {round_no}: neither won: {results}"
            assert isinstance(withdrawn[1], ServiceError)
            assert transfer.target_environment_id == receiver.environment_id
            assert tally(Claim, Claim.transfer_id == transfer.id) == 1
            assert copies == 1
            assert db.session.get(TransferItem, item_ids[0]).state is ItemState.MIGRATED
            assert db.session.get(Transfer, transfer.id).state is TransferState.COMPLETED
    assert seen  # at least one round ran to an end


# --------------------------------------------------------------------------- fault injection


class Boom(Exception):
    """The fault injected into one statement of a copy."""


class StatementFaults:
    """Counts the statements the engine executes and raises at the ``fail_at``-th one."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.count = 0
        self.fail_at: int | None = None
        self.failed_sql: str | None = None

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._hook)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._hook)

    def _hook(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.count += 1
        if self.count == self.fail_at:
            self.failed_sql = statement
            raise Boom(f"fault injected at statement {self.count}")


def claimed_item(build, office, other_office, documents: int):
    """A fresh administration of ``documents`` documents, offered, claimed by Zuid."""
    administration = administration_with_documents(build, office.connection, documents)
    transfer, code = offer(office.superuser, [administration])
    claims.submit_claim(
        other_office.superuser,
        code,
        [Decision(transfer.items[0].id, "accept", other_office.connection.id)],
        accept_terms=True,
        origin="tests",
    )
    db.session.commit()
    return transfer.items[0].id, transfer.id, administration


def source_fingerprint(administration_id: int) -> list[tuple]:
    return sorted(
        (d.id, d.blob_key, d.status.value, d.booked_year, d.booked_period, d.filename)
        for d in db.session.scalars(
            select(Document).where(Document.administration_id == administration_id)
        )
    )


def copy_fingerprint(target_id: int) -> list[tuple]:
    return sorted(
        (
            d.source_document_id,
            d.blob_key,
            d.status.value,
            d.booked_year,
            d.booked_period,
            d.filename,
        )
        for d in db.session.scalars(select(Document).where(Document.administration_id == target_id))
    )


def assert_no_trace(item_id, transfer_id, administration, zuid_env_id, source_ids, k):
    fresh()
    where = f"fault at statement {k}"
    assert (
        tally(
            Administration,
            Administration.environment_id == zuid_env_id,
            Administration.code == administration.code,
        )
        == 0
    ), where
    assert tally(Document, Document.source_document_id.in_(source_ids)) == 0, where
    assert tally(Provenance, Provenance.transfer_item_id == item_id) == 0, where
    assert (
        tally(
            AuditEvent,
            AuditEvent.action == "administration_migrated",
            AuditEvent.object_id == item_id,
        )
        == 0
    ), where
    assert (
        tally(
            OutboxMessage,
            OutboxMessage.ref_id == transfer_id,
            OutboxMessage.kind == "transfer_completed",
        )
        == 0
    ), where
    assert db.session.get(Administration, administration.id).state is (
        AdministrationState.OFFERED
    ), where
    item = db.session.get(TransferItem, item_id)
    assert item.state is ItemState.CLAIMING, (where, item.state, item.last_error)
    assert item.target_administration_id is None, where
    assert db.session.get(Transfer, transfer_id).state is TransferState.OFFERED, where


def assert_exact_copy(item_id, administration, zuid_env_id, k):
    fresh()
    where = f"retry after a fault at statement {k}"
    item = db.session.get(TransferItem, item_id)
    assert item.state is ItemState.MIGRATED, (where, item.last_error)
    target = db.session.get(Administration, item.target_administration_id)
    assert target.environment_id == zuid_env_id, where
    source = source_fingerprint(administration.id)
    copied = copy_fingerprint(target.id)
    assert len(copied) == len(source) == item.documents_copied == item.documents_total, where
    assert copied == source, where
    store = blob_store()
    for _sid, key, *_rest in copied:
        with store.open(key) as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == key, where
    assert tally(Provenance, Provenance.transfer_item_id == item_id) == 1, where
    assert db.session.get(Administration, administration.id).state is (
        AdministrationState.MIGRATED
    ), where
    assert (
        tally(
            Administration,
            Administration.environment_id == zuid_env_id,
            Administration.code == administration.code,
        )
        == 1
    ), where


def test_a_copy_failing_at_any_statement_leaves_no_trace_and_its_retry_makes_an_exact_copy(
    app, build, office, other_office, monkeypatch, quiet_offers
):
    monkeypatch.setitem(app.config, "COPY_CHUNK_DOCUMENTS", 5)
    documents = 12  # three chunks: 5 + 5 + 2
    zuid_env_id = other_office.environment.id
    start = utcnow()
    later = start + timedelta(seconds=app.config["COPY_LEASE_SECONDS"] + 3600)

    # A run without a fault: how many statements does one copy execute?
    item_id, _transfer_id, administration = claimed_item(build, office, other_office, documents)
    with StatementFaults(db.engine) as counter:
        assert copy_item(item_id, now=start) is CopyOutcome.COPIED
    total = counter.count
    assert_exact_copy(item_id, administration, zuid_env_id, 0)
    # At least: lease, the administration, provenance, three chunks, the states.
    assert total >= 8

    failed_statements = []
    for k in range(1, total + 1):
        item_id, transfer_id, administration = claimed_item(build, office, other_office, documents)
        source_ids = [d[0] for d in source_fingerprint(administration.id)]
        with StatementFaults(db.engine) as faults:
            faults.fail_at = k
            try:
                outcome = copy_item(item_id, now=start)
            except Boom:
                db.session.rollback()
                outcome = "raised"
        assert faults.failed_sql is not None, f"statement {k} was never reached"
        failed_statements.append((k, outcome, faults.failed_sql.split()[0]))
        assert outcome is not CopyOutcome.COPIED, f"fault at statement {k} went unnoticed"

        assert_no_trace(item_id, transfer_id, administration, zuid_env_id, source_ids, k)

        assert copy_item(item_id, now=later) is CopyOutcome.COPIED, f"retry after fault {k}"
        assert_exact_copy(item_id, administration, zuid_env_id, k)

    assert len(failed_statements) == total


def test_a_copy_that_keeps_failing_is_given_up_after_the_last_attempt_and_leaves_no_trace(
    app, build, office, other_office, monkeypatch
):
    monkeypatch.setitem(app.config, "COPY_CHUNK_DOCUMENTS", 5)
    item_id, transfer_id, administration = claimed_item(build, office, other_office, 7)
    source_ids = [d[0] for d in source_fingerprint(administration.id)]
    now = utcnow()
    outcomes = []

    def fail_third_chunk(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO DOCUMENTS"):
            raise Boom("the disk is full")

    event.listen(db.engine, "before_cursor_execute", fail_third_chunk)
    try:
        for _attempt in range(app.config["COPY_MAX_ATTEMPTS"]):
            outcomes.append(copy_item(item_id, now=now))
            now += timedelta(hours=2)
    finally:
        event.remove(db.engine, "before_cursor_execute", fail_third_chunk)

    assert outcomes == [CopyOutcome.RETRY] * (len(outcomes) - 1) + [CopyOutcome.FAILED]
    fresh()
    item = db.session.get(TransferItem, item_id)
    assert item.state is ItemState.FAILED
    assert "the disk is full" in item.last_error
    assert tally(Document, Document.source_document_id.in_(source_ids)) == 0
    assert tally(Provenance, Provenance.transfer_item_id == item_id) == 0
    assert db.session.get(Administration, administration.id).state is AdministrationState.OFFERED
    # A failed item is no longer picked up by the worker.
    assert copy_waiting(now=now + timedelta(days=1)) == 0
    assert (
        tally(AuditEvent, AuditEvent.action == "copy_failed", AuditEvent.object_id == item_id) == 1
    )
    assert db.session.get(Transfer, transfer_id).state is TransferState.OFFERED
