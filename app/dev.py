"""Development-only pages: the local mailbox at /dev/mail.

Registered only when ``DEV_MAILBOX`` is set (the development settings), so that a
newcomer can read the mails the outbox would send, transfer codes included.
"""

from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from app.extensions import db
from app.outbox import OutboxMessage, filled_in

bp = Blueprint("dev", __name__, url_prefix="/dev")


@bp.get("/mail")
def mailbox():
    messages = db.session.scalars(
        select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(200)
    ).all()
    return render_template("dev/mailbox.html", messages=messages)


@bp.get("/mail/<int:message_id>")
def message(message_id: int):
    item = db.session.get(OutboxMessage, message_id)
    if item is None:
        raise NotFound()
    # The local mailbox shows the mail as it is sent, secrets filled in (development only).
    text, _html = filled_in(item)
    return render_template("dev/message.html", message=item, body=text)
