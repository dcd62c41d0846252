"""The outbox and its relay against a real SMTP server (aiosmtpd on 127.0.0.1): what the
offer mails carry, the claim link, never sending twice, outages with back-off, two
relays at once, and the language of each mail."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter
from datetime import timedelta
from email import message_from_bytes, policy
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import time_machine
from aiosmtpd.controller import Controller
from babel.dates import format_datetime
from flask import current_app
from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.outbox import OutboxMessage, OutboxState, backoff, filled_in, relay_outbox
from app.transfers import offers
from app.transfers.models import Transfer
from tests.helpers import ensure_receivers

API = "/api/v1/transfers"
FETCH = "/settings/migrations/fetch"


# --------------------------------------------------------------------------- the SMTP server


class Inbox:
    """An aiosmtpd handler that keeps every envelope it accepts."""

    def __init__(self) -> None:
        self.envelopes = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    @property
    def messages(self):
        with self._lock:
            envelopes = list(self.envelopes)
        return [message_from_bytes(e.content, policy=policy.default) for e in envelopes]

    def to(self, address: str) -> list:
        return [m for m in self.messages if m["To"] == address]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    """A real SMTP server on a free local port that a test can stop and start again."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp(app, monkeypatch):
    """A running SMTP server the app's relay is configured to use."""
    server = SmtpServer()
    server.start()
    monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(app.config, "MAIL_PORT", server.port)
    yield server
    server.stop()


# --------------------------------------------------------------------------- helpers


def clean_administration(build, connection, name=None):
    administration = build.administration(connection, name=name)
    build.document(administration, "approved")
    return administration


def offer(actor, administrations, recipients):
    ensure_receivers(recipients)
    transfer, code = offers.create_offer(
        actor,
        administration_ids=[a.id for a in administrations],
        recipient_emails=list(recipients),
        checklist_confirmed=True,
        accept_terms=True,
        origin="tests",
    )
    db.session.commit()
    return transfer, code


def outbox() -> list[OutboxMessage]:
    db.session.commit()  # a fresh read: end the test session's transaction
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def states() -> list[OutboxState]:
    """The outbox's states, read without keeping a transaction open afterwards."""
    result = [m.state for m in outbox()]
    db.session.commit()
    return result


def text_part(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_part(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def long_date(moment, language: str) -> str:
    """The expiry as the mail writes it: day, month spelled out, year, time and zone in
    the office's time zone ("16 December 2026, 08:55 CET", "16 december 2026, …")."""
    local = moment.astimezone(ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"]))
    shown = format_datetime(local, "d MMMM y, HH:mm", locale=language)
    return f"{shown} {local.tzname()}"


def claim_link(text: str) -> str | None:
    match = re.search(r"(https?://\S+/settings/migrations/fetch\?token=\S+)", text)
    return match.group(1) if match else None


def code_field(html: str) -> str | None:
    match = re.search(r'<input id="code" name="code" value="([^"]*)"', html)
    assert match, "the fetch page has a code field"
    return match.group(1)


@pytest.fixture
def offered(build, office, other_office):
    """Two administrations offered to Zuid's superuser and one more address."""
    first = clean_administration(build, office.connection, name="Bakkerij De Korenschoof")
    second = clean_administration(build, office.connection, name="Van Dijk Installatietechniek")
    recipients = [other_office.superuser.email, "ontvanger@zuid.example"]
    transfer, code = offer(office.superuser, [first, second], recipients)
    return transfer, code, recipients


# --------------------------------------------------------------------------- delivering


def test_the_relay_sends_one_mail_per_recipient_and_a_copy_to_the_requester(smtp, office, offered):
    transfer, _code, recipients = offered

    sent = relay_outbox()

    assert sent == 3
    assert sorted(rcpt for e in smtp.inbox.envelopes for rcpt in e.rcpt_tos) == sorted(
        [*recipients, office.superuser.email]
    )
    assert all(len(e.rcpt_tos) == 1 for e in smtp.inbox.envelopes)
    messages = outbox()
    assert [m.state for m in messages] == [OutboxState.SENT] * 3
    assert all(m.sent_at is not None and m.attempts == 1 for m in messages)
    assert {(m.ref_type, m.ref_id) for m in messages} == {("transfer", transfer.id)}


def test_each_recipient_mail_carries_the_code_names_expiry_and_a_claim_link(
    smtp, offered, other_office
):
    transfer, code, recipients = offered

    relay_outbox()

    rows = {m.to_email: m for m in outbox()}
    for address in recipients:
        [message] = smtp.inbox.to(address)
        text, html = text_part(message), html_part(message)
        assert code in text and code in html
        assert "Bakkerij De Korenschoof" in text and "Van Dijk Installatietechniek" in text
        assert long_date(transfer.expires_at, rows[address].language) in text
        link = claim_link(text)
        assert link, f"a claim link in the mail to {address}"
        assert urlsplit(link).path == FETCH
        assert message["Message-ID"] == rows[address].message_id
        assert message["Subject"] == rows[address].subject


def test_the_requesters_copy_carries_the_code_names_and_expiry(smtp, office, offered):
    transfer, code, _recipients = offered

    relay_outbox()

    [copy] = smtp.inbox.to(office.superuser.email)
    text = text_part(copy)
    assert code in text
    assert "Bakkerij De Korenschoof" in text and "Van Dijk Installatietechniek" in text
    [row] = [m for m in outbox() if m.kind == "transfer_offered_copy"]
    assert long_date(transfer.expires_at, row.language) in text
    assert "/settings/migrations" in text


def test_a_second_relay_sends_nothing_more(smtp, offered):
    assert relay_outbox() == 3

    assert relay_outbox() == 0
    assert relay_outbox(now=utcnow() + timedelta(days=1)) == 0
    assert len(smtp.inbox.envelopes) == 3


# --------------------------------------------------------------------------- the claim link


def _link_to(address: str) -> str:
    [row] = [m for m in outbox() if m.to_email == address and m.kind == "transfer_offered"]
    link = claim_link(filled_in(row)[0])  # as it is sent
    assert link, "the mail has a claim link"
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def test_the_claim_link_opens_the_fetch_page_with_the_code_filled_in(login, offered, other_office):
    _transfer, code, _recipients = offered
    client = login(other_office.superuser)

    response = client.get_page(_link_to(other_office.superuser.email))

    assert response.status_code == 200
    assert code_field(response.get_data(as_text=True)) == code


def test_a_tampered_claim_link_fills_in_no_code(login, offered, other_office):
    _transfer, code, _recipients = offered
    other_office.superuser.language = "en"
    db.session.commit()
    link = _link_to(other_office.superuser.email)
    path, token = link.split("?token=")
    tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    client = login(other_office.superuser)

    response = client.get_page(f"{path}?token={tampered}")

    html = response.get_data(as_text=True)
    assert code_field(html) == ""
    assert code not in html
    assert "This link has expired or is not valid." in html


def test_a_claim_link_opened_after_the_offer_expired_fills_in_no_code(login, offered, other_office):
    transfer, code, _recipients = offered
    link = _link_to(other_office.superuser.email)

    with time_machine.travel(transfer.expires_at + timedelta(seconds=1), tick=False):
        html = login(other_office.superuser).get_page(link).get_data(as_text=True)

    assert code_field(html) == ""
    assert code not in html


# --------------------------------------------------------------------------- outages


def test_when_the_mail_server_is_down_the_offer_succeeds_and_the_mail_waits_with_back_off(
    smtp, api_client, build, office, other_office
):
    smtp.stop()
    administration = clean_administration(build, office.connection)
    client, headers = api_client(office.superuser)

    response = client.post(
        API,
        json={
            "administration_ids": [administration.id],
            "recipient_emails": [other_office.superuser.email],
            "checklist_confirmed": True,
            "accept_terms": True,
        },
        headers=headers,
    )
    assert response.status_code == 201
    before = utcnow()
    sent = relay_outbox()

    assert sent == 0
    messages = outbox()
    assert len(messages) == 2
    for message in messages:
        assert message.state is OutboxState.PENDING
        assert message.attempts == 1
        assert message.next_attempt_at > before
        assert message.next_attempt_at >= before + backoff(1) - timedelta(seconds=1)
        assert message.last_error
    assert smtp.inbox.envelopes == []


def test_a_waiting_mail_is_sent_exactly_once_when_the_server_is_back_and_its_turn_has_come(
    smtp, offered
):
    smtp.stop()
    assert relay_outbox() == 0
    smtp.start()

    assert relay_outbox() == 0, "not yet: the back-off has not passed"
    later = utcnow() + backoff(1) + timedelta(seconds=1)
    assert relay_outbox(now=later) == 3
    assert relay_outbox(now=later + timedelta(hours=2)) == 0

    assert len(smtp.inbox.envelopes) == 3
    assert Counter(m["Message-ID"] for m in smtp.inbox.messages).most_common(1)[0][1] == 1
    assert all(m.state is OutboxState.SENT and m.attempts == 2 for m in outbox())


def test_two_relays_at_once_send_every_message_exactly_once(app, smtp, build, office, other_office):
    for i in range(3):
        administration = clean_administration(build, office.connection, name=f"Klant {i}")
        offer(
            office.superuser, [administration], [other_office.superuser.email, f"r{i}@zuid.example"]
        )
    expected = {m.message_id for m in outbox()}
    assert len(expected) == 9
    db.session.commit()
    start = threading.Barrier(2)
    results, errors = [], []

    def relay():
        with app.app_context():
            try:
                start.wait()
                results.append(relay_outbox())
            except Exception as error:  # reported below, in the test's thread
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=relay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sum(results) == 9
    delivered = Counter(m["Message-ID"] for m in smtp.inbox.messages)
    assert set(delivered) == expected
    assert set(delivered.values()) == {1}
    assert all(m.state is OutboxState.SENT and m.attempts == 1 for m in outbox())


def test_the_relay_kicked_after_a_request_delivers_the_offer_mails(
    app, smtp, monkeypatch, api_client, build, office, other_office
):
    monkeypatch.setitem(app.config, "MAIL_RELAY_AFTER_REQUEST", True)
    administration = clean_administration(build, office.connection)
    client, headers = api_client(office.superuser)

    response = client.post(
        API,
        json={
            "administration_ids": [administration.id],
            "recipient_emails": [other_office.superuser.email],
            "checklist_confirmed": True,
            "accept_terms": True,
        },
        headers=headers,
    )

    assert response.status_code == 201
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and states() != [OutboxState.SENT] * 2:
        time.sleep(0.05)
    assert states() == [OutboxState.SENT, OutboxState.SENT]
    assert len(smtp.inbox.envelopes) == 2


# --------------------------------------------------------------------------- languages


def test_each_mail_is_written_in_its_recipients_language(build, office, other_office):
    colleague = build.user(other_office.environment, "superuser", email="tweede@zuid.example")
    other_office.superuser.language = "en"
    colleague.language = "nl"
    db.session.commit()
    administration = clean_administration(build, office.connection)

    offer(office.superuser, [administration], [other_office.superuser.email, colleague.email])

    rows = {m.to_email: m for m in outbox() if m.kind == "transfer_offered"}
    english, dutch = rows[other_office.superuser.email], rows[colleague.email]
    assert (english.language, dutch.language) == ("en", "nl")
    assert english.subject == "Kantoor Noord offers you 1 administration"
    assert dutch.subject == "Kantoor Noord biedt je 1 administratie aan"
    assert "Transfer code:" in english.body_text
    assert dutch.subject != english.subject, "the Dutch subject is translated"
    assert "Transfer code:" not in dutch.body_text, "the Dutch body is translated"


def test_an_address_of_no_user_gets_the_mail_in_dutch(build, office):
    administration = clean_administration(build, office.connection)

    offer(office.superuser, [administration], ["onbekend@zuid.example"])

    [row] = [m for m in outbox() if m.kind == "transfer_offered"]
    assert row.language == current_app.config["BABEL_DEFAULT_LOCALE"] == "nl"


def test_the_expiry_in_the_mail_is_written_in_the_mails_language(build, office, other_office):
    other_office.superuser.language = "en"
    db.session.commit()
    administration = clean_administration(build, office.connection)

    transfer, _code = offer(
        office.superuser, [administration], [other_office.superuser.email, "nl@zuid.example"]
    )

    rows = {m.to_email: m for m in outbox() if m.kind == "transfer_offered"}
    assert long_date(transfer.expires_at, "en") in rows[other_office.superuser.email].body_text
    assert long_date(transfer.expires_at, "nl") in rows["nl@zuid.example"].body_text
    assert db.session.get(Transfer, transfer.id).expires_at == transfer.expires_at
