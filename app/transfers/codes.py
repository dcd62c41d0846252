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
from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.tokens import InvalidToken, Purpose, verify
from app.transfers import domain
from app.transfers.models import Transfer


def _key(purpose: str) -> bytes:
    return hmac.new(
        current_app.config["SECRET_KEY"].encode(), purpose.encode(), hashlib.sha256
    ).digest()


def code_for(transfer: Transfer) -> str:
    """The transfer's code, formatted for people (derived, never stored)."""
    return domain.format_code(code_of_nonce(transfer.code_nonce))


def code_of_nonce(nonce_hex: str) -> str:
    """The normalised code a stored nonce stands for under this server's key."""
    return domain.code_from_nonce(bytes.fromhex(nonce_hex), _key("transfer-code"))


def digest_for(normalised_code: str) -> str:
    return domain.code_digest(normalised_code, _key("transfer-code-digest"))


def group_digests(groups: list[str]) -> list[str]:
    """The keyed digest of each code group (``domain.code_groups`` of a code, or the
    groups a search names), stored per offer (``TransferCodeGroup``) so a search for a
    group finds it; like ``digest_for``, useless without the key."""
    key = _key("transfer-code-group")
    return [domain.group_digest(g, key) for g in groups]


def new_code() -> tuple[str, str, str]:
    """A fresh (nonce hex, normalised code, digest) triple."""
    nonce = secrets.token_bytes(16)
    code = domain.code_from_nonce(nonce, _key("transfer-code"))
    return nonce.hex(), code, digest_for(code)


def code_from_link(token: str | None, *, now: datetime | None = None) -> str | None:
    """The code a signed claim link carries, or ``None`` when the link is bad or its offer
    has run out. The offer's own expiry decides, so a link mailed before an extension
    keeps working for as long as the extended offer does.

    Whether the code can be claimed is decided when it is entered, like any typed code.
    """
    if not token:
        return None
    now = now or utcnow()
    config = current_app.config
    # The longest an offer can live: its term, and each extension again.
    days = config["TRANSFER_CODE_TTL_DAYS"] * (1 + config["TRANSFER_MAX_EXTENSIONS"])
    try:
        payload = verify(Purpose.CLAIM_LINK, token, max_age=days * 86400)
    except InvalidToken:
        return None
    code = payload.get("c") if isinstance(payload, dict) else None
    if not isinstance(code, str):
        return None
    try:
        digest = digest_for(domain.normalise_code(code))
    except domain.CodeError:
        return None
    expires_at = db.session.scalar(
        select(Transfer.expires_at).where(Transfer.code_digest == digest)
    )
    if expires_at is None or expires_at <= now:
        return None
    return code
