"""Support end to end in headless Chromium: support staff log in, open the Stuck tab, see
a copy that has hung for two hours with its reason, open it, give a reason and revoke it
(confirming the browser's dialog), and find the revoke in the transfer's audit trail."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask_babel import force_locale, gettext
from playwright.sync_api import expect
from sqlalchemy import select, update

from app.admin_settings.models import Administration, AdministrationState
from app.audit import AuditEvent
from app.db import utcnow
from app.extensions import db
from app.outbox import OutboxMessage
from app.transfers import claims, offers
from app.transfers.models import ItemState, Transfer, TransferItem, TransferState
from tests.browser.helpers import screenshot_on_failure
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser

SUPPORT_EMAIL = "support@overdracht.example"
REASON = "De kopie hangt al twee uur; Kantoor Zuid vraagt het opnieuw aan."


def shown(app, message: str, **params) -> str:
    """``message`` as the page shows it: in Dutch, the default language."""
    with app.test_request_context(), force_locale(app.config["BABEL_DEFAULT_LOCALE"]):
        return gettext(message, **params)


def offer(actor, administration, recipients=("super@zuid.example",)):
    transfer, code = offers.create_offer(
        actor,
        administration_ids=[administration.id],
        recipient_emails=list(recipients),
        checklist_confirmed=True,
        accept_terms=True,
        origin="tests",
    )
    db.session.commit()
    return transfer, code


def test_support_revokes_a_hung_copy_from_the_stuck_tab(app, build, page, tmp_path):
    noord = build.environment("Kantoor Noord", office_code="NOORD")
    noord_super = build.user(noord, "superuser", email="super@noord.example", name="Sanne Noord")
    noord_connection = build.connection(noord)
    hung_administration = build.administration(noord_connection, name="Autobedrijf Wolters")
    healthy_administration = build.administration(noord_connection, name="Bakkerij De Korrel")
    for administration in (hung_administration, healthy_administration):
        build.document(administration, "approved")
    zuid = build.environment("Kantoor Zuid", office_code="ZUID")
    zuid_super = build.user(zuid, "superuser", email="super@zuid.example", name="Sem Zuid")
    zuid_connection = build.connection(zuid)
    build.user(None, "support", email=SUPPORT_EMAIL, name="Sam Support")

    hung, code = offer(noord_super, hung_administration)
    claims.submit_claim(
        zuid_super,
        code,
        [claims.Decision(hung.items[0].id, "accept", zuid_connection.id)],
        accept_terms=True,
        origin="tests",
    )
    db.session.commit()
    now = utcnow()
    # A worker took the copy two hours ago and hangs, holding its lease for a day.
    db.session.execute(
        update(TransferItem)
        .where(TransferItem.transfer_id == hung.id)
        .values(updated_at=now - timedelta(hours=2), lease_until=now + timedelta(days=1))
    )
    db.session.commit()
    healthy, _code = offer(noord_super, healthy_administration)
    hung_id, healthy_id = hung.id, healthy.id
    hung_item_id = hung.items[0].id
    hung_administration_id = hung_administration.id
    reason_text = shown(app, "Being copied for more than %(minutes)d minutes", minutes=30)
    # End this session's transaction so no snapshot hides the server's writes.
    db.session.commit()

    with screenshot_on_failure(page, tmp_path):
        page.goto("/login")
        page.locator('input[name="email"]').fill(SUPPORT_EMAIL)
        page.locator('input[name="password"]').fill(TEST_PASSWORD)
        page.locator("main form button[type=submit]").click()
        page.wait_for_url(re.compile(r".*/support$"))
        rows = page.locator("table[data-table=support-transfers] tr[data-transfer-id]")
        expect(rows).to_have_count(2)

        page.locator('nav.tabs a[href="/support?stuck=1"]').click()
        page.wait_for_url(re.compile(r".*/support\?stuck=1$"))
        expect(page.locator('nav.tabs a[href="/support?stuck=1"]')).to_have_attribute(
            "aria-current", "page"
        )
        expect(rows).to_have_count(1)
        row = page.locator(f'tr[data-transfer-id="{hung_id}"]')
        expect(row).to_contain_text("Autobedrijf Wolters")
        expect(row.locator("ul.reasons li")).to_have_text([reason_text])
        expect(row.locator("[data-state]").last).to_have_attribute("data-state", "claiming")
        expect(page.locator(f'tr[data-transfer-id="{healthy_id}"]')).to_have_count(0)

        row.locator(f'a[href="/support/transfers/{hung_id}"]').click()
        page.wait_for_url(re.compile(rf".*/support/transfers/{hung_id}$"))
        badge = page.locator("h2 .badge[data-state]")
        expect(badge).to_have_attribute("data-state", "claiming")
        expect(page.locator("section.card ul.reasons li")).to_have_text([reason_text])
        page.locator('textarea[name="reason"]').fill(REASON)

        # Dismissing the confirmation sends nothing.
        dialogs: list[str] = []
        page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.locator("#revoke button[type=submit]").click()
        expect(badge).to_have_attribute("data-state", "claiming")
        assert dialogs == [shown(app, "Revoke this transfer? Both offices receive the reason.")]
        db.session.commit()
        assert db.session.get(Transfer, hung_id).state is TransferState.OFFERED

        page.once("dialog", lambda d: d.accept())
        page.locator("#revoke button[type=submit]").click()

        expect(page.locator("h2 .badge[data-state=revoked]")).to_be_visible()
        expect(page.locator(".flash-success")).to_have_text(
            shown(app, "The transfer has been revoked; both offices have been told why.")
        )
        revoked_row = page.locator("#audit tr[data-action=transfer_revoked]")
        expect(revoked_row).to_have_count(1)
        expect(revoked_row).to_contain_text(SUPPORT_EMAIL)
        expect(revoked_row).to_contain_text(REASON)
        expect(page.locator("#revoke")).to_have_count(0)
        expect(page.locator(f'tr[data-item-id="{hung_item_id}"] [data-state]')).to_have_attribute(
            "data-state", "revoked"
        )

        page.locator('nav.tabs a[href="/support?stuck=1"]').click()
        page.wait_for_url(re.compile(r".*/support\?stuck=1$"))
        expect(rows).to_have_count(0)

    # End the test session's transaction (an old SQLite snapshot) to read what was written.
    db.session.commit()
    transfer = db.session.get(Transfer, hung_id)
    assert transfer.state is TransferState.REVOKED
    assert transfer.items[0].state is ItemState.REVOKED
    assert transfer.items[0].lease_until is None
    assert db.session.get(Administration, hung_administration_id).state is (
        AdministrationState.ACTIVE
    )
    assert db.session.get(Transfer, healthy_id).state is TransferState.OFFERED
    sent = db.session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.ref_id == hung_id, OutboxMessage.kind == "transfer_revoked"
        )
    ).all()
    assert sorted(m.to_email for m in sent) == ["super@noord.example", "super@zuid.example"]
    assert all(REASON in m.body_text for m in sent)
    (event,) = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "transfer_revoked")
    ).all()
    assert (event.actor_email, event.object_id) == (SUPPORT_EMAIL, hung_id)
    assert event.details["reason"] == REASON
