"""Provenance on both sides: the office that handed an administration over says to whom
and when, the office that took it over says from whom; pages and API alike."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from flask_babel import force_locale, format_date
from sqlalchemy import select

from app.admin_settings.models import Administration
from app.extensions import db
from app.transfers.copying import copy_waiting
from app.transfers.models import TransferItem
from tests.helpers import accept_all, fresh, offer
from tests.integration.pages import text_of
from tests.integration.test_claim import offerable

ADMINISTRATIONS = "/settings/administrations"


def long_date(moment: datetime, locale: str) -> str:
    with force_locale(locale):
        return format_date(moment, "long")


@pytest.fixture
def moved(build, office, other_office):
    """Kapsalon Knip, moved from Noord to Zuid and copied completely."""
    client = offerable(build, office.connection, documents=2, name="Kapsalon Knip", code="2024")
    transfer, code = offer(office.superuser, [client])
    accept_all(other_office.superuser, transfer, code, other_office.connection)
    assert copy_waiting() == 1
    fresh()
    item = db.session.scalars(select(TransferItem)).one()
    return client, db.session.get(Administration, item.target_administration_id), transfer, item


def test_both_offices_say_where_the_administration_went_and_came_from(
    login, office, other_office, moved
):
    source, target, transfer, item = moved
    day = long_date(item.finished_at, "nl")

    noord = login(office.superuser).get_page(f"{ADMINISTRATIONS}/{source.id}")
    zuid = login(other_office.superuser).get_page(f"{ADMINISTRATIONS}/{target.id}")

    said = text_of(noord.get_data(as_text=True))
    assert (
        f"Overgedragen aan {other_office.environment.name} op {day} (overdracht {transfer.id})"
        in said
    )
    heard = text_of(zuid.get_data(as_text=True))
    assert f"Overgenomen van {office.environment.name} op {day} (overdracht {transfer.id})" in heard
    # Each links to the transfer, which that side may open.
    for client, response in (
        (login(office.superuser), noord),
        (login(other_office.superuser), zuid),
    ):
        link = re.search(
            r'class="provenance"[^>]*><a href="([^"]+)"', response.get_data(as_text=True)
        ).group(1)
        assert link == f"/settings/migrations/{transfer.id}"
        assert client.get_page(link).status_code == 200


def test_the_administrations_list_names_the_move(login, office, other_office, moved):
    _source, target, transfer, _item = moved

    html = login(other_office.superuser).get_page(ADMINISTRATIONS).get_data(as_text=True)

    row = re.search(rf'<tr data-administration-id="{target.id}">(.*?)</tr>', html, re.S).group(1)
    assert f"Overgenomen van {office.environment.name}" in text_of(row)
    assert f"(overdracht {transfer.id})" in text_of(row)


def test_the_api_returns_the_provenance_of_both_sides(api_client, office, other_office, moved):
    source, target, transfer, item = moved
    noord, noord_headers = api_client(office.superuser)
    zuid, zuid_headers = api_client(other_office.superuser)

    went = noord.get(f"/api/v1/administrations/{source.id}", headers=noord_headers).get_json()
    came = zuid.get(f"/api/v1/administrations/{target.id}", headers=zuid_headers).get_json()

    assert [(m["direction"], m["transfer_id"], m["office"]) for m in went["provenance"]] == [
        (
            "outgoing",
            transfer.id,
            {"id": other_office.environment.id, "name": other_office.environment.name},
        )
    ]
    assert [(m["direction"], m["office"]["name"]) for m in came["provenance"]] == [
        ("incoming", office.environment.name)
    ]
    at = datetime.fromisoformat(came["provenance"][0]["at"])
    assert at.replace(tzinfo=None) == item.finished_at.replace(tzinfo=None)


def test_a_returning_client_shows_both_moves_newest_first(
    build, login, office, other_office, moved
):
    _source, target, first, _item = moved
    back, back_code = offer(other_office.superuser, [target], recipients=(office.superuser.email,))
    accept_all(office.superuser, back, back_code, office.connection)
    assert copy_waiting() == 1
    fresh()

    html = (
        login(other_office.superuser)
        .get_page(f"{ADMINISTRATIONS}/{target.id}")
        .get_data(as_text=True)
    )

    moves = re.findall(r'class="provenance" data-direction="(\w+)" data-transfer-id="(\d+)"', html)
    assert moves == [("outgoing", str(back.id)), ("incoming", str(first.id))]
    assert f"Overgedragen aan {office.environment.name}" in text_of(html)


def test_an_administration_that_never_moved_says_nothing_about_moves(build, login, office):
    administration = build.administration(office.connection)

    html = (
        login(office.superuser)
        .get_page(f"{ADMINISTRATIONS}/{administration.id}")
        .get_data(as_text=True)
    )

    assert 'class="provenance"' not in html


def test_an_imported_administration_says_which_office_its_migration_file_came_from(
    build, login, office
):
    from tests.integration.test_migration_import import exported, run, start

    zuid = build.environment("Kantoor Zuid", office_code="ZUID")
    receiver = build.user(zuid, "superuser", email="super@zuid.example")
    build.connection(zuid)
    source = offerable(build, office.connection, documents=1, name="Bakkerij Jansen")
    imp = run(receiver, start(receiver, exported(office.superuser, [source])))
    landed = db.session.get(Administration, imp.items[0].target_administration_id)

    html = login(receiver).get_page(f"{ADMINISTRATIONS}/{landed.id}").get_data(as_text=True)

    day = long_date(imp.items[0].finished_at, "nl")
    assert f"Geïmporteerd uit een migratiebestand van Kantoor Noord op {day}" in text_of(html)
    assert 'data-direction="imported"' in html
    # The exporting office's own copy did not move: a file is not a handover.
    noord = login(office.superuser).get_page(f"{ADMINISTRATIONS}/{source.id}")
    assert 'class="provenance"' not in noord.get_data(as_text=True)
