"""An upload in progress or done: its state lives in the database, so any worker on any
host can take the next chunk, and a reload continues where the upload stopped."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.admin_settings.models import TenantMixin, _enum
from app.db import UTCDateTime, utcnow
from app.extensions import db


class UploadState(enum.StrEnum):
    UPLOADING = "uploading"  # bytes still to come (``offset < length``)
    COMPLETE = "complete"  # every byte arrived; the file is a blob (``blob_key``)
    TERMINATED = "terminated"  # the client ended it (tus termination)
    EXPIRED = "expired"  # never finished within ``UPLOAD_EXPIRY_HOURS``; bytes removed


class Upload(TenantMixin, db.Model):
    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_state_expires", "state", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The tus URL names the upload by this random token, never by its id.
    token: Mapped[str] = mapped_column(String(43), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255))
    filetype: Mapped[str | None] = mapped_column(String(100))
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[UploadState] = mapped_column(_enum(UploadState), default=UploadState.UPLOADING)
    blob_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
