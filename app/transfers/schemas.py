from marshmallow import Schema, fields, validate


class OfferSchema(Schema):
    """``POST /api/v1/transfers``."""

    administration_ids = fields.List(fields.Integer(), required=True)
    recipient_emails = fields.List(fields.String(validate=validate.Length(max=254)), required=True)
    checklist_confirmed = fields.Boolean(load_default=False)
    accept_terms = fields.Boolean(load_default=False)


class ItemSchema(Schema):
    id = fields.Integer()
    administration_id = fields.Integer()
    administration_name = fields.String()
    administration_code = fields.String()
    contact_email = fields.String()
    accounting_system = fields.String(attribute="package")
    state = fields.String()
    target_administration_id = fields.Integer(allow_none=True)


class TransferSchema(Schema):
    """One offer. ``code`` is present only for the offering environment's superusers."""

    id = fields.Integer()
    direction = fields.String()
    code = fields.String(allow_none=True)
    state = fields.String()
    source_environment = fields.String()
    recipient_emails = fields.List(fields.String())
    terms_version = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime()
    items = fields.List(fields.Nested(ItemSchema))


class TransferQuerySchema(Schema):
    direction = fields.String(
        load_default="outgoing", validate=validate.OneOf(["outgoing", "incoming"])
    )
    q = fields.String(load_default="", validate=validate.Length(max=100))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


class TransferRowSchema(Schema):
    transfer_id = fields.Integer(attribute="transfer.id")
    item_id = fields.Integer(attribute="item.id")
    created_at = fields.DateTime(attribute="transfer.created_at")
    expires_at = fields.DateTime(attribute="transfer.expires_at")
    administration_id = fields.Integer(attribute="item.administration_id")
    administration_name = fields.String(attribute="item.administration_name")
    administration_email = fields.String(attribute="item.contact_email")
    accounting_system = fields.String(attribute="item.package")
    code = fields.String(allow_none=True)
    state = fields.Function(lambda row: row.state.value)
    can_withdraw = fields.Boolean()


class TransferPageSchema(Schema):
    items = fields.List(fields.Nested(TransferRowSchema))
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()
    pages = fields.Integer()


class PreflightSchema(Schema):
    administration_id = fields.Integer(attribute="administration.id")
    name = fields.String(attribute="administration.name")
    state = fields.Function(lambda row: row.administration.state.value)
    selectable = fields.Boolean()
    blockers = fields.Function(
        lambda row: [{"kind": b.kind.value, "count": b.count} for b in row.blockers]
    )
    authorizers_in_flows = fields.Integer(attribute="facts.authorizer_steps")
    active_workflows = fields.Integer(attribute="facts.active_workflows")
    undecided_documents = fields.Integer(attribute="facts.pending_documents")


class CodeSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(max=100))


class DecisionSchema(Schema):
    item_id = fields.Integer(required=True)
    action = fields.String(required=True, validate=validate.OneOf(["accept", "reject"]))
    connection_id = fields.Integer(allow_none=True, load_default=None)
    message = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=2000))


class ClaimRequestSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(max=100))
    decisions = fields.List(fields.Nested(DecisionSchema), required=True)
    accept_terms = fields.Boolean(load_default=False)


class PreviewConnectionSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    code_clash = fields.Boolean()


class PreviewItemSchema(Schema):
    item_id = fields.Integer()
    administration_name = fields.String()
    administration_code = fields.String()
    accounting_system = fields.String()
    documents = fields.Integer()
    archive_years = fields.List(fields.Integer())
    total_size = fields.Integer()
    connections = fields.List(fields.Nested(PreviewConnectionSchema))
    problem = fields.String(allow_none=True)


class PreviewSchema(Schema):
    transfer_id = fields.Integer()
    source_environment = fields.String()
    offered_by = fields.String()
    expires_at = fields.DateTime()
    premium = fields.Boolean()
    problems = fields.List(fields.String())
    fee_per_administration = fields.Decimal(as_string=True)
    currency = fields.String()
    terms_version = fields.String()
    items = fields.List(fields.Nested(PreviewItemSchema))


class ClaimItemSchema(Schema):
    item_id = fields.Integer()
    administration_name = fields.String()
    state = fields.String()
    documents_done = fields.Integer()
    documents_total = fields.Integer()
    percent = fields.Integer()
    target_administration_id = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)


class ClaimSchema(Schema):
    id = fields.Integer()
    transfer_id = fields.Integer()
    state = fields.String()
    finished = fields.Boolean()
    terms_version = fields.String()
    fee_per_administration = fields.Decimal(as_string=True)
    currency = fields.String()
    created_at = fields.DateTime()
    items = fields.List(fields.Nested(ClaimItemSchema))


class ReconciliationSchema(Schema):
    claim_id = fields.Integer()
    administrations = fields.List(fields.Dict())
    documents = fields.List(fields.Dict())
