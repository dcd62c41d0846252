"""The import wizard and an import's page: before you begin, what you import, the
upload's token, the dry-run report, confirmation, the queue, the result CSV."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.migration_files import processing
from app.migration_files.export import export_administrations
from app.migration_files.models import Import, ImportState
from app.storage import blob_store
from app.uploads.models import Upload, UploadState
from app.web import unit_of_work

BASE = "/settings/migrations/imports"


def exported(actor, administrations) -> bytes:
    with unit_of_work():
        export = export_administrations(actor, [a.id for a in administrations], origin="tests")
    return b"".join(export.chunks)


def complete_upload(actor, data: bytes, filename: str = "kantoor-noord.zip") -> Upload:
    """An upload whose every byte has arrived, as the tus server leaves it."""
    upload = Upload(
        environment_id=actor.environment_id,
        user_id=actor.id,
        token=secrets.token_urlsafe(32)[:43],
        filename=filename,
        length=len(data),
        offset=len(data),
        state=UploadState.COMPLETE,
        blob_key=blob_store().put_bytes(data),
        expires_at=utcnow() + timedelta(hours=1),
        completed_at=utcnow(),
    )
    db.session.add(upload)
    db.session.commit()
    return upload


@pytest.fixture
def noord_file(office, build):
    first = build.administration(office.connection, name="Bakkerij Jansen", code="1001")
    second = build.administration(office.connection, name="Garage De Vries", code="1002")
    build.document(first, "approved", filename="factuur-a.pdf")
    build.document(first, "pending", filename="factuur-b.pdf")
    build.document(second, "rejected", filename="bon.pdf")
    return exported(office.superuser, [first, second])


def walk_to_upload(client, data: dict | None = None):
    page = client.get_page(BASE)
    assert page.status_code == 200
    assert client.post_form(BASE).headers["Location"].endswith(f"{BASE}/choose")
    assert client.get_page(f"{BASE}/choose").status_code == 200
    chosen = client.post_form(
        f"{BASE}/choose", data or {"import_type": "combined", "default_status": "pending"}
    )
    assert chosen.status_code == 302, chosen.get_data(as_text=True)
    assert chosen.headers["Location"].endswith(f"{BASE}/upload")
    assert client.get_page(f"{BASE}/upload").status_code == 200


def test_the_actions_tab_offers_the_import(office, login):
    client = login(office.superuser)
    html = client.get("/settings/migrations/actions").get_data(as_text=True)
    assert "Importeer een migratiebestand" in html
    assert f'href="{BASE}"' in html
    assert "Exporteer administraties naar een migratiebestand" in html
    assert 'href="/settings/migrations/export"' in html


def test_the_wizard_imports_a_file_from_upload_to_result_csv(
    office, other_office, noord_file, login
):
    zuid = other_office.superuser
    client = login(zuid)
    before = client.get_page(BASE).get_data(as_text=True)
    assert "Voordat je begint" in before
    assert "gemigreerd" in before  # decided documents arrive locked
    assert "Exact Online" in before  # the connections it has, per package
    walk_to_upload(client)
    upload = complete_upload(zuid, noord_file)

    created = client.post_form(f"{BASE}/upload", {"upload_token": upload.token})

    assert created.status_code == 302, created.get_data(as_text=True)
    imp = db.session.scalars(select(Import)).one()
    assert created.headers["Location"].endswith(f"{BASE}/{imp.id}")
    assert imp.state is ImportState.AWAITING_CONFIRMATION
    assert imp.upload_id == upload.id
    page = client.get_page(f"{BASE}/{imp.id}").get_data(as_text=True)
    assert "kantoor-noord.zip" in page
    assert "Sem Zuid" in page
    assert "Wacht op bevestiging" in page
    assert 'data-count="administrations">2<' in page
    assert 'data-count="new_documents">3<' in page

    queued = client.post_form(f"{BASE}/{imp.id}/confirm")
    assert queued.status_code == 302
    page = client.get_page(f"{BASE}/{imp.id}").get_data(as_text=True)
    assert "In de wachtrij" in page
    assert "Plaats in de wachtrij: 1." in page
    assert "e-mail" in page
    assert 'value="10"' in page
    progress = client.get(f"{BASE}/{imp.id}/progress")
    assert progress.headers["Cache-Control"] == "no-store"
    assert progress.get_json()["percent"] == 10
    assert progress.get_json()["position"] == 1

    assert processing.process_imports() == 1

    page = client.get_page(f"{BASE}/{imp.id}").get_data(as_text=True)
    assert "Voltooid" in page
    assert "Bakkerij Jansen" in page and "Garage De Vries" in page
    assert client.get(f"{BASE}/{imp.id}/progress").get_json()["percent"] == 100
    result = client.get(f"{BASE}/{imp.id}/report.csv")
    assert result.status_code == 200
    assert result.mimetype == "text/csv"
    assert "attachment" in result.headers["Content-Disposition"]
    assert result.get_data().decode("utf-8-sig").count(";imported;") == 3

    overview = client.get("/settings/migrations").get_data(as_text=True)
    assert f'href="{BASE}/{imp.id}"' in overview
    assert "kantoor-noord.zip" in overview


def test_submitting_the_same_upload_twice_leads_to_the_first_import(
    other_office, noord_file, login
):
    zuid = other_office.superuser
    client = login(zuid)
    walk_to_upload(client)
    upload = complete_upload(zuid, noord_file)
    first = client.post_form(f"{BASE}/upload", {"upload_token": upload.token})
    assert first.status_code == 302
    walk_to_upload(client)  # the back button, or a second tab

    again = client.post_form(f"{BASE}/upload", {"upload_token": upload.token})

    assert again.status_code == 302
    assert again.headers["Location"] == first.headers["Location"]
    assert len(db.session.scalars(select(Import)).all()) == 1


def test_bad_choices_are_form_errors(other_office, login):
    client = login(other_office.superuser)
    client.get_page(BASE)
    client.post_form(BASE)
    refused = client.post_form(
        f"{BASE}/choose", {"import_type": "everything", "default_status": "pending"}
    )
    assert refused.status_code == 422
    assert "Kies wat je importeert." in refused.get_data(as_text=True)


def test_an_unknown_upload_token_is_a_form_error(other_office, login):
    client = login(other_office.superuser)
    walk_to_upload(client)
    refused = client.post_form(f"{BASE}/upload", {"upload_token": "not-a-token"})
    assert refused.status_code == 422
    assert db.session.scalars(select(Import)).all() == []


def test_the_upload_step_needs_the_earlier_steps(other_office, login):
    client = login(other_office.superuser)
    response = client.get(f"{BASE}/upload")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(BASE)


def test_a_standard_plan_office_is_told_why_it_cannot_import(build, login):
    west = build.environment("Kantoor West", plan="standard", office_code="WEST")
    superuser = build.user(west, "superuser", email="super@west.example")
    build.connection(west)
    client = login(superuser)

    page = client.get_page(BASE)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "premium" in html and "Kantoor West" in html
    assert "Volgende" not in html
    assert client.post_form(BASE).status_code == 422
    assert client.get(f"{BASE}/choose").status_code == 302


def test_an_office_without_connections_is_sent_to_add_one(build, login):
    oost = build.environment("Kantoor Oost", office_code="OOST")
    superuser = build.user(oost, "superuser", email="super@oost.example")
    html = login(superuser).get_page(BASE).get_data(as_text=True)
    assert 'id="import-no-connections"' in html
    assert 'href="/settings/connections"' in html


def test_a_refused_file_shows_its_errors_with_file_and_line(other_office, login):
    zuid = other_office.superuser
    client = login(zuid)
    walk_to_upload(client)
    upload = complete_upload(zuid, b"this is not a zip file", filename="kapot.zip")

    created = client.post_form(f"{BASE}/upload", {"upload_token": upload.token})

    imp = db.session.scalars(select(Import)).one()
    assert created.status_code == 302
    assert imp.state is ImportState.REFUSED
    page = client.get_page(f"{BASE}/{imp.id}").get_data(as_text=True)
    assert "Geweigerd" in page
    assert 'id="import-problems"' in page
    assert 'id="import-confirm"' not in page
    assert f'href="{BASE}"' in page  # start again


def test_a_changed_file_in_the_package_is_refused_and_named(
    office, other_office, noord_file, login
):
    import io
    import zipfile

    broken = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(noord_file)) as source,
        zipfile.ZipFile(broken, "w") as target,
    ):
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("data/administrations.csv"):
                lines = data.decode("utf-8-sig").splitlines()
                lines[1] = lines[1].replace("exact_online", "nonsense")
                data = ("\r\n".join(lines) + "\r\n").encode()
            target.writestr(info, data)
    zuid = other_office.superuser
    client = login(zuid)
    walk_to_upload(client)
    upload = complete_upload(zuid, broken.getvalue())
    client.post_form(f"{BASE}/upload", {"upload_token": upload.token})

    imp = db.session.scalars(select(Import)).one()
    assert imp.state is ImportState.REFUSED
    page = client.get_page(f"{BASE}/{imp.id}").get_data(as_text=True)
    problems = page.split('id="import-problems"', 1)[1].split("</table>", 1)[0]
    assert "data/administrations.csv" in problems


def test_cancel_drops_an_import_that_waits(other_office, noord_file, login):
    zuid = other_office.superuser
    client = login(zuid)
    walk_to_upload(client)
    upload = complete_upload(zuid, noord_file)
    client.post_form(f"{BASE}/upload", {"upload_token": upload.token})
    imp = db.session.scalars(select(Import)).one()
    client.get_page(f"{BASE}/{imp.id}")

    cancelled = client.post_form(f"{BASE}/{imp.id}/cancel")

    assert cancelled.status_code == 302
    assert db.session.get(Import, imp.id).state is ImportState.CANCELLED
    assert client.post_form(f"{BASE}/{imp.id}/confirm").status_code == 409


def test_another_offices_import_is_a_404(office, other_office, noord_file, login):
    noord = office.superuser
    upload = complete_upload(noord, noord_file)
    noord_client = login(noord)
    walk_to_upload(noord_client)
    noord_client.post_form(f"{BASE}/upload", {"upload_token": upload.token})
    imp = db.session.scalars(select(Import)).one()

    zuid_client = login(other_office.superuser)
    for url in (f"{BASE}/{imp.id}", f"{BASE}/{imp.id}/progress", f"{BASE}/{imp.id}/report.csv"):
        assert zuid_client.get(url).status_code == 404
    zuid_client.get_page(BASE)
    assert zuid_client.post_form(f"{BASE}/{imp.id}/confirm").status_code == 404
    assert zuid_client.post_form(f"{BASE}/{imp.id}/cancel").status_code == 404
    assert db.session.get(Import, imp.id).state is ImportState.AWAITING_CONFIRMATION
    # Nor can Zuid turn Noord's upload into an import of its own.
    walk_to_upload(zuid_client)
    assert (
        zuid_client.post_form(f"{BASE}/upload", {"upload_token": upload.token}).status_code == 422
    )
    assert len(db.session.scalars(select(Import)).all()) == 1


def test_a_plain_user_has_no_import_pages(office, login):
    client = login(office.user)
    assert client.get(BASE).status_code in (403, 404)
