"""Read-only views across environments for support staff."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from werkzeug.exceptions import NotFound

from app.admin_settings.models import Administration, Document, Environment
from app.auth.domain import Permission, has_permission
from app.auth.models import User
from app.extensions import db


@dataclass(frozen=True)
class EnvironmentSummary:
    environment: Environment
    administrations: int
    documents: int
    users: int


def environment_overview(actor: User) -> list[EnvironmentSummary]:
    """Every environment with counts; names and numbers only, no contents."""
    if not has_permission(actor.role, Permission.SUPPORT_CONSOLE):
        raise NotFound()

    def counts(column) -> dict[int, int]:
        return dict(db.session.execute(select(column, func.count()).group_by(column)).all())

    administrations = counts(Administration.environment_id)
    documents = counts(Document.environment_id)
    users = counts(User.environment_id)
    environments = db.session.scalars(select(Environment).order_by(Environment.name))
    return [
        EnvironmentSummary(
            e, administrations.get(e.id, 0), documents.get(e.id, 0), users.get(e.id, 0)
        )
        for e in environments
    ]
