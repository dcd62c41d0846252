"""Exporting administrations to a migration file: the zip is a valid BagIt bag whose
CSVs and files say what the office holds, for the page and the API alike; only the
environment's superusers may, and the source stays as it was."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import bagit
import pytest
from sqlalchemy import select

from app.admin_settings.models import Administration, Document
from app.audit import AuditEvent
from app.extensions import db
from app.migration_files import format as fmt
from tests.helpers import fresh

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + b"png bytes"
SHARED_PDF = b"%PDF-1.4\n% shared by two documents\n%%EOF\n"


@pytest.fixture
def exported(office, build):
    """An administration with four documents: two share one file, one is a PNG, one
    approved by a named person."""
    administration = build.administration(office.connection, name="Bakkerij De Korf", code="KORF")
    shared_a = build.document(
        administration,
        "approved",
        content=SHARED_PDF,
        filename="factuur-januari.pdf",
        decided_by_name="J. de Vries",
        decided_at=datetime(2024, 3, 5, 9, 30, tzinfo=UTC),
        uploaded_by_name="Sanne Noord",
    )
    shared_b = build.document(
        administration,
        "rejected",
        content=SHARED_PDF,
        filename="factuur-januari-kopie.pdf",
        amount=Decimal("1234.50"),
    )
    image = build.document(
        administration,
        content=PNG,
        content_type="image/png",
        filename="bon.png",
        kind="receipt",
        amount=None,
        invoice_date=None,
    )
    plain = build.document(administration, "approved")
    return administration, [shared_a, shared_b, image, plain]


def _unpack(data: bytes, tmp_path: Path) -> Path:
    """The zip extracted into ``tmp_path``: the bag's one top folder."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        tops = {name.split("/", 1)[0] for name in archive.namelist()}
        assert len(tops) == 1, tops
        archive.extractall(tmp_path)
    return tmp_path / tops.pop()


def _rows(bag_dir: Path, name: str) -> list[dict]:
    raw = (bag_dir / name).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "a CSV starts with a byte-order mark"
    text = raw.decode(fmt.CSV_ENCODING)
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))


def _check_bag(bag_dir: Path, documents: list) -> dict:
    """Validate the bag with the bagit library and return its parts for further checks."""
    bag = bagit.Bag(str(bag_dir))
    bag.validate()  # every checksum, Payload-Oxum, the tag manifest
    admins = _rows(bag_dir, fmt.ADMINISTRATIONS_CSV)
    docs = _rows(bag_dir, fmt.DOCUMENTS_CSV)
    files = sorted(p.name for p in (bag_dir / fmt.FILES_DIR).iterdir())
    return {"bag": bag, "administrations": admins, "documents": docs, "files": files}


def _post(client, data: dict):
    """POST the export form with the session's CSRF token (the answer may be a zip, so
    it is not read as a page)."""
    assert client.csrf_token, "load a page first"
    return client.post(
        "/settings/migrations/export", data={"csrf_token": client.csrf_token, **data}
    )


def _export_page(login, user, administration):
    client = login(user)
    client.get_page(f"/settings/administrations/{administration.id}")
    return client, _post(
        client,
        {"administration_ids": administration.id, "connection_id": administration.connection_id},
    )


def test_the_administration_page_exports_a_valid_bag_with_every_document(
    office, exported, login, tmp_path
):
    administration, documents = exported
    client = login(office.superuser)
    page = client.get_page(f"/settings/administrations/{administration.id}")
    assert "Exporteer migratiebestand" in page.get_data(as_text=True)

    response = _post(
        client,
        {"administration_ids": administration.id, "connection_id": administration.connection_id},
    )

    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert response.headers["Cache-Control"] == "no-store"
    day = datetime.now(ZoneInfo("Europe/Amsterdam")).strftime("%Y%m%d")
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="migratiebestand-NOORD-{day}-1-administratie.zip"'
    parts = _check_bag(_unpack(response.data, tmp_path), documents)

    info = parts["bag"].info
    assert info["Source-Organization"] == "Kantoor Noord"
    assert info["Overdracht-Scope"] == "combined"
    assert info["Overdracht-Format-Version"] == fmt.FORMAT_VERSION
    assert parts["administrations"] == [
        {
            "package": "exact_online",
            "administration_code": "KORF",
            "name": "Bakkerij De Korf",
            "contact_email": administration.contact_email,
        }
    ]
    # Three distinct files for four documents, each named by its hash.
    shared_hash = hashlib.sha256(SHARED_PDF).hexdigest()
    png_hash = hashlib.sha256(PNG).hexdigest()
    assert len(parts["files"]) == 3
    assert f"{shared_hash}.pdf" in parts["files"]
    assert f"{png_hash}.png" in parts["files"]
    payload_bytes = len(SHARED_PDF) + len(PNG) + documents[3].size
    payload_bytes += sum(
        (_bag_dir_file(tmp_path, name)).stat().st_size
        for name in (fmt.ADMINISTRATIONS_CSV, fmt.DOCUMENTS_CSV)
    )
    assert info["Payload-Oxum"] == f"{payload_bytes}.5"

    by_name = {row["filename"]: row for row in parts["documents"]}
    assert list(by_name) == [
        "factuur-januari.pdf",
        "factuur-januari-kopie.pdf",
        "bon.png",
        documents[3].filename,
    ]
    january = by_name["factuur-januari.pdf"]
    assert january["file"] == f"files/{shared_hash}.pdf"
    assert by_name["factuur-januari-kopie.pdf"]["file"] == january["file"]
    assert january["amount"] == "121,00"
    assert january["status"] == "approved"
    assert january["decided_by"] == "J. de Vries"
    assert january["decided_at"] == "2024-03-05T09:30:00+00:00"
    assert january["uploaded_by"] == "Sanne Noord"
    assert january["invoice_date"] == "2024-03-01"
    assert january["booked_year"] == "2024" and january["booked_period"] == "3"
    assert january["package"] == "exact_online" and january["administration_code"] == "KORF"
    assert by_name["factuur-januari-kopie.pdf"]["amount"] == "1234,50"
    assert by_name["factuur-januari-kopie.pdf"]["status"] == "rejected"
    receipt = by_name["bon.png"]
    assert (receipt["kind"], receipt["amount"], receipt["invoice_date"]) == ("receipt", "", "")
    assert (receipt["status"], receipt["decided_at"]) == ("pending", "")
    assert receipt["file"] == f"files/{png_hash}.png"


def _bag_dir_file(tmp_path: Path, name: str) -> Path:
    (top,) = list(tmp_path.iterdir())
    return top / name


def test_the_api_exports_the_same_bag(office, exported, api_client, tmp_path):
    administration, documents = exported
    http, headers = api_client(office.superuser)

    response = http.get(f"/api/v1/administrations/{administration.id}/export", headers=headers)

    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert "migratiebestand-NOORD-" in response.headers["Content-Disposition"]
    parts = _check_bag(_unpack(response.data, tmp_path), documents)
    assert [row["filename"] for row in parts["documents"]] == [d.filename for d in documents]
    assert len(parts["files"]) == 3


def test_the_openapi_document_declares_the_export_as_a_zip(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/administrations/{administration_id}/export"]["get"]
    assert operation["responses"]["200"]["content"] == {
        "application/zip": {"schema": {"type": "string", "format": "binary"}}
    }


def test_several_administrations_of_one_connection_go_in_one_file(
    office, exported, build, login, tmp_path
):
    administration, documents = exported
    second = build.administration(office.connection, name="Slagerij Vos", code="VOS")
    # The same file in another administration is still stored once.
    extra = build.document(second, "approved", content=SHARED_PDF, filename="vos.pdf")
    empty = build.administration(office.connection, name="Lege Administratie", code="LEEG")
    client = login(office.superuser)
    page = client.get_page(f"/settings/migrations/export?connection_id={office.connection.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Slagerij Vos" in html and "Bakkerij De Korf" in html

    response = _post(
        client,
        {"administration_ids": [administration.id, second.id, empty.id]},
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert "-3-administraties.zip" in response.headers["Content-Disposition"]
    parts = _check_bag(_unpack(response.data, tmp_path), [*documents, extra])
    assert [a["administration_code"] for a in parts["administrations"]] == ["KORF", "VOS", "LEEG"]
    assert len(parts["documents"]) == 5
    assert len(parts["files"]) == 3
    vos = [row for row in parts["documents"] if row["administration_code"] == "VOS"]
    assert [row["file"] for row in vos] == [f"files/{hashlib.sha256(SHARED_PDF).hexdigest()}.pdf"]


def test_the_administrations_page_links_each_connection_to_its_export(office, exported, login):
    client = login(office.superuser)
    html = client.get_page("/settings/administrations").get_data(as_text=True)
    assert f"/settings/migrations/export?connection_id={office.connection.id}" in html


def test_an_empty_selection_or_two_connections_is_a_form_error(office, exported, build, login):
    administration, _documents = exported
    other_connection = build.connection(office.environment, "twinfield")
    elsewhere = build.administration(other_connection, name="Twinfield BV")
    client = login(office.superuser)
    client.get_page(f"/settings/migrations/export?connection_id={office.connection.id}")

    empty = _post(client, {"connection_id": office.connection.id})
    assert empty.status_code == 422
    html = empty.get_data(as_text=True)
    assert "Kies minimaal één administratie." in html
    assert "Bakkerij De Korf" in html  # the form is shown again to choose from

    mixed = _post(
        client,
        {"administration_ids": [administration.id, elsewhere.id]},
    )
    assert mixed.status_code == 422
    assert "Kies administraties van één koppeling" in mixed.get_data(as_text=True)
    assert mixed.mimetype == "text/html"


def test_the_connection_chooser_lists_the_connections(office, exported, build, login):
    build.connection(office.environment, "twinfield", name="Twinfield Noord")
    client = login(office.superuser)
    html = client.get_page("/settings/migrations/export").get_data(as_text=True)
    assert "Twinfield Noord" in html
    assert f"/settings/migrations/export?connection_id={office.connection.id}" in html


def test_another_environments_administration_is_not_found(
    office, other_office, exported, login, api_client
):
    administration, _documents = exported
    client = login(other_office.superuser)
    client.get_page("/settings/migrations/export")
    response = _post(client, {"administration_ids": administration.id})
    assert response.status_code == 404
    assert "Bakkerij De Korf" not in response.get_data(as_text=True)
    chooser = client.get(f"/settings/migrations/export?connection_id={office.connection.id}")
    assert chooser.status_code == 404

    http, headers = api_client(other_office.superuser)
    api = http.get(f"/api/v1/administrations/{administration.id}/export", headers=headers)
    assert api.status_code == 404
    assert api.mimetype == "application/json"
    fresh()
    assert (
        db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "migration_file_exported")
        ).all()
        == []
    )


def test_a_plain_user_cannot_export(office, exported, login, api_client):
    administration, _documents = exported
    client = login(office.user)
    page = client.get_page(f"/settings/administrations/{administration.id}")
    assert "Exporteer migratiebestand" not in page.get_data(as_text=True)
    assert client.get("/settings/migrations/export").status_code == 404
    response = _post(client, {"administration_ids": administration.id})
    assert response.status_code == 404  # like the migration menu: not there for them

    http, headers = api_client(office.user)
    api = http.get(f"/api/v1/administrations/{administration.id}/export", headers=headers)
    assert api.status_code == 403  # like the transfers API


def test_the_export_is_audited_before_the_file_streams(office, exported, login):
    administration, documents = exported
    _client, response = _export_page(login, office.superuser, administration)
    assert response.status_code == 200
    fresh()
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "migration_file_exported")
    ).all()
    assert len(events) == 1
    event = events[0]
    assert (event.object_type, event.object_id) == ("administration", administration.id)
    assert event.actor_id == office.superuser.id
    assert event.environment_id == office.environment.id
    assert event.details["documents"] == len(documents)
    assert event.details["file_name"].startswith("migratiebestand-NOORD-")
    assert event.origin.startswith("web")


def test_the_source_is_unchanged_by_an_export(office, exported, login):
    administration, documents = exported

    def snapshot():
        fresh()
        admin = db.session.get(Administration, administration.id)
        docs = db.session.scalars(
            select(Document).where(Document.administration_id == administration.id)
        ).all()
        return (
            admin.state,
            admin.name,
            admin.code,
            sorted((d.id, d.status, d.blob_key, d.filename, d.decided_at) for d in docs),
        )

    before = snapshot()
    _client, response = _export_page(login, office.superuser, administration)
    assert response.status_code == 200
    assert snapshot() == before


def test_export_reads_the_files_from_the_s3_store(
    app, monkeypatch, s3_store, office, build, login, tmp_path
):
    monkeypatch.setitem(app.extensions, "blob_store", s3_store)
    administration = build.administration(office.connection, name="S3 Administratie")
    documents = [
        build.document(administration, "approved", content=SHARED_PDF, filename="a.pdf"),
        build.document(administration, "approved", content=SHARED_PDF, filename="b.pdf"),
        build.document(administration, content=PNG, content_type="image/png", filename="c.png"),
    ]
    assert s3_store.exists(hashlib.sha256(PNG).hexdigest())

    _client, response = _export_page(login, office.superuser, administration)

    assert response.status_code == 200
    parts = _check_bag(_unpack(response.data, tmp_path), documents)
    assert len(parts["files"]) == 2
    assert [row["filename"] for row in parts["documents"]] == ["a.pdf", "b.pdf", "c.png"]
    (top,) = list(tmp_path.iterdir())
    png_path = top / fmt.FILES_DIR / f"{hashlib.sha256(PNG).hexdigest()}.png"
    assert png_path.read_bytes() == PNG


def test_a_large_file_streams_through_in_pieces(office, build, login, tmp_path):
    # Larger than a few store chunks: the bag still validates and the bytes are intact.
    big = b"%PDF-1.4\n" + bytes(range(256)) * (4 * 4096 * 3 + 7)
    administration = build.administration(office.connection)
    document = build.document(administration, "approved", content=big, filename="groot.pdf")

    _client, response = _export_page(login, office.superuser, administration)

    assert response.status_code == 200
    parts = _check_bag(_unpack(response.data, tmp_path), [document])
    (top,) = list(tmp_path.iterdir())
    assert (top / fmt.FILES_DIR / parts["files"][0]).read_bytes() == big


def test_the_importers_reader_accepts_an_exported_file(office, exported, api_client):
    from app.migration_files.reader import Limits, read_package

    administration, documents = exported
    http, headers = api_client(office.superuser)
    response = http.get(f"/api/v1/administrations/{administration.id}/export", headers=headers)

    package = read_package(io.BytesIO(response.data), Limits(email_test_environment=True))

    assert package.problems == []
    assert package.ok
    assert package.scope is fmt.Scope.COMBINED
    assert package.source_organization == "Kantoor Noord"
    assert [(a.code, a.name) for a in package.administrations] == [("KORF", "Bakkerij De Korf")]
    rows = {d.filename: d for d in package.documents}
    assert rows["factuur-januari.pdf"].amount == Decimal("121.00")
    assert rows["factuur-januari.pdf"].decided_at == datetime(2024, 3, 5, 9, 30, tzinfo=UTC)
    assert rows["bon.png"].status.value == "pending"
    assert len(package.files) == 3


def test_a_file_missing_from_the_store_refuses_the_export_before_a_byte_goes_out(
    office, build, login, api_client
):
    from app.storage import blob_store

    administration = build.administration(office.connection)
    build.document(administration, "approved")
    lost = build.document(administration, "approved", content=b"%PDF-1.4\n% lost file\n%%EOF\n")
    blob_store()._path(lost.blob_key).unlink()  # the store lost it (a restore gone wrong)

    client, response = _export_page(login, office.superuser, administration)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "ontbreken in de documentopslag (1)" in page
    http, headers = api_client(office.superuser)
    answer = http.get(f"/api/v1/administrations/{administration.id}/export", headers=headers)
    assert answer.status_code == 422
    assert answer.mimetype == "application/json"
    assert not db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "migration_file_exported")
    ).all()
