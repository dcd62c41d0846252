"""Setup the benchmarks share (a module, not a benchmark: ``make bench`` skips ``_*.py``)."""

from __future__ import annotations

from app.admin_settings.models import Connection, Environment, Package, Plan
from app.auth.models import Role, User
from app.auth.services import create_user
from app.extensions import db

PASSWORD = "bench password, not a secret"


def premium_office(
    name: str, office_code: str, email: str, user_name: str, package: Package, connection: str
) -> tuple[Environment, User, Connection]:
    """A premium environment with one superuser and one connection (flushed)."""
    environment = Environment(name=name, office_code=office_code, plan=Plan.PREMIUM)
    db.session.add(environment)
    db.session.flush()
    user = create_user(
        email=email,
        name=user_name,
        role=Role.SUPERUSER,
        password=PASSWORD,
        environment_id=environment.id,
    )
    link = Connection(environment_id=environment.id, package=package, name=connection)
    db.session.add(link)
    db.session.flush()
    return environment, user, link
