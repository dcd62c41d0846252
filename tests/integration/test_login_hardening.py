"""Login hardening: failed logins limited per account and per client address (failures
only, a mail to the owner once), the client address from trusted proxy hops only, a new
session at login, sessions that end everywhere at logout and "sign out everywhere", HSTS
in production and ``Cache-Control: no-store`` on private answers.

The session's app runs with the limiter off; the throttling tests build an app of their
own with it on (see ``test_claim_rate_limit.py`` for why one limited app at a time).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import create_app
from app.audit import AuditEvent
from app.auth.models import User
from app.extensions import db
from app.outbox import OutboxMessage
from tests.conftest import TEST_PASSWORD, Client

ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 8
WRONG = "The e-mail address or password is not correct."
HOME = "/settings/administrations"


@pytest.fixture
def make_app(app, database_url, tmp_path, keep_shared_extensions):
    """``make_app(**settings)``: an app on the test database with the limiter on."""
    made = []

    def _make(**overrides):
        settings = {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "BLOB_ROOT": app.config["BLOB_ROOT"],
            "PROGRESS_ROOT": str(tmp_path / "progress"),
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_STORAGE_URI": "memory://",
            "LOGIN_ACCOUNT_RATE_LIMIT": f"{ACCOUNT_LIMIT} per 15 minutes",
            "LOGIN_RATE_LIMIT": f"{ADDRESS_LIMIT} per minute",
            **overrides,
        }
        limited = create_app("testing", **settings)
        limited.test_client_class = Client
        made.append(limited)
        return limited

    yield _make
    for limited in made:
        with limited.app_context():
            db.session.remove()
            db.engine.dispose()


def attempt(flask_app, email: str, password: str, address: str = "192.0.2.1", **kwargs):
    """One login from a new browser at ``address``."""
    client: Client = flask_app.test_client()
    client.environ_base = {"REMOTE_ADDR": address}
    client.get_page("/login")
    client.post_form("/language", {"language": "en"})
    client.get_page("/login")
    return client.post_form("/login", {"email": email, "password": password}, **kwargs)


def retry_after(response) -> int:
    value = int(response.headers["Retry-After"])
    assert 0 < value <= 15 * 60
    return value


def events(action: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )
    )


def throttle_mails() -> list[OutboxMessage]:
    return list(
        db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "login_throttled"))
    )


# --------------------------------------------------------------------------- per account


def test_after_the_account_limit_even_the_right_password_from_a_new_address_gets_429(
    make_app, office
):
    limited = make_app()
    email = office.superuser.email

    failures = [
        attempt(limited, email, "wrong", address=f"198.51.100.{i}") for i in range(ACCOUNT_LIMIT)
    ]
    # Case and spaces do not make another account.
    right = attempt(limited, f"  {email.upper()} ", TEST_PASSWORD, address="203.0.113.9")

    assert [r.status_code for r in failures] == [200] * ACCOUNT_LIMIT
    assert all(WRONG in r.get_data(as_text=True) for r in failures)
    assert right.status_code == 429
    wait = retry_after(right)
    assert wait > 14 * 60
    assert "Too many failed login attempts. Try again in 15 minutes." in right.get_data(
        as_text=True
    )
    assert "_user_id" not in (right.headers.get("Set-Cookie") or "")
    # Another account is not affected.
    assert attempt(limited, office.user.email, TEST_PASSWORD).status_code == 302
    # No login, and the refusals are not checked or counted as failures.
    assert len(events("login_failed")) == ACCOUNT_LIMIT
    assert [e.actor_id for e in events("login")] == [office.user.id]


def test_the_refusal_says_in_dutch_when_to_try_again(make_app, office):
    limited = make_app()
    for i in range(ACCOUNT_LIMIT):
        attempt(limited, office.superuser.email, "wrong", address=f"198.51.100.{i}")
    client: Client = limited.test_client()
    client.get_page("/login")

    response = client.post_form(
        "/login", {"email": office.superuser.email, "password": TEST_PASSWORD}
    )

    assert response.status_code == 429
    assert "Te veel mislukte inlogpogingen. Probeer het over 15 minuten opnieuw." in (
        response.get_data(as_text=True)
    )


def test_an_unknown_e_mail_is_limited_alike_so_the_answer_tells_nothing(make_app, office):
    limited = make_app()
    unknown = "niemand@noord.example"

    failures = [
        attempt(limited, unknown, "wrong", address=f"198.51.100.{i}") for i in range(ACCOUNT_LIMIT)
    ]
    refused = attempt(limited, unknown, "wrong", address="203.0.113.9")

    assert [r.status_code for r in failures] == [200] * ACCOUNT_LIMIT
    assert refused.status_code == 429
    retry_after(refused)
    # Audited, but there is no owner to mail.
    (event,) = events("login_throttled")
    assert event.object_id is None
    assert throttle_mails() == []


def test_successful_logins_are_not_counted(make_app, office):
    limited = make_app()
    email = office.superuser.email

    successes = [attempt(limited, email, TEST_PASSWORD) for _ in range(3 * ADDRESS_LIMIT)]
    failures = [attempt(limited, email, "wrong") for _ in range(ACCOUNT_LIMIT - 1)]
    right = attempt(limited, email, TEST_PASSWORD)

    assert {r.status_code for r in successes} == {302}
    assert [r.status_code for r in failures] == [200] * (ACCOUNT_LIMIT - 1)
    assert right.status_code == 302
    assert right.headers["Location"] == HOME


def test_the_owner_gets_one_mail_when_the_account_limit_is_reached(make_app, office):
    limited = make_app()
    email = office.superuser.email

    for i in range(ACCOUNT_LIMIT - 1):
        attempt(limited, email, "wrong", address=f"198.51.100.{i}")
    assert throttle_mails() == []
    attempt(limited, email, "wrong", address="198.51.100.99")
    for i in range(3):  # refused: no more mails
        assert attempt(limited, email, "wrong", address=f"203.0.113.{i}").status_code == 429

    (mail,) = throttle_mails()
    assert mail.to_email == email
    assert mail.environment_id == office.environment.id
    assert (mail.ref_type, mail.ref_id) == ("user", office.superuser.id)
    assert mail.language == "nl"
    assert "Inloggen op uw Overdracht-account" in mail.subject
    assert "is inloggen geblokkeerd tot " in mail.body_text
    assert "Beste Sanne Noord" in mail.body_html
    assert "wrong" not in mail.body_text  # the tried password is never written down
    (event,) = events("login_throttled")
    assert event.object_id == office.superuser.id
    assert event.origin == "web 198.51.100.99"
    queued = events("mail_queued")
    assert [e.object_id for e in queued] == [mail.id]


def test_a_user_who_speaks_english_gets_the_mail_in_english(make_app, office):
    office.superuser.language = "en"
    db.session.commit()
    limited = make_app()

    for i in range(ACCOUNT_LIMIT):
        attempt(limited, office.superuser.email, "wrong", address=f"198.51.100.{i}")

    (mail,) = throttle_mails()
    assert mail.subject == "Logging in to your Overdracht account has been paused"
    assert "logging in is paused until " in mail.body_text
    assert "After that you can log in again as usual." in mail.body_text


# --------------------------------------------------------------------------- per address


def test_failures_from_one_address_are_limited_across_accounts(make_app, office):
    limited = make_app()

    failures = [
        attempt(limited, f"raden{i}@noord.example", "wrong", address="192.0.2.7")
        for i in range(ADDRESS_LIMIT)
    ]
    right = attempt(limited, office.superuser.email, TEST_PASSWORD, address="192.0.2.7")
    elsewhere = attempt(limited, office.superuser.email, TEST_PASSWORD, address="192.0.2.8")

    assert [r.status_code for r in failures] == [200] * ADDRESS_LIMIT
    assert right.status_code == 429
    assert 0 < int(right.headers["Retry-After"]) <= 60
    assert elsewhere.status_code == 302


# --------------------------------------------------------------------------- proxy hops


def test_with_one_trusted_hop_the_address_the_proxy_saw_is_the_clients(make_app, office):
    limited = make_app(PROXY_FIX_HOPS=1)
    proxy = "10.0.0.1"

    # Behind one proxy, clients are told apart by the address the proxy appended; what
    # a client put in front of it itself is not believed.
    for i in range(ADDRESS_LIMIT):
        response = attempt(
            limited,
            f"raden{i}@noord.example",
            "wrong",
            address=proxy,
            headers={"X-Forwarded-For": f"6.6.6.6, 198.51.100.{i}"},
        )
        assert response.status_code == 200
    right = attempt(
        limited,
        office.superuser.email,
        TEST_PASSWORD,
        address=proxy,
        headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.200"},
    )

    assert right.status_code == 302
    origins = {e.origin for e in events("login_failed")}
    assert origins == {f"web 198.51.100.{i}" for i in range(ADDRESS_LIMIT)}
    # The same client behind the proxy is still limited.
    for i in range(ADDRESS_LIMIT):
        attempt(
            limited,
            f"gok{i}@noord.example",
            "wrong",
            address=proxy,
            headers={"X-Forwarded-For": "198.51.100.250"},
        )
    blocked = attempt(
        limited,
        office.user.email,
        TEST_PASSWORD,
        address=proxy,
        headers={"X-Forwarded-For": "198.51.100.250"},
    )
    assert blocked.status_code == 429


def test_without_trusted_hops_x_forwarded_for_is_ignored(make_app, office):
    limited = make_app()  # PROXY_FIX_HOPS = 0
    assert limited.config["PROXY_FIX_HOPS"] == 0

    for i in range(ADDRESS_LIMIT):
        attempt(
            limited,
            f"raden{i}@noord.example",
            "wrong",
            address="192.0.2.7",
            headers={"X-Forwarded-For": f"198.51.100.{i}"},
        )
    right = attempt(
        limited,
        office.superuser.email,
        TEST_PASSWORD,
        address="192.0.2.7",
        headers={"X-Forwarded-For": "198.51.100.200"},
    )

    assert right.status_code == 429
    assert {e.origin for e in events("login_failed")} == {"web 192.0.2.7"}


# --------------------------------------------------------------------------- sessions


def session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def replay(new_client, cookie: str):
    """A fresh browser with a copied session cookie opens a private page."""
    fresh = new_client()
    fresh.set_cookie("session", cookie)
    return fresh.get(HOME)


def test_the_session_is_renewed_at_login(client, office):
    client.get_page("/login")
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
        before = dict(session)

    client.post_form("/login", {"email": office.superuser.email, "password": TEST_PASSWORD})

    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["csrf_token"] == before["csrf_token"]  # open forms still post
        assert session["_user_id"] == str(office.superuser.id)
        assert (
            session["_session_version"] == db.session.get(User, office.superuser.id).session_version
        )


def test_a_cookie_copied_before_logout_gets_the_login_page_afterwards(login, new_client, office):
    browser = login(office.superuser)
    assert browser.get(HOME).status_code == 200
    copied = session_cookie(browser)
    assert replay(new_client, copied).status_code == 200  # the copy works while logged in

    browser.get_page(HOME)
    assert browser.post_form("/logout").status_code == 302

    replayed = replay(new_client, copied)
    assert replayed.status_code == 302
    assert replayed.headers["Location"].startswith("/login")
    assert [e.actor_id for e in events("logout")] == [office.superuser.id]


def test_sign_out_everywhere_ends_every_session_of_the_user(login, new_client, office):
    elsewhere = login(office.superuser)
    copied = session_cookie(elsewhere)
    other_user = login(office.user)
    page = elsewhere.get_page("/account")
    assert "Sign out everywhere" in page.get_data(as_text=True) or "Overal uitloggen" in (
        page.get_data(as_text=True)
    )

    response = elsewhere.post_form("/account/sessions/end")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert elsewhere.get(HOME).status_code == 302
    assert replay(new_client, copied).status_code == 302
    assert other_user.get(HOME).status_code == 200  # another user's session lives on
    (event,) = events("sessions_ended")
    assert event.actor_id == office.superuser.id
    # And the user can log in again.
    assert login(office.superuser).get(HOME).status_code == 200


def test_sign_out_everywhere_needs_a_post_with_a_csrf_token(login, office):
    browser = login(office.superuser)

    assert browser.get("/account/sessions/end").status_code == 405
    assert browser.post("/account/sessions/end").status_code == 400
    assert browser.get(HOME).status_code == 200
    assert events("sessions_ended") == []


def test_a_second_device_keeps_its_session_until_either_logs_out(login, new_client, office):
    first = login(office.superuser)
    copied = session_cookie(first)
    second = login(office.superuser)

    assert first.get(HOME).status_code == 200
    assert second.get(HOME).status_code == 200

    second.get_page(HOME)
    second.post_form("/logout")

    assert first.get(HOME).status_code == 302
    assert replay(new_client, copied).status_code == 302


def test_a_session_from_before_session_versions_is_refused(client, office):
    with client.session_transaction() as session:
        session["_user_id"] = str(office.superuser.id)
        session["_fresh"] = True

    assert client.get(HOME).status_code == 302


# --------------------------------------------------------------------------- headers


def test_hsts_only_in_production(monkeypatch, tmp_path, keep_shared_extensions, client):
    assert "Strict-Transport-Security" not in client.get("/login").headers
    monkeypatch.setenv("SECRET_KEY", "a-production-secret-of-enough-length")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'production.sqlite'}")
    production = create_app("production", RATELIMIT_STORAGE_URI="memory://")

    response = production.test_client().get("/login", base_url="https://localhost")

    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_pages_of_a_logged_in_user_and_api_answers_are_not_stored(
    login, api_client, client, office
):
    browser = login(office.superuser)
    api, headers = api_client(office.superuser)

    for response in (
        browser.get(HOME),
        browser.get("/account"),
        browser.get("/settings/does-not-exist"),
        api.get("/api/v1/me", headers=headers),
        api.get("/api/v1/me"),  # 401: an API answer all the same
    ):
        assert response.headers["Cache-Control"] == "no-store", response.request.path
    # Static files may be cached.
    assert "no-store" not in (browser.get("/static/app.css").headers.get("Cache-Control") or "")
    assert "no-store" not in (client.get("/static/app.css").headers.get("Cache-Control") or "")


def test_the_login_redirect_already_is_not_stored(client, office):
    client.get_page("/login")

    response = client.post_form(
        "/login", {"email": office.superuser.email, "password": TEST_PASSWORD}
    )

    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "no-store"
