"""Failed code entries are rate limited per user and per environment, shared by the pages
and the API, in one process (memory) and across processes (Redis).

The session's app runs with the limiter off, so each test builds an app of its own with
it on. Flask-Limiter's ``limiter`` is one module-level object: ``init_app`` binds it to
the newest app, replacing its storage (and its ``enabled`` flag) for every app in the
process, so only one limited app is used at a time here and ``keep_shared_extensions``
puts the limiter back afterwards. Each ``memory://`` app therefore starts with empty
counts; a Redis app shares its counts with every process using the same key prefix.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import create_app
from app.audit import AuditEvent
from app.auth.services import create_api_token
from app.extensions import db
from tests.conftest import TEST_PASSWORD, Client
from tests.integration.test_claim import offer, offerable, speaks_english, typo_of, unknown_code

ROOT = Path(__file__).resolve().parents[2]
FETCH = "/settings/migrations/fetch"
CLAIMS = "/settings/migrations/claims"
PREVIEW_API = "/api/v1/claims/preview"
LIMIT = 5
ENVIRONMENT_LIMIT = 8
# When to try again, in words, from Retry-After (a one-hour window: about 60 minutes).
WAIT = re.compile(r"Too many attempts\. Try again in (\d+) minutes\.")


def limited_settings(app, database_url, tmp_path, **overrides) -> dict:
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "BLOB_ROOT": app.config["BLOB_ROOT"],
        "PROGRESS_ROOT": str(tmp_path / "progress"),
        "RATELIMIT_ENABLED": True,
        "CLAIM_CODE_RATE_LIMIT": f"{LIMIT} per hour",
        "CLAIM_CODE_ENVIRONMENT_RATE_LIMIT": f"{ENVIRONMENT_LIMIT} per hour",
        "RATELIMIT_STORAGE_URI": "memory://",
        **overrides,
    }


@pytest.fixture
def make_limited_app(app, database_url, tmp_path, keep_shared_extensions):
    """``make_limited_app(**settings)``: an app on the test database with the limiter on."""
    made = []

    def _make(**overrides):
        limited = create_app(
            "testing", **limited_settings(app, database_url, tmp_path, **overrides)
        )
        limited.test_client_class = Client
        made.append(limited)
        return limited

    yield _make
    for limited in made:
        with limited.app_context():
            db.session.remove()
            db.engine.dispose()


def log_in(limited_app, user) -> Client:
    client: Client = limited_app.test_client()
    client.get_page("/login")
    response = client.post_form("/login", {"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
    client.get_page(FETCH)
    return client


def retry_after(response) -> int:
    value = int(response.headers["Retry-After"])
    assert 0 < value <= 3600
    return value


@pytest.fixture
def zuid_offer(build, office, other_office):
    """An offer to Zuid's superuser and a second Zuid superuser; both speak English."""
    second = build.user(other_office.environment, "superuser", email="tweede@zuid.example")
    speaks_english(other_office.superuser, second)
    transfer, code = offer(
        office.superuser,
        [offerable(build, office.connection)],
        recipients=("super@zuid.example", "tweede@zuid.example"),
    )
    return transfer, code, second


def test_after_five_failed_entries_even_the_right_code_gets_429_with_retry_after(
    make_limited_app, other_office, zuid_offer
):
    transfer, code, _second = zuid_offer
    limited = make_limited_app()
    zuid = log_in(limited, other_office.superuser)

    failures = [zuid.post_form(FETCH, {"code": unknown_code()}) for _ in range(LIMIT)]
    blocked = zuid.post_form(FETCH, {"code": code})

    assert [r.status_code for r in failures] == [422] * LIMIT
    assert blocked.status_code == 429
    retry_after(blocked)
    assert WAIT.search(blocked.get_data(as_text=True))
    # The claim itself shares the limit.
    claim = zuid.post_form(
        CLAIMS,
        {
            "code": code,
            f"action-{transfer.items[0].id}": "accept",
            f"connection-{transfer.items[0].id}": str(other_office.connection.id),
            "accept_terms": "y",
        },
    )
    assert claim.status_code == 429
    retry_after(claim)
    with limited.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "claim_code_failed")
            )
            == LIMIT
        )


def test_typos_do_not_count_against_the_limit(make_limited_app, other_office, zuid_offer):
    _transfer, code, _second = zuid_offer
    limited = make_limited_app()
    zuid = log_in(limited, other_office.superuser)

    typos = [zuid.post_form(FETCH, {"code": typo_of(code)}) for _ in range(3 * LIMIT)]
    failures = [zuid.post_form(FETCH, {"code": unknown_code()}) for _ in range(LIMIT - 1)]
    right = zuid.post_form(FETCH, {"code": code})

    assert {r.status_code for r in typos} == {422}
    assert [r.status_code for r in failures] == [422] * (LIMIT - 1)
    assert right.status_code == 200, right.get_data(as_text=True)


def test_a_successful_preview_does_not_count_against_the_limit(
    make_limited_app, other_office, zuid_offer
):
    _transfer, code, _second = zuid_offer
    limited = make_limited_app()
    zuid = log_in(limited, other_office.superuser)

    previews = [zuid.post_form(FETCH, {"code": code}) for _ in range(2 * LIMIT)]

    assert {r.status_code for r in previews} == {200}


def test_one_users_failures_do_not_lock_out_a_colleague_until_the_environments_ceiling(
    make_limited_app, build, office, other_office, zuid_offer
):
    transfer, code, second = zuid_offer
    limited = make_limited_app()
    zuid = log_in(limited, other_office.superuser)
    for _ in range(LIMIT):
        assert zuid.post_form(FETCH, {"code": unknown_code()}).status_code == 422
    assert zuid.post_form(FETCH, {"code": code}).status_code == 429
    assert zuid.get(FETCH).status_code == 200, "opening the fetch page is never limited"

    colleague = log_in(limited, second)
    assert colleague.post_form(FETCH, {"code": unknown_code()}).status_code == 422
    # The colleague is not locked out by the first user's failures ...
    for _ in range(ENVIRONMENT_LIMIT - LIMIT - 1):
        assert colleague.post_form(FETCH, {"code": unknown_code()}).status_code == 422
    # ... until the environment as a whole reaches its higher ceiling.
    third = build.user(other_office.environment, "superuser", email="derde@zuid.example")
    speaks_english(third)
    stopped = log_in(limited, third).post_form(FETCH, {"code": code})
    assert stopped.status_code == 429
    retry_after(stopped)
    # Another environment keeps its own counts.
    oost = build.environment("Kantoor Oost", office_code="OOST")
    oost_super = build.user(oost, "superuser", email="super@oost.example")
    speaks_english(oost_super)
    assert log_in(limited, oost_super).post_form(FETCH, {"code": code}).status_code == 422


def test_the_refusal_says_in_dutch_when_to_try_again(make_limited_app, build, other_office):
    limited = make_limited_app()
    dutch = build.user(other_office.environment, "superuser", email="nl@zuid.example")
    client = log_in(limited, dutch)
    for _ in range(LIMIT):
        client.post_form(FETCH, {"code": unknown_code()})

    blocked = client.post_form(FETCH, {"code": unknown_code()})

    assert blocked.status_code == 429
    page = blocked.get_data(as_text=True)
    assert re.search(r"Te veel pogingen\. Probeer het over \d+ minuten opnieuw\.", page)
    assert "<h1>Te veel pogingen</h1>" in page, "the page leads with words, not a number"


def test_pages_and_api_share_one_count_and_the_api_answers_429_in_json(
    make_limited_app, other_office, zuid_offer
):
    _transfer, code, _second = zuid_offer
    limited = make_limited_app()
    _row, token = create_api_token(other_office.superuser, "tests", origin="tests")
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    zuid = log_in(limited, other_office.superuser)
    api = limited.test_client()

    for _ in range(3):
        assert zuid.post_form(FETCH, {"code": unknown_code()}).status_code == 422
    for _ in range(LIMIT - 3):
        failed = api.post(PREVIEW_API, json={"code": unknown_code()}, headers=headers)
        assert failed.status_code == 422
    blocked = api.post(PREVIEW_API, json={"code": code}, headers=headers)

    assert blocked.status_code == 429
    retry_after(blocked)
    body = blocked.get_json()
    assert body["code"] == 429
    assert WAIT.fullmatch(body["message"])
    assert zuid.post_form(FETCH, {"code": code}).status_code == 429


# --------------------------------------------------------------------------- two processes

CHILD = textwrap.dedent(
    """
    import json, os, sys
    from app import create_app
    from app.extensions import db
    from tests.conftest import TEST_PASSWORD, Client

    settings = json.loads(os.environ["CLAIM_LIMIT_SETTINGS"])
    app = create_app("testing", **settings)
    app.test_client_class = Client
    client = app.test_client()
    client.get_page("/login")
    login = client.post_form(
        "/login", {"email": os.environ["CLAIM_LIMIT_EMAIL"], "password": TEST_PASSWORD}
    )
    assert login.status_code == 302, login.get_data(as_text=True)
    client.get_page("/settings/migrations/fetch")
    statuses = [
        client.post_form("/settings/migrations/fetch", {"code": code}).status_code
        for code in json.loads(os.environ["CLAIM_LIMIT_CODES"])
    ]
    with app.app_context():
        db.engine.dispose()
    print(json.dumps(statuses))
    """
)


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own in the local Redis; its keys are removed afterwards."""
    redis = pytest.importorskip("redis")
    connection = redis.Redis.from_url("redis://127.0.0.1:6379")
    connection.ping()
    prefix = f"overdracht-claim-test-{uuid.uuid4().hex}"
    yield prefix
    for key in connection.scan_iter(match=f"*{prefix}*"):
        connection.delete(key)
    connection.close()


def test_two_processes_on_redis_share_one_count(
    app, database_url, tmp_path, make_limited_app, other_office, zuid_offer, redis_prefix
):
    _transfer, code, _second = zuid_offer
    redis_settings = {
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379",
        "RATELIMIT_KEY_PREFIX": redis_prefix,
    }
    child_failures = 3
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CLAIM_LIMIT_SETTINGS": json.dumps(
                limited_settings(app, database_url, tmp_path, **redis_settings)
            ),
            "CLAIM_LIMIT_EMAIL": other_office.superuser.email,
            "CLAIM_LIMIT_CODES": json.dumps([unknown_code() for _ in range(child_failures)]),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.strip().splitlines()[-1]) == [422] * child_failures

    limited = make_limited_app(**redis_settings)
    zuid = log_in(limited, other_office.superuser)
    rest = [zuid.post_form(FETCH, {"code": unknown_code()}) for _ in range(LIMIT - child_failures)]
    blocked = zuid.post_form(FETCH, {"code": code})

    assert [r.status_code for r in rest] == [422] * (LIMIT - child_failures)
    assert blocked.status_code == 429
    retry_after(blocked)
    assert WAIT.search(blocked.get_data(as_text=True))


def test_a_new_memory_limited_app_starts_with_empty_counts(
    make_limited_app, other_office, zuid_offer
):
    """What the two-process test proves for Redis does not hold for memory: each process
    (here: each binding of the limiter) counts on its own."""
    _transfer, code, _second = zuid_offer
    first = make_limited_app()
    zuid = log_in(first, other_office.superuser)
    for _ in range(LIMIT):
        zuid.post_form(FETCH, {"code": unknown_code()})
    assert zuid.post_form(FETCH, {"code": code}).status_code == 429

    second = make_limited_app()

    assert (
        log_in(second, other_office.superuser).post_form(FETCH, {"code": code}).status_code == 200
    )
