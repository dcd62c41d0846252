"""``flask demo``: three offices, seven logins, Noord's administrations with every blocker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Integer, func, select, text

from app.admin_settings.models import (
    Administration,
    AdministrationState,
    AuthorizationFlow,
    AuthorizationStep,
    Connection,
    Document,
    DocumentStatus,
    Environment,
    Package,
    Plan,
    Workflow,
)
from app.auth.models import Role, User
from app.db import utcnow
from app.extensions import db
from app.storage import blob_store
from tests.conftest import _empty_all_tables

LOGINS = {
    "super@noord.example": (Role.SUPERUSER, "NOORD"),
    "super@zuid.example": (Role.SUPERUSER, "ZUID"),
    "tweede@zuid.example": (Role.SUPERUSER, "ZUID"),
    "super@west.example": (Role.SUPERUSER, "WEST"),
    "user@noord.example": (Role.USER, "NOORD"),
    "autorisator@noord.example": (Role.AUTHORIZER, "NOORD"),
    "support@overdracht.example": (Role.SUPPORT, None),
}


def run_demo(runner, *args: str) -> str:
    result = runner.invoke(args=["demo", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    db.session.expire_all()
    return result.output


def row_counts() -> dict[str, int]:
    """How many rows every table holds."""
    return {
        table.name: db.session.scalar(select(func.count()).select_from(table))
        for table in db.metadata.sorted_tables
    }


def environment(code: str) -> Environment:
    return db.session.scalars(select(Environment).where(Environment.office_code == code)).one()


def noord_administrations() -> list[Administration]:
    return list(
        db.session.scalars(
            select(Administration)
            .where(Administration.environment_id == environment("NOORD").id)
            .order_by(Administration.code)
        )
    )


def count(stmt) -> int:
    return db.session.scalar(select(func.count()).select_from(stmt.subquery()))


def blocker_kinds(administration: Administration) -> set[str]:
    pending = count(
        select(Document.id).where(
            Document.administration_id == administration.id,
            Document.status == DocumentStatus.PENDING,
        )
    )
    active_workflows = count(
        select(Workflow.id).where(
            Workflow.administration_id == administration.id, Workflow.active.is_(True)
        )
    )
    steps = count(
        select(AuthorizationStep.id)
        .join(AuthorizationFlow, AuthorizationStep.flow_id == AuthorizationFlow.id)
        .where(AuthorizationFlow.administration_id == administration.id)
    )
    counts = {
        "undecided_documents": pending,
        "active_workflows": active_workflows,
        "authorizers_in_flows": steps,
    }
    return {kind for kind, n in counts.items() if n}


def empty_quickly() -> None:
    """Delete every row. On SQLite with foreign-key checks off: each deleted document
    otherwise scans the whole table for copies pointing at it (see the test on
    ``documents.source_document_id`` in test_migrations.py), which takes seconds."""
    db.session.commit()
    if db.engine.dialect.name != "sqlite":
        _empty_all_tables()
        return
    raw = db.engine.raw_connection()
    sqlite = raw.driver_connection
    try:
        sqlite.execute("PRAGMA foreign_keys=OFF")  # takes effect only outside a transaction
        sqlite.execute("BEGIN")
        for table in reversed(db.metadata.sorted_tables):
            sqlite.execute(f'DELETE FROM "{table.name}"')
        sqlite.execute("COMMIT")
    finally:
        sqlite.execute("PRAGMA foreign_keys=ON")
        raw.close()


@pytest.fixture(scope="module")
def seeded(app, tmp_path_factory) -> dict:
    """One real ``flask demo`` run per module, kept as a snapshot of every table's rows.

    Seeding takes seconds; restoring its rows takes a fraction of that. The blobs stay
    in the blob store, which is never emptied.
    """
    migration_file = tmp_path_factory.mktemp("demo") / "migratiebestand-kantoor-oost.zip"
    app.config["DEMO_MIGRATION_FILE"] = str(migration_file)  # not the real instance/
    with app.app_context():
        output = run_demo(app.test_cli_runner())
        with db.engine.connect() as connection:
            rows = {
                table.name: [dict(r._mapping) for r in connection.execute(table.select())]
                for table in db.metadata.sorted_tables
            }
        empty_quickly()
    return {"output": output, "rows": rows, "migration_file": migration_file}


@pytest.fixture
def demo(seeded):
    """The database as ``flask demo`` left it; yields what the command printed."""
    for table in db.metadata.sorted_tables:
        if seeded["rows"][table.name]:
            db.session.execute(table.insert(), seeded["rows"][table.name])
    if db.engine.dialect.name == "postgresql":
        serial = [
            t for t in db.metadata.sorted_tables if "id" in t.c and isinstance(t.c.id.type, Integer)
        ]
        for table in serial:
            db.session.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
                )
            )
    db.session.commit()
    yield seeded["output"]
    db.session.rollback()
    empty_quickly()


def test_flask_demo_reports_what_it_seeded_and_the_password(seeded):
    output = seeded["output"]

    assert "'demo'" in output
    for email in LOGINS:
        assert email in output


def test_flask_demo_seeds_three_offices_with_their_plans_and_connections(demo):
    offices = {e.office_code: e for e in db.session.scalars(select(Environment))}

    assert set(offices) == {"NOORD", "ZUID", "WEST"}
    assert offices["NOORD"].plan is Plan.PREMIUM
    assert offices["WEST"].plan is Plan.STANDARD
    noord_packages = {
        c.package
        for c in db.session.scalars(
            select(Connection).where(Connection.environment_id == offices["NOORD"].id)
        )
    }
    assert {Package.EXACT_ONLINE, Package.TWINFIELD} <= noord_packages
    for code in ("ZUID", "WEST"):
        assert count(select(Connection.id).where(Connection.environment_id == offices[code].id))


def test_flask_demo_creates_the_demo_logins(demo):
    users = {u.email: u for u in db.session.scalars(select(User))}

    assert set(LOGINS) <= set(users)
    for email, (role, office_code) in LOGINS.items():
        user = users[email]
        assert user.role is role, email
        if office_code is None:
            assert user.environment_id is None
        else:
            assert user.environment.office_code == office_code, email


def test_noord_has_eight_or_more_administrations_of_50_to_2000_documents(demo):
    administrations = noord_administrations()

    assert len(administrations) >= 8
    for administration in administrations:
        n = count(select(Document.id).where(Document.administration_id == administration.id))
        assert 50 <= n <= 2000, (administration.name, n)


def test_the_demo_documents_span_several_archive_years(demo):
    noord = environment("NOORD")

    years = set(
        db.session.scalars(
            select(Document.booked_year)
            .where(Document.environment_id == noord.id, Document.booked_year.is_not(None))
            .distinct()
        )
    )

    assert len(years) >= 3


def test_noord_has_a_clean_administration_and_one_for_each_blocker_kind(demo):
    kinds = [blocker_kinds(a) for a in noord_administrations()]

    assert set() in kinds, "at least one clean administration"
    for kind in ("undecided_documents", "active_workflows", "authorizers_in_flows"):
        assert any(kind in k for k in kinds), kind


def test_every_demo_document_has_its_file_in_the_blob_store(demo):
    store = blob_store()

    rows = db.session.execute(select(Document.blob_key, Document.size)).all()

    assert rows
    for key, size in rows:
        assert store.exists(key)
        assert store.size(key) == size
    with store.open(rows[0].blob_key) as fh:
        assert fh.read(5) == b"%PDF-"


def test_running_flask_demo_twice_changes_nothing(runner, demo):
    before = row_counts()
    noord_id = environment("NOORD").id

    output = run_demo(runner)

    assert row_counts() == before
    assert environment("NOORD").id == noord_id
    assert output.strip()


def noord_pending() -> int:
    return count(
        select(Document.id).where(
            Document.environment_id == environment("NOORD").id,
            Document.status == DocumentStatus.PENDING,
        )
    )


def test_flask_demo_reset_starts_over_with_the_same_counts(runner, build, demo):
    seeded = row_counts()
    # Change the demo: one extra office, and every document of Noord decided.
    build.environment("Kantoor Oost", office_code="OOST")
    db.session.execute(
        Document.__table__.update()
        .where(Document.environment_id == environment("NOORD").id)
        .values(status=DocumentStatus.APPROVED)
    )
    db.session.commit()
    assert row_counts()["environments"] == seeded["environments"] + 1
    assert noord_pending() == 0

    run_demo(runner, "--reset")

    assert row_counts() == seeded
    assert not db.session.scalars(
        select(Environment).where(Environment.office_code == "OOST")
    ).all()
    assert noord_pending() > 0


def test_the_seed_function_is_idempotent(demo):
    from app.demo import seed_demo

    before = row_counts()

    seed_demo(reset=False, echo=lambda _line: None)
    db.session.flush()

    assert row_counts() == before
    db.session.rollback()


@pytest.mark.parametrize(
    ("email", "home"),
    [
        ("super@noord.example", "/settings/administrations"),
        ("user@noord.example", "/settings/administrations"),
        ("support@overdracht.example", "/support"),
    ],
)
def test_a_seeded_user_can_log_in_with_password_demo(demo, new_client, email, home):
    client = new_client()
    client.get_page("/login")

    response = client.post_form("/login", {"email": email, "password": "demo"})

    assert response.status_code == 302
    assert response.headers["Location"] == home
    assert client.get(home).status_code == 200


def demo_user(email: str) -> User:
    return db.session.scalars(select(User).where(User.email == email)).one()


def test_flask_demo_writes_the_desktop_offices_migration_file_and_names_it(seeded):
    from app.migration_files.reader import read_package

    assert "Migratiebestand om te importeren:" in seeded["output"]
    assert "migratiebestand-kantoor-oost.zip" in seeded["output"]
    with seeded["migration_file"].open("rb") as fh:
        package = read_package(fh)

    assert package.problems == []
    assert package.source_organization == "Kantoor Oost, desktoparchief"
    assert {a.package for a in package.administrations} == {Package.EXACT_ONLINE}
    statuses = {d.status for d in package.documents}
    assert {DocumentStatus.APPROVED, None} <= statuses
    assert len(package.documents) >= 24
    assert len({d.sha256 for d in package.documents}) == len(package.documents)


def start_demo_import(email: str, data: bytes):
    from app.migration_files import imports
    from app.web import unit_of_work

    with unit_of_work():
        imp = imports.create_import(
            demo_user(email),
            blob_key=blob_store().put_bytes(data),
            size=len(data),
            file_name="migratiebestand-kantoor-oost.zip",
            import_type="combined",
            default_status="pending",
            origin="tests",
        )
        imports.dry_run(imp)
    return imp


def test_zuid_imports_the_demos_migration_file_decided_documents_locked(seeded, demo):
    from app.migration_files import imports, processing
    from app.migration_files.models import Import, ImportState
    from app.web import unit_of_work

    data = seeded["migration_file"].read_bytes()
    zuid = environment("ZUID")
    imp = start_demo_import("super@zuid.example", data)
    assert imp.state is ImportState.AWAITING_CONFIRMATION, imp.report
    assert imp.report["counts"]["errors"] == 0
    assert imp.report["counts"]["conflicts"] == 0
    with unit_of_work():
        imports.confirm(demo_user("super@zuid.example"), imp.id, conflicts=None, origin="tests")

    assert processing.process_imports() == 1

    db.session.expire_all()
    assert db.session.get(Import, imp.id).state is ImportState.COMPLETED
    landed = db.session.scalars(
        select(Document)
        .join(Administration, Document.administration_id == Administration.id)
        .where(
            Document.environment_id == zuid.id, Administration.code.in_(["4001", "4002", "4003"])
        )
    ).all()
    assert len(landed) == imp.documents_total >= 24
    decided = [d for d in landed if d.status is not DocumentStatus.PENDING]
    undecided = [d for d in landed if d.status is DocumentStatus.PENDING]
    assert decided and undecided
    assert all(d.locked for d in decided)
    assert not any(d.locked for d in undecided)
    with blob_store().open(landed[0].blob_key) as fh:
        assert fh.read(5) == b"%PDF-"


def test_west_on_the_standard_plan_is_told_why_it_cannot_import_the_file(seeded, demo):
    from app.errors import ServiceError
    from app.migration_files.models import Import

    data = seeded["migration_file"].read_bytes()
    with pytest.raises(ServiceError) as refused:
        start_demo_import("super@west.example", data)

    assert "premium" in refused.value.message.lower()
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Import)) == 0


# --- the demo's transfers: their times, and the returning client --------------------------------


def events(action: str, transfer_id: int):
    from app.audit import AuditEvent

    return db.session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == action,
            AuditEvent.object_type == "transfer",
            AuditEvent.object_id == transfer_id,
        )
    ).all()


def test_the_demo_transfers_audit_events_carry_the_times_the_transfers_show(demo):
    from app.outbox import OutboxMessage
    from app.transfers.models import Claim, Transfer

    transfers = db.session.scalars(select(Transfer).order_by(Transfer.id)).all()
    assert len(transfers) == 3
    for transfer in transfers:
        claim = db.session.scalars(select(Claim).where(Claim.transfer_id == transfer.id)).one()
        (offered,) = events("transfer_offered", transfer.id)
        (claimed,) = events("transfer_claimed", transfer.id)
        assert abs(offered.created_at - transfer.created_at).total_seconds() < 1
        assert abs(claimed.created_at - claim.created_at).total_seconds() < 1
        mails = db.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.ref_type == "transfer",
                OutboxMessage.ref_id == transfer.id,
                OutboxMessage.kind == "transfer_offered",
            )
        ).all()
        assert mails
        for mail in mails:
            assert abs(mail.created_at - transfer.created_at).total_seconds() < 1
    # The oldest one is the returning client's, nine days ago and completed since.
    first = transfers[0]
    assert first.items[0].administration_code == "1008"
    assert first.state.value == "completed"
    assert abs(utcnow() - first.created_at - timedelta(days=9)) < timedelta(minutes=5)
    (completed,) = events("transfer_completed", first.id)
    assert abs(completed.created_at - first.ended_at).total_seconds() < 1


def returning_client(office_code: str) -> Administration:
    return db.session.scalars(
        select(Administration).where(
            Administration.environment_id == environment(office_code).id,
            Administration.code == "1008",
        )
    ).one()


def test_the_returning_client_is_migrated_in_noord_and_active_in_zuid(demo):
    in_noord, in_zuid = returning_client("NOORD"), returning_client("ZUID")

    assert in_noord.state is AdministrationState.MIGRATED
    assert in_zuid.state is AdministrationState.ACTIVE
    assert in_noord.name == in_zuid.name == "Dierenkliniek De Hoefslag"
    assert in_noord.connection.package is in_zuid.connection.package is Package.EXACT_ONLINE
    documents = count(select(Document.id).where(Document.administration_id == in_zuid.id))
    assert documents == 60


def test_zuid_can_move_the_returning_client_back_into_noords_connection(demo):
    from app.transfers import claims
    from app.transfers.copying import CopyOutcome, copy_item
    from tests.helpers import accept_all, offer

    noord = demo_user("super@noord.example")
    back, code = offer(
        demo_user("super@zuid.example"), [returning_client("ZUID")], recipients=(noord.email,)
    )

    preview = claims.preview(noord, code, origin="tests")
    assert preview.items[0].problem is None
    assert [p.clash for p in preview.items[0].choices] == [False]
    accept_all(noord, back, code, returning_client("NOORD").connection)
    assert copy_item(back.items[0].id) is CopyOutcome.COPIED

    db.session.expire_all()
    states = sorted(
        a.state.value
        for a in db.session.scalars(
            select(Administration).where(
                Administration.environment_id == environment("NOORD").id,
                Administration.code == "1008",
            )
        )
    )
    assert states == ["active", "migrated"]
    assert returning_client("ZUID").state is AdministrationState.MIGRATED
