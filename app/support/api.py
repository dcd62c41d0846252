"""``/api/v1/support``: the console's transfers, revoke and retry, for support staff."""

from __future__ import annotations

from flask_smorest import Blueprint

from app.auth.api import api_user, authenticate_bearer
from app.migration_files.import_schemas import (
    SupportImportPageSchema,
    SupportImportQuerySchema,
    SupportImportSchema,
)
from app.support import services
from app.support.schemas import (
    RevokeSchema,
    SupportPageSchema,
    SupportQuerySchema,
    SupportTransferSchema,
)
from app.transfers.access import require_support
from app.web import unit_of_work

blp = Blueprint(
    "support_api",
    __name__,
    url_prefix="/support",
    description="Support staff: every transfer, revoke and retry",
)
blp.before_request(authenticate_bearer)


@blp.before_request
def _support_only():
    require_support(api_user())


@blp.route("/transfers")
@blp.arguments(SupportQuerySchema, location="query")
@blp.response(200, SupportPageSchema)
def list_transfers(query: dict):
    """Every transfer, newest first; ``stuck=true`` lists only those needing support."""
    return services.list_transfers(
        api_user(),
        state=query["state"],
        stuck=query["stuck"],
        q=query["q"],
        source_id=query["source"],
        target_id=query["target"],
        older_than_days=query["older_than"],
        page=query["page"],
        per_page=query["per_page"],
    )


@blp.route("/transfers/<int:transfer_id>")
@blp.response(200, SupportTransferSchema)
def get_transfer(transfer_id: int):
    return services.get_transfer(api_user(), transfer_id)


@blp.route("/transfers/<int:transfer_id>/revoke", methods=["POST"])
@blp.arguments(RevokeSchema)
@blp.response(200, SupportTransferSchema)
def revoke(data: dict, transfer_id: int):
    """End the transfer with a reason both offices receive; 409 when it already ended."""
    actor = api_user()
    with unit_of_work():
        services.revoke(actor, transfer_id, data["reason"], origin="api")
    return services.get_transfer(actor, transfer_id)


@blp.route("/transfers/<int:transfer_id>/retry", methods=["POST"])
@blp.response(200, SupportTransferSchema)
def retry(transfer_id: int):
    """Copy the failed items again; 409 when nothing has failed."""
    actor = api_user()
    with unit_of_work():
        services.retry(actor, transfer_id, origin="api")
    return services.get_transfer(actor, transfer_id)


@blp.route("/imports")
@blp.arguments(SupportImportQuerySchema, location="query")
@blp.response(200, SupportImportPageSchema)
def list_imports(query: dict):
    """Every office's imports of migration files, newest first (metadata and the dry
    run's counts; never a file); ``state`` filters, e.g. ``failed``."""
    return services.list_imports(
        api_user(), state=query["state"], page=query["page"], per_page=query["per_page"]
    )


@blp.route("/imports/<int:import_id>/retry", methods=["POST"])
@blp.response(200, SupportImportSchema)
def retry_import(import_id: int):
    """Queue a failed import again; what landed before stays. 409 when it has not failed."""
    actor = api_user()
    with unit_of_work():
        services.retry_import(actor, import_id, origin="api")
    return services.get_import(actor, import_id)
