"""Rate limits of transfers: failed code entries, per user (NIST SP 800-63B: at most
100 failures per hour) and per environment with a higher ceiling, so that one person or
script cannot lock every colleague out; shared by the pages and the API. Only code
entries (POSTs) are limited: opening the fetch page never is.

Only failed entries count: the view that saw a ``CodeRejected`` calls
``count_failure()`` before it answers, and the limiter deducts after the response.
"""

from __future__ import annotations

from flask import current_app, g
from flask_login import current_user

from app.extensions import limiter


def count_failure() -> None:
    """This request's code entry failed: let the limiter count it."""
    g.claim_code_failed = True


def _failed(response) -> bool:
    return bool(g.get("claim_code_failed"))


def _user_limit() -> str:
    return current_app.config["CLAIM_CODE_RATE_LIMIT"]


def _environment_limit() -> str:
    return current_app.config["CLAIM_CODE_ENVIRONMENT_RATE_LIMIT"]


def _user():
    return g.get("api_user") or current_user


def _user_key() -> str:
    return f"user:{_user().id}"


def _environment_key() -> str:
    return f"environment:{_user().environment_id}"


per_user = limiter.shared_limit(
    _user_limit,
    scope="claim-code-user",
    key_func=_user_key,
    deduct_when=_failed,
    methods=["POST"],
)
per_environment = limiter.shared_limit(
    _environment_limit,
    scope="claim-code-environment",
    key_func=_environment_key,
    deduct_when=_failed,
    methods=["POST"],
)


def code_entry(view):
    """Both limits on a view that takes a transfer code."""
    return per_user(per_environment(view))
