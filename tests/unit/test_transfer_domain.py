"""Pure rules of transfers (app.transfers.domain): expiry, the effective state, reminders,
withdrawing and the recipient list. No database, no requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.transfers.domain import (
    RecipientProblem,
    can_withdraw,
    check_recipients,
    effective_item_state,
    effective_state,
    expiry,
    reminder_due,
)
from app.transfers.models import ItemState, TransferState

ISSUED = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
EXPIRES = ISSUED + timedelta(days=15)
SECOND = timedelta(seconds=1)
TINY = timedelta(microseconds=1)
DAYS_BEFORE = 3


# --- expiry and the effective state ------------------------------------------------------------


def test_an_offer_expires_exactly_the_configured_days_after_issue():
    assert expiry(ISSUED, 15) == ISSUED + timedelta(days=15)
    assert expiry(ISSUED, 1) == ISSUED + timedelta(days=1)


def test_an_offer_is_offered_until_the_last_instant_before_its_expiry():
    assert effective_state(TransferState.OFFERED, EXPIRES, ISSUED) is TransferState.OFFERED
    assert (
        effective_state(TransferState.OFFERED, EXPIRES, EXPIRES - SECOND) is TransferState.OFFERED
    )
    assert effective_state(TransferState.OFFERED, EXPIRES, EXPIRES - TINY) is TransferState.OFFERED


def test_an_offer_is_expired_from_the_moment_it_expires_without_any_sweep():
    assert effective_state(TransferState.OFFERED, EXPIRES, EXPIRES) is TransferState.EXPIRED
    assert (
        effective_state(TransferState.OFFERED, EXPIRES, EXPIRES + SECOND) is TransferState.EXPIRED
    )


@pytest.mark.parametrize(
    "state",
    [
        TransferState.WITHDRAWN,
        TransferState.COMPLETED,
        TransferState.REVOKED,
        TransferState.EXPIRED,
    ],
)
def test_an_ended_offer_keeps_its_state_after_the_expiry_time(state):
    assert effective_state(state, EXPIRES, EXPIRES + SECOND) is state
    assert effective_state(state, EXPIRES, EXPIRES - SECOND) is state


def test_an_offered_item_expires_with_its_offer():
    offered = TransferState.OFFERED
    assert (
        effective_item_state(ItemState.OFFERED, offered, EXPIRES, EXPIRES - SECOND)
        is ItemState.OFFERED
    )
    assert effective_item_state(ItemState.OFFERED, offered, EXPIRES, EXPIRES) is ItemState.EXPIRED


@pytest.mark.parametrize(
    "item_state",
    [ItemState.CLAIMING, ItemState.MIGRATED, ItemState.FAILED, ItemState.REJECTED],
)
def test_an_item_past_offered_keeps_its_state_when_the_offer_time_runs_out(item_state):
    assert (
        effective_item_state(item_state, TransferState.OFFERED, EXPIRES, EXPIRES + SECOND)
        is item_state
    )


def test_an_offered_item_of_a_withdrawn_offer_is_not_shown_as_expired():
    assert (
        effective_item_state(ItemState.OFFERED, TransferState.WITHDRAWN, EXPIRES, EXPIRES)
        is ItemState.OFFERED
    )


# --- reminders ---------------------------------------------------------------------------------


def due(now, state=TransferState.OFFERED, reminder_sent_at=None) -> bool:
    return reminder_due(state, EXPIRES, reminder_sent_at, now, DAYS_BEFORE)


def test_no_reminder_until_three_days_before_expiry():
    assert not due(ISSUED)
    assert not due(EXPIRES - timedelta(days=DAYS_BEFORE) - SECOND)
    assert not due(EXPIRES - timedelta(days=DAYS_BEFORE) - TINY)


def test_a_reminder_is_due_from_exactly_three_days_before_expiry():
    assert due(EXPIRES - timedelta(days=DAYS_BEFORE))
    assert due(EXPIRES - timedelta(days=DAYS_BEFORE) + SECOND)


def test_a_reminder_is_still_due_one_second_before_expiry_but_not_at_expiry():
    assert due(EXPIRES - SECOND)
    assert not due(EXPIRES)
    assert not due(EXPIRES + SECOND)


def test_no_second_reminder_once_one_was_sent():
    assert not due(EXPIRES - SECOND, reminder_sent_at=EXPIRES - timedelta(days=2))


@pytest.mark.parametrize(
    "state", [TransferState.WITHDRAWN, TransferState.EXPIRED, TransferState.COMPLETED]
)
def test_no_reminder_for_an_offer_that_has_ended(state):
    assert not due(EXPIRES - timedelta(days=1), state=state)


# --- withdrawing -------------------------------------------------------------------------------


def test_an_offer_can_be_withdrawn_until_one_instant_before_it_expires():
    items = [ItemState.OFFERED, ItemState.OFFERED]
    assert can_withdraw(TransferState.OFFERED, items, EXPIRES, ISSUED)
    assert can_withdraw(TransferState.OFFERED, items, EXPIRES, EXPIRES - SECOND)
    assert can_withdraw(TransferState.OFFERED, items, EXPIRES, EXPIRES - TINY)


def test_an_expired_offer_cannot_be_withdrawn_even_before_the_sweep():
    items = [ItemState.OFFERED]
    assert not can_withdraw(TransferState.OFFERED, items, EXPIRES, EXPIRES)
    assert not can_withdraw(TransferState.OFFERED, items, EXPIRES, EXPIRES + SECOND)


@pytest.mark.parametrize("started", [ItemState.CLAIMING, ItemState.MIGRATED, ItemState.FAILED])
def test_an_offer_cannot_be_withdrawn_once_the_claim_of_one_item_has_started(started):
    assert not can_withdraw(TransferState.OFFERED, [ItemState.OFFERED, started], EXPIRES, ISSUED)


@pytest.mark.parametrize(
    "state",
    [
        TransferState.WITHDRAWN,
        TransferState.EXPIRED,
        TransferState.REVOKED,
        TransferState.COMPLETED,
    ],
)
def test_an_ended_offer_cannot_be_withdrawn(state):
    assert not can_withdraw(state, [ItemState.OFFERED], EXPIRES, ISSUED)


# --- recipients --------------------------------------------------------------------------------

REQUESTER = "Super@Noord.example"
OWN = {"super@noord.example", "user@noord.example", "autorisator@noord.example"}


def valid(email: str) -> bool:
    """A stand-in for the e-mail validator: one @ with something on both sides and a dot."""
    local, at, domain = email.partition("@")
    return bool(local and at and "." in domain and "@" not in domain and " " not in email)


def check(emails):
    return check_recipients(
        emails, requester_email=REQUESTER, own_environment_emails=OWN, is_valid=valid
    )


def test_good_recipients_are_kept_in_order_and_lower_cased():
    cleaned, problems = check(["Super@Zuid.example", "  ontvanger@ZUID.example "])
    assert cleaned == ["super@zuid.example", "ontvanger@zuid.example"]
    assert problems == []


def test_blank_entries_are_skipped_without_a_problem():
    cleaned, problems = check(["", "   ", None, "super@zuid.example", ""])
    assert cleaned == ["super@zuid.example"]
    assert problems == []


def test_no_recipients_at_all_is_an_empty_list_without_problems():
    assert check(["", " "]) == ([], [])


def test_a_malformed_address_is_reported_with_its_position():
    cleaned, problems = check(["super@zuid.example", "geen-adres", "a@b"])
    assert cleaned == ["super@zuid.example"]
    assert problems == [
        RecipientProblem(1, "geen-adres", "malformed"),
        RecipientProblem(2, "a@b", "malformed"),
    ]


def test_an_address_given_twice_is_reported_once_as_repeated_whatever_its_case():
    cleaned, problems = check(["super@zuid.example", "SUPER@zuid.example"])
    assert cleaned == ["super@zuid.example"]
    assert problems == [RecipientProblem(1, "super@zuid.example", "repeated")]


def test_the_requesters_own_address_is_reported_whatever_its_case():
    cleaned, problems = check(["super@noord.EXAMPLE", "super@zuid.example"])
    assert cleaned == ["super@zuid.example"]
    assert problems == [RecipientProblem(0, "super@noord.example", "own")]


def test_an_address_of_a_user_of_the_own_environment_is_reported():
    cleaned, problems = check(["User@Noord.example"])
    assert cleaned == []
    assert problems == [RecipientProblem(0, "user@noord.example", "own_environment")]


def test_every_problem_is_reported_at_once():
    cleaned, problems = check(
        ["kapot", "super@noord.example", "user@noord.example", "x@zuid.example", "X@zuid.example"]
    )
    assert cleaned == ["x@zuid.example"]
    assert [p.problem for p in problems] == ["malformed", "own", "own_environment", "repeated"]
    assert [p.index for p in problems] == [0, 1, 2, 4]
