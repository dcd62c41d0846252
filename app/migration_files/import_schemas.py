"""The API's shapes of imports: the multipart upload, one import with its dry-run
report, the confirmation, and support's list of imports."""

from __future__ import annotations

from flask_babel import gettext
from flask_smorest.fields import Upload
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from werkzeug.datastructures import FileStorage

from app.admin_settings.models import DocumentStatus
from app.migration_files import imports
from app.migration_files.format import Scope
from app.migration_files.models import ConflictPolicy, ImportState
from app.schemas import Id, Page, Text, page_schema


class FileField(Upload):
    """A file part of a multipart body (a plain form value is not a file)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, FileStorage):
            raise ValidationError(gettext("Choose a migration file (.zip)."))
        return value


class ImportUploadSchema(Schema):
    """``POST /api/v1/imports`` (multipart/form-data)."""

    file = FileField(required=True, metadata={"description": "The migration file (a zip)"})
    import_type = Text(required=True, validate=validate.OneOf([s.value for s in Scope]))
    default_status = Text(
        load_default=DocumentStatus.PENDING.value,
        validate=validate.OneOf([s.value for s in DocumentStatus]),
        metadata={"description": "The status of documents that carry none"},
    )
    connection_id = Id(
        load_default=None,
        metadata={"description": "Your connection for the file's package (default: the first)"},
    )


class ConfirmSchema(Schema):
    """``POST /api/v1/imports/{id}/confirm``: needed only when the report has conflicts.
    Other fields are ignored, so another environment's import is a 404 whatever else the
    body holds."""

    class Meta:
        unknown = EXCLUDE

    conflicts = Text(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf([p.value for p in ConflictPolicy]),
    )


class CountsSchema(Schema):
    administrations = fields.Integer()
    documents = fields.Integer()
    already_present = fields.Integer()
    conflicts = fields.Integer()
    errors = fields.Integer()


COUNTS_DOC = {
    "type": "object",
    "properties": {name: {"type": "integer"} for name in CountsSchema().fields},
}


class ProblemSchema(Schema):
    """One thing wrong with the file; ``message`` in the request's language."""

    file = Text(allow_none=True)
    line = fields.Integer(allow_none=True)
    field = Text(allow_none=True)
    message = Text()


class ConflictSchema(Schema):
    kind = Text()
    package = Text()
    administration_code = Text()
    name = Text()
    file = Text(allow_none=True)
    line = fields.Integer(allow_none=True)


class ReportSchema(Schema):
    counts = fields.Nested(CountsSchema)
    errors = fields.List(fields.Nested(ProblemSchema))
    conflicts = fields.List(fields.Nested(ConflictSchema))


class ProgressSchema(Schema):
    done = fields.Integer()
    total = fields.Integer()


def _problems(report: dict | None) -> list[dict]:
    listed = []
    for problem in (report or {}).get("errors", []):
        message, params = problem["message"], problem.get("params") or {}
        listed.append({**problem, "message": gettext(message, **params)})
    return listed


def _counts(report: dict | None) -> dict:
    counts = (report or {}).get("counts", {})
    return {name: counts.get(name, 0) for name in CountsSchema().fields}


def describe(imp) -> dict:
    """What the API shows of one import: its report with messages in the request's
    language, its place in the queue, when it may start and its progress."""
    done, total = imports.progress(imp)
    return {
        "id": imp.id,
        "state": imp.state,
        "file_name": imp.file_name,
        "created_at": imp.created_at,
        "counts": _counts(imp.report),
        "errors": _problems(imp.report),
        "conflicts": (imp.report or {}).get("conflicts", []),
        "report": {
            "counts": _counts(imp.report),
            "errors": _problems(imp.report),
            "conflicts": (imp.report or {}).get("conflicts", []),
        },
        "queue_position": imports.queue_position(imp),
        "starts_at": imports.starts_at(imp),
        "progress": {"done": done, "total": total},
    }


class ImportCreatedSchema(Schema):
    """The new import after its dry run: ``awaiting_confirmation`` or ``refused``."""

    id = fields.Integer()
    state = fields.Enum(ImportState, by_value=True)
    report = fields.Nested(ReportSchema)


class ImportSchema(Schema):
    """One import: its dry-run report, its place in the queue and its progress."""

    id = fields.Integer()
    state = fields.Enum(ImportState, by_value=True)
    file_name = Text()
    created_at = fields.DateTime()
    counts = fields.Nested(CountsSchema)
    errors = fields.List(fields.Nested(ProblemSchema))
    conflicts = fields.List(fields.Nested(ConflictSchema))
    queue_position = fields.Integer(allow_none=True)
    starts_at = fields.DateTime(allow_none=True)
    progress = fields.Nested(ProgressSchema)


class SupportImportSchema(Schema):
    """Support's view of an import (a ``SupportImportRow``): metadata and the report's
    counts, never a file."""

    id = fields.Integer(attribute="imp.id")
    environment = Text(attribute="environment_name")
    file_name = Text(attribute="imp.file_name")
    state = fields.Enum(ImportState, by_value=True, attribute="imp.state")
    created_at = fields.DateTime(attribute="imp.created_at")
    attempts = fields.Integer(attribute="imp.attempts")
    last_error = Text(attribute="imp.last_error", allow_none=True)
    counts = fields.Function(lambda row: _counts(row.imp.report), metadata=COUNTS_DOC)


class SupportImportQuerySchema(Schema):
    state = Text(load_default=None, validate=validate.OneOf([s.value for s in ImportState]))
    page = Page()
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


SupportImportPageSchema = page_schema(SupportImportSchema, "SupportImportPage")
