from marshmallow import EXCLUDE, Schema, fields, validate

from app.admin_settings.domain import BlockerKind
from app.admin_settings.models import (
    AdministrationState,
    DocumentKind,
    DocumentStatus,
    Package,
)
from app.schemas import MAX_LIST_ITEMS, BoundedList, DecimalString, Id, Page, Text, page_schema


class BlockerSchema(Schema):
    kind = fields.Enum(BlockerKind, by_value=True)
    count = fields.Integer()


class DocumentCountsSchema(Schema):
    total = fields.Integer(attribute="total_documents")
    pending = fields.Integer(attribute="pending_documents")
    approved = fields.Integer(attribute="approved_documents")
    rejected = fields.Integer(attribute="rejected_documents")
    locked = fields.Integer(
        attribute="locked_documents",
        metadata={"description": "Of the above, how many are locked (migrated)"},
    )


class OfficeRefSchema(Schema):
    id = fields.Integer(
        allow_none=True, metadata={"description": "null for a migration file's office"}
    )
    name = Text()


class MoveSchema(Schema):
    """Where the administration went or came from."""

    direction = Text(
        validate=validate.OneOf(["outgoing", "incoming", "imported"]),
        metadata={
            "description": "outgoing: handed over to `office`; incoming: taken over from it "
            "with a transfer code; imported: from a migration file of `office`."
        },
    )
    transfer_id = fields.Integer(allow_none=True)
    office = fields.Nested(OfficeRefSchema)
    at = fields.DateTime()


class AdministrationSchema(Schema):
    """An administration with the raw facts the migration checklist looks at."""

    id = fields.Integer(attribute="administration.id")
    name = Text(attribute="administration.name")
    code = Text(attribute="administration.code")
    contact_email = Text(attribute="administration.contact_email")
    inbound_email = Text(attribute="administration.inbound_email")
    state = fields.Enum(AdministrationState, by_value=True, attribute="administration.state")
    connection_id = fields.Integer(attribute="administration.connection_id")
    accounting_system = fields.Enum(
        Package, by_value=True, attribute="administration.connection.package"
    )
    documents = fields.Nested(DocumentCountsSchema, attribute="facts")
    active_workflows = fields.Integer(attribute="facts.active_workflows")
    authorizers_in_flows = fields.Integer(attribute="facts.authorizer_steps")
    blockers = fields.List(fields.Nested(BlockerSchema))
    provenance = fields.List(fields.Nested(MoveSchema), attribute="moves")


class DocumentSchema(Schema):
    id = fields.Integer()
    administration_id = fields.Integer()
    filename = Text()
    content_type = Text()
    size = fields.Integer()
    content_hash = Text(attribute="blob_key")
    kind = fields.Enum(DocumentKind, by_value=True)
    counterparty = Text(allow_none=True)
    amount = DecimalString(allow_none=True)
    currency = Text()
    invoice_date = fields.Date(allow_none=True)
    status = fields.Enum(DocumentStatus, by_value=True)
    locked = fields.Boolean(
        metadata={
            "description": "Migrated (imported already decided): readable, not changeable "
            "until a superuser unlocks it; status is the one it was imported with"
        }
    )
    booked_year = fields.Integer(allow_none=True)
    booked_period = fields.Integer(allow_none=True)
    uploaded_by = Text(attribute="uploaded_by_name", allow_none=True)
    decided_by = Text(attribute="decided_by_name", allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class DocumentQuerySchema(Schema):
    status = Text(validate=validate.OneOf([s.value for s in DocumentStatus]))
    locked = fields.Boolean(metadata={"description": "Only locked (true) or unlocked (false)"})
    page = Page()
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class UnlockSchema(Schema):
    """``POST /api/v1/administrations/{id}/documents/unlock``. Other fields are ignored, so
    another environment's administration is a 404 whatever else the body holds."""

    class Meta:
        unknown = EXCLUDE

    document_ids = BoundedList(Id(), required=True, min_items=1, max_items=MAX_LIST_ITEMS)


class DecideSchema(Schema):
    """``POST /api/v1/administrations/{id}/documents/decide``. Other fields are ignored."""

    class Meta:
        unknown = EXCLUDE

    document_ids = BoundedList(Id(), required=True, min_items=1, max_items=MAX_LIST_ITEMS)
    action = Text(required=True, validate=validate.OneOf(["approve", "reject"]))


class DecideResultSchema(Schema):
    changed = fields.Integer(
        required=True,
        metadata={"description": "How many documents got this decision (others had it already)"},
    )


class UnlockResultSchema(Schema):
    unlocked = fields.Integer(
        required=True,
        metadata={"description": "How many were locked and are now unlocked"},
    )


DocumentPageSchema = page_schema(DocumentSchema, "DocumentPage")
