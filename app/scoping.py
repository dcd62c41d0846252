"""Tenant scoping in one place.

Every lookup of a tenant's object goes through :func:`scoped_select` or
:func:`get_scoped_or_404`. A user sees only rows of their own environment;
support staff (no environment) see no tenant rows through these helpers, and
another environment's object is indistinguishable from one that does not exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Select, false, select

from app.errors import NotFoundError
from app.extensions import db

if TYPE_CHECKING:
    from app.auth.models import User

T = TypeVar("T")


def scoped_select(model: type[T], actor: User) -> Select[tuple[T]]:
    """``SELECT model`` limited to the actor's environment (nothing for support)."""
    stmt = select(model)
    if actor.environment_id is None:
        return stmt.where(false())
    return stmt.where(model.environment_id == actor.environment_id)  # type: ignore[attr-defined]


def get_scoped(model: type[T], object_id: int, actor: User) -> T | None:
    """The actor's object with this id, or ``None`` when missing or another tenant's."""
    stmt = scoped_select(model, actor).where(model.id == object_id)  # type: ignore[attr-defined]
    return db.session.scalars(stmt).one_or_none()


def get_scoped_or_404(model: type[T], object_id: int, actor: User) -> T:
    """Like :func:`get_scoped`, raising ``NotFoundError`` (a 404) when there is nothing to see."""
    obj = get_scoped(model, object_id, actor)
    if obj is None:
        raise NotFoundError()
    return obj


def scoped_ids(model: type[T], ids: list[int], actor: User, **filters) -> list[T]:
    """The actor's objects among ``ids``; raises 404 if any id is not the actor's.

    Used for bulk actions: one foreign id in the batch spoils the whole batch.
    """
    unique_ids = set(ids)
    stmt = scoped_select(model, actor).where(model.id.in_(unique_ids))  # type: ignore[attr-defined]
    for name, value in filters.items():
        stmt = stmt.where(getattr(model, name) == value)
    rows = list(db.session.scalars(stmt))
    if len(rows) != len(unique_ids):
        raise NotFoundError()
    return rows
