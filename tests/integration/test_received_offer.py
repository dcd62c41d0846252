"""A received offer leads somewhere: its page in the receiving office's list says what
the preview would say there (a code clash, a missing connection, a plan that cannot
receive) and leads to entering the code."""

from __future__ import annotations

import re

from app.admin_settings.models import Plan
from app.extensions import db
from tests.helpers import accept_all, offer
from tests.integration.pages import text_of
from tests.integration.test_claim import offerable


def detail(client, transfer) -> str:
    response = client.get_page(f"/settings/migrations/{transfer.id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def received_part(html: str) -> str | None:
    match = re.search(r'<div id="received-offer".*?</div>\s*\n', html, re.S)
    # text_of puts a space after each element: "<strong>Name</strong>:" reads "Name :".
    return text_of(match.group(0)).replace(" :", ":") if match else None


def test_a_received_offer_names_the_clash_and_leads_to_the_code(build, login, office, other_office):
    clashing = offerable(build, office.connection, name="Kapsalon Knip", code="2024")
    free = offerable(build, office.connection, name="Garage Snel", code="77")
    build.administration(other_office.connection, name="Eigen Kapsalon", code="2024")
    transfer, _code = offer(office.superuser, [clashing, free])

    html = detail(login(other_office.superuser), transfer)

    said = received_part(html)
    assert said is not None
    assert (
        "Kapsalon Knip: Je koppeling “Exact Online” heeft al een administratie met code 2024"
        in said
    )
    assert "Garage Snel: kan worden ontvangen in Exact Online." in said
    link = re.search(r'<a class="button" id="enter-code" href="([^"]+)"', html).group(1)
    assert link == "/settings/migrations/fetch"
    assert login(other_office.superuser).get_page(link).status_code == 200


def test_a_received_offer_says_when_the_connection_is_missing(build, login, office, other_office):
    twinfield = build.connection(office.environment, "twinfield")
    administration = offerable(build, twinfield, name="Bouwbedrijf Stevig")
    transfer, _code = offer(office.superuser, [administration])

    said = received_part(detail(login(other_office.superuser), transfer))

    assert "Bouwbedrijf Stevig: Je omgeving heeft geen koppeling met Twinfield." in said


def test_a_received_offer_says_when_the_plan_cannot_receive(build, login, office, other_office):
    transfer, _code = offer(office.superuser, [offerable(build, office.connection)])
    other_office.environment.plan = Plan.STANDARD
    db.session.commit()

    said = received_part(detail(login(other_office.superuser), transfer))

    assert "Alleen een omgeving met het premium-abonnement kan administraties ontvangen." in said


def test_the_offering_side_and_a_claimed_offer_show_no_claim_hints(
    build, login, office, other_office
):
    transfer, code = offer(office.superuser, [offerable(build, office.connection)])
    assert received_part(detail(login(office.superuser), transfer)) is None

    accept_all(other_office.superuser, transfer, code, other_office.connection)

    assert received_part(detail(login(other_office.superuser), transfer)) is None
