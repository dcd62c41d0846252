"""Honest states on the lists: "Klaar voor migratie" only for an active administration
in no move and without blockers; offered, being copied, failed and moved ones say so,
on the administrations list, the administration's page and the wizard's choice."""

from __future__ import annotations

import re

from sqlalchemy import update

from app.extensions import db
from app.transfers.copying import copy_waiting
from app.transfers.domain import ItemState
from app.transfers.models import TransferItem
from tests.helpers import accept_all, offer
from tests.integration.test_claim import offerable


def readiness(html: str, administration) -> tuple[str, str]:
    row = re.search(
        rf'<tr data-administration-id="{administration.id}">(.*?)</tr>', html, re.S
    ).group(1)
    found = re.search(r'data-readiness="(\w+)">([^<]*)<', row)
    return found.group(1), found.group(2).strip()


def test_each_administration_says_where_it_stands(build, login, office, other_office):
    ready = offerable(build, office.connection, name="Klaar BV")
    blocked = offerable(build, office.connection, name="Geblokkeerd BV")
    build.document(blocked, "pending")
    offered = offerable(build, office.connection, name="Aangeboden BV")
    offer(office.superuser, [offered])
    copying = offerable(build, office.connection, name="Onderweg BV")
    moved = offerable(build, office.connection, name="Verhuisd BV")
    transfer, code = offer(office.superuser, [moved])
    accept_all(other_office.superuser, transfer, code, other_office.connection)
    assert copy_waiting() == 1
    failed = offerable(build, office.connection, name="Mislukt BV")
    for administration in (copying, failed):
        transfer, code = offer(office.superuser, [administration])
        accept_all(other_office.superuser, transfer, code, other_office.connection)
    db.session.execute(
        update(TransferItem)
        .where(TransferItem.administration_id == failed.id)
        .values(state=ItemState.FAILED)
    )
    db.session.commit()
    client = login(office.superuser)

    html = client.get_page("/settings/administrations").get_data(as_text=True)

    assert readiness(html, ready) == ("ready", "Klaar voor migratie")
    assert readiness(html, offered) == ("offered", "Al aangeboden")
    assert readiness(html, copying) == ("copying", "Wordt gekopieerd")
    assert readiness(html, failed) == ("failed", "Kopie mislukt; support is ingelicht")
    assert readiness(html, moved) == ("moved", "Al gemigreerd")
    assert "data-readiness" not in re.search(
        rf'<tr data-administration-id="{blocked.id}">(.*?)</tr>', html, re.S
    ).group(1)
    assert html.count("Klaar voor migratie") == 1
    page = client.get_page(f"/settings/administrations/{copying.id}").get_data(as_text=True)
    assert 'data-readiness="copying">Wordt gekopieerd<' in page
    assert 'data-readiness="ready"' not in page
