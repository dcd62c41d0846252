"""Signed, time-limited tokens (itsdangerous), one salt per purpose.

A token made for one purpose never verifies for another, because each purpose
signs with its own salt.
"""

from __future__ import annotations

import enum
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class Purpose(enum.StrEnum):
    CLAIM_LINK = "overdracht.claim-link.v1"


class InvalidToken(Exception):
    """The token is forged, for another purpose, or expired."""


def _serializer(purpose: Purpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=purpose.value)


def sign(purpose: Purpose, payload: Any) -> str:
    return _serializer(purpose).dumps(payload)


def verify(purpose: Purpose, token: str, *, max_age: int) -> Any:
    """The payload of a token signed for ``purpose`` at most ``max_age`` seconds ago."""
    try:
        return _serializer(purpose).loads(token, max_age=max(0, max_age))
    except (SignatureExpired, BadSignature):
        raise InvalidToken() from None
