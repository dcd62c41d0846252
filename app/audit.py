"""The append-only audit trail shared by every feature."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import UTCDateTime, utcnow
from app.extensions import db

if TYPE_CHECKING:
    from app.auth.models import User


class AuditEvent(db.Model):
    """Who did what to which object, when and from where. Rows are never updated."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_email: Mapped[str | None] = mapped_column(String(254))
    actor_role: Mapped[str | None] = mapped_column(String(20))
    environment_id: Mapped[int | None] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(60), index=True)
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[int | None]
    origin: Mapped[str] = mapped_column(String(60), default="system")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


def record(
    action: str,
    *,
    actor: User | None,
    object_type: str,
    object_id: int | None,
    environment_id: int | None,
    origin: str = "system",
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Add one audit event to the current unit of work (flushed, not committed).

    ``at``: when it happened, for a step that runs on a clock of its own (the ``now``
    of a lifecycle step); else the current time."""
    event = AuditEvent(
        actor_id=actor.id if actor else None,
        actor_email=actor.email if actor else None,
        actor_role=actor.role.value if actor else None,
        environment_id=environment_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        origin=origin,
        details=details or {},
        created_at=at or utcnow(),
    )
    db.session.add(event)
    return event
