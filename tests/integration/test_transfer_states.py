"""The facts every rule about an offer starts from (``Transfer.is_claimed``, ``is_open``,
``is_live(now)``, ``is_dead_unswept(now)`` and ``TransferItem.is_open``) say the same
in Python, on a loaded object, as in SQL, in a WHERE: for offers in every state, made
and moved through the real services, and at the instants around their expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.transfers import claims, lifecycle, offers
from app.transfers.codes import code_for
from app.transfers.copying import CopyOutcome, copy_item, copy_waiting
from app.transfers.domain import ItemState, TransferState
from app.transfers.models import Transfer, TransferItem
from tests.helpers import accept_all, fresh, offer

NOW = utcnow()
TTL = timedelta(days=15)  # TRANSFER_CODE_TTL_DAYS in the tests' settings
TINY = timedelta(microseconds=1)

# state name → (is_claimed, is_open, is_live(NOW), is_dead_unswept(NOW))
EXPECTED = {
    "offered live": (False, True, True, False),
    "offered past expiry, unswept": (False, True, False, True),
    "claimed": (True, True, False, False),
    "claimed, past expiry": (True, True, False, False),
    "withdrawn": (False, False, False, False),
    "expired": (False, False, False, False),
    "revoked": (True, False, False, False),
    "completed": (True, False, False, False),
}


@pytest.fixture
def transfers(app, build, office, other_office) -> dict[str, int]:
    """One transfer in each state, each of its own administration."""
    receiver, connection = other_office.superuser, other_office.connection
    assert app.config["TRANSFER_CODE_TTL_DAYS"] == TTL.days

    def offered(now=None):
        return offer(office.superuser, [build.administration(office.connection)], now=now)

    made = {}
    transfer, _code = offered()
    made["offered live"] = transfer.id

    transfer, _code = offered(now=NOW - TTL - timedelta(hours=1))
    made["offered past expiry, unswept"] = transfer.id

    transfer, code = offered()
    accept_all(receiver, transfer, code, connection)
    made["claimed"] = transfer.id

    # Claimed in time, a day before its expiry; the copy has not run yet.
    claimed_at = NOW - TTL + timedelta(days=1)
    transfer, code = offered(now=claimed_at - timedelta(days=2))
    accept_all(receiver, transfer, code, connection, now=claimed_at)
    made["claimed, past expiry"] = transfer.id

    transfer, _code = offered()
    offers.withdraw(office.superuser, transfer.id, origin="tests")
    db.session.commit()
    made["withdrawn"] = transfer.id

    transfer, _code = offered(now=NOW - TTL - timedelta(hours=2))
    assert lifecycle.expire(transfer, now=NOW) is True
    db.session.commit()
    made["expired"] = transfer.id

    transfer, code = offered()
    accept_all(receiver, transfer, code, connection)
    lifecycle.revoke(None, transfer, "Fraude vermoed", origin="tests", now=NOW)
    db.session.commit()
    made["revoked"] = transfer.id

    # Copied alone: the other claimed transfers must stay claimed.
    transfer, code = offered()
    accept_all(receiver, transfer, code, connection)
    assert copy_item(transfer.items[0].id) is CopyOutcome.COPIED
    made["completed"] = transfer.id

    fresh()
    for name, transfer_id in made.items():
        state = db.session.get(Transfer, transfer_id).state
        wanted = {
            "withdrawn": TransferState.WITHDRAWN,
            "expired": TransferState.EXPIRED,
            "revoked": TransferState.REVOKED,
            "completed": TransferState.COMPLETED,
        }.get(name, TransferState.OFFERED)
        assert state is wanted, f"{name}: made as {state}"
    return made


def in_python(transfer_id: int, now) -> tuple[bool, bool, bool, bool]:
    fresh()
    t = db.session.get(Transfer, transfer_id)
    return (t.is_claimed, t.is_open, t.is_live(now), t.is_dead_unswept(now))


def in_sql(transfer_id: int, now) -> tuple[bool, bool, bool, bool]:
    fresh()

    def matches(condition) -> bool:
        found = db.session.scalars(
            select(Transfer.id).where(Transfer.id == transfer_id, condition)
        ).all()
        return found == [transfer_id]

    return (
        matches(Transfer.is_claimed),
        matches(Transfer.is_open),
        matches(Transfer.is_live(now)),
        matches(Transfer.is_dead_unswept(now)),
    )


def test_python_and_sql_agree_on_each_fact_of_a_transfer_in_every_state(transfers):
    seen = {state: (in_python(i, NOW), in_sql(i, NOW)) for state, i in transfers.items()}

    wrong = {
        state: {"python": python, "sql": sql, "expected": EXPECTED[state]}
        for state, (python, sql) in seen.items()
        if not python == sql == EXPECTED[state]
    }
    assert wrong == {}


def test_each_filter_selects_exactly_the_transfers_it_should(transfers):
    fresh()

    def selected(condition) -> set[str]:
        ids = set(db.session.scalars(select(Transfer.id).where(condition)))
        return {name for name, transfer_id in transfers.items() if transfer_id in ids}

    def expected(index) -> set[str]:
        return {name for name, facts in EXPECTED.items() if facts[index]}

    assert selected(Transfer.is_claimed) == expected(0)
    assert selected(Transfer.is_open) == expected(1)
    assert selected(Transfer.is_live(NOW)) == expected(2) == {"offered live"}
    assert selected(Transfer.is_dead_unswept(NOW)) == expected(3)
    assert selected(Transfer.is_dead_unswept(NOW)) == {"offered past expiry, unswept"}


def test_python_and_sql_agree_at_the_instants_around_each_expiry(transfers):
    wrong = []
    for state, transfer_id in transfers.items():
        fresh()
        expires_at = db.session.get(Transfer, transfer_id).expires_at
        for moment in (expires_at - TINY, expires_at, expires_at + TINY, NOW + 2 * TTL):
            python, sql = in_python(transfer_id, moment), in_sql(transfer_id, moment)
            if python != sql:
                wrong.append((state, moment, python, sql))

    assert wrong == []


def test_an_offer_is_live_until_the_instant_it_expires_and_dead_from_that_instant(transfers):
    transfer_id = transfers["offered live"]
    fresh()
    expires_at = db.session.get(Transfer, transfer_id).expires_at

    facts = {m: in_sql(transfer_id, m)[2:] for m in (expires_at - TINY, expires_at)}

    assert facts[expires_at - TINY] == (True, False)
    assert facts[expires_at] == (False, True), "at its expiry the code no longer works"
    assert in_python(transfer_id, expires_at)[2:] == (False, True)


def test_the_code_of_an_unswept_offer_past_its_expiry_is_refused_as_the_facts_say(
    transfers, other_office
):
    """What the facts mean to a user: a dead-but-unswept offer cannot be claimed."""
    fresh()
    transfer = db.session.get(Transfer, transfers["offered past expiry, unswept"])

    with pytest.raises(claims.CodeRejected):
        claims.preview(other_office.superuser, code_for(transfer), origin="tests", now=NOW)


# --------------------------------------------------------------------------- items


@pytest.fixture
def items_in_every_state(build, office, other_office, transfers) -> dict[ItemState, int]:
    """Item ids by state: those of ``transfers`` plus a rejected and a failed one."""
    receiver, connection = other_office.superuser, other_office.connection
    keep, turned_down = (
        build.administration(office.connection),
        build.administration(office.connection),
    )
    transfer, code = offer(office.superuser, [keep, turned_down])
    kept_item, rejected_item = transfer.items
    claims.submit_claim(
        receiver,
        code,
        [
            claims.Decision(kept_item.id, "accept", connection.id),
            claims.Decision(rejected_item.id, "reject", message="Geen klant"),
        ],
        accept_terms=True,
        origin="tests",
    )
    db.session.commit()
    fresh()
    item = db.session.get(TransferItem, kept_item.id)
    assert lifecycle.copy_failed(
        item, "disk full", give_up=True, owner="worker-x", retry_at=NOW, now=NOW
    )
    db.session.commit()

    fresh()
    by_state: dict[ItemState, int] = {}
    for item in db.session.scalars(select(TransferItem)):
        by_state.setdefault(item.state, item.id)
    assert set(by_state) == set(ItemState), f"missing: {set(ItemState) - set(by_state)}"
    return by_state


def test_python_and_sql_agree_on_which_items_are_open_in_every_state(items_in_every_state):
    fresh()
    open_in_sql = set(db.session.scalars(select(TransferItem.id).where(TransferItem.is_open)))

    for state, item_id in items_in_every_state.items():
        item = db.session.get(TransferItem, item_id)
        assert item.is_open == (item_id in open_in_sql), state
    open_states = {s for s, i in items_in_every_state.items() if i in open_in_sql}
    assert open_states == {ItemState.OFFERED, ItemState.CLAIMING, ItemState.FAILED}


def test_once_the_claims_are_copied_only_the_unclaimed_offers_are_open(transfers):
    assert copy_waiting() == 2  # "claimed" and "claimed, past expiry"
    fresh()
    unclaimed = {transfers["offered live"], transfers["offered past expiry, unswept"]}

    open_transfers = set(db.session.scalars(select(Transfer.id).where(Transfer.is_open)))
    open_items = set(db.session.scalars(select(TransferItem.id).where(TransferItem.is_open)))

    assert open_transfers == unclaimed
    assert open_items == set(
        db.session.scalars(select(TransferItem.id).where(TransferItem.transfer_id.in_(unclaimed)))
    )
    for transfer_id in transfers.values():
        transfer = db.session.get(Transfer, transfer_id)
        assert transfer.is_open == (transfer_id in open_transfers)
        assert all(i.is_open == (i.id in open_items) for i in transfer.items)
