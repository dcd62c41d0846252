"""Bearer-token authentication for the JSON API, and ``GET /api/v1/me``."""

from __future__ import annotations

from flask import abort, g, request
from flask_smorest import Blueprint

from app.auth import services
from app.auth.models import User
from app.auth.schemas import UserSchema
from app.web import unit_of_work

blp = Blueprint("auth_api", __name__, url_prefix="/me", description="The token's owner")


def authenticate_bearer() -> None:
    """``before_request`` of every API blueprint: a valid personal token, or 401.

    The session cookie is deliberately ignored here; see ``register_blueprints``.
    """
    if request.method == "OPTIONS":
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    with unit_of_work():  # keeps the token's last-used time
        user = (
            services.user_for_token(token.strip()) if scheme.lower() == "bearer" and token else None
        )
    if user is None:
        abort(401)
    g.api_user = user


def api_user() -> User:
    """The user the current API request acts for."""
    return g.api_user


blp.before_request(authenticate_bearer)


@blp.route("")
@blp.response(200, UserSchema)
def me():
    """The owner of the bearer token."""
    return api_user()
