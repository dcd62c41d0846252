"""``/api/v1/administrations``: the same reads as Settings › Administraties."""

from __future__ import annotations

from flask_smorest import Blueprint

from app.admin_settings import locks, services
from app.admin_settings.models import DocumentStatus
from app.admin_settings.schemas import (
    AdministrationSchema,
    DecideResultSchema,
    DecideSchema,
    DocumentPageSchema,
    DocumentQuerySchema,
    UnlockResultSchema,
    UnlockSchema,
)
from app.auth.api import api_user, authenticate_bearer
from app.web import unit_of_work

blp = Blueprint(
    "administrations_api",
    __name__,
    url_prefix="/administrations",
    description="Administrations of the token owner's environment",
)
blp.before_request(authenticate_bearer)


@blp.route("")
@blp.response(200, AdministrationSchema(many=True))
def list_administrations():
    """Every administration of the environment, with document counts and blockers."""
    return [row for _connection, rows in services.list_administrations(api_user()) for row in rows]


@blp.route("/<int:administration_id>")
@blp.response(200, AdministrationSchema)
def get_administration(administration_id: int):
    """One administration; another environment's is a 404."""
    return services.get_administration(api_user(), administration_id)


@blp.route("/<int:administration_id>/documents")
@blp.arguments(DocumentQuerySchema, location="query")
@blp.response(200, DocumentPageSchema)
def list_documents(query: dict, administration_id: int):
    """One page of the administration's documents, optionally of one status."""
    status = DocumentStatus(query["status"]) if query.get("status") else None
    return services.list_documents(
        api_user(),
        administration_id,
        status=status,
        locked=query.get("locked"),
        page=query["page"],
        per_page=query["per_page"],
    )


@blp.route("/<int:administration_id>/documents/decide", methods=["POST"])
@blp.arguments(DecideSchema)
@blp.response(200, DecideResultSchema)
def decide_documents(data: dict, administration_id: int):
    """Approve or reject documents (superusers and authorizers), as the page's buttons do.

    All or nothing: any id that is not a document of this administration is a 404, and a
    locked (migrated) document among them a 422 naming it; nothing is decided then.
    """
    with unit_of_work():
        changed = services.decide_documents(
            api_user(), administration_id, data["document_ids"], data["action"], origin="api"
        )
    return {"changed": changed}


@blp.route("/<int:administration_id>/documents/unlock", methods=["POST"])
@blp.arguments(UnlockSchema)
@blp.response(200, UnlockResultSchema)
def unlock_documents(data: dict, administration_id: int):
    """Unlock migrated documents (superusers only), after which they can be decided.

    Ids already unlocked change nothing; any id that is not a document of this
    administration is a 404 for the whole request, and nothing is unlocked then.
    """
    with unit_of_work():
        unlocked = locks.unlock_documents(
            api_user(), administration_id, data["document_ids"], origin="api"
        )
    return {"unlocked": unlocked}
