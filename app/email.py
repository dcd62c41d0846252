"""The outbox: e-mail is written in the same transaction as the change that causes
it and sent after the commit by a relay.

``queue_mail`` only adds a row. ``relay_outbox`` claims due rows one at a time with
a conditional UPDATE (so two relays never send the same row), sends them over SMTP
with a connect timeout and marks them sent; a failure schedules a retry with
exponential back-off. An SMTP outage therefore never blocks or fails a request and
never loses a mail. Without ``MAIL_SERVER`` (development) the relay delivers into
the local mailbox at ``/dev/mail``, which shows every outbox row.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import smtplib
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app, g, has_request_context, render_template
from flask_babel import force_locale
from flask_mail import Connection, Message
from markupsafe import escape
from sqlalchemy import Enum, Integer, String, Text, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from app import audit
from app.db import UTCDateTime, utcnow
from app.extensions import db

log = logging.getLogger(__name__)


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMessage(db.Model):
    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    to_email: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(5))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    environment_id: Mapped[int | None] = mapped_column(index=True)
    transfer_id: Mapped[int | None] = mapped_column(index=True)
    state: Mapped[OutboxState] = mapped_column(
        Enum(
            OutboxState,
            native_enum=False,
            length=20,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=OutboxState.PENDING,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def recipient_language(email: str) -> str:
    """The saved language of the user with this e-mail address, else the default."""
    from app.auth.models import User

    language = db.session.scalar(select(User.language).where(User.email == email.lower()))
    return language or current_app.config["BABEL_DEFAULT_LOCALE"]


def queue_mail(
    *,
    kind: str,
    to: str,
    subject: str,
    template: str,
    context: dict[str, Any],
    language: str | None = None,
    environment_id: int | None = None,
    transfer_id: int | None = None,
) -> OutboxMessage:
    """Render ``email/<template>.txt`` and ``.html`` in the recipient's language and add
    the message to the outbox of the current unit of work.

    ``subject`` is an untranslated msgid formatted with ``context``.
    """
    from flask_babel import gettext

    language = language or recipient_language(to)
    with force_locale(language):
        rendered_subject = gettext(subject, **context)
        text = render_template(f"email/{template}.txt", **context)
        html = render_template(f"email/{template}.html", **context)
    domain = current_app.config["MAIL_DOMAIN"]
    message = OutboxMessage(
        message_id=f"<{uuid.uuid4().hex}@{domain}>",
        kind=kind,
        to_email=to,
        language=language,
        subject=rendered_subject,
        body_text=text,
        body_html=html,
        environment_id=environment_id,
        transfer_id=transfer_id,
        next_attempt_at=utcnow(),
    )
    db.session.add(message)
    db.session.flush()
    audit.record(
        "mail_queued",
        actor=None,
        object_type="outbox_message",
        object_id=message.id,
        environment_id=environment_id,
        details={"kind": kind, "to": to, "transfer_id": transfer_id},
    )
    if has_request_context():
        g.mail_queued = True
    return message


class TimeoutConnection(Connection):
    """Flask-Mail's SMTP connection with a connect and socket timeout, configured from the
    current settings (Flask-Mail copies them once, at start-up)."""

    def configure_host(self):
        config = current_app.config
        server, port, timeout = config["MAIL_SERVER"], config["MAIL_PORT"], config["MAIL_TIMEOUT"]
        if config.get("MAIL_USE_SSL"):
            host = smtplib.SMTP_SSL(server, port, timeout=timeout)
        else:
            host = smtplib.SMTP(server, port, timeout=timeout)
        if config.get("MAIL_USE_TLS"):
            host.starttls()
        if config.get("MAIL_USERNAME") and config.get("MAIL_PASSWORD"):
            host.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
        return host


def backoff(attempts: int) -> timedelta:
    """Wait before retry ``attempts`` (1-based): 30 s, 1 min, 2 min, … at most an hour."""
    return timedelta(seconds=min(30 * 2 ** (attempts - 1), 3600))


def _claim(message_id: int, now: datetime) -> bool:
    """Take one due message for this relay; False when another relay has it."""
    lease = now + timedelta(seconds=current_app.config["MAIL_LEASE_SECONDS"])
    result = db.session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            OutboxMessage.next_attempt_at <= now,
            or_(
                OutboxMessage.state == OutboxState.PENDING,
                (OutboxMessage.state == OutboxState.SENDING) & (OutboxMessage.locked_until < now),
            ),
        )
        .values(
            state=OutboxState.SENDING,
            locked_until=lease,
            attempts=OutboxMessage.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def filled_in(message: OutboxMessage) -> tuple[str, str]:
    """The text and HTML bodies with their secrets (markers) filled in, for sending.

    Secrets such as a transfer code are not stored in the outbox; the feature that
    wrote the mail derives them again here (``app.extensions["outbox_secrets"]``).
    """
    resolve = current_app.extensions.get("outbox_secrets")
    text, html = message.body_text, message.body_html
    for mark, value in (resolve(message.transfer_id) if resolve else {}).items():
        text = text.replace(mark, value)
        html = html.replace(mark, str(escape(value)))
    return text, html


def _deliver(message: OutboxMessage, connection) -> None:
    text, html = filled_in(message)
    msg = Message(
        subject=message.subject,
        recipients=[message.to_email],
        body=text,
        html=html,
        sender=current_app.config["MAIL_DEFAULT_SENDER"],
    )
    # A stable Message-ID lets a mail server drop the copy of a retried send.
    msg.msgId = message.message_id
    connection.send(msg)


def relay_outbox(*, limit: int = 100, now: datetime | None = None) -> int:
    """Send due outbox messages; returns how many were sent. Commits per message."""
    now = now or utcnow()
    if not current_app.config.get("MAIL_SERVER") and not current_app.config["DEV_MAILBOX"]:
        log.warning("MAIL_SERVER is not set: outbox messages wait until it is")
        return 0
    due = list(
        db.session.scalars(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.next_attempt_at <= now,
                or_(
                    OutboxMessage.state == OutboxState.PENDING,
                    (OutboxMessage.state == OutboxState.SENDING)
                    & (OutboxMessage.locked_until < now),
                ),
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
    )
    db.session.commit()
    sent = 0
    connection = None
    try:
        for message_id in due:
            if not _claim(message_id, now):
                continue
            message = db.session.get(OutboxMessage, message_id)
            try:
                if current_app.config.get("MAIL_SERVER"):
                    if connection is None:
                        connection = TimeoutConnection(current_app.extensions["mail"])
                        connection.__enter__()
                    _deliver(message, connection)
                # Without a server the message stays in the local mailbox (/dev/mail).
            except (OSError, smtplib.SMTPException) as error:
                _failed(message, error, now)
                if connection is not None:
                    _close(connection)
                    connection = None
                continue
            message.state = OutboxState.SENT
            message.sent_at = utcnow()
            message.locked_until = None
            audit.record(
                "mail_sent",
                actor=None,
                object_type="outbox_message",
                object_id=message.id,
                environment_id=message.environment_id,
                details={
                    "kind": message.kind,
                    "to": message.to_email,
                    "transfer_id": message.transfer_id,
                },
            )
            db.session.commit()
            sent += 1
    finally:
        if connection is not None:
            _close(connection)
    return sent


def _close(connection) -> None:
    with contextlib.suppress(OSError, smtplib.SMTPException):
        connection.__exit__(None, None, None)


def _failed(message: OutboxMessage, error: Exception, now: datetime) -> None:
    """Schedule a retry, or give up after ``MAIL_MAX_ATTEMPTS``."""
    message.last_error = f"{type(error).__name__}: {error}"[:500]
    message.locked_until = None
    if message.attempts >= current_app.config["MAIL_MAX_ATTEMPTS"]:
        message.state = OutboxState.FAILED
        audit.record(
            "mail_failed",
            actor=None,
            object_type="outbox_message",
            object_id=message.id,
            environment_id=message.environment_id,
            details={"kind": message.kind, "to": message.to_email, "error": message.last_error},
        )
    else:
        message.state = OutboxState.PENDING
        message.next_attempt_at = now + backoff(message.attempts)
    log.warning("mail %s to %s not sent: %s", message.id, message.to_email, message.last_error)
    db.session.commit()


def register_relay_after_request(app: Flask) -> None:
    """Kick a relay in a background thread after a request that queued mail.

    The request has committed by then; the thread never delays the response, and
    if it fails the scheduler's periodic relay picks the messages up.
    """

    @app.after_request
    def kick(response):
        if g.get("mail_queued") and app.config["MAIL_RELAY_AFTER_REQUEST"]:
            threading.Thread(target=_relay_in_background, args=(app,), daemon=True).start()
        return response


def _relay_in_background(app: Flask) -> None:
    with app.app_context():
        try:
            relay_outbox()
        except Exception:  # the periodic relay retries; never crash the thread noisily
            log.exception("background mail relay failed")
        finally:
            db.session.remove()
