"""The resumable upload in headless Chromium: tus-js-client and static/js/upload.js
against the real /uploads/ server, under the app's strict CSP.

The import wizard's page does not exist yet, so the page is the ``upload_form`` macro
served at a made-up address of the live server's origin (Playwright answers it), with
the CSP header the app sends; the scripts, the tus requests and the cookies are real.
"""

from __future__ import annotations

import hashlib
import os
import re
from urllib.parse import parse_qs

import pytest
from flask import render_template_string
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.uploads.models import Upload, UploadState
from tests.browser.helpers import screenshot_on_failure
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
)
MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def spool_root(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "UPLOAD_ROOT", str(tmp_path / "spool"))


def _form_html(app, csrf: str) -> str:
    with app.test_request_context("/"):
        html = render_template_string(
            '<!doctype html><html lang="nl"><head><meta charset="utf-8"></head><body>'
            '{% from "uploads/_upload_form.html" import upload_form %}'
            '{% call upload_form("/wizard-under-test/done") %}'
            '<input type="hidden" name="import_type" value="combined">{% endcall %}'
            "</body></html>"
        )
    return re.sub(r'(data-csrf|value)="[^"]{20,}"', rf'\1="{csrf}"', html)


def _log_in_and_open_form(app, page, user_email: str, posted: list):
    page.goto("/login")
    page.locator('input[name="email"]').fill(user_email)
    page.locator('input[name="password"]').fill(TEST_PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page.locator("nav.mainnav")).to_be_visible()
    csrf = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    html = _form_html(app, csrf)

    def serve_form(route):
        route.fulfill(
            status=200,
            body=html,
            content_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": CSP},
        )

    def take_post(route):
        posted.append(parse_qs(route.request.post_data or ""))
        route.fulfill(status=200, body="ontvangen", content_type="text/plain")

    page.route("**/wizard-under-test/form", serve_form)
    page.route("**/wizard-under-test/done", take_post)
    return serve_form


def _open(page, errors: list):
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("/wizard-under-test/form")
    expect(page.locator("form[data-tus-upload]")).to_be_visible()


def test_a_file_uploads_in_chunks_and_the_form_posts_its_token(app, office, page, tmp_path):
    data = os.urandom(20 * MiB + 12345)
    file = tmp_path / "migratie-noord.zip"
    file.write_bytes(data)
    db.session.commit()
    posted: list = []
    errors: list = []
    patches: list = []
    with screenshot_on_failure(page, tmp_path):
        _log_in_and_open_form(app, page, office.superuser.email, posted)
        page.on(
            "request",
            lambda r: (
                patches.append(r.headers.get("upload-offset")) if r.method == "PATCH" else None
            ),
        )
        _open(page, errors)
        page.locator("input[data-tus-file]").set_input_files(str(file))
        page.wait_for_url("**/wizard-under-test/done")

    assert errors == []
    assert patches == ["0", str(8 * MiB), str(16 * MiB)]  # 8 MiB chunks
    assert len(posted) == 1
    token = posted[0]["upload_token"][0]
    assert posted[0]["import_type"] == ["combined"]
    assert posted[0]["csrf_token"]
    db.session.expire_all()
    upload = db.session.scalars(select(Upload).where(Upload.token == token)).one()
    assert upload.state is UploadState.COMPLETE
    assert upload.filename == "migratie-noord.zip"
    assert upload.blob_key == hashlib.sha256(data).hexdigest()


def test_after_a_reload_the_upload_continues_where_it_stopped(app, office, page, tmp_path):
    data = os.urandom(20 * MiB)
    file = tmp_path / "groot.zip"
    file.write_bytes(data)
    db.session.commit()
    posted: list = []
    errors: list = []
    patches: list = []

    def cut_after_first_chunk(route):
        request = route.request
        if request.method == "POST" or request.headers.get("upload-offset") == "0":
            route.continue_()
        else:
            route.abort()  # the connection drops from the second chunk on

    with screenshot_on_failure(page, tmp_path):
        _log_in_and_open_form(app, page, office.superuser.email, posted)
        page.route("**/uploads/*", cut_after_first_chunk)
        _open(page, errors)
        page.locator("input[data-tus-file]").set_input_files(str(file))
        status = page.locator("[data-tus-status]")
        expect(status).to_contain_text("8,4 MB van 21,0 MB")

        page.reload()
        expect(page.locator("form[data-tus-upload]")).to_be_visible()
        page.unroute("**/uploads/*", cut_after_first_chunk)
        page.on(
            "request",
            lambda r: (
                patches.append(r.headers.get("upload-offset")) if r.method == "PATCH" else None
            ),
        )
        page.locator("input[data-tus-file]").set_input_files(str(file))
        page.wait_for_url("**/wizard-under-test/done")

    assert patches == [str(8 * MiB), str(16 * MiB)]  # nothing sent twice
    token = posted[0]["upload_token"][0]
    db.session.expire_all()
    uploads = db.session.scalars(select(Upload)).all()
    assert [u.token for u in uploads] == [token]  # the same upload, resumed
    assert uploads[0].blob_key == hashlib.sha256(data).hexdigest()
