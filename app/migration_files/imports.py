"""An import's life: created from an uploaded file and checked at once (the dry run),
then confirmed (queued) or cancelled; processed by the worker (``processing``); a failed
one retried. Every state change is one conditional step here, audited.

    uploading → checking → awaiting_confirmation | refused → queued → importing
              → completed | failed (retryable)
"""

from __future__ import annotations

from datetime import datetime
from typing import BinaryIO

from flask import current_app
from sqlalchemy import func, select, update

from app import audit
from app.admin_settings.models import DocumentStatus, Environment
from app.auth.models import User
from app.db import utcnow
from app.errors import N_, Conflict, NotFoundError, ServiceError
from app.extensions import db
from app.migration_files import planning
from app.migration_files.format import Scope
from app.migration_files.models import (
    ConflictPolicy,
    Import,
    ImportItem,
    ImportItemState,
    ImportState,
)
from app.migration_files.reader import Limits, read_package
from app.migration_files.window import current_window
from app.scoping import scoped_select
from app.storage import open_seekable
from app.transfers.access import require_migrate, require_support

QUEUED_STATES = (ImportState.QUEUED, ImportState.IMPORTING)


class AlreadyImported(Conflict):
    """This upload has an import already (a second submit of the same form)."""

    def __init__(self, import_id: int) -> None:
        super().__init__("upload_token", N_("This file has been uploaded for an import already."))
        self.import_id = import_id


def _choice(enum_cls, value, field: str, message: str):
    try:
        return enum_cls(value)
    except ValueError:
        raise ServiceError(field, message)


def create_import(
    actor: User,
    *,
    blob_key: str,
    size: int,
    file_name: str,
    import_type: str,
    default_status: str,
    connections: dict[str, int] | None = None,
    upload_id: int | None = None,
    origin: str,
) -> Import:
    """A new import of the file stored under ``blob_key``, in state ``checking``; the
    caller runs ``dry_run`` next (the same request for the page and the API)."""
    require_migrate(actor)
    environment = db.session.get(Environment, actor.environment_id)
    planning.require_premium(environment)
    scope = _choice(Scope, import_type, "import_type", N_("Choose what to import."))
    status = _choice(
        DocumentStatus,
        default_status,
        "default_status",
        N_("Choose the status for documents that carry none."),
    )
    resolved = planning.resolve_connections(environment.id, connections)
    if upload_id is not None:
        earlier = db.session.scalar(
            select(Import.id).where(
                Import.upload_id == upload_id, Import.environment_id == environment.id
            )
        )
        if earlier is not None:
            raise AlreadyImported(earlier)
    imp = Import(
        environment_id=environment.id,
        uploaded_by_id=actor.id,
        uploaded_by_name=actor.name,
        upload_id=upload_id,
        file_name=(file_name or "migratiebestand.zip")[:255],
        blob_key=blob_key,
        size=size,
        import_type=scope,
        default_status=status,
        connections=resolved,
        state=ImportState.CHECKING,
    )
    db.session.add(imp)
    db.session.flush()
    audit.record(
        "import_uploaded",
        actor=actor,
        object_type="import",
        object_id=imp.id,
        environment_id=environment.id,
        origin=origin,
        details={"file": imp.file_name, "size": size, "import_type": scope.value},
    )
    return imp


def limits() -> Limits:
    return Limits.from_config(current_app.config)


def dry_run(imp: Import, *, fileobj: BinaryIO | None = None) -> Import:
    """Read and check the file, plan the import and record the report: the import waits
    for confirmation, or is refused when anything is wrong. Nothing else is written."""
    if imp.state is not ImportState.CHECKING:
        raise Conflict("state", N_("This import has been checked already."))
    own = fileobj is None
    fileobj = fileobj or open_seekable(imp.blob_key)
    try:
        package = read_package(fileobj, limits())
    finally:
        if own:
            fileobj.close()
    environment = db.session.get(Environment, imp.environment_id)
    result = planning.plan(package, environment, imp.import_type, imp.connections)
    counts = result.counts()
    imp.source_organization = (package.source_organization or "")[:200] or None
    imp.report = {
        "counts": counts,
        "conflicts": result.conflicts(),
        "errors": result.problems,
        "scope": package.scope.value if package.scope else None,
    }
    imp.documents_total = sum(len(a.documents) for a in result.administrations)
    imp.documents_done = 0
    if result.problems:
        imp.state = ImportState.REFUSED
    else:
        imp.state = ImportState.AWAITING_CONFIRMATION
        for a in result.administrations:
            db.session.add(
                ImportItem(
                    environment_id=imp.environment_id,
                    import_id=imp.id,
                    package=a.row.package.value,
                    administration_code=a.row.code,
                    name=a.row.name,
                    documents_total=len(a.documents),
                )
            )
    db.session.flush()
    return imp


def import_for(actor: User, import_id: int) -> Import:
    """The actor's environment's import, or 404 (support sees every one)."""
    if actor.environment_id is None:
        require_support(actor)
        imp = db.session.get(Import, import_id)
    else:
        require_migrate(actor)
        imp = db.session.scalars(scoped_select(Import, actor).where(Import.id == import_id)).first()
    if imp is None:
        raise NotFoundError()
    return imp


def _move(imp: Import, allowed: tuple[ImportState, ...], **values) -> bool:
    """One conditional UPDATE: the import moves only from a state in ``allowed``."""
    result = db.session.execute(
        update(Import)
        .where(Import.id == imp.id, Import.state.in_(allowed))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    db.session.refresh(imp)
    return result.rowcount == 1


def confirm(actor: User, import_id: int, *, conflicts: str | None, origin: str) -> Import:
    """Queue a checked import; conflicts in its report need a choice: skip or overwrite."""
    imp = import_for(actor, import_id)
    if actor.environment_id is None:
        raise NotFoundError()
    policy = None
    if conflicts:
        policy = _choice(
            ConflictPolicy, conflicts, "conflicts", N_("Choose skip or overwrite for conflicts.")
        )
    has_conflicts = (imp.report or {}).get("counts", {}).get("conflicts")
    if imp.state is ImportState.AWAITING_CONFIRMATION and policy is None and has_conflicts:
        raise ServiceError(
            "conflicts", N_("The file has conflicts: choose to skip or overwrite them.")
        )
    now = utcnow()
    if not _move(
        imp,
        (ImportState.AWAITING_CONFIRMATION,),
        state=ImportState.QUEUED,
        conflicts=policy or ConflictPolicy.SKIP,
        confirmed_at=now,
        queued_at=now,
    ):
        raise Conflict("state", N_("This import is not waiting for confirmation."))
    audit.record(
        "import_confirmed",
        actor=actor,
        object_type="import",
        object_id=imp.id,
        environment_id=imp.environment_id,
        origin=origin,
        details={"conflicts": imp.conflicts.value},
    )
    return imp


def cancel(actor: User, import_id: int, *, origin: str) -> Import:
    imp = import_for(actor, import_id)
    if actor.environment_id is None or not _move(
        imp,
        (ImportState.AWAITING_CONFIRMATION, ImportState.REFUSED),
        state=ImportState.CANCELLED,
        finished_at=utcnow(),
    ):
        raise Conflict("state", N_("Only an import that waits for confirmation can be cancelled."))
    audit.record(
        "import_cancelled",
        actor=actor,
        object_type="import",
        object_id=imp.id,
        environment_id=imp.environment_id,
        origin=origin,
    )
    return imp


def retry(actor: User | None, import_id: int, *, origin: str) -> Import:
    """Queue a failed import again (support, or a superuser of its environment); what
    landed before stays, and is not landed twice."""
    if actor is None:
        imp = db.session.get(Import, import_id)
        if imp is None:
            raise NotFoundError()
    else:
        imp = import_for(actor, import_id)
    now = utcnow()
    if not _move(
        imp,
        (ImportState.FAILED,),
        state=ImportState.QUEUED,
        queued_at=now,
        attempts=0,
        lease_owner=None,
        lease_until=None,
        last_error=None,
        finished_at=None,
    ):
        raise Conflict("state", N_("Only a failed import can be retried."))
    db.session.execute(
        update(ImportItem)
        .where(ImportItem.import_id == imp.id, ImportItem.state == ImportItemState.FAILED)
        .values(state=ImportItemState.PENDING, last_error=None)
    )
    audit.record(
        "import_retried",
        actor=actor,
        object_type="import",
        object_id=imp.id,
        environment_id=imp.environment_id,
        origin=origin,
    )
    return imp


def queue_position(imp: Import) -> int | None:
    """1 for the next import to be processed (of every environment), None when not queued."""
    if imp.state not in QUEUED_STATES or imp.queued_at is None:
        return None
    if imp.state is ImportState.IMPORTING:
        return 1
    ahead = db.session.scalar(
        select(func.count())
        .select_from(Import)
        .where(
            Import.state.in_(QUEUED_STATES),
            (Import.queued_at < imp.queued_at)
            | ((Import.queued_at == imp.queued_at) & (Import.id < imp.id)),
        )
    )
    return (ahead or 0) + 1


def starts_at(imp: Import, now: datetime | None = None) -> datetime | None:
    """When processing of a queued import may start: now, or when the window opens."""
    if imp.state is not ImportState.QUEUED:
        return None
    return current_window().opens_at(now or utcnow())


def progress(imp: Import) -> tuple[int, int]:
    """(done, total) documents; the item counts are committed per administration."""
    from app.migration_files.processing import live_progress

    return live_progress(imp)


def list_imports(actor: User, *, limit: int = 20) -> list[Import]:
    require_migrate(actor)
    return list(
        db.session.scalars(
            scoped_select(Import, actor)
            .where(Import.state != ImportState.CANCELLED)
            .order_by(Import.created_at.desc(), Import.id.desc())
            .limit(limit)
        )
    )
