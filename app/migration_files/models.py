"""An import of a migration file and its items, one per administration in the file."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.admin_settings.models import DocumentStatus, TenantMixin, _enum
from app.db import UTCDateTime, utcnow
from app.extensions import db
from app.migration_files.format import Scope


class ImportState(enum.StrEnum):
    UPLOADING = "uploading"
    CHECKING = "checking"  # the dry run is reading the file
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    REFUSED = "refused"  # the dry run found errors: nothing can be imported
    QUEUED = "queued"
    IMPORTING = "importing"
    COMPLETED = "completed"
    FAILED = "failed"  # retryable (support, or the importer)
    CANCELLED = "cancelled"  # the importer dropped it before confirming


OPEN_IMPORT_STATES = (
    ImportState.UPLOADING,
    ImportState.CHECKING,
    ImportState.AWAITING_CONFIRMATION,
    ImportState.QUEUED,
    ImportState.IMPORTING,
)


class ConflictPolicy(enum.StrEnum):
    SKIP = "skip"
    OVERWRITE = "overwrite"


class ImportItemState(enum.StrEnum):
    PENDING = "pending"
    LANDED = "landed"  # the administration and its documents are in
    SKIPPED = "skipped"  # a conflict the importer chose to skip, or nothing new
    FAILED = "failed"


class Import(TenantMixin, db.Model):
    __tablename__ = "imports"
    __table_args__ = (
        Index("ix_imports_environment_created", "environment_id", "created_at"),
        Index("ix_imports_state_queued", "state", "queued_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    uploaded_by_name: Mapped[str] = mapped_column(String(200))
    # One import per upload: a second submit of the same upload finds the first import.
    upload_id: Mapped[int | None] = mapped_column(
        ForeignKey("uploads.id", ondelete="SET NULL"), unique=True
    )
    file_name: Mapped[str] = mapped_column(String(255))
    blob_key: Mapped[str | None] = mapped_column(String(64))  # the migration file itself
    size: Mapped[int | None] = mapped_column(BigInteger)
    import_type: Mapped[Scope] = mapped_column(_enum(Scope))
    default_status: Mapped[DocumentStatus] = mapped_column(
        _enum(DocumentStatus), default=DocumentStatus.PENDING
    )
    # {package value: connection id} of the importing environment
    connections: Mapped[dict] = mapped_column(JSON, default=dict)
    conflicts: Mapped[ConflictPolicy | None] = mapped_column(_enum(ConflictPolicy))
    state: Mapped[ImportState] = mapped_column(_enum(ImportState, 30))
    source_organization: Mapped[str | None] = mapped_column(String(200))
    # The dry run's report: counts, conflicts and problems (file, line, field, message).
    report: Mapped[dict | None] = mapped_column(JSON)
    documents_total: Mapped[int | None] = mapped_column(Integer)
    documents_done: Mapped[int | None] = mapped_column(Integer)
    result_blob_key: Mapped[str | None] = mapped_column(String(64))  # per-document CSV
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    items: Mapped[list[ImportItem]] = relationship(
        back_populates="import_", order_by="ImportItem.id", passive_deletes=True
    )


class ImportItem(TenantMixin, db.Model):
    """One administration of the file; it lands atomically, and at most once (its
    provenance row is unique per item)."""

    __tablename__ = "import_items"
    __table_args__ = (UniqueConstraint("import_id", "package", "administration_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"), index=True)
    package: Mapped[str] = mapped_column(String(30))
    administration_code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[ImportItemState] = mapped_column(
        _enum(ImportItemState), default=ImportItemState.PENDING
    )
    target_administration_id: Mapped[int | None] = mapped_column(
        ForeignKey("administrations.id", ondelete="SET NULL")
    )
    documents_total: Mapped[int] = mapped_column(Integer, default=0)
    documents_imported: Mapped[int] = mapped_column(Integer, default=0)
    # This administration's rows of the result CSV (a blob), written as it lands.
    result_key: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(String(500))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    import_: Mapped[Import] = relationship(back_populates="items")
