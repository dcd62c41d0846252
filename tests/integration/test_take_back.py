"""A client who moved away can come back: the migrated (read-only, kept) administration
does not hold its code in the connection it left, while an active one still does."""

from __future__ import annotations

from sqlalchemy import select

from app.admin_settings.models import Administration, AdministrationState
from app.extensions import db
from app.transfers import claims
from app.transfers.copying import copy_waiting
from tests.helpers import accept_all, fresh, offer
from tests.integration.test_claim import offerable


def administrations_of(connection) -> list[tuple[str, str]]:
    fresh()
    return sorted(
        (a.code, a.state.value)
        for a in db.session.scalars(
            select(Administration).where(Administration.connection_id == connection.id)
        )
    )


def test_a_client_moved_noord_to_zuid_can_be_moved_back_to_noord(build, office, other_office):
    client = offerable(build, office.connection, documents=2, name="Kapsalon Knip", code="2024")
    transfer, code = offer(office.superuser, [client])
    accept_all(other_office.superuser, transfer, code, other_office.connection)
    assert copy_waiting() == 1
    assert administrations_of(office.connection) == [("2024", "migrated")]
    arrived = db.session.scalars(
        select(Administration).where(Administration.connection_id == other_office.connection.id)
    ).one()

    back, back_code = offer(other_office.superuser, [arrived], recipients=(office.superuser.email,))
    preview = claims.preview(office.superuser, back_code, origin="tests")
    assert preview.items[0].problem is None, "the migrated one does not clash"
    assert [p.clash for p in preview.items[0].choices] == [False]
    accept_all(office.superuser, back, back_code, office.connection)
    assert copy_waiting() == 1

    assert administrations_of(office.connection) == [("2024", "active"), ("2024", "migrated")]
    came_back = db.session.scalars(
        select(Administration).where(
            Administration.connection_id == office.connection.id,
            Administration.state == AdministrationState.ACTIVE,
        )
    ).one()
    assert came_back.inbound_email != client.inbound_email  # the old address stays the old one's


def test_an_active_administration_with_the_code_still_clashes(build, office, other_office):
    offered = offerable(build, office.connection, name="Kapsalon Knip", code="2024")
    build.administration(other_office.connection, name="Eigen Kapsalon", code="2024")
    _transfer, code = offer(office.superuser, [offered])

    preview = claims.preview(other_office.superuser, code, origin="tests")

    assert [p.clash for p in preview.items[0].choices] == [True]
    entry = preview.items[0]
    said = entry.problem % entry.problem_params
    assert "Your connection “Exact Online” already has an administration with code 2024." in said
    assert "add another Exact Online connection" in said
