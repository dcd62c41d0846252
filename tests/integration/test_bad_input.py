"""No 500 for any input: each finding of issue 9's "500s from input" is answered 400, 404
or 422 in the shape the client asked for, and quickly; on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import time

import pytest
from sqlalchemy import text

from app.extensions import db
from tests.helpers import offer

BIG = 2**31
SUPPORT_EMAIL = "support@overdracht.example"
# In Dutch, the API's language when the request asks for none (marshmallow's own text
# translated: "Must be greater than or equal to 1 and less than or equal to 2147483647.").
RANGE = "Moet minstens 1 en hoogstens 2147483647 zijn."


@pytest.fixture
def support(build):
    return build.user(None, "support", email=SUPPORT_EMAIL)


@pytest.fixture
def offered(build, office, other_office):
    administration = build.administration(office.connection)
    build.document(administration, "approved")
    transfer, code = offer(office.superuser, [administration])
    return transfer, code


def assert_error_json(response, status: int, field: str | None = None):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["code"] == status and body["message"] and body["status"]
    errors = body.get("errors", {})
    assert isinstance(errors, dict)
    assert all(isinstance(v, (list, dict)) for v in errors.values())
    if field:
        assert field in errors, errors
    return body


# --------------------------------------------------------------------------- ids ≥ 2**31


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/transfers/{BIG}",
        f"/api/v1/transfers/{BIG}/withdraw",
        f"/api/v1/claims/{BIG}",
        f"/api/v1/administrations/{BIG}",
        f"/api/v1/administrations/{BIG}/preflight",
        f"/api/v1/administrations/{BIG}/documents",
        f"/api/v1/administrations/{10**30}",
    ],
)
def test_a_too_big_id_in_an_api_path_is_a_404(api_client, office, path):
    client, headers = api_client(office.superuser)
    method = client.post if path.endswith("withdraw") else client.get
    assert_error_json(method(path, headers=headers), 404)


def test_a_too_big_id_in_a_page_path_is_a_404(login, office, support):
    superuser = login(office.superuser)
    for path in (
        f"/settings/migrations/{BIG}",
        f"/settings/migrations/claims/{BIG}",
        f"/settings/administrations/{BIG}",
    ):
        assert superuser.get(path).status_code == 404, path
    assert login(support).get(f"/support/transfers/{BIG}").status_code == 404


def test_a_too_big_id_in_a_query_is_a_422(api_client, login, support):
    client, headers = api_client(support)
    for query in (f"source={BIG}", f"target={BIG}", "source=0"):
        response = client.get(f"/api/v1/support/transfers?{query}", headers=headers)
        assert_error_json(response, 422, query.split("=")[0])
    page = login(support)
    assert page.get(f"/support?source={BIG}").status_code == 422
    assert page.get(f"/support?target={BIG}").status_code == 422
    assert page.get(f"/support/audit?environment={BIG}").status_code == 422
    assert page.get("/support?source=").status_code == 200  # the empty choice is no filter


def test_a_too_big_id_in_an_api_body_is_a_422(api_client, office, offered):
    _transfer, code = offered
    client, headers = api_client(office.superuser)
    response = client.post(
        "/api/v1/transfers",
        json={"administration_ids": [BIG], "recipient_emails": ["super@zuid.example"]},
        headers=headers,
    )
    body = assert_error_json(response, 422, "administration_ids")
    assert body["errors"]["administration_ids"] == {"0": [RANGE]}
    response = client.post(
        "/api/v1/claims",
        json={
            "code": code,
            "decisions": [{"item_id": BIG, "action": "accept", "connection_id": BIG}],
        },
        headers=headers,
    )
    body = assert_error_json(response, 422, "decisions")
    assert set(body["errors"]["decisions"]["0"]) == {"item_id", "connection_id"}


def test_too_big_ids_in_forms_are_refused(login, office, other_office, offered):
    _transfer, code = offered
    superuser = login(office.superuser)
    superuser.get_page("/settings/migrations/move")
    checklist = {
        "users_stay": "y",
        "no_authorizers_in_flows": "y",
        "no_active_workflows": "y",
        "all_documents_decided": "y",
    }
    assert superuser.post_form("/settings/migrations/move", checklist).status_code == 302
    assert superuser.get(f"/settings/migrations/move/select?connection_id={BIG}").status_code == 422
    response = superuser.post_form(
        "/settings/migrations/move/select", {"administration_ids": str(BIG)}
    )
    assert response.status_code == 404
    response = superuser.get(f"/settings/migrations/progress?items={BIG},1")
    assert response.status_code == 200
    receiver = login(other_office.superuser)
    receiver.get_page("/settings/migrations/fetch")
    response = receiver.post_form(
        "/settings/migrations/claims",
        {"code": code, f"action-{BIG}": "accept", f"connection-{BIG}": str(BIG)},
    )
    assert response.status_code == 422


# --------------------------------------------------------------------------- NUL and surrogates


def test_nul_in_a_search_box_is_a_422(login, api_client, office, support):
    superuser = login(office.superuser)
    assert superuser.get("/settings/migrations?q_out=a%00b").status_code == 422
    assert superuser.get("/settings/migrations?q_in=%00").status_code == 422
    assert login(support).get("/support?q=x%00").status_code == 422
    client, headers = api_client(office.superuser)
    assert_error_json(client.get("/api/v1/transfers?q=a%00b", headers=headers), 422, "q")


def test_nul_in_the_counterparty_is_a_422(login, build, office):
    administration = build.administration(office.connection)
    superuser = login(office.superuser)
    superuser.get_page(f"/settings/administrations/{administration.id}")
    response = superuser.post(
        f"/settings/administrations/{administration.id}/documents",
        data={
            "csrf_token": superuser.csrf_token,
            "file": (io.BytesIO(b"%PDF-1.4 test"), "factuur.pdf"),
            "kind": "purchase_invoice",
            "counterparty": "Leverancier\x00 BV",
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422


def test_nul_or_a_lone_surrogate_in_a_revoke_reason_is_a_422(api_client, login, support, offered):
    transfer, _code = offered
    client, headers = api_client(support)
    for reason in ("stuck\x00 for days", "stuck \ud800 for days"):
        body = json.dumps({"reason": reason})  # escaped: \u0000, \ud800
        response = client.post(
            f"/api/v1/support/transfers/{transfer.id}/revoke",
            data=body,
            content_type="application/json",
            headers=headers,
        )
        assert_error_json(response, 422, "reason")
    page = login(support)
    page.get_page(f"/support/transfers/{transfer.id}")
    response = page.post_form(
        f"/support/transfers/{transfer.id}/revoke", {"reason": "stuck\x00 for days"}
    )
    assert response.status_code == 422
    response = client.get(f"/api/v1/support/transfers/{transfer.id}", headers=headers)
    assert response.get_json()["state"] == "offered"


# --------------------------------------------------------------------------- deep JSON, long lists


def test_json_nested_100000_deep_is_a_400_at_once(api_client, office):
    client, headers = api_client(office.superuser)
    started = time.monotonic()
    response = client.post(
        "/api/v1/claims/preview",
        data="[" * 100_000 + "]" * 100_000,
        content_type="application/json",
        headers=headers,
    )
    assert time.monotonic() - started < 2
    assert_error_json(response, 400, "json")


def test_decisions_nested_5000_deep_are_a_400(api_client, other_office, offered):
    _transfer, code = offered
    client, headers = api_client(other_office.superuser)
    deep = "[" * 5000 + "]" * 5000
    body = f'{{"code": "{code}", "decisions": {deep}, "accept_terms": true}}'
    response = client.post(
        "/api/v1/claims", data=body, content_type="application/json", headers=headers
    )
    assert_error_json(response, 400, "json")
    # Brackets inside strings do not count.
    response = client.post("/api/v1/claims/preview", json={"code": "[" * 5000}, headers=headers)
    assert_error_json(response, 422, "code")


def test_invalid_json_is_a_400_in_the_declared_shape(api_client, office):
    client, headers = api_client(office.superuser)
    response = client.post(
        "/api/v1/claims/preview", data="{not json", content_type="application/json", headers=headers
    )
    assert_error_json(response, 400)


def test_a_million_administration_ids_are_a_422_quickly(api_client, office):
    client, headers = api_client(office.superuser)
    started = time.monotonic()
    response = client.post(
        "/api/v1/transfers",
        json={"administration_ids": list(range(1, 1_000_001)), "recipient_emails": ["a@b.nl"]},
        headers=headers,
    )
    assert time.monotonic() - started < 5
    assert_error_json(response, 422, "administration_ids")


def test_300000_recipients_are_a_422_quickly(api_client, build, office):
    administration = build.administration(office.connection)
    client, headers = api_client(office.superuser)
    started = time.monotonic()
    response = client.post(
        "/api/v1/transfers",
        json={
            "administration_ids": [administration.id],
            "recipient_emails": [f"r{i}@zuid.example" for i in range(300_000)],
        },
        headers=headers,
    )
    assert time.monotonic() - started < 5
    assert_error_json(response, 422, "recipient_emails")


def test_empty_code_and_lists_are_refused_as_declared(api_client, office):
    client, headers = api_client(office.superuser)
    response = client.post(
        "/api/v1/transfers",
        json={"administration_ids": [], "recipient_emails": []},
        headers=headers,
    )
    body = assert_error_json(response, 422)
    assert {"administration_ids", "recipient_emails"} <= set(body["errors"])
    assert_error_json(
        client.post("/api/v1/claims/preview", json={"code": ""}, headers=headers), 422, "code"
    )


def test_too_many_ids_per_progress_query_are_a_422(login, office):
    superuser = login(office.superuser)
    ids = ",".join(str(i) for i in range(1, 200))
    assert superuser.get(f"/settings/migrations/progress?items={ids}").status_code == 422


# --------------------------------------------------------------------------- pages, older_than


def test_huge_page_numbers_are_a_422(api_client, login, office, support):
    client, headers = api_client(office.superuser)
    assert_error_json(client.get(f"/api/v1/transfers?page={10**18}", headers=headers), 422, "page")
    superuser = login(office.superuser)
    assert superuser.get(f"/settings/migrations?page_out={10**18}").status_code == 422
    assert superuser.get("/settings/migrations?page_in=10000").status_code == 200
    support_page = login(support)
    assert support_page.get(f"/support?page={10**18}").status_code == 422
    assert support_page.get(f"/support/audit?page={10**18}").status_code == 422
    support_client, support_headers = api_client(support)
    response = support_client.get(
        f"/api/v1/support/transfers?page={10**18}", headers=support_headers
    )
    assert_error_json(response, 422, "page")


@pytest.mark.parametrize("older_than", ["100000000", "-5"])
def test_older_than_is_bounded_on_pages_and_api(api_client, login, support, offered, older_than):
    client, headers = api_client(support)
    response = client.get(f"/api/v1/support/transfers?older_than={older_than}", headers=headers)
    assert_error_json(response, 422, "older_than")
    assert login(support).get(f"/support?older_than={older_than}").status_code == 422


def test_older_than_in_range_still_filters(api_client, support, offered):
    client, headers = api_client(support)
    response = client.get("/api/v1/support/transfers?older_than=3650", headers=headers)
    assert response.status_code == 200 and response.get_json()["total"] == 0
    response = client.get("/api/v1/support/transfers?older_than=0", headers=headers)
    assert response.get_json()["total"] == 1


def test_a_date_search_out_of_range_is_no_error(login, office):
    superuser = login(office.superuser)
    for q in ("31-12-9999", "01-01-0001", "9999-12-31"):
        assert superuser.get(f"/settings/migrations?q_out={q}").status_code == 200


# --------------------------------------------------------------------------- OPTIONS, errors


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/support/transfers",
        "/api/v1/support/transfers/1",
        "/api/v1/transfers",
        "/support",
        "/settings/migrations",
    ],
)
def test_options_answers_without_a_user(client, path):
    response = client.options(path)
    assert response.status_code == 200
    assert "GET" in response.headers["Allow"]


def test_after_a_database_error_the_error_page_and_the_api_still_answer(
    app, api_client, login, support, monkeypatch
):
    from app.support import services

    def broken(*args, **kwargs):
        db.session.execute(text("SELECT no_such_column FROM no_such_table"))

    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    monkeypatch.setattr(services, "environment_overview", broken)
    monkeypatch.setattr(services, "list_transfers", broken)
    page = login(support)
    response = page.get("/support/environments")
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    assert "<html" in response.get_data(as_text=True).lower()
    response = page.get("/support/environments", headers={"Accept": "application/json"})
    assert_error_json(response, 500)
    client, headers = api_client(support)
    assert_error_json(client.get("/api/v1/support/transfers", headers=headers), 500)
