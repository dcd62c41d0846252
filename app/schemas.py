"""Schema parts every feature's API shares: one page shape for every listing."""

from __future__ import annotations

from marshmallow import Schema, fields


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
