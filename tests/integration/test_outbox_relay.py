"""The outbox relay (app.outbox.relay_outbox) against a real SMTP server (aiosmtpd on
127.0.0.1) that can be slow or refuse an address: each message's lease starts when its
own send starts, a refused address fails alone and at once, the secrets of a mail are
filled in by the resolver registered for its ``ref`` type as it is sent, and nothing
of the database is held while the SMTP server takes its time."""

from __future__ import annotations

import asyncio
import socket
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from email import policy as email_policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select, text

from app.audit import AuditEvent
from app.db import utcnow
from app.extensions import db
from app.outbox import OutboxMessage, OutboxState, register_secrets, relay_outbox
from tests.helpers import count, fresh

DELAY = 0.4  # seconds the slow server takes to accept each message


def on_postgresql() -> bool:
    return db.engine.dialect.name == "postgresql"


# --------------------------------------------------------------------------- the SMTP server


@dataclass
class Handler:
    """An aiosmtpd handler: accepts after ``delay`` seconds, refuses the addresses in
    ``refuse`` with 550, and runs ``probe(message)`` while each message is delivered
    (that is: while the relay is in the middle of its SMTP conversation)."""

    delay: float = 0.0
    refuse: tuple[str, ...] = ()
    probe: object = None
    messages: list = field(default_factory=list)
    observations: list = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.content, policy=email_policy.default)
        if self.probe is not None:
            try:
                self.observations.append(self.probe(message))
            except Exception as error:  # noqa: BLE001 - reported to the test
                self.observations.append(error)
        self.messages.append(message)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp(app, monkeypatch):
    """``smtp(handler)`` starts a server with ``handler`` the relay is configured to use."""
    controllers = []

    def start(handler: Handler) -> Handler:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
        monkeypatch.setitem(app.config, "MAIL_PORT", port)
        return handler

    yield start
    for controller in controllers:
        controller.stop()


# --------------------------------------------------------------------------- helpers


def queue(to: str, body: str = "Hallo.", html: str | None = None, ref=None) -> int:
    """A due message in the outbox, committed, as a feature's unit of work leaves it."""
    ref_type, ref_id = ref if ref else (None, None)
    message = OutboxMessage(
        message_id=f"<{uuid.uuid4().hex}@tests.example>",
        kind="test",
        to_email=to,
        language="nl",
        subject=f"Bericht aan {to}",
        body_text=body,
        body_html=html if html is not None else f"<p>{body}</p>",
        ref_type=ref_type,
        ref_id=ref_id,
        next_attempt_at=utcnow() - timedelta(seconds=1),
    )
    db.session.add(message)
    db.session.commit()
    return message.id


def row(message_id: int) -> OutboxMessage:
    fresh()
    return db.session.get(OutboxMessage, message_id)


def lease_of(engine, message_id_header: str):
    """From a connection of its own: the lease of the message with this Message-ID."""
    with engine.connect() as other:
        found = other.execute(
            select(OutboxMessage.lease_owner, OutboxMessage.lease_until, OutboxMessage.state).where(
                OutboxMessage.message_id == message_id_header
            )
        ).one()
        other.rollback()
    return found


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


# --------------------------------------------------------------------------- the lease


def test_each_messages_lease_starts_when_its_own_send_starts(smtp):
    engine = db.engine
    first, second = queue("eerste@zuid.example"), queue("tweede@zuid.example")
    headers = {"first": row(first).message_id, "second": row(second).message_id}
    db.session.commit()

    def probe(message):
        # While one message is with the server: every message's lease as committed.
        leases_now = {name: lease_of(engine, header) for name, header in headers.items()}
        return {"sending": message["To"], **leases_now}

    handler = smtp(Handler(delay=DELAY, probe=probe))

    assert relay_outbox() == 2

    seen_while_sending = handler.observations
    assert not [o for o in seen_while_sending if isinstance(o, Exception)], seen_while_sending
    assert [o["sending"] for o in seen_while_sending] == [
        "eerste@zuid.example",
        "tweede@zuid.example",
    ]
    during_first, during_second = seen_while_sending
    # While the first is sent, the second is not taken yet: its lease has not started.
    assert during_first["first"].state is OutboxState.SENDING
    assert during_first["first"].lease_until is not None
    assert during_first["second"].lease_owner is None
    assert during_first["second"].lease_until is None
    assert during_first["second"].state is OutboxState.PENDING
    # The second's lease started after the first's send, so it ends that much later.
    first_until = during_first["first"].lease_until
    second_until = during_second["second"].lease_until
    assert second_until - first_until >= timedelta(seconds=DELAY * 0.9)
    assert during_second["second"].lease_owner is not None
    assert during_second["second"].lease_owner != during_first["first"].lease_owner
    assert during_second["first"].state is OutboxState.SENT
    assert during_second["first"].lease_owner is None
    assert [row(first).state, row(second).state] == [OutboxState.SENT, OutboxState.SENT]


# --------------------------------------------------------------------------- a refused address


def test_an_address_the_server_refuses_fails_at_once_and_alone_while_the_others_are_sent(smtp):
    handler = smtp(Handler(refuse=("onbekend@zuid.example",)))
    before = queue("voor@zuid.example")
    refused = queue("onbekend@zuid.example")
    after = queue("na@zuid.example")

    assert relay_outbox() == 2

    assert sorted(m["To"] for m in handler.messages) == ["na@zuid.example", "voor@zuid.example"]
    assert row(before).state is OutboxState.SENT
    assert row(after).state is OutboxState.SENT
    failed = row(refused)
    assert failed.state is OutboxState.FAILED
    assert failed.attempts == 1, "a permanent refusal is not retried"
    assert "550" in failed.last_error
    assert (failed.lease_owner, failed.lease_until, failed.sent_at) == (None, None, None)
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "mail_failed")).all()
    assert [(e.object_type, e.object_id) for e in events] == [("outbox_message", refused)]
    assert events[0].details["to"] == "onbekend@zuid.example"
    assert "550" in events[0].details["error"]
    assert count(AuditEvent, AuditEvent.action == "mail_sent") == 2


def test_a_refused_message_is_never_tried_again(smtp):
    handler = smtp(Handler(refuse=("onbekend@zuid.example",)))
    refused = queue("onbekend@zuid.example")
    assert relay_outbox() == 0

    assert relay_outbox(now=utcnow() + timedelta(days=2)) == 0

    assert handler.messages == []
    assert row(refused).attempts == 1
    assert count(AuditEvent, AuditEvent.action == "mail_failed") == 1


# --------------------------------------------------------------------------- secrets


@pytest.fixture
def vault(app):
    """A ``ref`` type of the test's own whose secrets a resolver fills in; removed after."""
    calls: list[int] = []

    def resolve(ref_id: int) -> dict[str, str]:
        calls.append(ref_id)
        return {"[[kluis-sleutel]]": f"S3CR3T-{ref_id} <&>"}

    register_secrets(app, "kluis", resolve)
    yield calls
    del app.extensions["outbox_secrets"]["kluis"]
    assert "kluis" not in app.extensions["outbox_secrets"]
    assert "transfer" in app.extensions["outbox_secrets"], "the app's own resolver stays"


def test_a_mail_about_a_registered_ref_type_is_sent_with_its_secrets_filled_in(smtp, vault):
    handler = smtp(Handler())
    message_id = queue(
        "ontvanger@zuid.example",
        body="Uw sleutel: [[kluis-sleutel]]",
        html="<p>Uw sleutel: <b>[[kluis-sleutel]]</b></p>",
        ref=("kluis", 7),
    )

    assert relay_outbox() == 1

    [sent] = handler.messages
    assert "Uw sleutel: S3CR3T-7 <&>" in text_of(sent)
    assert "<b>S3CR3T-7 &lt;&amp;&gt;</b>" in html_of(sent), "escaped in the HTML part"
    assert "[[kluis-sleutel]]" not in text_of(sent) + html_of(sent)
    assert vault == [7]
    stored = row(message_id)
    assert "S3CR3T" not in stored.body_text + stored.body_html, "the secret is never stored"
    assert "[[kluis-sleutel]]" in stored.body_text


def test_mails_of_another_ref_type_or_none_keep_their_markers(smtp, vault):
    handler = smtp(Handler())
    queue("a@zuid.example", body="Sleutel: [[kluis-sleutel]]", ref=("ander", 7))
    queue("b@zuid.example", body="Sleutel: [[kluis-sleutel]]")

    assert relay_outbox() == 2

    assert all("[[kluis-sleutel]]" in text_of(m) for m in handler.messages)
    assert vault == [], "the resolver is asked only about its own ref type"


def test_once_the_resolver_is_removed_its_markers_are_no_longer_filled_in(app, smtp):
    register_secrets(app, "kluis", lambda ref_id: {"[[kluis-sleutel]]": "GEHEIM"})
    del app.extensions["outbox_secrets"]["kluis"]
    handler = smtp(Handler())
    queue("a@zuid.example", body="Sleutel: [[kluis-sleutel]]", ref=("kluis", 1))

    relay_outbox()

    assert "GEHEIM" not in text_of(handler.messages[0])


# --------------------------------------------------------------------------- nothing held


def open_transactions(engine) -> int:
    """Sessions of this database idle in a transaction, other than the one asking."""
    with engine.connect() as other:
        found = other.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
            )
        )
        other.rollback()
    return found


def test_no_database_transaction_is_open_while_the_smtp_server_takes_its_time(smtp):
    if not on_postgresql():
        pytest.skip("SQLite has no pg_stat_activity; the lock is the file's, see app.db")
    engine = db.engine
    queue("eerste@zuid.example")
    queue("tweede@zuid.example")
    db.session.commit()
    # The probe itself sees an open transaction when there is one.
    with engine.connect() as idle:
        idle.execute(select(func.count()).select_from(OutboxMessage))
        assert open_transactions(engine) == 1
        idle.rollback()
    assert open_transactions(engine) == 0
    handler = smtp(Handler(delay=DELAY, probe=lambda _m: open_transactions(engine)))

    assert relay_outbox() == 2

    assert handler.observations == [0, 0]


def test_the_relay_holds_no_pooled_connection_while_the_smtp_server_takes_its_time(smtp):
    engine = db.engine
    queue("eerste@zuid.example")
    queue("tweede@zuid.example")
    db.session.commit()
    db.session.close()

    def checked_out(_message):
        with engine.connect():
            return engine.pool.checkedout() - 1  # less the probe's own

    handler = smtp(Handler(delay=DELAY / 4, probe=checked_out))

    assert relay_outbox() == 2

    assert handler.observations == [0, 0]
