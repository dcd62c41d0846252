"""The audit trail in words: every recorded action as one sentence in the reader's
language ("Kantoor Zuid heeft 1 administratie overgenomen (overdracht 3)"), a label
per action for the filter lists, and the details the sentence leaves out as
"Label: value" pairs.

Every action any module records is registered in ``ACTIONS`` (a test reads the
``audit.record(...)`` calls in ``app/`` and checks each against it). A sentence takes
its parameters from the event's details and from ``Names``, loaded for a whole page of
events at once (``names_for``: a few queries, never one per event). An unknown action
or a missing detail still gives a sentence: the action's label, never a crash and
never a dump of the details.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from flask_babel import format_datetime, format_decimal, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.admin_settings.models import Administration, Environment
from app.audit import AuditEvent
from app.extensions import db
from app.templating import filesize, label, label_package

__all__ = [
    "ACTIONS",
    "Names",
    "Readable",
    "action_choices",
    "action_label",
    "describe",
    "details",
    "names_for",
    "origin_label",
    "readable",
]


# --- names a page of events refers to ---------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """What the sentences of a page of events name, by id: offices (environments),
    administrations, transfer items (their administration), import files, the office
    a transfer was offered to and how many administrations its claim accepted."""

    offices: Mapping[int, str] = field(default_factory=dict)
    administrations: Mapping[int, str] = field(default_factory=dict)
    items: Mapping[int, str] = field(default_factory=dict)
    imports: Mapping[int, str] = field(default_factory=dict)
    receivers: Mapping[int, int] = field(default_factory=dict)  # transfer id -> environment id
    accepted: Mapping[int, int] = field(default_factory=dict)  # transfer id -> administrations

    def office(self, environment_id) -> str:
        if environment_id in self.offices:
            return self.offices[environment_id]
        return _("office %(id)s", id=environment_id)

    def administration(self, administration_id) -> str:
        if administration_id in self.administrations:
            return self.administrations[administration_id]
        return _("administration %(id)s", id=administration_id)

    def item(self, item_id) -> str:
        if item_id in self.items:
            return self.items[item_id]
        return _("administration %(id)s", id=item_id)

    def import_file(self, import_id) -> str:
        return self.imports.get(import_id) or _("import %(id)s", id=import_id)


def _ids(values: Iterable) -> set[int]:
    return {v for v in values if isinstance(v, int) and not isinstance(v, bool)}


def names_for(events: Sequence[AuditEvent]) -> Names:
    """The names ``events`` refer to, in at most six queries whatever their number."""
    from app.migration_files.models import Import
    from app.transfers.models import Transfer, TransferItem

    def objects(kind: str) -> set[int]:
        return _ids(e.object_id for e in events if e.object_type == kind)

    def detail(key: str) -> set[int]:
        return _ids((e.details or {}).get(key) for e in events)

    transfers = objects("transfer")
    offered = _ids(e.object_id for e in events if e.action == "transfer_offered")
    claimed = _ids(e.object_id for e in events if e.action == "transfer_claimed")
    item_ids = objects("transfer_item")
    administration_ids = objects("administration") | detail("administration_id")
    import_ids = objects("import")

    receivers: dict[int, int] = {}
    if offered:
        receivers = {
            transfer_id: environment_id
            for transfer_id, environment_id in db.session.execute(
                select(Transfer.id, Transfer.receiving_environment_id).where(
                    Transfer.id.in_(offered & transfers),
                    Transfer.receiving_environment_id.is_not(None),
                )
            )
        }
    accepted: dict[int, int] = {}
    if claimed:
        # What the claim accepted, as it was then: the claim's own audit event.
        for transfer_id, claim_details in db.session.execute(
            select(AuditEvent.object_id, AuditEvent.details).where(
                AuditEvent.action == "claim_submitted",
                AuditEvent.object_type == "transfer",
                AuditEvent.object_id.in_(claimed),
            )
        ):
            if isinstance((claim_details or {}).get("accepted"), list):
                accepted[transfer_id] = len(claim_details["accepted"])
    items: dict[int, str] = {}
    if item_ids:
        items = {
            item_id: f"{name} ({code})"
            for item_id, name, code in db.session.execute(
                select(
                    TransferItem.id,
                    TransferItem.administration_name,
                    TransferItem.administration_code,
                ).where(TransferItem.id.in_(item_ids))
            )
        }
    administrations: dict[int, str] = {}
    if administration_ids:
        administrations = {
            administration_id: f"{name} ({code})"
            for administration_id, name, code in db.session.execute(
                select(Administration.id, Administration.name, Administration.code).where(
                    Administration.id.in_(administration_ids)
                )
            )
        }
    imports: dict[int, str] = {}
    if import_ids:
        imports = {
            import_id: file_name
            for import_id, file_name in db.session.execute(
                select(Import.id, Import.file_name).where(Import.id.in_(import_ids))
            )
        }
    environment_ids = (
        _ids(e.environment_id for e in events)
        | detail("target_environment_id")
        | set(receivers.values())
    )
    offices: dict[int, str] = {}
    if environment_ids:
        offices = {
            environment_id: name
            for environment_id, name in db.session.execute(
                select(Environment.id, Environment.name).where(Environment.id.in_(environment_ids))
            )
        }
    return Names(
        offices=offices,
        administrations=administrations,
        items=items,
        imports=imports,
        receivers=receivers,
        accepted=accepted,
    )


# --- values in words ----------------------------------------------------------------------------


def _moment(value) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return format_datetime(moment, "medium")


def _listed(value) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value if not isinstance(v, dict | list))
    return str(value)


def _count(value) -> str:
    return str(len(value)) if isinstance(value, list | tuple) else str(value)


def _yes_no(value) -> str:
    return _("yes") if value else _("no")


def _size(value) -> str:
    return filesize(int(value))


def _role(value) -> str:
    return label(str(value)).lower()


def _conflicts(value) -> str:
    return {"skip": _("skip them"), "overwrite": _("overwrite them")}.get(value) or str(value)


def _import_type(value) -> str:
    return {
        "combined": _("administrations with their documents"),
        "administrations": _("administrations only"),
        "documents": _("documents only"),
    }.get(value) or str(value)


def _turned_down(value) -> str:
    if not isinstance(value, list):
        return ""
    return "; ".join(str(r["message"]) for r in value if isinstance(r, dict) and r.get("message"))


_MAIL_KINDS = {
    "transfer_offered": _l("the offer"),
    "transfer_offered_copy": _l("a copy of the offer"),
    "transfer_extended": _l("the offer extended"),
    "transfer_extended_copy": _l("a copy of the offer extended"),
    "transfer_reminder": _l("a reminder of the offer"),
    "transfer_reminder_copy": _l("a copy of the reminder"),
    "transfer_withdrawn": _l("the offer withdrawn"),
    "transfer_expired": _l("the offer expired"),
    "transfer_items_rejected": _l("administrations turned down"),
    "transfer_completed": _l("the migration complete"),
    "transfer_revoked": _l("the transfer revoked by support"),
    "import_completed": _l("the import complete"),
    "import_failed": _l("the import failed"),
    "login_throttled": _l("logging in blocked"),
    "password_changed": _l("the password changed"),
    "copy_slow": _l("a copy taking long"),
}


def _mail_kind(value) -> str:
    return str(_MAIL_KINDS[value]) if value in _MAIL_KINDS else ""


def _fee(value) -> str:
    try:
        return format_decimal(Decimal(str(value)), format="#,##0.00")
    except InvalidOperation:
        return str(value)


# Details a reader may want that a sentence does not say, with their labels. Keys not
# named here (internal ids, storage keys, references) are not shown.
_DETAILS: dict[str, tuple[object, Callable[[object], str]]] = {
    "recipients": (_l("Recipients"), _listed),
    "terms_version": (_l("Terms version"), str),
    "expires_at": (_l("Expiry date"), _moment),
    "extensions": (_l("Times extended"), str),
    "checklist_confirmed": (_l("Checklist confirmed"), _yes_no),
    "fee_per_administration": (_l("Fee per administration"), _fee),
    "rejected": (_l("Reasons for turning down"), _turned_down),
    "revoked_item_ids": (_l("Administrations revoked"), _count),
    "kind": (_l("E-mail"), _mail_kind),
    "error": (_l("Error"), str),
    "reason": (_l("Reason"), str),
    "until": (_l("Until"), _moment),
    "email": (_l("E-mail address"), str),
    "role": (_l("Role"), _role),
    "name": (_l("Name"), str),
    "package": (_l("Accounting system"), label_package),
    "position": (_l("Step"), str),
    "size": (_l("Size"), _size),
    "length": (_l("Size"), _size),
    "offset": (_l("Received"), _size),
    "documents": (_l("Documents"), str),
    "documents_in_file": (_l("Documents in the file"), str),
    "administration_ids": (_l("Administrations"), _count),
    "import_type": (_l("Contents"), _import_type),
    "conflicts": (_l("Conflicts"), _conflicts),
    "administrations": (_l("Administrations"), str),
    "failed": (_l("Failed"), str),
    "file": (_l("File"), str),
    "file_name": (_l("File"), str),
    "filename": (_l("File"), str),
}


# --- who did it ---------------------------------------------------------------------------------


_ORIGINS = {
    "system": _l("System"),
    "worker": _l("Background job"),
    "scheduler": _l("Scheduler"),
    "cli": _l("Command line"),
    "api": _l("API"),
    "demo": _l("Demo"),
}


def origin_label(origin: str | None) -> str:
    """Where an event came from in words: "Web (203.0.113.5)", "Achtergrondtaak"."""
    origin = origin or "system"
    if origin.startswith("web "):
        return _("Web (%(address)s)", address=origin[4:])
    return str(_ORIGINS[origin]) if origin in _ORIGINS else origin


class _Facts:
    """One event's parameters as its sentence asks for them; a missing one raises
    ``KeyError`` (caught by ``describe``)."""

    def __init__(self, event: AuditEvent, names: Names) -> None:
        self.event = event
        self.names = names
        self.d: dict = event.details if isinstance(event.details, dict) else {}

    @property
    def who(self) -> str:
        return self.event.actor_email or origin_label(self.event.origin)

    @property
    def transfer(self) -> int:
        if self.event.object_type == "transfer" and self.event.object_id is not None:
            return self.event.object_id
        return self.d["transfer_id"]

    def number(self, key: str) -> int:
        value = self.d[key]
        return len(value) if isinstance(value, list | tuple) else int(value)

    def text(self, key: str) -> str:
        value = self.d[key]
        if value is None or value == "":
            raise KeyError(key)
        return str(value)

    @property
    def own_office(self) -> str:
        return self.names.office(self.event.environment_id)

    @property
    def administration(self) -> str:
        if self.event.object_type == "administration" and self.event.object_id is not None:
            return self.names.administration(self.event.object_id)
        return self.names.administration(self.d["administration_id"])

    @property
    def item(self) -> str:
        return self.names.item(self.event.object_id)

    @property
    def import_file(self) -> str:
        return self.names.import_file(self.event.object_id)


# --- the sentences ------------------------------------------------------------------------------


def _transfer_offered(f: _Facts) -> str:
    receiver = f.names.receivers.get(f.transfer)
    to = f.names.office(receiver) if receiver is not None else _listed(f.d["recipients"])
    return ngettext(
        "%(who)s offered transfer %(transfer)s to %(to)s (%(num)d administration)",
        "%(who)s offered transfer %(transfer)s to %(to)s (%(num)d administrations)",
        f.number("administration_ids"),
        who=f.who,
        transfer=f.transfer,
        to=to,
    )


def _transfer_withdrawn(f: _Facts) -> str:
    return _("%(who)s withdrew the offer of transfer %(transfer)s", who=f.who, transfer=f.transfer)


def _transfer_extended(f: _Facts) -> str:
    return _(
        "%(who)s extended the offer of transfer %(transfer)s until %(date)s",
        who=f.who,
        transfer=f.transfer,
        date=_moment(f.d["expires_at"]),
    )


def _transfer_resent(f: _Facts) -> str:
    return _(
        "%(who)s sent the offer of transfer %(transfer)s again to %(recipients)s",
        who=f.who,
        transfer=f.transfer,
        recipients=_listed(f.d["recipients"]),
    )


def _transfer_expired(f: _Facts) -> str:
    return _("The offer of transfer %(transfer)s expired", transfer=f.transfer)


def _transfer_reminder_sent(f: _Facts) -> str:
    return _("A reminder of transfer %(transfer)s was sent to the recipients", transfer=f.transfer)


def _transfer_claimed(f: _Facts) -> str:
    office = f.names.office(f.d["target_environment_id"])
    if f.transfer not in f.names.accepted:
        return _("%(office)s claimed transfer %(transfer)s", office=office, transfer=f.transfer)
    return ngettext(
        "%(office)s claimed %(num)d administration (transfer %(transfer)s)",
        "%(office)s claimed %(num)d administrations (transfer %(transfer)s)",
        f.names.accepted[f.transfer],
        office=office,
        transfer=f.transfer,
    )


def _claim_submitted(f: _Facts) -> str:
    accepted = ngettext(
        "%(num)d administration accepted",
        "%(num)d administrations accepted",
        f.number("accepted"),
    )
    turned_down = ngettext(
        "%(num)d turned down",
        "%(num)d turned down",
        f.number("rejected") if "rejected" in f.d else 0,
    )
    return _(
        "%(who)s answered transfer %(transfer)s: %(accepted)s, %(turned_down)s",
        who=f.who,
        transfer=f.transfer,
        accepted=accepted,
        turned_down=turned_down,
    )


_CODE_FAILURES = {
    "unknown": _l("no offer has this code"),
    "not_claimable": _l("the offer can no longer be claimed"),
    "other_office": _l("the offer is meant for another office"),
    "not_a_recipient": _l("this person is not a recipient of the offer"),
    "lost_race": _l("another claim was first"),
}


def _claim_code_failed(f: _Facts) -> str:
    reason = f.d.get("reason")
    if reason not in _CODE_FAILURES:
        return _("%(who)s entered a transfer code that does not work", who=f.who)
    return _(
        "%(who)s entered a transfer code that does not work: %(reason)s",
        who=f.who,
        reason=_CODE_FAILURES[reason],
    )


def _administration_migrated(f: _Facts) -> str:
    return ngettext(
        "%(administration)s was copied to %(office)s (%(num)d document)",
        "%(administration)s was copied to %(office)s (%(num)d documents)",
        f.number("documents"),
        administration=f.item,
        office=f.own_office,
    )


def _copy_failed(f: _Facts) -> str:
    return _(
        "Copying %(administration)s failed: %(error)s", administration=f.item, error=f.text("error")
    )


def _copy_retried(f: _Facts) -> str:
    return ngettext(
        "%(who)s queued %(num)d failed copy of transfer %(transfer)s again",
        "%(who)s queued %(num)d failed copies of transfer %(transfer)s again",
        f.number("item_ids"),
        who=f.who,
        transfer=f.transfer,
    )


def _copy_slow(f: _Facts) -> str:
    return _(
        "The copy of transfer %(transfer)s has taken more than %(minutes)s minutes; "
        "support has been told",
        transfer=f.transfer,
        minutes=f.text("minutes"),
    )


def _transfer_completed(f: _Facts) -> str:
    return _("Transfer %(transfer)s is complete", transfer=f.transfer)


def _transfer_revoked(f: _Facts) -> str:
    return _(
        "%(who)s revoked transfer %(transfer)s: %(reason)s",
        who=f.who,
        transfer=f.transfer,
        reason=f.text("reason"),
    )


def _mail_queued(f: _Facts) -> str:
    kind = _mail_kind(f.d.get("kind"))
    if not kind:
        return _("E-mail to %(to)s queued", to=f.text("to"))
    return _("E-mail to %(to)s queued: %(kind)s", to=f.text("to"), kind=kind)


def _mail_sent(f: _Facts) -> str:
    kind = _mail_kind(f.d.get("kind"))
    if not kind:
        return _("E-mail to %(to)s sent", to=f.text("to"))
    return _("E-mail to %(to)s sent: %(kind)s", to=f.text("to"), kind=kind)


def _mail_failed(f: _Facts) -> str:
    return _(
        "E-mail to %(to)s could not be sent: %(error)s", to=f.text("to"), error=f.text("error")
    )


def _login(f: _Facts) -> str:
    return _("%(who)s logged in", who=f.who)


def _login_failed(f: _Facts) -> str:
    reason = f.d.get("reason")
    if reason == "unknown_email" or not f.event.actor_email:
        return _("Someone could not log in: unknown e-mail address")
    if reason == "wrong_password":
        return _("%(who)s could not log in: wrong password", who=f.who)
    return _("%(who)s could not log in", who=f.who)


def _login_throttled(f: _Facts) -> str:
    return _(
        "Logging in was blocked until %(until)s after too many attempts",
        until=_moment(f.d["until"]),
    )


def _logout(f: _Facts) -> str:
    return _("%(who)s logged out", who=f.who)


def _sessions_ended(f: _Facts) -> str:
    return _("%(who)s logged out on every device", who=f.who)


def _password_changed(f: _Facts) -> str:
    return _("%(who)s changed their password", who=f.who)


def _api_token_created(f: _Facts) -> str:
    return _("%(who)s created API token “%(name)s”", who=f.who, name=f.text("name"))


def _api_token_revoked(f: _Facts) -> str:
    return _("%(who)s revoked API token “%(name)s”", who=f.who, name=f.text("name"))


def _user_added(f: _Facts) -> str:
    return _(
        "%(who)s added %(email)s as %(role)s",
        who=f.who,
        email=f.text("email"),
        role=_role(f.text("role")),
    )


def _connection_added(f: _Facts) -> str:
    return _(
        "%(who)s added connection “%(name)s” to %(package)s",
        who=f.who,
        name=f.text("name"),
        package=label_package(f.text("package")),
    )


def _authorizer_removed(f: _Facts) -> str:
    return _(
        "%(who)s removed an authorizer from the authorization flow of %(administration)s "
        "(step %(position)s)",
        who=f.who,
        administration=f.administration,
        position=f.text("position"),
    )


def _workflow_activated(f: _Facts) -> str:
    return _(
        "%(who)s activated workflow “%(name)s” of %(administration)s",
        who=f.who,
        name=f.text("name"),
        administration=f.administration,
    )


def _workflow_deactivated(f: _Facts) -> str:
    return _(
        "%(who)s deactivated workflow “%(name)s” of %(administration)s",
        who=f.who,
        name=f.text("name"),
        administration=f.administration,
    )


def _workflow_deleted(f: _Facts) -> str:
    return _(
        "%(who)s deleted workflow “%(name)s” of %(administration)s",
        who=f.who,
        name=f.text("name"),
        administration=f.administration,
    )


def _document_uploaded(f: _Facts) -> str:
    return _(
        "%(who)s uploaded a document to %(administration)s (%(size)s)",
        who=f.who,
        administration=f.administration,
        size=_size(f.d["size"]),
    )


def _documents_approved(f: _Facts) -> str:
    return ngettext(
        "%(who)s approved %(num)d document of %(administration)s",
        "%(who)s approved %(num)d documents of %(administration)s",
        f.number("document_ids"),
        who=f.who,
        administration=f.administration,
    )


def _documents_rejected(f: _Facts) -> str:
    return ngettext(
        "%(who)s rejected %(num)d document of %(administration)s",
        "%(who)s rejected %(num)d documents of %(administration)s",
        f.number("document_ids"),
        who=f.who,
        administration=f.administration,
    )


def _documents_unlocked(f: _Facts) -> str:
    return ngettext(
        "%(who)s unlocked %(num)d migrated document of %(administration)s",
        "%(who)s unlocked %(num)d migrated documents of %(administration)s",
        f.number("count"),
        who=f.who,
        administration=f.administration,
    )


def _migration_file_exported(f: _Facts) -> str:
    return ngettext(
        "%(who)s exported %(administration)s to migration file %(file)s (%(num)d document)",
        "%(who)s exported %(administration)s to migration file %(file)s (%(num)d documents)",
        f.number("documents"),
        who=f.who,
        administration=f.administration,
        file=f.text("file_name"),
    )


def _import_uploaded(f: _Facts) -> str:
    return _(
        "%(who)s uploaded migration file %(file)s (%(size)s)",
        who=f.who,
        file=f.text("file"),
        size=_size(f.d["size"]),
    )


def _import_confirmed(f: _Facts) -> str:
    return _("%(who)s confirmed the import of %(file)s", who=f.who, file=f.import_file)


def _import_cancelled(f: _Facts) -> str:
    return _("%(who)s cancelled the import of %(file)s", who=f.who, file=f.import_file)


def _import_retried(f: _Facts) -> str:
    return _("%(who)s queued the import of %(file)s again", who=f.who, file=f.import_file)


def _import_completed(f: _Facts) -> str:
    administrations = ngettext(
        "%(num)d administration", "%(num)d administrations", f.number("administrations")
    )
    documents = ngettext("%(num)d document", "%(num)d documents", f.number("documents"))
    return _(
        "The import of %(file)s is complete: %(administrations)s, %(documents)s",
        file=f.import_file,
        administrations=administrations,
        documents=documents,
    )


def _import_failed(f: _Facts) -> str:
    return _(
        "The import of %(file)s failed: %(reason)s", file=f.import_file, reason=f.text("reason")
    )


def _upload_created(f: _Facts) -> str:
    return _(
        "%(who)s started uploading %(file)s (%(size)s)",
        who=f.who,
        file=f.text("filename"),
        size=_size(f.d["length"]),
    )


def _upload_completed(f: _Facts) -> str:
    return _(
        "%(who)s finished uploading %(file)s (%(size)s)",
        who=f.who,
        file=f.text("filename"),
        size=_size(f.d["length"]),
    )


def _upload_terminated(f: _Facts) -> str:
    return _("%(who)s stopped uploading %(file)s", who=f.who, file=f.text("filename"))


@dataclass(frozen=True)
class Action:
    """A recorded action: its label, its sentence and the details the sentence says
    (those are not repeated under it)."""

    label: object  # a lazy string
    sentence: Callable[[_Facts], str]
    says: frozenset[str] = frozenset()


def _action(label, sentence, *says: str) -> Action:
    return Action(label, sentence, frozenset(says))


ACTIONS: dict[str, Action] = {
    "transfer_offered": _action(_l("Transfer offered"), _transfer_offered, "administration_ids"),
    "transfer_withdrawn": _action(_l("Offer withdrawn"), _transfer_withdrawn),
    "transfer_extended": _action(_l("Offer extended"), _transfer_extended, "expires_at"),
    "transfer_resent": _action(_l("Offer sent again"), _transfer_resent, "recipients"),
    "transfer_expired": _action(_l("Offer expired"), _transfer_expired),
    "transfer_reminder_sent": _action(_l("Reminder sent"), _transfer_reminder_sent),
    "claim_code_failed": _action(_l("Transfer code refused"), _claim_code_failed, "reason"),
    "claim_submitted": _action(_l("Claim submitted"), _claim_submitted, "accepted", "currency"),
    "transfer_claimed": _action(_l("Transfer claimed"), _transfer_claimed),
    "administration_migrated": _action(
        _l("Administration copied"), _administration_migrated, "documents"
    ),
    "copy_failed": _action(_l("Copy failed"), _copy_failed, "error"),
    "copy_retried": _action(_l("Copy retried"), _copy_retried),
    "copy_slow": _action(_l("Copy taking long"), _copy_slow, "minutes"),
    "transfer_completed": _action(_l("Transfer completed"), _transfer_completed),
    "transfer_revoked": _action(_l("Transfer revoked by support"), _transfer_revoked, "reason"),
    "mail_queued": _action(_l("E-mail queued"), _mail_queued, "kind"),
    "mail_sent": _action(_l("E-mail sent"), _mail_sent, "kind"),
    "mail_failed": _action(_l("E-mail not sent"), _mail_failed, "error"),
    "login": _action(_l("Logged in"), _login),
    "login_failed": _action(_l("Login failed"), _login_failed, "reason"),
    "login_throttled": _action(_l("Logging in blocked"), _login_throttled, "until", "reason"),
    "logout": _action(_l("Logged out"), _logout),
    "sessions_ended": _action(_l("Logged out everywhere"), _sessions_ended),
    "password_changed": _action(_l("Password changed"), _password_changed),
    "api_token_created": _action(_l("API token created"), _api_token_created, "name"),
    "api_token_revoked": _action(_l("API token revoked"), _api_token_revoked, "name"),
    "user_added": _action(_l("User added"), _user_added, "email", "role"),
    "connection_added": _action(_l("Connection added"), _connection_added, "name", "package"),
    "authorizer_removed": _action(_l("Authorizer removed"), _authorizer_removed, "position"),
    "workflow_activated": _action(_l("Workflow activated"), _workflow_activated, "name"),
    "workflow_deactivated": _action(_l("Workflow deactivated"), _workflow_deactivated, "name"),
    "workflow_deleted": _action(_l("Workflow deleted"), _workflow_deleted, "name"),
    "document_uploaded": _action(_l("Document uploaded"), _document_uploaded, "size"),
    "documents_approved": _action(_l("Documents approved"), _documents_approved),
    "documents_rejected": _action(_l("Documents rejected"), _documents_rejected),
    "documents_unlocked": _action(_l("Documents unlocked"), _documents_unlocked),
    "migration_file_exported": _action(
        _l("Migration file exported"), _migration_file_exported, "file_name", "documents"
    ),
    "import_uploaded": _action(_l("Migration file uploaded"), _import_uploaded, "file", "size"),
    "import_confirmed": _action(_l("Import confirmed"), _import_confirmed),
    "import_cancelled": _action(_l("Import cancelled"), _import_cancelled),
    "import_retried": _action(_l("Import queued again"), _import_retried),
    "import_completed": _action(
        _l("Import completed"), _import_completed, "administrations", "documents"
    ),
    "import_failed": _action(_l("Import failed"), _import_failed, "reason"),
    "upload.created": _action(_l("Upload started"), _upload_created, "filename", "length"),
    "upload.completed": _action(_l("Upload completed"), _upload_completed, "filename", "length"),
    "upload.terminated": _action(_l("Upload stopped"), _upload_terminated, "filename"),
}


# --- the public face ----------------------------------------------------------------------------


def action_label(action: str) -> str:
    """An action's name for people: "Overdracht overgenomen"."""
    if action in ACTIONS:
        return str(ACTIONS[action].label)
    return _("Other event (%(code)s)", code=action)


def action_choices(actions: Iterable[str]) -> list[tuple[str, str]]:
    """(action, label) pairs for a filter list, in the order of their labels."""
    return sorted(((a, action_label(a)) for a in actions), key=lambda c: c[1].casefold())


def _generic(event: AuditEvent) -> str:
    if event.actor_email:
        return _("%(who)s: %(event)s", who=event.actor_email, event=action_label(event.action))
    return action_label(event.action)


def _sentence(event: AuditEvent, names: Names) -> tuple[str, bool]:
    """The sentence, and whether it is the action's own (not the generic fallback)."""
    action = ACTIONS.get(event.action)
    if action is None:
        return _generic(event), False
    try:
        return action.sentence(_Facts(event, names)), True
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        return _generic(event), False


def describe(event: AuditEvent, names: Names) -> str:
    """One event as a sentence in the current language."""
    return _sentence(event, names)[0]


def details(event: AuditEvent, says: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The details not in ``says`` that people read, as (label, value) pairs."""
    values = event.details if isinstance(event.details, dict) else {}
    said = set(says)
    pairs = []
    for key, (text, formatted) in _DETAILS.items():
        if key in said or values.get(key) in (None, "", [], {}):
            continue
        try:
            value = formatted(values[key])
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            continue
        if key == "fee_per_administration" and values.get("currency"):
            value = f"{values['currency']} {value}"
        if value:
            pairs.append((str(text), value))
    return pairs


@dataclass(frozen=True)
class Readable:
    """An audit event as a page or a download shows it."""

    event: AuditEvent
    sentence: str
    details: list[tuple[str, str]]
    office: str
    origin: str
    own_sentence: bool  # False when the action had to fall back to its label

    @property
    def role(self) -> str:
        return label(self.event.actor_role) if self.event.actor_role else ""


def readable(events: Sequence[AuditEvent], names: Names | None = None) -> list[Readable]:
    """``events`` in words, their names loaded in one go."""
    names = names if names is not None else names_for(events)
    rows = []
    for event in events:
        sentence, own = _sentence(event, names)
        action = ACTIONS.get(event.action)
        says = action.says if own and action is not None else frozenset()
        rows.append(
            Readable(
                event=event,
                sentence=sentence,
                details=details(event, says),
                office=names.offices.get(event.environment_id, "")
                if event.environment_id is not None
                else "",
                origin=origin_label(event.origin),
                own_sentence=own,
            )
        )
    return rows
