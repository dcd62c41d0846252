"""Offering administrations end to end in headless Chromium: from Settings › Administraties
through the checklist, the choice (a blocked administration cannot be ticked) and the
summary to the transfer code; then the overview lists the offer and withdraws it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.admin_settings.models import Administration, AdministrationState
from app.extensions import db
from app.transfers.models import ItemState, Transfer, TransferItem, TransferState
from tests.browser.helpers import screenshot_on_failure
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser

CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){4}$")


def test_superuser_offers_two_administrations_and_withdraws_the_offer(build, page, tmp_path):
    noord = build.environment("Kantoor Noord", office_code="NOORD")
    build.user(noord, "superuser", email="super@noord.example", name="Sanne Noord")
    connection = build.connection(noord)
    clean = [
        build.administration(connection, name="Bakkerij De Korrel", code="1001"),
        build.administration(connection, name="Hoveniers Het Anker", code="1002"),
    ]
    for administration in clean:
        build.document(administration, status="approved")
    blocked = build.administration(connection, name="Slagerij Visser", code="1003")
    build.document(blocked, status="pending")
    zuid = build.environment("Kantoor Zuid", office_code="ZUID")
    build.user(zuid, "superuser", email="super@zuid.example", name="Sem Zuid")
    clean_ids = [a.id for a in clean]
    blocked_id = blocked.id
    # End this session's transaction so no snapshot hides the server's writes.
    db.session.commit()

    with screenshot_on_failure(page, tmp_path):
        page.goto("/login")
        page.locator('input[name="email"]').fill("super@noord.example")
        page.locator('input[name="password"]').fill(TEST_PASSWORD)
        page.locator("main form button[type=submit]").click()
        expect(page.locator("nav.mainnav")).to_be_visible()

        # Settings › Administraties › "+ Migrate administration(s)" › the actions tab › move.
        page.locator('nav.mainnav a[href="/settings/administrations"]').click()
        page.wait_for_url("**/settings/administrations")
        page.locator("#migrate-button").click()
        page.wait_for_url("**/settings/migrations")
        page.locator('nav.tabs a[href="/settings/migrations/actions"]').click()
        page.wait_for_url("**/settings/migrations/actions")
        page.locator('a[href="/settings/migrations/move"]').click()
        page.wait_for_url("**/settings/migrations/move")

        # Step 1: the four points of the checklist.
        boxes = page.locator("ol.checklist input[type=checkbox]")
        expect(boxes).to_have_count(4)
        for i in range(4):
            boxes.nth(i).check()
        page.locator("main form button[type=submit]").click()
        page.wait_for_url("**/settings/migrations/move/select")

        # Step 2: the blocked administration cannot be chosen; the two clean ones can.
        expect(page.locator(f"#adm-{blocked_id}")).to_be_disabled()
        expect(page.locator(f'tr[data-administration-id="{blocked_id}"]')).to_have_class(
            re.compile(r"\bblocked\b")
        )
        for administration_id in clean_ids:
            expect(page.locator(f"#adm-{administration_id}")).to_be_enabled()
            page.locator(f"#adm-{administration_id}").check()
        page.locator('form[action$="/move/select"] button[type=submit]').click()
        page.wait_for_url("**/settings/migrations/move/summary")

        # Step 3: the summary lists both; one recipient, the terms, send.
        summary = page.locator('table[data-table="summary"] tbody tr')
        expect(summary).to_have_count(2)
        expect(page.locator('table[data-table="summary"]')).to_contain_text("Bakkerij De Korrel")
        expect(page.locator('table[data-table="summary"]')).to_contain_text("Hoveniers Het Anker")
        page.locator("#recipient_emails-0").fill("super@zuid.example")
        page.locator('input[name="accept_terms"]').check()
        page.locator("#send-offer").click()

        # The first press names the receiving office and sends nothing; the second sends.
        expect(page.locator("#receiving-office-check")).to_contain_text(
            "Ontvangend kantoor: Kantoor Zuid"
        )
        expect(page.locator("#send-offer")).to_have_text("Verstuur het aanbod naar Kantoor Zuid")
        page.locator("#send-offer").click()

        # The offer's page shows the code.
        page.wait_for_url(re.compile(r"/settings/migrations/\d+$"))
        transfer_id = int(page.url.rsplit("/", 1)[1])
        code = page.locator("#transfer-code").inner_text().strip()
        assert CODE.match(code), code
        expect(page.locator(f'[data-transfer-id="{transfer_id}"] h2')).to_contain_text(
            "super@zuid.example"
        )

        # The overview lists both administrations with that code, then withdraws the offer.
        page.goto("/settings/migrations")
        outgoing = page.locator('table[data-table="outgoing"]')
        rows = outgoing.locator(f'tr[data-transfer-id="{transfer_id}"]')
        expect(rows).to_have_count(2)
        expect(rows.filter(has_text="Bakkerij De Korrel")).to_have_count(1)
        expect(rows.filter(has_text="Hoveniers Het Anker")).to_have_count(1)
        for i in range(2):
            expect(rows.nth(i).locator("code.transfer-code")).to_have_text(code)
            expect(rows.nth(i).locator("[data-state]")).to_have_attribute("data-state", "offered")

        dialogs: list[str] = []

        def accept(dialog) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        page.once("dialog", accept)
        rows.first.locator("form button[type=submit]").click()
        expect(page.locator(".flash-success")).to_be_visible()
        assert len(dialogs) == 1, dialogs
        page.wait_for_url("**/settings/migrations**")
        rows = page.locator(f'table[data-table="outgoing"] tr[data-transfer-id="{transfer_id}"]')
        expect(rows).to_have_count(2)
        for i in range(2):
            expect(rows.nth(i).locator("[data-state=withdrawn]")).to_have_count(1)
            expect(rows.nth(i).locator("form button[type=submit]")).to_have_count(0)

    db.session.rollback()  # forget cached rows; read what the server committed
    transfer = db.session.get(Transfer, transfer_id)
    assert transfer.state is TransferState.WITHDRAWN
    assert transfer.ended_at is not None
    assert transfer.recipient_emails == ["super@zuid.example"]
    items = db.session.scalars(
        db.select(TransferItem).where(TransferItem.transfer_id == transfer_id)
    ).all()
    assert sorted(i.administration_id for i in items) == sorted(clean_ids)
    assert {i.state for i in items} == {ItemState.WITHDRAWN}
    states = {
        a.id: a.state
        for a in db.session.scalars(
            db.select(Administration).where(Administration.id.in_([*clean_ids, blocked_id]))
        )
    }
    assert states == dict.fromkeys([*clean_ids, blocked_id], AdministrationState.ACTIVE)
