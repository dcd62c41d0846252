"""Transfers (one offer of one or more administrations) and their items."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import (
    DDL,
    Enum,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    and_,
    event,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_method, hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import UTCDateTime, utcnow
from app.extensions import db
from app.transfers.domain import OPEN_ITEM_STATES, ItemState, TransferState

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
    extensions: Mapped[int] = mapped_column(Integer, default=0)  # times the expiry was extended
    resent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the code mail, again
    # When support was told that the copy takes longer than usual (once).
    slow_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The office the offer is for, known when it is made (every recipient is one of its
    # superusers); the code works for that environment only. None on offers from before.
    receiving_environment_id: Mapped[int | None] = mapped_column(
        ForeignKey("environments.id", ondelete="SET NULL")
    )
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    source_environment: Mapped[Environment] = relationship(foreign_keys=[source_environment_id])
    target_environment: Mapped[Environment | None] = relationship(
        foreign_keys=[target_environment_id]
    )
    receiving_environment: Mapped[Environment | None] = relationship(
        foreign_keys=[receiving_environment_id]
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

    # The three facts every rule about an offer starts from, each defined once here and
    # used from Python (on a loaded transfer) and SQL (in a WHERE) alike.

    @hybrid_property
    def is_claimed(self) -> bool:
        """A receiving environment has redeemed the code: the claim owns the offer."""
        return self.target_environment_id is not None

    @is_claimed.inplace.expression
    @classmethod
    def _is_claimed_expression(cls):
        return cls.target_environment_id.is_not(None)

    @hybrid_property
    def is_open(self) -> bool:
        """Not ended yet: on offer, or claimed and being copied."""
        return self.state == TransferState.OFFERED

    @hybrid_method
    def is_live(self, now: datetime) -> bool:
        """The code still works: open, not claimed, not past its expiry (sweep or not)."""
        return self.state == TransferState.OFFERED and not self.is_claimed and now < self.expires_at

    @is_live.inplace.expression
    @classmethod
    def _is_live_expression(cls, now: datetime):
        return and_(
            cls.state == TransferState.OFFERED,
            cls.target_environment_id.is_(None),
            cls.expires_at > now,
        )

    @hybrid_method
    def is_dead_unswept(self, now: datetime) -> bool:
        """Past its expiry and unclaimed, but not yet marked expired by the sweep."""
        return (
            self.state == TransferState.OFFERED and not self.is_claimed and now >= self.expires_at
        )

    @is_dead_unswept.inplace.expression
    @classmethod
    def _is_dead_unswept_expression(cls, now: datetime):
        return and_(
            cls.state == TransferState.OFFERED,
            cls.target_environment_id.is_(None),
            cls.expires_at <= now,
        )


class TransferRecipient(db.Model):
    """An e-mail address the offer is made to; only its owners may claim."""

    __tablename__ = "transfer_recipients"
    __table_args__ = (UniqueConstraint("transfer_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254), index=True)

    transfer: Mapped[Transfer] = relationship(back_populates="recipients")


class TransferCodeGroup(db.Model):
    """The keyed digest of one group of an offer's code (``codes.group_digests``), so a
    search for a group as the overview shows it ("K7M2Q") finds the offer. Like
    ``code_digest``, it reveals nothing of the code without the server's secret."""

    __tablename__ = "transfer_code_groups"
    __table_args__ = (Index("ix_transfer_code_groups_digest", "digest"),)

    transfer_id: Mapped[int] = mapped_column(
        ForeignKey("transfers.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[str] = mapped_column(String(16), primary_key=True)


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
        # The offering side's overview walks this index newest first, a page at a time;
        # a search reads ``search_text`` from the index itself, without the table.
        Index(
            "ix_transfer_items_source_created",
            "source_environment_id",
            "created_at",
            "id",
            "search_text",
        ),
        # Counting a page's total and reading a page without search need only these
        # columns: a narrow index that PostgreSQL counts from without the table.
        Index("ix_transfer_items_source_page", "source_environment_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id", ondelete="CASCADE"))
    # Copied from the transfer so the overview needs no join to page and count.
    source_environment_id: Mapped[int] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Lower-cased name, code, e-mail and accounting system: what the overview searches.
    search_text: Mapped[str] = mapped_column(String(700), default="")
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

    # The receiver's decision, recorded with the claim.
    target_connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="SET NULL")
    )
    reject_message: Mapped[str | None] = mapped_column(Text)
    fee: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    # The copy: a job claims the item with a lease; progress is counted in documents.
    documents_total: Mapped[int | None] = mapped_column(Integer)
    documents_copied: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    transfer: Mapped[Transfer] = relationship(back_populates="items")
    administration: Mapped[Administration] = relationship(foreign_keys=[administration_id])

    @hybrid_property
    def is_open(self) -> bool:
        """The item may still move (on offer, being copied, or failed and retryable)."""
        return self.state in OPEN_ITEM_STATES

    @is_open.inplace.expression
    @classmethod
    def _is_open_expression(cls):
        return cls.state.in_(OPEN_ITEM_STATES)

    target_administration: Mapped[Administration | None] = relationship(
        foreign_keys=[target_administration_id]
    )


class TransferInbox(db.Model):
    """An offered item as one receiving environment's overview lists it.

    Written when the offer is made, for every environment with a user among the
    recipients, and narrowed to the claiming environment when the code is redeemed;
    the receiving overview pages through it by index instead of matching e-mails.
    """

    __tablename__ = "transfer_inbox"
    __table_args__ = (
        UniqueConstraint("environment_id", "transfer_item_id"),
        Index(
            "ix_transfer_inbox_page",
            "environment_id",
            "created_at",
            "transfer_item_id",
            "search_text",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    transfer_item_id: Mapped[int] = mapped_column(
        ForeignKey("transfer_items.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    search_text: Mapped[str] = mapped_column(String(700), default="")


class Claim(db.Model):
    """A receiving environment's redemption of one offer: at most one per transfer."""

    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(
        ForeignKey("transfers.id", ondelete="CASCADE"), unique=True
    )
    target_environment_id: Mapped[int] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    claimed_by_name: Mapped[str] = mapped_column(String(200))
    claimed_by_email: Mapped[str] = mapped_column(String(254))
    terms_version: Mapped[str] = mapped_column(String(20))
    fee_per_administration: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    transfer: Mapped[Transfer] = relationship()


# SQLite: a trigram full-text index over the items' search text, kept in step by
# triggers, for the overview's word search (PostgreSQL scans its index quickly enough).
# The same statements run in the migration; here they follow ``create_all`` in tests.
SQLITE_SEARCH_INDEX = (
    "CREATE VIRTUAL TABLE transfer_items_fts USING fts5("
    "search_text, content='transfer_items', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER transfer_items_fts_insert AFTER INSERT ON transfer_items BEGIN "
    "INSERT INTO transfer_items_fts (rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER transfer_items_fts_delete AFTER DELETE ON transfer_items BEGIN "
    "INSERT INTO transfer_items_fts (transfer_items_fts, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER transfer_items_fts_update AFTER UPDATE OF search_text ON transfer_items BEGIN "
    "INSERT INTO transfer_items_fts (transfer_items_fts, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO transfer_items_fts (rowid, search_text) VALUES (new.id, new.search_text); END",
)
SQLITE_SEARCH_INDEX_DROP = (
    "DROP TRIGGER IF EXISTS transfer_items_fts_update",
    "DROP TRIGGER IF EXISTS transfer_items_fts_delete",
    "DROP TRIGGER IF EXISTS transfer_items_fts_insert",
    "DROP TABLE IF EXISTS transfer_items_fts",
)
for _statement in SQLITE_SEARCH_INDEX:
    event.listen(
        TransferItem.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite")
    )
for _statement in SQLITE_SEARCH_INDEX_DROP:
    event.listen(
        TransferItem.__table__, "before_drop", DDL(_statement).execute_if(dialect="sqlite")
    )
