"""Transfers (one offer of one or more administrations) and their items."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Enum, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import UTCDateTime, utcnow
from app.extensions import db

if TYPE_CHECKING:
    from app.admin_settings.models import Administration, Environment


def _enum(enum_cls: type[enum.Enum]) -> Enum:
    return Enum(
        enum_cls,
        native_enum=False,
        length=20,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class TransferState(enum.StrEnum):
    OFFERED = "offered"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ItemState(enum.StrEnum):
    OFFERED = "offered"
    CLAIMING = "claiming"
    MIGRATED = "migrated"
    FAILED = "failed"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    REVOKED = "revoked"


OPEN_ITEM_STATES = (ItemState.OFFERED, ItemState.CLAIMING, ItemState.FAILED)


class Transfer(db.Model):
    """One offer: a code for one or more administrations of one source environment.

    The code itself is never stored. ``code_nonce`` plus the server's secret
    derive it (so the offering side can be shown it again); ``code_digest`` is a
    keyed digest of the code, used to find the offer when a code is entered.
    """

    __tablename__ = "transfers"
    __table_args__ = (
        Index("ix_transfers_source_created", "source_environment_id", "created_at"),
        Index("ix_transfers_state_expires", "state", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_environment_id: Mapped[int] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE")
    )
    target_environment_id: Mapped[int | None] = mapped_column(
        ForeignKey("environments.id", ondelete="SET NULL"), index=True
    )
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    offered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    offered_by_name: Mapped[str] = mapped_column(String(200))
    offered_by_email: Mapped[str] = mapped_column(String(254))
    state: Mapped[TransferState] = mapped_column(
        _enum(TransferState), default=TransferState.OFFERED
    )
    code_nonce: Mapped[str] = mapped_column(String(32))
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    terms_version: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    source_environment: Mapped[Environment] = relationship(foreign_keys=[source_environment_id])
    target_environment: Mapped[Environment | None] = relationship(
        foreign_keys=[target_environment_id]
    )
    recipients: Mapped[list[TransferRecipient]] = relationship(
        back_populates="transfer", order_by="TransferRecipient.id", cascade="all, delete-orphan"
    )
    items: Mapped[list[TransferItem]] = relationship(
        back_populates="transfer", order_by="TransferItem.id", cascade="all, delete-orphan"
    )

    @property
    def recipient_emails(self) -> list[str]:
        return [r.email for r in self.recipients]


class TransferRecipient(db.Model):
    """An e-mail address the offer is made to; only its owners may claim."""

    __tablename__ = "transfer_recipients"
    __table_args__ = (UniqueConstraint("transfer_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254), index=True)

    transfer: Mapped[Transfer] = relationship(back_populates="recipients")


class TransferItem(db.Model):
    """One administration of an offer, with its own state."""

    __tablename__ = "transfer_items"
    __table_args__ = (
        # An administration is in at most one open offer: the database guards it too.
        Index(
            "uq_transfer_items_open_administration",
            "administration_id",
            unique=True,
            sqlite_where=text("state IN ('offered', 'claiming', 'failed')"),
            postgresql_where=text("state IN ('offered', 'claiming', 'failed')"),
        ),
        Index("ix_transfer_items_transfer", "transfer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id", ondelete="CASCADE"))
    administration_id: Mapped[int] = mapped_column(
        ForeignKey("administrations.id", ondelete="CASCADE")
    )
    state: Mapped[ItemState] = mapped_column(_enum(ItemState), default=ItemState.OFFERED)
    # A snapshot, so overviews and mails read the same after the source changes.
    administration_name: Mapped[str] = mapped_column(String(200))
    administration_code: Mapped[str] = mapped_column(String(40))
    contact_email: Mapped[str] = mapped_column(String(254))
    package: Mapped[str] = mapped_column(String(30))
    target_administration_id: Mapped[int | None] = mapped_column(
        ForeignKey("administrations.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    transfer: Mapped[Transfer] = relationship(back_populates="items")
    administration: Mapped[Administration] = relationship(foreign_keys=[administration_id])
