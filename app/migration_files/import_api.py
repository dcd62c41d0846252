"""``/api/v1/imports``: upload a migration file (checked at once: the dry run), read an
import and its report, confirm it, download its per-document result. The same services
as the import wizard (``imports``)."""

from __future__ import annotations

from flask import Response, current_app, request, stream_with_context
from flask_smorest import Blueprint
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict

from app.admin_settings.models import Connection
from app.auth.api import api_user, authenticate_bearer
from app.errors import N_, Conflict, ServiceError
from app.extensions import db
from app.migration_files import imports
from app.migration_files.import_schemas import (
    ConfirmSchema,
    ImportCreatedSchema,
    ImportSchema,
    ImportUploadSchema,
    describe,
)
from app.migration_files.models import ImportState
from app.scoping import scoped_select
from app.storage import blob_store, content_disposition
from app.web import unit_of_work


class _MultipartParser(FlaskParser):
    """``form`` reads the form fields and the files of a multipart body together; a
    field sent more than once is a list, which a single-valued field refuses."""

    def load_form(self, req, schema):
        combined = CombinedMultiDict([req.files, req.form])
        return {key: values[0] if len(values) == 1 else values for key, values in combined.lists()}


class _Blueprint(Blueprint):
    ARGUMENTS_PARSER = _MultipartParser()


blp = _Blueprint(
    "imports_api",
    __name__,
    url_prefix="/imports",
    description="Migration files: import one (dry run, confirm, queue, per-document result)",
)

CSV = {"type": "string"}
_AUTHENTICATED = "overdracht.imports_api.authenticated"


@blp.url_value_preprocessor
def _allow_large_files(endpoint, values):
    # Before the application's input checks read the body: a migration file may be far
    # larger than MAX_CONTENT_LENGTH (form uploads), up to UPLOAD_MAX_BYTES, and only
    # for a caller with a valid token.
    if request.method == "POST" and endpoint == "imports_api.create":
        authenticate_bearer()
        request.environ[_AUTHENTICATED] = True
        request.max_content_length = int(current_app.config["UPLOAD_MAX_BYTES"])


@blp.before_request
def _authenticate():
    # Once per request (``g`` may outlive one request, e.g. in a test's app context).
    if not request.environ.get(_AUTHENTICATED):
        authenticate_bearer()


def _connections(actor, connection_id: int | None) -> dict[str, int] | None:
    """{package: id} for the caller's connection ``connection_id``; another
    environment's connection is refused like any connection that is not yours."""
    if connection_id is None:
        return None
    connection = db.session.scalars(
        scoped_select(Connection, actor).where(Connection.id == connection_id)
    ).first()
    if connection is None:
        raise ServiceError(
            "connection_id", N_("Choose one of your own connections for each package.")
        )
    return {connection.package.value: connection.id}


@blp.route("", methods=["POST"])
@blp.arguments(ImportUploadSchema, location="form", content_type="multipart/form-data")
@blp.response(201, ImportCreatedSchema)
def create(data: dict):
    """Upload a migration file (at most ``UPLOAD_MAX_BYTES``) and check it at once: the
    answer holds the dry run's report. ``awaiting_confirmation``: confirm it next;
    ``refused``: the errors say what is wrong with the file, nothing will be imported.
    An environment without the premium plan is a 422 that says so."""
    actor = api_user()
    upload = data["file"]
    with unit_of_work():
        connections = _connections(actor, data["connection_id"])
        key = blob_store().put(upload.stream)
        imp = imports.create_import(
            actor,
            blob_key=key,
            size=blob_store().size(key),
            file_name=upload.filename or "migratiebestand.zip",
            import_type=data["import_type"],
            default_status=data["default_status"],
            connections=connections,
            origin="api",
        )
        imports.dry_run(imp)
    return describe(imp)


@blp.route("/<int:import_id>", methods=["GET"])
@blp.response(200, ImportSchema)
def get(import_id: int):
    """One import: state, the dry run's counts, errors and conflicts, its place in the
    queue, when it may start and its progress (documents done of total)."""
    return describe(imports.import_for(api_user(), import_id))


@blp.route("/<int:import_id>/confirm", methods=["POST"])
@blp.arguments(ConfirmSchema, required=False)
@blp.response(202, ImportSchema)
def confirm(data: dict, import_id: int):
    """Queue a checked import. ``conflicts`` (skip or overwrite) is needed when its report
    lists conflicts (else 422); 409 when it is not waiting for confirmation."""
    actor = api_user()
    with unit_of_work():
        imp = imports.confirm(actor, import_id, conflicts=data.get("conflicts"), origin="api")
    return describe(imp)


@blp.route("/<int:import_id>/report", methods=["GET"])
@blp.response(
    200,
    CSV,
    content_type="text/csv",
    description="Per document: the result of the import (UTF-8 with BOM, ';'-separated)",
)
@blp.alt_response(409, schema="Error", description="The import has not completed yet")
def report(import_id: int):
    """The per-document result of a completed import, as CSV; 409 until it completes."""
    imp = imports.import_for(api_user(), import_id)
    if imp.state is not ImportState.COMPLETED or not imp.result_blob_key:
        raise Conflict("state", N_("The result is ready when the import has completed."))
    key = imp.result_blob_key

    def chunks():
        with blob_store().open(key) as stream:
            while chunk := stream.read(64 * 1024):
                yield chunk

    return Response(
        stream_with_context(chunks()),
        mimetype="text/csv",
        headers={"Content-Disposition": content_disposition(f"import-{imp.id}-result.csv")},
    )
