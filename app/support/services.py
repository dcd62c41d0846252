"""Support: every environment's transfers, the stuck ones, revoke, retry, audit trail.

Support staff act across environments but see metadata only: names, counts,
states and sizes; never a document's file or contents and never a usable code.
Scheduled and command-line callers pass ``actor=None`` and an ``origin``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import to_user_timezone
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import aliased

from app import audit_text
from app.admin_settings.models import (
    Administration,
    AuthorizationFlow,
    AuthorizationStep,
    Document,
    DocumentStatus,
    Environment,
    Workflow,
)
from app.admin_settings.services import facts_for
from app.audit import AuditEvent
from app.auth.models import User
from app.db import begin_write, utcnow
from app.errors import N_, NotFoundError, ServiceError
from app.extensions import db
from app.outbox import OutboxMessage
from app.paging import Page
from app.transfers import access, domain, lifecycle, overview
from app.transfers.access import Side, require_support
from app.transfers.models import (
    Claim,
    ItemState,
    Transfer,
    TransferItem,
    TransferRecipient,
    TransferState,
)
from app.transfers.reports import item_reconciliation


@dataclass(frozen=True)
class EnvironmentSummary:
    environment: Environment
    administrations: int
    documents: int
    users: int


def environment_overview(actor: User) -> list[EnvironmentSummary]:
    """Every environment with counts; names and numbers only, no contents."""
    require_support(actor)

    def counts(column) -> dict[int, int]:
        return dict(db.session.execute(select(column, func.count()).group_by(column)).all())

    administrations = counts(Administration.environment_id)
    documents = counts(Document.environment_id)
    users = counts(User.environment_id)
    environments = db.session.scalars(select(Environment).order_by(Environment.name))
    return [
        EnvironmentSummary(
            e, administrations.get(e.id, 0), documents.get(e.id, 0), users.get(e.id, 0)
        )
        for e in environments
    ]


def environments(actor: User | None) -> list[Environment]:
    require_support(actor)
    return list(db.session.scalars(select(Environment).order_by(Environment.name)))


# --- why a transfer is stuck -------------------------------------------------------------------

REASONS = {
    "claiming_too_long": N_("Being copied for more than %(minutes)d minutes"),
    "lease_lapsed": N_("The copy's worker stopped without finishing; waiting for another worker"),
    "failed": N_("A copy failed: %(error)s"),
    "expired_unswept": N_("Past its expiry date, but not yet marked expired"),
    "gained_blocker": N_("An offered administration has gained a blocker: %(name)s"),
}


def _blocked_administration():
    """Offered administrations that gained a blocker since the preflight."""
    pending = exists().where(
        Document.administration_id == Administration.id,
        Document.status == DocumentStatus.PENDING,
    )
    workflow = exists().where(
        Workflow.administration_id == Administration.id, Workflow.active.is_(True)
    )
    step = exists().where(
        AuthorizationFlow.administration_id == Administration.id,
        AuthorizationStep.flow_id == AuthorizationFlow.id,
    )
    return or_(pending, workflow, step)


def _stuck_condition(now: datetime):
    minutes = current_app.config["SUPPORT_STUCK_AFTER_MINUTES"]
    item = aliased(TransferItem)
    claiming_too_long = exists().where(
        item.transfer_id == Transfer.id,
        item.state == ItemState.CLAIMING,
        item.updated_at < now - timedelta(minutes=minutes),
    )
    # Its worker died or hangs: the lease ran out without the copy finishing.
    lease_lapsed = exists().where(
        item.transfer_id == Transfer.id,
        item.state == ItemState.CLAIMING,
        item.lease_until < now,
        or_(item.lease_owner.is_not(None), item.attempts > 0),
    )
    failed = exists().where(item.transfer_id == Transfer.id, item.state == ItemState.FAILED)
    expired_unswept = Transfer.is_dead_unswept(now)
    gained_blocker = exists().where(
        item.transfer_id == Transfer.id,
        item.state == ItemState.OFFERED,
        Administration.id == item.administration_id,
        _blocked_administration(),
    )
    return or_(claiming_too_long, lease_lapsed, failed, expired_unswept, gained_blocker)


@dataclass(frozen=True)
class Reason:
    kind: str
    params: dict


def stuck_reasons(transfer: Transfer, now: datetime) -> list[Reason]:
    """Why support should look at this transfer; empty when nothing is wrong."""
    minutes = current_app.config["SUPPORT_STUCK_AFTER_MINUTES"]
    reasons: list[Reason] = []
    if transfer.is_dead_unswept(now):
        reasons.append(Reason("expired_unswept", {}))
    offered = [i for i in transfer.items if i.state is ItemState.OFFERED]
    facts = facts_for(i.administration_id for i in offered)
    for item in transfer.items:
        if item.state is ItemState.CLAIMING and item.updated_at < now - timedelta(minutes=minutes):
            reasons.append(Reason("claiming_too_long", {"minutes": minutes}))
        elif item.state is ItemState.CLAIMING and _lease_lapsed(item, now):
            reasons.append(Reason("lease_lapsed", {}))
        elif item.state is ItemState.FAILED:
            reasons.append(Reason("failed", {"error": item.last_error or "?"}))
        elif item.state is ItemState.OFFERED and _has_blocker(facts.get(item.administration_id)):
            reasons.append(Reason("gained_blocker", {"name": item.administration_name}))
    return reasons


def _lease_lapsed(item: TransferItem, now: datetime) -> bool:
    return (
        item.lease_until is not None
        and item.lease_until < now
        and (item.lease_owner is not None or item.attempts > 0)
    )


def _has_blocker(facts) -> bool:
    from app.admin_settings.domain import blockers

    return bool(facts and blockers(facts))


# --- the console ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SupportRow:
    transfer: Transfer
    state: str  # a transfer state, or "claiming" for an offer whose claim has started
    reasons: list[Reason]
    claim: Claim | None


def display_state(transfer: Transfer, now: datetime) -> str:
    claimed = transfer.is_claimed
    state = domain.effective_state(transfer.state, transfer.expires_at, now, claimed=claimed)
    if state is TransferState.OFFERED and claimed:
        # Being copied, unless a copy failed: then that is what support must see.
        if any(i.state is ItemState.FAILED for i in transfer.items):
            return "failed"
        return "claiming"
    return state.value


FILTER_STATES = ("offered", "claiming", "completed", "withdrawn", "expired", "revoked", "failed")


def _state_filter(state: str, now: datetime):
    item = aliased(TransferItem)
    if state == "offered":
        return Transfer.is_live(now)
    if state == "claiming":
        return and_(Transfer.is_open, Transfer.is_claimed)
    if state == "expired":
        return or_(Transfer.state == TransferState.EXPIRED, Transfer.is_dead_unswept(now))
    if state == "failed":
        return exists().where(item.transfer_id == Transfer.id, item.state == ItemState.FAILED)
    return Transfer.state == TransferState(state)


def list_transfers(
    actor: User | None,
    *,
    state: str | None = None,
    source_id: int | None = None,
    target_id: int | None = None,
    older_than_days: int | None = None,
    q: str = "",
    stuck: bool = False,
    page: int = 1,
    per_page: int = 25,
    now: datetime | None = None,
) -> Page[SupportRow]:
    """Every transfer of every environment, newest first, filtered and searched."""
    require_support(actor)
    now = now or utcnow()
    page = max(1, page)
    conditions = []
    if state:
        if state not in FILTER_STATES:
            raise ServiceError("state", N_("Unknown state."))
        conditions.append(_state_filter(state, now))
    if source_id:
        conditions.append(Transfer.source_environment_id == source_id)
    if target_id:
        conditions.append(Transfer.target_environment_id == target_id)
    if older_than_days:
        conditions.append(Transfer.created_at <= now - timedelta(days=older_than_days))
    if stuck:
        conditions.append(_stuck_condition(now))
    q = (q or "").strip().lower()
    if q:
        item = aliased(TransferItem)
        source = aliased(Environment)
        target = aliased(Environment)
        matches = [
            exists().where(
                item.transfer_id == Transfer.id,
                or_(
                    func.lower(item.administration_name).contains(q, autoescape=True),
                    func.lower(item.administration_code).contains(q, autoescape=True),
                    func.lower(item.contact_email).contains(q, autoescape=True),
                ),
            ),
            exists().where(
                source.id == Transfer.source_environment_id,
                or_(
                    func.lower(source.name).contains(q, autoescape=True),
                    func.lower(source.office_code).contains(q, autoescape=True),
                ),
            ),
            exists().where(
                target.id == Transfer.target_environment_id,
                or_(
                    func.lower(target.name).contains(q, autoescape=True),
                    func.lower(target.office_code).contains(q, autoescape=True),
                ),
            ),
            exists().where(
                TransferRecipient.transfer_id == Transfer.id,
                TransferRecipient.email.contains(q, autoescape=True),
            ),
            func.lower(Transfer.offered_by_email).contains(q, autoescape=True),
        ]
        # A transfer code or its groups, a day as the pages show it.
        named = overview.offers_named_by(q)
        if named is not None:
            matches.append(named)
        conditions.append(or_(*matches))
    stmt = select(Transfer).where(*conditions)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    transfers = list(
        db.session.scalars(
            stmt.order_by(Transfer.created_at.desc(), Transfer.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )
    claims = {
        c.transfer_id: c
        for c in db.session.scalars(
            select(Claim).where(Claim.transfer_id.in_([t.id for t in transfers]))
        )
    }
    rows = [
        SupportRow(t, display_state(t, now), stuck_reasons(t, now), claims.get(t.id))
        for t in transfers
    ]
    return Page(rows, page, per_page, total)


def get_transfer(
    actor: User | None, transfer_id: int, *, now: datetime | None = None
) -> SupportRow:
    require_support(actor)
    now = now or utcnow()
    transfer = db.session.get(Transfer, transfer_id)
    if transfer is None:
        raise NotFoundError()
    claim = db.session.scalars(select(Claim).where(Claim.transfer_id == transfer.id)).one_or_none()
    return SupportRow(transfer, display_state(transfer, now), stuck_reasons(transfer, now), claim)


# --- actions -------------------------------------------------------------------------------------


def revoke(
    actor: User | None, transfer_id: int, reason: str, *, origin: str, now: datetime | None = None
) -> Transfer:
    """End a transfer for good with a reason both sides receive (``lifecycle.revoke``)."""
    require_support(actor)
    reason = (reason or "").strip()
    if len(reason) < 5:
        raise ServiceError("reason", N_("Give the reason for revoking (at least 5 characters)."))
    begin_write(db.session)
    with lifecycle.copy_may_hold_locks():
        transfer, _side = access.transfer_for(actor, transfer_id, sides=(Side.SUPPORT,))
        lifecycle.revoke(actor, transfer, reason, origin=origin, now=now or utcnow())
        db.session.flush()
    return transfer


def retry(actor: User | None, transfer_id: int, *, origin: str, now: datetime | None = None) -> int:
    """Queue the failed items of a transfer for another copy; returns how many."""
    require_support(actor)
    begin_write(db.session)
    with lifecycle.copy_may_hold_locks():
        transfer, _side = access.transfer_for(actor, transfer_id, sides=(Side.SUPPORT,))
        retried = lifecycle.retry(actor, transfer, origin=origin, now=now or utcnow())
        db.session.flush()
    return retried


# --- audit trail and evidence ------------------------------------------------------------------


def _transfer_events_condition(transfer: Transfer):
    item_ids = [i.id for i in transfer.items]
    mail_ids = select(OutboxMessage.id).where(
        (OutboxMessage.ref_type == "transfer") & (OutboxMessage.ref_id == transfer.id)
    )
    return or_(
        and_(AuditEvent.object_type == "transfer", AuditEvent.object_id == transfer.id),
        and_(AuditEvent.object_type == "transfer_item", AuditEvent.object_id.in_(item_ids)),
        and_(AuditEvent.object_type == "outbox_message", AuditEvent.object_id.in_(mail_ids)),
    )


def _audit_conditions(
    *,
    environment_id: int | None,
    action: str,
    since: datetime | None,
    before: datetime | None,
) -> list:
    conditions = []
    if environment_id is not None:
        conditions.append(AuditEvent.environment_id == environment_id)
    if action:
        conditions.append(AuditEvent.action == action)
    if since is not None:
        conditions.append(AuditEvent.created_at >= since)
    if before is not None:
        conditions.append(AuditEvent.created_at < before)
    return conditions


def audit_trail(
    actor: User | None,
    *,
    transfer_id: int | None = None,
    environment_id: int | None = None,
    action: str = "",
    since: datetime | None = None,
    before: datetime | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page[AuditEvent]:
    """Audit events of one transfer or one environment (or all), newest first; only
    those from ``since`` and before ``before`` when given."""
    require_support(actor)
    page = max(1, page)
    conditions = _audit_conditions(
        environment_id=environment_id, action=action, since=since, before=before
    )
    if transfer_id is not None:
        conditions.append(_transfer_events_condition(_transfer_or_404(transfer_id)))
    stmt = select(AuditEvent).where(*conditions)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    events = list(
        db.session.scalars(
            stmt.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )
    return Page(events, page, per_page, total)


def _transfer_or_404(transfer_id: int) -> Transfer:
    transfer = db.session.get(Transfer, transfer_id)
    if transfer is None:
        raise NotFoundError()
    return transfer


def audit_actions(actor: User | None) -> list[str]:
    require_support(actor)
    return list(
        db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))
    )


def transfer_audit_actions(actor: User | None, transfer_id: int) -> list[str]:
    """The actions that occur in one transfer's audit trail."""
    require_support(actor)
    condition = _transfer_events_condition(_transfer_or_404(transfer_id))
    return list(
        db.session.scalars(
            select(AuditEvent.action).where(condition).distinct().order_by(AuditEvent.action)
        )
    )


AUDIT_COLUMNS = (
    N_("Time"),
    N_("Actor"),
    N_("Role"),
    N_("Office"),
    N_("Action"),
    N_("Event"),
    N_("Origin"),
)
AUDIT_BATCH = 500


def audit_export(
    actor: User | None,
    *,
    environment_id: int | None = None,
    action: str = "",
    since: datetime | None = None,
    before: datetime | None = None,
) -> Iterator[list]:
    """Every audit event the filters select, newest first, as CSV rows (columns
    ``AUDIT_COLUMNS``) in the current language. Streams: read in batches of
    ``AUDIT_BATCH`` (keyset paging), names loaded once per batch."""
    require_support(actor)
    conditions = _audit_conditions(
        environment_id=environment_id, action=action, since=since, before=before
    )
    after: tuple[datetime, int] | None = None
    while True:
        stmt = select(AuditEvent).where(*conditions)
        if after is not None:
            stmt = stmt.where(
                or_(
                    AuditEvent.created_at < after[0],
                    and_(AuditEvent.created_at == after[0], AuditEvent.id < after[1]),
                )
            )
        batch = list(
            db.session.scalars(
                stmt.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(AUDIT_BATCH)
            )
        )
        for row in audit_text.readable(batch):
            event = row.event
            details = "; ".join(f"{k}: {v}" for k, v in row.details)
            yield [
                to_user_timezone(event.created_at).replace(microsecond=0),
                event.actor_email or "",
                row.role,
                row.office,
                audit_text.action_label(event.action),
                f"{row.sentence} — {details}" if details else row.sentence,
                row.origin,
            ]
        if len(batch) < AUDIT_BATCH:
            return
        after = (batch[-1].created_at, batch[-1].id)


EVIDENCE_COLUMNS = (
    N_("Section"),
    N_("Time"),
    N_("Actor"),
    N_("Role"),
    N_("Action"),
    N_("Subject"),
    N_("Detail"),
)


def evidence(actor: User | None, transfer_id: int) -> Iterator[list]:
    """The evidence of one transfer as spreadsheet rows (columns ``EVIDENCE_COLUMNS``; times
    as datetimes): the offer, the acceptance (terms version and fee), every audited step
    with actor and time, and per document the outcome of the reconciliation. Streams."""
    view = get_transfer(actor, transfer_id)
    transfer, claim = view.transfer, view.claim
    yield [
        "offer",
        transfer.created_at,
        transfer.offered_by_email,
        "superuser",
        "offered",
        transfer.source_environment.name,
        f"terms {transfer.terms_version}; expires {transfer.expires_at.isoformat()}; "
        f"recipients {', '.join(transfer.recipient_emails)}",
    ]
    for item in transfer.items:
        yield [
            "item",
            item.updated_at,
            "",
            "",
            item.state.value,
            f"{item.administration_name} ({item.administration_code})",
            f"documents {item.documents_copied if item.documents_copied is not None else ''}; "
            f"fee {item.fee if item.fee is not None else ''}; "
            f"reject message {item.reject_message or ''}",
        ]
    if claim is not None:
        yield [
            "acceptance",
            claim.created_at,
            claim.claimed_by_email,
            "superuser",
            "claimed",
            transfer.target_environment.name if transfer.target_environment else "",
            f"terms {claim.terms_version}; fee {claim.fee_per_administration} "
            f"{claim.currency} per administration",
        ]
    events = list(
        db.session.scalars(
            select(AuditEvent)
            .where(_transfer_events_condition(transfer))
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
    )
    # Each step in words, as the audit page shows it (one transfer's events: a page's worth).
    for step in audit_text.readable(events):
        event = step.event
        yield [
            "step",
            event.created_at,
            event.actor_email or step.origin,
            step.role,
            audit_text.action_label(event.action),
            step.sentence,
            "; ".join(f"{name}: {value}" for name, value in step.details),
        ]
    for item in transfer.items:
        if item.state is ItemState.MIGRATED:
            for row in item_reconciliation(item):
                amount = f"{row.amount:.2f}".replace(".", ",") if row.amount is not None else "-"
                yield [
                    "document",
                    "",
                    "",
                    "",
                    row.verdict,
                    f"{item.administration_name}: document {row.source_document_id} → "
                    f"{row.target_document_id or '-'} ({row.filename})",
                    f"invoice date {row.invoice_date or '-'}; amount {amount}; "
                    f"status {row.status or '-'}; "
                    f"source {row.source_hash}; target {row.target_hash or '-'}",
                ]


# --- Imports of migration files ------------------------------------------------------------


@dataclass(frozen=True)
class SupportImportRow:
    """One import as support sees it: metadata and the dry run's counts, never a file."""

    imp: object  # app.migration_files.models.Import
    environment_name: str

    @property
    def counts(self) -> dict[str, int]:
        counts = (self.imp.report or {}).get("counts", {})
        return {
            name: counts.get(name, 0)
            for name in ("administrations", "documents", "already_present", "conflicts", "errors")
        }


def list_imports(
    actor: User | None, *, state: str | None = None, page: int = 1, per_page: int = 25
) -> Page[SupportImportRow]:
    """Every environment's imports, newest first; ``state`` filters by one state."""
    from app.migration_files.models import Import, ImportState

    require_support(actor)
    page = max(1, page)
    conditions = []
    if state:
        try:
            conditions.append(Import.state == ImportState(state))
        except ValueError:
            raise ServiceError("state", N_("Unknown state.")) from None
    total = db.session.scalar(select(func.count()).select_from(Import).where(*conditions)) or 0
    rows = db.session.execute(
        select(Import, Environment.name)
        .join(Environment, Environment.id == Import.environment_id)
        .where(*conditions)
        .order_by(Import.created_at.desc(), Import.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return Page([SupportImportRow(imp, name) for imp, name in rows], page, per_page, total)


def get_import(actor: User | None, import_id: int) -> SupportImportRow:
    from app.migration_files.models import Import

    require_support(actor)
    row = db.session.execute(
        select(Import, Environment.name)
        .join(Environment, Environment.id == Import.environment_id)
        .where(Import.id == import_id)
    ).first()
    if row is None:
        raise NotFoundError()
    return SupportImportRow(*row)


def retry_import(actor: User | None, import_id: int, *, origin: str) -> SupportImportRow:
    """Queue a failed import again (audited by ``imports.retry``); 409 when not failed."""
    from app.migration_files import imports

    require_support(actor)
    imports.retry(actor, import_id, origin=origin)
    return get_import(actor, import_id)
