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
    from datetime import timedelta

    from sqlalchemy import update

    from app.db import utcnow
    from app.extensions import db
    from app.transfers.models import TransferItem

    # A worker is copying (its lease is held), so only the store could say how far.
    db.session.execute(
        update(TransferItem)
        .where(TransferItem.id == claimed.transfer.items[0].id)
        .values(lease_owner="worker-1:4242:busy", lease_until=utcnow() + timedelta(minutes=1))
    )
    db.session.commit()
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


def test_a_dead_workers_last_figure_gives_way_to_the_truth_once_its_lease_has_lapsed(
    app, claimed, login, other_office
):
    from datetime import timedelta

    from sqlalchemy import update

    from app.db import utcnow
    from app.extensions import db
    from app.progress import progress_store
    from app.transfers.copying import progress_key
    from app.transfers.models import TransferItem

    item_id = claimed.transfer.items[0].id
    progress_store().report(progress_key(item_id), 2, 3)  # what the worker said last
    zuid = login(other_office.superuser)

    def shown(lease_until):
        db.session.execute(
            update(TransferItem)
            .where(TransferItem.id == item_id)
            .values(lease_owner="worker-1:4242:dead", lease_until=lease_until)
        )
        db.session.commit()
        return zuid.get(f"{CLAIMS}/{claimed.id}/progress").get_json()["items"][0]["text"]

    assert shown(utcnow() + timedelta(seconds=60)) == "2 van 3 documenten"
    # Its copy rolled back with it: nothing has arrived, and the real total shows.
    assert shown(utcnow() - timedelta(seconds=1)) == "0 van 3 documenten"
    progress_store().clear(progress_key(item_id))


def test_an_unreachable_document_store_answers_503_in_the_shape_asked_for(
    app, claimed, login, api_client, other_office, monkeypatch
):
    from app.storage.s3 import S3BlobStore, s3_client
    from app.transfers.copying import copy_waiting
    from tests.s3server import FAKE_AWS_ENV, closed_port_url

    assert copy_waiting() == 1
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    client = s3_client(closed_port_url(), connect_timeout=1, max_attempts=1)
    monkeypatch.setitem(app.extensions, "blob_store", S3BlobStore(client, "gone"))

    page = login(other_office.superuser).get(f"{CLAIMS}/{claimed.id}/reconciliation.csv")
    api, headers = api_client(other_office.superuser)
    answer = api.get(f"/api/v1/claims/{claimed.id}/reconciliation", headers=headers)

    assert page.status_code == 503
    assert "niet bereikbaar" in page.get_data(as_text=True)
    assert answer.status_code == 503
    assert answer.get_json()["code"] == 503


def test_a_waiting_copy_shows_its_real_total_from_the_start(claimed, login, other_office):
    zuid = login(other_office.superuser)

    items = zuid.get(f"{CLAIMS}/{claimed.id}/progress").get_json()["items"]

    assert [(i["text"], i["total"], i["percent"]) for i in items] == [("0 van 3 documenten", 3, 0)]
