"""The migration overview: what an environment offered and received, a page at a
time along an index, with search over every column; and one offer as a side sees it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from babel.dates import get_month_names
from flask import current_app
from sqlalchemy import and_, func, or_, select, text

from app.auth.models import User
from app.db import utcnow
from app.errors import N_, ServiceError
from app.extensions import db
from app.paging import Page
from app.transfers import access, codes, domain
from app.transfers.access import Side, require_migrate
from app.transfers.codes import code_for, digest_for
from app.transfers.domain import ItemState, TransferState
from app.transfers.models import Claim, Transfer, TransferCodeGroup, TransferInbox, TransferItem
from config import Config

# --- overviews ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferRow:
    """One administration of one offer, as an overview shows it."""

    item: TransferItem
    transfer: Transfer
    state: ItemState
    code: str | None
    can_withdraw: bool
    claim_id: int | None = None


def _month_numbers() -> dict[str, int]:
    """Every month name the pages show, in every language: "dec", "Dec", "december",
    "mrt", "maart", "May" (lower-cased, without a dot), with the month's number."""
    names: dict[str, int] = {}
    for language in Config.LANGUAGES:
        for width in ("abbreviated", "wide"):
            for context in ("format", "stand-alone"):
                for number, name in get_month_names(width, context, locale=language).items():
                    names[name.lower().rstrip(".")] = number
    names["sept"] = 9  # as English and Dutch writers often abbreviate it
    return names


MONTHS = _month_numbers()
# A day as the pages show it in either language, optionally with the time after it:
# "1 dec 2026", "1 Dec 2026, 08:55", "1 december 2026", "1 dec. 2026"; and as the
# English pages used to: "Dec 1, 2026".
_DAY_MONTH_YEAR = re.compile(r"^(\d{1,2})\.?\s+([^\W\d_]+)\.?,?\s+(\d{4})\b")
_MONTH_DAY_YEAR = re.compile(r"^([^\W\d_]+)\.?\s+(\d{1,2}),?\s+(\d{4})\b")
_TIME_AFTER = re.compile(r"^,?\s*(?:\d{1,2}:\d{2}(?::\d{2})?(?:\s*[a-z]{2,5})?)?$")


def _parse_day(q: str) -> date | None:
    """The calendar day a search names: "01-12-2026", "1-12-2026", "2026-12-01",
    "01/12/2026", "01.12.2026", or as the pages show a day in Dutch or English
    ("1 dec 2026", "1 Dec 2026, 08:55", "1 december 2026"). ``None`` when it is no day."""
    text = q.strip().lower()
    for fmt in ("%d-%m-%Y", "%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y"):
        try:
            day = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        return _holdable(day)
    for pattern, order in ((_DAY_MONTH_YEAR, (0, 1, 2)), (_MONTH_DAY_YEAR, (1, 0, 2))):
        match = pattern.match(text)
        if not match or not _TIME_AFTER.match(text[match.end() :]):
            continue
        groups = match.groups()
        day_text, month_name, year_text = (groups[i] for i in order)
        month = MONTHS.get(month_name)
        if month is None:
            return None
        try:
            return _holdable(date(int(year_text), month, int(day_text)))
        except ValueError:
            return None
    return None


def _holdable(day: date) -> date | None:
    """``day`` when the clock and the database can hold it."""
    return day if 1900 <= day.year <= 9998 else None


def _day_range(day: date) -> tuple[datetime, datetime]:
    """A calendar day in the office's time zone, as a UTC range."""
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    start = datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
    return start, start + timedelta(days=1)


def _words_only(q: str, labels: dict[ItemState, str]) -> bool:
    """A search that is not a code, a code group, a date or a status word: only the
    text columns."""
    try:
        domain.normalise_code(q)
    except domain.CodeError:
        pass
    else:
        return False
    if domain.searched_groups(q) is not None:
        return False
    needle = q.lower()
    return _parse_day(q) is None and not any(
        needle in (text.lower(), state.value) for state, text in labels.items()
    )


# SQLite's trigram full-text index over transfer_items.search_text (see models): the
# matches are found in the index, then narrowed to the environment and sorted, so a
# search costs what it finds, not what the environment holds.
_SQLITE_WORD_SEARCH = {
    # The matches come from the full-text index first (the IN list); ``+`` keeps SQLite
    # from walking the environment's index instead and matching row by row.
    "outgoing": (
        "SELECT id FROM transfer_items WHERE id IN "
        "(SELECT rowid FROM transfer_items_fts WHERE transfer_items_fts MATCH :match) "
        "AND +source_environment_id = :env ORDER BY created_at DESC, id DESC"
    ),
    "incoming": (
        "SELECT transfer_item_id FROM transfer_inbox WHERE transfer_item_id IN "
        "(SELECT rowid FROM transfer_items_fts WHERE transfer_items_fts MATCH :match) "
        "AND +environment_id = :env ORDER BY created_at DESC, transfer_item_id DESC"
    ),
}


def _sqlite_word_search(direction: str, env: int, needle: str) -> list[int]:
    phrase = '"' + needle.replace('"', '""') + '"'
    return list(
        db.session.scalars(text(_SQLITE_WORD_SEARCH[direction]), {"match": phrase, "env": env})
    )


def _contains(column, needle: str):
    """``column`` (already lower-case) contains ``needle``: a plain substring test, cheaper
    than LIKE and with no wildcards to escape."""
    if db.engine.dialect.name == "postgresql":
        return func.strpos(column, needle) > 0
    return func.instr(column, needle) > 0


def _search_conditions(
    q: str, now: datetime, labels: dict[ItemState, str], text_column, key_column
):
    """What a search matches, as (conditions, whether they need the item and transfer).

    A transfer code finds its offer through the unique digest; otherwise the words are
    matched against ``text_column`` (the lower-cased name, code, e-mail, accounting
    system and recipients' addresses, kept in the page's own index), one or more groups
    of a code ("K7M2Q", as the overview shows it) against the offers' group digests, a
    date against the day offered or expiring, and a status word against the effective
    state.
    """
    try:
        code = domain.normalise_code(q)
    except domain.CodeError:
        pass
    else:
        items_of_offer = (
            select(TransferItem.id)
            .join(Transfer, Transfer.id == TransferItem.transfer_id)
            .where(Transfer.code_digest == digest_for(code))
        )
        return [key_column.in_(items_of_offer)], False
    needle = q.lower()
    conditions = [_contains(text_column, needle)]
    needs_join = False
    groups = domain.searched_groups(q)
    if groups is not None:
        conditions.append(
            key_column.in_(
                select(TransferItem.id).where(
                    TransferItem.transfer_id.in_(_offers_with_groups(groups))
                )
            )
        )
    day = _parse_day(q)
    if day is not None:
        conditions.append(_made_or_expiring_on(day))
        needs_join = True
    for state, word in labels.items():
        if needle in (word.lower(), state.value):
            conditions.append(_state_condition(state, now))
            needs_join = True
    return [or_(*conditions)], needs_join


def _offers_with_groups(groups: list[str]):
    """SQL: the ids of the offers whose code has every one of ``groups``."""
    digests = set(codes.group_digests(groups))
    return (
        select(TransferCodeGroup.transfer_id)
        .where(TransferCodeGroup.digest.in_(digests))
        .group_by(TransferCodeGroup.transfer_id)
        .having(func.count() == len(digests))
    )


def _made_or_expiring_on(day: date):
    """SQL: offers made or expiring on ``day`` (the office's calendar day)."""
    start, end = _day_range(day)
    return or_(
        and_(Transfer.created_at >= start, Transfer.created_at < end),
        and_(Transfer.expires_at >= start, Transfer.expires_at < end),
    )


def offers_named_by(q: str):
    """SQL on ``Transfer``: the offers a search names other than by its words (the offer
    of a whole transfer code, those with the code groups typed, those made or expiring
    on a day as the pages show it in either language); ``None`` when it names none."""
    try:
        return Transfer.code_digest == digest_for(domain.normalise_code(q))
    except domain.CodeError:
        pass
    conditions = []
    groups = domain.searched_groups(q)
    if groups is not None:
        conditions.append(Transfer.id.in_(_offers_with_groups(groups)))
    day = _parse_day(q)
    if day is not None:
        conditions.append(_made_or_expiring_on(day))
    return or_(*conditions) if conditions else None


def _state_condition(state: ItemState, now: datetime):
    """Items whose effective state is ``state`` (expiry counts without a sweep)."""
    dead = and_(TransferItem.state == ItemState.OFFERED, Transfer.is_dead_unswept(now))
    if state is ItemState.OFFERED:
        return and_(TransferItem.state == ItemState.OFFERED, ~dead)
    if state is ItemState.EXPIRED:
        return or_(TransferItem.state == ItemState.EXPIRED, dead)
    return TransferItem.state == state


def list_transfers(
    actor: User,
    *,
    direction: str,
    q: str = "",
    page: int = 1,
    per_page: int | None = None,
    state_labels: dict[ItemState, str] | None = None,
    now: datetime | None = None,
) -> Page[TransferRow]:
    """One page of the overview, newest first: ``outgoing`` (offered by us) or
    ``incoming`` (received). Search covers every column the overview shows.

    Pages are read along an index (items by source environment, the inbox by
    receiving environment), so a page costs the same with 100 or 100,000 offers.
    """
    require_migrate(actor)
    now = now or utcnow()
    per_page = per_page or current_app.config["TRANSFERS_PER_PAGE"]
    page = min(max(1, page), current_app.config["MAX_PAGE"])
    env = actor.environment_id
    if direction == "outgoing":
        key, created = TransferItem.id, TransferItem.created_at
        stmt = select(key).where(TransferItem.source_environment_id == env)
    elif direction == "incoming":
        key, created = TransferInbox.transfer_item_id, TransferInbox.created_at
        stmt = select(key).where(TransferInbox.environment_id == env)
    else:
        raise ServiceError("direction", N_("Choose outgoing or incoming."))
    q = (q or "").strip()
    order = (created.desc(), key.desc())
    words_only = q and _words_only(q, state_labels or {})
    if words_only and db.engine.dialect.name == "sqlite" and len(q) >= 3:
        matches = _sqlite_word_search(direction, env, q.lower())
        total = len(matches)
        ids = matches[(page - 1) * per_page : page * per_page]
    elif q:
        table = TransferItem if direction == "outgoing" else TransferInbox
        conditions, needs_join = _search_conditions(
            q, now, state_labels or {}, table.search_text, key
        )
        if needs_join:
            if direction == "incoming":
                stmt = stmt.join(TransferItem, TransferItem.id == TransferInbox.transfer_item_id)
            stmt = stmt.join(Transfer, Transfer.id == TransferItem.transfer_id)
        # One pass over this environment's index gives both the count and the page.
        matches = list(db.session.scalars(stmt.where(*conditions).order_by(*order)))
        total = len(matches)
        ids = matches[(page - 1) * per_page : page * per_page]
    else:
        total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        ids = list(
            db.session.scalars(stmt.order_by(*order).limit(per_page).offset((page - 1) * per_page))
        )
    loaded = {
        item.id: (item, transfer, claim_id)
        for item, transfer, claim_id in db.session.execute(
            select(TransferItem, Transfer, Claim.id)
            .join(Transfer, TransferItem.transfer_id == Transfer.id)
            .outerjoin(Claim, Claim.transfer_id == Transfer.id)
            .where(TransferItem.id.in_(ids))
        )
    }
    show_code = direction == "outgoing"
    result = []
    for item_id in ids:
        item, transfer, claim_id = loaded[item_id]
        claimed = transfer.is_claimed
        result.append(
            TransferRow(
                item=item,
                transfer=transfer,
                state=domain.effective_item_state(
                    item.state, transfer.state, transfer.expires_at, now, claimed=claimed
                ),
                code=code_for(transfer) if show_code else None,
                can_withdraw=show_code
                and domain.can_withdraw(
                    transfer.state, [item.state], transfer.expires_at, now, claimed=claimed
                ),
                claim_id=claim_id,
            )
        )
    return Page(result, page, per_page, total)


@dataclass(frozen=True)
class ItemRow:
    """One administration of an offer with the state people must see."""

    item: TransferItem
    state: ItemState


@dataclass(frozen=True)
class TransferView:
    transfer: Transfer
    direction: str
    state: TransferState
    code: str | None
    items: list[tuple[TransferItem, ItemState]]
    can_withdraw: bool
    # The offering side's actions on a live offer, and when its reminder goes out.
    can_extend: bool = False
    can_resend: bool = False
    reminder_at: datetime | None = None
    # The receiving side may still claim it with the code.
    claimable: bool = False

    @property
    def item_rows(self) -> list[ItemRow]:
        return [ItemRow(item, state) for item, state in self.items]

    @property
    def recipient_emails(self) -> list[str]:
        """Only the offering side sees whom it offered to."""
        return self.transfer.recipient_emails if self.direction == Side.OUTGOING else []


def get_transfer(actor: User, transfer_id: int, *, now: datetime | None = None) -> TransferView:
    """One offer as the actor may see it: the source environment sees its code; an
    addressed environment sees the rest; anyone else gets a 404."""
    require_migrate(actor)
    now = now or utcnow()
    transfer, side = access.transfer_for(actor, transfer_id, sides=(Side.OUTGOING, Side.INCOMING))
    direction = side.value
    claimed = transfer.is_claimed
    outgoing_live = direction == "outgoing" and transfer.is_live(now)
    items = [
        (
            i,
            domain.effective_item_state(
                i.state, transfer.state, transfer.expires_at, now, claimed=claimed
            ),
        )
        for i in transfer.items
    ]
    return TransferView(
        transfer=transfer,
        direction=direction,
        state=domain.effective_state(transfer.state, transfer.expires_at, now, claimed=claimed),
        code=code_for(transfer) if direction == "outgoing" else None,
        items=items,
        can_withdraw=direction == "outgoing"
        and domain.can_withdraw(
            transfer.state,
            [i.state for i in transfer.items],
            transfer.expires_at,
            now,
            claimed=claimed,
        ),
        can_extend=outgoing_live
        and transfer.extensions < current_app.config["TRANSFER_MAX_EXTENSIONS"],
        can_resend=outgoing_live,
        claimable=direction == "incoming" and transfer.is_live(now) and not claimed,
        reminder_at=(
            transfer.expires_at - timedelta(days=current_app.config["TRANSFER_REMINDER_DAYS"])
            if outgoing_live and transfer.reminder_sent_at is None
            else None
        ),
    )
