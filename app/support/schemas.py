from marshmallow import Schema, fields, validate

from app.converters import MAX_OLDER_THAN_DAYS
from app.schemas import Id, Page, Text, page_schema
from app.support.services import FILTER_STATES
from app.transfers.domain import ItemState


class SupportQuerySchema(Schema):
    state = Text(validate=validate.OneOf(FILTER_STATES), load_default=None)
    stuck = fields.Boolean(load_default=False)
    q = Text(load_default="", validate=validate.Length(max=100))
    source = Id(load_default=None)
    target = Id(load_default=None)
    older_than = fields.Integer(
        load_default=None,
        validate=validate.Range(min=0, max=MAX_OLDER_THAN_DAYS),
        metadata={"description": "Only transfers offered at least this many days ago"},
    )
    page = Page()
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


class RevokeSchema(Schema):
    reason = Text(required=True, validate=validate.Length(min=5, max=1000))


class SupportItemSchema(Schema):
    id = fields.Integer()
    administration_name = Text()
    administration_code = Text()
    accounting_system = Text(attribute="package")
    state = fields.Enum(ItemState, by_value=True)
    attempts = fields.Integer()
    last_error = Text(allow_none=True)
    documents_copied = fields.Integer(allow_none=True)


class SupportTransferSchema(Schema):
    """Metadata only: never a code, never document contents."""

    id = fields.Integer(attribute="transfer.id")
    state = Text()
    source_environment = fields.Function(lambda row: row.transfer.source_environment.name)
    target_environment = fields.Function(
        lambda row: (
            row.transfer.target_environment.name if row.transfer.target_environment else None
        )
    )
    offered_by = Text(attribute="transfer.offered_by_email")
    recipient_emails = fields.List(Text(), attribute="transfer.recipient_emails")
    created_at = fields.DateTime(attribute="transfer.created_at")
    expires_at = fields.DateTime(attribute="transfer.expires_at")
    reasons = fields.Function(lambda row: [r.kind for r in row.reasons])
    items = fields.List(fields.Nested(SupportItemSchema), attribute="transfer.items")


SupportPageSchema = page_schema(SupportTransferSchema, "SupportPage")
