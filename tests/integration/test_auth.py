"""Logging in and out, sessions, cookies, production settings and the language switch."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import create_app
from app.audit import AuditEvent
from app.auth.models import User
from app.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.integration.pages import all_field_errors, html_lang

WRONG_CREDENTIALS = "The e-mail address or password is not correct."


def logged_in_user_id(client) -> str | None:
    with client.session_transaction() as session:
        return session.get("_user_id")


def english(client):
    """Switch an anonymous client to English, so messages can be compared as text."""
    client.get_page("/login")
    response = client.post_form("/language", {"language": "en"})
    assert response.status_code == 302
    return client


# --------------------------------------------------------------------------- logging in


def test_a_superuser_lands_on_settings_administrations_after_logging_in(client, office):
    client.get_page("/login")
    response = client.post_form(
        "/login", {"email": office.superuser.email, "password": TEST_PASSWORD}
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/settings/administrations"
    assert logged_in_user_id(client) == str(office.superuser.id)
    assert client.get("/settings/administrations").status_code == 200


def test_a_support_user_lands_on_the_support_console_after_logging_in(client, build):
    support = build.user(None, "support", email="support@overdracht.example")
    client.get_page("/login")
    response = client.post_form("/login", {"email": support.email, "password": TEST_PASSWORD})

    assert response.status_code == 302
    assert response.headers["Location"] == "/support"
    assert client.get("/support").status_code == 200


def test_the_e_mail_address_is_matched_without_regard_to_case(client, office):
    client.get_page("/login")
    response = client.post_form(
        "/login", {"email": "  Super@NOORD.example ", "password": TEST_PASSWORD}
    )

    assert response.status_code == 302
    assert logged_in_user_id(client) == str(office.superuser.id)


def test_a_wrong_password_and_an_unknown_e_mail_get_the_same_single_neutral_message(
    client, new_client, office
):
    wrong_password = english(client)
    unknown_email = english(new_client())

    first = wrong_password.post_form(
        "/login", {"email": office.superuser.email, "password": "not the password"}
    )
    second = unknown_email.post_form(
        "/login", {"email": "nobody@noord.example", "password": "not the password"}
    )

    for response in (first, second):
        assert response.status_code == 200
        assert all_field_errors(response.get_data(as_text=True)) == [WRONG_CREDENTIALS]
    assert logged_in_user_id(wrong_password) is None
    assert logged_in_user_id(unknown_email) is None


def test_a_failed_login_leaves_the_settings_pages_closed(client, office):
    client.get_page("/login")
    client.post_form("/login", {"email": office.superuser.email, "password": "wrong"})

    response = client.get("/settings/administrations")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_failed_logins_are_recorded_in_the_audit_trail(client, office):
    client.get_page("/login")
    client.post_form("/login", {"email": office.superuser.email, "password": "Tulp-4711"})
    client.post_form("/login", {"email": "nobody@noord.example", "password": "Tulp-4711"})

    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "login_failed").order_by(AuditEvent.id)
    ).all()

    assert [(e.actor_id, e.details.get("reason")) for e in events] == [
        (office.superuser.id, "wrong_password"),
        (None, "unknown_email"),
    ]
    assert events[0].environment_id == office.environment.id
    # The attempted password is never written down.
    assert all("Tulp-4711" not in str(e.details) for e in events)


def test_a_successful_login_is_recorded_in_the_audit_trail(login, office):
    login(office.superuser)

    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "login")).one()

    assert event.actor_id == office.superuser.id
    assert event.actor_email == office.superuser.email


@pytest.mark.parametrize("target", ["/settings/users", "/settings/connections"])
def test_a_next_page_on_this_site_is_honoured_after_logging_in(client, office, target):
    client.get_page(f"/login?next={target}")
    response = client.post_form(
        f"/login?next={target}",
        {"email": office.superuser.email, "password": TEST_PASSWORD, "next": target},
    )

    assert response.headers["Location"] == target


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example",
        "http://evil.example/settings/administrations",
        "javascript:alert(1)",
    ],
)
def test_a_next_page_off_site_is_ignored_after_logging_in(client, office, target):
    client.get_page("/login")
    response = client.post_form(
        "/login",
        {"email": office.superuser.email, "password": TEST_PASSWORD, "next": target},
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/settings/administrations"


def test_a_logged_in_user_who_opens_the_login_page_goes_home(login, office):
    client = login(office.superuser)

    response = client.get("/login")

    assert response.status_code == 302
    assert response.headers["Location"] == "/settings/administrations"


# --------------------------------------------------------------------------- logging out


def test_logging_out_cannot_be_done_with_a_get_request(login, office):
    client = login(office.superuser)

    response = client.get("/logout")

    assert response.status_code == 405
    assert client.get("/settings/administrations").status_code == 200


def test_logging_out_ends_the_session(login, office):
    client = login(office.superuser)
    client.get_page("/settings/administrations")

    response = client.post_form("/logout")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert logged_in_user_id(client) is None
    after = client.get("/settings/administrations")
    assert after.status_code == 302
    assert after.headers["Location"].startswith("/login")


def test_logging_out_without_a_csrf_token_is_refused(login, office):
    client = login(office.superuser)

    response = client.post("/logout")

    assert response.status_code == 400
    assert client.get("/settings/administrations").status_code == 200


# --------------------------------------------------------------------------- CSRF and cookies


def test_a_login_post_without_csrf_token_is_refused_and_does_not_log_in(client, office):
    client.get_page("/login")
    response = client.post(
        "/login", data={"email": office.superuser.email, "password": TEST_PASSWORD}
    )

    assert response.status_code == 400
    assert logged_in_user_id(client) is None
    assert client.get("/settings/administrations").status_code == 302


def test_a_login_post_with_a_forged_csrf_token_is_refused(client, office):
    client.get_page("/login")
    response = client.post(
        "/login",
        data={
            "csrf_token": "forged",
            "email": office.superuser.email,
            "password": TEST_PASSWORD,
        },
    )

    assert response.status_code == 400
    assert logged_in_user_id(client) is None


def session_cookie_header(response) -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]
    assert headers, response.headers
    return headers[-1]


def test_the_session_cookie_is_http_only_and_same_site_lax(client, office):
    client.get_page("/login")
    response = client.post_form(
        "/login", {"email": office.superuser.email, "password": TEST_PASSWORD}
    )

    cookie = session_cookie_header(response)
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes


def test_production_settings_send_the_session_cookie_over_https_only(
    monkeypatch, tmp_path, keep_shared_extensions
):
    monkeypatch.setenv("SECRET_KEY", "a-production-secret-of-enough-length")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'production.sqlite'}")

    production = create_app("production")

    assert production.config["SESSION_COOKIE_SECURE"] is True
    assert production.config["SESSION_COOKIE_HTTPONLY"] is True
    assert production.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert production.config["SECRET_KEY"] == "a-production-secret-of-enough-length"
    # The login page stores its CSRF token in the session: that cookie is marked Secure.
    response = production.test_client().get("/login")
    assert response.status_code == 200
    assert "secure" in [p.strip().lower() for p in session_cookie_header(response).split(";")]


@pytest.mark.parametrize(
    ("present", "missing"),
    [("DATABASE_URL", "SECRET_KEY"), ("SECRET_KEY", "DATABASE_URL")],
)
def test_production_settings_refuse_to_start_without_a_required_variable(
    monkeypatch, tmp_path, keep_shared_extensions, present, missing
):
    values = {
        "SECRET_KEY": "a-production-secret-of-enough-length",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'production.sqlite'}",
    }
    monkeypatch.setenv(present, values[present])
    monkeypatch.delenv(missing, raising=False)

    with pytest.raises(RuntimeError) as error:
        create_app("production")

    assert missing in str(error.value)
    assert present not in str(error.value)


def test_production_settings_name_both_variables_when_both_are_missing(
    monkeypatch, keep_shared_extensions
):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    with pytest.raises(RuntimeError, match="SECRET_KEY.*DATABASE_URL"):
        create_app("production")


# --------------------------------------------------------------------------- language


def test_the_interface_is_dutch_until_english_is_chosen_and_back(client):
    assert html_lang(client.get_page("/login").get_data(as_text=True)) == "nl"

    response = client.post_form("/language", {"language": "en", "next": "/login"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert html_lang(client.get_page("/login").get_data(as_text=True)) == "en"

    client.post_form("/language", {"language": "nl"})
    assert html_lang(client.get_page("/login").get_data(as_text=True)) == "nl"


def test_the_language_switch_ignores_an_off_site_next(client):
    client.get_page("/login")

    response = client.post_form("/language", {"language": "en", "next": "//evil.example/"})

    assert response.status_code == 302
    assert "evil.example" not in response.headers["Location"]


def test_an_unknown_language_is_not_taken(client):
    client.get_page("/login")

    client.post_form("/language", {"language": "de"})

    assert html_lang(client.get_page("/login").get_data(as_text=True)) == "nl"


def test_a_logged_in_users_language_choice_is_remembered_for_the_next_login(login, office):
    first = login(office.user)
    first.get_page("/settings/administrations")
    first.post_form("/language", {"language": "en"})
    assert html_lang(first.get_page("/settings/administrations").get_data(as_text=True)) == "en"

    db.session.expire_all()
    assert db.session.get(User, office.user.id).language == "en"

    second = login(office.user)  # a new browser: nothing in its session yet
    page = second.get_page("/settings/administrations")
    assert html_lang(page.get_data(as_text=True)) == "en"


def test_the_language_of_one_user_does_not_carry_over_to_another(login, office):
    english_user = login(office.user)
    english_user.get_page("/settings/administrations")
    english_user.post_form("/language", {"language": "en"})

    other = login(office.superuser)
    page = other.get_page("/settings/administrations")

    assert html_lang(page.get_data(as_text=True)) == "nl"
