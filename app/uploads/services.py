"""Resumable uploads (tus 1.0): create, append, terminate, expire, and hand a finished
upload to the reader. Services only flush; the views, the job and the import wizard
commit with ``app.web.unit_of_work()``.

An upload's offset lives in its row and its bytes in a spool file (``app.uploads.spool``);
a PATCH checks the offset in a short transaction, streams the chunk under the spool
file's lock with no transaction open, and records the new offset (or completes the
upload) in a second short transaction that takes the row (``FOR UPDATE`` on PostgreSQL,
the write lock on SQLite).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import datetime, timedelta
from typing import BinaryIO

from flask import current_app
from sqlalchemy import select, update

from app import audit
from app.auth.domain import Permission, has_permission
from app.db import begin_write, utcnow
from app.errors import Conflict, Invalid, NotAllowed, NotFoundError, ServiceError
from app.extensions import db
from app.scoping import scoped_select
from app.storage import open_seekable
from app.uploads import spool
from app.uploads.models import Upload, UploadState


class UploadExpired(ServiceError):
    """The upload was not finished in time; its bytes are gone (tus: 410 Gone)."""

    status = 410


class TooLarge(ServiceError):
    """Longer than ``UPLOAD_MAX_BYTES``, or a chunk past the declared length."""

    status = 413


def max_bytes() -> int:
    return int(current_app.config.get("UPLOAD_MAX_BYTES") or 20 * 1024**3)


def parse_metadata(header: str | None) -> dict[str, str]:
    """tus ``Upload-Metadata``: comma-separated ``key base64(value)`` pairs (a key alone
    has an empty value). ``Invalid`` when a value is not base64 of UTF-8."""
    metadata: dict[str, str] = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        try:
            metadata[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise Invalid("Upload-Metadata", "Upload-Metadata is not valid") from None
    return metadata


def create(actor, *, length: int, metadata: dict[str, str], origin: str = "system") -> Upload:
    """A new upload of ``length`` bytes for the actor's environment, with an empty spool
    file; it expires ``UPLOAD_EXPIRY_HOURS`` from now."""
    if actor.environment_id is None or not has_permission(actor.role, Permission.MIGRATE):
        raise NotAllowed()
    if length < 0:
        raise Invalid("Upload-Length", "Upload-Length is not valid")
    if length > max_bytes():
        raise TooLarge("Upload-Length", "The file is too large.")
    now = utcnow()
    hours = int(current_app.config.get("UPLOAD_EXPIRY_HOURS") or 24)
    filename = (metadata.get("filename") or "upload").replace("/", "_").replace("\\", "_")
    upload = Upload(
        environment_id=actor.environment_id,
        user_id=actor.id,
        token=secrets.token_urlsafe(32),
        filename=filename[:255],
        filetype=(metadata.get("filetype") or None) and metadata["filetype"][:100],
        length=length,
        offset=0,
        state=UploadState.UPLOADING,
        created_at=now,
        expires_at=now + timedelta(hours=hours),
    )
    db.session.add(upload)
    db.session.flush()
    spool.create(upload.token)
    audit.record(
        "upload.created",
        actor=actor,
        object_type="upload",
        object_id=upload.id,
        environment_id=upload.environment_id,
        origin=origin,
        details={"filename": upload.filename, "length": length},
    )
    return upload


def find(actor, token: str, *, now: datetime | None = None) -> Upload:
    """The actor's upload (own environment) that is in progress or complete; 404 for
    anything else, 410 for one past its expiry."""
    upload = db.session.scalars(scoped_select(Upload, actor).where(Upload.token == token)).first()
    if upload is None or upload.state is UploadState.TERMINATED:
        raise NotFoundError()
    if upload.state is UploadState.EXPIRED or (
        upload.state is UploadState.UPLOADING and upload.expires_at <= (now or utcnow())
    ):
        raise UploadExpired()
    return upload


def writable(actor, token: str, offset: int) -> Upload:
    """The upload a chunk at ``offset`` may be appended to: in progress, and ``offset``
    is where it stands (else ``Conflict``, 409)."""
    upload = find(actor, token)
    if upload.state is not UploadState.UPLOADING:
        raise Conflict("Upload-Offset", "The upload is complete.")
    if offset != upload.offset:
        raise Conflict("Upload-Offset", "Upload-Offset does not match the upload's offset.")
    return upload


def _take(actor, token: str) -> Upload:
    """The upload's row for writing: the SQLite write lock, or ``FOR UPDATE``."""
    begin_write(db.session)
    stmt = scoped_select(Upload, actor).where(Upload.token == token).with_for_update()
    upload = db.session.scalars(stmt).first()
    if upload is None or upload.state is UploadState.TERMINATED:
        raise NotFoundError()
    if upload.state is UploadState.EXPIRED or upload.expires_at <= utcnow():
        raise UploadExpired()
    if upload.state is not UploadState.UPLOADING:
        raise Conflict("Upload-Offset", "The upload is complete.")
    return upload


def advance(actor, token: str, *, old_offset: int, new_offset: int) -> Upload:
    """Record that the spool file now ends at ``new_offset`` (short of the length)."""
    upload = _take(actor, token)
    if upload.offset != old_offset:
        raise Conflict("Upload-Offset", "Upload-Offset does not match the upload's offset.")
    upload.offset = new_offset
    db.session.flush()
    return upload


def complete(actor, token: str, *, old_offset: int, key: str, origin: str = "system") -> Upload:
    """Every byte has arrived and is the blob ``key``: the upload is complete."""
    upload = _take(actor, token)
    if upload.offset != old_offset:
        raise Conflict("Upload-Offset", "Upload-Offset does not match the upload's offset.")
    upload.offset = upload.length
    upload.blob_key = key
    upload.state = UploadState.COMPLETE
    upload.completed_at = utcnow()
    db.session.flush()
    audit.record(
        "upload.completed",
        actor=actor,
        object_type="upload",
        object_id=upload.id,
        environment_id=upload.environment_id,
        origin=origin,
        details={"filename": upload.filename, "length": upload.length, "blob_key": key},
    )
    return upload


def find_any(actor, token: str) -> Upload:
    """The actor's upload in any state but terminated (an expired one too); else 404."""
    upload = db.session.scalars(scoped_select(Upload, actor).where(Upload.token == token)).first()
    if upload is None or upload.state is UploadState.TERMINATED:
        raise NotFoundError()
    return upload


def terminate(actor, token: str, *, origin: str = "system") -> Upload:
    """The client ends the upload (tus termination): state terminated. The caller
    removes the spool file after commit (``spool.remove``)."""
    upload = find_any(actor, token)
    done = db.session.execute(
        update(Upload)
        .where(Upload.id == upload.id, Upload.state != UploadState.TERMINATED)
        .values(state=UploadState.TERMINATED)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        raise NotFoundError()
    db.session.refresh(upload)
    audit.record(
        "upload.terminated",
        actor=actor,
        object_type="upload",
        object_id=upload.id,
        environment_id=upload.environment_id,
        origin=origin,
        details={"filename": upload.filename, "offset": upload.offset},
    )
    return upload


def due_for_expiry(now: datetime):
    return (Upload.state == UploadState.UPLOADING) & (Upload.expires_at <= now)


def expire(upload_id: int, *, now: datetime) -> str | None:
    """Mark one upload past its expiry as expired (a conditional UPDATE: twice is
    harmless); its token, for the caller to remove the spool file after commit."""
    done = db.session.execute(
        update(Upload)
        .where(Upload.id == upload_id, due_for_expiry(now))
        .values(state=UploadState.EXPIRED)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        return None
    return db.session.scalar(select(Upload.token).where(Upload.id == upload_id))


def completed_upload(actor, token: str) -> Upload:
    """The actor's complete upload named ``token`` (own environment only), for the import
    wizard; ``NotFoundError`` for anything else."""
    upload = db.session.scalars(
        scoped_select(Upload, actor).where(
            Upload.token == token, Upload.state == UploadState.COMPLETE
        )
    ).first()
    if upload is None or upload.blob_key is None:
        raise NotFoundError()
    return upload


def open_completed(upload: Upload) -> BinaryIO:
    """A seekable binary file of a complete upload's bytes (``zipfile`` needs seek); the
    caller closes it. See ``app.storage.open_seekable``."""
    if upload.state is not UploadState.COMPLETE or upload.blob_key is None:
        raise NotFoundError()
    return open_seekable(upload.blob_key)
