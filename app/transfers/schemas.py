"""The API's shapes of transfers and claims; views hand the services' objects to them."""

from flask_babel import gettext
from marshmallow import Schema, fields, validate

from app.admin_settings.models import AdministrationState
from app.admin_settings.schemas import BlockerSchema
from app.schemas import (
    MAX_LIST_ITEMS,
    MAX_RECIPIENTS,
    BoundedList,
    DecimalString,
    Id,
    Page,
    Text,
    page_schema,
)
from app.transfers.domain import ItemState, TransferState

# Declared, and refused by the service with its own message (422 under the field).
REQUIRED_TEXT = {"minLength": 1}


class OfferSchema(Schema):
    """``POST /api/v1/transfers``."""

    administration_ids = BoundedList(Id(), required=True, min_items=1, max_items=MAX_LIST_ITEMS)
    recipient_emails = BoundedList(
        Text(validate=validate.Length(max=254), metadata=REQUIRED_TEXT),
        required=True,
        min_items=1,
        max_items=MAX_RECIPIENTS,
    )
    checklist_confirmed = fields.Boolean(load_default=False)
    accept_terms = fields.Boolean(load_default=False)


class ItemSchema(Schema):
    """One administration of an offer, dumped from an ``overview.ItemRow``."""

    id = fields.Integer(attribute="item.id")
    administration_id = fields.Integer(attribute="item.administration_id")
    administration_name = Text(attribute="item.administration_name")
    administration_code = Text(attribute="item.administration_code")
    contact_email = Text(attribute="item.contact_email")
    accounting_system = Text(attribute="item.package")
    state = fields.Enum(ItemState, by_value=True)
    target_administration_id = fields.Integer(
        attribute="item.target_administration_id", allow_none=True
    )


class EnvironmentRefSchema(Schema):
    """An office named in a transfer."""

    id = fields.Integer()
    name = Text()


class TransferSchema(Schema):
    """One offer, dumped from an ``overview.TransferView``. ``code`` and the recipients
    are present only for the offering environment's superusers."""

    id = fields.Integer(attribute="transfer.id")
    direction = Text()
    code = Text(allow_none=True)
    state = fields.Enum(TransferState, by_value=True)
    source_environment = Text(attribute="transfer.source_environment.name")
    target_environment = fields.Nested(
        EnvironmentRefSchema,
        attribute="transfer.receiving_environment",
        allow_none=True,
        metadata={"description": "The office the offer is meant for (only it can claim)."},
    )
    recipient_emails = fields.List(Text())
    terms_version = Text(attribute="transfer.terms_version")
    created_at = fields.DateTime(attribute="transfer.created_at")
    expires_at = fields.DateTime(attribute="transfer.expires_at")
    items = fields.List(fields.Nested(ItemSchema), attribute="item_rows")


class TransferQuerySchema(Schema):
    direction = Text(load_default="outgoing", validate=validate.OneOf(["outgoing", "incoming"]))
    q = Text(load_default="", validate=validate.Length(max=100))
    page = Page()
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


class TransferRowSchema(Schema):
    transfer_id = fields.Integer(attribute="transfer.id")
    item_id = fields.Integer(attribute="item.id")
    created_at = fields.DateTime(attribute="transfer.created_at")
    expires_at = fields.DateTime(attribute="transfer.expires_at")
    administration_id = fields.Integer(attribute="item.administration_id")
    administration_name = Text(attribute="item.administration_name")
    administration_email = Text(attribute="item.contact_email")
    accounting_system = Text(attribute="item.package")
    code = Text(allow_none=True)
    state = fields.Enum(ItemState, by_value=True)
    can_withdraw = fields.Boolean()


TransferPageSchema = page_schema(TransferRowSchema, "TransferPage")


class PreflightSchema(Schema):
    administration_id = fields.Integer(attribute="administration.id")
    name = Text(attribute="administration.name")
    state = fields.Enum(AdministrationState, by_value=True, attribute="administration.state")
    selectable = fields.Boolean()
    blockers = fields.List(fields.Nested(BlockerSchema))
    authorizers_in_flows = fields.Integer(attribute="facts.authorizer_steps")
    active_workflows = fields.Integer(attribute="facts.active_workflows")
    undecided_documents = fields.Integer(attribute="facts.pending_documents")


class CodeSchema(Schema):
    code = Text(required=True, validate=validate.Length(max=100), metadata=REQUIRED_TEXT)


class DecisionSchema(Schema):
    item_id = Id(required=True)
    action = Text(required=True, validate=validate.OneOf(["accept", "reject"]))
    connection_id = Id(allow_none=True, load_default=None)
    message = Text(allow_none=True, load_default=None, validate=validate.Length(max=2000))


class ClaimRequestSchema(Schema):
    code = Text(required=True, validate=validate.Length(max=100), metadata=REQUIRED_TEXT)
    decisions = BoundedList(
        fields.Nested(DecisionSchema), required=True, min_items=1, max_items=MAX_LIST_ITEMS
    )
    accept_terms = fields.Boolean(load_default=False)


class PreviewConnectionSchema(Schema):
    """A connection of the receiver the administration could go under."""

    id = fields.Integer(attribute="connection.id")
    name = Text(attribute="connection.name")
    code_clash = fields.Boolean(attribute="clash")


class PreviewItemSchema(Schema):
    """Dumped from a ``claims.PreviewItem``."""

    item_id = fields.Integer(attribute="item.id")
    administration_name = Text(attribute="item.administration_name")
    administration_code = Text(attribute="item.administration_code")
    accounting_system = Text(attribute="item.package")
    documents = fields.Integer()
    archive_years = fields.List(fields.Integer())
    total_size = fields.Integer()
    connections = fields.List(fields.Nested(PreviewConnectionSchema), attribute="choices")
    problem = fields.Method("translated_problem", allow_none=True)

    def translated_problem(self, entry) -> str | None:
        if not entry.problem:
            return None
        return gettext(entry.problem, **entry.problem_params)


class PreviewSchema(Schema):
    """Dumped from a ``claims.Preview``."""

    transfer_id = fields.Integer(attribute="transfer.id")
    source_environment = Text(attribute="transfer.source_environment.name")
    offered_by = Text(attribute="transfer.offered_by_name")
    expires_at = fields.DateTime(attribute="transfer.expires_at")
    premium = fields.Boolean()
    problems = fields.Method("translated_problems")
    fee_per_administration = DecimalString(attribute="fee")
    currency = Text()
    terms_version = Text()
    items = fields.List(fields.Nested(PreviewItemSchema))

    def translated_problems(self, preview) -> list[str]:
        return [gettext(p) for p in preview.problems]


class ClaimItemSchema(Schema):
    """Dumped from a ``claims.ItemProgress``."""

    item_id = fields.Integer(attribute="item.id")
    administration_name = Text(attribute="item.administration_name")
    state = fields.Enum(ItemState, by_value=True, attribute="item.state")
    documents_done = fields.Integer(attribute="done")
    documents_total = fields.Integer(attribute="total")
    percent = fields.Integer()
    target_administration_id = fields.Integer(allow_none=True)
    error = Text(allow_none=True)


class ClaimSchema(Schema):
    """Dumped from a ``claims.ClaimView``."""

    id = fields.Integer(attribute="claim.id")
    transfer_id = fields.Integer(attribute="transfer.id")
    state = Text()
    finished = fields.Boolean()
    terms_version = Text(attribute="claim.terms_version")
    fee_per_administration = DecimalString(attribute="claim.fee_per_administration")
    currency = Text(attribute="claim.currency")
    created_at = fields.DateTime(attribute="claim.created_at")
    items = fields.List(fields.Nested(ClaimItemSchema))


class ReconciliationAdministrationSchema(Schema):
    """Per administration of a claim: documents on both sides and the verdict."""

    transfer_item_id = fields.Integer(attribute="item_id")
    administration = Text()
    state = Text()
    source_documents = fields.Integer()
    target_documents = fields.Integer()
    matching = fields.Integer()
    verdict = Text(
        metadata={"description": "match, mismatch, or the item's state when not migrated"}
    )


class ReconciliationDocumentSchema(Schema):
    """Per document: its content hash on both sides; ``missing`` when no copy exists."""

    transfer_item_id = fields.Integer(attribute="item_id")
    source_document_id = fields.Integer()
    source_sha256 = Text(attribute="source_hash")
    target_document_id = fields.Integer(allow_none=True)
    target_sha256 = Text(attribute="target_hash", allow_none=True)
    verdict = Text(validate=validate.OneOf(["match", "differs", "missing"]))


class ReconciliationSchema(Schema):
    """The reconciliation report; streamed, so it holds any number of documents."""

    claim_id = fields.Integer()
    administrations = fields.List(fields.Nested(ReconciliationAdministrationSchema))
    documents = fields.List(fields.Nested(ReconciliationDocumentSchema))
