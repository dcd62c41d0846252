"""Landing an administration in an environment: the one way a new administration
arrives from elsewhere, for a claimed transfer now and a migration file next.

``land_administration`` checks the receiving side's preconditions again inside the
caller's transaction, creates the administration with a free inbound address and
writes its provenance; the caller then fills in the documents and commits. It only
flushes: a failure anywhere rolls the whole landing back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import func, select

from app.admin_settings.domain import inbound_email
from app.admin_settings.models import (
    Administration,
    AdministrationState,
    Connection,
    Environment,
    Plan,
    Provenance,
    ProvenanceOrigin,
)
from app.errors import N_, Conflict
from app.extensions import db


class LandingRefused(Conflict):
    """A precondition of the receiving environment does not hold; trying again will not
    help until someone acts (changes the plan, adds a connection, renames a code)."""

    def __init__(self, message: str, **params) -> None:
        super().__init__("environment", message, **params)


@dataclass(frozen=True)
class Origin:
    """Where the administration comes from, as its provenance records it."""

    kind: ProvenanceOrigin
    source_environment_name: str
    source_environment_id: int | None = None
    source_administration_id: int | None = None
    transfer_id: int | None = None
    transfer_item_id: int | None = None
    import_item_id: int | None = None


def check_receiver(
    environment: Environment, connection: Connection | None, package: str, code: str
) -> Connection:
    """The receiving side's preconditions: premium plan, a connection of the package in
    this environment, and no administration with the same code under it."""
    if environment.plan is not Plan.PREMIUM:
        raise LandingRefused(N_("The receiving environment no longer has the premium plan."))
    if (
        connection is None
        or connection.environment_id != environment.id
        or connection.package.value != package
    ):
        raise LandingRefused(
            N_("The chosen connection no longer exists in the receiving environment.")
        )
    clash = db.session.scalar(
        select(func.count())
        .select_from(Administration)
        .where(
            Administration.connection_id == connection.id,
            Administration.code == code,
            Administration.holds_its_code,
        )
    )
    if clash:
        raise LandingRefused(
            N_("The receiving connection already has an administration with this code.")
        )
    return connection


def free_inbound_address(office_code: str, code: str) -> str:
    """``<office>.<code>@…``, or with ``-2``, ``-3``… when the environment already uses it
    (the same code under another connection, or codes that read alike in an address)."""
    domain = current_app.config["MAIL_DOMAIN"]
    candidates = [inbound_email(office_code, code, domain)]
    candidates += [inbound_email(office_code, f"{code}-{n}", domain) for n in range(2, 100)]
    taken = set(
        db.session.scalars(
            select(Administration.inbound_email).where(Administration.inbound_email.in_(candidates))
        )
    )
    return next(address for address in candidates if address not in taken)


def land_administration(
    *,
    environment: Environment,
    connection: Connection | None,
    package: str,
    name: str,
    code: str,
    contact_email: str,
    origin: Origin,
    now: datetime,
) -> Administration:
    """Create the administration in ``environment`` under ``connection`` with its
    provenance (flushed). Raises ``LandingRefused`` when the receiver cannot take it."""
    connection = check_receiver(environment, connection, package, code)
    administration = Administration(
        environment_id=environment.id,
        connection_id=connection.id,
        name=name,
        code=code,
        contact_email=contact_email,
        inbound_email=free_inbound_address(environment.office_code, code),
        state=AdministrationState.ACTIVE,
        created_at=now,
    )
    db.session.add(administration)
    db.session.flush()
    db.session.add(
        Provenance(
            administration_id=administration.id,
            origin=origin.kind,
            transfer_item_id=origin.transfer_item_id,
            import_item_id=origin.import_item_id,
            transfer_id=origin.transfer_id,
            source_environment_id=origin.source_environment_id,
            source_environment_name=origin.source_environment_name,
            source_administration_id=origin.source_administration_id,
            migrated_at=now,
        )
    )
    db.session.flush()
    return administration
