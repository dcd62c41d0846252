"""Settings › Administraties end to end in headless Chromium: log in, read the
counts, approve one document from its row and see the counts change."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from app.admin_settings.models import Document, DocumentStatus
from app.extensions import db
from tests.browser.helpers import screenshot_on_failure
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser


def test_superuser_approves_a_document_and_the_counts_follow(build, page, tmp_path):
    env = build.environment("Kantoor Noord", office_code="NOORD")
    superuser = build.user(env, "superuser", email="super@noord.example", name="Sanne Noord")
    connection = build.connection(env)
    administration = build.administration(connection, name="Bakkerij De Korrel")
    first, chosen, last = (build.document(administration).id for _ in range(3))
    administration_id, superuser_id = administration.id, superuser.id
    # End this session's transaction so no snapshot hides the server's writes.
    db.session.commit()

    row = f'tr[data-administration-id="{administration_id}"]'
    list_link = 'nav.mainnav a[href="/settings/administrations"]'
    started = time.perf_counter()
    with screenshot_on_failure(page, tmp_path):
        page.goto("/login")
        page.locator('input[name="email"]').fill("super@noord.example")
        page.locator('input[name="password"]').fill(TEST_PASSWORD)
        page.locator("main form button[type=submit]").click()
        expect(page.locator(list_link)).to_be_visible()

        with page.expect_response("**/settings/administrations") as listing:
            page.locator(list_link).click()
        assert listing.value.status == 200
        expect(page.locator(list_link)).to_have_attribute("aria-current", "page")
        expect(page.locator(f'{row} td[data-count="pending"]')).to_have_text("3")
        expect(page.locator(f'{row} td[data-count="approved"]')).to_have_text("0")

        page.locator(f'{row} a[href="/settings/administrations/{administration_id}"]').click()
        page.wait_for_url(f"**/settings/administrations/{administration_id}")
        expect(page.locator("h1")).to_contain_text("Bakkerij De Korrel")

        document_row = page.locator(f'tr[data-document-id="{chosen}"]')
        with page.expect_response(
            lambda r: r.request.method == "POST" and "/documents/decide" in r.url
        ) as decision:
            document_row.locator('button[data-action="approve"]').click()
        assert decision.value.status == 302  # redirected back to the administration
        expect(page.locator(".flash-success")).to_be_visible()
        expect(document_row.locator(".badge.status-approved")).to_be_visible()
        expect(document_row.locator('button[data-action="approve"]')).to_have_count(0)
        expect(document_row).to_contain_text("Sanne Noord")
        for other in (first, last):
            expect(
                page.locator(f'tr[data-document-id="{other}"] .badge.status-pending')
            ).to_be_visible()

        page.locator('.breadcrumb a[href="/settings/administrations"]').click()
        page.wait_for_url("**/settings/administrations")
        expect(page.locator(f'{row} td[data-count="pending"]')).to_have_text("2")
        expect(page.locator(f'{row} td[data-count="approved"]')).to_have_text("1")
        expect(page.locator(f'{row} td[data-count="rejected"]')).to_have_text("0")
    print(f"browser steps took {time.perf_counter() - started:.2f}s")

    db.session.rollback()  # forget cached rows; read what the server committed
    statuses = dict(
        db.session.execute(
            db.select(Document.id, Document.status).where(
                Document.administration_id == administration_id
            )
        ).all()
    )
    assert statuses == {
        first: DocumentStatus.PENDING,
        chosen: DocumentStatus.APPROVED,
        last: DocumentStatus.PENDING,
    }
    approved = db.session.get(Document, chosen)
    assert approved.decided_by_id == superuser_id
    assert approved.decided_by_name == "Sanne Noord"
    assert approved.decided_at is not None
