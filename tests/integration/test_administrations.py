"""Settings › Administraties: counts and blockers, deciding and uploading documents,
downloads, workflows and authorization flows, users and connections."""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import pytest
from flask import current_app
from sqlalchemy import func, select

from app.admin_settings.models import (
    AuthorizationFlow,
    AuthorizationStep,
    Document,
    DocumentStatus,
    Workflow,
)
from app.audit import AuditEvent
from app.auth.models import User
from app.extensions import db
from app.storage import LocalBlobStore, blob_key, blob_store
from tests.integration.pages import (
    document_ids,
    field_errors,
    flash_categories,
    row_blockers,
    row_counts,
    text_of,
)
from tests.s3server import closed_port_url

LIST = "/settings/administrations"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture(autouse=True)
def own_blob_store(app, monkeypatch, tmp_path):
    """A blob store of this test's own, so "nothing was stored" is cheap to check even
    when the session's store holds the demo's thousands of files."""
    monkeypatch.setitem(app.extensions, "blob_store", LocalBlobStore(tmp_path / "blobs"))
    monkeypatch.setitem(app.config, "BLOB_ROOT", str(tmp_path / "blobs"))


def page_of(administration) -> str:
    return f"{LIST}/{administration.id}"


def decide_url(administration) -> str:
    return f"{page_of(administration)}/documents/decide"


def upload_url(administration) -> str:
    return f"{page_of(administration)}/documents"


def statuses(*documents) -> list[str]:
    db.session.expire_all()
    return [db.session.get(Document, d.id).status.value for d in documents]


def document_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Document))


def stored_blobs() -> set[Path]:
    root = Path(current_app.config["BLOB_ROOT"])
    return {p for p in root.rglob("*") if p.is_file()}


def in_english(client, url: str = LIST):
    client.get_page(url)
    assert client.post_form("/language", {"language": "en"}).status_code == 302
    return client


def upload(
    client, administration, data: bytes, filename: str = "factuur.pdf", *, follow=False, **fields
):
    """Upload through the form. Large bodies need ``follow=True``: only then does
    Werkzeug's test client close the temporary file it spools the body into."""
    client.get_page(page_of(administration))
    form = {
        "file": (io.BytesIO(data), filename),
        "kind": "purchase_invoice",
        "counterparty": "Technische Unie",
        "invoice_date": "2024-05-17",
        **fields,
    }
    return client.post_form(
        upload_url(administration),
        form,
        content_type="multipart/form-data",
        follow_redirects=follow,
    )


# --------------------------------------------------------------------------- the list


def test_the_list_shows_each_administrations_counts_and_blockers(login, build, office):
    busy = build.administration(office.connection, name="Bakkerij De Korenschoof")
    for status in ("pending", "pending", "approved", "approved", "approved", "rejected"):
        build.document(busy, status)
    build.workflow(busy)
    build.workflow(busy, active=False)
    build.authorization_step(busy, office.authorizer)
    clean = build.administration(office.connection, name="Van Dijk Installatietechniek")
    build.document(clean, "approved")
    build.workflow(clean, active=False)

    html = login(office.superuser).get_page(LIST).get_data(as_text=True)

    assert row_counts(html, busy.id) == {
        "pending": 2,
        "approved": 3,
        "rejected": 1,
        "locked": 0,
        "active_workflows": 1,
        "authorizer_steps": 1,
    }
    assert len(row_blockers(html, busy.id)) == 3
    assert row_counts(html, clean.id) == {
        "pending": 0,
        "approved": 1,
        "rejected": 0,
        "locked": 0,
        "active_workflows": 0,
        "authorizer_steps": 0,
    }
    assert row_blockers(html, clean.id) == []


def test_the_list_names_the_blockers_in_english_after_switching(login, build, office):
    administration = build.administration(office.connection)
    build.document(administration)
    build.workflow(administration)
    client = in_english(login(office.superuser))

    html = client.get_page(LIST).get_data(as_text=True)

    blockers = [text_of(b).strip() for b in row_blockers(html, administration.id)]
    assert blockers == ["Active workflows: 1", "Documents still to be decided: 1"]


def test_the_list_shows_only_the_own_environments_administrations(
    login, build, office, other_office
):
    own = build.administration(office.connection)
    foreign = build.administration(other_office.connection)

    html = login(office.superuser).get_page(LIST).get_data(as_text=True)

    assert f'data-administration-id="{own.id}"' in html
    assert f'data-administration-id="{foreign.id}"' not in html
    assert login(office.superuser).get(page_of(foreign)).status_code == 404


def test_a_support_user_gets_not_found_on_the_administrations(login, build, office):
    support = build.user(None, "support")
    client = login(support)

    assert client.get(LIST).status_code == 404
    assert client.get("/settings/users").status_code == 404


def test_an_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get(LIST)

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


# --------------------------------------------------------------------------- deciding


def test_approving_one_document_changes_its_status_and_the_pending_count(login, build, office):
    administration = build.administration(office.connection)
    chosen, other = build.document(administration), build.document(administration)
    client = login(office.superuser)
    before = row_counts(client.get_page(LIST).get_data(as_text=True), administration.id)
    client.get_page(page_of(administration))

    response = client.post_form(f"{decide_url(administration)}?one={chosen.id}&action=approve")

    assert response.status_code == 302
    assert statuses(chosen, other) == ["approved", "pending"]
    decided = db.session.get(Document, chosen.id)
    assert decided.decided_by_name == "Sanne Noord"
    assert decided.decided_by_id == office.superuser.id
    assert decided.decided_at is not None
    after = row_counts(client.get_page(LIST).get_data(as_text=True), administration.id)
    assert (before["pending"], after["pending"]) == (2, 1)
    assert (before["approved"], after["approved"]) == (0, 1)


def test_a_decision_shows_a_success_message_on_the_page_it_came_from(login, build, office):
    administration = build.administration(office.connection)
    document = build.document(administration)
    client = login(office.superuser)
    client.get_page(f"{page_of(administration)}?status=pending")

    response = client.post_form(
        f"{decide_url(administration)}?one={document.id}&action=reject",
        {"status": "pending", "page": "1", "anchor": "#documents"},
        follow_redirects=True,
    )

    assert response.status_code == 200
    assert response.request.path == page_of(administration)
    assert response.request.args.get("status") == "pending"
    assert flash_categories(response.get_data(as_text=True)) == ["success"]


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_several_documents_are_decided_at_once(login, build, office, action):
    administration = build.administration(office.connection)
    first, second, untouched = (build.document(administration) for _ in range(3))
    client = login(office.superuser)
    client.get_page(page_of(administration))

    response = client.post_form(
        decide_url(administration), {"action": action, "document_ids": [first.id, second.id]}
    )

    assert response.status_code == 302
    outcome = {"approve": "approved", "reject": "rejected"}[action]
    assert statuses(first, second, untouched) == [outcome, outcome, "pending"]


def test_deciding_without_choosing_a_document_gives_an_error_and_changes_nothing(
    login, build, office
):
    administration = build.administration(office.connection)
    document = build.document(administration)
    client = in_english(login(office.superuser), page_of(administration))

    response = client.post_form(
        decide_url(administration), {"action": "approve"}, follow_redirects=True
    )

    html = response.get_data(as_text=True)
    assert flash_categories(html) == ["error"]
    assert "Choose at least one document." in html
    assert statuses(document) == ["pending"]
    assert not db.session.scalars(
        select(AuditEvent).where(AuditEvent.action.startswith("documents_"))
    ).all()


def test_more_documents_than_the_limit_at_once_is_an_error_and_changes_nothing(
    app, login, build, office
):
    administration = build.administration(office.connection)
    document = build.document(administration)
    limit = app.config["MAX_LIST_ITEMS"]
    client = in_english(login(office.superuser), page_of(administration))

    response = client.post_form(
        decide_url(administration),
        {"action": "approve", "document_ids": [document.id] * (limit + 1)},
        follow_redirects=True,
    )

    html = response.get_data(as_text=True)
    assert flash_categories(html) == ["error"]
    assert f"Choose at most {limit} documents at once." in html
    assert statuses(document) == ["pending"]


def test_an_unknown_decision_gives_an_error_and_changes_nothing(login, build, office):
    administration = build.administration(office.connection)
    document = build.document(administration)
    client = login(office.superuser)
    client.get_page(page_of(administration))

    response = client.post_form(
        decide_url(administration),
        {"action": "delete", "document_ids": [document.id]},
        follow_redirects=True,
    )

    assert flash_categories(response.get_data(as_text=True)) == ["error"]
    assert statuses(document) == ["pending"]


def test_a_batch_with_a_document_of_another_administration_is_refused_whole(login, build, office):
    administration = build.administration(office.connection)
    neighbour = build.administration(office.connection)
    own, theirs = build.document(administration), build.document(neighbour)
    client = login(office.superuser)
    client.get_page(page_of(administration))

    response = client.post_form(
        decide_url(administration), {"action": "approve", "document_ids": [own.id, theirs.id]}
    )

    assert response.status_code == 404
    assert statuses(own, theirs) == ["pending", "pending"]


def test_a_batch_with_a_document_of_another_environment_is_refused_whole(
    login, build, office, other_office
):
    administration = build.administration(office.connection)
    foreign_administration = build.administration(other_office.connection)
    own, foreign = build.document(administration), build.document(foreign_administration)
    client = login(office.superuser)
    client.get_page(page_of(administration))

    response = client.post_form(
        decide_url(administration), {"action": "reject", "document_ids": [own.id, foreign.id]}
    )

    assert response.status_code == 404
    assert statuses(own, foreign) == ["pending", "pending"]


def test_a_document_of_another_environment_cannot_be_decided_through_its_own_page(
    login, build, office, other_office
):
    foreign_administration = build.administration(other_office.connection)
    foreign = build.document(foreign_administration)
    client = login(office.superuser)
    client.get_page(LIST)

    response = client.post_form(
        f"{decide_url(foreign_administration)}?one={foreign.id}&action=approve"
    )

    assert response.status_code == 404
    assert statuses(foreign) == ["pending"]


def test_an_authorizer_may_decide_documents(login, build, office):
    administration = build.administration(office.connection)
    document = build.document(administration)
    client = login(office.authorizer)
    page = client.get_page(page_of(administration)).get_data(as_text=True)
    assert 'data-action="approve"' in page

    response = client.post_form(f"{decide_url(administration)}?one={document.id}&action=approve")

    assert response.status_code == 302
    assert statuses(document) == ["approved"]
    assert db.session.get(Document, document.id).decided_by_name == "J. de Vries"


def test_a_plain_user_may_not_decide_and_sees_no_decide_buttons(login, build, office):
    administration = build.administration(office.connection)
    document = build.document(administration)
    client = login(office.user)

    page = client.get_page(page_of(administration)).get_data(as_text=True)
    assert document_ids(page) == [document.id]
    assert 'data-action="approve"' not in page
    assert 'data-action="reject"' not in page
    assert 'name="document_ids"' not in page

    response = client.post_form(f"{decide_url(administration)}?one={document.id}&action=approve")
    assert response.status_code == 403
    response = client.post_form(
        decide_url(administration), {"action": "reject", "document_ids": [document.id]}
    )
    assert response.status_code == 403
    assert statuses(document) == ["pending"]


# --------------------------------------------------------------------------- filtering, pages


def test_the_status_filter_shows_only_documents_with_that_status(login, build, office):
    administration = build.administration(office.connection)
    pending = [build.document(administration) for _ in range(2)]
    approved = build.document(administration, "approved")
    rejected = build.document(administration, "rejected")
    client = login(office.superuser)

    def shown(query: str) -> set[int]:
        url = f"{page_of(administration)}{query}"
        return set(document_ids(client.get_page(url).get_data(as_text=True)))

    assert shown("?status=pending") == {d.id for d in pending}
    assert shown("?status=approved") == {approved.id}
    assert shown("?status=rejected") == {rejected.id}
    assert shown("") == {d.id for d in [*pending, approved, rejected]}


def test_documents_are_shown_fifty_to_a_page(login, build, office):
    assert current_app.config["DOCUMENTS_PER_PAGE"] == 50
    administration = build.administration(office.connection)
    documents = [build.document(administration) for _ in range(53)]
    client = login(office.superuser)

    first = document_ids(client.get_page(page_of(administration)).get_data(as_text=True))
    second = document_ids(
        client.get_page(f"{page_of(administration)}?page=2").get_data(as_text=True)
    )

    assert len(first) == 50
    assert len(second) == 3
    assert set(first) | set(second) == {d.id for d in documents}
    # Same invoice date for all: the newest come first, so page 2 holds the oldest.
    assert set(second) == {d.id for d in documents[:3]}


def test_the_status_filter_and_the_page_work_together(login, build, office):
    administration = build.administration(office.connection)
    pending = [build.document(administration) for _ in range(51)]
    build.document(administration, "approved")
    client = login(office.superuser)

    html = client.get_page(f"{page_of(administration)}?status=pending&page=2").get_data(
        as_text=True
    )

    assert document_ids(html) == [pending[0].id]


# --------------------------------------------------------------------------- uploading


@pytest.mark.parametrize("role", ["superuser", "user"])
def test_an_uploaded_pdf_becomes_a_pending_document(login, build, office, role):
    administration = build.administration(office.connection)
    uploader = getattr(office, role)
    client = login(uploader)

    response = upload(client, administration, PDF, filename="inkoop 2024-17.pdf")

    assert response.status_code == 302
    assert response.headers["Location"] == page_of(administration)
    document = db.session.scalars(
        select(Document).where(Document.administration_id == administration.id)
    ).one()
    assert document.status is DocumentStatus.PENDING
    assert document.uploaded_by_name == uploader.name
    assert document.uploaded_by_id == uploader.id
    assert document.filename == "inkoop 2024-17.pdf"
    assert document.content_type == "application/pdf"
    assert document.size == len(PDF)
    assert document.counterparty == "Technische Unie"
    assert document.invoice_date.isoformat() == "2024-05-17"
    assert document.environment_id == office.environment.id
    assert document.blob_key == blob_key(PDF)
    assert blob_store().exists(document.blob_key)
    page = client.get_page(page_of(administration)).get_data(as_text=True)
    assert document_ids(page) == [document.id]
    assert flash_categories(page) == ["success"]


def test_an_authorizer_cannot_upload(login, build, office):
    administration = build.administration(office.connection)
    client = login(office.authorizer)

    response = upload(client, administration, PDF)

    assert response.status_code == 403
    assert document_count() == 0


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" * 8, "setup.exe"),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" * 8, "factuur.pdf"),
        (b"Dit is gewoon tekst, geen PDF.\n", "factuur.pdf"),
    ],
    ids=["exe", "exe-renamed-pdf", "text-renamed-pdf"],
)
def test_a_file_that_is_not_a_pdf_or_image_is_refused_and_nothing_is_stored(
    login, build, office, data, filename
):
    administration = build.administration(office.connection)
    client = in_english(login(office.superuser), page_of(administration))
    blobs_before = stored_blobs()

    response = upload(client, administration, data, filename=filename)

    assert response.status_code == 422
    assert field_errors(response.get_data(as_text=True), "file") == [
        "Only PDF files and images (PNG, JPEG, GIF, TIFF, WebP) can be uploaded."
    ]
    assert document_count() == 0
    assert stored_blobs() == blobs_before


def test_an_empty_upload_is_refused(login, build, office):
    administration = build.administration(office.connection)
    client = in_english(login(office.superuser), page_of(administration))
    blobs_before = stored_blobs()

    response = upload(client, administration, b"", filename="leeg.pdf")

    assert response.status_code == 422
    assert field_errors(response.get_data(as_text=True), "file") == ["The file is empty."]
    assert document_count() == 0
    assert stored_blobs() == blobs_before


def test_an_upload_without_a_file_asks_for_one(login, build, office):
    administration = build.administration(office.connection)
    client = in_english(login(office.superuser), page_of(administration))

    response = client.post_form(upload_url(administration), {"kind": "purchase_invoice"})

    assert response.status_code == 422
    assert field_errors(response.get_data(as_text=True), "file") == ["Choose a file to upload."]
    assert document_count() == 0


def test_a_file_over_the_upload_limit_is_refused_with_a_clear_message(
    app, monkeypatch, login, build, office
):
    monkeypatch.setitem(app.config, "MAX_UPLOAD_BYTES", 1024 * 1024)
    administration = build.administration(office.connection)
    client = in_english(login(office.superuser), page_of(administration))
    blobs_before = stored_blobs()
    too_big = PDF + b"0" * (1024 * 1024)

    response = upload(client, administration, too_big, follow=True)

    assert response.status_code == 422
    assert field_errors(response.get_data(as_text=True), "file") == [
        "The file is too large. The maximum is 1 MB."
    ]
    assert document_count() == 0
    assert stored_blobs() == blobs_before


def test_a_request_over_the_content_length_limit_is_refused_with_a_clear_message(
    app, monkeypatch, login, build, office
):
    monkeypatch.setitem(app.config, "MAX_UPLOAD_BYTES", 1024 * 1024)
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1024 * 1024 + 64 * 1024)
    administration = build.administration(office.connection)
    client = in_english(login(office.superuser), page_of(administration))
    blobs_before = stored_blobs()

    response = upload(client, administration, PDF + b"0" * (2 * 1024 * 1024), follow=True)

    assert response.status_code == 413
    assert "The file is too large. The maximum is 1 MB." in text_of(response.get_data(as_text=True))
    assert document_count() == 0
    assert stored_blobs() == blobs_before


def test_a_png_image_can_be_uploaded_whatever_its_name(login, build, office):
    administration = build.administration(office.connection)
    client = login(office.user)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

    response = upload(client, administration, png, filename="../../bonnetje.pdf")

    assert response.status_code == 302
    document = db.session.scalars(select(Document)).one()
    assert document.content_type == "image/png"
    assert document.filename == "bonnetje.pdf"


# --------------------------------------------------------------------------- downloading


def test_a_document_file_is_returned_with_its_bytes_and_content_type(login, build, office):
    administration = build.administration(office.connection)
    content = PDF + b"% uniek\n"
    document = build.document(administration, content=content)
    client = login(office.user)

    with client.get(f"{page_of(administration)}/documents/{document.id}/file") as response:
        assert response.status_code == 200
        assert response.mimetype == "application/pdf"
        assert response.get_data() == content
        assert "sandbox" in response.headers["Content-Security-Policy"]

    url = f"{page_of(administration)}/documents/{document.id}/file?download=1"
    with client.get(url) as response:
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert document.filename in response.headers["Content-Disposition"]


def test_another_environments_superuser_cannot_download_a_document(
    login, build, office, other_office
):
    administration = build.administration(office.connection)
    document = build.document(administration)
    own_administration = build.administration(other_office.connection)
    client = login(other_office.superuser)

    direct = client.get(f"{page_of(administration)}/documents/{document.id}/file")
    through_own = client.get(f"{page_of(own_administration)}/documents/{document.id}/file")

    assert direct.status_code == 404
    assert through_own.status_code == 404


def test_a_document_is_only_served_under_its_own_administration(login, build, office):
    administration = build.administration(office.connection)
    neighbour = build.administration(office.connection)
    document = build.document(administration)
    client = login(office.superuser)

    response = client.get(f"{page_of(neighbour)}/documents/{document.id}/file")

    assert response.status_code == 404


# --------------------------------------------------------------------------- S3 storage


@pytest.fixture
def s3_documents(app, monkeypatch, s3_store):
    """The app keeps its blobs in a fresh bucket of moto's S3 server (BLOB_STORE=s3)."""
    monkeypatch.setitem(app.extensions, "blob_store", s3_store)
    return s3_store


def test_with_s3_an_upload_lands_in_the_bucket_and_the_file_link_redirects_to_it(
    login, build, office, s3_documents
):
    administration = build.administration(office.connection)
    client = login(office.user)
    content = PDF + b"% opgeslagen in S3\n" + bytes(range(256)) * 4096  # 1 MiB and a bit

    response = upload(client, administration, content, filename="inkoop 17.pdf", follow=True)

    assert response.status_code == 200
    document = db.session.scalars(
        select(Document).where(Document.administration_id == administration.id)
    ).one()
    assert document.blob_key == blob_key(content)
    assert document.size == len(content)
    assert s3_documents.size(document.blob_key) == len(content)
    assert stored_blobs() == set()  # nothing in the local folder

    file_url = f"{page_of(administration)}/documents/{document.id}/file"
    download = client.get(file_url + "?download=1")
    assert download.status_code == 302
    assert download.headers["Cache-Control"] == "no-store"
    location = download.headers["Location"]
    assert location.startswith(s3_documents.endpoint)
    with urllib.request.urlopen(location, timeout=10) as served:
        assert served.read() == content
        assert served.headers["Content-Type"] == "application/pdf"
        assert served.headers["Content-Disposition"] == 'attachment; filename="inkoop 17.pdf"'

    view = client.get(file_url)
    assert view.status_code == 302
    with urllib.request.urlopen(view.headers["Location"], timeout=10) as served:
        assert served.headers["Content-Disposition"] == 'inline; filename="inkoop 17.pdf"'


def test_with_s3_unreachable_an_upload_shows_a_form_error_and_makes_no_document(
    app, monkeypatch, login, build, office, fake_aws_credentials
):
    from app.storage.s3 import S3BlobStore, s3_client

    unreachable = S3BlobStore(s3_client(closed_port_url()), "documents")
    monkeypatch.setitem(app.extensions, "blob_store", unreachable)
    administration = build.administration(office.connection)
    client = in_english(login(office.superuser), page_of(administration))

    response = upload(client, administration, PDF)

    assert response.status_code == 422
    assert field_errors(response.get_data(as_text=True), "file") == [
        "The file could not be stored right now. Try again in a few minutes."
    ]
    assert document_count() == 0
    assert audit_events("document_uploaded") == []


# --------------------------------------------------------------------------- workflows, flows


def workflow_url(administration, workflow, verb: str) -> str:
    return f"{page_of(administration)}/workflows/{workflow.id}/{verb}"


def test_deactivating_a_workflow_clears_that_blocker(login, build, office):
    administration = build.administration(office.connection)
    workflow = build.workflow(administration)
    client = login(office.superuser)
    html = client.get_page(LIST).get_data(as_text=True)
    assert row_counts(html, administration.id)["active_workflows"] == 1
    assert len(row_blockers(html, administration.id)) == 1
    client.get_page(page_of(administration))

    response = client.post_form(workflow_url(administration, workflow, "deactivate"))

    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Workflow, workflow.id).active is False
    html = client.get_page(LIST).get_data(as_text=True)
    assert row_counts(html, administration.id)["active_workflows"] == 0
    assert row_blockers(html, administration.id) == []


def test_a_deactivated_workflow_can_be_activated_again_and_both_ask_first(login, build, office):
    administration = build.administration(office.connection)
    workflow = build.workflow(administration, name="Inkoop")
    step = build.authorization_step(administration, office.authorizer)
    client = login(office.superuser)
    html = client.get_page(page_of(administration)).get_data(as_text=True)
    assert "Workflow “Inkoop” deactiveren? Je kunt hem later weer activeren." in html
    assert f"{office.authorizer.name} uit de autorisatiestroom" in html
    assert step.id

    client.post_form(workflow_url(administration, workflow, "deactivate"))
    html = client.get_page(page_of(administration)).get_data(as_text=True)
    assert workflow_url(administration, workflow, "activate") in html
    response = client.post_form(workflow_url(administration, workflow, "activate"))

    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Workflow, workflow.id).active is True
    actions = db.session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.action.startswith("workflow_"))
        .order_by(AuditEvent.id)
    ).all()
    assert actions == ["workflow_deactivated", "workflow_activated"]
    html = client.get_page(LIST).get_data(as_text=True)
    assert row_counts(html, administration.id)["active_workflows"] == 1


def test_deleting_a_workflow_removes_it_and_its_blocker(login, build, office):
    administration = build.administration(office.connection)
    workflow = build.workflow(administration)
    keep = build.workflow(administration, active=False)
    workflow_id, keep_id = workflow.id, keep.id
    client = login(office.superuser)
    client.get_page(page_of(administration))

    response = client.post_form(workflow_url(administration, workflow, "delete"))

    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Workflow, workflow_id) is None
    assert db.session.get(Workflow, keep_id) is not None
    html = client.get_page(LIST).get_data(as_text=True)
    assert row_counts(html, administration.id)["active_workflows"] == 0
    assert row_blockers(html, administration.id) == []


def test_removing_an_authorizer_from_a_flow_deletes_the_step_but_not_the_user(login, build, office):
    administration = build.administration(office.connection)
    step = build.authorization_step(administration, office.authorizer)
    step_id, flow_id = step.id, step.flow_id
    client = login(office.superuser)
    html = client.get_page(LIST).get_data(as_text=True)
    assert row_counts(html, administration.id)["authorizer_steps"] == 1
    client.get_page(page_of(administration))

    response = client.post_form(f"{page_of(administration)}/authorization-steps/{step_id}/delete")

    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(AuthorizationStep, step_id) is None
    assert db.session.get(AuthorizationFlow, flow_id) is not None
    assert db.session.get(User, office.authorizer.id) is not None
    html = client.get_page(LIST).get_data(as_text=True)
    assert row_counts(html, administration.id)["authorizer_steps"] == 0
    assert row_blockers(html, administration.id) == []
    # The authorizer can still log in and work.
    assert client.get_page(LIST).status_code == 200


def test_a_workflow_of_another_administration_cannot_be_changed_through_this_one(
    login, build, office
):
    administration = build.administration(office.connection)
    neighbour = build.administration(office.connection)
    workflow = build.workflow(neighbour)
    client = login(office.superuser)
    client.get_page(page_of(administration))

    response = client.post_form(workflow_url(administration, workflow, "deactivate"))

    assert response.status_code == 404
    db.session.expire_all()
    assert db.session.get(Workflow, workflow.id).active is True


def test_another_environment_cannot_touch_workflows_or_flows(login, build, office, other_office):
    administration = build.administration(office.connection)
    workflow = build.workflow(administration)
    step = build.authorization_step(administration, office.authorizer)
    client = login(other_office.superuser)
    client.get_page(LIST)

    assert client.post_form(workflow_url(administration, workflow, "delete")).status_code == 404
    assert (
        client.post_form(
            f"{page_of(administration)}/authorization-steps/{step.id}/delete"
        ).status_code
        == 404
    )
    db.session.expire_all()
    assert db.session.get(Workflow, workflow.id) is not None
    assert db.session.get(AuthorizationStep, step.id) is not None


@pytest.mark.parametrize("role", ["authorizer", "user"])
def test_only_a_superuser_may_change_workflows_and_flows(login, build, office, role):
    administration = build.administration(office.connection)
    workflow = build.workflow(administration)
    step = build.authorization_step(administration, office.authorizer)
    client = login(getattr(office, role))
    page = client.get_page(page_of(administration)).get_data(as_text=True)
    assert f'data-workflow-id="{workflow.id}"' in page
    assert "/deactivate" not in page

    for url in (
        workflow_url(administration, workflow, "deactivate"),
        workflow_url(administration, workflow, "delete"),
        f"{page_of(administration)}/authorization-steps/{step.id}/delete",
    ):
        assert client.post_form(url).status_code == 403

    db.session.expire_all()
    assert db.session.get(Workflow, workflow.id).active is True
    assert db.session.get(AuthorizationStep, step.id) is not None


# --------------------------------------------------------------------------- migrated


@pytest.fixture
def migrated(build, office):
    administration = build.administration(office.connection, state="migrated")
    return {
        "administration": administration,
        "document": build.document(administration),
        "workflow": build.workflow(administration),
        "step": build.authorization_step(administration, office.authorizer),
    }


def test_a_migrated_administration_is_shown_read_only(login, office, migrated):
    client = login(office.superuser)

    page = client.get_page(page_of(migrated["administration"])).get_data(as_text=True)

    assert document_ids(page) == [migrated["document"].id]
    assert 'data-action="approve"' not in page
    assert 'enctype="multipart/form-data"' not in page
    assert "/deactivate" not in page
    assert f"/authorization-steps/{migrated['step'].id}/delete" not in page


def test_a_migrated_administration_refuses_decisions(login, office, migrated):
    administration, document = migrated["administration"], migrated["document"]
    client = in_english(login(office.superuser))

    response = client.post_form(
        f"{decide_url(administration)}?one={document.id}&action=approve", follow_redirects=True
    )

    html = response.get_data(as_text=True)
    assert flash_categories(html).count("error") == 1
    assert "has moved to another office and is read-only" in html
    assert statuses(document) == ["pending"]


def test_a_migrated_administration_refuses_uploads(login, office, migrated):
    administration = migrated["administration"]
    client = in_english(login(office.superuser))
    blobs_before = stored_blobs()

    response = upload(client, administration, PDF + b"% nieuw\n")

    assert response.status_code == 422
    assert field_errors(response.get_data(as_text=True), "file") == [
        "This administration has moved to another office and is read-only."
    ]
    assert document_count() == 1
    assert stored_blobs() == blobs_before


@pytest.mark.parametrize("change", ["deactivate", "delete", "remove_authorizer"])
def test_a_migrated_administration_refuses_workflow_and_flow_changes(
    login, office, migrated, change
):
    administration = migrated["administration"]
    workflow, step = migrated["workflow"], migrated["step"]
    url = {
        "deactivate": workflow_url(administration, workflow, "deactivate"),
        "delete": workflow_url(administration, workflow, "delete"),
        "remove_authorizer": f"{page_of(administration)}/authorization-steps/{step.id}/delete",
    }[change]
    client = login(office.superuser)
    client.get_page(page_of(administration))

    response = client.post_form(url, follow_redirects=True)

    assert flash_categories(response.get_data(as_text=True)).count("error") == 1
    db.session.expire_all()
    assert db.session.get(Workflow, workflow.id).active is True
    assert db.session.get(AuthorizationStep, step.id) is not None
    # Nothing but the login was recorded.
    assert {e.action for e in db.session.scalars(select(AuditEvent))} == {"login"}


# --------------------------------------------------------------------------- users, connections


def test_the_users_page_shows_the_environments_users_only(login, office, other_office):
    html = login(office.superuser).get_page("/settings/users").get_data(as_text=True)

    for user in (office.superuser, office.user, office.authorizer):
        assert user.email in html
    for user in (other_office.superuser, other_office.user, other_office.authorizer):
        assert user.email not in html


def test_the_connections_page_shows_the_environments_connections_only(
    login, build, office, other_office
):
    twinfield = build.connection(office.environment, "twinfield", name="Twinfield Noord")
    build.administration(twinfield)
    build.administration(twinfield)
    build.connection(other_office.environment, "snelstart", name="SnelStart Zuid")

    html = login(office.superuser).get_page("/settings/connections").get_data(as_text=True)

    assert "Twinfield Noord" in html
    assert "Exact Online" in html
    assert "SnelStart Zuid" not in html
    row = html[html.index("Twinfield Noord") :].split("</tr>", 1)[0]
    assert '<td class="num">2</td>' in row


@pytest.mark.parametrize("role", ["user", "authorizer"])
@pytest.mark.parametrize("url", ["/settings/users", "/settings/connections"])
def test_users_and_connections_are_forbidden_to_anyone_but_a_superuser(login, office, role, url):
    client = login(getattr(office, role))

    assert client.get(url).status_code == 403
    nav = client.get_page(LIST).get_data(as_text=True)
    assert 'href="/settings/users"' not in nav


# --------------------------------------------------------------------------- audit trail


def audit_events(action: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )
    )


def test_every_change_is_written_to_the_audit_trail_with_its_actor(login, build, office):
    administration = build.administration(office.connection)
    approve_me, reject_me = build.document(administration), build.document(administration)
    deactivate_me, delete_me = build.workflow(administration), build.workflow(administration)
    step = build.authorization_step(administration, office.authorizer)
    delete_me_id, step_id, flow_id = delete_me.id, step.id, step.flow_id
    client = login(office.superuser)
    client.get_page(page_of(administration))

    client.post_form(f"{decide_url(administration)}?one={approve_me.id}&action=approve")
    client.post_form(
        decide_url(administration), {"action": "reject", "document_ids": [reject_me.id]}
    )
    upload(client, administration, PDF + b"% audit\n")
    client.post_form(workflow_url(administration, deactivate_me, "deactivate"))
    client.post_form(workflow_url(administration, delete_me, "delete"))
    client.post_form(f"{page_of(administration)}/authorization-steps/{step_id}/delete")

    expected = {
        "documents_approved": ("administration", administration.id),
        "documents_rejected": ("administration", administration.id),
        "document_uploaded": ("document", None),
        "workflow_deactivated": ("workflow", deactivate_me.id),
        "workflow_deleted": ("workflow", delete_me_id),
        "authorizer_removed": ("authorization_flow", flow_id),
    }
    for action, (object_type, object_id) in expected.items():
        events = audit_events(action)
        assert len(events) == 1, action
        event = events[0]
        assert event.actor_id == office.superuser.id, action
        assert event.actor_email == office.superuser.email, action
        assert event.actor_role == "superuser", action
        assert event.environment_id == office.environment.id, action
        assert event.object_type == object_type, action
        assert event.origin.startswith("web"), action
        if object_id is not None:
            assert event.object_id == object_id, action
    assert audit_events("documents_approved")[0].details["document_ids"] == [approve_me.id]
    assert audit_events("documents_rejected")[0].details["document_ids"] == [reject_me.id]
    uploaded = db.session.scalars(
        select(Document).where(Document.uploaded_by_id.is_not(None))
    ).one()
    assert audit_events("document_uploaded")[0].object_id == uploaded.id
    assert audit_events("authorizer_removed")[0].details["authorizer_id"] == office.authorizer.id


def test_deciding_a_document_again_the_same_way_records_nothing_new(login, build, office):
    administration = build.administration(office.connection)
    document = build.document(administration, "approved")
    client = login(office.superuser)
    client.get_page(page_of(administration))

    client.post_form(
        decide_url(administration), {"action": "approve", "document_ids": [document.id]}
    )

    assert audit_events("documents_approved") == []
    db.session.expire_all()
    assert db.session.get(Document, document.id).decided_by_name is None
