"""The mails of an offer's life, queued in the outbox of the current unit of work.

Each takes the ``now`` of the lifecycle step that sends it: the mail is queued at that
moment, as its audit event is."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from app.auth.models import Role, User
from app.errors import N_, N_plural
from app.extensions import db
from app.outbox import queue_mail
from app.tokens import Purpose, sign
from app.transfers.models import Claim, Transfer


def external_url(endpoint: str, **values) -> str:
    """An absolute link under ``BASE_URL``; works in requests and in scheduled jobs alike."""
    base = urlsplit(current_app.config["BASE_URL"])
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme
    )
    return adapter.build(endpoint, values, force_external=True)


# The code and the claim link (which carries it) are never written into the outbox:
# mails hold these markers, and the relay fills them in as it sends (``secrets_for``).
CODE_MARK = "[[transfer-code]]"
LINK_MARK = "[[claim-link]]"


def secrets_for(transfer_id: int) -> dict[str, str]:
    """Marker → value for a mail about ``transfer_id``, derived at send time."""
    from app.transfers.codes import code_for

    transfer = db.session.get(Transfer, transfer_id)
    if transfer is None:
        return {}
    code = code_for(transfer)
    return {CODE_MARK: code, LINK_MARK: claim_link(transfer, code)}


def claim_link(transfer: Transfer, code: str) -> str:
    """A signed link that opens the claim page with the code filled in, valid until expiry."""
    token = sign(Purpose.CLAIM_LINK, {"c": code, "e": int(transfer.expires_at.timestamp())})
    return external_url("transfers.fetch", token=token)


def _context(transfer: Transfer, now: datetime, **extra) -> dict:
    return {
        "transfer": transfer,
        "items": transfer.items,
        "source_name": transfer.source_environment.name,
        "offered_by": transfer.offered_by_name,
        "expires_at": transfer.expires_at,
        "count": len(transfer.items),
        "overview_url": external_url("transfers.overview"),
        "now": now,
        **extra,
    }


def _to_recipients_with_copy(
    transfer: Transfer,
    kind: str,
    subject: str | tuple[str, str],
    copy_subject: str | tuple[str, str],
    context: dict,
) -> None:
    """``kind`` to every recipient, ``kind_copy`` to the requester (subjects as
    ``queue_mail`` takes them: a msgid, or a singular and plural pair)."""
    for email in transfer.recipient_emails:
        queue_mail(
            kind=kind,
            to=email,
            subject=subject,
            template=kind,
            context=context,
            ref=("transfer", transfer.id),
            at=context["now"],
        )
    queue_mail(
        kind=f"{kind}_copy",
        to=transfer.offered_by_email,
        subject=copy_subject,
        template=f"{kind}_copy",
        context=context,
        environment_id=transfer.source_environment_id,
        ref=("transfer", transfer.id),
        at=context["now"],
    )


def offer_made(transfer: Transfer, *, now: datetime) -> None:
    """The code to every recipient; a copy to the requester."""
    _to_recipients_with_copy(
        transfer,
        "transfer_offered",
        N_plural(
            "%(source_name)s offers you %(count)d administration",
            "%(source_name)s offers you %(count)d administrations",
        ),
        N_plural(
            "Copy: your offer of %(count)d administration",
            "Copy: your offer of %(count)d administrations",
        ),
        _context(transfer, now, code=CODE_MARK, link=LINK_MARK),
    )


def offer_withdrawn(transfer: Transfer, *, now: datetime) -> None:
    context = _context(transfer, now)
    for email in transfer.recipient_emails:
        queue_mail(
            kind="transfer_withdrawn",
            to=email,
            subject=N_("%(source_name)s has withdrawn its offer"),
            template="transfer_withdrawn",
            context=context,
            ref=("transfer", transfer.id),
            at=now,
        )


def offer_extended(transfer: Transfer, *, now: datetime) -> None:
    """The new expiry to every recipient (with the code, which stays the same); a copy
    to the requester."""
    _to_recipients_with_copy(
        transfer,
        "transfer_extended",
        N_("The offer from %(source_name)s has been extended"),
        N_("Copy: your offer has been extended"),
        _context(transfer, now, code=CODE_MARK, link=LINK_MARK),
    )


def offer_expired(transfer: Transfer, *, now: datetime) -> None:
    queue_mail(
        kind="transfer_expired",
        to=transfer.offered_by_email,
        subject=N_plural(
            "Your offer of %(count)d administration has expired",
            "Your offer of %(count)d administrations has expired",
        ),
        template="transfer_expired",
        context=_context(transfer, now),
        environment_id=transfer.source_environment_id,
        ref=("transfer", transfer.id),
        at=now,
    )


def offer_reminder(transfer: Transfer, *, now: datetime) -> None:
    """A few days before expiry, to both sides."""
    _to_recipients_with_copy(
        transfer,
        "transfer_reminder",
        N_("Reminder: the offer from %(source_name)s expires soon"),
        N_("Reminder: your offer has not been claimed yet"),
        _context(transfer, now, code=CODE_MARK, link=LINK_MARK),
    )


def items_rejected(transfer: Transfer, items: list, receiver_name: str, *, now: datetime) -> None:
    """Tell the offering side which administrations the receiver turned down, and why."""
    queue_mail(
        kind="transfer_items_rejected",
        to=transfer.offered_by_email,
        subject=N_plural(
            "%(receiver)s has rejected %(count)d administration",
            "%(receiver)s has rejected %(count)d administrations",
        ),
        template="transfer_items_rejected",
        context=_context(transfer, now, rejected=items, receiver=receiver_name, count=len(items)),
        environment_id=transfer.source_environment_id,
        ref=("transfer", transfer.id),
        at=now,
    )


def claim_completed(transfer: Transfer, claim, *, now: datetime) -> None:
    """Both sides: the copy is done; the report is ready."""
    context = _context(
        transfer,
        now,
        claim=claim,
        migrated=[i for i in transfer.items if i.state.value == "migrated"],
        receiver=claim.transfer.target_environment.name
        if claim.transfer.target_environment
        else "",
        claim_url=external_url("transfers.claim", claim_id=claim.id),
    )
    for to, environment_id in (
        (claim.claimed_by_email, claim.target_environment_id),
        (transfer.offered_by_email, transfer.source_environment_id),
    ):
        queue_mail(
            kind="transfer_completed",
            to=to,
            subject=N_plural(
                "The migration of %(count)d administration is complete",
                "The migration of %(count)d administrations is complete",
            ),
            template="transfer_completed",
            context={**context, "count": len(context["migrated"])},
            environment_id=environment_id,
            ref=("transfer", transfer.id),
            at=now,
        )


def transfer_revoked(transfer: Transfer, reason: str, *, now: datetime) -> None:
    """Support ended the transfer: both sides hear why."""
    context = _context(transfer, now, reason=reason)
    addresses = {transfer.offered_by_email: transfer.source_environment_id}

    claim = db.session.scalars(select(Claim).where(Claim.transfer_id == transfer.id)).one_or_none()
    if claim is not None:
        addresses[claim.claimed_by_email] = claim.target_environment_id
    else:
        for email in transfer.recipient_emails:
            addresses.setdefault(email, None)
    for email, environment_id in addresses.items():
        queue_mail(
            kind="transfer_revoked",
            to=email,
            subject=N_plural(
                "Support has revoked the transfer of %(count)d administration",
                "Support has revoked the transfer of %(count)d administrations",
            ),
            template="transfer_revoked",
            context=context,
            environment_id=environment_id,
            ref=("transfer", transfer.id),
            at=now,
        )


def copy_slow(transfer: Transfer, *, minutes: int, now: datetime) -> None:
    """The copy takes longer than usual: every support user hears it once, with a link."""
    claim = db.session.scalars(select(Claim).where(Claim.transfer_id == transfer.id)).one()
    context = _context(
        transfer,
        now,
        target_name=transfer.target_environment.name if transfer.target_environment else "",
        claimed_at=claim.created_at,
        minutes=minutes,
        support_url=external_url("support.transfer", transfer_id=transfer.id),
    )
    for email in db.session.scalars(
        select(User.email).where(User.role == Role.SUPPORT).order_by(User.id)
    ):
        queue_mail(
            kind="copy_slow",
            to=email,
            subject=N_("The copy of transfer %(id)d takes longer than usual"),
            template="copy_slow",
            context={**context, "id": transfer.id},
            ref=("transfer", transfer.id),
            at=now,
        )
