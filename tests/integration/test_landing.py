"""Landing an administration (app.admin_settings.landing): the one way an administration
arrives from elsewhere. It lands active under the chosen connection with a free inbound
address and a provenance row that says where it came from; when the receiving side
cannot take it, it is refused and nothing of it remains after the rollback."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import current_app
from sqlalchemy import func, select

from app.admin_settings.landing import LandingRefused, Origin, land_administration
from app.admin_settings.models import (
    Administration,
    AdministrationState,
    Plan,
    Provenance,
    ProvenanceOrigin,
)
from app.db import utcnow
from app.extensions import db
from tests.helpers import count, fresh, offer

NOW = utcnow().replace(microsecond=0) - timedelta(days=1)


def domain() -> str:
    return current_app.config["MAIL_DOMAIN"]


def from_file(name: str = "Kantoor Elders (migratiebestand)") -> Origin:
    return Origin(kind=ProvenanceOrigin.MIGRATION_FILE, source_environment_name=name)


def land(office, code="1001", *, connection=None, package="exact_online", origin=None, **kw):
    return land_administration(
        environment=office.environment,
        connection=office.connection if connection is None else connection,
        package=package,
        name=kw.get("name", "Bakkerij De Korenschoof"),
        code=code,
        contact_email=kw.get("contact_email", "boekhouding@korenschoof.example"),
        origin=origin or from_file(),
        now=NOW,
    )


def landed_in(environment) -> int:
    return count(Administration, Administration.environment_id == environment.id)


# --------------------------------------------------------------------------- landing


def test_a_transferred_administration_lands_active_with_its_provenance(build, office, other_office):
    source = build.administration(office.connection, code="1001")
    transfer, _code = offer(office.superuser, [source])
    item = transfer.items[0]
    origin = Origin(
        kind=ProvenanceOrigin.TRANSFER,
        source_environment_name="Kantoor Noord",
        source_environment_id=office.environment.id,
        source_administration_id=source.id,
        transfer_id=transfer.id,
        transfer_item_id=item.id,
    )

    landed = land(other_office, "1001", origin=origin)
    db.session.commit()

    fresh()
    administration = db.session.get(Administration, landed.id)
    assert administration.environment_id == other_office.environment.id
    assert administration.connection_id == other_office.connection.id
    assert (administration.name, administration.code, administration.contact_email) == (
        "Bakkerij De Korenschoof",
        "1001",
        "boekhouding@korenschoof.example",
    )
    assert administration.state is AdministrationState.ACTIVE
    assert administration.created_at == NOW
    assert administration.inbound_email == f"zuid.1001@{domain()}"
    provenance = db.session.scalars(
        select(Provenance).where(Provenance.administration_id == landed.id)
    ).one()
    assert provenance.origin is ProvenanceOrigin.TRANSFER
    assert provenance.transfer_id == transfer.id
    assert provenance.transfer_item_id == item.id
    assert provenance.source_environment_id == office.environment.id
    assert provenance.source_environment_name == "Kantoor Noord"
    assert provenance.source_administration_id == source.id
    assert provenance.migrated_at == NOW


def test_an_administration_from_a_migration_file_lands_with_its_origin_and_source_office(
    other_office,
):
    landed = land(other_office, "2002", origin=from_file("Administratiekantoor Elders"))
    db.session.commit()

    fresh()
    provenance = db.session.scalars(
        select(Provenance).where(Provenance.administration_id == landed.id)
    ).one()
    assert provenance.origin is ProvenanceOrigin.MIGRATION_FILE
    assert provenance.source_environment_name == "Administratiekantoor Elders"
    assert provenance.source_environment_id is None
    assert provenance.source_administration_id is None
    assert provenance.transfer_id is None and provenance.transfer_item_id is None
    assert db.session.get(Administration, landed.id).inbound_email == f"zuid.2002@{domain()}"


def test_landing_only_flushes_so_the_callers_rollback_undoes_all_of_it(other_office):
    landed = land(other_office, "3003")
    assert landed.id is not None  # flushed: the caller can fill in the documents
    with db.engine.connect() as other:
        seen = other.scalar(select(func.count()).select_from(Administration))
        other.rollback()
    assert seen == 0, "nothing is committed by the landing itself"

    db.session.rollback()

    assert landed_in(other_office.environment) == 0
    assert count(Provenance) == 0


def test_the_inbound_address_gets_a_number_when_the_environment_already_uses_it(
    build, other_office
):
    second = build.connection(other_office.environment, name="Exact tweede")
    third = build.connection(other_office.environment, name="Exact derde")
    build.administration(other_office.connection, code="1001")  # zuid.1001@ is taken

    two = land(other_office, "1001", connection=second)
    three = land(other_office, "1001", connection=third)
    db.session.commit()

    assert two.inbound_email == f"zuid.1001-2@{domain()}"
    assert three.inbound_email == f"zuid.1001-3@{domain()}"


def test_codes_that_read_alike_in_an_address_get_a_number_too(build, other_office):
    second = build.connection(other_office.environment, name="Exact tweede")
    build.administration(other_office.connection, code="AB/12")  # zuid.ab-12@

    landed = land(other_office, "ab 12", connection=second)
    db.session.commit()

    assert landed.inbound_email == f"zuid.ab-12-2@{domain()}"
    assert count(Administration, Administration.inbound_email == landed.inbound_email) == 1


def test_the_same_code_in_another_environment_keeps_the_plain_address(build, office, other_office):
    build.administration(office.connection, code="1001")  # noord.1001@

    landed = land(other_office, "1001")
    db.session.commit()

    assert landed.inbound_email == f"zuid.1001@{domain()}"


# --------------------------------------------------------------------------- refusals


def assert_refused_and_nothing_left(error: LandingRefused, message: str, environment) -> None:
    assert error.message == message
    assert error.field == "environment"
    assert error.status == 409
    db.session.rollback()
    assert landed_in(environment) == 0
    assert count(Provenance) == 0


def test_a_standard_plan_environment_is_refused(build, other_office):
    other_office.environment.plan = Plan.STANDARD
    db.session.commit()

    with pytest.raises(LandingRefused) as refused:
        land(other_office)

    assert_refused_and_nothing_left(
        refused.value,
        "The receiving environment no longer has the premium plan.",
        other_office.environment,
    )


def test_a_connection_of_another_environment_is_refused(office, other_office):
    with pytest.raises(LandingRefused) as refused:
        land(other_office, connection=office.connection)

    assert_refused_and_nothing_left(
        refused.value,
        "The chosen connection no longer exists in the receiving environment.",
        other_office.environment,
    )
    assert landed_in(office.environment) == 0


def test_a_connection_of_another_package_is_refused(build, other_office):
    twinfield = build.connection(other_office.environment, package="twinfield")

    with pytest.raises(LandingRefused) as refused:
        land(other_office, connection=twinfield, package="exact_online")

    assert_refused_and_nothing_left(
        refused.value,
        "The chosen connection no longer exists in the receiving environment.",
        other_office.environment,
    )


def test_no_connection_at_all_is_refused(other_office):
    with pytest.raises(LandingRefused) as refused:
        land_administration(
            environment=other_office.environment,
            connection=None,
            package="exact_online",
            name="Klant",
            code="1001",
            contact_email="klant@example.com",
            origin=from_file(),
            now=NOW,
        )

    assert_refused_and_nothing_left(
        refused.value,
        "The chosen connection no longer exists in the receiving environment.",
        other_office.environment,
    )


def test_a_code_that_already_exists_under_the_connection_is_refused(build, other_office):
    existing = build.administration(other_office.connection, code="1001")

    with pytest.raises(LandingRefused) as refused:
        land(other_office, "1001")

    assert refused.value.message == (
        "The receiving connection already has an administration with this code."
    )
    db.session.rollback()
    assert landed_in(other_office.environment) == 1  # only the one that was there
    assert db.session.get(Administration, existing.id).inbound_email == f"zuid.1001@{domain()}"
    assert count(Provenance) == 0


def test_the_same_code_under_another_connection_of_the_environment_is_no_clash(build, other_office):
    build.administration(other_office.connection, code="1001")
    second = build.connection(other_office.environment, name="Exact tweede")

    landed = land(other_office, "1001", connection=second)
    db.session.commit()

    assert landed.connection_id == second.id
    assert count(Administration, Administration.code == "1001") == 2


def test_a_refusal_inside_a_larger_unit_of_work_takes_the_earlier_landing_with_it(
    build, other_office
):
    land(other_office, "1001")
    with pytest.raises(LandingRefused):
        land(other_office, "1001")  # the first landing now clashes
    db.session.rollback()

    assert landed_in(other_office.environment) == 0
    assert count(Provenance) == 0
