"""Locked ("gemigreerd") documents: imported from a migration file already decided.

A locked document is shown, read and downloaded like any other, but nothing changes
it until a superuser unlocks it; then it behaves as any document, with the status it
was imported with (approved or rejected). The lock is ``Document.locked``.

Every service that changes or deletes documents calls :func:`refuse_locked` on the
documents it is about to touch, before it touches any: a batch that holds a locked
document changes nothing at all (like a batch with a foreign id), and the error names
the locked ones, so the user unlocks them or leaves them out, and tries again.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import current_app

from app import audit
from app.admin_settings.domain import is_read_only
from app.admin_settings.models import Administration, Document
from app.auth.domain import Permission, has_permission
from app.auth.models import User
from app.errors import N_, NotAllowed, ServiceError
from app.extensions import db
from app.scoping import get_scoped_or_404, scoped_ids

LOCKED_ONE = N_("This document is migrated and locked; unlock it first.")
LOCKED_MANY = N_(
    "Nothing was changed: these documents are migrated and locked; unlock them first: %(names)s."
)


class DocumentLocked(ServiceError):
    """A change asked of one or more locked documents (422 under ``document_ids``)."""

    def __init__(self, documents: list[Document], *, chosen: int) -> None:
        self.document_ids = sorted(d.id for d in documents)
        if chosen == 1 and len(documents) == 1:
            super().__init__("document_ids", LOCKED_ONE)
        else:
            names = ", ".join(d.filename for d in sorted(documents, key=lambda d: d.id))
            super().__init__("document_ids", LOCKED_MANY, names=names)


def refuse_locked(documents: Iterable[Document]) -> None:
    """Raise :class:`DocumentLocked` when any of ``documents`` is locked; call it before
    changing any of them."""
    chosen = list(documents)
    locked = [d for d in chosen if d.locked]
    if locked:
        raise DocumentLocked(locked, chosen=len(chosen))


def unlock_documents(
    actor: User, administration_id: int, document_ids: list[int], *, origin: str
) -> int:
    """Unlock documents of one administration (superusers only); returns how many were
    locked and are now unlocked.

    Another environment's administration or document, or a document of another
    administration, is a 404 for the whole batch. Ids already unlocked change nothing;
    when nothing changed, nothing is audited.
    """
    if not has_permission(actor.role, Permission.UNLOCK_DOCUMENTS):
        raise NotAllowed()
    administration = get_scoped_or_404(Administration, administration_id, actor)
    if is_read_only(administration.state):
        raise ServiceError(
            "administration",
            N_("This administration has moved to another office and is read-only."),
        )
    documents = chosen_documents(actor, administration, document_ids)
    unlocked = sorted((d for d in documents if d.locked), key=lambda d: d.id)
    for document in unlocked:
        document.locked = False
    if unlocked:
        audit.record(
            "documents_unlocked",
            actor=actor,
            object_type="administration",
            object_id=administration.id,
            environment_id=administration.environment_id,
            origin=origin,
            details={"count": len(unlocked), "document_ids": [d.id for d in unlocked]},
        )
    db.session.flush()
    return len(unlocked)


def chosen_documents(
    actor: User, administration: Administration, document_ids: list[int]
) -> list[Document]:
    """The documents a batch action names: at least one, at most ``MAX_LIST_ITEMS``, all of
    this administration in the actor's environment (else ``NotFoundError``)."""
    if not document_ids:
        raise ServiceError("document_ids", N_("Choose at least one document."))
    limit = current_app.config["MAX_LIST_ITEMS"]
    if len(document_ids) > limit:
        raise ServiceError(
            "document_ids", N_("Choose at most %(max)d documents at once."), max=limit
        )
    return scoped_ids(Document, document_ids, actor, administration_id=administration.id)
