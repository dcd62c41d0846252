"""Pure rules of transfers: their states, transfer codes, expiry, who may receive an
offer and what a claim decides.

No database and no Flask: everything here is unit-tested on its own.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.errors import N_


class TransferState(enum.StrEnum):
    OFFERED = "offered"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ItemState(enum.StrEnum):
    OFFERED = "offered"
    CLAIMING = "claiming"
    MIGRATED = "migrated"
    FAILED = "failed"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    REVOKED = "revoked"


# An item is open while it may still move: on offer, being copied, or failed (retryable).
OPEN_ITEM_STATES = (ItemState.OFFERED, ItemState.CLAIMING, ItemState.FAILED)

# --- transfer codes ---------------------------------------------------------------------------
#
# A code is 24 symbols of 5 bits (120 bits) from Crockford's base32 alphabet, which
# has no I, L, O or U, plus one check symbol: 25 symbols shown as five groups of five.
# The check symbol follows Damm's algorithm over a totally anti-symmetric quasigroup of
# order 32 (x∘y = 2·x + y in GF(32)), which catches every single wrong symbol and every
# swap of two neighbours (Luhn mod 32 misses some swaps), so a typo is told apart from a
# guess without a lookup.

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
DATA_SYMBOLS = 24
CODE_BITS = DATA_SYMBOLS * 5
GROUP = 5
# What people type for the symbols the alphabet leaves out.
LOOK_ALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = str.maketrans("", "", " -_.\t\n\r\u00a0\u2010\u2011\u2012\u2013\u2014")


def _gf32_double(x: int) -> int:
    """2·x in GF(32) = GF(2)[t] / (t⁵ + t² + 1)."""
    x <<= 1
    return x ^ 0b100101 if x & 0b100000 else x


def _damm(symbols: str) -> int:
    """The quasigroup walk over ``symbols``; 0 for a code with the right check symbol."""
    interim = 0
    for ch in symbols:
        interim = _gf32_double(interim) ^ ALPHABET.index(ch)
    return interim


def _check_symbol(data: str) -> str:
    # The symbol c with interim∘c = 0, i.e. c = 2·interim (addition is XOR).
    return ALPHABET[_gf32_double(_damm(data))]


def code_from_nonce(nonce: bytes, key: bytes) -> str:
    """The code (normalised, no separators) that ``nonce`` stands for under ``key``.

    HMAC-SHA256 is a pseudo-random function, so with a random nonce the code's
    120 bits are as unpredictable as the nonce's; without the key, the nonce stored
    in the database does not lead to the code.
    """
    digest = hmac.new(key, nonce, hashlib.sha256).digest()
    number = int.from_bytes(digest, "big") >> (256 - CODE_BITS)
    data = "".join(ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(DATA_SYMBOLS)))
    return data + _check_symbol(data)


def format_code(code: str) -> str:
    """``ABCDE-FGHJK-…`` for people to read and type."""
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


class CodeError(ValueError):
    """A code that cannot be right, whatever is in the database."""


class MalformedCode(CodeError):
    """Empty, too short or long, or containing symbols that are not in the alphabet."""


class MistypedCode(CodeError):
    """Well-formed but the check symbol does not match: a typo, not a guess."""


def normalise_code(raw: str) -> str:
    """The canonical form of a typed code: case, spaces, dashes and look-alikes forgiven.

    Raises ``MalformedCode`` or ``MistypedCode``.
    """
    code = (raw or "").upper().translate(_SEPARATORS).translate(LOOK_ALIKES)
    if len(code) != DATA_SYMBOLS + 1 or any(ch not in ALPHABET for ch in code):
        raise MalformedCode()
    if _damm(code) != 0:
        raise MistypedCode()
    return code


def code_digest(code: str, key: bytes) -> str:
    """The keyed digest stored to find an offer by its (normalised) code."""
    return hmac.new(key, code.encode(), hashlib.sha256).hexdigest()


GROUP_DIGEST_CHARS = 16


def code_groups(code: str) -> list[str]:
    """The groups of five a (normalised) code is shown in."""
    return [code[i : i + GROUP] for i in range(0, len(code), GROUP)]


def group_digest(group: str, key: bytes) -> str:
    """The keyed digest stored for one group of a code, so a search for the group finds
    its offer. 64 bits: no two groups in practice share one, and without the key it
    tells nothing about the group."""
    return hmac.new(key, group.encode(), hashlib.sha256).hexdigest()[:GROUP_DIGEST_CHARS]


def searched_groups(raw: str) -> list[str] | None:
    """The code groups a search stands for ("K7M2Q", "k7m2q-9xbhd", "K7M2Q9XBHD"), with
    case, separators and look-alikes forgiven as for a code; ``None`` when it is not one
    or more whole groups."""
    text = (raw or "").upper().translate(_SEPARATORS).translate(LOOK_ALIKES)
    if not text or len(text) % GROUP or len(text) > DATA_SYMBOLS + 1:
        return None
    if any(ch not in ALPHABET for ch in text):
        return None
    return code_groups(text)


# --- expiry -------------------------------------------------------------------------------------


def expiry(issued_at: datetime, ttl_days: int) -> datetime:
    return issued_at + timedelta(days=ttl_days)


def effective_state(
    state: TransferState, expires_at: datetime, now: datetime, *, claimed: bool = False
) -> TransferState:
    """The state as people must see it: an offer is dead the moment it expires,
    whether or not a sweep has marked it yet, unless its claim started in time."""
    if state is TransferState.OFFERED and not claimed and now >= expires_at:
        return TransferState.EXPIRED
    return state


def effective_item_state(
    item_state: ItemState,
    transfer_state: TransferState,
    expires_at: datetime,
    now: datetime,
    *,
    claimed: bool = False,
) -> ItemState:
    if (
        item_state is ItemState.OFFERED
        and effective_state(transfer_state, expires_at, now, claimed=claimed)
        is TransferState.EXPIRED
    ):
        return ItemState.EXPIRED
    return item_state


def reminder_due(
    state: TransferState,
    expires_at: datetime,
    reminder_sent_at: datetime | None,
    now: datetime,
    days_before: int,
) -> bool:
    return (
        state is TransferState.OFFERED
        and reminder_sent_at is None
        and expires_at - timedelta(days=days_before) <= now < expires_at
    )


def can_withdraw(
    state: TransferState,
    item_states: list[ItemState],
    expires_at: datetime,
    now: datetime,
    *,
    claimed: bool = False,
) -> bool:
    """Until the claim has started, and while the code is alive."""
    return (
        not claimed
        and effective_state(state, expires_at, now) is TransferState.OFFERED
        and all(s is ItemState.OFFERED for s in item_states)
    )


# --- placing an administration in the receiving environment ---------------------------------


@dataclass(frozen=True)
class Placement:
    """One of the receiver's connections an administration could go under."""

    connection_id: int
    clash: bool  # an administration with the same code already sits there

    @property
    def possible(self) -> bool:
        return not self.clash


def placements(
    package: str,
    code: str,
    connections: list[tuple[int, str]],
    codes_by_connection: dict[int, set[str]],
) -> list[Placement]:
    """Every connection of the same package, each with whether the code clashes there."""
    return [
        Placement(connection_id, code in codes_by_connection.get(connection_id, set()))
        for connection_id, connection_package in connections
        if connection_package == package
    ]


def search_text(
    name: str,
    code: str,
    email: str,
    package: str,
    package_label: str,
    recipients: tuple[str, ...] | list[str] = (),
) -> str:
    """What an overview search matches an offered administration against, lower-cased:
    its name, code, e-mail and accounting system, and the addresses it was offered to."""
    return "\n".join((name, code, email, package, package_label, *recipients)).lower()[:700]


def archive_years(years: list[int | None]) -> list[int]:
    return sorted({y for y in years if y is not None})


# --- recipients ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecipientProblem:
    index: int
    email: str
    problem: str  # "malformed", "repeated", "own", "own_environment"


def check_recipients(
    emails: list[str],
    *,
    requester_email: str,
    own_environment_emails: set[str],
    is_valid: callable,
) -> tuple[list[str], list[RecipientProblem]]:
    """Clean the recipient list: lower-case, blanks dropped; report each bad address.

    ``is_valid`` says whether an address is well-formed (kept outside so this stays pure).
    """
    cleaned: list[str] = []
    problems: list[RecipientProblem] = []
    seen: set[str] = set()
    for index, raw in enumerate(emails):
        email = (raw or "").strip().lower()
        if not email:
            continue
        if not is_valid(email):
            problems.append(RecipientProblem(index, email, "malformed"))
        elif email in seen:
            problems.append(RecipientProblem(index, email, "repeated"))
        elif email == requester_email.lower():
            problems.append(RecipientProblem(index, email, "own"))
        elif email in own_environment_emails:
            problems.append(RecipientProblem(index, email, "own_environment"))
        else:
            cleaned.append(email)
        seen.add(email)
    return cleaned, problems


# --- the receiver's decisions -------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What the receiver chose for one offered administration."""

    item_id: int
    action: str  # "accept" or "reject"
    connection_id: int | None = None
    message: str | None = None


@dataclass(frozen=True)
class Candidate:
    """One offered administration as the receiver could place it: where it may go."""

    item_id: int
    name: str
    code: str
    package_label: str
    connections: dict[int, bool]  # connection id → does the code clash there?


@dataclass(frozen=True)
class ClaimDecision:
    accepted: list[tuple[int, int]]  # (item id, connection id)
    rejected: list[tuple[int, str | None]]  # (item id, message)
    problems: list[tuple[str, str, dict]]  # (field, untranslated message, params)


def decide_claim(
    candidates: list[Candidate], decisions: list[Decision], *, accept_terms: bool
) -> ClaimDecision:
    """Check the receiver's decisions against what is possible; every problem at once.

    Pure: the caller looked up the candidates and turns ``problems`` into errors.
    """
    by_item = {d.item_id: d for d in decisions}
    accepted: list[tuple[int, int]] = []
    rejected: list[tuple[int, str | None]] = []
    problems: list[tuple[str, str, dict]] = []
    for candidate in candidates:
        decision = by_item.get(candidate.item_id)
        field_name = f"decisions.{candidate.item_id}"
        name = candidate.name
        if decision is None or decision.action not in ("accept", "reject"):
            problems.append((field_name, N_("Accept or reject “%(name)s”."), {"name": name}))
            continue
        if decision.action == "reject":
            rejected.append((candidate.item_id, (decision.message or "").strip()[:2000] or None))
            continue
        choices = candidate.connections
        if not choices:
            problems.append(
                (
                    field_name,
                    N_("Your environment has no connection to %(package)s for “%(name)s”."),
                    {"package": candidate.package_label, "name": name},
                )
            )
        elif decision.connection_id not in choices:
            problems.append(
                (field_name, N_("Choose the connection “%(name)s” goes under."), {"name": name})
            )
        elif choices[decision.connection_id]:
            problems.append(
                (
                    field_name,
                    N_(
                        "The chosen connection already has an administration with code "
                        "%(code)s; “%(name)s” cannot go there."
                    ),
                    {"code": candidate.code, "name": name},
                )
            )
        else:
            accepted.append((candidate.item_id, decision.connection_id))
    codes_by_item = {c.item_id: c.code for c in candidates}
    placed = [(codes_by_item[i], c) for i, c in accepted]
    if len(set(placed)) < len(placed):
        # Two accepted administrations with one code under one connection would clash.
        problems.append(
            (
                "decisions",
                N_("Two administrations with the same code cannot share a connection."),
                {},
            )
        )
    if accepted and not accept_terms:
        # Turning everything down needs no terms and no fee.
        problems.append(("accept_terms", N_("Accept the terms and the fee to claim."), {}))
    return ClaimDecision(accepted, rejected, problems)
