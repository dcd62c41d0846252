"""The tus 1.0 server under /uploads/, spoken to as tus-js-client speaks it: creation,
HEAD, PATCH in chunks, checksums, termination, expiry, and who may see what."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
from sqlalchemy import event, select

from app.db import utcnow
from app.errors import NotFoundError
from app.extensions import db
from app.uploads import jobs, services, spool
from app.uploads.models import Upload, UploadState

OCTET = "application/offset+octet-stream"


@pytest.fixture(autouse=True)
def spool_root(app, tmp_path, monkeypatch):
    root = tmp_path / "spool"
    monkeypatch.setitem(app.config, "UPLOAD_ROOT", str(root))
    return root


class Tus:
    """A tus client on a logged-in test client: the headers tus-js-client sends."""

    def __init__(self, client):
        self.client = client

    def headers(self, **extra) -> dict:
        headers = {"Tus-Resumable": "1.0.0", "X-CSRFToken": self.client.csrf_token}
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        return headers

    def create(self, length: int, filename: str = "kantoor.zip", **extra):
        metadata = (
            f"filename {base64.b64encode(filename.encode()).decode()},"
            f"filetype {base64.b64encode(b'application/zip').decode()}"
        )
        return self.client.post(
            "/uploads/",
            headers=self.headers(Upload_Length=str(length), Upload_Metadata=metadata, **extra),
        )

    def new(self, length: int) -> str:
        response = self.create(length)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.headers["Location"]

    def head(self, url: str, **extra):
        return self.client.head(url, headers=self.headers(**extra))

    def patch(self, url: str, data: bytes, offset: int, content_type: str = OCTET, **extra):
        return self.client.patch(
            url,
            data=data,
            headers=self.headers(Upload_Offset=str(offset), Content_Type=content_type, **extra),
        )

    def delete(self, url: str):
        return self.client.delete(url, headers=self.headers())


@pytest.fixture
def tus(office, login) -> Tus:
    return Tus(login(office.superuser))


def _row(url: str) -> Upload:
    token = url.rsplit("/", 1)[-1]
    return db.session.scalars(select(Upload).where(Upload.token == token)).one()


def _checksum(data: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


def _upload_whole(tus: Tus, data: bytes, chunk: int) -> str:
    url = tus.new(len(data))
    for start in range(0, len(data), chunk):
        response = tus.patch(url, data[start : start + chunk], start)
        assert response.status_code == 204, response.get_data(as_text=True)
        assert response.headers["Upload-Offset"] == str(min(start + chunk, len(data)))
    return url


# --------------------------------------------------------------------------- discovery


def test_options_tells_the_protocol_without_a_login(client):
    response = client.options("/uploads/")
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation",
        "termination",
        "expiration",
        "checksum",
    }
    assert response.headers["Tus-Max-Size"] == str(20 * 1024**3)
    assert response.headers["Tus-Checksum-Algorithm"] == "sha256"
    assert "Set-Cookie" not in response.headers
    assert response.get_data() == b""


def test_options_of_a_logged_in_user_asks_the_database_nothing(tus):
    url = tus.new(10)
    statements = []

    def note(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        for path in ("/uploads/", url):
            response = tus.client.options(path)
            assert response.status_code == 204
            assert response.headers["Tus-Version"] == "1.0.0"
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert statements == []


# --------------------------------------------------------------------------- creation and HEAD


def test_creation_answers_location_and_expiry_and_head_tells_the_offset(tus, office):
    before = utcnow()
    response = tus.create(1000, filename="migratie Noord.zip")
    assert response.status_code == 201
    assert response.headers["Tus-Resumable"] == "1.0.0"
    url = response.headers["Location"]
    assert url.startswith("/uploads/") and len(url.rsplit("/", 1)[-1]) == 43
    expires = parsedate_to_datetime(response.headers["Upload-Expires"])
    assert before + timedelta(hours=24) - timedelta(seconds=2) <= expires
    assert expires <= utcnow() + timedelta(hours=24)

    head = tus.head(url)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == "1000"
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Upload-Expires"] == response.headers["Upload-Expires"]

    row = _row(url)
    assert (row.filename, row.filetype, row.environment_id, row.user_id) == (
        "migratie Noord.zip",
        "application/zip",
        office.environment.id,
        office.superuser.id,
    )
    assert row.state is UploadState.UPLOADING


def test_creation_needs_a_length_and_refuses_deferred_length(tus):
    response = tus.client.post("/uploads/", headers=tus.headers())
    assert response.status_code == 400
    response = tus.client.post("/uploads/", headers=tus.headers(Upload_Defer_Length="1"))
    assert response.status_code == 400
    assert tus.create(-1).status_code == 400
    assert db.session.scalars(select(Upload)).all() == []


def test_creation_over_the_maximum_is_413(tus, app, monkeypatch):
    monkeypatch.setitem(app.config, "UPLOAD_MAX_BYTES", 5000)
    assert tus.create(5001).status_code == 413
    assert tus.create(5000).status_code == 201


def test_a_request_without_tus_resumable_is_412(tus):
    response = tus.client.post("/uploads/", headers={"X-CSRFToken": tus.client.csrf_token})
    assert response.status_code == 412
    assert response.headers["Tus-Version"] == "1.0.0"
    url = tus.new(10)
    response = tus.client.head(url, headers={"Tus-Resumable": "0.2.2"})
    assert response.status_code == 412


# --------------------------------------------------------------------------- PATCH and completion


def test_chunks_complete_the_upload_with_exactly_the_bytes_sent(tus, office, app, spool_root):
    data = os.urandom(3 * 1024 * 1024 + 17)
    url = _upload_whole(tus, data, chunk=1024 * 1024)

    row = _row(url)
    assert row.state is UploadState.COMPLETE
    assert row.offset == row.length == len(data)
    assert row.blob_key == hashlib.sha256(data).hexdigest()
    assert row.completed_at is not None
    assert not (spool_root / f"{row.token}.part").exists()
    with app.extensions["blob_store"].open(row.blob_key) as blob:
        assert blob.read() == data

    head = tus.head(url)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == str(len(data))

    # The import wizard's way to it: own environment, complete, seekable.
    upload = services.completed_upload(office.superuser, row.token)
    with services.open_completed(upload) as file:
        file.seek(len(data) - 17)
        assert file.read() == data[-17:]
    # Nothing more can be appended.
    assert tus.patch(url, b"x", len(data)).status_code == 409


def test_completion_into_s3(tus, office, app, monkeypatch, s3_store):
    monkeypatch.setitem(app.extensions, "blob_store", s3_store)
    data = os.urandom(2 * 1024 * 1024 + 5)
    url = _upload_whole(tus, data, chunk=800 * 1024)
    row = _row(url)
    assert row.state is UploadState.COMPLETE
    with s3_store.open(row.blob_key) as blob:
        assert blob.read() == data
    upload = services.completed_upload(office.superuser, row.token)
    with services.open_completed(upload) as file:
        assert file.seekable()
        file.seek(1024 * 1024)
        assert file.read(10) == data[1024 * 1024 : 1024 * 1024 + 10]


def test_an_empty_upload_completes_with_one_empty_patch(tus, app):
    url = tus.new(0)
    response = tus.patch(url, b"", 0)
    assert response.status_code == 204
    row = _row(url)
    assert row.state is UploadState.COMPLETE
    assert row.blob_key == hashlib.sha256(b"").hexdigest()


def test_a_wrong_offset_is_409_and_changes_nothing(tus, spool_root):
    url = tus.new(100)
    assert tus.patch(url, b"a" * 40, 0).status_code == 204
    assert tus.patch(url, b"b" * 10, 30).status_code == 409
    assert tus.patch(url, b"b" * 10, 0).status_code == 409
    assert tus.head(url).headers["Upload-Offset"] == "40"
    assert (spool_root / f"{_row(url).token}.part").read_bytes() == b"a" * 40


def test_a_checksum_mismatch_is_460_and_the_chunk_is_discarded(tus, spool_root):
    url = tus.new(20)
    assert tus.patch(url, b"0123456789", 0, Upload_Checksum=_checksum(b"0123456789")).status_code
    bad = tus.patch(url, b"abcdefghij", 10, Upload_Checksum=_checksum(b"something else"))
    assert bad.status_code == 460
    assert tus.head(url).headers["Upload-Offset"] == "10"
    assert (spool_root / f"{_row(url).token}.part").read_bytes() == b"0123456789"

    good = tus.patch(url, b"abcdefghij", 10, Upload_Checksum=_checksum(b"abcdefghij"))
    assert good.status_code == 204
    row = _row(url)
    assert row.state is UploadState.COMPLETE
    assert row.blob_key == hashlib.sha256(b"0123456789abcdefghij").hexdigest()


def test_another_checksum_algorithm_is_refused(tus):
    url = tus.new(4)
    response = tus.patch(url, b"abcd", 0, Upload_Checksum="md5 " + base64.b64encode(b"x").decode())
    assert response.status_code == 400
    assert tus.head(url).headers["Upload-Offset"] == "0"


def test_a_patch_of_another_content_type_is_415(tus):
    url = tus.new(4)
    response = tus.patch(url, b"abcd", 0, content_type="application/octet-stream")
    assert response.status_code == 415
    assert tus.head(url).headers["Upload-Offset"] == "0"


def test_bytes_past_the_length_are_413_and_nothing_is_kept(tus, spool_root):
    url = tus.new(10)
    assert tus.patch(url, b"12345", 0).status_code == 204
    assert tus.patch(url, b"678901", 5).status_code == 413
    assert tus.head(url).headers["Upload-Offset"] == "5"
    assert (spool_root / f"{_row(url).token}.part").read_bytes() == b"12345"


def test_a_chunk_larger_than_the_form_upload_limit_is_taken(tus, app):
    big = app.config["MAX_CONTENT_LENGTH"] + 1024 * 1024
    data = os.urandom(big)
    url = tus.new(len(data))
    assert tus.patch(url, data, 0).status_code == 204
    assert _row(url).blob_key == hashlib.sha256(data).hexdigest()


def test_method_override_post_is_a_patch(tus):
    url = tus.new(3)
    response = tus.client.post(
        url,
        data=b"abc",
        headers=tus.headers(X_HTTP_Method_Override="PATCH", Upload_Offset="0", Content_Type=OCTET),
    )
    assert response.status_code == 204
    assert _row(url).state is UploadState.COMPLETE


# --------------------------------------------------------------------------- interruption


def test_an_interrupted_patch_keeps_what_arrived_and_the_upload_resumes(tus):
    data = os.urandom(3 * 1024 * 1024)
    url = tus.new(len(data))
    arrived = 1024 * 1024 + 123
    # The body ends before its Content-Length: the client went away mid-chunk.
    cut = tus.client.patch(
        url,
        input_stream=io.BytesIO(data[:arrived]),
        headers=tus.headers(Upload_Offset="0", Content_Type=OCTET),
        environ_overrides={"CONTENT_LENGTH": str(2 * 1024 * 1024)},
    )
    assert cut.status_code == 400
    head = tus.head(url)
    assert head.headers["Upload-Offset"] == str(arrived)

    offset = int(head.headers["Upload-Offset"])
    assert tus.patch(url, data[offset:], offset).status_code == 204
    assert _row(url).blob_key == hashlib.sha256(data).hexdigest()


def test_an_interrupted_patch_with_a_checksum_keeps_nothing(tus):
    url = tus.new(100)
    cut = tus.client.patch(
        url,
        input_stream=io.BytesIO(b"x" * 30),
        headers=tus.headers(
            Upload_Offset="0",
            Content_Type=OCTET,
            Upload_Checksum=_checksum(b"x" * 100),
        ),
        environ_overrides={"CONTENT_LENGTH": "100"},
    )
    assert cut.status_code == 460
    assert tus.head(url).headers["Upload-Offset"] == "0"


def test_a_second_patch_while_one_streams_is_refused(tus):
    url = tus.new(10)
    with spool.locked(_row(url).token):  # a PATCH of another worker is streaming
        assert tus.patch(url, b"abcde", 0).status_code == 409
    assert tus.head(url).headers["Upload-Offset"] == "0"
    assert tus.patch(url, b"abcde", 0).status_code == 204


def test_bytes_left_after_the_offset_by_a_dead_request_are_overwritten(tus, spool_root):
    url = tus.new(6)
    assert tus.patch(url, b"abc", 0).status_code == 204
    with (spool_root / f"{_row(url).token}.part").open("ab") as file:
        file.write(b"junk that was never recorded")
    assert tus.patch(url, b"def", 3).status_code == 204
    assert _row(url).blob_key == hashlib.sha256(b"abcdef").hexdigest()


def test_chunks_lost_in_a_power_cut_are_asked_for_again_never_filled_with_zeros(tus, spool_root):
    """A chunk is acknowledged once written (write-back started, not waited for): after
    a power cut the file may hold less than the recorded offset. HEAD then says what it
    holds, a PATCH at the old offset is refused, and the client re-sends from there."""
    data = b"0123456789abcdefghij"
    url = tus.new(len(data))
    assert tus.patch(url, data[:12], 0).status_code == 204
    spool = spool_root / f"{_row(url).token}.part"
    with spool.open("r+b") as file:
        file.truncate(5)  # what reached the disk before the cut

    head = tus.head(url)
    assert head.headers["Upload-Offset"] == "5"
    assert tus.patch(url, data[12:], 12).status_code == 409
    assert tus.patch(url, data[5:], 5).status_code == 204
    assert _row(url).blob_key == hashlib.sha256(data).hexdigest()


def test_a_patch_at_a_lost_offset_rewinds_the_upload_without_a_head_first(tus, spool_root):
    url = tus.new(10)
    assert tus.patch(url, b"abcdef", 0).status_code == 204
    with (spool_root / f"{_row(url).token}.part").open("r+b") as file:
        file.truncate(2)
    assert tus.patch(url, b"ghij", 6).status_code == 409
    assert _row(url).offset == 2
    assert tus.patch(url, b"cdefghij", 2).status_code == 204
    assert _row(url).blob_key == hashlib.sha256(b"abcdefghij").hexdigest()


# --------------------------------------------------------------------------- termination, expiry


def test_termination_removes_the_bytes(tus, spool_root):
    url = tus.new(10)
    tus.patch(url, b"abc", 0)
    token = _row(url).token
    assert (spool_root / f"{token}.part").exists()
    response = tus.delete(url)
    assert response.status_code == 204
    assert not (spool_root / f"{token}.part").exists()
    assert _row(url).state is UploadState.TERMINATED
    assert tus.head(url).status_code == 404
    assert tus.patch(url, b"def", 3).status_code == 404
    assert tus.delete(url).status_code == 404


def test_the_expiry_job_removes_unfinished_uploads(tus, spool_root):
    unfinished = tus.new(10)
    tus.patch(unfinished, b"abc", 0)
    finished = _upload_whole(tus, b"done", chunk=4)
    row = _row(unfinished)

    assert jobs.expire_due(row.expires_at - timedelta(seconds=1)) == 0
    assert jobs.expire_due(row.expires_at + timedelta(seconds=1)) == 1
    assert jobs.expire_due(row.expires_at + timedelta(seconds=1)) == 0

    assert _row(unfinished).state is UploadState.EXPIRED
    assert not (spool_root / f"{row.token}.part").exists()
    assert tus.head(unfinished).status_code == 410
    assert tus.patch(unfinished, b"def", 3).status_code == 410
    assert _row(finished).state is UploadState.COMPLETE


def test_an_upload_past_its_expiry_is_gone_before_the_job_runs(tus):
    url = tus.new(10)
    row = _row(url)
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert tus.head(url).status_code == 410
    assert tus.patch(url, b"abc", 0).status_code == 410


# --------------------------------------------------------------------------- who may


def test_another_environments_token_is_404_and_changes_nothing(tus, other_office, login):
    url = tus.new(10)
    tus.patch(url, b"abc", 0)
    zuid = Tus(login(other_office.superuser))
    assert zuid.head(url).status_code == 404
    assert zuid.patch(url, b"def", 3).status_code == 404
    assert zuid.delete(url).status_code == 404
    row = _row(url)
    assert (row.state, row.offset) == (UploadState.UPLOADING, 3)
    with pytest.raises(NotFoundError):
        services.completed_upload(other_office.superuser, row.token)


def test_completed_upload_is_only_a_complete_one(tus, office):
    url = tus.new(10)
    with pytest.raises(NotFoundError):
        services.completed_upload(office.superuser, _row(url).token)


def test_not_logged_in_is_401(client, tus):
    url = tus.new(10)
    client.get_page("/login")
    headers = {"Tus-Resumable": "1.0.0", "X-CSRFToken": client.csrf_token}
    assert client.post("/uploads/", headers={**headers, "Upload-Length": "10"}).status_code == 401
    assert client.head(url, headers=headers).status_code == 401
    assert db.session.scalars(select(Upload)).all() == [_row(url)]


def test_a_plain_user_cannot_upload(office, login):
    user = Tus(login(office.user))
    assert user.create(10).status_code == 404
    assert db.session.scalars(select(Upload)).all() == []


def test_without_the_csrf_header_post_patch_and_delete_are_400(tus):
    url = tus.new(10)
    plain = {"Tus-Resumable": "1.0.0"}
    response = tus.client.post("/uploads/", headers={**plain, "Upload-Length": "10"})
    assert response.status_code == 400
    response = tus.client.patch(
        url, data=b"abc", headers={**plain, "Upload-Offset": "0", "Content-Type": OCTET}
    )
    assert response.status_code == 400
    assert tus.client.delete(url, headers=plain).status_code == 400
    assert len(db.session.scalars(select(Upload)).all()) == 1
    row = _row(url)
    assert (row.state, row.offset) == (UploadState.UPLOADING, 0)


# --------------------------------------------------------------------------- the page's markup


def test_the_upload_form_macro_renders_the_markup_upload_js_expects(app, office, login):
    from flask import render_template_string
    from flask_login import login_user

    template = (
        '{% from "uploads/_upload_form.html" import upload_form %}'
        '{% call upload_form("/wizard/upload") %}<input name="import_type" value="combined">'
        "{% endcall %}"
    )
    with app.test_request_context("/"):
        login_user(office.superuser)
        html = render_template_string(template)
    assert 'action="/wizard/upload"' in html
    assert 'data-endpoint="/uploads/"' in html
    assert "data-tus-upload" in html and "data-tus-file" in html
    assert 'name="upload_token"' in html and "data-tus-token" in html
    assert 'name="csrf_token"' in html and 'data-csrf="' in html
    assert 'name="import_type"' in html
    assert "{done} van {total}" in html  # Dutch by default
    assert "vendor/tus-js-client-4.3.1/tus.min.js" in html and "js/upload.js" in html
    assert "style=" not in html
    assert "<script>" not in html  # no inline script under the strict CSP

    for path in ("/static/vendor/tus-js-client-4.3.1/tus.min.js", "/static/js/upload.js"):
        response = app.test_client().get(path)
        assert response.status_code == 200
        response.close()


def test_a_spool_file_linked_into_the_blob_store_is_never_written_through(tus, app):
    # A completion linked the spool file into the local blob store, but its row was not
    # committed (the database went away): the next chunk must not change that blob.
    url = tus.new(6)
    assert tus.patch(url, b"abc", 0).status_code == 204
    token = _row(url).token
    with app.test_request_context():
        linked = spool.to_blob(token)
    assert linked == hashlib.sha256(b"abc").hexdigest()

    assert tus.patch(url, b"def", 3).status_code == 204
    store = app.extensions["blob_store"]
    with store.open(linked) as blob:
        assert blob.read() == b"abc"
    with store.open(_row(url).blob_key) as blob:
        assert blob.read() == b"abcdef"
