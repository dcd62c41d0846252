"""The mail relay against SMTP servers that crawl, hang and refuse, with two relays at
once (threads, each with its own application context and database session):

- a crawling server (2.5 s per command): every mail goes out exactly once, counted by
  envelopes per Message-ID at the server;
- a hanging server (accepts the connection, never answers): offers are made in under a
  second meanwhile and no database session idles in a transaction (PostgreSQL);
- a server that refuses one poison address (550 on RCPT), and an address that cannot be
  encoded: those fail alone, at once, and every other mail goes out once;
- an address with a non-ASCII local part is refused at input unless the server is said
  to announce SMTPUTF8.

Bounded in seconds: every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from email import message_from_bytes
from email import policy as email_policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

from app.db import utcnow
from app.errors import ValidationFailed
from app.extensions import db
from app.outbox import OutboxMessage, OutboxState, relay_outbox
from app.transfers import offers
from app.web import unit_of_work
from tests.helpers import ensure_receivers, fresh
from tests.reliability.processes import free_port, wait_until

CRAWL = 2.5  # seconds per SMTP command of the crawling server


class Handler:
    """Counts envelopes per Message-ID; optionally slow on every command; refuses
    ``refuse`` addresses with 550."""

    def __init__(self, delay: float = 0.0, refuse: tuple[str, ...] = ()) -> None:
        self.delay, self.refuse = delay, refuse
        self.envelopes: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        await asyncio.sleep(self.delay)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        await asyncio.sleep(self.delay)
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.content, policy=email_policy.default)
        with self.lock:
            self.envelopes[message["Message-ID"]] += 1
        return "250 Message accepted for delivery"


class HangingServer:
    """Accepts connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def stop(self) -> None:
        self.sock.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def mail_settings(app, monkeypatch):
    def use(port: int, timeout: int) -> None:
        monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
        monkeypatch.setitem(app.config, "MAIL_PORT", port)
        monkeypatch.setitem(app.config, "MAIL_TIMEOUT", timeout)
        monkeypatch.setitem(app.config, "MAIL_LEASE_SECONDS", 3)

    return use


@pytest.fixture
def smtp(mail_settings):
    controllers = []

    def start(handler: Handler, timeout: int = 2) -> Handler:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        mail_settings(port, timeout)
        return handler

    yield start
    for controller in controllers:
        controller.stop()


def queue(to: str) -> str:
    message = OutboxMessage(
        message_id=f"<{uuid.uuid4().hex}@tests.example>",
        kind="test",
        to_email=to,
        language="nl",
        subject=f"Bericht aan {to}",
        body_text="Hallo.",
        body_html="<p>Hallo.</p>",
        next_attempt_at=utcnow() - timedelta(seconds=1),
    )
    db.session.add(message)
    db.session.commit()
    return message.message_id


def states() -> dict[str, OutboxMessage]:
    fresh()
    found = {m.message_id: m for m in db.session.query(OutboxMessage).all()}
    fresh()
    return found


class Relays:
    """``n`` relay threads, each looping ``relay_outbox`` in its own app context until
    stopped or nothing is due."""

    def __init__(self, app, n: int) -> None:
        self.app = app
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]

    def _run(self) -> None:
        with self.app.app_context():
            try:
                while not self.stop.is_set():
                    relay_outbox(limit=100)
                    db.session.remove()
                    self.stop.wait(0.2)
            except BaseException as error:  # noqa: BLE001 - reported by the test
                self.errors.append(error)
            finally:
                db.session.remove()

    def __enter__(self) -> Relays:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self.threads), "a relay did not stop"
        assert self.errors == [], self.errors


def idle_in_transaction() -> int:
    with db.engine.connect() as other:
        found = other.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
            )
        )
        other.rollback()
    return found


def test_two_relays_against_a_crawling_server_send_every_mail_exactly_once(app, smtp):
    handler = smtp(Handler(delay=CRAWL), timeout=int(CRAWL * 2))
    ids = [queue(f"ontvanger{n}@zuid.example") for n in range(6)]
    started = time.monotonic()
    with Relays(app, 2):
        wait_until(
            lambda: all(m.state is OutboxState.SENT for m in states().values()),
            timeout=60,
            interval=0.5,
            what="every mail sent",
        )
    took = time.monotonic() - started
    assert {i: handler.envelopes[i] for i in ids} == {i: 1 for i in ids}
    assert sum(handler.envelopes.values()) == len(ids)
    print(f"\ncrawl: {len(ids)} mails, {sum(handler.envelopes.values())} envelopes, {took:.1f} s")


def test_a_hanging_server_holds_nothing_open_and_offers_answer_at_once(
    app, mail_settings, build, office
):
    server = HangingServer()
    try:
        mail_settings(server.port, 2)
        for n in range(4):
            queue(f"ontvanger{n}@zuid.example")
        with Relays(app, 2):
            wait_until(lambda: len(server.accepted) >= 2, timeout=10, what="relays connected")
            # While both relays wait on the server: an offer (which queues mail) is quick.
            source = build.administration(office.connection, code="5501")
            ensure_receivers(["super@zuid.example"])
            fresh()
            asked = time.monotonic()
            with unit_of_work():
                offers.create_offer(
                    office.superuser,
                    administration_ids=[source.id],
                    recipient_emails=["super@zuid.example"],
                    checklist_confirmed=True,
                    accept_terms=True,
                    origin="tests",
                )
            offer_seconds = time.monotonic() - asked
            idle = idle_in_transaction() if db.engine.dialect.name == "postgresql" else 0
            fresh()
            time.sleep(2.5)  # past one SMTP timeout: the first attempts have failed
        found = states()
        assert offer_seconds < 1, offer_seconds
        assert idle == 0, f"{idle} sessions idle in a transaction while SMTP hangs"
        assert all(m.state is not OutboxState.SENT for m in found.values())
        attempted = [m for m in found.values() if m.attempts]
        assert attempted, "the relays tried"
        assert all(m.state is OutboxState.PENDING for m in attempted), [
            (m.state, m.last_error) for m in attempted
        ]
        assert all(m.lease_owner is None for m in attempted)
        print(f"\nhang: offer in {offer_seconds:.3f} s, {idle} idle in transaction")
    finally:
        server.stop()


def test_a_poison_recipient_fails_alone_and_the_others_go_out_once(app, smtp):
    handler = smtp(Handler(refuse=("onbekend@zuid.example",)))
    poison = [queue("onbekend@zuid.example") for _ in range(10)]
    unencodable = [queue("ü@zuid.example"), queue("e\u0301@zuid.example")]
    good = [queue(f"ontvanger{n}@zuid.example") for n in range(10)]
    with Relays(app, 2):
        wait_until(
            lambda: all(
                m.state in (OutboxState.SENT, OutboxState.FAILED) for m in states().values()
            ),
            timeout=30,
            interval=0.3,
            what="every mail sent or failed",
        )
    found = states()
    assert {i: handler.envelopes[i] for i in good} == {i: 1 for i in good}
    for message_id in poison + unencodable:
        message = found[message_id]
        assert message.state is OutboxState.FAILED, (message.to_email, message.last_error)
        assert message.attempts == 1, "a permanent error is not retried"
        assert handler.envelopes[message_id] == 0
    print(
        f"\npoison: {len(good)} good mails sent once each, "
        f"{len(poison) + len(unencodable)} failed alone"
    )


def _offer_to(office, build, code: str, email: str):
    source = build.administration(office.connection, code=code)
    fresh()
    return offers.validate_offer(
        office.superuser,
        administration_ids=[source.id],
        recipient_emails=[email],
        checklist_confirmed=True,
        accept_terms=True,
    )


@pytest.mark.parametrize("email", ["ü@zuid.example", "e\u0301@zuid.example"])
def test_a_non_ascii_local_part_is_refused_at_input(app, build, office, email):
    with pytest.raises(ValidationFailed) as refused:
        _offer_to(office, build, "5601", email)
    [error] = refused.value.errors
    assert error.field == "recipient_emails"
    assert "cannot receive mail from this service" in error.message
    fresh()


def test_a_non_ascii_local_part_is_accepted_when_the_server_speaks_smtputf8(
    app, build, office, monkeypatch
):
    monkeypatch.setitem(app.config, "MAIL_SMTPUTF8", True)
    ensure_receivers(["ü@zuid.example"])  # a superuser of Kantoor Zuid
    _administrations, recipients, receiving = _offer_to(office, build, "5602", "ü@zuid.example")
    assert len(recipients) == 1
    assert receiving.name == "Kantoor Zuid"
    fresh()
