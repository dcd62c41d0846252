"""Receiving administrations: the code, the preview, the decisions, the claim's
progress and its reconciliation report.

Like ``services`` (the offering side) these take the acting user and plain
arguments and flush; the caller commits. Redeeming a code is one conditional
UPDATE of the transfer, so of any number of simultaneous claims exactly one wins,
and a withdraw racing it ends in exactly one of the two.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from flask import current_app, g
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import aliased
from werkzeug.exceptions import NotFound

from app import audit
from app.admin_settings.models import (
    Administration,
    Connection,
    Document,
    Package,
    Plan,
)
from app.auth.models import User
from app.db import begin_write, utcnow
from app.errors import N_, ServiceError, ValidationFailed
from app.extensions import db
from app.progress import progress_store
from app.scoping import scoped_select
from app.storage import blob_store
from app.transfers import domain, emails
from app.transfers.copy import progress_key
from app.transfers.models import (
    Claim,
    ItemState,
    Transfer,
    TransferInbox,
    TransferItem,
    TransferState,
)
from app.transfers.services import digest_for, release_administrations, require_migrate

# The one answer for every code that does not lead to a claimable offer.
NEUTRAL = N_(
    "This transfer code is not valid. It may be mistyped, expired, withdrawn or already used."
)


class CodeRejected(ServiceError):
    """A code that leads nowhere: counted against the rate limit and audited."""

    def __init__(self, message: str = NEUTRAL, **params) -> None:
        super().__init__("code", message, **params)


def _failed_attempt(actor: User, reason: str, origin: str) -> None:
    """Mark this request's code entry as failed: the rate limiter counts it, and
    ``record_failed_attempt`` audits it after the caller has rolled back."""
    g.claim_code_failed = reason


def record_failed_attempt(actor: User, *, origin: str) -> None:
    """Audit the failed code entry of this request, if there was one.

    Called by views and the API after they rolled back the failed unit of work, so
    the audit event survives the rollback.
    """
    reason = g.get("claim_code_failed")
    if reason:
        audit.record(
            "claim_code_failed",
            actor=actor,
            object_type="transfer",
            object_id=None,
            environment_id=actor.environment_id,
            origin=origin,
            details={"reason": reason},
        )


def find_offer(actor: User, raw_code: str, *, origin: str, now: datetime | None = None) -> Transfer:
    """The claimable offer a typed code leads to, for this actor.

    A mistyped code (check symbol) is told apart from a guess and not counted; every
    other failure gets the same neutral answer, counts and is audited.
    """
    require_migrate(actor)
    now = now or utcnow()
    try:
        code = domain.normalise_code(raw_code)
    except domain.MistypedCode:
        raise ServiceError(
            "code",
            N_(
                "This code contains a typo: one of the characters is wrong. Check it against the e-mail."
            ),
        ) from None
    except domain.MalformedCode:
        if not (raw_code or "").strip():
            raise ServiceError("code", N_("Enter the transfer code from the e-mail.")) from None
        raise ServiceError(
            "code",
            N_(
                "A transfer code has 25 characters in five groups, like ABCDE-FGHJK-MNPQR-STVWX-YZ012."
            ),
        ) from None
    transfer = db.session.scalars(
        select(Transfer).where(Transfer.code_digest == digest_for(code))
    ).one_or_none()
    if transfer is None:
        _failed_attempt(actor, "unknown", origin)
        raise CodeRejected()
    if transfer.target_environment_id == actor.environment_id:
        raise ServiceError(
            "code",
            N_("Your office has already claimed this offer; follow it in the migration overview."),
        )
    claimed = transfer.target_environment_id is not None
    if transfer.source_environment_id == actor.environment_id or not domain.is_claimable(
        transfer.state, transfer.expires_at, now, claimed=claimed
    ):
        _failed_attempt(actor, "not_claimable", origin)
        raise CodeRejected()
    if actor.email.lower() not in transfer.recipient_emails:
        _failed_attempt(actor, "not_a_recipient", origin)
        raise ServiceError(
            "code",
            N_(
                "This offer was not sent to your e-mail address (%(email)s). Ask the offering "
                "office to offer it to you."
            ),
            email=actor.email,
        )
    return transfer


@dataclass(frozen=True)
class PreviewItem:
    item: TransferItem
    documents: int
    archive_years: list[int]
    total_size: int
    connections: list[tuple[Connection, bool]]  # each candidate with: does the code clash?

    @property
    def problem(self) -> str | None:
        if not self.connections:
            return N_("Your environment has no connection to %(package)s.")
        if all(clash for _c, clash in self.connections):
            return N_("An administration with code %(code)s already exists under your connection.")
        return None


@dataclass(frozen=True)
class Preview:
    transfer: Transfer
    items: list[PreviewItem]
    premium: bool
    fee: Decimal
    currency: str
    terms_version: str
    problems: list[str] = field(default_factory=list)


def preview(actor: User, raw_code: str, *, origin: str, now: datetime | None = None) -> Preview:
    """What will arrive, and whether it can: per administration its system, document
    count, archive years and size, and where it could go."""
    transfer = find_offer(actor, raw_code, origin=origin, now=now)
    config = current_app.config
    item_ids = [i.administration_id for i in transfer.items]
    stats = {
        admin_id: (n, size or 0)
        for admin_id, n, size in db.session.execute(
            select(Document.administration_id, func.count(), func.sum(Document.size))
            .where(Document.administration_id.in_(item_ids))
            .group_by(Document.administration_id)
        )
    }
    years: dict[int, list[int]] = {}
    for admin_id, year in db.session.execute(
        select(Document.administration_id, Document.booked_year)
        .where(Document.administration_id.in_(item_ids))
        .distinct()
    ):
        years.setdefault(admin_id, []).append(year)
    connections = list(
        db.session.scalars(scoped_select(Connection, actor).order_by(Connection.name))
    )
    codes: dict[int, set[str]] = {}
    for connection_id, code in db.session.execute(
        select(Administration.connection_id, Administration.code).where(
            Administration.environment_id == actor.environment_id,
            Administration.code.in_([i.administration_code for i in transfer.items]),
        )
    ):
        codes.setdefault(connection_id, set()).add(code)
    by_id = {c.id: c for c in connections}
    items = []
    for item in transfer.items:
        placements = domain.placements(
            item.package,
            item.administration_code,
            [(c.id, c.package.value) for c in connections],
            codes,
        )
        n, size = stats.get(item.administration_id, (0, 0))
        items.append(
            PreviewItem(
                item=item,
                documents=n,
                archive_years=domain.archive_years(years.get(item.administration_id, [])),
                total_size=size,
                connections=[(by_id[p.connection_id], p.clash) for p in placements],
            )
        )
    environment = actor.environment
    problems = []
    if environment.plan is not Plan.PREMIUM:
        problems.append(
            N_("Only an environment with the premium plan can receive administrations.")
        )
    return Preview(
        transfer=transfer,
        items=items,
        premium=environment.plan is Plan.PREMIUM,
        fee=Decimal(config["TRANSFER_FEE_PER_ADMINISTRATION"]),
        currency=config["TRANSFER_FEE_CURRENCY"],
        terms_version=config["TRANSFER_TERMS_VERSION"],
        problems=problems,
    )


@dataclass(frozen=True)
class Decision:
    item_id: int
    action: str  # "accept" or "reject"
    connection_id: int | None = None
    message: str | None = None


def submit_claim(
    actor: User,
    raw_code: str,
    decisions: list[Decision],
    *,
    accept_terms: bool,
    origin: str,
    now: datetime | None = None,
) -> Claim:
    """Redeem the code: record each decision, queue the accepted administrations for
    copying and tell the offering side about rejections.

    Exactly one of any number of simultaneous submissions wins; the others get the
    answer for a used code. Nothing is recorded when any input is bad.
    """
    now = now or utcnow()
    begin_write(db.session)
    result = preview(actor, raw_code, origin=origin, now=now)
    transfer = result.transfer
    errors: list[ServiceError] = [ServiceError("environment", p) for p in result.problems]
    by_item = {d.item_id: d for d in decisions}
    unknown = set(by_item) - {i.id for i in transfer.items}
    if unknown:
        raise NotFound()
    accepted: list[tuple[TransferItem, int]] = []
    rejected: list[tuple[TransferItem, str | None]] = []
    for entry in result.items:
        item = entry.item
        decision = by_item.get(item.id)
        name = item.administration_name
        if decision is None or decision.action not in ("accept", "reject"):
            errors.append(
                ServiceError(
                    f"decisions.{item.id}",
                    N_("Accept or reject “%(name)s”."),
                    name=name,
                )
            )
            continue
        if decision.action == "reject":
            rejected.append((item, (decision.message or "").strip()[:2000] or None))
            continue
        choices = {c.id: clash for c, clash in entry.connections}
        if not choices:
            errors.append(
                ServiceError(
                    f"decisions.{item.id}",
                    N_("Your environment has no connection to %(package)s for “%(name)s”."),
                    package=Package(item.package).label,
                    name=name,
                )
            )
        elif decision.connection_id not in choices:
            errors.append(
                ServiceError(
                    f"decisions.{item.id}",
                    N_("Choose the connection “%(name)s” goes under."),
                    name=name,
                )
            )
        elif choices[decision.connection_id]:
            errors.append(
                ServiceError(
                    f"decisions.{item.id}",
                    N_(
                        "The chosen connection already has an administration with code "
                        "%(code)s; “%(name)s” cannot go there."
                    ),
                    code=item.administration_code,
                    name=name,
                )
            )
        else:
            accepted.append((item, decision.connection_id))
    if len({c for _i, c in accepted}) < len(accepted):
        # Two accepted administrations with one code under one connection would clash.
        codes = [(i.administration_code, c) for i, c in accepted]
        if len(set(codes)) < len(codes):
            errors.append(
                ServiceError(
                    "decisions",
                    N_("Two administrations with the same code cannot share a connection."),
                )
            )
    if not accept_terms:
        errors.append(ServiceError("accept_terms", N_("Accept the terms and the fee to claim.")))
    if errors:
        raise ValidationFailed(errors)

    won = db.session.execute(
        update(Transfer)
        .where(
            Transfer.id == transfer.id,
            Transfer.state == TransferState.OFFERED,
            Transfer.target_environment_id.is_(None),
            Transfer.expires_at > now,
        )
        .values(target_environment_id=actor.environment_id)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:
        winner = db.session.scalar(
            select(Transfer.target_environment_id).where(Transfer.id == transfer.id)
        )
        if winner == actor.environment_id:  # a double submit, or a colleague was quicker
            raise ServiceError(
                "code",
                N_(
                    "Your office has already claimed this offer; follow it in the migration overview."
                ),
            )
        _failed_attempt(actor, "lost_race", origin)
        raise CodeRejected()
    _narrow_inbox(transfer, actor.environment_id)
    claim = Claim(
        transfer_id=transfer.id,
        target_environment_id=actor.environment_id,
        claimed_by_id=actor.id,
        claimed_by_name=actor.name,
        claimed_by_email=actor.email,
        terms_version=result.terms_version,
        fee_per_administration=result.fee,
        currency=result.currency,
        created_at=now,
    )
    db.session.add(claim)
    for item, connection_id in accepted:
        item.state = ItemState.CLAIMING
        item.target_connection_id = connection_id
        item.fee = result.fee
        item.updated_at = now
    for item, message in rejected:
        item.state = ItemState.REJECTED
        item.reject_message = message
        item.updated_at = now
    if rejected:
        release_administrations([i.administration_id for i, _m in rejected])
    if not accepted:
        transfer.state = TransferState.COMPLETED
        transfer.ended_at = now
    db.session.flush()
    audit.record(
        "claim_submitted",
        actor=actor,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=actor.environment_id,
        origin=origin,
        details={
            "claim_id": claim.id,
            "terms_version": claim.terms_version,
            "fee_per_administration": str(claim.fee_per_administration),
            "currency": claim.currency,
            "accepted": [{"item_id": i.id, "connection_id": c} for i, c in accepted],
            "rejected": [{"item_id": i.id, "message": m} for i, m in rejected],
        },
    )
    audit.record(
        "transfer_claimed",
        actor=actor,
        object_type="transfer",
        object_id=transfer.id,
        environment_id=transfer.source_environment_id,
        origin=origin,
        details={"claim_id": claim.id, "target_environment_id": actor.environment_id},
    )
    if rejected:
        emails.items_rejected(transfer, [i for i, _m in rejected], actor.environment.name)
    return claim


def _narrow_inbox(transfer: Transfer, environment_id: int) -> None:
    """Once redeemed, the offer is listed for the claiming environment only."""
    item_ids = [i.id for i in transfer.items]
    db.session.execute(
        delete(TransferInbox).where(
            TransferInbox.transfer_item_id.in_(item_ids),
            TransferInbox.environment_id != environment_id,
        )
    )
    listed = set(
        db.session.scalars(
            select(TransferInbox.transfer_item_id).where(
                TransferInbox.transfer_item_id.in_(item_ids),
                TransferInbox.environment_id == environment_id,
            )
        )
    )
    db.session.add_all(
        TransferInbox(
            environment_id=environment_id,
            transfer_item_id=item.id,
            created_at=transfer.created_at,
            search_text=item.search_text,
        )
        for item in transfer.items
        if item.id not in listed
    )


# --- following a claim -------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemProgress:
    item: TransferItem
    done: int
    total: int

    @property
    def percent(self) -> int:
        if self.item.state is ItemState.MIGRATED:
            return 100
        return int(100 * self.done / self.total) if self.total else 0


@dataclass(frozen=True)
class ClaimView:
    claim: Claim
    transfer: Transfer
    items: list[ItemProgress]
    side: str  # "target" or "source"

    @property
    def finished(self) -> bool:
        return all(p.item.state not in (ItemState.CLAIMING, ItemState.OFFERED) for p in self.items)


def _item_progress(item: TransferItem) -> ItemProgress:
    if item.state is ItemState.MIGRATED:
        n = item.documents_copied or 0
        return ItemProgress(item, n, item.documents_total or n)
    reported = (
        progress_store().read(progress_key(item.id)) if item.state is ItemState.CLAIMING else None
    )
    if reported:
        return ItemProgress(item, *reported)
    return ItemProgress(item, 0, item.documents_total or 0)


def get_claim(actor: User, claim_id: int) -> ClaimView:
    """A claim as its receiving or offering environment sees it; anyone else: 404."""
    require_migrate(actor)
    claim = db.session.get(Claim, claim_id)
    if claim is None:
        raise NotFound()
    transfer = claim.transfer
    if claim.target_environment_id == actor.environment_id:
        side = "target"
    elif transfer.source_environment_id == actor.environment_id:
        side = "source"
    else:
        raise NotFound()
    return ClaimView(claim, transfer, [_item_progress(i) for i in transfer.items], side)


def items_progress(actor: User, item_ids: list[int]) -> list[ItemProgress]:
    """Progress of the given items that the actor's environment offered or received."""
    require_migrate(actor)
    if not item_ids:
        return []
    env = actor.environment_id
    items = db.session.scalars(
        select(TransferItem)
        .join(Transfer, TransferItem.transfer_id == Transfer.id)
        .where(
            TransferItem.id.in_(item_ids[:200]),
            (Transfer.source_environment_id == env) | (Transfer.target_environment_id == env),
        )
    )
    return [_item_progress(i) for i in items]


# --- reconciliation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconciliationRow:
    item_id: int
    administration: str
    source_document_id: int
    source_hash: str
    target_document_id: int | None
    target_hash: str | None

    @property
    def verdict(self) -> str:
        if self.target_document_id is None:
            return "missing"
        return "match" if self.source_hash == self.target_hash else "differs"

    def as_dict(self) -> dict:
        return {
            "transfer_item_id": self.item_id,
            "source_document_id": self.source_document_id,
            "source_sha256": self.source_hash,
            "target_document_id": self.target_document_id,
            "target_sha256": self.target_hash,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class ReconciliationSummary:
    item_id: int
    administration: str
    state: str
    source_documents: int
    target_documents: int
    matching: int

    @property
    def verdict(self) -> str:
        if self.state != ItemState.MIGRATED.value:
            return self.state
        ok = self.source_documents == self.target_documents == self.matching
        return "match" if ok else "mismatch"

    def as_dict(self) -> dict:
        return {
            "transfer_item_id": self.item_id,
            "administration": self.administration,
            "state": self.state,
            "source_documents": self.source_documents,
            "target_documents": self.target_documents,
            "matching": self.matching,
            "verdict": self.verdict,
        }


def reconciliation_summary(actor: User, claim_id: int) -> list[ReconciliationSummary]:
    view = get_claim(actor, claim_id)
    summaries = []
    for progress in view.items:
        item = progress.item
        source_n = target_n = matching = 0
        if item.state is ItemState.MIGRATED:
            for row in _rows(item):
                source_n += 1
                if row.target_document_id is not None:
                    target_n += 1
                    matching += row.verdict == "match"
            target_n = db.session.scalar(
                select(func.count())
                .select_from(Document)
                .where(Document.administration_id == item.target_administration_id)
            )
        else:
            source_n = db.session.scalar(
                select(func.count())
                .select_from(Document)
                .where(Document.administration_id == item.administration_id)
            )
        summaries.append(
            ReconciliationSummary(
                item.id, item.administration_name, item.state.value, source_n, target_n, matching
            )
        )
    return summaries


def reconciliation_rows(actor: User, claim_id: int) -> Iterator[ReconciliationRow]:
    """Per document of every migrated administration: source and target content hash.

    Streams: the report of 100,000 documents is never held in memory at once.
    """
    view = get_claim(actor, claim_id)
    for progress in view.items:
        if progress.item.state is ItemState.MIGRATED:
            yield from _rows(progress.item)


def item_reconciliation(item: TransferItem) -> Iterator[ReconciliationRow]:
    """The per-document comparison of one migrated item (no tenant check: callers scope)."""
    return _rows(item)


def _rows(item: TransferItem) -> Iterator[ReconciliationRow]:
    source = aliased(Document)
    target = aliased(Document)
    stmt = (
        select(source.id, source.blob_key, target.id, target.blob_key)
        .outerjoin(
            target,
            (target.source_document_id == source.id)
            & (target.administration_id == item.target_administration_id),
        )
        .where(source.administration_id == item.administration_id)
        .order_by(source.id)
        .execution_options(yield_per=5000)
    )
    store = blob_store()
    for source_id, source_hash, target_id, target_hash in db.session.execute(stmt):
        # The target's hash is its blob's key; a blob that is gone does not match.
        if target_id is not None and not store.exists(target_hash):
            target_hash = None
        yield ReconciliationRow(
            item.id, item.administration_name, source_id, source_hash, target_id, target_hash
        )
