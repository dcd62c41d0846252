"""Failed logins, limited per account and per client address (Flask-Limiter's storage).

Only failures count. Before it checks a password the login view asks ``wait_seconds``:
while either limit is used up the login is refused with 429 and ``Retry-After``, even
with the right password, and without checking it (refusing costs no hash and holds no
worker). A failure is counted at once by ``count_failure``, in the request that failed,
so the next attempt sees it.

The account's key is the normalised e-mail address, whether or not an account has it,
so the answer tells nothing about which addresses exist. ``LOGIN_ACCOUNT_RATE_LIMIT``
may hold several limits (``"10 per 15 minutes; 30 per day"``): a growing delay. The
client address is the connection's, or the one the trusted proxies name
(``PROXY_FIX_HOPS``).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from flask import current_app
from limits import RateLimitItem, parse_many

from app.extensions import limiter

ACCOUNT = "login-account"
ADDRESS = "login-address"


def normalised_email(email: str) -> str:
    return (email or "").strip().lower()


def _account_key(email: str) -> str:
    # A digest keeps keys short and never writes the typed address into the store.
    return "account:" + hashlib.sha256(normalised_email(email).encode()).hexdigest()[:40]


def _limits(email: str, address: str | None) -> Iterator[tuple[str, RateLimitItem, list[str]]]:
    config = current_app.config
    prefix = config.get("RATELIMIT_KEY_PREFIX") or ""
    for scope, setting, key in (
        (ACCOUNT, "LOGIN_ACCOUNT_RATE_LIMIT", _account_key(email)),
        (ADDRESS, "LOGIN_RATE_LIMIT", f"address:{address or '-'}"),
    ):
        args = [prefix, key, scope] if prefix else [key, scope]
        for item in parse_many(config[setting]):
            yield scope, item, args


def _free_at(item: RateLimitItem, args: list[str]) -> float:
    reset_time, _remaining = limiter.limiter.get_window_stats(item, *args)
    return reset_time


def wait_seconds(email: str, address: str | None) -> int:
    """Seconds until a login for ``email`` from ``address`` may be tried again; 0: now."""
    if not limiter.enabled:
        return 0
    now = time.time()
    waits = [
        max(1, math.ceil(_free_at(item, args) - now))
        for _scope, item, args in _limits(email, address)
        if not limiter.limiter.test(item, *args)
    ]
    return max(waits, default=0)


def count_failure(email: str, address: str | None) -> datetime | None:
    """Count one failed login. When this failure used up the account's limit: the time
    (UTC) the account may be tried again, else ``None``."""
    if not limiter.enabled:
        return None
    free_at = None
    for scope, item, args in _limits(email, address):
        limiter.limiter.hit(item, *args)
        if scope == ACCOUNT and not limiter.limiter.test(item, *args):
            free_at = max(free_at or 0.0, _free_at(item, args))
    return datetime.fromtimestamp(free_at, UTC) if free_at else None
