"""The unit of work (app.web.unit_of_work) and the start of a write transaction
(app.db.begin_write): what is committed is what others see, what fails leaves nothing,
and a unit that has written already cannot be "started as a write" after the fact."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import OperationalError

from app.admin_settings.models import Environment, Plan
from app.db import begin_write
from app.errors import Conflict
from app.extensions import db
from app.web import unit_of_work


def on_sqlite() -> bool:
    return db.engine.dialect.name == "sqlite"


def seen_elsewhere(name: str) -> int:
    """How many environments called ``name`` another connection sees committed."""
    with db.engine.connect() as other:
        found = other.scalar(
            select(func.count()).select_from(Environment).where(Environment.name == name)
        )
        other.rollback()
    return found


def name_elsewhere(environment_id: int) -> str:
    with db.engine.connect() as other:
        found = other.scalar(select(Environment.name).where(Environment.id == environment_id))
        other.rollback()
    return found


def rename_elsewhere(environment_id: int, name: str) -> None:
    with db.engine.connect() as other:
        other.execute(update(Environment).where(Environment.id == environment_id).values(name=name))
        other.commit()


def new_environment(name: str) -> Environment:
    return Environment(name=name, office_code=name.upper()[:20], plan=Plan.PREMIUM)


# --------------------------------------------------------------------------- unit_of_work


def test_a_unit_of_work_that_succeeds_is_committed_and_seen_by_another_connection():
    with unit_of_work() as session:
        session.add(new_environment("Kantoor West"))
        session.flush()
        assert seen_elsewhere("Kantoor West") == 0, "nothing is visible before the commit"

    assert seen_elsewhere("Kantoor West") == 1
    assert not db.session().in_transaction()


def test_a_unit_of_work_that_raises_is_rolled_back_and_the_error_passes_on_unchanged():
    refusal = Conflict("transfer", "This offer has already been withdrawn.")

    with pytest.raises(Conflict) as raised, unit_of_work() as session:
        session.add(new_environment("Kantoor Oost"))
        session.flush()
        session.execute(update(Environment).values(plan=Plan.STANDARD))
        raise refusal

    assert raised.value is refusal
    assert not db.session().in_transaction()
    assert seen_elsewhere("Kantoor Oost") == 0
    assert db.session.scalar(select(func.count()).select_from(Environment)) == 0


def test_a_failed_unit_of_work_leaves_earlier_commits_as_they_were(build):
    kept = build.environment("Kantoor Bewaard")

    with pytest.raises(RuntimeError, match="disk full"), unit_of_work() as session:
        session.get(Environment, kept.id).name = "Kantoor Overschreven"
        session.flush()
        raise RuntimeError("disk full")

    assert name_elsewhere(kept.id) == "Kantoor Bewaard"
    assert db.session.get(Environment, kept.id).name == "Kantoor Bewaard"


def test_an_interrupt_inside_a_unit_of_work_rolls_it_back_too():
    with pytest.raises(KeyboardInterrupt), unit_of_work() as session:
        session.add(new_environment("Kantoor Onderbroken"))
        session.flush()
        raise KeyboardInterrupt

    assert not db.session().in_transaction(), "rolled back, not left for later"
    assert seen_elsewhere("Kantoor Onderbroken") == 0
    assert db.session.scalar(select(func.count()).select_from(Environment)) == 0


def test_the_session_works_on_after_a_failed_unit_of_work():
    with pytest.raises(ValueError), unit_of_work() as session:
        session.add(new_environment("Kantoor Eerst"))
        session.flush()
        raise ValueError("bad input")

    with unit_of_work() as session:
        session.add(new_environment("Kantoor Daarna"))

    assert seen_elsewhere("Kantoor Eerst") == 0
    assert seen_elsewhere("Kantoor Daarna") == 1


# --------------------------------------------------------------------------- begin_write


def count_statements():
    """A list that fills with every SQL statement sent while the block runs."""
    from contextlib import contextmanager

    from sqlalchemy import event

    @contextmanager
    def counting():
        seen: list[str] = []

        def note(conn, cursor, statement, parameters, context, executemany):
            seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", note)
        try:
            yield seen
        finally:
            event.remove(db.engine, "before_cursor_execute", note)

    return counting()


def test_a_unit_that_only_read_keeps_what_it_loaded_so_the_request_does_not_read_it_again(
    build,
):
    env = build.environment("Kantoor Noord")
    db.session.expire_all()
    with unit_of_work() as session:
        loaded = session.get(Environment, env.id)
        assert loaded.name == "Kantoor Noord"
    assert not db.session().in_transaction(), "the read transaction has ended"
    with count_statements() as seen:
        assert loaded.name == "Kantoor Noord"
    assert seen == [], "nothing is read again after a unit that wrote nothing"


def test_a_unit_that_wrote_expires_what_it_loaded_so_the_next_read_is_the_latest_commit(build):
    env_id = build.environment("Kantoor Noord").id
    with unit_of_work() as session:
        loaded = session.get(Environment, env_id)
        loaded.plan = Plan.STANDARD
    rename_elsewhere(env_id, "Kantoor Noord-Oost")
    with count_statements() as seen:
        assert loaded.name == "Kantoor Noord-Oost"
    assert len(seen) == 1, "the written object is read afresh once"


def test_begin_write_after_only_reads_does_not_raise_and_commits_nothing(build):
    environment = build.environment("Kantoor Lezen")
    db.session.scalars(select(Environment)).all()
    db.session.get(Environment, environment.id)
    assert db.session().in_transaction()

    begin_write(db.session)

    assert db.session().in_transaction()
    db.session.rollback()
    assert name_elsewhere(environment.id) == "Kantoor Lezen"
    assert db.session.scalar(select(func.count()).select_from(Environment)) == 1


def test_begin_write_after_reads_drops_what_was_read_so_the_write_starts_from_the_latest_commit(
    build,
):
    environment = build.environment("Kantoor Oud")
    loaded = db.session.get(Environment, environment.id)
    assert loaded.name == "Kantoor Oud"
    rename_elsewhere(environment.id, "Kantoor Nieuw")

    begin_write(db.session)

    assert loaded.name == "Kantoor Nieuw"
    db.session.rollback()


def test_begin_write_at_the_start_of_a_unit_of_work_lets_it_write_and_commit():
    with unit_of_work() as session:
        begin_write(session)
        session.add(new_environment("Kantoor Begin"))

    assert seen_elsewhere("Kantoor Begin") == 1


def test_begin_write_accepts_the_scoped_session_as_the_services_pass_it():
    begin_write(db.session)  # the scoped_session itself
    begin_write(db.session())  # and the session it stands for
    db.session.rollback()


def test_begin_write_after_a_committed_write_starts_a_new_unit_without_complaint():
    with unit_of_work() as session:
        session.add(new_environment("Kantoor Een"))

    begin_write(db.session)
    db.session.add(new_environment("Kantoor Twee"))
    db.session.commit()

    assert seen_elsewhere("Kantoor Twee") == 1


def test_begin_write_after_a_rolled_back_write_starts_a_new_unit_without_complaint():
    db.session.add(new_environment("Kantoor Weg"))
    db.session.flush()
    db.session.rollback()

    begin_write(db.session)
    db.session.rollback()

    assert seen_elsewhere("Kantoor Weg") == 0


def test_begin_write_after_a_flushed_insert_raises_and_the_insert_is_never_committed():
    with pytest.raises(RuntimeError, match="already written"), unit_of_work() as session:
        session.add(new_environment("Kantoor Vroeg"))
        session.flush()
        begin_write(session)
        pytest.fail("begin_write let the unit carry on")

    assert seen_elsewhere("Kantoor Vroeg") == 0


def test_begin_write_after_an_update_statement_raises_and_the_update_is_never_committed(build):
    environment = build.environment("Kantoor Ongewijzigd")

    with pytest.raises(RuntimeError, match="already written"), unit_of_work() as session:
        session.execute(
            update(Environment)
            .where(Environment.id == environment.id)
            .values(name="Kantoor Gewijzigd")
            .execution_options(synchronize_session=False)
        )
        begin_write(session)

    assert name_elsewhere(environment.id) == "Kantoor Ongewijzigd"


def test_begin_write_after_a_pending_unflushed_change_raises_and_nothing_is_committed(build):
    environment = build.environment("Kantoor Pending")

    with pytest.raises(RuntimeError, match="already written"), unit_of_work() as session:
        session.get(Environment, environment.id).name = "Kantoor Dirty"
        begin_write(session)

    with pytest.raises(RuntimeError, match="already written"), unit_of_work() as session:
        session.scalars(select(Environment)).all()
        session.add(new_environment("Kantoor Nieuw"))
        begin_write(session)

    assert name_elsewhere(environment.id) == "Kantoor Pending"
    assert seen_elsewhere("Kantoor Nieuw") == 0


def test_begin_write_raising_does_not_itself_undo_the_write_the_caller_must_roll_back():
    """It neither commits nor silently drops what was written: the caller decides."""
    db.session.add(new_environment("Kantoor Halverwege"))
    db.session.flush()

    with pytest.raises(RuntimeError):
        begin_write(db.session)

    assert (
        db.session.scalar(
            select(func.count())
            .select_from(Environment)
            .where(Environment.name == "Kantoor Halverwege")
        )
        == 1
    ), "still there in the caller's own transaction"
    db.session.rollback()
    assert seen_elsewhere("Kantoor Halverwege") == 0


def test_begin_write_after_a_textual_update_raises_instead_of_silently_dropping_it(build):
    environment = build.environment("Kantoor Tekst")
    db.session.execute(
        text("UPDATE environments SET name = 'Kantoor Stil Weg' WHERE id = :id"),
        {"id": environment.id},
    )

    try:
        with pytest.raises(RuntimeError, match="already written"):
            begin_write(db.session)
    finally:
        db.session.rollback()


def test_on_sqlite_begin_write_takes_the_write_lock_at_once():
    if not on_sqlite():
        pytest.skip("PostgreSQL: begin_write is an ordinary transaction; row locks decide")
    begin_write(db.session)
    try:
        with db.engine.connect() as other:
            other.exec_driver_sql("PRAGMA busy_timeout = 50")
            with pytest.raises(OperationalError, match="database is locked"):
                other.execute(
                    Environment.__table__.insert().values(
                        name="Kantoor Wacht", office_code="WACHT", plan="premium"
                    )
                )
            other.rollback()
    finally:
        db.session.rollback()

    assert seen_elsewhere("Kantoor Wacht") == 0
