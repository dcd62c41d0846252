"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import logging

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import UniqueConstraint, create_engine, inspect, text
from sqlalchemy.engine import make_url

from app import create_app
from app.db import include_in_migrations
from app.extensions import db


@pytest.fixture
def empty_database_url(database_url, tmp_path):
    """A URL of a new, empty database on the same server as the test database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.sqlite'}"
        return
    name = f"{url.database}_migrations"
    server = create_engine(url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture
def keep_logging():
    """``migrations/env.py`` calls ``logging.config.fileConfig``, which replaces the root
    handlers and disables every logger that already exists; undo that afterwards."""
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    saved = {
        name: (lg.disabled, lg.level, list(lg.handlers), lg.propagate)
        for name, lg in logging.Logger.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    yield
    root.setLevel(saved_root[0])
    root.handlers[:] = saved_root[1]
    for name, lg in logging.Logger.manager.loggerDict.items():
        if not isinstance(lg, logging.Logger):
            continue
        if name in saved:
            lg.disabled, level, handlers, lg.propagate = saved[name]
            lg.setLevel(level)
            lg.handlers[:] = handlers
        else:
            lg.handlers[:] = []


@pytest.fixture
def migrated_app(empty_database_url, tmp_path, keep_shared_extensions, keep_logging):
    """A second app on the empty database, its context pushed on top of the test's."""
    second = create_app(
        "testing",
        SQLALCHEMY_DATABASE_URI=empty_database_url,
        BLOB_ROOT=str(tmp_path / "blobs"),
    )
    context = second.app_context()
    context.push()
    try:
        yield second
    finally:
        db.session.remove()
        db.engine.dispose()
        context.pop()


def schema_differences() -> list[str]:
    """What autogenerate would still add, drop or change to make the database match."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            # SQLite's full-text search index is made by hand in the migration.
            opts={"compare_type": True, "include_object": include_in_migrations},
        )
        return [describe(diff) for diff in compare_metadata(context, db.metadata)]


def describe(diff) -> str:
    if isinstance(diff, list):  # column changes come as a list of tuples
        return "; ".join(describe(d) for d in diff)
    operation, *rest = diff
    names = [getattr(x, "name", None) or str(x) for x in rest if x is not None]
    return " ".join([operation, *names[:3]])


def test_running_the_migrations_raises_no_warnings(migrated_app):
    upgrade()

    assert "alembic_version" in inspect(db.engine).get_table_names()


def test_the_migrations_build_the_same_schema_as_the_models(migrated_app):
    assert inspect(db.engine).get_table_names() == []

    upgrade()

    differences = schema_differences()
    assert differences == [], "\n".join(differences)
    tables = set(inspect(db.engine).get_table_names())
    assert {t.name for t in db.metadata.sorted_tables} <= tables


def test_the_migrations_end_at_the_single_head_revision(migrated_app):
    upgrade()

    script = ScriptDirectory.from_config(migrated_app.extensions["migrate"].migrate.get_config())
    with db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    assert len(script.get_heads()) == 1
    assert current == tuple(script.get_heads())


def test_the_migrations_can_be_undone_to_an_empty_database(migrated_app):
    upgrade()

    downgrade(revision="base")

    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}


def test_every_reference_to_a_document_is_indexed_so_deleting_documents_stays_fast():
    """Deleting a document makes the database look for rows that point at it. Without an
    index on the pointing column that is a full scan per deleted row: emptying the demo's
    4,050 documents (``flask demo --reset``) then takes seconds instead of milliseconds."""
    unindexed = []
    for table in db.metadata.sorted_tables:
        keys = [*table.indexes, table.primary_key]
        keys += [c for c in table.constraints if isinstance(c, UniqueConstraint)]
        leading = {list(key.columns)[0].name for key in keys if len(key.columns)}
        for fk in table.foreign_keys:
            if fk.column.table.name == "documents" and fk.parent.name not in leading:
                unindexed.append(f"{table.name}.{fk.parent.name}")

    assert unindexed == []
