"""Importing a migration file: the dry run, confirmation, the worker landing each
administration once, locked decided documents, re-import and documents-only phases."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.admin_settings.models import Administration, Document, DocumentStatus, Provenance
from app.db import utcnow
from app.errors import Conflict, ServiceError
from app.extensions import db
from app.migration_files import imports, processing
from app.migration_files.export import export_administrations
from app.migration_files.models import Import, ImportItemState, ImportState
from app.outbox import OutboxMessage
from app.storage import blob_store
from app.web import unit_of_work


def exported(actor, administrations) -> bytes:
    with unit_of_work():
        export = export_administrations(actor, [a.id for a in administrations], origin="tests")
    return b"".join(export.chunks)


def start(actor, data: bytes, **options) -> Import:
    key = blob_store().put_bytes(data)
    with unit_of_work():
        imp = imports.create_import(
            actor,
            blob_key=key,
            size=len(data),
            file_name="migratiebestand.zip",
            import_type=options.pop("import_type", "combined"),
            default_status=options.pop("default_status", "pending"),
            origin="tests",
            **options,
        )
        imports.dry_run(imp)
    return imp


def run(actor, imp: Import, conflicts: str | None = None) -> Import:
    with unit_of_work():
        imports.confirm(actor, imp.id, conflicts=conflicts, origin="tests")
    assert processing.process_imports() == 1
    db.session.expire_all()
    return db.session.get(Import, imp.id)


@pytest.fixture
def noord_file(office, build):
    first = build.administration(office.connection, name="Bakkerij Jansen", code="1001")
    second = build.administration(office.connection, name="Garage De Vries", code="1002")
    build.document(first, "approved", filename="factuur-a.pdf")
    build.document(first, "rejected", filename="factuur-b.pdf")
    build.document(first, "pending", filename="factuur-c.pdf")
    build.document(second, "approved", filename="bon.pdf")
    return exported(office.superuser, [first, second])


@pytest.fixture
def zuid(build):
    env = build.environment("Kantoor Zuid", office_code="ZUID")
    superuser = build.user(env, "superuser", email="super@zuid.example", name="Sam Zuid")
    build.connection(env)
    return superuser


def result_csv(imp: Import) -> str:
    with blob_store().open(imp.result_blob_key) as stream:
        return stream.read().decode("utf-8-sig")


def documents_of(environment_id: int) -> list[Document]:
    return list(
        db.session.scalars(
            select(Document).where(Document.environment_id == environment_id).order_by(Document.id)
        )
    )


def test_the_dry_run_counts_what_will_arrive_and_writes_nothing(noord_file, zuid):
    imp = start(zuid, noord_file)

    assert imp.state is ImportState.AWAITING_CONFIRMATION
    counts = imp.report["counts"]
    assert counts["administrations"] == 2
    assert counts["documents"] == 4
    assert counts["new_documents"] == 4
    assert counts["already_present"] == 0
    assert counts["errors"] == 0
    assert imp.source_organization == "Kantoor Noord"
    assert documents_of(zuid.environment_id) == []


def test_confirmed_import_lands_every_document_decided_ones_locked(noord_file, zuid):
    imp = run(zuid, start(zuid, noord_file))

    assert imp.state is ImportState.COMPLETED
    landed = documents_of(zuid.environment_id)
    by_name = {d.filename: d for d in landed}
    assert set(by_name) == {"factuur-a.pdf", "factuur-b.pdf", "factuur-c.pdf", "bon.pdf"}
    assert by_name["factuur-a.pdf"].status is DocumentStatus.APPROVED
    assert by_name["factuur-a.pdf"].locked
    assert by_name["factuur-b.pdf"].locked
    assert by_name["factuur-c.pdf"].status is DocumentStatus.PENDING
    assert not by_name["factuur-c.pdf"].locked
    for d in landed:
        assert blob_store().exists(d.blob_key)
    provenance = db.session.scalars(select(Provenance)).all()
    assert len(provenance) == 2
    assert {p.source_environment_name for p in provenance} == {"Kantoor Noord"}
    assert all(p.import_item_id for p in provenance)
    result = result_csv(imp)
    assert result.count(";imported;") == 4
    (mail,) = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "import_completed")
    ).all()
    assert mail.to_email == "super@zuid.example"
    assert f"/settings/migrations/imports/{imp.id}" in mail.body_text


def test_importing_the_same_file_again_adds_nothing(noord_file, zuid):
    run(zuid, start(zuid, noord_file))
    again = start(zuid, noord_file)
    assert again.report["counts"]["already_present"] == 4
    assert again.report["counts"]["new_documents"] == 0
    done = run(zuid, again)

    assert done.state is ImportState.COMPLETED
    assert len(documents_of(zuid.environment_id)) == 4
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(Administration)
            .where(Administration.environment_id == zuid.environment_id)
        )
        == 2
    )
    result = result_csv(done)
    assert result.count(";already_present;") == 4


def test_a_standard_plan_environment_is_told_why_it_cannot_import(noord_file, build):
    west = build.environment("Kantoor West", plan="standard", office_code="WEST")
    superuser = build.user(west, "superuser")
    build.connection(west)
    with pytest.raises(ServiceError) as refused, unit_of_work():
        imports.create_import(
            superuser,
            blob_key=blob_store().put_bytes(noord_file),
            size=len(noord_file),
            file_name="x.zip",
            import_type="combined",
            default_status="pending",
            origin="tests",
        )
    assert "premium" in refused.value.message
    assert db.session.scalar(select(func.count()).select_from(Import)) == 0


def test_a_file_that_is_not_a_zip_is_refused_and_nothing_imported(zuid):
    imp = start(zuid, b"dit is geen zip" * 100)
    assert imp.state is ImportState.REFUSED
    assert imp.report["errors"]
    with pytest.raises(Conflict), unit_of_work():
        imports.confirm(zuid, imp.id, conflicts=None, origin="tests")
    assert documents_of(zuid.environment_id) == []


def test_a_conflicting_administration_name_needs_a_choice_and_skip_keeps_ours(
    office, build, noord_file, zuid
):
    from app.admin_settings.models import Connection

    connection = db.session.scalars(
        select(Connection).where(Connection.environment_id == zuid.environment_id)
    ).one()
    build.administration(connection, name="Andere naam", code="1001")
    imp = start(zuid, noord_file)
    assert imp.report["counts"]["conflicts"] == 1
    with pytest.raises(ServiceError), unit_of_work():
        imports.confirm(zuid, imp.id, conflicts=None, origin="tests")
    done = run(zuid, imp, conflicts="skip")
    assert done.state is ImportState.COMPLETED
    names = set(
        db.session.scalars(
            select(Administration.name).where(Administration.environment_id == zuid.environment_id)
        )
    )
    assert names == {"Andere naam", "Garage De Vries"}
    skipped = [i for i in done.items if i.state is ImportItemState.SKIPPED]
    assert [i.administration_code for i in skipped] == ["1001"]


def test_a_second_worker_finds_nothing_to_do_and_nothing_lands_twice(noord_file, zuid):
    imp = start(zuid, noord_file)
    with unit_of_work():
        imports.confirm(zuid, imp.id, conflicts=None, origin="tests")
    assert processing.process_imports() == 1
    assert processing.process_imports() == 0
    assert processing.process_import(imp.id) is False
    assert len(documents_of(zuid.environment_id)) == 4


def test_outside_the_window_a_queued_import_waits(app, noord_file, zuid, monkeypatch):
    imp = start(zuid, noord_file)
    with unit_of_work():
        imports.confirm(zuid, imp.id, conflicts=None, origin="tests")
    monkeypatch.setitem(app.config, "IMPORT_WINDOW", "18:00-07:00")
    noon = utcnow().replace(hour=11, minute=0)  # 12:00 or 13:00 in Amsterdam
    assert processing.process_imports(now=noon) == 0
    db.session.expire_all()
    imp = db.session.get(Import, imp.id)
    assert imp.state is ImportState.QUEUED
    assert imports.queue_position(imp) == 1
    opens = imports.starts_at(imp, now=noon)
    assert opens.hour == 18


def test_a_later_documents_only_file_adds_only_the_new_documents(office, build, zuid):
    """Phases: first the administrations with what they had, later a documents-only
    import adds what came since, matched by package, administration code and file."""
    first = build.administration(office.connection, name="Bakkerij Jansen", code="1001")
    build.document(first, "approved", filename="januari.pdf")
    run(zuid, start(zuid, exported(office.superuser, [first])))
    build.document(first, "pending", filename="februari.pdf")
    build.document(first, "approved", filename="maart.pdf")
    later = exported(office.superuser, [first])

    phase = start(zuid, later, import_type="documents", default_status="approved")
    assert phase.state is ImportState.AWAITING_CONFIRMATION
    assert phase.report["counts"]["new_documents"] == 2
    assert phase.report["counts"]["already_present"] == 1
    run(zuid, phase)

    landed = {d.filename: d for d in documents_of(zuid.environment_id)}
    assert set(landed) == {"januari.pdf", "februari.pdf", "maart.pdf"}
    assert landed["maart.pdf"].locked
    assert landed["februari.pdf"].status is DocumentStatus.PENDING  # it carried a status
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(Administration)
            .where(Administration.environment_id == zuid.environment_id)
        )
        == 1
    )


def test_a_documents_only_file_for_an_administration_never_imported_is_refused(noord_file, zuid):
    imp = start(zuid, noord_file, import_type="documents")
    assert imp.state is ImportState.REFUSED
    assert any(e["field"] == "administration_code" for e in imp.report["errors"])
    assert documents_of(zuid.environment_id) == []
