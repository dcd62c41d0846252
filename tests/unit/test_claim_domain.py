"""Pure rules of receiving (app.transfers.domain): where an administration can be placed,
whether a code can still be redeemed once its claim has started, and the archive years.
No database, no requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.transfers.domain import (
    Placement,
    archive_years,
    effective_item_state,
    effective_state,
    placements,
)
from app.transfers.models import ItemState, TransferState

ISSUED = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
EXPIRES = ISSUED + timedelta(days=15)
TINY = timedelta(microseconds=1)

EXACT_A, EXACT_B, TWINFIELD = 11, 12, 13
CONNECTIONS = [(EXACT_A, "exact_online"), (TWINFIELD, "twinfield"), (EXACT_B, "exact_online")]


# --- placements ------------------------------------------------------------------------------


def test_only_connections_of_the_same_package_are_offered_as_a_place():
    result = placements("exact_online", "1001", CONNECTIONS, {})

    assert [p.connection_id for p in result] == [EXACT_A, EXACT_B]


def test_the_order_of_the_receivers_connections_is_kept():
    result = placements("exact_online", "1001", list(reversed(CONNECTIONS)), {})

    assert [p.connection_id for p in result] == [EXACT_B, EXACT_A]


def test_a_package_the_receiver_has_no_connection_to_has_no_place():
    assert placements("snelstart", "1001", CONNECTIONS, {}) == []


def test_a_receiver_without_connections_has_no_place():
    assert placements("exact_online", "1001", [], {}) == []


def test_a_connection_without_that_code_is_a_possible_place():
    result = placements("twinfield", "1001", CONNECTIONS, {TWINFIELD: {"2002", "3003"}})

    assert result == [Placement(TWINFIELD, clash=False)]
    assert result[0].possible


def test_a_connection_that_already_has_the_code_is_flagged_as_a_clash():
    result = placements("exact_online", "1001", CONNECTIONS, {EXACT_A: {"1001"}})

    assert result == [Placement(EXACT_A, clash=True), Placement(EXACT_B, clash=False)]
    assert not result[0].possible
    assert result[1].possible


def test_the_same_code_under_a_connection_of_another_package_is_no_clash():
    result = placements("exact_online", "1001", CONNECTIONS, {TWINFIELD: {"1001"}})

    assert all(not p.clash for p in result)


def test_every_connection_of_the_package_can_clash_at_once():
    codes = {EXACT_A: {"1001"}, EXACT_B: {"1001", "7"}}

    result = placements("exact_online", "1001", CONNECTIONS, codes)

    assert [p.possible for p in result] == [False, False]


def test_a_clash_compares_the_whole_code_not_a_part_of_it():
    result = placements("exact_online", "100", CONNECTIONS, {EXACT_A: {"1001", "0100"}})

    assert [p.clash for p in result] == [False, False]


# --- claimability once the claim has started -------------------------------------------------


def test_a_claimed_offer_does_not_expire_when_its_expiry_time_passes():
    later = EXPIRES + timedelta(days=30)

    assert effective_state(TransferState.OFFERED, EXPIRES, later, claimed=True) is (
        TransferState.OFFERED
    )


def test_the_same_offer_unclaimed_expires_at_that_time():
    assert effective_state(TransferState.OFFERED, EXPIRES, EXPIRES, claimed=False) is (
        TransferState.EXPIRED
    )


@pytest.mark.parametrize("item_state", [ItemState.OFFERED, ItemState.CLAIMING, ItemState.FAILED])
def test_an_item_of_a_claimed_offer_keeps_its_state_after_the_expiry_time(item_state):
    later = EXPIRES + timedelta(days=1)

    assert (
        effective_item_state(item_state, TransferState.OFFERED, EXPIRES, later, claimed=True)
        is item_state
    )


def test_a_completed_claimed_offer_stays_completed_after_the_expiry_time():
    later = EXPIRES + timedelta(days=1)

    assert effective_state(TransferState.COMPLETED, EXPIRES, later, claimed=True) is (
        TransferState.COMPLETED
    )


# --- archive years -----------------------------------------------------------------------------


def test_archive_years_are_each_year_once_in_ascending_order():
    assert archive_years([2024, 2022, 2024, 2023, 2022]) == [2022, 2023, 2024]


def test_documents_not_yet_booked_add_no_archive_year():
    assert archive_years([None, 2021, None]) == [2021]


def test_an_administration_without_booked_documents_has_no_archive_years():
    assert archive_years([]) == []
    assert archive_years([None, None]) == []
