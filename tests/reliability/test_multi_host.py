"""The shape beyond one machine, on one machine: two gunicorn web processes and two worker
processes (``flask scheduler``) sharing PostgreSQL, Redis (progress, rate limits) and an
S3 server (moto). An offer made through one web process is claimed through the other;
the progress of the copy is read through the first while a worker copies; the worker that
holds the copy is killed with SIGKILL half-way, and the other worker takes the copy over
when the lease lapses and finishes it: one administration arrives, with every document
once, and a copied document downloads from both web processes.

Only on PostgreSQL (``TEST_DATABASE_URL``): several processes on one SQLite file is not
the shape this is about. The test process shares the database with the processes it
starts; the tables are emptied after the test as after any other.

To make the copy last long enough to kill it half-way on any machine, a statement trigger
on ``documents`` sleeps in proportion to the rows each copy chunk inserts (seeded rows are
not slowed); the trigger lives only during this test.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis
from sqlalchemy import String, cast, func, insert, literal, select, text
from sqlalchemy.engine import make_url

from app.admin_settings.models import (
    Administration,
    Document,
    DocumentKind,
    DocumentStatus,
    Provenance,
)
from app.audit import AuditEvent
from app.auth.services import create_api_token
from app.extensions import db
from app.transfers.copying import KEPT_COLUMNS
from app.transfers.models import ItemState, TransferItem, TransferState
from tests.conftest import TEST_PASSWORD
from tests.helpers import count, fresh
from tests.reliability.processes import (
    Process,
    Processes,
    Timeout,
    free_port,
    request,
    slow_copies,
    wait_until,
)

pytestmark = pytest.mark.multihost

DOCUMENTS = 30_000
# Seconds of sleep per copied row: a full copy then takes about 9 s, in chunks of
# COPY_CHUNK_DOCUMENTS rows, each told to the progress store.
SLOW_COPY_SECONDS_PER_ROW = 0.0003
COPY_CHUNK_DOCUMENTS = 2000
REDIS_URL = "redis://127.0.0.1:6379/14"  # this test's own database; emptied before and after
BLOB = b"%PDF-1.4\n% one blob shared by every document of the multi-host test\n%%EOF\n"
BIN = Path(sys.executable).parent
# Bounds (seconds). A run here takes about 35 s in all; the test is stopped at TEST_LIMIT.
START_TIMEOUT = 30  # all four processes serving
HALF_WAY_TIMEOUT = 40  # from the claim to a copy half-way
FINISH_TIMEOUT = 60  # from the kill to the copy done (lease lapse plus a whole copy)
TEST_LIMIT = 170  # the whole test, fixtures included
WORKER_APPLICATION_NAME = "overdracht-worker-{n}"


# --------------------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    webs: list[str]  # base URLs
    web_processes: list[Process]
    workers: list[Process]
    processes: Processes
    blob_store: object  # the S3 store, as the processes use it


class TimeLimitExceeded(BaseException):
    """Not an Exception, so no wait loop takes it for "not ready yet"."""


@pytest.fixture
def time_limit():
    """Stops the test (fixtures included, processes then stopped by their teardown) once it
    has run TEST_LIMIT seconds, whatever it waits for."""

    def expire(_signum, _frame):
        raise TimeLimitExceeded(f"the multi-host test ran past its limit of {TEST_LIMIT} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_LIMIT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def postgres_url(database_url, time_limit) -> str:
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip(
            "the multi-host test needs PostgreSQL shared by several processes: "
            "set TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
    return database_url


@pytest.fixture
def redis_db() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def s3(monkeypatch):
    """moto's S3 server in a process of its own and an empty bucket: ``(url, bucket)``;
    fake AWS credentials in this process's environment (and so the processes')."""
    from tests.s3server import FAKE_AWS_ENV, create_bucket, start_s3_server

    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    server = start_s3_server()
    try:
        yield server.url, create_bucket(server.url, f"multihost-{secrets.token_hex(4)}")
    finally:
        server.stop()


def _s3_blob_store(url: str, bucket: str):
    """The blob store the processes build from the same settings."""
    from app.storage import make_store

    return make_store({"BLOB_STORE": "s3", "S3_BUCKET": bucket, "S3_ENDPOINT_URL": url})


def _with_application_name(url: str, name: str) -> str:
    """The database URL with ``application_name``, so pg_stat_activity tells processes apart."""
    return (
        make_url(url)
        .update_query_dict({"application_name": name})
        .render_as_string(hide_password=False)
    )


@pytest.fixture
def slow_copy(postgres_url):
    """Copied document rows (``source_document_id`` set) cost SLOW_COPY_SECONDS_PER_ROW each."""
    with slow_copies(db.session, "multihost_slow_copy", SLOW_COPY_SECONDS_PER_ROW):
        yield


@pytest.fixture
def cluster(request, postgres_url, redis_db, s3, slow_copy, tmp_path) -> Cluster:
    """Two web and two worker processes in production settings; stopped afterwards, with
    the tails of their logs printed when the test failed."""
    s3_url, bucket = s3
    processes = Processes(
        tmp_path / "logs",
        base_env={
            "OVERDRACHT_ENV": "production",
            "SECRET_KEY": secrets.token_hex(32),
            "DATABASE_URL": postgres_url,
            "BLOB_STORE": "s3",
            "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": s3_url,
            "PROGRESS_STORE": "redis",
            "REDIS_URL": REDIS_URL,
            "RATELIMIT_STORAGE_URI": REDIS_URL,
            "COPY_LEASE_SECONDS": "6",
            "COPY_HEARTBEAT_SECONDS": "2",
            "SCHEDULER_COPY_SECONDS": "1",
            "COPY_CHUNK_DOCUMENTS": str(COPY_CHUNK_DOCUMENTS),
            "BASE_URL": "http://127.0.0.1",
            "PROGRESS_ROOT": str(tmp_path / "no-progress-files"),  # must stay unused
            "BLOB_ROOT": str(tmp_path / "no-local-blobs"),  # must stay unused
        },
    )
    ports = [free_port(), free_port()]
    try:
        webs = [
            processes.start(
                f"web{n}",
                [
                    str(BIN / "gunicorn"),
                    "-w",
                    "1",
                    "--threads",
                    "4",
                    "-b",
                    f"127.0.0.1:{port}",
                    "--graceful-timeout",
                    "5",
                    "--access-logfile",
                    "-",
                    "--no-control-socket",  # two masters on one host would share its path
                    "wsgi:app",
                ],
                env={"DATABASE_URL": _with_application_name(postgres_url, f"overdracht-web-{n}")},
            )
            for n, port in enumerate(ports, start=1)
        ]
        workers = [
            processes.start(
                f"worker{n}",
                [str(BIN / "flask"), "--app", "wsgi", "scheduler"],
                env={
                    "DATABASE_URL": _with_application_name(
                        postgres_url, WORKER_APPLICATION_NAME.format(n=n)
                    )
                },
            )
            for n in (1, 2)
        ]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        deadline = time.monotonic() + START_TIMEOUT
        for web, url in zip(webs, urls, strict=True):
            web.wait_for_http(f"{url}/login", timeout=max(deadline - time.monotonic(), 1))
        for worker in workers:
            worker.wait_for_log("Scheduler running", timeout=max(deadline - time.monotonic(), 1))
        started = Cluster(urls, webs, workers, processes, _s3_blob_store(s3_url, bucket))
    except BaseException:
        print(processes.tails(), file=sys.stderr)
        processes.stop_all()
        raise
    try:
        yield started
    finally:
        signal.alarm(0)  # the limit is for the test; stopping the processes must not be cut
        processes.stop_all()
        if getattr(request.node, "failed", True):
            print(f"\nlogs in {processes.log_dir}\n{processes.tails(60)}")
        for path in (tmp_path / "no-progress-files", tmp_path / "no-local-blobs"):
            assert not path.exists(), f"{path} was written: a process did not use Redis/S3"


# --------------------------------------------------------------------------- seeding


def _seed(build, office, blob_store):
    """Noord's administration of DOCUMENTS decided documents, all on one stored blob."""
    key = blob_store.put_bytes(BLOB)
    assert key == hashlib.sha256(BLOB).hexdigest()
    administration = build.administration(
        office.connection, name="Bakkerij Veelpapier", code="3030"
    )
    table = Document.__table__
    series = func.generate_series(1, DOCUMENTS).table_valued("n").render_derived(name="series")
    n = series.c.n
    rows = select(
        literal(administration.environment_id),
        literal(administration.id),
        literal(key),
        literal(len(BLOB)),
        literal("application/pdf"),
        literal("factuur-") + cast(n, String) + literal(".pdf"),
        literal(DocumentKind.PURCHASE_INVOICE, table.c.kind.type),
        literal("Leverancier ") + cast(n % 97, String),
        literal(10) + n % 500,
        literal("EUR"),
        literal(date(2022, 1, 1)) + n % 1000,
        literal(DocumentStatus.APPROVED, table.c.status.type),
        literal(2022) + n % 3,
        literal(1) + n % 12,
        literal("Uploader"),
        literal("Beslisser"),
        func.now(),
        func.now(),
        literal(False),  # locked
    ).select_from(series)
    db.session.execute(
        insert(table).from_select(
            ["environment_id", "administration_id", *KEPT_COLUMNS],
            rows,
        )
    )
    db.session.commit()
    assert count(Document, Document.administration_id == administration.id) == DOCUMENTS
    return administration, key


def _token(user) -> dict[str, str]:
    _row, token = create_api_token(user, "multi-host test", origin="tests")
    db.session.commit()
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


# --------------------------------------------------------------------------- HTTP


def _api(method: str, url: str, headers: dict, payload: dict | None = None) -> tuple[int, dict]:
    body = json.dumps(payload).encode() if payload is not None else None
    response = request(
        method, url, body=body, headers={**headers, "Content-Type": "application/json"}
    )
    try:
        data = json.loads(response.body or b"{}")
    except ValueError:
        data = {"raw": response.body[:500].decode(errors="replace")}
    return response.status, data


def _login(base: str, email: str) -> str:
    """A session cookie for ``email``, through the login form. Production marks the cookie
    Secure; this client sends it over plain HTTP anyway, as a TLS-terminating proxy would."""
    page = request("GET", f"{base}/login")
    assert page.status == 200
    token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page.body) or re.search(
        rb'name="csrf_token" value="([^"]+)"', page.body
    )
    assert token, "no CSRF token on the login page"
    cookie = page.cookies()["session"]
    response = request(
        "POST",
        f"{base}/login",
        body=urlencode(
            {"csrf_token": token.group(1).decode(), "email": email, "password": TEST_PASSWORD}
        ).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"session={cookie}",
        },
    )
    assert response.status == 302, response.body[:2000]
    return response.cookies()["session"]


def _download(base: str, session_cookie: str, administration_id: int, document_id: int) -> bytes:
    """A document's bytes: served by the web process, or by S3 behind a redirect."""
    response = request(
        "GET",
        f"{base}/settings/administrations/{administration_id}/documents/{document_id}/file",
        headers={"Cookie": f"session={session_cookie}"},
    )
    if response.status in (302, 303, 307):
        location = response.header("Location")
        assert location and location.startswith("http"), location
        response = request("GET", location)
    assert response.status == 200, (response.status, response.body[:500])
    return response.body


# --------------------------------------------------------------------------- the copy's holder


def _holder(cluster: Cluster, item_id: int) -> tuple[Process, str] | None:
    """The worker that holds the copy of ``item_id`` by its ``lease_owner`` ("host:pid:…"),
    with what the database says besides: which worker's session is inserting documents."""
    fresh()
    owner = db.session.scalar(select(TransferItem.lease_owner).where(TransferItem.id == item_id))
    inserting = sorted(
        db.session.scalars(
            text(
                "SELECT DISTINCT application_name FROM pg_stat_activity "
                "WHERE datname = current_database() "
                "AND application_name LIKE 'overdracht-worker-%' "
                "AND backend_xid IS NOT NULL AND query ILIKE '%documents%'"
            )
        )
    )
    fresh()
    if not owner:
        return None
    process = cluster.processes.by_pid(int(owner.split(":")[1]))
    assert process in cluster.workers, f"lease_owner {owner!r} is none of the workers"
    return process, f"lease_owner {owner}; sessions inserting documents: {inserting}"


# --------------------------------------------------------------------------- the test


def test_two_web_and_two_worker_processes_move_an_administration_once_when_a_worker_dies(
    cluster, build, office, other_office
):
    started = time.monotonic()
    web1, web2 = cluster.webs
    source, blob_key = _seed(build, office, cluster.blob_store)
    noord = _token(office.superuser)
    zuid = _token(other_office.superuser)

    # Offer through web 1: the code comes back once, in the 201 answer.
    status, offer = _api(
        "POST",
        f"{web1}/api/v1/transfers",
        noord,
        {
            "administration_ids": [source.id],
            "recipient_emails": [other_office.superuser.email],
            "checklist_confirmed": True,
            "accept_terms": True,
        },
    )
    assert status == 201, offer
    code = offer["code"]
    assert code

    # Claim through web 2: preview, then accept into Zuid's connection.
    status, preview = _api("POST", f"{web2}/api/v1/claims/preview", zuid, {"code": code})
    assert status == 200, preview
    (entry,) = preview["items"]
    assert entry["documents"] == DOCUMENTS
    assert [c["id"] for c in entry["connections"]] == [other_office.connection.id]
    status, claim = _api(
        "POST",
        f"{web2}/api/v1/claims",
        zuid,
        {
            "code": code,
            "decisions": [
                {
                    "item_id": entry["item_id"],
                    "action": "accept",
                    "connection_id": other_office.connection.id,
                }
            ],
            "accept_terms": True,
        },
    )
    assert status == 202, claim
    claim_id, item_id = claim["id"], entry["item_id"]

    # Progress, read through web 1 while a worker copies: the total is known and done moves.
    seen: list[tuple[int, int]] = []

    def progress(base: str) -> dict:
        status, body = _api("GET", f"{base}/api/v1/claims/{claim_id}", zuid)
        assert status == 200, body
        (item,) = body["items"]
        seen.append((item["documents_done"], item["documents_total"]))
        return item

    def copying_half_way() -> bool:
        item = progress(web1)
        assert item["state"] == "claiming", f"the copy ended before it could be interrupted: {item}"
        done, total = seen[-1]
        moved = any(d < done for d, _t in seen)
        return total == DOCUMENTS and 0 < done < total and moved

    wait_until(
        copying_half_way, timeout=HALF_WAY_TIMEOUT, interval=0.1, what="progress through web 1"
    )

    # The worker that holds the copy dies without a word.
    victim, told_by = wait_until(
        lambda: _holder(cluster, item_id),
        timeout=10,
        interval=0.1,
        what="the worker holding the copy",
    )
    (survivor,) = [w for w in cluster.workers if w is not victim]
    done_at_kill = seen[-1][0]
    victim.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    assert not victim.alive()
    print(f"killed {victim.name} (pid {victim.pid}, {told_by}) at {done_at_kill} documents")

    # The other worker takes the copy over once the lease lapses, and finishes it.
    holders: dict[str, float] = {}  # who held the lease after the kill, first seen when

    def finished() -> dict | None:
        survivor.expect_alive()
        held = _holder(cluster, item_id)
        if held:
            holders.setdefault(held[0].name, time.monotonic() - killed_at)
        status, body = _api("GET", f"{web1}/api/v1/claims/{claim_id}", zuid)
        assert status == 200, body
        (item,) = body["items"]
        assert item["state"] in ("claiming", "migrated"), item
        return body if body["finished"] else None

    try:
        done = wait_until(finished, timeout=FINISH_TIMEOUT, interval=0.25, what="the copy")
    except Timeout:
        fresh()
        item = db.session.get(TransferItem, item_id)
        raise AssertionError(
            f"not finished {FINISH_TIMEOUT} s after the kill: state={item.state} "
            f"attempts={item.attempts} lease_until={item.lease_until} "
            f"last_error={item.last_error} progress={seen[-5:]}"
        ) from None
    takeover_seconds = time.monotonic() - killed_at
    assert survivor.name in holders, f"the copy finished without {survivor.name} holding it"
    assert set(holders) <= {victim.name, survivor.name}
    (item_body,) = done["items"]
    assert item_body["state"] == "migrated"
    assert item_body["documents_done"] == item_body["documents_total"] == DOCUMENTS

    # Exactly one administration arrived, with every document exactly once.
    fresh()
    item = db.session.get(TransferItem, item_id)
    assert item.state is ItemState.MIGRATED
    assert item.attempts >= 2, "the second worker's take is a second attempt"
    assert item.transfer.state is TransferState.COMPLETED
    arrived = list(
        db.session.scalars(
            select(Administration).where(
                Administration.environment_id == other_office.environment.id
            )
        )
    )
    assert [(a.id, a.code) for a in arrived] == [(item.target_administration_id, source.code)]
    target = arrived[0]
    assert count(Provenance, Provenance.transfer_item_id == item_id) == 1
    assert count(Document, Document.administration_id == target.id) == DOCUMENTS
    copied_from = db.session.scalar(
        select(func.count(func.distinct(Document.source_document_id))).where(
            Document.administration_id == target.id
        )
    )
    assert copied_from == DOCUMENTS
    assert (
        count(
            AuditEvent,
            AuditEvent.action == "administration_migrated",
            AuditEvent.object_id == item_id,
        )
        == 1
    )

    # A copied document downloads from either web process, with the stored bytes.
    document_id = db.session.scalar(
        select(func.min(Document.id)).where(Document.administration_id == target.id)
    )
    with cluster.blob_store.open(blob_key) as stored:
        assert stored.read() == BLOB
    cookie = _login(web2, other_office.superuser.email)
    for base in (web1, web2):
        assert _download(base, cookie, target.id, document_id) == BLOB

    for process in (*cluster.web_processes, survivor):
        process.expect_alive()
    elapsed = time.monotonic() - started
    print(
        f"multi-host: progress seen {seen[:3]}…{seen[-2:]}; {survivor.name} took the lease "
        f"{holders[survivor.name]:.1f} s after the kill and finished {takeover_seconds:.1f} s "
        f"after it; test body {elapsed:.1f} s"
    )
    assert elapsed < HALF_WAY_TIMEOUT + FINISH_TIMEOUT + 30
