"""The imports API: upload a migration file (multipart) with its dry run, read it,
confirm it, the worker lands it, download the per-document result; bad input refused;
another office's import is a 404."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from app.admin_settings.models import Document
from app.audit import AuditEvent
from app.extensions import db
from app.migration_files import processing
from app.migration_files.export import export_administrations
from app.migration_files.models import Import, ImportState
from app.web import unit_of_work


def exported(actor, administrations) -> bytes:
    with unit_of_work():
        export = export_administrations(actor, [a.id for a in administrations], origin="tests")
    return b"".join(export.chunks)


@pytest.fixture
def noord_file(office, build):
    first = build.administration(office.connection, name="Bakkerij Jansen", code="1001")
    build.document(first, "approved", filename="factuur-a.pdf")
    build.document(first, "pending", filename="factuur-b.pdf")
    return exported(office.superuser, [first])


@pytest.fixture
def zuid_api(other_office, api_client):
    return api_client(other_office.superuser)


def upload(http, headers, data: bytes | None, **fields):
    form = {"import_type": "combined", **fields}
    if data is not None:
        form["file"] = (io.BytesIO(data), "migratiebestand.zip")
    return http.post(
        "/api/v1/imports", headers=headers, data=form, content_type="multipart/form-data"
    )


def zuid_documents(other_office) -> list[Document]:
    return list(
        db.session.scalars(
            select(Document).where(Document.environment_id == other_office.environment.id)
        )
    )


def test_an_uploaded_file_is_checked_at_once_and_waits_for_confirmation(
    noord_file, zuid_api, other_office
):
    http, headers = zuid_api
    response = upload(http, headers, noord_file)

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["state"] == "awaiting_confirmation"
    assert body["report"]["counts"]["administrations"] == 1
    assert body["report"]["counts"]["documents"] == 2
    assert body["report"]["errors"] == []
    assert zuid_documents(other_office) == []

    detail = http.get(f"/api/v1/imports/{body['id']}", headers=headers).get_json()
    assert detail["file_name"] == "migratiebestand.zip"
    assert detail["counts"]["documents"] == 2
    assert detail["queue_position"] is None
    assert detail["progress"] == {"done": 0, "total": 2}


def test_a_confirmed_import_is_queued_lands_and_reports_per_document(
    noord_file, zuid_api, other_office
):
    http, headers = zuid_api
    import_id = upload(http, headers, noord_file).get_json()["id"]

    early = http.get(f"/api/v1/imports/{import_id}/report", headers=headers)
    assert early.status_code == 409
    assert early.get_json()["code"] == 409

    confirmed = http.post(f"/api/v1/imports/{import_id}/confirm", headers=headers, json={})
    assert confirmed.status_code == 202, confirmed.get_json()
    assert confirmed.get_json()["state"] == "queued"
    assert confirmed.get_json()["queue_position"] == 1
    assert confirmed.get_json()["starts_at"]

    assert processing.process_imports() == 1
    detail = http.get(f"/api/v1/imports/{import_id}", headers=headers).get_json()
    assert detail["state"] == "completed"
    assert detail["progress"] == {"done": 2, "total": 2}
    assert {d.filename for d in zuid_documents(other_office)} == {"factuur-a.pdf", "factuur-b.pdf"}

    report = http.get(f"/api/v1/imports/{import_id}/report", headers=headers)
    assert report.status_code == 200
    assert report.mimetype == "text/csv"
    text = report.get_data().decode("utf-8-sig")
    assert "factuur-a.pdf" in text and "factuur-b.pdf" in text
    assert text.count(";imported;") == 2


def test_confirming_twice_is_a_conflict(noord_file, zuid_api):
    http, headers = zuid_api
    import_id = upload(http, headers, noord_file).get_json()["id"]
    assert http.post(f"/api/v1/imports/{import_id}/confirm", headers=headers).status_code == 202
    again = http.post(f"/api/v1/imports/{import_id}/confirm", headers=headers)
    assert again.status_code == 409


def test_a_missing_file_is_a_field_error_and_nothing_is_created(zuid_api):
    http, headers = zuid_api
    response = upload(http, headers, None)
    assert response.status_code == 422
    assert "file" in response.get_json()["errors"]
    assert db.session.scalar(select(func.count()).select_from(Import)) == 0


def test_an_unknown_import_type_is_a_field_error(noord_file, zuid_api):
    http, headers = zuid_api
    response = upload(http, headers, noord_file, import_type="alles")
    assert response.status_code == 422
    assert "import_type" in response.get_json()["errors"]
    assert db.session.scalar(select(func.count()).select_from(Import)) == 0


def test_a_file_that_is_no_zip_is_refused_with_errors_in_the_callers_language(
    zuid_api, other_office
):
    http, headers = zuid_api
    response = upload(http, headers, b"dit is geen zip" * 50)
    assert response.status_code == 201
    body = response.get_json()
    assert body["state"] == "refused"
    assert body["report"]["errors"]
    assert all(e["message"] for e in body["report"]["errors"])
    confirm = http.post(f"/api/v1/imports/{body['id']}/confirm", headers=headers)
    assert confirm.status_code == 409

    dutch = http.get(f"/api/v1/imports/{body['id']}", headers=headers).get_json()
    other_office.superuser.language = "en"
    db.session.commit()
    english = http.get(f"/api/v1/imports/{body['id']}", headers=headers).get_json()
    assert dutch["errors"][0]["message"] == "Dit is geen zip-bestand, of het bestand is onvolledig."
    assert english["errors"][0]["message"] != dutch["errors"][0]["message"]


def test_another_offices_import_is_not_found(noord_file, zuid_api, office, api_client):
    http, headers = zuid_api
    import_id = upload(http, headers, noord_file).get_json()["id"]
    noord_http, noord_headers = api_client(office.superuser)
    for method, url in (
        ("GET", f"/api/v1/imports/{import_id}"),
        ("POST", f"/api/v1/imports/{import_id}/confirm"),
        ("GET", f"/api/v1/imports/{import_id}/report"),
    ):
        assert noord_http.open(url, method=method, headers=noord_headers).status_code == 404
    assert db.session.get(Import, import_id).state is ImportState.AWAITING_CONFIRMATION


def test_another_offices_connection_is_refused(noord_file, zuid_api, office):
    http, headers = zuid_api
    response = upload(http, headers, noord_file, connection_id=str(office.connection.id))
    assert response.status_code == 422
    assert "connection_id" in response.get_json()["errors"]
    assert db.session.scalar(select(func.count()).select_from(Import)) == 0


def test_an_own_connection_becomes_the_target(noord_file, zuid_api, other_office):
    http, headers = zuid_api
    body = upload(
        http, headers, noord_file, connection_id=str(other_office.connection.id)
    ).get_json()
    imp = db.session.get(Import, body["id"])
    assert imp.connections == {other_office.connection.package.value: other_office.connection.id}


def test_a_standard_plan_office_is_told_why_it_cannot_import(noord_file, build, api_client):
    west = build.environment("Kantoor West", plan="standard", office_code="WEST")
    superuser = build.user(west, "superuser", email="super@west.example")
    build.connection(west)
    http, headers = api_client(superuser)
    response = upload(http, headers, noord_file)
    assert response.status_code == 422
    assert "premium" in response.get_json()["message"]
    assert db.session.scalar(select(func.count()).select_from(Import)) == 0


def test_a_file_larger_than_the_form_limit_is_accepted(app, zuid_api, monkeypatch):
    http, headers = zuid_api
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1024)
    response = upload(http, headers, b"x" * 4096)
    assert response.status_code == 201
    assert response.get_json()["state"] == "refused"


def test_a_file_larger_than_upload_max_bytes_is_too_large(app, zuid_api, monkeypatch):
    http, headers = zuid_api
    monkeypatch.setitem(app.config, "UPLOAD_MAX_BYTES", 1024)
    response = upload(http, headers, b"x" * 4096)
    assert response.status_code == 413
    assert db.session.scalar(select(func.count()).select_from(Import)) == 0


# --------------------------------------------------------------------------- support


@pytest.fixture
def support_user(build):
    return build.user(None, "support", email="support@overdracht.example", name="Sam Support")


@pytest.fixture
def failed_import(noord_file, zuid_api):
    """A confirmed Zuid import that failed (set directly: the worker's failure is tested
    with the worker)."""
    http, headers = zuid_api
    import_id = upload(http, headers, noord_file).get_json()["id"]
    http.post(f"/api/v1/imports/{import_id}/confirm", headers=headers)
    imp = db.session.get(Import, import_id)
    imp.state = ImportState.FAILED
    imp.last_error = "storage went away"
    db.session.commit()
    return import_id


def test_support_lists_every_offices_imports_without_files(
    failed_import, office, build, api_client, support_user
):
    noord_http, noord_headers = api_client(office.superuser)
    upload(noord_http, noord_headers, b"geen zip" * 10)
    http, headers = api_client(support_user)

    listed = http.get("/api/v1/support/imports", headers=headers).get_json()
    assert listed["total"] == 2
    assert {i["environment"] for i in listed["items"]} == {"Kantoor Noord", "Kantoor Zuid"}
    failed = next(i for i in listed["items"] if i["id"] == failed_import)
    assert failed["state"] == "failed"
    assert failed["last_error"] == "storage went away"
    assert failed["counts"]["documents"] == 2
    assert "blob_key" not in failed and "file" not in failed

    only_failed = http.get(
        "/api/v1/support/imports", headers=headers, query_string={"state": "failed"}
    ).get_json()
    assert [i["id"] for i in only_failed["items"]] == [failed_import]


def test_support_retries_a_failed_import_through_the_api_and_it_lands(
    failed_import, api_client, support_user, other_office
):
    http, headers = api_client(support_user)
    response = http.post(f"/api/v1/support/imports/{failed_import}/retry", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["state"] == "queued"
    again = http.post(f"/api/v1/support/imports/{failed_import}/retry", headers=headers)
    assert again.status_code == 409

    assert processing.process_imports() == 1
    assert db.session.get(Import, failed_import).state is ImportState.COMPLETED
    assert len(zuid_documents(other_office)) == 2
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "import_retried")
    ).all()
    assert [(e.object_id, e.actor_id) for e in events] == [(failed_import, support_user.id)]


def test_a_superuser_cannot_use_supports_imports(failed_import, zuid_api):
    http, headers = zuid_api
    assert http.get("/api/v1/support/imports", headers=headers).status_code == 404
    retry = http.post(f"/api/v1/support/imports/{failed_import}/retry", headers=headers)
    assert retry.status_code == 404
    assert db.session.get(Import, failed_import).state is ImportState.FAILED


def test_supports_page_lists_imports_and_retries_a_failed_one(failed_import, login, support_user):
    client = login(support_user)
    page = client.get_page("/support/imports")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "migratiebestand.zip" in html
    assert "Kantoor Zuid" in html
    assert 'data-state="failed"' in html
    assert f"/support/imports/{failed_import}/retry" in html

    response = client.post_form(f"/support/imports/{failed_import}/retry")
    assert response.status_code == 302
    assert db.session.get(Import, failed_import).state is ImportState.QUEUED
    after = client.get_page("/support/imports").get_data(as_text=True)
    assert "De import staat opnieuw in de wachtrij." in after
    assert f"/support/imports/{failed_import}/retry" not in after


def test_retrying_an_import_that_did_not_fail_tells_support_so(
    noord_file, zuid_api, login, support_user
):
    http, headers = zuid_api
    import_id = upload(http, headers, noord_file).get_json()["id"]
    client = login(support_user)
    client.get_page("/support/imports")
    client.post_form(f"/support/imports/{import_id}/retry")
    html = client.get_page("/support/imports").get_data(as_text=True)
    assert "Alleen een mislukte import kan opnieuw worden geprobeerd." in html
    assert db.session.get(Import, import_id).state is ImportState.AWAITING_CONFIRMATION


def test_a_connection_id_that_is_no_number_or_sent_twice_is_a_field_error(
    noord_file, zuid_api, other_office
):
    http, headers = zuid_api
    assert upload(http, headers, noord_file, connection_id="abc").status_code == 422
    twice = http.post(
        "/api/v1/imports",
        headers=headers,
        data={
            "import_type": ["combined", "documents"],
            "file": (io.BytesIO(noord_file), "migratiebestand.zip"),
        },
        content_type="multipart/form-data",
    )
    assert twice.status_code == 422
    assert "import_type" in twice.get_json()["errors"]
    assert db.session.scalar(select(func.count()).select_from(Import)) == 0


def test_every_imports_endpoint_needs_a_token(noord_file, zuid_api, client):
    http, headers = zuid_api
    import_id = upload(http, headers, noord_file).get_json()["id"]
    assert http.get(f"/api/v1/imports/{import_id}", headers=headers).status_code == 200
    for method, url in (
        ("POST", "/api/v1/imports"),
        ("GET", f"/api/v1/imports/{import_id}"),
        ("POST", f"/api/v1/imports/{import_id}/confirm"),
        ("GET", f"/api/v1/imports/{import_id}/report"),
    ):
        assert http.open(url, method=method).status_code == 401
    assert upload(http, {}, noord_file).status_code == 401
    assert db.session.scalar(select(func.count()).select_from(Import)) == 1
