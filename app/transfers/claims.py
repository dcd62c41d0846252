"""Receiving administrations: the code, the preview, the decisions and the redemption,
and following the copy that comes of it.

Like the offering side these take the acting user and plain arguments and flush; the
caller's unit of work commits. The decision step is pure (``domain.decide_claim``);
redeeming the code is ``lifecycle.redeem``, one conditional UPDATE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from flask import current_app
from flask_babel import gettext, ngettext
from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager

from app import audit
from app.admin_settings.models import Administration, Connection, Document, Package, Plan
from app.auth.models import User
from app.db import begin_write, utcnow
from app.errors import N_, Conflict, NotFoundError, ServiceError, ValidationFailed
from app.extensions import db
from app.progress import progress_store
from app.scoping import scoped_select
from app.transfers import access, codes, copying, domain, lifecycle
from app.transfers.access import Side, require_migrate
from app.transfers.domain import Decision, ItemState
from app.transfers.models import Claim, Transfer, TransferItem

__all__ = ["Decision", "CodeRejected", "NEUTRAL", "find_offer", "preview", "submit_claim"]

# The one answer for every code that does not lead to a claimable offer.
NEUTRAL = N_(
    "This transfer code is not valid. It may be mistyped, expired, withdrawn or already used."
)


class CodeRejected(ServiceError):
    """A code that leads nowhere for this actor: counted against the rate limit, and
    audited by ``record_failed_attempt`` (``reason`` says why, for the audit only)."""

    def __init__(self, reason: str, message: str = NEUTRAL, **params) -> None:
        super().__init__("code", message, **params)
        self.reason = reason


def record_failed_attempt(actor: User, reason: str, *, origin: str) -> None:
    """Audit a failed code entry, in a unit of work of its own after the failed one
    rolled back, so the event survives it."""
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
        select(Transfer).where(Transfer.code_digest == codes.digest_for(code))
    ).one_or_none()
    if transfer is None:
        raise CodeRejected("unknown")
    if transfer.target_environment_id == actor.environment_id:
        raise ServiceError(
            "code",
            N_("Your office has already claimed this offer; follow it in the migration overview."),
        )
    if transfer.source_environment_id == actor.environment_id or not transfer.is_live(now):
        raise CodeRejected("not_claimable")
    # The code works for the office it was offered to, for any of its superusers; an
    # offer from before offices were known works for its recipients' addresses. Anyone
    # else gets the answer of a wrong code: no answer may tell that a code is live.
    if transfer.receiving_environment_id is not None:
        if transfer.receiving_environment_id != actor.environment_id:
            raise CodeRejected("other_office")
    elif actor.email.lower() not in transfer.recipient_emails:
        raise CodeRejected("not_a_recipient")
    return transfer


@dataclass(frozen=True)
class Placement:
    """A connection of the receiver and whether the administration's code clashes there."""

    connection: Connection
    clash: bool


@dataclass(frozen=True)
class PreviewItem:
    item: TransferItem
    documents: int
    archive_years: list[int]
    total_size: int
    connections: list[tuple[Connection, bool]]  # each candidate with: does the code clash?

    @property
    def choices(self) -> list[Placement]:
        return [Placement(c, clash) for c, clash in self.connections]

    @property
    def problem(self) -> str | None:
        if not self.connections:
            return N_("Your environment has no connection to %(package)s.")
        if all(clash for _c, clash in self.connections):
            return N_(
                "Your connection %(connections)s already has an administration with code "
                "%(code)s. Give that administration another code or add another %(package)s "
                "connection to receive this one, or turn it down."
            )
        return None

    @property
    def problem_params(self) -> dict[str, str]:
        """What ``problem`` names: the package, the code, the connections that clash."""
        return {
            "package": Package(self.item.package).label,
            "code": self.item.administration_code,
            "connections": ", ".join(f"“{c.name}”" for c, clash in self.connections if clash),
        }


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
    return assess(actor, find_offer(actor, raw_code, origin=origin, now=now))


def assess(actor: User, transfer: Transfer) -> Preview:
    """What the preview says for the actor's office about ``transfer``, an offer it may
    see (found by its code, or opened from the received list): where each administration
    could go, what is in the way, and whether the office can receive at all."""
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
            Administration.holds_its_code,  # a client who left may come back
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
    items = {i.id: i for i in transfer.items}
    if {d.item_id for d in decisions} - set(items):
        raise NotFoundError()
    decided = domain.decide_claim(
        [
            domain.Candidate(
                item_id=entry.item.id,
                name=entry.item.administration_name,
                code=entry.item.administration_code,
                package_label=Package(entry.item.package).label,
                connections={c.id: clash for c, clash in entry.connections},
            )
            for entry in result.items
        ],
        decisions,
        accept_terms=accept_terms,
    )
    # The receiver's own preconditions (the premium plan) only bar accepting: an office
    # can always turn an offer down, whatever its plan or connections.
    errors = [ServiceError("environment", p) for p in result.problems] if decided.accepted else []
    errors += [ServiceError(f, message, **params) for f, message, params in decided.problems]
    if errors:
        raise ValidationFailed(errors)
    try:
        return lifecycle.redeem(
            actor,
            transfer,
            [(items[i], c) for i, c in decided.accepted],
            [(items[i], m) for i, m in decided.rejected],
            # Nothing accepted: no terms were agreed to, no fee applies.
            terms_version=result.terms_version if decided.accepted else "",
            fee=result.fee if decided.accepted else Decimal("0"),
            currency=result.currency,
            origin=origin,
            now=now,
        )
    except lifecycle.RedeemLost as lost:
        if lost.already_ours:  # a double submit, or a colleague was quicker
            raise Conflict(
                "code",
                N_(
                    "Your office has already claimed this offer; follow it in the migration overview."
                ),
            ) from None
        raise CodeRejected("lost_race") from None


# --- following a claim -------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemProgress:
    item: TransferItem
    done: int
    total: int
    side: str = "target"
    # False while a copy runs and the progress store has no figure for it (not reported
    # yet, or the store cannot be reached): the page then says "bezig" instead of numbers.
    known: bool = True

    @property
    def slow(self) -> bool:
        """Still copying after support was told it takes longer than usual."""
        return self.item.state is ItemState.CLAIMING and (
            self.item.transfer.slow_reported_at is not None
        )

    @property
    def text(self) -> str:
        if not self.known:
            said = gettext("in progress")
        else:
            said = ngettext(
                "%(done)d of %(num)d document",
                "%(done)d of %(num)d documents",
                self.total,
                done=self.done,
            )
        if self.slow:
            return gettext("%(progress)s — takes longer than usual; support knows", progress=said)
        return said

    @property
    def target_administration_id(self) -> int | None:
        """Only the receiving side learns where the administration landed."""
        return self.item.target_administration_id if self.side == "target" else None

    @property
    def error(self) -> str | None:
        return self.item.last_error if self.item.state is ItemState.FAILED else None

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
    def state(self) -> str:
        return "done" if self.finished else "copying"

    @property
    def finished(self) -> bool:
        return all(p.item.state not in (ItemState.CLAIMING, ItemState.OFFERED) for p in self.items)


def _item_progress(item: TransferItem, side: str = "target") -> ItemProgress:
    if item.state is ItemState.MIGRATED:
        n = item.documents_copied or 0
        return ItemProgress(item, n, item.documents_total or n, side)
    # A figure counts only while a worker holds the lease: a dead worker's last figure is
    # not the truth, so until another worker takes over the page says "bezig".
    held = item.lease_owner is not None and (
        item.lease_until is None or item.lease_until > utcnow()
    )
    reported = (
        progress_store().read(copying.progress_key(item.id))
        if item.state is ItemState.CLAIMING and held
        else None
    )
    if reported:
        return ItemProgress(item, *reported, side)
    # Waiting for a worker, or its worker gone: a copy is all or nothing, so nothing has
    # arrived yet ("0 of 200"). Only a running copy without a figure is "in progress".
    known = not (item.state is ItemState.CLAIMING and held)
    return ItemProgress(item, 0, item.documents_total or 0, side, known=known)


def get_claim(actor: User, claim_id: int) -> ClaimView:
    """A claim as its receiving or offering environment sees it; anyone else: 404."""
    require_migrate(actor)
    claim, side = access.claim_for(actor, claim_id)
    transfer = claim.transfer
    side_name = "target" if side is Side.INCOMING else "source"
    items = [_item_progress(i, side_name) for i in transfer.items]
    return ClaimView(claim, transfer, items, side_name)


def items_progress(actor: User, item_ids: list[int]) -> list[ItemProgress]:
    """Progress of the given items that the actor's environment offered or received."""
    require_migrate(actor)
    if not item_ids:
        return []
    items = db.session.scalars(
        select(TransferItem)
        .join(Transfer, TransferItem.transfer_id == Transfer.id)
        .where(TransferItem.id.in_(item_ids[:200]), access.visible_items(actor))
        .options(contains_eager(TransferItem.transfer))
    )
    return [_item_progress(i) for i in items]
