"""Exporting a migration file from the pages: choose a connection, tick its
administrations, download the zip (streamed as it is built).

The administration page's button posts that one administration here as well.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request, stream_with_context
from flask_login import current_user, login_required

from app.admin_settings import services
from app.auth.domain import Permission, has_permission
from app.converters import as_id, id_arg
from app.errors import NotFoundError, ServiceError
from app.migration_files.export import MigrationFileExport, export_administrations
from app.storage import content_disposition
from app.web import origin, unit_of_work

bp = Blueprint("migration_export", __name__, url_prefix="/settings/migrations/export")


@bp.before_request
@login_required
def _superusers_only():
    """Like the migration menu, this exists for superusers of an environment only."""
    if not has_permission(current_user.role, Permission.MIGRATE):
        raise NotFoundError()


def zip_response(export: MigrationFileExport) -> Response:
    """The migration file as a streamed download, never cached."""
    response = Response(stream_with_context(export.chunks), mimetype="application/zip")
    response.headers["Content-Disposition"] = content_disposition(export.filename)
    response.headers["Cache-Control"] = "no-store"
    return response


def _render(connection_id: int | None, errors=(), selected=(), status: int = 200):
    groups = services.list_administrations(current_user)
    if connection_id is not None:
        groups = [(c, rows) for c, rows in groups if c.id == connection_id]
        if not groups:
            raise NotFoundError()
    chosen = groups[0] if len(groups) == 1 else None
    return (
        render_template(
            "migration_files/export_select.html",
            groups=groups,
            chosen=chosen,
            errors=list(errors),
            selected=set(selected),
        ),
        status,
    )


@bp.get("")
def choose():
    """The connections to export from, or one connection's administrations to tick."""
    return _render(id_arg("connection_id"))


@bp.post("")
def download():
    ids = [as_id(v) for v in request.form.getlist("administration_ids")]
    if any(i is None for i in ids):
        raise NotFoundError()
    try:
        with unit_of_work():  # the audit event is committed before the first byte
            export = export_administrations(current_user, ids, origin=origin())
    except ServiceError as error:
        if not error.for_the_form:
            raise
        messages = [m for ms in error.by_field().values() for m in ms]
        return _render(as_id(request.form.get("connection_id")), messages, ids, 422)
    return zip_response(export)
