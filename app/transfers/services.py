"""Offering administrations: preflight, offer, withdraw, overviews, expiry, reminders.

Services take the acting user (or none, for scheduled jobs) and plain arguments,
look tenant objects up through ``app.scoping`` and flush; the caller commits.
State changes that can race (withdraw, expire, remind) are conditional UPDATEs,
so running them twice, or from two schedulers at once, does no harm.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext
from sqlalchemy import and_, func, or_, select, text, update
from werkzeug.exceptions import Forbidden, NotFound

from app import audit
from app.admin_settings.models import Administration, AdministrationState, Connection
from app.admin_settings.services import AdministrationRow, facts_for
from app.auth.domain import Permission, has_permission
from app.auth.models import User
from app.db import utcnow
from app.errors import N_, ServiceError, ValidationFailed
from app.extensions import db
from app.paging import Page
from app.scoping import get_scoped_or_404, scoped_select
from app.tokens import InvalidToken, Purpose, verify
from app.transfers import domain, emails
from app.transfers.models import (
    Claim,
    ItemState,
    Transfer,
    TransferInbox,
    TransferItem,
    TransferRecipient,
    TransferState,
)


def require_migrate(actor: User) -> None:
    if not has_permission(actor.role, Permission.MIGRATE):
        raise Forbidden()


# --- codes -------------------------------------------------------------------------------------


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


def _new_code() -> tuple[str, str, str]:
    """A fresh (nonce hex, normalised code, digest) triple."""
    nonce = secrets.token_bytes(16)
    code = domain.code_from_nonce(nonce, _key("transfer-code"))
    return nonce.hex(), code, digest_for(code)


# --- preflight ---------------------------------------------------------------------------------


class PreflightRow(AdministrationRow):
    """One administration as the move-out wizard sees it: its blockers, and whether it
    can be chosen (no blockers, not already on offer or moved)."""

    @property
    def selectable(self) -> bool:
        return not self.blockers and self.administration.state is AdministrationState.ACTIVE


def preflight(actor: User, connection_id: int) -> list[PreflightRow]:
    """Checklist points 2–4 for every administration of one of the actor's connections."""
    require_migrate(actor)
    connection = get_scoped_or_404(Connection, connection_id, actor)
    administrations = list(
        db.session.scalars(
            scoped_select(Administration, actor)
            .where(Administration.connection_id == connection.id)
            .order_by(Administration.name)
        )
    )
    facts = facts_for(a.id for a in administrations)
    return [PreflightRow(a, facts[a.id]) for a in administrations]


def preflight_administration(actor: User, administration_id: int) -> PreflightRow:
    require_migrate(actor)
    administration = get_scoped_or_404(Administration, administration_id, actor)
    return PreflightRow(administration, facts_for([administration.id])[administration.id])


def connections_for_wizard(actor: User) -> list[Connection]:
    require_migrate(actor)
    return list(db.session.scalars(scoped_select(Connection, actor).order_by(Connection.name)))


# --- offering ----------------------------------------------------------------------------------


def _is_valid_email(email: str) -> bool:
    try:
        validate_email(email, check_deliverability=False, test_environment=current_app.testing)
    except EmailNotValidError:
        return False
    return True


_RECIPIENT_MESSAGES = {
    "malformed": N_("“%(email)s” is not a valid e-mail address."),
    "repeated": N_("“%(email)s” is given more than once."),
    "own": N_("“%(email)s” is your own address; it already gets a copy."),
    "own_environment": N_(
        "“%(email)s” belongs to a user of your own environment; send the offer to someone at the other office."
    ),
}


def _selection_errors(
    actor: User, administration_ids: list[int]
) -> tuple[list[Administration], list[ServiceError]]:
    """The chosen administrations and what stops them from being offered together.

    An administration id that is not the actor's is a 404, as everywhere.
    """
    ids = list(dict.fromkeys(administration_ids))
    if not ids:
        return [], [ServiceError("administration_ids", N_("Choose at least one administration."))]
    found = {
        a.id: a
        for a in db.session.scalars(
            scoped_select(Administration, actor).where(Administration.id.in_(ids))
        )
    }
    if len(found) != len(ids):
        raise NotFound()
    administrations = [found[i] for i in ids]
    errors: list[ServiceError] = []
    if len({a.connection_id for a in administrations}) > 1:
        errors.append(
            ServiceError(
                "administration_ids",
                N_("Choose administrations of one connection; offer the others separately."),
            )
        )
    facts = facts_for(ids)
    for administration in administrations:
        row = PreflightRow(administration, facts[administration.id])
        if administration.state is AdministrationState.OFFERED:
            message = N_("“%(name)s” is already on offer.")
            errors.append(ServiceError("administration_ids", message, name=administration.name))
        elif administration.state is AdministrationState.MIGRATED:
            message = N_("“%(name)s” has already moved to another office.")
            errors.append(ServiceError("administration_ids", message, name=administration.name))
        elif row.blockers:
            errors.append(
                ServiceError(
                    "administration_ids",
                    N_("“%(name)s” cannot move yet: %(blockers)s."),
                    name=administration.name,
                    blockers=", ".join(
                        f"{b.count} {gettext(BLOCKER_WORDS[b.kind])}" for b in row.blockers
                    ),
                )
            )
    return administrations, errors


def check_selection(actor: User, administration_ids: list[int]) -> list[Administration]:
    """The wizard's second step: ``ValidationFailed`` unless these can be offered together."""
    require_migrate(actor)
    administrations, errors = _selection_errors(actor, administration_ids)
    if errors:
        raise ValidationFailed(errors)
    return administrations


def validate_offer(
    actor: User,
    *,
    administration_ids: list[int],
    recipient_emails: list[str],
    checklist_confirmed: bool,
    accept_terms: bool,
) -> tuple[list[Administration], list[str]]:
    """Check an offer completely; ``ValidationFailed`` lists every problem at once."""
    require_migrate(actor)
    administrations, errors = _selection_errors(actor, administration_ids)
    own_emails = set(
        db.session.scalars(
            select(func.lower(User.email)).where(User.environment_id == actor.environment_id)
        )
    )
    cleaned, problems = domain.check_recipients(
        recipient_emails,
        requester_email=actor.email,
        own_environment_emails=own_emails,
        is_valid=_is_valid_email,
    )
    for problem in problems:
        errors.append(
            ServiceError(
                "recipient_emails", _RECIPIENT_MESSAGES[problem.problem], email=problem.email
            )
        )
    if not cleaned and not problems:
        errors.append(
            ServiceError(
                "recipient_emails", N_("Give the e-mail address of at least one recipient.")
            )
        )
    if not checklist_confirmed:
        errors.append(
            ServiceError("checklist_confirmed", N_("Confirm all four points of the checklist."))
        )
    if not accept_terms:
        errors.append(ServiceError("accept_terms", N_("Accept the terms to send the offer.")))
    if errors:
        raise ValidationFailed(errors)
    return administrations, cleaned


BLOCKER_WORDS = {
    "authorizers_in_flows": N_("authorizer(s) in authorization flows"),
    "active_workflows": N_("active workflow(s)"),
    "undecided_documents": N_("document(s) still to be decided"),
}


def create_offer(
    actor: User,
    *,
    administration_ids: list[int],
    recipient_emails: list[str],
    checklist_confirmed: bool,
    accept_terms: bool,
    origin: str,
    now: datetime | None = None,
) -> tuple[Transfer, str]:
    """Offer administrations to another office: a code, mails, the administrations on offer.

    Returns the transfer and its formatted code. Nothing is created when any input
    is bad (``ValidationFailed``).
    """
    administrations, recipients = validate_offer(
        actor,
        administration_ids=administration_ids,
        recipient_emails=recipient_emails,
        checklist_confirmed=checklist_confirmed,
        accept_terms=accept_terms,
    )
    now = now or utcnow()
    config = current_app.config
    nonce, _code, digest = _new_code()
    connection = administrations[0].connection
    # Only administrations still active move to offered: a concurrent offer of the
    # same administration loses here (and on the open-item unique index).
    result = db.session.execute(
        update(Administration)
        .where(
            Administration.id.in_([a.id for a in administrations]),
            Administration.state == AdministrationState.ACTIVE,
        )
        .values(state=AdministrationState.OFFERED)
        .execution_options(synchronize_session="fetch")
    )
    if result.rowcount != len(administrations):
        raise ValidationFailed(
            [
                ServiceError(
                    "administration_ids", N_("One of the administrations is already on offer.")
                )
            ]
        )
    transfer = Transfer(
        source_environment_id=actor.environment_id,
        connection_id=connection.id,
        offered_by_id=actor.id,
        offered_by_name=actor.name,
        offered_by_email=actor.email,
        state=TransferState.OFFERED,
        code_nonce=nonce,
        code_digest=digest,
        terms_version=config["TRANSFER_TERMS_VERSION"],
        created_at=now,
        expires_at=domain.expiry(now, config["TRANSFER_CODE_TTL_DAYS"]),
        recipients=[TransferRecipient(email=e) for e in recipients],
        items=[
            TransferItem(
                administration_id=a.id,
                source_environment_id=actor.environment_id,
                created_at=now,
                search_text=domain.search_text(
                    a.name,
                    a.code,
                    a.contact_email,
                    connection.package.value,
                    connection.package.label,
                ),
                state=ItemState.OFFERED,
                administration_name=a.name,
                administration_code=a.code,
                contact_email=a.contact_email,
                package=connection.package.value,
                updated_at=now,
            )
            for a in administrations
        ],
    )
    db.session.add(transfer)
    db.session.flush()
    _fill_inbox(transfer, recipients, actor.environment_id)
    code = code_for(transfer)
    audit.record(
        "transfer_offered",
        actor=actor,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=actor.environment_id,
        origin=origin,
        details={
            "administration_ids": [a.id for a in administrations],
            "recipients": recipients,
            "terms_version": transfer.terms_version,
            "checklist_confirmed": True,
            "expires_at": transfer.expires_at.isoformat(),
        },
    )
    emails.offer_made(transfer)
    return transfer, code


def _fill_inbox(transfer: Transfer, recipients: list[str], source_environment_id: int) -> None:
    """List the offer in the overview of every environment with a user among the recipients."""
    environment_ids = list(
        db.session.scalars(
            select(User.environment_id)
            .where(
                func.lower(User.email).in_(recipients),
                User.environment_id.is_not(None),
                User.environment_id != source_environment_id,
            )
            .distinct()
        )
    )
    db.session.add_all(
        TransferInbox(
            environment_id=environment_id,
            transfer_item_id=item.id,
            created_at=transfer.created_at,
            search_text=item.search_text,
        )
        for environment_id in environment_ids
        for item in transfer.items
    )
    db.session.flush()


def withdraw(
    actor: User, transfer_id: int, *, origin: str, now: datetime | None = None
) -> Transfer:
    """End an offer before its claim starts; the code dies at once and recipients are told."""
    require_migrate(actor)
    now = now or utcnow()
    transfer = _own_transfer(actor, transfer_id)
    item_states = [i.state for i in transfer.items]
    claimed = transfer.target_environment_id is not None
    if not domain.can_withdraw(
        transfer.state, item_states, transfer.expires_at, now, claimed=claimed
    ):
        raise ServiceError("transfer", _why_final(transfer, now))
    if not _end(
        transfer, TransferState.WITHDRAWN, ItemState.WITHDRAWN, now, actor, expires_after=now
    ):
        raise ServiceError("transfer", N_("This offer can no longer be withdrawn."))
    audit.record(
        "transfer_withdrawn",
        actor=actor,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=transfer.source_environment_id,
        origin=origin,
    )
    emails.offer_withdrawn(transfer)
    return transfer


def _why_final(transfer: Transfer, now: datetime) -> str:
    if transfer.target_environment_id is not None:
        return N_(
            "The receiving office has started the claim; the offer can no longer be withdrawn."
        )
    state = domain.effective_state(transfer.state, transfer.expires_at, now)
    if state is TransferState.EXPIRED:
        return N_("This offer has expired.")
    if state is TransferState.WITHDRAWN:
        return N_("This offer has already been withdrawn.")
    if state is TransferState.OFFERED:
        return N_(
            "The receiving office has started the claim; the offer can no longer be withdrawn."
        )
    return N_("This offer has ended and can no longer be withdrawn.")


def release_administrations(administration_ids) -> None:
    """Administrations on offer become active again in their own environment (an offer
    ended, or the receiver turned them down). ``administration_ids``: ids or a subquery."""
    db.session.execute(
        update(Administration)
        .where(
            Administration.id.in_(administration_ids),
            Administration.state == AdministrationState.OFFERED,
        )
        .values(state=AdministrationState.ACTIVE)
        .execution_options(synchronize_session=False)
    )


def _end(
    transfer: Transfer,
    state: TransferState,
    item_state: ItemState,
    now: datetime,
    actor: User | None,
    *,
    expires_after: datetime | None = None,
    expired_before: datetime | None = None,
) -> bool:
    """Move an offered transfer and its offered items to a final state, and free the
    administrations. A conditional UPDATE: False when someone else got there first."""
    conditions = [
        Transfer.id == transfer.id,
        Transfer.state == TransferState.OFFERED,
        # A claim that has started owns the offer: no withdraw or expiry after it.
        Transfer.target_environment_id.is_(None),
    ]
    if expires_after is not None:
        conditions.append(Transfer.expires_at > expires_after)
    if expired_before is not None:
        conditions.append(Transfer.expires_at <= expired_before)
    won = db.session.execute(
        update(Transfer)
        .where(*conditions)
        .values(state=state, ended_at=now, ended_by_id=actor.id if actor else None)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:
        return False
    offered_items = select(TransferItem.administration_id).where(
        TransferItem.transfer_id == transfer.id, TransferItem.state == ItemState.OFFERED
    )
    release_administrations(offered_items)
    db.session.execute(
        update(TransferItem)
        .where(TransferItem.transfer_id == transfer.id, TransferItem.state == ItemState.OFFERED)
        .values(state=item_state, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    db.session.expire(transfer)
    return True


def _own_transfer(actor: User, transfer_id: int) -> Transfer:
    transfer = db.session.get(Transfer, transfer_id)
    if transfer is None or transfer.source_environment_id != actor.environment_id:
        raise NotFound()
    return transfer


# --- scheduled jobs ----------------------------------------------------------------------------


def expire_due(now: datetime | None = None) -> int:
    """Mark offers past their expiry as expired, free their administrations and tell the
    requester. Safe to run from several schedulers at once."""
    now = now or utcnow()
    ids = list(
        db.session.scalars(
            select(Transfer.id).where(
                Transfer.state == TransferState.OFFERED,
                Transfer.target_environment_id.is_(None),
                Transfer.expires_at <= now,
            )
        )
    )
    done = 0
    for transfer_id in ids:
        transfer = db.session.get(Transfer, transfer_id)
        if transfer is None or not _end(
            transfer, TransferState.EXPIRED, ItemState.EXPIRED, now, None, expired_before=now
        ):
            db.session.rollback()
            continue
        audit.record(
            "transfer_expired",
            actor=None,
            object_type="transfer",
            object_id=transfer.id,
            environment_id=transfer.source_environment_id,
            origin="scheduler",
        )
        emails.offer_expired(transfer)
        db.session.commit()
        done += 1
    return done


def send_reminders(now: datetime | None = None) -> int:
    """Remind both sides of offers expiring within ``TRANSFER_REMINDER_DAYS``; once each."""
    now = now or utcnow()
    days = current_app.config["TRANSFER_REMINDER_DAYS"]
    ids = list(
        db.session.scalars(
            select(Transfer.id).where(
                Transfer.state == TransferState.OFFERED,
                Transfer.target_environment_id.is_(None),
                Transfer.reminder_sent_at.is_(None),
                Transfer.expires_at > now,
                Transfer.expires_at <= now + timedelta(days=days),
            )
        )
    )
    done = 0
    for transfer_id in ids:
        won = db.session.execute(
            update(Transfer)
            .where(
                Transfer.id == transfer_id,
                Transfer.state == TransferState.OFFERED,
                Transfer.reminder_sent_at.is_(None),
            )
            .values(reminder_sent_at=now)
            .execution_options(synchronize_session=False)
        )
        if won.rowcount != 1:
            db.session.rollback()
            continue
        transfer = db.session.get(Transfer, transfer_id)
        audit.record(
            "transfer_reminder_sent",
            actor=None,
            object_type="transfer",
            object_id=transfer.id,
            environment_id=transfer.source_environment_id,
            origin="scheduler",
        )
        emails.offer_reminder(transfer)
        db.session.commit()
        done += 1
    return done


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


def _parse_day(q: str) -> date | None:
    for fmt in ("%d-%m-%Y", "%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(q, fmt).date()
        except ValueError:
            continue
    return None


def _day_range(day: date) -> tuple[datetime, datetime]:
    """A calendar day in the office's time zone, as a UTC range."""
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    start = datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
    return start, start + timedelta(days=1)


def _words_only(q: str, labels: dict[ItemState, str]) -> bool:
    """A search that is not a code, a date or a status word: only the text columns."""
    try:
        domain.normalise_code(q)
    except domain.CodeError:
        pass
    else:
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
    matched against ``text_column`` (the lower-cased name, code, e-mail and accounting
    system, kept in the page's own index), a date against the day offered or expiring,
    and a status word against the effective state.
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
    day = _parse_day(q)
    if day is not None:
        start, end = _day_range(day)
        conditions.append(and_(Transfer.created_at >= start, Transfer.created_at < end))
        conditions.append(and_(Transfer.expires_at >= start, Transfer.expires_at < end))
        needs_join = True
    for state, word in labels.items():
        if needle in (word.lower(), state.value):
            conditions.append(_state_condition(state, now))
            needs_join = True
    return [or_(*conditions)], needs_join


def _state_condition(state: ItemState, now: datetime):
    """Items whose effective state is ``state`` (expiry counts without a sweep)."""
    unclaimed = Transfer.target_environment_id.is_(None)
    dead = and_(TransferItem.state == ItemState.OFFERED, unclaimed, Transfer.expires_at <= now)
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
    page = max(1, page)
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
        claimed = transfer.target_environment_id is not None
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


def _incoming_condition(actor: User):
    """Offers in the actor's inbox: addressed to a user of its environment, or redeemed by it."""
    listed = (
        select(TransferItem.transfer_id)
        .join(TransferInbox, TransferInbox.transfer_item_id == TransferItem.id)
        .where(TransferInbox.environment_id == actor.environment_id)
    )
    return Transfer.id.in_(listed)


@dataclass(frozen=True)
class TransferView:
    transfer: Transfer
    direction: str
    state: TransferState
    code: str | None
    items: list[tuple[TransferItem, ItemState]]
    can_withdraw: bool


def get_transfer(actor: User, transfer_id: int, *, now: datetime | None = None) -> TransferView:
    """One offer as the actor may see it: the source environment sees its code; an
    addressed environment sees the rest; anyone else gets a 404."""
    require_migrate(actor)
    now = now or utcnow()
    transfer = db.session.get(Transfer, transfer_id)
    if transfer is None:
        raise NotFound()
    if transfer.source_environment_id == actor.environment_id:
        direction = "outgoing"
    elif db.session.scalar(
        select(func.count())
        .select_from(Transfer)
        .where(Transfer.id == transfer_id, _incoming_condition(actor))
    ):
        direction = "incoming"
    else:
        raise NotFound()
    claimed = transfer.target_environment_id is not None
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
    )


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
