"""Login under attack, measured: a known e-mail with a wrong password and an unknown e-mail
answer in the same time (the dummy hash is computed once per hash method, and an unknown
e-mail is checked against it), over many samples.

The session's app hashes with 1,000 PBKDF2 rounds to keep the suite quick; here the
hash method is a real, cheaper-than-production one (20,000 rounds), so the hash is the
larger part of a login's time, as in production. Bounded: at most ``ROUNDS`` rounds of
``SAMPLES`` samples per kind, and ``BUDGET_SECONDS`` in all.
"""

from __future__ import annotations

import statistics
import time

import pytest

from app.auth import services
from tests.conftest import TEST_PASSWORD

HASH_METHOD = "pbkdf2:sha256:20000"
SAMPLES = 40
ROUNDS = 3
BUDGET_SECONDS = 60
MAX_DIFFERENCE = 0.25  # of the larger median


@pytest.fixture
def real_hashes(app, monkeypatch):
    monkeypatch.setitem(app.config, "PASSWORD_HASH_METHOD", HASH_METHOD)
    monkeypatch.setattr(services, "_DUMMY_HASH", {})


def _timed_login(client, email: str) -> float:
    started = time.perf_counter()
    response = client.post_form("/login", {"email": email, "password": "not the password"})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    return elapsed


def test_a_known_and_an_unknown_e_mail_answer_in_the_same_time(real_hashes, client, build):
    env = build.environment()
    known = build.user(env, "superuser", email="bekend@kantoor.example")
    assert known.password_hash.startswith(HASH_METHOD)
    client.get_page("/login")
    # Warm up both paths (the dummy hash is computed on the first unknown e-mail).
    for _ in range(3):
        _timed_login(client, known.email)
        _timed_login(client, "onbekend@kantoor.example")
    assert list(services._DUMMY_HASH) == [HASH_METHOD]

    deadline = time.monotonic() + BUDGET_SECONDS
    results = []
    for _round in range(ROUNDS):
        known_times, unknown_times = [], []
        for i in range(SAMPLES):  # interleaved, so drift hits both alike
            known_times.append(_timed_login(client, known.email))
            unknown_times.append(_timed_login(client, f"onbekend{i}@kantoor.example"))
        known_median = statistics.median(known_times)
        unknown_median = statistics.median(unknown_times)
        difference = abs(known_median - unknown_median) / max(known_median, unknown_median)
        results.append((known_median, unknown_median, difference))
        if difference < MAX_DIFFERENCE or time.monotonic() > deadline:
            break

    known_median, unknown_median, difference = results[-1]
    assert difference < MAX_DIFFERENCE, (
        f"medians known {known_median * 1000:.1f} ms, unknown {unknown_median * 1000:.1f} ms "
        f"in {len(results)} round(s): {results}"
    )
    # The hash really is the larger part of the time, so the comparison means something.
    assert min(known_median, unknown_median) > 0.002
    assert TEST_PASSWORD  # the right password is never sent here
