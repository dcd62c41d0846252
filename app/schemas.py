"""Schema parts every feature's API shares: one page shape for every listing, the
error shape, and the fields that bound input (text without NUL bytes or lone
surrogates, ids in the database's range, lists checked for length before their items)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from app.converters import BAD_CHARACTERS, MAX_ID, has_bad_text
from config import Config

MAX_PAGE = Config.MAX_PAGE
MAX_LIST_ITEMS = Config.MAX_LIST_ITEMS
MAX_RECIPIENTS = Config.MAX_RECIPIENTS


class Text(fields.String):
    """A string that refuses NUL bytes and lone surrogates (the database cannot store
    them); use it for every string a schema reads."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if has_bad_text(text):
            from flask_babel import gettext

            raise ValidationError(gettext(BAD_CHARACTERS))
        return text


def Id(**kwargs) -> fields.Integer:  # noqa: N802 - reads like a field class
    """An id the database can hold: 1..2**31-1, else 422."""
    return fields.Integer(strict=False, validate=validate.Range(min=1, max=MAX_ID), **kwargs)


def Page(**kwargs) -> fields.Integer:  # noqa: N802
    return fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE), **kwargs)


class BoundedList(fields.List):
    """A list whose length is checked before any item is read, so a million items cost
    no more than eleven; ``minItems``/``maxItems`` are declared in the OpenAPI document.

    ``min_items`` is declared only: the service refuses too few with its own message
    (e.g. "Choose at least one administration"), under the same field, as 422."""

    def __init__(self, inner, *, min_items: int | None = None, max_items: int, **kwargs):
        metadata = kwargs.pop("metadata", {})
        if min_items is not None:
            metadata = {"minItems": min_items, **metadata}
        super().__init__(
            inner, validate=validate.Length(max=max_items), metadata=metadata, **kwargs
        )
        self.min_items = min_items
        self.max_items = max_items

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, (list, tuple)) and len(value) > self.max_items:
            raise ValidationError(
                validate.Length.message_max.format(max=self.max_items, min=self.min_items)
            )
        return super()._deserialize(value, attr, data, **kwargs)


def DecimalString(**kwargs) -> fields.Decimal:  # noqa: N802
    """A decimal served as a string (``"12.50"``) and declared so."""
    metadata = {"type": "string", "format": "decimal", **kwargs.pop("metadata", {})}
    return fields.Decimal(as_string=True, metadata=metadata, **kwargs)


class ErrorSchema(Schema):
    """Every error the API answers: ``errors`` maps a field to its messages (a list of
    strings), or for a nested field to an object of its own fields (list items by
    index). Declared once as the ``Error`` component."""

    code = fields.Integer(required=True, metadata={"description": "HTTP status code"})
    status = fields.String(required=True, metadata={"description": "HTTP status name"})
    message = fields.String(required=True, metadata={"description": "What went wrong"})
    errors = fields.Dict(keys=fields.String(), metadata={"description": "Messages per field"})


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    """The schema of one ``app.paging.Page`` of ``item_schema`` rows, named ``name`` in the
    OpenAPI document."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema)),
            "page": fields.Integer(),
            "per_page": fields.Integer(),
            "total": fields.Integer(),
            "pages": fields.Integer(),
        },
        name=name,
    )
