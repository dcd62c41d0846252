"""The support console's start page: environments at a glance (metadata only)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required
from werkzeug.exceptions import NotFound

from app.support import services

bp = Blueprint("support", __name__, url_prefix="/support")


@bp.before_request
@login_required
def _support_only():
    """Support pages do not exist for anyone else."""
    if not current_user.is_support:
        raise NotFound()


@bp.get("")
def index():
    return render_template(
        "support/index.html", environments=services.environment_overview(current_user)
    )
