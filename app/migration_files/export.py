"""Exporting administrations to a migration file: who may, which, and the bag's content.

``export_administrations`` decides everything that can be refused (role, tenant, one
connection) and writes the audit event in the caller's unit of work; the bytes come
afterwards, from the returned ``chunks``, read from the database in pages and from
the blob store in ``CHUNK`` pieces while the zip streams out. The source is only read.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select

from app import audit
from app.admin_settings.models import Administration, Connection, Document, Environment
from app.auth.models import User
from app.errors import N_, ServiceError
from app.extensions import db
from app.migration_files import format as fmt
from app.migration_files.bag import PayloadEntry, stream_chunks, write_bag
from app.scoping import scoped_ids
from app.storage import blob_store
from app.transfers.access import require_migrate

PAGE = 1000  # documents (or distinct files) read from the database at a time
CSV_PIECE = 64 * 1024  # CSV text handed on in pieces of about this size

# A file's extension in the bag, by its content type (the upload sniffs it from the bytes,
# so documents that share a file share its type).
EXTENSIONS = {
    "application/pdf": "pdf",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/tiff": "tif",
    "image/webp": "webp",
    "application/xml": "xml",
    "text/xml": "xml",
}
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class MigrationFileExport:
    """What a view needs to answer: the download's name and its bytes, as chunks."""

    filename: str
    administration_ids: tuple[int, ...]
    document_count: int
    chunks: Iterator[bytes]


@dataclass(frozen=True)
class _Scope:
    """The exported documents: of these administrations, up to ``last_id``."""

    environment_id: int
    administration_ids: tuple[int, ...]
    last_id: int

    def where(self):
        return (
            (Document.environment_id == self.environment_id)
            & Document.administration_id.in_(self.administration_ids)
            & (Document.id <= self.last_id)
        )


@dataclass(frozen=True)
class _Admin:
    id: int
    package: str
    code: str
    name: str
    contact_email: str


def extension_for(content_type: str | None) -> str:
    """``pdf``, ``png``, ``jpg``…; ``bin`` for a type without one."""
    return EXTENSIONS.get((content_type or "").split(";")[0].strip().lower(), "bin")


def file_path(blob_key: str, content_type: str | None) -> str:
    """A file's path below ``data/`` as ``documents.csv``'s ``file`` column names it."""
    return f"{fmt.FILES_DIR.removeprefix('data/')}{blob_key}.{extension_for(content_type)}"


def download_name(office_code: str, day: datetime, count: int) -> str:
    """``migratiebestand-<office code>-<yyyymmdd>-<n>-administratie(s).zip``, ASCII only."""
    office = _SAFE.sub("-", office_code).strip("-") or "kantoor"
    noun = "administratie" if count == 1 else "administraties"
    return f"migratiebestand-{office}-{day:%Y%m%d}-{count}-{noun}.zip"


def export_administrations(
    actor: User, administration_ids: Iterable[int], *, origin: str
) -> MigrationFileExport:
    """A migration file of these administrations (all of the actor's environment and of
    one connection), audited now; its bytes are built when ``chunks`` is read.

    Refuses a role without the migration menu (``NotAllowed``), an id that is not the
    actor's (``NotFoundError``), no ids or too many, and administrations of several
    connections (``ServiceError`` on ``administration_ids``).
    """
    require_migrate(actor)
    ids = list(dict.fromkeys(administration_ids))
    if not ids:
        raise ServiceError("administration_ids", N_("Choose at least one administration."))
    limit = current_app.config["MAX_LIST_ITEMS"]
    if len(ids) > limit:
        raise ServiceError(
            "administration_ids",
            N_("Choose at most %(max)d administrations per migration file."),
            max=limit,
        )
    administrations = sorted(scoped_ids(Administration, ids, actor), key=lambda a: a.id)
    if len({a.connection_id for a in administrations}) > 1:
        raise ServiceError(
            "administration_ids",
            N_("Choose administrations of one connection; export the others separately."),
        )
    environment = db.session.get(Environment, actor.environment_id)
    connection = db.session.get(Connection, administrations[0].connection_id)
    counts: dict[int, int] = {}
    last_id = 0  # the file holds the documents there are now, not those added meanwhile
    for administration_id, n, highest in db.session.execute(
        select(Document.administration_id, func.count(), func.max(Document.id))
        .where(Document.administration_id.in_(ids))
        .group_by(Document.administration_id)
    ):
        counts[administration_id] = n
        last_id = max(last_id, highest or 0)
    _refuse_missing_files(_Scope(actor.environment_id, tuple(ids), last_id))
    now = datetime.now(ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"]))
    filename = download_name(environment.office_code, now, len(administrations))
    total = sum(counts.values())
    for administration in administrations:
        audit.record(
            "migration_file_exported",
            actor=actor,
            object_type="administration",
            object_id=administration.id,
            environment_id=actor.environment_id,
            origin=origin,
            details={
                "file_name": filename,
                "documents": counts.get(administration.id, 0),
                "administration_ids": [a.id for a in administrations],
                "documents_in_file": total,
            },
        )
    db.session.flush()

    # Plain values only: the stream runs after the unit of work has committed.
    admins = [
        _Admin(a.id, connection.package.value, a.code, a.name, a.contact_email)
        for a in administrations
    ]
    info = {
        fmt.INFO_FORMAT_VERSION: fmt.FORMAT_VERSION,
        fmt.INFO_SOURCE: environment.name,
        fmt.INFO_DATE: now.date().isoformat(),
        fmt.INFO_SCOPE: fmt.Scope.COMBINED.value,
        fmt.INFO_AGENT: "Overdracht",
    }
    bag_name = filename.removesuffix(".zip")
    documents = _Scope(actor.environment_id, tuple(a.id for a in admins), last_id)
    chunks = write_bag(bag_name, info, _payload(documents, admins))
    return MigrationFileExport(filename, tuple(a.id for a in admins), total, chunks)


def _refuse_missing_files(scope: _Scope) -> None:
    """Every file must be in the store before the first byte goes out: once the download
    has started, a missing one could only cut it short, with no word of why."""
    store = blob_store()
    missing = 0
    batch: list[str] = []
    for blob_key, _type, _size in _distinct_files(scope):
        batch.append(blob_key)
        if len(batch) == PAGE:
            missing += len(store.missing(batch))
            batch = []
    missing += len(store.missing(batch)) if batch else 0
    if missing:
        raise ServiceError(
            "administration_ids",
            N_(
                "Files of these documents are missing from the document store (%(n)d), so "
                "the migration file would be incomplete. Ask support to restore them first."
            ),
            n=missing,
        )


# --- the payload ------------------------------------------------------------------------------


def _payload(scope: _Scope, admins: list[_Admin]) -> Iterator[PayloadEntry]:
    """administrations.csv, every distinct file once, then documents.csv."""
    yield PayloadEntry(
        fmt.ADMINISTRATIONS_CSV.removeprefix("data/"),
        lambda: _csv(
            fmt.ADMINISTRATION_COLUMNS,
            ((a.package, a.code, a.name, a.contact_email) for a in admins),
        ),
        compress=True,
    )
    store = blob_store()
    for blob_key, content_type, size in _distinct_files(scope):
        yield PayloadEntry(
            file_path(blob_key, content_type),
            stream_chunks(lambda key=blob_key: store.open(key)),
            sha256=blob_key,
            size=size,
        )
    yield PayloadEntry(
        fmt.DOCUMENTS_CSV.removeprefix("data/"),
        lambda: _csv(fmt.DOCUMENT_COLUMNS, _document_rows(scope, admins)),
        compress=True,
    )


def _distinct_files(scope: _Scope) -> Iterator[tuple[str, str, int]]:
    """(blob key, content type, size) of every file once, in key order, a page at a time."""
    after = ""
    while True:
        page = db.session.execute(
            select(Document.blob_key, func.min(Document.content_type), func.max(Document.size))
            .where(scope.where(), Document.blob_key > after)
            .group_by(Document.blob_key)
            .order_by(Document.blob_key)
            .limit(PAGE)
        ).all()
        db.session.rollback()  # no transaction is held open while the files stream out
        if not page:
            return
        yield from (tuple(row) for row in page)
        after = page[-1][0]


def _file_types(scope: _Scope, keys: set[str]) -> dict[str, str]:
    """Each file's content type as ``_distinct_files`` chose it, so the names agree."""
    return dict(
        db.session.execute(
            select(Document.blob_key, func.min(Document.content_type))
            .where(scope.where(), Document.blob_key.in_(keys))
            .group_by(Document.blob_key)
        ).all()
    )


_DOCUMENT_FIELDS = (
    Document.id,
    Document.blob_key,
    Document.filename,
    Document.content_type,
    Document.kind,
    Document.counterparty,
    Document.amount,
    Document.currency,
    Document.invoice_date,
    Document.status,
    Document.booked_year,
    Document.booked_period,
    Document.uploaded_by_name,
    Document.decided_by_name,
    Document.decided_at,
)


def _document_rows(scope: _Scope, admins: list[_Admin]) -> Iterator[tuple]:
    """documents.csv's rows: per administration, its documents in id order, by pages."""
    for admin in admins:
        after = 0
        while True:
            page = db.session.execute(
                select(*_DOCUMENT_FIELDS)
                .where(scope.where(), Document.administration_id == admin.id, Document.id > after)
                .order_by(Document.id)
                .limit(PAGE)
            ).all()
            if not page:
                db.session.rollback()
                break
            types = _file_types(scope, {d.blob_key for d in page})
            db.session.rollback()
            after = page[-1].id
            yield from (_document_row(admin, d, types[d.blob_key]) for d in page)


def _document_row(admin: _Admin, d, file_type: str) -> tuple:
    return (
        admin.package,
        admin.code,
        file_path(d.blob_key, file_type),
        d.filename,
        d.content_type,
        d.kind.value,
        d.counterparty or "",
        format_amount(d.amount),
        d.currency,
        d.invoice_date.isoformat() if d.invoice_date else "",
        d.status.value,
        "" if d.booked_year is None else d.booked_year,
        "" if d.booked_period is None else d.booked_period,
        d.uploaded_by_name or "",
        d.decided_by_name or "",
        d.decided_at.isoformat() if d.decided_at else "",
    )


def format_amount(amount: Decimal | None) -> str:
    """``121,00``: two decimals, a decimal comma, no thousands separator."""
    if amount is None:
        return ""
    return f"{amount:.2f}".replace(".", ",")


def _csv(columns: tuple[str, ...], rows: Iterable[tuple]) -> Iterator[bytes]:
    """The rows as ``;``-separated CSV in UTF-8 with a byte-order mark, in pieces."""
    encoder = codecs.getincrementalencoder(fmt.CSV_ENCODING)()
    out = io.StringIO()
    writer = csv.writer(out, delimiter=fmt.CSV_DELIMITER, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(row)
        if out.tell() > CSV_PIECE:
            yield encoder.encode(out.getvalue())
            out.seek(0)
            out.truncate()
    yield encoder.encode(out.getvalue(), final=True)
