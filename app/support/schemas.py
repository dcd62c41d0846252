from marshmallow import Schema, fields, validate

from app.schemas import page_schema
from app.support.services import FILTER_STATES
from app.transfers.domain import ItemState


class SupportQuerySchema(Schema):
    state = fields.String(validate=validate.OneOf(FILTER_STATES), load_default=None)
    stuck = fields.Boolean(load_default=False)
    q = fields.String(load_default="", validate=validate.Length(max=100))
    source = fields.Integer(load_default=None)
    target = fields.Integer(load_default=None)
    older_than = fields.Integer(load_default=None, validate=validate.Range(min=0))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


class RevokeSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=5, max=1000))


class SupportItemSchema(Schema):
    id = fields.Integer()
    administration_name = fields.String()
    administration_code = fields.String()
    accounting_system = fields.String(attribute="package")
    state = fields.Enum(ItemState, by_value=True)
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    documents_copied = fields.Integer(allow_none=True)


class SupportTransferSchema(Schema):
    """Metadata only: never a code, never document contents."""

    id = fields.Integer(attribute="transfer.id")
    state = fields.String()
    source_environment = fields.Function(lambda row: row.transfer.source_environment.name)
    target_environment = fields.Function(
        lambda row: (
            row.transfer.target_environment.name if row.transfer.target_environment else None
        )
    )
    offered_by = fields.String(attribute="transfer.offered_by_email")
    recipient_emails = fields.List(fields.String(), attribute="transfer.recipient_emails")
    created_at = fields.DateTime(attribute="transfer.created_at")
    expires_at = fields.DateTime(attribute="transfer.expires_at")
    reasons = fields.Function(lambda row: [r.kind for r in row.reasons])
    items = fields.List(fields.Nested(SupportItemSchema), attribute="transfer.items")


SupportPageSchema = page_schema(SupportTransferSchema, "SupportPage")
