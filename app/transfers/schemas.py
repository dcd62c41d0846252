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
    items = fields.List(fields.Nested(TransferRowSchema), attribute="rows")
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
