"""The outbox: e-mail is written in the same transaction as the change that causes
it and sent after the commit by a relay. It knows no feature.

``queue_mail`` only adds a row, referring to the object it is about by kind and id
(``ref``). After the unit of work commits, a relay is kicked in a background thread
(requests only; the scheduler relays periodically anyway). ``relay_outbox`` takes due
rows one at a time with a lease (``app.leases``) and commits, then talks SMTP with no
database transaction or pooled connection held, then records the outcome in a new
short transaction, only while it still holds the lease. A failure backs off
exponentially; a message the server refuses for good, or that cannot be encoded,
fails alone after its last attempt and never stops the others. An SMTP outage never
blocks or fails a request and never loses a mail. Without ``MAIL_SERVER``
(development) the relay leaves the mail in the local mailbox at ``/dev/mail``.

Secrets (a transfer code) are never stored: mails hold markers, and the feature that
wrote the mail registers a resolver for its ``ref_type`` (``register_secrets``) that
fills them in as the mail is sent.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import smtplib
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app, has_request_context, render_template
from flask_babel import force_locale
from flask_mail import Connection, Message
from markupsafe import escape
from sqlalchemy import Enum, Index, Integer, String, Text, event, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from app import audit, leases
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
    __table_args__ = (Index("ix_outbox_messages_ref", "ref_type", "ref_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    to_email: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(5))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    environment_id: Mapped[int | None] = mapped_column(index=True)
    # What the mail is about, e.g. ("transfer", 12): for the audit trail and secrets.
    ref_type: Mapped[str | None] = mapped_column(String(40))
    ref_id: Mapped[int | None]
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
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
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
    subject: str | tuple[str, str],
    template: str,
    context: dict[str, Any],
    language: str | None = None,
    environment_id: int | None = None,
    ref: tuple[str, int] | None = None,
    at: datetime | None = None,
) -> OutboxMessage:
    """Render ``email/<template>.txt`` and ``.html`` in the recipient's language and add
    the message to the outbox of the current unit of work.

    ``subject`` is an untranslated msgid formatted with ``context``, or a (singular,
    plural) pair of them chosen by ``context["count"]``; ``ref`` names the
    object the mail is about as (kind, id); ``at`` when it was queued (the ``now`` of
    the step that wrote it), else the current time. It is due at once either way.
    """
    from flask_babel import gettext, ngettext

    language = language or recipient_language(to)
    with force_locale(language):
        if isinstance(subject, tuple):
            rendered_subject = ngettext(*subject, context["count"], **context)
        else:
            rendered_subject = gettext(subject, **context)
        text = render_template(f"email/{template}.txt", **context)
        html = render_template(f"email/{template}.html", **context)
    domain = current_app.config["MAIL_DOMAIN"]
    ref_type, ref_id = ref if ref else (None, None)
    message = OutboxMessage(
        message_id=f"<{uuid.uuid4().hex}@{domain}>",
        kind=kind,
        to_email=to,
        language=language,
        subject=rendered_subject,
        body_text=text,
        body_html=html,
        environment_id=environment_id,
        ref_type=ref_type,
        ref_id=ref_id,
        created_at=at or utcnow(),
        next_attempt_at=utcnow(),  # the relay's clock: due now
    )
    db.session.add(message)
    db.session.flush()
    audit.record(
        "mail_queued",
        actor=None,
        object_type="outbox_message",
        object_id=message.id,
        environment_id=environment_id,
        details={"kind": kind, "to": to, "ref_type": ref_type, "ref_id": ref_id},
        at=at,
    )
    db.session.info["outbox_queued"] = True
    return message


# --- secrets filled in at send time -----------------------------------------------------------

SecretsResolver = Callable[[int], dict[str, str]]


def register_secrets(app: Flask, ref_type: str, resolver: SecretsResolver) -> None:
    """``resolver(ref_id)`` gives marker → value for mails about a ``ref_type`` object."""
    app.extensions.setdefault("outbox_secrets", {})[ref_type] = resolver


def filled_in(message: OutboxMessage) -> tuple[str, str]:
    """The text and HTML bodies with their secrets (markers) filled in, for sending."""
    resolvers = current_app.extensions.get("outbox_secrets", {})
    resolve = resolvers.get(message.ref_type) if message.ref_type else None
    text, html = message.body_text, message.body_html
    for mark, value in (resolve(message.ref_id) if resolve else {}).items():
        text = text.replace(mark, value)
        html = html.replace(mark, str(escape(value)))
    return text, html


# --- the relay ----------------------------------------------------------------------------------


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


def policy() -> leases.LeasePolicy:
    """A sending message's lease outlasts the SMTP timeout of every command of one send."""
    config = current_app.config
    return leases.LeasePolicy(
        seconds=max(config["MAIL_LEASE_SECONDS"], 4 * config["MAIL_TIMEOUT"]),
        heartbeat_seconds=config["MAIL_LEASE_SECONDS"],
        max_attempts=config["MAIL_MAX_ATTEMPTS"],
        backoff_base=30,
        backoff_cap=3600,
    )


def backoff(attempts: int) -> timedelta:
    """Wait before retry ``attempts`` (1-based): 30 s, 1 min, 2 min, … at most an hour."""
    return policy().backoff(attempts)


def _due(now: datetime):
    return (OutboxMessage.next_attempt_at <= now) & OutboxMessage.state.in_(
        (OutboxState.PENDING, OutboxState.SENDING)
    )


# Errors that will not go away by trying again later: the server refused the address
# or the message for good, or the address cannot be written in this SMTP dialogue.
_PERMANENT = (smtplib.SMTPRecipientsRefused, smtplib.SMTPNotSupportedError, UnicodeError)


def _permanent(error: Exception) -> bool:
    if isinstance(error, _PERMANENT):
        return True
    code = getattr(error, "smtp_code", None)
    return isinstance(code, int) and 500 <= code < 600


def relay_outbox(*, limit: int = 100, now: datetime | None = None) -> int:
    """Send due outbox messages; returns how many were sent.

    Each message: take it with a lease and commit; send with no transaction open;
    record the outcome in a short transaction of its own. Its lease starts when its
    own send starts, so a slow batch never leaves a later message's lease stale.
    """
    config = current_app.config
    if not config.get("MAIL_SERVER") and not config["DEV_MAILBOX"]:
        log.warning("MAIL_SERVER is not set: outbox messages wait until it is")
        return 0
    lease = policy()
    due = leases.candidates(
        db.session, OutboxMessage, _due(now or utcnow()), now or utcnow(), limit
    )
    db.session.commit()
    sent = 0
    connection = None
    try:
        for message_id in due:
            owner = leases.new_owner()
            taken_at = now or utcnow()
            if not leases.take(
                db.session,
                OutboxMessage,
                message_id,
                _due(taken_at),
                owner=owner,
                policy=lease,
                now=taken_at,
            ):
                db.session.commit()
                continue
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id)
                .values(state=OutboxState.SENDING)
                .execution_options(synchronize_session=False)
            )
            message = db.session.get(OutboxMessage, message_id)
            db.session.refresh(message)
            mail = _message(message) if config.get("MAIL_SERVER") else None
            attempts = message.attempts
            # The commit ends the transaction and returns the connection to the pool:
            # nothing of the database is held while the SMTP server takes its time.
            db.session.commit()
            error: Exception | None = None
            if mail is not None:
                try:
                    if connection is None:
                        connection = TimeoutConnection(current_app.extensions["mail"])
                        connection.__enter__()
                    connection.send(mail)
                except (OSError, smtplib.SMTPException, UnicodeError) as failure:
                    error = failure
                    if connection is not None:
                        _close(connection)
                        connection = None
            # Without a server the message stays in the local mailbox (/dev/mail).
            if error is None:
                sent += _record_sent(message_id, owner)
            else:
                _record_failure(message_id, owner, attempts, error, lease)
    finally:
        if connection is not None:
            _close(connection)
    return sent


def _message(message: OutboxMessage) -> Message:
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
    return msg


def _record_sent(message_id: int, owner: str) -> int:
    won = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, leases.held_by(OutboxMessage, owner))
        .values(state=OutboxState.SENT, sent_at=utcnow(), lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:  # the lease lapsed during a very slow send; another relay has it
        db.session.commit()
        return 0
    message = db.session.get(OutboxMessage, message_id)
    audit.record(
        "mail_sent",
        actor=None,
        object_type="outbox_message",
        object_id=message.id,
        environment_id=message.environment_id,
        details={
            "kind": message.kind,
            "to": message.to_email,
            "ref_type": message.ref_type,
            "ref_id": message.ref_id,
        },
    )
    db.session.commit()
    return 1


def _record_failure(
    message_id: int, owner: str, attempts: int, error: Exception, lease: leases.LeasePolicy
) -> None:
    """Schedule a retry, or give up after the last attempt (at once for a permanent error)."""
    last_error = f"{type(error).__name__}: {error}"[:500]
    give_up = _permanent(error) or attempts >= lease.max_attempts
    now = utcnow()
    values: dict[str, Any] = {"last_error": last_error, "lease_owner": None, "lease_until": None}
    if give_up:
        values["state"] = OutboxState.FAILED
    else:
        values.update(state=OutboxState.PENDING, next_attempt_at=now + lease.backoff(attempts))
    won = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, leases.held_by(OutboxMessage, owner))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    message = db.session.get(OutboxMessage, message_id)
    if won.rowcount == 1 and give_up:
        audit.record(
            "mail_failed",
            actor=None,
            object_type="outbox_message",
            object_id=message.id,
            environment_id=message.environment_id,
            details={"kind": message.kind, "to": message.to_email, "error": last_error},
        )
    log.warning("mail %s to %s not sent: %s", message_id, message.to_email, last_error)
    db.session.commit()


def _close(connection) -> None:
    with contextlib.suppress(OSError, smtplib.SMTPException):
        connection.__exit__(None, None, None)


# --- kicking the relay after a commit -----------------------------------------------------------


@event.listens_for(Session, "after_commit")
def _kick_after_commit(session: Session) -> None:
    """A request's unit of work that queued mail has committed: relay it now, in a
    background thread that never delays the response. If it fails, the scheduler's
    periodic relay picks the messages up."""
    if not session.info.pop("outbox_queued", False) or not has_request_context():
        return
    app = current_app._get_current_object()
    if app.config["MAIL_RELAY_AFTER_REQUEST"]:
        threading.Thread(target=_relay_in_background, args=(app,), daemon=True).start()


@event.listens_for(Session, "after_rollback")
def _forget_queued(session: Session) -> None:
    session.info.pop("outbox_queued", None)


def _relay_in_background(app: Flask) -> None:
    with app.app_context():
        try:
            relay_outbox()
        except Exception:  # the periodic relay retries; never crash the thread noisily
            log.exception("background mail relay failed")
        finally:
            db.session.remove()
