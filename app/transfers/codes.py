"""Transfer codes as the server keeps them: derived from a stored nonce with the
secret key (so the offering side can be shown the code again), found by a keyed
digest (so the database alone never reveals a usable code), carried in signed links.
The code mathematics (alphabet, check symbol, normalising) is in ``domain``."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from flask import current_app

from app.db import utcnow
from app.tokens import InvalidToken, Purpose, verify
from app.transfers import domain
from app.transfers.models import Transfer


def _key(purpose: str) -> bytes:
    return hmac.new(
        current_app.config["SECRET_KEY"].encode(), purpose.encode(), hashlib.sha256
    ).digest()


def code_for(transfer: Transfer) -> str:
    """The transfer's code, formatted for people (derived, never stored)."""
    code = domain.code_from_nonce(bytes.fromhex(transfer.code_nonce), _key("transfer-code"))
    return domain.format_code(code)


def digest_for(normalised_code: str) -> str:
    return domain.code_digest(normalised_code, _key("transfer-code-digest"))


def new_code() -> tuple[str, str, str]:
    """A fresh (nonce hex, normalised code, digest) triple."""
    nonce = secrets.token_bytes(16)
    code = domain.code_from_nonce(nonce, _key("transfer-code"))
    return nonce.hex(), code, digest_for(code)


def code_from_link(token: str | None, *, now: datetime | None = None) -> str | None:
    """The code a signed claim link carries, or ``None`` when the link is bad or expired.

    Whether the code still works is decided when it is entered, like any typed code.
    """
    if not token:
        return None
    now = now or utcnow()
    max_age = current_app.config["TRANSFER_CODE_TTL_DAYS"] * 86400
    try:
        payload = verify(Purpose.CLAIM_LINK, token, max_age=max_age)
    except InvalidToken:
        return None
    if not isinstance(payload, dict) or payload.get("e", 0) <= now.timestamp():
        return None
    code = payload.get("c")
    return code if isinstance(code, str) else None
