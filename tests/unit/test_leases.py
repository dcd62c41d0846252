"""The pure part of leases (app.leases): how long a failed attempt waits before the next
one, and the names leases are taken under. No database."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest

from app.leases import LeasePolicy, new_owner


def policy(base: int = 30, cap: int = 1800) -> LeasePolicy:
    return LeasePolicy(
        seconds=90, heartbeat_seconds=20, max_attempts=5, backoff_base=base, backoff_cap=cap
    )


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(1, 30), (2, 60), (3, 120), (4, 240), (5, 480), (6, 960)],
)
def test_the_wait_before_a_retry_starts_at_the_base_and_doubles_with_each_attempt(
    attempts, seconds
):
    assert policy().backoff(attempts) == timedelta(seconds=seconds)


def test_the_wait_before_a_retry_never_exceeds_the_cap():
    lease = policy(base=30, cap=1800)

    assert lease.backoff(7) == timedelta(seconds=1800)  # 30 · 2⁶ = 1920 is capped
    assert lease.backoff(50) == timedelta(seconds=1800)
    assert lease.backoff(1000) == timedelta(seconds=1800)


def test_the_wait_reaches_the_cap_exactly_when_doubling_lands_on_it():
    lease = policy(base=30, cap=240)

    assert [lease.backoff(n).total_seconds() for n in range(1, 7)] == [30, 60, 120, 240, 240, 240]


def test_a_row_never_attempted_waits_no_less_than_the_base():
    assert policy().backoff(0) == timedelta(seconds=30)
    assert policy().backoff(-3) == timedelta(seconds=30)


def test_the_wait_never_shrinks_as_attempts_grow():
    lease = policy(base=7, cap=1000)
    waits = [lease.backoff(n) for n in range(0, 30)]

    assert waits == sorted(waits)


def test_the_default_back_off_is_thirty_seconds_doubling_up_to_half_an_hour():
    lease = LeasePolicy(seconds=90, heartbeat_seconds=20, max_attempts=5)

    assert lease.backoff(1) == timedelta(seconds=30)
    assert lease.backoff(20) == timedelta(minutes=30)


def test_every_take_gets_an_owner_name_of_its_own_that_tells_host_and_process():
    owners = {new_owner() for _ in range(200)}

    assert len(owners) == 200
    host, pid, _random = next(iter(owners)).rsplit(":", 2)
    assert host == socket.gethostname()
    assert pid == str(os.getpid())
    assert all(len(owner) <= 80 for owner in owners)  # fits lease_owner's column
