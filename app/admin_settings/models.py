"""Office environments and what they hold: connections, administrations, documents,
workflows and authorization flows.

Every tenant-owned table carries ``environment_id`` (``TenantMixin``) so that one
helper, ``app.scoping``, can scope every lookup the same way.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship
from sqlalchemy.sql import false, text

from app.db import UTCDateTime, utcnow
from app.extensions import db

if TYPE_CHECKING:
    from app.auth.models import User


def _enum(enum_cls: type[enum.Enum], length: int = 20) -> Enum:
    """Enums stored by value as plain strings, portable between SQLite and PostgreSQL."""
    return Enum(
        enum_cls,
        native_enum=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Plan(enum.StrEnum):
    STANDARD = "standard"
    PREMIUM = "premium"


class Package(enum.StrEnum):
    """Accounting packages an environment can connect to."""

    EXACT_ONLINE = "exact_online"
    TWINFIELD = "twinfield"
    SNELSTART = "snelstart"
    AFAS = "afas"
    XERO = "xero"
    ACCOUNTVIEW = "accountview"
    BOEKHOUDGEMAK = "boekhoudgemak"

    @property
    def label(self) -> str:
        return PACKAGE_LABELS[self]


PACKAGE_LABELS = {
    Package.EXACT_ONLINE: "Exact Online",
    Package.TWINFIELD: "Twinfield",
    Package.SNELSTART: "SnelStart",
    Package.AFAS: "AFAS",
    Package.XERO: "Xero",
    Package.ACCOUNTVIEW: "AccountView",
    Package.BOEKHOUDGEMAK: "Boekhoudgemak",
}


class AdministrationState(enum.StrEnum):
    ACTIVE = "active"
    OFFERED = "offered"
    MIGRATED = "migrated"


class DocumentKind(enum.StrEnum):
    PURCHASE_INVOICE = "purchase_invoice"
    SALES_INVOICE = "sales_invoice"
    RECEIPT = "receipt"
    OTHER = "other"


class DocumentStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class TenantMixin:
    """The owning environment; the column ``app.scoping`` filters on."""

    @declared_attr
    def environment_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)


class Environment(db.Model):
    """One office's tenant."""

    __tablename__ = "environments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    office_code: Mapped[str] = mapped_column(String(20), unique=True)
    plan: Mapped[Plan] = mapped_column(_enum(Plan))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    users: Mapped[list[User]] = relationship(back_populates="environment", passive_deletes=True)
    connections: Mapped[list[Connection]] = relationship(
        back_populates="environment", order_by="Connection.id", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Environment {self.office_code}>"


class Connection(TenantMixin, db.Model):
    """An environment's link to one accounting package; several per package are allowed."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    package: Mapped[Package] = mapped_column(_enum(Package, 30))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    environment: Mapped[Environment] = relationship(back_populates="connections")
    administrations: Mapped[list[Administration]] = relationship(
        back_populates="connection", order_by="Administration.name"
    )


class Administration(TenantMixin, db.Model):
    """A client's bookkeeping in one environment, under one connection."""

    __tablename__ = "administrations"
    __table_args__ = (
        # The duplicate guard: one code per connection among the administrations that
        # are here (active or on offer), never merged. A migrated one (read-only, kept)
        # leaves its code free, so a client who left can come back.
        Index(
            "uq_administrations_connection_code_held",
            "connection_id",
            "code",
            unique=True,
            sqlite_where=text("state != 'migrated'"),
            postgresql_where=text("state != 'migrated'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(40))
    contact_email: Mapped[str] = mapped_column(String(254))
    inbound_email: Mapped[str] = mapped_column(String(320), unique=True)
    state: Mapped[AdministrationState] = mapped_column(
        _enum(AdministrationState), default=AdministrationState.ACTIVE
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    connection: Mapped[Connection] = relationship(back_populates="administrations")

    @hybrid_property
    def holds_its_code(self) -> bool:
        """Counts for the duplicate guard: every state but ``migrated`` (moved away)."""
        return self.state != AdministrationState.MIGRATED

    workflows: Mapped[list[Workflow]] = relationship(
        back_populates="administration", order_by="Workflow.id", cascade="all, delete-orphan"
    )
    authorization_flows: Mapped[list[AuthorizationFlow]] = relationship(
        back_populates="administration",
        order_by="AuthorizationFlow.id",
        cascade="all, delete-orphan",
    )


class Document(TenantMixin, db.Model):
    """A bookkeeping document; its file lives in the blob store under ``blob_key``.

    Who uploaded and who decided are kept both as a link (while the user exists in
    this environment) and as text, so the names survive a move to another office.
    """

    __tablename__ = "documents"
    __table_args__ = (
        Index("ix_documents_administration_status", "administration_id", "status"),
        # Walks one administration's documents in id order (copies, reconciliation).
        Index("ix_documents_administration_id_id", "administration_id", "id"),
        # Finds a document by its file within an administration (a phased import).
        Index("ix_documents_administration_blob", "administration_id", "blob_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    administration_id: Mapped[int] = mapped_column(
        ForeignKey("administrations.id", ondelete="CASCADE")
    )
    blob_key: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str] = mapped_column(String(255))
    kind: Mapped[DocumentKind] = mapped_column(_enum(DocumentKind), default=DocumentKind.OTHER)
    counterparty: Mapped[str | None] = mapped_column(String(200))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    invoice_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[DocumentStatus] = mapped_column(
        _enum(DocumentStatus), default=DocumentStatus.PENDING
    )
    booked_year: Mapped[int | None] = mapped_column(Integer)
    booked_period: Mapped[int | None] = mapped_column(Integer)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    uploaded_by_name: Mapped[str | None] = mapped_column(String(200))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_by_name: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Imported from a migration file already decided: shown as "gemigreerd", readable and
    # downloadable, not changeable until a superuser unlocks it.
    locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Set on a copy that arrived from another office: the document it was copied from.
    source_document_id: Mapped[int | None] = mapped_column(
        ForeignKey("documents.id", ondelete="SET NULL"), index=True
    )


class Workflow(TenantMixin, db.Model):
    """A processing workflow of one administration; an active one blocks a move."""

    __tablename__ = "workflows"

    id: Mapped[int] = mapped_column(primary_key=True)
    administration_id: Mapped[int] = mapped_column(
        ForeignKey("administrations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    administration: Mapped[Administration] = relationship(back_populates="workflows")


class AuthorizationFlow(TenantMixin, db.Model):
    """An ordered chain of authorizers for one administration."""

    __tablename__ = "authorization_flows"

    id: Mapped[int] = mapped_column(primary_key=True)
    administration_id: Mapped[int] = mapped_column(
        ForeignKey("administrations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    administration: Mapped[Administration] = relationship(back_populates="authorization_flows")
    steps: Mapped[list[AuthorizationStep]] = relationship(
        back_populates="flow", order_by="AuthorizationStep.position", cascade="all, delete-orphan"
    )


class AuthorizationStep(TenantMixin, db.Model):
    """One step of a flow, held by one authorizer; any step blocks a move."""

    __tablename__ = "authorization_steps"
    __table_args__ = (UniqueConstraint("flow_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_id: Mapped[int] = mapped_column(
        ForeignKey("authorization_flows.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    authorizer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))

    flow: Mapped[AuthorizationFlow] = relationship(back_populates="steps")
    authorizer: Mapped[User] = relationship()


class ProvenanceOrigin(enum.StrEnum):
    TRANSFER = "transfer"  # claimed with a transfer code from another environment
    MIGRATION_FILE = "migration_file"  # imported from a migration file


class Provenance(db.Model):
    """Where a landed administration came from, written by ``landing`` as it lands.

    One per administration, and one per transfer item (and, next, per import item):
    the database's own guard that an administration never lands twice.
    """

    __tablename__ = "provenance"

    id: Mapped[int] = mapped_column(primary_key=True)
    administration_id: Mapped[int] = mapped_column(
        ForeignKey("administrations.id", ondelete="CASCADE"), unique=True
    )
    origin: Mapped[ProvenanceOrigin] = mapped_column(
        _enum(ProvenanceOrigin), default=ProvenanceOrigin.TRANSFER
    )
    transfer_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("transfer_items.id", ondelete="CASCADE"), unique=True
    )
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("transfers.id", ondelete="CASCADE"))
    import_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("import_items.id", ondelete="CASCADE"), unique=True
    )
    source_environment_id: Mapped[int | None] = mapped_column(
        ForeignKey("environments.id", ondelete="SET NULL")
    )
    # The office it came from, as text: it outlives that environment, and a migration
    # file's source office has no environment here at all.
    source_environment_name: Mapped[str] = mapped_column(String(200))
    source_administration_id: Mapped[int | None] = mapped_column(
        ForeignKey("administrations.id", ondelete="SET NULL")
    )
    migrated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
