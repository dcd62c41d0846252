"""``GET /api/v1/administrations/{id}/export``: one administration's migration file."""

from __future__ import annotations

from flask_smorest import Blueprint

from app.auth.api import api_user, authenticate_bearer
from app.migration_files.export import export_administrations
from app.migration_files.export_views import zip_response
from app.web import unit_of_work

blp = Blueprint(
    "migration_export_api",
    __name__,
    url_prefix="/administrations",
    description="Migration files: administrations exported as a zipped BagIt bag",
)
blp.before_request(authenticate_bearer)

ZIP = {"type": "string", "format": "binary"}


@blp.route("/<int:administration_id>/export")
@blp.response(
    200,
    ZIP,
    content_type="application/zip",
    description="The migration file (docs/migration-file.md), streamed as it is built",
)
def export(administration_id: int):
    """The administration as a migration file: a zipped BagIt 1.0 bag with
    administrations.csv, documents.csv and each file once. Superusers only (403);
    another environment's administration is a 404. The export is audited."""
    with unit_of_work():
        result = export_administrations(api_user(), [administration_id], origin="api")
    return zip_response(result)
