"""``/api/v1/transfers``: offer, list, read and withdraw, on the same services as the pages."""

from __future__ import annotations

from flask_babel import gettext
from flask_smorest import Blueprint, abort

from app.admin_settings.models import Package
from app.auth.api import api_user, authenticate_bearer
from app.errors import ServiceError, ValidationFailed
from app.extensions import db
from app.templating import item_state_labels
from app.transfers import claims, services
from app.transfers.schemas import (
    ClaimRequestSchema,
    ClaimSchema,
    CodeSchema,
    OfferSchema,
    PreviewSchema,
    ReconciliationSchema,
    TransferPageSchema,
    TransferQuerySchema,
    TransferSchema,
)
from app.transfers.views import limit_code_per_environment, limit_code_per_user

blp = Blueprint(
    "transfers_api",
    __name__,
    url_prefix="/transfers",
    description="Offers of administrations to another office",
)
blp.before_request(authenticate_bearer)


def _dump(view: services.TransferView) -> dict:
    transfer = view.transfer
    return {
        "id": transfer.id,
        "direction": view.direction,
        "code": view.code,
        "state": view.state.value,
        "source_environment": transfer.source_environment.name,
        "recipient_emails": transfer.recipient_emails if view.direction == "outgoing" else [],
        "terms_version": transfer.terms_version,
        "created_at": transfer.created_at,
        "expires_at": transfer.expires_at,
        "items": [
            {
                "id": item.id,
                "administration_id": item.administration_id,
                "administration_name": item.administration_name,
                "administration_code": item.administration_code,
                "contact_email": item.contact_email,
                "package": item.package,
                "state": state.value,
                "target_administration_id": item.target_administration_id,
            }
            for item, state in view.items
        ],
    }


@blp.route("", methods=["POST"])
@blp.arguments(OfferSchema)
@blp.response(201, TransferSchema)
def create(data: dict):
    """Offer administrations of one connection to another office.

    Every problem is reported at once as 422 with field errors; nothing is created then.
    """
    actor = api_user()
    try:
        transfer, _code = services.create_offer(
            actor,
            administration_ids=data["administration_ids"],
            recipient_emails=data["recipient_emails"],
            checklist_confirmed=data["checklist_confirmed"],
            accept_terms=data["accept_terms"],
            origin="api",
        )
    except ValidationFailed as failure:
        db.session.rollback()
        abort(422, errors=failure.by_field())
    db.session.commit()
    return _dump(services.get_transfer(actor, transfer.id))


@blp.route("", methods=["GET"])
@blp.arguments(TransferQuerySchema, location="query")
@blp.response(200, TransferPageSchema)
def list_transfers(query: dict):
    """The overview: ``outgoing`` (offered by us) or ``incoming`` (received), newest first."""
    return services.list_transfers(
        api_user(),
        direction=query["direction"],
        q=query["q"],
        page=query["page"],
        per_page=query["per_page"],
        state_labels=item_state_labels(),
    )


@blp.route("/<int:transfer_id>", methods=["GET"])
@blp.response(200, TransferSchema)
def get(transfer_id: int):
    """One offer; the code only for the offering environment."""
    return _dump(services.get_transfer(api_user(), transfer_id))


@blp.route("/<int:transfer_id>/withdraw", methods=["POST"])
@blp.response(200, TransferSchema)
def withdraw(transfer_id: int):
    """Withdraw an offer until its claim has started; 409 when that is no longer possible."""
    actor = api_user()
    try:
        services.withdraw(actor, transfer_id, origin="api")
    except ServiceError as error:
        db.session.rollback()
        abort(409, message=error.translated(), errors={error.field: [error.translated()]})
    db.session.commit()
    return _dump(services.get_transfer(actor, transfer_id))


claims_blp = Blueprint(
    "claims_api",
    __name__,
    url_prefix="/claims",
    description="Claiming offered administrations with a transfer code",
)
claims_blp.before_request(authenticate_bearer)


def _rejected_code(error: ServiceError):
    db.session.rollback()
    claims.record_failed_attempt(api_user(), origin="api")
    db.session.commit()
    abort(422, message=error.translated(), errors={error.field: [error.translated()]})


@claims_blp.route("/preview", methods=["POST"])
@claims_blp.arguments(CodeSchema)
@claims_blp.response(200, PreviewSchema)
@limit_code_per_user
@limit_code_per_environment
def preview_claim(data: dict):
    """What a code would bring in, and whether it can. Every wrong, expired, withdrawn
    or used code gets the same 422 answer."""
    try:
        preview = claims.preview(api_user(), data["code"], origin="api")
    except ServiceError as error:
        _rejected_code(error)
    db.session.rollback()
    transfer = preview.transfer
    return {
        "transfer_id": transfer.id,
        "source_environment": transfer.source_environment.name,
        "offered_by": transfer.offered_by_name,
        "expires_at": transfer.expires_at,
        "premium": preview.premium,
        "problems": [gettext(p) for p in preview.problems],
        "fee_per_administration": preview.fee,
        "currency": preview.currency,
        "terms_version": preview.terms_version,
        "items": [
            {
                "item_id": entry.item.id,
                "administration_name": entry.item.administration_name,
                "administration_code": entry.item.administration_code,
                "accounting_system": entry.item.package,
                "documents": entry.documents,
                "archive_years": entry.archive_years,
                "total_size": entry.total_size,
                "connections": [
                    {"id": c.id, "name": c.name, "code_clash": clash}
                    for c, clash in entry.connections
                ],
                "problem": gettext(
                    entry.problem,
                    package=Package(entry.item.package).label,
                    code=entry.item.administration_code,
                )
                if entry.problem
                else None,
            }
            for entry in preview.items
        ],
    }


def _dump_claim(view: claims.ClaimView) -> dict:
    return {
        "id": view.claim.id,
        "transfer_id": view.transfer.id,
        "state": "done" if view.finished else "copying",
        "finished": view.finished,
        "terms_version": view.claim.terms_version,
        "fee_per_administration": view.claim.fee_per_administration,
        "currency": view.claim.currency,
        "created_at": view.claim.created_at,
        "items": [
            {
                "item_id": p.item.id,
                "administration_name": p.item.administration_name,
                "state": p.item.state.value,
                "documents_done": p.done,
                "documents_total": p.total,
                "percent": p.percent,
                "target_administration_id": p.item.target_administration_id
                if view.side == "target"
                else None,
                "error": p.item.last_error if p.item.state.value == "failed" else None,
            }
            for p in view.items
        ],
    }


@claims_blp.route("", methods=["POST"])
@claims_blp.arguments(ClaimRequestSchema)
@claims_blp.response(202, ClaimSchema)
@limit_code_per_user
@limit_code_per_environment
def create_claim(data: dict):
    """Accept or reject each administration of an offer; the accepted ones are copied in
    the background. Poll ``GET /api/v1/claims/{id}`` for progress."""
    actor = api_user()
    try:
        claim = claims.submit_claim(
            actor,
            data["code"],
            [claims.Decision(**d) for d in data["decisions"]],
            accept_terms=data["accept_terms"],
            origin="api",
        )
    except ValidationFailed as failure:
        db.session.rollback()
        abort(422, errors=failure.by_field())
    except ServiceError as error:
        _rejected_code(error)
    db.session.commit()
    return _dump_claim(claims.get_claim(actor, claim.id))


@claims_blp.route("/<int:claim_id>", methods=["GET"])
@claims_blp.response(200, ClaimSchema)
def get_claim(claim_id: int):
    """A claim's state and per-administration progress."""
    return _dump_claim(claims.get_claim(api_user(), claim_id))


@claims_blp.route("/<int:claim_id>/reconciliation", methods=["GET"])
@claims_blp.response(200, ReconciliationSchema)
def reconciliation(claim_id: int):
    """Per administration a verdict; per document the source and target content hash."""
    actor = api_user()
    summary = claims.reconciliation_summary(actor, claim_id)
    return {
        "claim_id": claim_id,
        "administrations": [s.as_dict() for s in summary],
        "documents": [r.as_dict() for r in claims.reconciliation_rows(actor, claim_id)],
    }
