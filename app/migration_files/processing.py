"""The worker: process queued imports within ``IMPORT_WINDOW``.

An import is taken with a lease (``app.leases``) and renewed by a heartbeat, so a killed
or stopped worker's import is taken over. The file is checked again (it is read from
the blob store, not trusted from the dry run), then each administration lands in a
unit of work of its own: bytes first (every new file into the blob store, idempotent
because blobs are content-addressed), then, under the write lock, the plan is made
again against the database as it is now and the administration and its document rows
are written at once, all or nothing. An item is landed at most once: its state moves
from ``pending`` only in that unit, and its provenance row is unique per item.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import func, insert, select, update

from app import audit, leases
from app.admin_settings.landing import LandingRefused, Origin, land_administration
from app.admin_settings.models import (
    Administration,
    Connection,
    Document,
    DocumentStatus,
    Environment,
    ProvenanceOrigin,
)
from app.auth.models import User
from app.csvfiles import safe_cell
from app.db import begin_write, utcnow
from app.extensions import db
from app.leases import Heartbeat, LeasePolicy
from app.migration_files import format as fmt
from app.migration_files import planning
from app.migration_files.models import (
    ConflictPolicy,
    Import,
    ImportItem,
    ImportItemState,
    ImportState,
)
from app.migration_files.reader import Archive, DocumentRow, Package, read_package
from app.migration_files.window import current_window
from app.outbox import queue_mail
from app.progress import progress_store
from app.storage import blob_store, open_seekable
from app.transfers.notifications import external_url
from app.web import unit_of_work

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("package", "administration_code", "file", "filename", "result", "reason")
IMPORTED, PRESENT, SKIPPED, OVERWRITTEN, REFUSED = (
    "imported",
    "already_present",
    "conflict_skipped",
    "overwritten",
    "refused",
)


def policy() -> LeasePolicy:
    config = current_app.config
    return LeasePolicy(
        seconds=config["IMPORT_LEASE_SECONDS"],
        heartbeat_seconds=config["IMPORT_HEARTBEAT_SECONDS"],
        max_attempts=config["IMPORT_MAX_ATTEMPTS"],
    )


def progress_key(import_id: int) -> str:
    return f"import-{import_id}"


def waiting():
    """Imports a worker may take: queued, or importing under a lease that lapsed."""
    return Import.state.in_((ImportState.QUEUED, ImportState.IMPORTING))


def live_progress(imp: Import) -> tuple[int, int]:
    """(done, total) documents: the committed count, or the running worker's figure."""
    total = imp.documents_total or 0
    done = imp.documents_done or 0
    if imp.state is ImportState.IMPORTING:
        running = progress_store().read(progress_key(imp.id))
        if running is not None:
            done = max(done, min(running[0], total))
    if imp.state is ImportState.COMPLETED:
        done = total
    return done, total


class ImportBroken(Exception):
    """The stored file no longer passes the checks it passed in the dry run."""


def process_imports(*, now: datetime | None = None, limit: int = 1) -> int:
    """The job: process queued imports while the window is open; returns how many
    completed."""
    now = now or utcnow()
    if not current_window().is_open(now):
        return 0
    with unit_of_work():
        ids = leases.candidates(db.session, Import, waiting(), now, limit)
    return sum(process_import(i) for i in ids)


def process_import(import_id: int, *, now: datetime | None = None) -> bool:
    """Take one import and process it to the end; True when it completed."""
    now = now or utcnow()
    lease = policy()
    owner = leases.new_owner()
    with unit_of_work():
        begin_write(db.session)
        taken = leases.take(
            db.session, Import, import_id, waiting(), owner=owner, policy=lease, now=now
        )
        if taken:
            db.session.execute(
                update(Import)
                .where(Import.id == import_id)
                .values(
                    state=ImportState.IMPORTING, started_at=func.coalesce(Import.started_at, now)
                )
                .execution_options(synchronize_session=False)
            )
    if not taken:
        return False
    progress_store().clear(progress_key(import_id))
    with unit_of_work():
        imp = db.session.get(Import, import_id)
        if imp.attempts > lease.max_attempts:
            _fail(imp, f"gave up after {imp.attempts - 1} attempts that did not finish", owner)
            return False
    try:
        with Heartbeat(db.engine, Import, import_id, owner, lease):
            _process(import_id, owner)
    except Exception as error:  # noqa: BLE001 - recorded, retried after a back-off
        log.warning("import %s failed: %s", import_id, error, exc_info=True)
        _record_failure(import_id, owner, error)
        return False
    finally:
        progress_store().clear(progress_key(import_id))
    return True


@dataclass(frozen=True)
class _Job:
    """What processing needs of the import, read once."""

    id: int
    environment_id: int
    blob_key: str
    import_type: fmt.Scope
    default_status: DocumentStatus
    connections: dict[str, int]
    conflicts: ConflictPolicy
    source: str
    total: int


def _process(import_id: int, owner: str) -> None:
    with unit_of_work():
        imp = db.session.get(Import, import_id)
        job = _Job(
            imp.id,
            imp.environment_id,
            imp.blob_key,
            imp.import_type,
            imp.default_status,
            {k: int(v) for k, v in (imp.connections or {}).items()},
            imp.conflicts or ConflictPolicy.SKIP,
            imp.source_organization or imp.file_name,
            imp.documents_total or 0,
        )
        pending = list(
            db.session.scalars(
                select(ImportItem.id).where(
                    ImportItem.import_id == import_id,
                    ImportItem.state == ImportItemState.PENDING,
                )
            )
        )
    with open_seekable(job.blob_key) as fileobj:
        package = read_package(fileobj, planning_limits())
        if not package.ok:
            raise ImportBroken("the stored file no longer passes its checks")
        by_admin = planning.documents_by_administration(package, job.import_type)
        rows = {(a.package.value, a.code): a for a in package.administrations}
        with Archive(fileobj) as archive:
            for item_id in pending:
                _land_item(item_id, job, package, archive, rows, by_admin, owner)
    _finish(import_id, owner)


def planning_limits():
    """The dry run checked every byte of this very blob (its key is its hash): the
    document files are not hashed twice before they are streamed, and checked, again."""
    from app.migration_files.imports import limits

    return dataclasses.replace(limits(), verify_payload=False)


def _store_files(
    job: _Job, package: Package, archive: Archive, documents: list[DocumentRow], done: int
) -> None:
    """Bytes first: every file of these documents that the store lacks (idempotent)."""
    store = blob_store()
    wanted = {d.sha256: package.files[d.file] for d in documents}
    missing = sorted(store.missing(wanted))
    with store.deferred_sync():  # durable together, before any row names them
        _put_each(job, archive, wanted, missing, len(documents), done)


def _put_each(job: _Job, archive: Archive, wanted: dict, missing: list, count: int, done: int):
    store = blob_store()
    for n, key in enumerate(missing, 1):
        with archive.open(wanted[key]) as stream:
            if store.put(stream) != key:
                raise ImportBroken(f"file {wanted[key].name} changed while it was read")
        if n % 20 == 0 or n == len(missing):
            # Most of an administration's time goes here: the bar moves with the files.
            figure = done + count * n // len(missing)
            progress_store().report(progress_key(job.id), figure, job.total)


def _land_item(
    item_id: int,
    job: _Job,
    package: Package,
    archive: Archive,
    rows: dict,
    by_admin: dict,
    owner: str,
) -> None:
    with unit_of_work():
        item = db.session.get(ImportItem, item_id)
        key = (item.package, item.administration_code)
        done_before = db.session.scalar(select(Import.documents_done).where(Import.id == job.id))
    row = rows.get(key)
    documents = by_admin.get(key, [])
    if row is None:
        raise ImportBroken(f"administration {key} is no longer in the file")
    _store_files(job, package, archive, documents, done_before or 0)
    results: list[tuple[str, ...]] = []
    with unit_of_work():
        begin_write(db.session)
        config = current_app.config
        leases.bound_waits(
            db.session,
            lock_seconds=config["COPY_LOCK_TIMEOUT_SECONDS"],
            idle_seconds=config["COPY_IDLE_TIMEOUT_SECONDS"],
        )
        item = db.session.get(ImportItem, item_id, with_for_update=True)
        if item.state is not ImportItemState.PENDING:
            return  # landed by an earlier take that committed
        try:
            state, target_id, imported = _land(
                item,
                job,
                row,
                documents,
                results,
                {d.sha256: package.files[d.file].size for d in documents},
            )
        except (planning.Refusal, LandingRefused) as refusal:
            reason = (
                refusal.problem["message"] % refusal.problem["params"]
                if isinstance(refusal, planning.Refusal) and refusal.problem["params"]
                else str(getattr(refusal, "message", refusal))
            )
            state, target_id, imported = ImportItemState.FAILED, None, 0
            item.last_error = reason[:500]
            results.extend(_row(d, REFUSED, reason) for d in documents)
        item.state = state
        item.target_administration_id = target_id
        item.documents_imported = imported
        item.finished_at = utcnow()
        item.result_key = blob_store().put_bytes(_csv_rows(results))
        db.session.execute(
            update(Import)
            .where(Import.id == job.id, leases.held_by(Import, owner))
            .values(documents_done=Import.documents_done + len(documents))
            .execution_options(synchronize_session=False)
        )


def _row(doc: DocumentRow, result: str, reason: str = "") -> tuple[str, ...]:
    return (doc.package.value, doc.administration_code, doc.file, doc.filename, result, reason)


def _land(
    item: ImportItem,
    job: _Job,
    row,
    documents: list[DocumentRow],
    results: list,
    sizes: dict[str, int],
):
    plan = planning.plan_administration(row, documents, job.import_type, job.connections)
    environment = db.session.get(Environment, job.environment_id)
    if plan.existing_id is None:
        administration = land_administration(
            environment=environment,
            connection=db.session.get(Connection, plan.connection_id),
            package=row.package.value,
            name=row.name,
            code=row.code,
            contact_email=row.contact_email,
            origin=Origin(
                kind=ProvenanceOrigin.MIGRATION_FILE,
                source_environment_name=job.source[:200],
                import_item_id=item.id,
            ),
            now=utcnow(),
        )
    else:
        administration = db.session.get(Administration, plan.existing_id)
        if plan.conflict and job.conflicts is ConflictPolicy.SKIP:
            results.extend(_row(d, SKIPPED, "administration") for d in documents)
            return ImportItemState.SKIPPED, administration.id, 0
        if plan.conflict:
            administration.name = row.name
            administration.contact_email = row.contact_email
    new_rows = []
    imported = 0
    for doc in plan.documents:
        if doc.outcome == planning.NEW:
            new_rows.append(_document_values(doc.row, administration, job, sizes))
            results.append(_row(doc.row, IMPORTED))
            imported += 1
        elif doc.outcome == planning.PRESENT:
            results.append(_row(doc.row, PRESENT))
        elif job.conflicts is ConflictPolicy.OVERWRITE:
            values = _document_values(doc.row, administration, job, sizes)
            db.session.execute(
                update(Document)
                .where(Document.id == doc.existing_id)
                .values(**{k: v for k, v in values.items() if k not in _KEPT})
                .execution_options(synchronize_session=False)
            )
            results.append(_row(doc.row, OVERWRITTEN))
        else:
            results.append(_row(doc.row, SKIPPED, "document"))
    chunk = current_app.config["IMPORT_DOCUMENT_CHUNK"]
    for start in range(0, len(new_rows), chunk):
        db.session.execute(insert(Document), new_rows[start : start + chunk])
    db.session.flush()
    return ImportItemState.LANDED, administration.id, imported


_KEPT = {"environment_id", "administration_id", "blob_key", "size", "created_at"}


def _document_values(
    row: DocumentRow, administration: Administration, job: _Job, sizes: dict[str, int]
) -> dict:
    """A document row as it lands: decided ones locked ("gemigreerd"), undecided ones
    with the importer's default status."""
    decided = row.status in (DocumentStatus.APPROVED, DocumentStatus.REJECTED)
    return {
        "environment_id": administration.environment_id,
        "administration_id": administration.id,
        "blob_key": row.sha256,
        "size": sizes[row.sha256],
        "content_type": row.content_type,
        "filename": row.filename,
        "kind": row.kind,
        "counterparty": row.counterparty,
        "amount": row.amount,
        "currency": row.currency or "EUR",
        "invoice_date": row.invoice_date,
        "status": row.status or job.default_status,
        "booked_year": row.booked_year,
        "booked_period": row.booked_period,
        "uploaded_by_name": row.uploaded_by,
        "decided_by_name": row.decided_by,
        "decided_at": row.decided_at,
        "locked": decided,
        "created_at": utcnow(),
    }


def _csv_rows(rows: list[tuple[str, ...]]) -> bytes:
    """Rows of the result CSV; the file's names come from elsewhere, so no cell may run
    as a formula when the list is opened in a spreadsheet (``app.csvfiles``)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=fmt.CSV_DELIMITER, lineterminator="\r\n")
    writer.writerows([safe_cell(v) for v in row] for row in rows)
    return out.getvalue().encode("utf-8")


def _finish(import_id: int, owner: str) -> None:
    """Write the result CSV, complete the import and tell the uploader."""
    store = blob_store()
    with unit_of_work():
        items = list(
            db.session.scalars(
                select(ImportItem).where(ImportItem.import_id == import_id).order_by(ImportItem.id)
            )
        )
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as out:
            head = io.StringIO()
            csv.writer(head, delimiter=fmt.CSV_DELIMITER, lineterminator="\r\n").writerow(
                RESULT_COLUMNS
            )
            out.write(head.getvalue().encode(fmt.CSV_ENCODING))
            for item in items:
                if item.result_key:
                    with store.open(item.result_key) as part:
                        while chunk := part.read(1024 * 1024):
                            out.write(chunk)
            out.seek(0)
            result_key = store.put(out)
        now = utcnow()
        done = db.session.execute(
            update(Import)
            .where(Import.id == import_id, leases.held_by(Import, owner))
            .values(
                state=ImportState.COMPLETED,
                result_blob_key=result_key,
                finished_at=now,
                lease_owner=None,
                lease_until=None,
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:
            return  # the lease was lost; the worker that holds it finishes
        imp = db.session.get(Import, import_id)
        db.session.refresh(imp)
        counts = {
            "administrations": sum(i.state is ImportItemState.LANDED for i in items),
            "documents": sum(i.documents_imported for i in items),
            "failed": sum(i.state is ImportItemState.FAILED for i in items),
        }
        audit.record(
            "import_completed",
            actor=None,
            object_type="import",
            object_id=imp.id,
            environment_id=imp.environment_id,
            details=counts,
        )
        _mail_uploader(imp, "import_completed", counts)


def _mail_uploader(imp: Import, kind: str, counts: dict) -> None:
    user = db.session.get(User, imp.uploaded_by_id) if imp.uploaded_by_id else None
    if user is None:
        return
    subjects = {
        "import_completed": "Your migration file has been imported",
        "import_failed": "Your migration file could not be imported",
    }
    from app.errors import N_

    N_("Your migration file has been imported")
    N_("Your migration file could not be imported")
    link = external_url("imports.detail", import_id=imp.id)
    queue_mail(
        kind=kind,
        to=user.email,
        subject=subjects[kind],
        template=kind,
        context={
            "name": user.name,
            "file_name": imp.file_name,
            "counts": counts,
            "link": link,
            "error": imp.last_error,
        },
        language=user.language,
        environment_id=imp.environment_id,
        ref=("import", imp.id),
    )


def _fail(imp: Import, reason: str, owner: str) -> None:
    db.session.execute(
        update(Import)
        .where(Import.id == imp.id, leases.held_by(Import, owner))
        .values(
            state=ImportState.FAILED,
            last_error=reason[:500],
            finished_at=utcnow(),
            lease_owner=None,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(imp)
    audit.record(
        "import_failed",
        actor=None,
        object_type="import",
        object_id=imp.id,
        environment_id=imp.environment_id,
        details={"reason": reason[:500]},
    )
    _mail_uploader(imp, "import_failed", {})


def _record_failure(import_id: int, owner: str, error: Exception) -> None:
    lease = policy()
    message = f"{type(error).__name__}: {error}"
    with unit_of_work():
        begin_write(db.session)
        imp = db.session.get(Import, import_id)
        if imp is None or imp.lease_owner != owner:
            return
        if isinstance(error, ImportBroken) or imp.attempts >= lease.max_attempts:
            _fail(imp, message, owner)
            return
        imp.last_error = message[:500]
        leases.back_off(db.session, Import, import_id, owner, imp.attempts, lease)
