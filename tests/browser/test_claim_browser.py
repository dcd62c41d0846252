"""Claiming administrations end to end in headless Chromium: Zuid's superuser reads the
transfer code in the offer mail, types it (lower case, with spaces), accepts one
administration and rejects the other, and follows the copy live while a worker thread
copies in the background; then opens the copied administration and sees its documents."""

from __future__ import annotations

import re
import threading
import time

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from app.admin_settings.models import Administration, AdministrationState, Document
from app.extensions import db
from app.outbox import OutboxMessage, filled_in
from app.transfers import offers
from app.transfers.copying import copy_waiting
from app.transfers.models import Claim, ItemState, Transfer, TransferItem, TransferState
from tests.browser.helpers import screenshot_on_failure
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser

# Five groups of five of Crockford's base32 (no I, L, O, U), as the offer mail shows it.
CODE_IN_MAIL = re.compile(
    r"(?<![\w-])([0-9A-HJKMNP-TV-Z]{5}(?:-[0-9A-HJKMNP-TV-Z]{5}){4})(?![\w-])"
)
WORKER_DELAY_SECONDS = 1.5


class Worker(threading.Thread):
    """The scheduler's copy job, once, in the background after a short delay."""

    def __init__(self, app) -> None:
        super().__init__(name="copy-worker", daemon=True)
        self.app = app
        self.copied: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        time.sleep(WORKER_DELAY_SECONDS)
        try:
            with self.app.app_context():
                self.copied = copy_waiting()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error


def code_from_mailbox(to: str) -> str:
    """The transfer code as the recipient reads it in the offer mail."""
    message = db.session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.to_email == to, OutboxMessage.kind == "transfer_offered"
        )
    ).one()
    body, _html = filled_in(message)  # the mail as it is sent
    codes = set(CODE_IN_MAIL.findall(body))
    assert len(codes) == 1, f"one code expected in the mail, found {codes}:\n{body}"
    return codes.pop()


def test_superuser_claims_with_the_mailed_code_and_follows_the_copy(app, build, page, tmp_path):
    noord = build.environment("Kantoor Noord", office_code="NOORD")
    noord_super = build.user(noord, "superuser", email="super@noord.example", name="Sanne Noord")
    noord_connection = build.connection(noord)
    accepted = build.administration(noord_connection, name="Bakkerij De Korrel", code="1001")
    rejected = build.administration(noord_connection, name="Hoveniers Het Anker", code="1002")
    for administration, documents in ((accepted, 3), (rejected, 2)):
        for _ in range(documents):
            build.document(administration, status="approved")
    zuid = build.environment("Kantoor Zuid", plan="premium", office_code="ZUID")
    build.user(zuid, "superuser", email="super@zuid.example", name="Sem Zuid")
    zuid_connection = build.connection(zuid, "exact_online", name="Exact Online Zuid")

    transfer, _code = offers.create_offer(
        noord_super,
        administration_ids=[accepted.id, rejected.id],
        recipient_emails=["super@zuid.example"],
        checklist_confirmed=True,
        accept_terms=True,
        origin="tests",
    )
    db.session.commit()
    transfer_id = transfer.id
    items = {i.administration_id: i.id for i in transfer.items}
    accepted_item, rejected_item = items[accepted.id], items[rejected.id]
    accepted_id, rejected_id = accepted.id, rejected.id
    zuid_connection_id, zuid_id = zuid_connection.id, zuid.id
    typed = code_from_mailbox("super@zuid.example").lower().replace("-", " ")
    # End this session's transaction so no snapshot hides the server's writes.
    db.session.commit()

    progress_polls: list[str] = []
    page.on("request", lambda r: progress_polls.append(r.url) if "/progress" in r.url else None)
    worker = Worker(app)
    with screenshot_on_failure(page, tmp_path):
        page.goto("/login")
        page.locator('input[name="email"]').fill("super@zuid.example")
        page.locator('input[name="password"]').fill(TEST_PASSWORD)
        page.locator("main form button[type=submit]").click()
        expect(page.locator("nav.mainnav")).to_be_visible()

        page.goto("/settings/migrations/actions")
        page.locator('main a[href="/settings/migrations/fetch"]').click()
        page.wait_for_url("**/settings/migrations/fetch")
        page.locator("#code").fill(typed)
        page.locator('form[action="/settings/migrations/fetch"] button[type=submit]').click()

        # The preview: what will arrive, and a decision per administration.
        accept_card = page.locator(f'section.decision[data-item-id="{accepted_item}"]')
        reject_card = page.locator(f'section.decision[data-item-id="{rejected_item}"]')
        expect(accept_card).to_contain_text("Bakkerij De Korrel")
        expect(accept_card.locator('[data-fact="documents"]')).to_have_text("3")
        expect(reject_card.locator('[data-fact="documents"]')).to_have_text("2")
        accept_card.locator(f'input[name="action-{accepted_item}"][value="accept"]').check()
        expect(accept_card.locator(f'select[name="connection-{accepted_item}"]')).to_have_value(
            str(zuid_connection_id)
        )
        reject_card.locator(f'input[name="action-{rejected_item}"][value="reject"]').check()
        reject_card.locator(f'textarea[name="message-{rejected_item}"]').fill(
            "Deze klant blijft bij ons."
        )
        page.locator('input[name="accept_terms"]').check()
        page.locator('form[action="/settings/migrations/claims"] button[type=submit]').click()

        # The claim page: the accepted administration waits for the worker.
        page.wait_for_url(re.compile(r".*/settings/migrations/claims/\d+$"))
        claim_id = int(page.url.rsplit("/", 1)[1])
        accept_row = page.locator(f'tr[data-item-id="{accepted_item}"]')
        reject_row = page.locator(f'tr[data-item-id="{rejected_item}"]')
        expect(accept_row.locator("[data-state]")).to_have_attribute("data-state", "claiming")
        expect(reject_row.locator("[data-state]")).to_have_attribute("data-state", "rejected")
        expect(reject_row).to_contain_text("Deze klant blijft bij ons.")
        expect(page.locator("#claim .downloads")).to_be_hidden()

        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), "the copy did not finish within a minute"
        if worker.error or worker.copied != 1:
            db.session.commit()
            item = db.session.get(TransferItem, accepted_item)
            raise AssertionError(
                f"the worker copied {worker.copied} item(s) (error: {worker.error!r}); "
                f"the item is {item.state.value}: {item.last_error}"
            )

        # Without a manual reload: the page polls, shows 100 % and reloads itself.
        expect(accept_row.locator('[data-state="migrated"]')).to_be_visible()
        expect(page.locator("#claim .downloads")).to_be_visible()
        expect(page.locator("#claim")).to_have_attribute("data-finished", "true")
        open_link = accept_row.locator('a[href*="/settings/administrations/"]')
        expect(open_link).to_be_visible()  # rendered by the server after the self-reload
        expect(accept_row.locator(".progress")).to_have_attribute("aria-valuenow", "100")
        assert progress_polls, "the claim page never polled its progress"

        open_link.click()
        page.wait_for_url(re.compile(r".*/settings/administrations/\d+$"))
        target_id = int(page.url.rsplit("/", 1)[1])
        expect(page.locator("h1")).to_contain_text("Bakkerij De Korrel")
        expect(page.locator("tr[data-document-id]")).to_have_count(3)

    # End the test session's transaction (an old SQLite snapshot) to read what was written.
    db.session.commit()
    assert target_id != accepted_id
    target = db.session.get(Administration, target_id)
    assert target.environment_id == zuid_id and target.connection_id == zuid_connection_id
    assert target.code == "1001" and target.state is AdministrationState.ACTIVE
    copied_from = set(
        db.session.scalars(
            select(Document.source_document_id).where(Document.administration_id == target_id)
        )
    )
    source_documents = set(
        db.session.scalars(select(Document.id).where(Document.administration_id == accepted_id))
    )
    assert copied_from == source_documents and len(source_documents) == 3
    assert db.session.get(Administration, accepted_id).state is AdministrationState.MIGRATED
    assert db.session.get(Administration, rejected_id).state is AdministrationState.ACTIVE
    assert (
        db.session.scalar(
            select(func.count()).select_from(Document).where(Document.environment_id == zuid_id)
        )
        == 3
    )
    item = db.session.get(TransferItem, accepted_item)
    assert item.state is ItemState.MIGRATED and item.target_administration_id == target_id
    assert item.documents_copied == item.documents_total == 3
    other = db.session.get(TransferItem, rejected_item)
    assert other.state is ItemState.REJECTED
    assert other.reject_message == "Deze klant blijft bij ons."
    assert db.session.get(Transfer, transfer_id).state is TransferState.COMPLETED
    claim = db.session.get(Claim, claim_id)
    assert claim.transfer_id == transfer_id and claim.target_environment_id == zuid_id
