"""Offering administrations: the preflight (checklist points 2–4), choosing what to
offer, checking the offer, and sending or withdrawing it (through ``lifecycle``).

Services take the acting user and plain arguments, look tenant objects up through
``app.scoping`` and flush; the caller's unit of work commits.
"""

from __future__ import annotations

from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext, ngettext
from sqlalchemy import func, select

from app.admin_settings.models import (
    Administration,
    AdministrationState,
    Connection,
    Environment,
    Plan,
)
from app.admin_settings.services import AdministrationRow, facts_for
from app.auth.models import Role, User
from app.db import utcnow
from app.errors import N_, N_plural, NotFoundError, ServiceError, ValidationFailed
from app.extensions import db
from app.scoping import get_scoped_or_404, scoped_select
from app.transfers import access, domain, lifecycle
from app.transfers.access import Side, require_migrate
from app.transfers.models import Transfer

# --- preflight ---------------------------------------------------------------------------------


class PreflightRow(AdministrationRow):
    """One administration as the move-out wizard sees it: its blockers, and whether it
    can be chosen (no blockers, not already on offer or moved)."""

    @property
    def selectable(self) -> bool:
        return not self.blockers and self.administration.state is AdministrationState.ACTIVE


def preflight(actor: User, connection_id: int) -> list[PreflightRow]:
    """Checklist points 2–4 for every administration of one of the actor's connections."""
    require_migrate(actor)
    connection = get_scoped_or_404(Connection, connection_id, actor)
    administrations = list(
        db.session.scalars(
            scoped_select(Administration, actor)
            .where(Administration.connection_id == connection.id)
            .order_by(Administration.name)
        )
    )
    facts = facts_for(a.id for a in administrations)
    return [PreflightRow(a, facts[a.id]) for a in administrations]


def preflight_administration(actor: User, administration_id: int) -> PreflightRow:
    require_migrate(actor)
    administration = get_scoped_or_404(Administration, administration_id, actor)
    return PreflightRow(administration, facts_for([administration.id])[administration.id])


def connections_for_wizard(actor: User) -> list[Connection]:
    require_migrate(actor)
    return list(db.session.scalars(scoped_select(Connection, actor).order_by(Connection.name)))


# --- offering ----------------------------------------------------------------------------------


def _is_valid_email(email: str) -> bool:
    try:
        validate_email(email, check_deliverability=False, test_environment=current_app.testing)
    except EmailNotValidError:
        return False
    return True


def _unsendable_reason(email: str) -> str | None:
    """Why mail to ``email`` cannot be sent through the configured server, or None.

    A local part (before the @) with non-ASCII letters needs SMTPUTF8, which the relay
    only uses when ``MAIL_SMTPUTF8`` says the server announces it. The address is read
    after NFC normalisation (``e`` + combining accent is ``é``), as email_validator does.
    """
    if current_app.config.get("MAIL_SMTPUTF8"):
        return None
    try:
        local_part = validate_email(
            email, check_deliverability=False, test_environment=current_app.testing
        ).local_part
    except EmailNotValidError:
        return None  # reported as malformed already
    if not local_part.isascii():
        return N_("the part before the @ has letters outside plain ASCII")
    return None


_RECIPIENT_MESSAGES = {
    "malformed": N_("“%(email)s” is not a valid e-mail address."),
    "repeated": N_("“%(email)s” is given more than once."),
    "own": N_("“%(email)s” is your own address; it already gets a copy."),
    "own_environment": N_(
        "“%(email)s” belongs to a user of your own environment; send the offer to someone at the other office."
    ),
}


def _selection_errors(
    actor: User, administration_ids: list[int]
) -> tuple[list[Administration], list[ServiceError]]:
    """The chosen administrations and what stops them from being offered together.

    An administration id that is not the actor's is a 404, as everywhere.
    """
    ids = list(dict.fromkeys(administration_ids))
    if not ids:
        return [], [ServiceError("administration_ids", N_("Choose at least one administration."))]
    found = {
        a.id: a
        for a in db.session.scalars(
            scoped_select(Administration, actor).where(Administration.id.in_(ids))
        )
    }
    if len(found) != len(ids):
        raise NotFoundError()
    administrations = [found[i] for i in ids]
    errors: list[ServiceError] = []
    if len({a.connection_id for a in administrations}) > 1:
        errors.append(
            ServiceError(
                "administration_ids",
                N_("Choose administrations of one connection; offer the others separately."),
            )
        )
    facts = facts_for(ids)
    for administration in administrations:
        row = PreflightRow(administration, facts[administration.id])
        if administration.state is AdministrationState.OFFERED:
            message = N_("“%(name)s” is already on offer.")
            errors.append(ServiceError("administration_ids", message, name=administration.name))
        elif administration.state is AdministrationState.MIGRATED:
            message = N_("“%(name)s” has already moved to another office.")
            errors.append(ServiceError("administration_ids", message, name=administration.name))
        elif row.blockers:
            errors.append(
                ServiceError(
                    "administration_ids",
                    N_("“%(name)s” cannot move yet: %(blockers)s."),
                    name=administration.name,
                    blockers=", ".join(
                        ngettext(*BLOCKER_WORDS[b.kind], b.count) for b in row.blockers
                    ),
                )
            )
    return administrations, errors


def check_selection(actor: User, administration_ids: list[int]) -> list[Administration]:
    """The wizard's second step: ``ValidationFailed`` unless these can be offered together."""
    require_migrate(actor)
    administrations, errors = _selection_errors(actor, administration_ids)
    if errors:
        raise ValidationFailed(errors)
    return administrations


def validate_offer(
    actor: User,
    *,
    administration_ids: list[int],
    recipient_emails: list[str],
    checklist_confirmed: bool,
    accept_terms: bool,
) -> tuple[list[Administration], list[str], Environment | None]:
    """Check an offer completely; ``ValidationFailed`` lists every problem at once.
    Returns the administrations, the cleaned recipients and the receiving office."""
    require_migrate(actor)
    administrations, errors = _selection_errors(actor, administration_ids)
    own_emails = set(
        db.session.scalars(
            select(func.lower(User.email)).where(User.environment_id == actor.environment_id)
        )
    )
    cleaned, problems = domain.check_recipients(
        recipient_emails,
        requester_email=actor.email,
        own_environment_emails=own_emails,
        is_valid=_is_valid_email,
    )
    for problem in problems:
        errors.append(
            ServiceError(
                "recipient_emails", _RECIPIENT_MESSAGES[problem.problem], email=problem.email
            )
        )
    sendable = []
    for email in cleaned:
        reason = _unsendable_reason(email)
        if not reason:
            sendable.append(email)
        if reason:
            errors.append(
                ServiceError(
                    "recipient_emails",
                    N_("“%(email)s” cannot receive mail from this service: %(reason)s."),
                    email=email,
                    reason=gettext(reason),
                )
            )
    if len(cleaned) > current_app.config["MAX_RECIPIENTS"]:
        errors.append(
            ServiceError(
                "recipient_emails",
                N_("An offer goes to at most %(max)d recipients."),
                max=current_app.config["MAX_RECIPIENTS"],
            )
        )
    if not cleaned and not problems:
        errors.append(
            ServiceError(
                "recipient_emails", N_("Give the e-mail address of at least one recipient.")
            )
        )
    # Only addresses that can get mail at all are looked up as the receiving office's.
    receiving, office_errors = receiving_office(sendable)
    errors += office_errors
    if not checklist_confirmed:
        errors.append(
            ServiceError("checklist_confirmed", N_("Confirm all four points of the checklist."))
        )
    if not accept_terms:
        errors.append(ServiceError("accept_terms", N_("Accept the terms to send the offer.")))
    if errors:
        raise ValidationFailed(errors)
    return administrations, cleaned, receiving


def receiving_office(emails: list[str]) -> tuple[Environment | None, list[ServiceError]]:
    """The one other office every recipient is a superuser of, and what is wrong when
    there is none: an address of nobody (or of a stranger), addresses of two offices, or
    an office that cannot receive. Client names and a code are never mailed to a typo."""
    if not emails:
        return None, []
    users = {
        u.email.lower(): u
        for u in db.session.scalars(select(User).where(func.lower(User.email).in_(emails)))
    }
    errors: list[ServiceError] = []
    offices: dict[int, Environment] = {}
    for email in emails:
        user = users.get(email)
        if user is None or user.environment_id is None or user.role is not Role.SUPERUSER:
            errors.append(
                ServiceError(
                    "recipient_emails",
                    N_(
                        "“%(email)s” is not a superuser of an office on this service. An offer "
                        "goes to the superusers of the receiving office."
                    ),
                    email=email,
                )
            )
        else:
            offices[user.environment_id] = user.environment
    if len(offices) > 1:
        errors.append(
            ServiceError(
                "recipient_emails",
                N_(
                    "These addresses belong to different offices (%(offices)s); one offer goes "
                    "to one office."
                ),
                offices=", ".join(sorted(e.name for e in offices.values())),
            )
        )
        return None, errors
    office = next(iter(offices.values()), None)
    if office is not None and office.plan is not Plan.PREMIUM:
        errors.append(
            ServiceError(
                "recipient_emails",
                N_(
                    "%(office)s cannot receive administrations: only an office with the premium "
                    "plan can. Ask them to upgrade first."
                ),
                office=office.name,
            )
        )
    return (office if not errors else None), errors


BLOCKER_WORDS = {
    "authorizers_in_flows": N_plural(
        "%(num)d authorizer in authorization flows",
        "%(num)d authorizers in authorization flows",
    ),
    "active_workflows": N_plural("%(num)d active workflow", "%(num)d active workflows"),
    "undecided_documents": N_plural(
        "%(num)d document still to be decided",
        "%(num)d documents still to be decided",
    ),
}


def create_offer(
    actor: User,
    *,
    administration_ids: list[int],
    recipient_emails: list[str],
    checklist_confirmed: bool,
    accept_terms: bool,
    origin: str,
    confirmed_office_id: int | None = None,
    now: datetime | None = None,
) -> tuple[Transfer, str]:
    """Offer administrations to another office: a code, mails, the administrations on offer.

    Returns the transfer and its formatted code. Nothing is created when any input
    is bad (``ValidationFailed``), nor when ``confirmed_office_id`` (the office the
    sender was shown) is given and the recipients belong to another one.
    """
    administrations, recipients, receiving = validate_offer(
        actor,
        administration_ids=administration_ids,
        recipient_emails=recipient_emails,
        checklist_confirmed=checklist_confirmed,
        accept_terms=accept_terms,
    )
    if confirmed_office_id is not None and receiving.id != confirmed_office_id:
        raise ServiceError(
            "recipient_emails",
            N_(
                "The recipients now belong to %(office)s, not to the office shown before. "
                "Check the receiving office and send again."
            ),
            office=receiving.name,
        )
    now = now or utcnow()
    return lifecycle.offer(
        actor,
        administrations,
        administrations[0].connection,
        recipients,
        receiving=receiving,
        origin=origin,
        now=now,
    )


def withdraw(
    actor: User, transfer_id: int, *, origin: str, now: datetime | None = None
) -> Transfer:
    """End an offer before its claim starts; the code dies at once and recipients are told."""
    require_migrate(actor)
    with lifecycle.copy_may_hold_locks():
        transfer, _side = access.transfer_for(actor, transfer_id, sides=(Side.OUTGOING,))
        lifecycle.withdraw(actor, transfer, origin=origin, now=now or utcnow())
        db.session.flush()
    return transfer


def extend(actor: User, transfer_id: int, *, origin: str, now: datetime | None = None) -> Transfer:
    """Give an open offer 15 days from now (at most twice); the recipients are told."""
    require_migrate(actor)
    transfer, _side = access.transfer_for(actor, transfer_id, sides=(Side.OUTGOING,))
    lifecycle.extend(actor, transfer, origin=origin, now=now or utcnow())
    return transfer


def resend(actor: User, transfer_id: int, *, origin: str, now: datetime | None = None) -> Transfer:
    """Send the code mail of an open offer again (at most once an hour)."""
    require_migrate(actor)
    transfer, _side = access.transfer_for(actor, transfer_id, sides=(Side.OUTGOING,))
    lifecycle.resend(actor, transfer, origin=origin, now=now or utcnow())
    return transfer
