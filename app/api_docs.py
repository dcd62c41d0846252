"""A readable reference of the JSON API at ``/api/v1/docs``: Swagger UI over the
OpenAPI document, its files served by the app (``static/vendor/swagger-ui-*``), no CDN,
and started from a static script, so the site's strict CSP holds here too."""

from __future__ import annotations

from flask import Blueprint, render_template, url_for

bp = Blueprint("api_docs", __name__)

SWAGGER_UI = "vendor/swagger-ui-5.35.0"


@bp.get("/api/v1/docs")
def docs():
    return render_template(
        "api/docs.html",
        css=url_for("static", filename=f"{SWAGGER_UI}/swagger-ui.css"),
        bundle=url_for("static", filename=f"{SWAGGER_UI}/swagger-ui-bundle.js"),
        spec=url_for("api-docs.openapi_json"),
    )
