"""The import wizard and an import's page (Settings › Migratie › Importeer een
migratiebestand). Thin: the services are in ``imports``."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from app.migration_files import imports

bp = Blueprint("imports", __name__, url_prefix="/settings/migrations/imports")


@bp.before_request
@login_required
def _logged_in():
    """Every page needs a login; the services check the role and the environment."""


@bp.get("/<int:import_id>")
def detail(import_id: int):
    imp = imports.import_for(current_user, import_id)
    return render_template("migration_files/import.html", imp=imp, imports=imports)
