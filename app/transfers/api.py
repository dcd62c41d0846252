"""``/api/v1/transfers``: offer, list, read and withdraw, on the same services as the pages."""

from __future__ import annotations

from flask_smorest import Blueprint, abort

from app.auth.api import api_user, authenticate_bearer
from app.errors import ServiceError, ValidationFailed
from app.extensions import db
from app.templating import item_state_labels
from app.transfers import services
from app.transfers.schemas import (
    OfferSchema,
    TransferPageSchema,
    TransferQuerySchema,
    TransferSchema,
)

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
