"""Trusting where an offer goes, in headless Chromium: the summary refuses a stranger and
recipients of two offices (nothing is sent); a client who moved Noord → Zuid is offered
back by Zuid and claimed by Noord into the connection it left (a returning client); and
the offering side extends an open offer twice from its page, after which it says why it
cannot any more."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from babel.dates import format_date
from playwright.sync_api import expect
from sqlalchemy import func, select

from app.admin_settings.models import Administration, AdministrationState
from app.db import utcnow
from app.extensions import db
from app.transfers.copying import copy_waiting
from app.transfers.models import Transfer
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.helpers import screenshot_on_failure
from tests.conftest import TEST_PASSWORD
from tests.helpers import accept_all, offer

pytestmark = pytest.mark.browser

CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){4}$")


def log_in(page, email: str) -> None:
    page.goto("/login")
    page.locator('input[name="email"]').fill(email)
    page.locator('input[name="password"]').fill(TEST_PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page.locator("nav.mainnav")).to_be_visible()


def to_the_summary(page, administration_ids: list[int]) -> None:
    """The move-out wizard up to its summary: the checklist, then the administrations."""
    page.goto("/settings/migrations/move")
    boxes = page.locator("ol.checklist input[type=checkbox]")
    expect(boxes).to_have_count(4)
    for i in range(4):
        boxes.nth(i).check()
    page.locator("main form button[type=submit]").click()
    page.wait_for_url("**/settings/migrations/move/select")
    for administration_id in administration_ids:
        page.locator(f"#adm-{administration_id}").check()
    page.locator('form[action$="/move/select"] button[type=submit]').click()
    page.wait_for_url("**/settings/migrations/move/summary")


def noord_and_zuid(build):
    """Noord (premium) with a superuser and Exact Online; Zuid (premium) likewise."""
    noord = build.environment("Kantoor Noord", office_code="NOORD")
    noord_super = build.user(noord, "superuser", email="super@noord.example", name="Sanne Noord")
    noord_connection = build.connection(noord, "exact_online", name="Exact Online")
    zuid = build.environment("Kantoor Zuid", office_code="ZUID")
    zuid_super = build.user(zuid, "superuser", email="super@zuid.example", name="Sem Zuid")
    zuid_connection = build.connection(zuid, "exact_online", name="Exact Online Zuid")
    return noord_super, noord_connection, zuid_super, zuid_connection


def clean_administration(build, connection, name: str, code: str, documents: int = 2):
    administration = build.administration(connection, name=name, code=code)
    for _ in range(documents):
        build.document(administration, status="approved")
    return administration


def transfers() -> int:
    db.session.commit()  # a fresh snapshot: read what the server committed
    return db.session.scalar(select(func.count()).select_from(Transfer))


def test_the_summary_refuses_a_stranger_and_two_offices_and_sends_nothing(build, page, tmp_path):
    noord_super, noord_connection, _zuid_super, _zuid_connection = noord_and_zuid(build)
    west = build.environment("Kantoor West", office_code="WEST")
    build.user(west, "superuser", email="super@west.example", name="Thomas West")
    client = clean_administration(build, noord_connection, "Bakkerij De Korrel", "1001")
    client_id = client.id
    db.session.commit()

    with screenshot_on_failure(page, tmp_path):
        log_in(page, noord_super.email)
        to_the_summary(page, [client_id])

        # A stranger: refused at the first press, with the reason; nothing is sent.
        page.locator("#recipient_emails-0").fill("iemand@extern.example")
        page.locator('input[name="accept_terms"]').check()
        page.locator("#send-offer").click()
        errors = page.locator("ul.errors[role=alert]")
        expect(errors).to_contain_text(
            "“iemand@extern.example” is geen supergebruiker van een kantoor op deze dienst."
        )
        expect(page.locator("#receiving-office-check")).to_have_count(0)
        expect(page.locator("#send-offer")).to_have_text("Controleer het ontvangende kantoor")
        page.locator("#send-offer").click()  # pressing again does not send it either
        expect(errors).to_contain_text("iemand@extern.example")
        assert page.url.endswith("/settings/migrations/move/summary")

        # Superusers of Zuid and of West at once: one offer goes to one office.
        page.locator("#recipient_emails-0").fill("super@zuid.example")
        page.locator('button[name="add_recipient"]').click()
        page.locator("#recipient_emails-1").fill("super@west.example")
        page.locator('input[name="accept_terms"]').check()
        page.locator("#send-offer").click()
        expect(page.locator("ul.errors[role=alert]")).to_contain_text(
            "Deze adressen horen bij verschillende kantoren (Kantoor West, Kantoor Zuid); "
            "één aanbod gaat naar één kantoor."
        )
        expect(page.locator("#receiving-office-check")).to_have_count(0)

        # The overview lists no offer.
        page.goto("/settings/migrations")
        expect(page.locator("#outgoing")).to_contain_text(
            "Je hebt nog geen administraties aangeboden."
        )
        expect(page.locator('table[data-table="outgoing"]')).to_have_count(0)

    assert transfers() == 0
    assert db.session.get(Administration, client_id).state is AdministrationState.ACTIVE


def test_zuid_offers_a_returning_client_back_and_noord_claims_it_into_its_connection(
    browser, live_server, build, page, tmp_path
):
    noord_super, noord_connection, zuid_super, zuid_connection = noord_and_zuid(build)
    client = clean_administration(build, noord_connection, "Dierenkliniek De Hoefslag", "1008", 3)
    client_id, noord_connection_id = client.id, noord_connection.id
    # The client moved Noord → Zuid earlier: offered, claimed and copied.
    moved, moved_code = offer(noord_super, [client])
    accept_all(zuid_super, moved, moved_code, zuid_connection)
    assert copy_waiting() == 1
    arrived_id = db.session.scalars(
        select(Administration.id).where(Administration.connection_id == zuid_connection.id)
    ).one()
    assert db.session.get(Administration, client_id).state is AdministrationState.MIGRATED
    db.session.commit()

    noord_context = browser.new_context(base_url=live_server, locale="nl-NL")
    noord_context.set_default_timeout(TIMEOUT_MS)
    noord_page = noord_context.new_page()
    try:
        with screenshot_on_failure(page, tmp_path):
            # Zuid offers it back to Noord's superuser through the wizard.
            log_in(page, zuid_super.email)
            to_the_summary(page, [arrived_id])
            expect(page.locator('table[data-table="summary"]')).to_contain_text(
                "Dierenkliniek De Hoefslag"
            )
            page.locator("#recipient_emails-0").fill("super@noord.example")
            page.locator('input[name="accept_terms"]').check()
            page.locator("#send-offer").click()
            expect(page.locator("#receiving-office-check")).to_contain_text(
                "Ontvangend kantoor: Kantoor Noord"
            )
            page.locator("#send-offer").click()
            page.wait_for_url(re.compile(r"/settings/migrations/\d+$"))
            code = page.locator("#transfer-code").inner_text().strip()
            assert CODE.match(code), code

        with screenshot_on_failure(noord_page, tmp_path):
            # Noord enters the code; the preview finds no clash with its migrated copy.
            log_in(noord_page, noord_super.email)
            noord_page.goto("/settings/migrations/fetch")
            noord_page.locator("#code").fill(code)
            noord_page.locator(
                'form[action="/settings/migrations/fetch"] button[type=submit]'
            ).click()
            card = noord_page.locator("section.decision")
            expect(card).to_have_count(1)
            expect(card).to_contain_text("Dierenkliniek De Hoefslag")
            expect(card.locator('[data-fact="documents"]')).to_have_text("3")
            expect(card.locator(".flash-error")).to_have_count(0)
            expect(card.locator('input[value="accept"]')).to_be_checked()
            option = card.locator(f'select option[value="{noord_connection_id}"]')
            expect(option).to_be_enabled()
            expect(option).not_to_contain_text("bestaat hier al")
            expect(card.locator("select")).to_have_value(str(noord_connection_id))
            noord_page.locator('input[name="accept_terms"]').check()
            noord_page.locator(
                'form[action="/settings/migrations/claims"] button[type=submit]'
            ).click()

            # The claim page shows the copy waiting, then done once the worker has run.
            noord_page.wait_for_url(re.compile(r".*/settings/migrations/claims/\d+$"))
            row = noord_page.locator('table[data-table="claim-items"] tbody tr')
            expect(row).to_have_count(1)
            expect(row).to_contain_text("Dierenkliniek De Hoefslag")
            expect(row.locator("[data-state]")).to_have_attribute("data-state", "claiming")
            expect(row.locator(".progress")).to_be_visible()
            assert copy_waiting() == 1
            noord_page.reload()
            expect(row.locator("[data-state]")).to_have_attribute("data-state", "migrated")
            expect(noord_page.locator("#claim")).to_have_attribute("data-finished", "true")
            expect(row.locator(".progress")).to_have_attribute("aria-valuenow", "100")
            expect(row.locator('a[href*="/settings/administrations/"]')).to_be_visible()

            # The overview lists it among the received ones.
            noord_page.goto("/settings/migrations")
            incoming = noord_page.locator('table[data-table="incoming"] tbody tr')
            expect(incoming.filter(has_text="Dierenkliniek De Hoefslag")).to_have_count(1)
            expect(incoming.locator("[data-state]")).to_have_attribute("data-state", "migrated")
    finally:
        noord_context.close()

    db.session.commit()
    in_noord = db.session.scalars(
        select(Administration.state).where(
            Administration.connection_id == noord_connection_id, Administration.code == "1008"
        )
    ).all()
    assert sorted(s.value for s in in_noord) == ["active", "migrated"]
    assert db.session.get(Administration, arrived_id).state is AdministrationState.MIGRATED


def shown_day(moment) -> str:
    """The day as the offer's page writes it (Dutch, the office's time zone)."""
    from zoneinfo import ZoneInfo

    from flask import current_app

    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    return format_date(moment.astimezone(zone), "d MMM y", locale="nl")


def test_the_offering_side_extends_an_open_offer_twice_then_is_told_why_no_more(
    build, page, tmp_path
):
    noord_super, noord_connection, _zuid_super, _zuid_connection = noord_and_zuid(build)
    client = clean_administration(build, noord_connection, "Bakkerij De Korrel", "1001")
    # Offered five days ago: it runs for ten more days, so the extension shows.
    transfer, _code = offer(noord_super, [client], now=utcnow() - timedelta(days=5))
    transfer_id, first_expiry = transfer.id, transfer.expires_at
    db.session.commit()

    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    with screenshot_on_failure(page, tmp_path):
        log_in(page, noord_super.email)
        page.goto(f"/settings/migrations/{transfer_id}")
        facts = page.locator(f'[data-transfer-id="{transfer_id}"] dl.facts')
        expect(facts).to_contain_text(shown_day(first_expiry))
        expect(page.locator("#extend")).to_have_text("Verleng met 15 dagen")

        for n in (1, 2):
            page.locator("#extend").click()
            success = page.locator(".flash-success")
            expect(success).to_contain_text("Het aanbod is verlengd tot")
            expect(success).to_contain_text("de ontvangers zijn op de hoogte gebracht")
            fifteen_days = shown_day(utcnow() + timedelta(days=15))
            expect(success).to_contain_text(fifteen_days)
            expect(facts).to_contain_text(fifteen_days)
            expect(facts).to_contain_text(f"{n} van 2 keer verlengd")
            assert len(dialogs) == n, dialogs
            assert "15 dagen" in dialogs[-1], dialogs
            if n == 1:
                expect(page.locator("#extend")).to_be_visible()

        # Both extensions used: no button any more, and the page says why.
        expect(page.locator("#extend")).to_have_count(0)
        expect(page.locator("#extend-used-up")).to_have_text(
            "Dit aanbod is al 2 keer verlengd; doe een nieuw aanbod."
        )
        expect(page.locator("#resend")).to_be_visible()  # the offer itself still works

    db.session.commit()
    extended = db.session.get(Transfer, transfer_id)
    assert extended.extensions == 2
    assert abs(extended.expires_at - (utcnow() + timedelta(days=15))) < timedelta(minutes=5)
