"""Declarative base and shared column types (SQLAlchemy 2.0 typed style)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC: the only clock models use."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored as UTC and always read back timezone-aware.

    SQLite has no timezone type; PostgreSQL has one. Either way Python code sees
    aware UTC datetimes and a naive datetime is refused on the way in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _is_sqlite(dbapi_connection) -> bool:
    return type(dbapi_connection).__module__.startswith("sqlite3")


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """WAL, a busy timeout, enforced foreign keys and write transactions that take the
    write lock when they start, for every SQLite connection.

    The driver begins a transaction (``BEGIN IMMEDIATE``) just before the first
    INSERT, UPDATE or DELETE of a unit of work; reads before it see the latest commit.
    So no unit of work holds an old snapshot that it then tries to write from (which
    SQLite refuses at once with "database is locked"): a writer waits its turn (busy
    timeout) instead, and every state change is a conditional UPDATE that is judged
    under the lock.
    """
    if not _is_sqlite(dbapi_connection):
        return
    dbapi_connection.isolation_level = "IMMEDIATE"
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


@event.listens_for(Session, "after_flush")
def _note_write(session, flush_context) -> None:
    session.info["wrote"] = True


@event.listens_for(Session, "do_orm_execute")
def _note_statement_write(state) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info["wrote"] = True


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_write(session) -> None:
    session.info.pop("wrote", None)
    session.info.pop("changes_at_begin", None)


def has_written(session) -> bool:
    """Whether the session's open transaction has written anything, however it was written
    (ORM, Core or plain SQL): the database itself is asked."""
    if session.info.get("wrote") or session.new or session.dirty or session.deleted:
        return True
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        # The driver begins a transaction only before the first write (see above); one
        # that begin_write began has written when SQLite counts changes since.
        dbapi = connection.connection.dbapi_connection
        if not dbapi.in_transaction:
            return False
        changes_at_begin = session.info.get("changes_at_begin")
        return changes_at_begin is None or dbapi.total_changes != changes_at_begin
    if connection.dialect.name == "postgresql":
        # A transaction is given an id only when it first writes.
        written = connection.exec_driver_sql("SELECT pg_current_xact_id_if_assigned()")
        return written.scalar() is not None
    return True  # unknown database: assume the worst


def begin_write(session) -> None:
    """Start ``session``'s unit of work as a write transaction.

    On SQLite that takes the write lock at once, so the unit's reads and writes see
    one state; on PostgreSQL it is an ordinary transaction, where conditional UPDATEs
    and row locks keep writers apart. It never commits: a transaction that has only
    read is ended (its snapshot is dropped), and one that has written already is a
    programming error (``RuntimeError``), since taking the lock now could not make
    what it did before consistent.
    """
    session = session() if callable(session) else session  # a scoped_session's session
    if session.in_transaction():
        if has_written(session):
            raise RuntimeError("begin_write() inside a unit of work that has already written")
        session.rollback()
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        session.info["changes_at_begin"] = connection.connection.dbapi_connection.total_changes


def include_in_migrations(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's filter: leave SQLite's full-text search index (a virtual table and its
    shadow tables, made by hand in the migration) out of autogenerate's comparison."""
    return not (type_ == "table" and name and name.startswith("transfer_items_fts"))
