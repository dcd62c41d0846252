"""Settings › Administraties: reading administrations and clearing their blockers.

Services take the acting user and plain arguments, look objects up through
``app.scoping`` and flush; the caller commits.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import BinaryIO

from flask import current_app
from sqlalchemy import func, select

from app import audit
from app.admin_settings.domain import (
    AdministrationFacts,
    Blocker,
    blockers,
    decision_status,
    is_read_only,
    safe_filename,
    sniff_content_type,
)
from app.admin_settings.locks import chosen_documents, refuse_locked
from app.admin_settings.models import (
    Administration,
    AdministrationState,
    AuthorizationFlow,
    AuthorizationStep,
    Connection,
    Document,
    DocumentKind,
    DocumentStatus,
    Package,
    Workflow,
)
from app.admin_settings.provenance import Move, moves_of
from app.auth.domain import Permission, has_permission
from app.auth.models import Role, User
from app.auth.services import create_user
from app.db import utcnow
from app.errors import N_, NotAllowed, NotFoundError, ServiceError
from app.extensions import db
from app.paging import Page
from app.scoping import get_scoped_or_404, scoped_select
from app.storage import StorageUnavailable, blob_store
from app.transfers.domain import ItemState
from app.transfers.moving import moving_of

log = logging.getLogger(__name__)


def require(actor: User, permission: Permission) -> None:
    """Refuse an actor whose role lacks ``permission``."""
    if not has_permission(actor.role, permission):
        raise NotAllowed()


def _require_writable(administration: Administration) -> None:
    if is_read_only(administration.state):
        raise ServiceError(
            "administration",
            N_("This administration has moved to another office and is read-only."),
        )


@dataclass(frozen=True)
class AdministrationRow:
    administration: Administration
    facts: AdministrationFacts
    # Where it went and came from (``provenance``), and the state of the move it is in
    # now (``app.transfers.moving``).
    moves: list[Move] = field(default_factory=list)
    moving: ItemState | None = None

    @property
    def blockers(self) -> list[Blocker]:
        return blockers(self.facts)


def facts_for(administration_ids: Iterable[int]) -> dict[int, AdministrationFacts]:
    """The checklist's raw counts for many administrations, in three grouped queries."""
    ids = list(administration_ids)
    if not ids:
        return {}
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    status_rows = db.session.execute(
        select(Document.administration_id, Document.status, Document.locked, func.count())
        .where(Document.administration_id.in_(ids))
        .group_by(Document.administration_id, Document.status, Document.locked)
    )
    for admin_id, status, locked, n in status_rows:
        key = f"{status.value}_documents"
        counts[admin_id][key] = counts[admin_id].get(key, 0) + n
        if locked:
            counts[admin_id][f"locked_{key}"] = n
    workflow_rows = db.session.execute(
        select(Workflow.administration_id, func.count())
        .where(Workflow.administration_id.in_(ids), Workflow.active.is_(True))
        .group_by(Workflow.administration_id)
    )
    for admin_id, n in workflow_rows:
        counts[admin_id]["active_workflows"] = n
    step_rows = db.session.execute(
        select(AuthorizationFlow.administration_id, func.count(AuthorizationStep.id))
        .join(AuthorizationStep, AuthorizationStep.flow_id == AuthorizationFlow.id)
        .where(AuthorizationFlow.administration_id.in_(ids))
        .group_by(AuthorizationFlow.administration_id)
    )
    for admin_id, n in step_rows:
        counts[admin_id]["authorizer_steps"] = n
    return {i: AdministrationFacts(**c) for i, c in counts.items()}


def list_administrations(actor: User) -> list[tuple[Connection, list[AdministrationRow]]]:
    """The actor's administrations grouped per connection, each with its facts."""
    require(actor, Permission.VIEW_ADMINISTRATIONS)
    connections = list(
        db.session.scalars(
            scoped_select(Connection, actor).order_by(Connection.name, Connection.id)
        )
    )
    administrations = list(
        db.session.scalars(scoped_select(Administration, actor).order_by(Administration.name))
    )
    facts = facts_for(a.id for a in administrations)
    moves = moves_of(a.id for a in administrations)
    moving = moving_of(a.id for a in administrations)
    by_connection: dict[int, list[AdministrationRow]] = {c.id: [] for c in connections}
    for administration in administrations:
        by_connection[administration.connection_id].append(
            AdministrationRow(
                administration,
                facts[administration.id],
                moves[administration.id],
                moving.get(administration.id),
            )
        )
    return [(c, by_connection[c.id]) for c in connections]


def get_administration(actor: User, administration_id: int) -> AdministrationRow:
    require(actor, Permission.VIEW_ADMINISTRATIONS)
    administration = get_scoped_or_404(Administration, administration_id, actor)
    return AdministrationRow(
        administration,
        facts_for([administration.id])[administration.id],
        moves_of([administration.id])[administration.id],
        moving_of([administration.id]).get(administration.id),
    )


def list_documents(
    actor: User,
    administration_id: int,
    *,
    status: DocumentStatus | None = None,
    locked: bool | None = None,
    page: int = 1,
    per_page: int | None = None,
) -> Page[Document]:
    """One page of an administration's documents, newest invoice first; ``status`` and
    ``locked`` narrow it down when given."""
    require(actor, Permission.VIEW_ADMINISTRATIONS)
    administration = get_scoped_or_404(Administration, administration_id, actor)
    per_page = per_page or current_app.config["DOCUMENTS_PER_PAGE"]
    page = max(1, page)
    stmt = scoped_select(Document, actor).where(Document.administration_id == administration.id)
    if status is not None:
        stmt = stmt.where(Document.status == status)
    if locked is not None:
        stmt = stmt.where(Document.locked.is_(locked))
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    documents = list(
        db.session.scalars(
            stmt.order_by(Document.invoice_date.desc(), Document.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )
    return Page(documents, page, per_page, total)


def get_document(actor: User, administration_id: int, document_id: int) -> Document:
    require(actor, Permission.DOWNLOAD_DOCUMENTS)
    administration = get_scoped_or_404(Administration, administration_id, actor)
    document = get_scoped_or_404(Document, document_id, actor)
    if document.administration_id != administration.id:
        raise NotFoundError()
    return document


def decide_documents(
    actor: User, administration_id: int, document_ids: list[int], action: str, *, origin: str
) -> int:
    """Approve or reject documents of one administration; returns how many changed.

    Deciding a document again with the same outcome changes nothing. A batch that holds
    a locked ("gemigreerd") document changes nothing at all and names the locked ones
    (``locks.DocumentLocked``): all or nothing, like a batch with a foreign id, so no
    one is left guessing which of the chosen documents were decided.
    """
    require(actor, Permission.DECIDE_DOCUMENTS)
    administration = get_scoped_or_404(Administration, administration_id, actor)
    _require_writable(administration)
    try:
        status = decision_status(action)
    except ValueError:
        raise ServiceError("action", N_("Choose approve or reject.")) from None
    documents = chosen_documents(actor, administration, document_ids)
    refuse_locked(documents)
    now = utcnow()
    changed = [d for d in documents if d.status is not status]
    for document in changed:
        document.status = status
        document.decided_by_id = actor.id
        document.decided_by_name = actor.name
        document.decided_at = now
    if changed:
        audit.record(
            f"documents_{status.value}",
            actor=actor,
            object_type="administration",
            object_id=administration.id,
            environment_id=administration.environment_id,
            origin=origin,
            details={"document_ids": sorted(d.id for d in changed)},
        )
    db.session.flush()
    return len(changed)


def upload_document(
    actor: User,
    administration_id: int,
    *,
    filename: str,
    stream: BinaryIO,
    kind: DocumentKind = DocumentKind.OTHER,
    counterparty: str | None = None,
    invoice_date: date | None = None,
    origin: str,
) -> Document:
    """Store a PDF or image and add it as a pending document.

    ``stream`` is the file, seekable (an upload's own stream): it is checked (size,
    magic bytes) before anything is stored, then streamed to the blob store. When the
    store cannot take it, nothing is stored and no document is made.
    """
    require(actor, Permission.UPLOAD_DOCUMENTS)
    administration = get_scoped_or_404(Administration, administration_id, actor)
    _require_writable(administration)
    if administration.state is AdministrationState.OFFERED:
        # A new document would be undecided: an offered administration gains no blocker.
        raise ServiceError(
            "file",
            N_(
                "This administration is on offer to another office. Withdraw the offer to add documents."
            ),
        )
    start = stream.tell()
    size = stream.seek(0, os.SEEK_END) - start
    stream.seek(start)
    if size <= 0:
        raise ServiceError("file", N_("The file is empty."))
    limit = current_app.config["MAX_UPLOAD_BYTES"]
    if size > limit:
        raise ServiceError(
            "file",
            N_("The file is too large. The maximum is %(mb)s MB."),
            mb=f"{limit / 1048576:g}",
        )
    content_type = sniff_content_type(stream.read(16))
    stream.seek(start)
    if content_type is None:
        raise ServiceError(
            "file", N_("Only PDF files and images (PNG, JPEG, GIF, TIFF, WebP) can be uploaded.")
        )
    try:
        key = blob_store().put(stream)
    except StorageUnavailable as exc:
        log.warning("upload to administration %s not stored: %s", administration.id, exc)
        raise ServiceError(
            "file", N_("The file could not be stored right now. Try again in a few minutes.")
        ) from exc
    document = Document(
        environment_id=administration.environment_id,
        administration_id=administration.id,
        blob_key=key,
        size=size,
        content_type=content_type,
        filename=safe_filename(filename),
        kind=kind,
        counterparty=(counterparty or "").strip() or None,
        invoice_date=invoice_date,
        status=DocumentStatus.PENDING,
        uploaded_by_id=actor.id,
        uploaded_by_name=actor.name,
    )
    db.session.add(document)
    db.session.flush()
    audit.record(
        "document_uploaded",
        actor=actor,
        object_type="document",
        object_id=document.id,
        environment_id=administration.environment_id,
        origin=origin,
        details={"administration_id": administration.id, "size": size},
    )
    return document


def _workflow(actor: User, administration_id: int, workflow_id: int) -> Workflow:
    require(actor, Permission.MANAGE_SETTINGS)
    administration = get_scoped_or_404(Administration, administration_id, actor)
    _require_writable(administration)
    workflow = get_scoped_or_404(Workflow, workflow_id, actor)
    if workflow.administration_id != administration.id:
        raise NotFoundError()
    return workflow


def set_workflow_active(
    actor: User, administration_id: int, workflow_id: int, active: bool, *, origin: str
) -> Workflow:
    """Deactivate a workflow, or activate it again (undo); audited when it changes."""
    workflow = _workflow(actor, administration_id, workflow_id)
    if workflow.active != active:
        workflow.active = active
        audit.record(
            "workflow_activated" if active else "workflow_deactivated",
            actor=actor,
            object_type="workflow",
            object_id=workflow.id,
            environment_id=workflow.environment_id,
            origin=origin,
            details={"administration_id": administration_id, "name": workflow.name},
        )
        db.session.flush()
    return workflow


def delete_workflow(actor: User, administration_id: int, workflow_id: int, *, origin: str) -> None:
    workflow = _workflow(actor, administration_id, workflow_id)
    audit.record(
        "workflow_deleted",
        actor=actor,
        object_type="workflow",
        object_id=workflow.id,
        environment_id=workflow.environment_id,
        origin=origin,
        details={"administration_id": administration_id, "name": workflow.name},
    )
    db.session.delete(workflow)
    db.session.flush()


def remove_authorizer(actor: User, administration_id: int, step_id: int, *, origin: str) -> None:
    """Take one authorizer out of an authorization flow (the step goes; the flow stays)."""
    require(actor, Permission.MANAGE_SETTINGS)
    administration = get_scoped_or_404(Administration, administration_id, actor)
    _require_writable(administration)
    step = get_scoped_or_404(AuthorizationStep, step_id, actor)
    flow = db.session.get(AuthorizationFlow, step.flow_id)
    if flow is None or flow.administration_id != administration.id:
        raise NotFoundError()
    audit.record(
        "authorizer_removed",
        actor=actor,
        object_type="authorization_flow",
        object_id=flow.id,
        environment_id=flow.environment_id,
        origin=origin,
        details={
            "administration_id": administration_id,
            "authorizer_id": step.authorizer_id,
            "position": step.position,
        },
    )
    db.session.delete(step)
    db.session.flush()


def list_users(actor: User) -> list[User]:
    require(actor, Permission.MANAGE_SETTINGS)
    return list(db.session.scalars(scoped_select(User, actor).order_by(User.role, User.name)))


def list_connections(actor: User) -> list[tuple[Connection, int]]:
    """The actor's connections with how many administrations each holds."""
    require(actor, Permission.MANAGE_SETTINGS)
    counts = dict(
        db.session.execute(
            select(Administration.connection_id, func.count())
            .where(Administration.environment_id == actor.environment_id)
            .group_by(Administration.connection_id)
        ).all()
    )
    connections = db.session.scalars(
        scoped_select(Connection, actor).order_by(Connection.name, Connection.id)
    )
    return [(c, counts.get(c.id, 0)) for c in connections]


def add_connection(actor: User, package: Package, name: str | None, *, origin: str) -> Connection:
    """Link the actor's environment to an accounting package (several per package allowed)."""
    require(actor, Permission.MANAGE_SETTINGS)
    connection = Connection(
        environment_id=actor.environment_id,
        package=package,
        name=(name or "").strip() or package.label,
    )
    db.session.add(connection)
    db.session.flush()
    audit.record(
        "connection_added",
        actor=actor,
        object_type="connection",
        object_id=connection.id,
        environment_id=actor.environment_id,
        origin=origin,
        details={"package": package.value, "name": connection.name},
    )
    return connection


def add_user(actor: User, *, email: str, name: str, role: Role, password: str, origin: str) -> User:
    """Add a superuser, user or authorizer to the actor's environment."""
    require(actor, Permission.MANAGE_SETTINGS)
    if role is Role.SUPPORT:
        raise ServiceError("role", N_("Choose superuser, user or authorizer."))
    email = email.strip().lower()
    if db.session.scalar(select(func.count()).where(func.lower(User.email) == email)):
        raise ServiceError("email", N_("There is already a user with this e-mail address."))
    user = create_user(
        email=email,
        name=name.strip(),
        role=role,
        password=password,
        environment_id=actor.environment_id,
    )
    audit.record(
        "user_added",
        actor=actor,
        object_type="user",
        object_id=user.id,
        environment_id=actor.environment_id,
        origin=origin,
        details={"email": user.email, "role": role.value},
    )
    return user
