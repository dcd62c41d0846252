"""When the progress store cannot be reached (Redis down), the claim page and its progress
answer still work and say "bezig", and the copy itself goes on and finishes."""

from __future__ import annotations

import socket
import time

import pytest

from app.admin_settings.models import Administration, Document
from app.progress import RedisProgressStore
from app.transfers.copying import copy_waiting
from tests.helpers import accept_all, count, offer

CLAIMS = "/settings/migrations/claims"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nothing listens there


@pytest.fixture
def unreachable_redis(app, monkeypatch):
    store = RedisProgressStore(f"redis://127.0.0.1:{closed_port()}/13")
    monkeypatch.setitem(app.extensions, "progress_store", store)
    return store


@pytest.fixture
def claimed(build, office, other_office):
    administration = build.administration(office.connection, name="Bakkerij De Korenschoof")
    for status in ("approved", "rejected", "approved"):
        build.document(administration, status)
    transfer, code = offer(office.superuser, [administration], [other_office.superuser.email])
    return accept_all(other_office.superuser, transfer, code, other_office.connection)


def test_the_claim_page_says_bezig_when_progress_cannot_be_read(
    unreachable_redis, claimed, login, other_office
):
    zuid = login(other_office.superuser)

    started = time.monotonic()
    page = zuid.get_page(f"{CLAIMS}/{claimed.id}")
    progress = zuid.get(f"{CLAIMS}/{claimed.id}/progress")
    elapsed = time.monotonic() - started

    assert page.status_code == 200
    assert "bezig" in page.get_data(as_text=True)
    assert progress.status_code == 200
    assert [i["text"] for i in progress.get_json()["items"]] == ["bezig"]
    assert elapsed < 5, "an unreachable Redis must not hang the page"


def test_the_copy_finishes_when_progress_cannot_be_written(
    unreachable_redis, claimed, login, other_office
):
    assert copy_waiting() == 1

    target = Administration.environment_id == other_office.environment.id
    assert count(Administration, target) == 1
    assert count(Document, Document.environment_id == other_office.environment.id) == 3
    zuid = login(other_office.superuser)
    items = zuid.get(f"{CLAIMS}/{claimed.id}/progress").get_json()["items"]
    assert [(i["state"], i["percent"]) for i in items] == [("migrated", 100)]
