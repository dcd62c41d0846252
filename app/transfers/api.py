"""``/api/v1/transfers``: offer, list, read and withdraw, on the same services as the pages."""

from __future__ import annotations

from flask import Response, stream_with_context
from flask_smorest import Blueprint

from app.auth.api import api_user, authenticate_bearer
from app.errors import ServiceError, ValidationFailed
from app.templating import item_state_labels
from app.transfers import claims, limits, offers, overview, reports
from app.transfers.schemas import (
    ClaimRequestSchema,
    ClaimSchema,
    CodeSchema,
    OfferSchema,
    PreflightSchema,
    PreviewSchema,
    ReconciliationSchema,
    TransferPageSchema,
    TransferQuerySchema,
    TransferSchema,
)
from app.web import unit_of_work

blp = Blueprint(
    "transfers_api",
    __name__,
    url_prefix="/transfers",
    description="Offers of administrations to another office",
)
blp.before_request(authenticate_bearer)


@blp.route("", methods=["POST"])
@blp.arguments(OfferSchema)
@blp.response(201, TransferSchema)
def create(data: dict):
    """Offer administrations of one connection to another office.

    Every problem is reported at once as 422 with field errors; nothing is created then.
    """
    actor = api_user()
    with unit_of_work():
        transfer, _code = offers.create_offer(
            actor,
            administration_ids=data["administration_ids"],
            recipient_emails=data["recipient_emails"],
            checklist_confirmed=data["checklist_confirmed"],
            accept_terms=data["accept_terms"],
            origin="api",
        )
    return overview.get_transfer(actor, transfer.id)


@blp.route("", methods=["GET"])
@blp.arguments(TransferQuerySchema, location="query")
@blp.response(200, TransferPageSchema)
def list_transfers(query: dict):
    """The overview: ``outgoing`` (offered by us) or ``incoming`` (received), newest first."""
    return overview.list_transfers(
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
    return overview.get_transfer(api_user(), transfer_id)


@blp.route("/<int:transfer_id>/withdraw", methods=["POST"])
@blp.response(200, TransferSchema)
def withdraw(transfer_id: int):
    """Withdraw an offer until its claim has started; 409 when that is no longer possible."""
    actor = api_user()
    with unit_of_work():
        offers.withdraw(actor, transfer_id, origin="api")
    return overview.get_transfer(actor, transfer_id)


@blp.route("/<int:transfer_id>/extend", methods=["POST"])
@blp.response(200, TransferSchema)
def extend(transfer_id: int):
    """Give an open offer 15 days from now (at most twice; the code stays the same and the
    recipients are told); 409 when it has ended or was extended twice already."""
    actor = api_user()
    with unit_of_work():
        offers.extend(actor, transfer_id, origin="api")
    return overview.get_transfer(actor, transfer_id)


@blp.route("/<int:transfer_id>/resend", methods=["POST"])
@blp.response(200, TransferSchema)
def resend(transfer_id: int):
    """Send the code mail of an open offer again to the same recipients (at most once an
    hour); 409 when it has ended or was re-sent within the hour."""
    actor = api_user()
    with unit_of_work():
        offers.resend(actor, transfer_id, origin="api")
    return overview.get_transfer(actor, transfer_id)


claims_blp = Blueprint(
    "claims_api",
    __name__,
    url_prefix="/claims",
    description="Claiming offered administrations with a transfer code",
)
claims_blp.before_request(authenticate_bearer)


def _rejected_code(error: ServiceError):
    """A code that led nowhere is counted and audited; the error handler answers 422."""
    if isinstance(error, claims.CodeRejected):
        limits.count_failure()
        with unit_of_work():
            claims.record_failed_attempt(api_user(), error.reason, origin="api")
    raise error


@claims_blp.route("/preview", methods=["POST"])
@claims_blp.arguments(CodeSchema)
@claims_blp.response(200, PreviewSchema)
@limits.code_entry
def preview_claim(data: dict):
    """What a code would bring in, and whether it can. Every wrong, expired, withdrawn
    or used code gets the same 422 answer."""
    try:
        with unit_of_work():
            preview = claims.preview(api_user(), data["code"], origin="api")
    except ServiceError as error:
        _rejected_code(error)
    return preview


@claims_blp.route("", methods=["POST"])
@claims_blp.arguments(ClaimRequestSchema)
@claims_blp.response(202, ClaimSchema)
@limits.code_entry
def create_claim(data: dict):
    """Accept or reject each administration of an offer; the accepted ones are copied in
    the background. Poll ``GET /api/v1/claims/{id}`` for progress."""
    actor = api_user()
    try:
        with unit_of_work():
            claim = claims.submit_claim(
                actor,
                data["code"],
                [claims.Decision(**d) for d in data["decisions"]],
                accept_terms=data["accept_terms"],
                origin="api",
            )
    except ValidationFailed:
        raise
    except ServiceError as error:
        _rejected_code(error)
    return claims.get_claim(actor, claim.id)


@claims_blp.route("/<int:claim_id>", methods=["GET"])
@claims_blp.response(200, ClaimSchema)
def get_claim(claim_id: int):
    """A claim's state and per-administration progress."""
    return claims.get_claim(api_user(), claim_id)


@claims_blp.route("/<int:claim_id>/reconciliation", methods=["GET"])
@claims_blp.response(200, ReconciliationSchema)
def reconciliation(claim_id: int):
    """Per administration a verdict; per document the source and target content hash."""
    actor = api_user()
    summary = reports.reconciliation_summary(actor, claim_id)
    rows = reports.reconciliation_rows(actor, claim_id)
    body = reports.reconciliation_json(claim_id, summary, rows)
    # Streamed as it is read: flask-smorest passes a Response through; the schema above
    # documents its shape.
    return Response(stream_with_context(body), mimetype="application/json")


preflight_blp = Blueprint(
    "preflight_api",
    __name__,
    url_prefix="/administrations",
    description="Whether an administration can be offered (checklist points 2–4)",
)
preflight_blp.before_request(authenticate_bearer)


@preflight_blp.route("/<int:administration_id>/preflight")
@preflight_blp.response(200, PreflightSchema)
def preflight(administration_id: int):
    """Checklist points 2–4 for one administration: can it be offered, and if not, why."""
    return offers.preflight_administration(api_user(), administration_id)
