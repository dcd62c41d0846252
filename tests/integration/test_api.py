"""The JSON API: personal tokens, bearer authentication, administrations and documents."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import select

from app.auth.models import ApiToken
from app.extensions import db

API = "/api/v1/administrations"


def new_token_on_page(html: str) -> str | None:
    match = re.search(r'<code class="token" id="new-token">([^<]+)</code>', html)
    return match.group(1).strip() if match else None


def create_token_on_account_page(client, name: str = "Boekhoudscript") -> str:
    client.get_page("/account")
    response = client.post_form("/account", {"name": name})
    assert response.status_code == 200
    token = new_token_on_page(response.get_data(as_text=True))
    assert token, "the new token is shown once"
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error_body(response, code: int) -> dict:
    assert response.status_code == code
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert {"code", "status", "message"} <= body.keys()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


# --------------------------------------------------------------------------- tokens


def test_a_new_token_is_shown_once_on_the_account_page(login, office):
    client = login(office.superuser)

    token = create_token_on_account_page(client)

    assert token.startswith("ovd_")
    later = client.get_page("/account").get_data(as_text=True)
    assert token not in later
    assert "Boekhoudscript" in later
    assert token[:8] in later  # the prefix, to tell tokens apart


def test_only_the_tokens_sha256_digest_is_stored(login, office):
    client = login(office.superuser)
    token = create_token_on_account_page(client)
    db.session.expire_all()

    row = db.session.scalars(select(ApiToken)).one()
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    assert row.user_id == office.superuser.id

    secret_part = token[len("ovd_") :]
    with db.engine.connect() as connection:
        for table in db.metadata.sorted_tables:
            for values in connection.execute(table.select()):
                for value in values:
                    assert token not in str(value), table.name
                    assert secret_part not in str(value), table.name


def test_a_token_created_on_the_account_page_works_as_bearer(login, new_client, office):
    token = create_token_on_account_page(login(office.superuser))

    response = new_client().get("/api/v1/me", headers=bearer(token))

    assert response.status_code == 200
    assert response.get_json()["email"] == office.superuser.email


def test_a_token_needs_a_name(login, office):
    client = login(office.superuser)
    client.get_page("/account")

    response = client.post_form("/account", {"name": "   "})

    assert new_token_on_page(response.get_data(as_text=True)) is None
    assert db.session.scalars(select(ApiToken)).all() == []


def test_a_revoked_token_gets_401(login, new_client, office):
    client = login(office.superuser)
    token = create_token_on_account_page(client)
    api = new_client()
    assert api.get(API, headers=bearer(token)).status_code == 200
    row = db.session.scalars(select(ApiToken)).one()

    response = client.post_form(f"/account/tokens/{row.id}/revoke")

    assert response.status_code == 302
    assert_error_body(api.get(API, headers=bearer(token)), 401)
    db.session.expire_all()
    assert db.session.scalars(select(ApiToken)).all() == []


def test_another_users_token_cannot_be_revoked(login, api_client, office):
    api, headers = api_client(office.user)
    row = db.session.scalars(select(ApiToken)).one()
    superuser = login(office.superuser)
    superuser.get_page("/account")

    response = superuser.post_form(f"/account/tokens/{row.id}/revoke")

    assert response.status_code == 404
    assert api.get(API, headers=headers).status_code == 200


# --------------------------------------------------------------------------- authentication


def test_the_api_without_a_token_answers_401_in_json(client):
    response = client.get(API)

    body = assert_error_body(response, 401)
    assert body["status"] == "Unauthorized"
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer ovd_not-a-real-token", "Basic c3VwZXJAbm9vcmQuZXhhbXBsZTpkZW1v", "Bearer", "ovd_x"],
)
def test_a_wrong_or_malformed_token_gets_401(client, office, authorization):
    response = client.get(API, headers={"Authorization": authorization})

    assert_error_body(response, 401)


def test_a_logged_in_browser_session_without_a_token_gets_401_from_the_api(login, office):
    browser = login(office.superuser)
    assert browser.get("/settings/administrations").status_code == 200

    assert_error_body(browser.get(API), 401)
    assert_error_body(browser.get("/api/v1/me"), 401)


def test_using_a_token_records_when_it_was_last_used(api_client, office):
    client, headers = api_client(office.superuser)
    assert db.session.scalars(select(ApiToken)).one().last_used_at is None

    client.get(API, headers=headers)

    db.session.expire_all()
    assert db.session.scalars(select(ApiToken)).one().last_used_at is not None


# --------------------------------------------------------------------------- administrations


def test_the_list_gives_counts_and_blockers_per_administration(
    api_client, build, office, other_office
):
    busy = build.administration(office.connection, name="Bloemenhuis Het Zonnetje", code="1005")
    for status in ("pending", "pending", "approved", "rejected"):
        build.document(busy, status)
    build.workflow(busy)
    build.authorization_step(busy, office.authorizer)
    clean = build.administration(office.connection, name="Van Dijk", code="1002")
    build.document(clean, "approved")
    build.administration(other_office.connection, name="Garage Peters", code="1002")
    client, headers = api_client(office.superuser)

    response = client.get(API, headers=headers)

    assert response.status_code == 200
    items = {item["id"]: item for item in response.get_json()}
    assert set(items) == {busy.id, clean.id}
    item = items[busy.id]
    assert item["name"] == "Bloemenhuis Het Zonnetje"
    assert item["code"] == "1005"
    assert item["state"] == "active"
    assert item["connection_id"] == office.connection.id
    assert item["accounting_system"] == "exact_online"
    assert item["inbound_email"] == busy.inbound_email
    assert item["documents"] == {
        "total": 4,
        "pending": 2,
        "approved": 1,
        "rejected": 1,
        "locked": 0,
    }
    assert item["active_workflows"] == 1
    assert item["authorizers_in_flows"] == 1
    assert item["blockers"] == [
        {"kind": "authorizers_in_flows", "count": 1},
        {"kind": "active_workflows", "count": 1},
        {"kind": "undecided_documents", "count": 2},
    ]
    assert items[clean.id]["blockers"] == []
    assert items[clean.id]["documents"] == {
        "total": 1,
        "pending": 0,
        "approved": 1,
        "rejected": 0,
        "locked": 0,
    }


def test_one_administration_can_be_fetched(api_client, build, office):
    administration = build.administration(office.connection, code="2003")
    build.document(administration)
    client, headers = api_client(office.user)

    response = client.get(f"{API}/{administration.id}", headers=headers)

    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == administration.id
    assert body["code"] == "2003"
    assert body["documents"]["pending"] == 1
    assert body["blockers"] == [{"kind": "undecided_documents", "count": 1}]


def test_another_environments_administration_is_a_404_in_json(
    api_client, build, office, other_office
):
    foreign = build.administration(other_office.connection)
    build.document(foreign)
    client, headers = api_client(office.superuser)

    assert_error_body(client.get(f"{API}/{foreign.id}", headers=headers), 404)
    assert_error_body(client.get(f"{API}/{foreign.id}/documents", headers=headers), 404)
    assert_error_body(client.get(f"{API}/999999", headers=headers), 404)


def test_a_support_user_sees_no_administrations_through_the_api(api_client, build, office):
    administration = build.administration(office.connection)
    support = build.user(None, "support")
    client, headers = api_client(support)

    response = client.get(API, headers=headers)

    # Support has no tenant permissions: refused, and certainly no tenant data.
    assert_error_body(response, 403)
    assert_error_body(client.get(f"{API}/{administration.id}", headers=headers), 403)


# --------------------------------------------------------------------------- documents


def test_documents_are_paged_and_filtered_by_status(api_client, build, office):
    administration = build.administration(office.connection)
    pending = [build.document(administration, counterparty=f"Leverancier {i}") for i in range(12)]
    build.document(administration, "approved")
    build.document(administration, "rejected")
    client, headers = api_client(office.superuser)
    url = f"{API}/{administration.id}/documents"

    first = client.get(f"{url}?status=pending&page=1&per_page=10", headers=headers).get_json()
    second = client.get(f"{url}?status=pending&page=2&per_page=10", headers=headers).get_json()

    assert (first["page"], first["per_page"], first["total"], first["pages"]) == (1, 10, 12, 2)
    assert len(first["items"]) == 10
    assert (second["page"], len(second["items"])) == (2, 2)
    ids = [item["id"] for item in first["items"] + second["items"]]
    assert sorted(ids) == sorted(d.id for d in pending)
    assert {item["status"] for item in first["items"] + second["items"]} == {"pending"}
    item = first["items"][0]
    assert item["administration_id"] == administration.id
    assert item["content_type"] == "application/pdf"
    assert item["amount"] == "121.00"
    assert item["invoice_date"] == "2024-03-01"
    assert item["content_hash"] == db.session.get(type(pending[0]), item["id"]).blob_key


def test_documents_without_a_filter_include_every_status(api_client, build, office):
    administration = build.administration(office.connection)
    for status in ("pending", "approved", "rejected"):
        build.document(administration, status)
    client, headers = api_client(office.superuser)

    body = client.get(f"{API}/{administration.id}/documents", headers=headers).get_json()

    assert body["total"] == 3
    assert body["per_page"] == 50
    assert sorted(item["status"] for item in body["items"]) == ["approved", "pending", "rejected"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("status=bogus", "status"), ("page=0", "page"), ("per_page=501", "per_page")],
)
def test_invalid_document_query_parameters_get_422_with_field_errors(
    api_client, build, office, query, field
):
    administration = build.administration(office.connection)
    client, headers = api_client(office.superuser)

    response = client.get(f"{API}/{administration.id}/documents?{query}", headers=headers)

    body = assert_error_body(response, 422)
    errors = body["errors"]
    field_errors = errors.get("query", errors)
    assert list(field_errors) == [field]
    assert isinstance(field_errors[field], list) and field_errors[field]


# --------------------------------------------------------------------------- OpenAPI


def test_the_openapi_document_lists_the_administrations_paths(client):
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    assert "/api/v1/administrations" in paths
    assert "/api/v1/administrations/{administration_id}" in paths
    assert "/api/v1/administrations/{administration_id}/documents" in paths
    assert "get" in paths["/api/v1/administrations"]
    parameters = {
        p["name"]
        for p in paths["/api/v1/administrations/{administration_id}/documents"]["get"]["parameters"]
    }
    assert {"status", "page", "per_page"} <= parameters
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


# --------------------------------------------------------------------------- command line


def test_the_users_token_command_prints_a_token_that_works_as_bearer(
    runner, new_client, build, office
):
    administration = build.administration(office.connection)

    result = runner.invoke(args=["users", "token", "Super@Noord.example"])

    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("ovd_")
    response = new_client().get(API, headers=bearer(token))
    assert response.status_code == 200
    assert [item["id"] for item in response.get_json()] == [administration.id]
    db.session.expire_all()
    row = db.session.scalars(select(ApiToken)).one()
    assert row.name == "command line"
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()


def test_the_users_token_command_refuses_an_unknown_e_mail_address(runner, office):
    result = runner.invoke(args=["users", "token", "nobody@noord.example"])

    assert result.exit_code != 0
    assert "No user with e-mail address nobody@noord.example" in result.output
    assert db.session.scalars(select(ApiToken)).all() == []
