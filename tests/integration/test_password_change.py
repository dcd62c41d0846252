"""Changing one's password: the current one must be known, and every other session of
the user ends on every device (the browser that changed it gets a fresh session)."""

from __future__ import annotations

from sqlalchemy import select

from app.audit import AuditEvent
from app.extensions import db
from app.outbox import OutboxMessage
from tests.conftest import TEST_PASSWORD

HOME = "/settings/administrations"
NEW = "een nieuw lang wachtwoord"


def change(browser, current: str, new: str):
    browser.get_page("/account/password")
    return browser.post_form(
        "/account/password", {"current_password": current, "new_password": new}
    )


def can_log_in(app, email: str, password: str) -> bool:
    fresh = app.test_client()
    fresh.get_page("/login")
    return fresh.post_form("/login", {"email": email, "password": password}).status_code == 302


def test_the_account_page_leads_to_changing_the_password(login, office):
    page = login(office.superuser).get_page("/account").get_data(as_text=True)
    assert 'href="/account/password"' in page


def test_a_changed_password_ends_every_other_session_and_keeps_this_one(
    app, login, new_client, office
):
    here = login(office.superuser)
    elsewhere = login(office.superuser)
    colleague = login(office.user)

    response = change(here, TEST_PASSWORD, NEW)

    assert response.status_code == 302
    assert response.headers["Location"] == "/account"
    assert here.get(HOME).status_code == 200, "the browser that changed it stays logged in"
    gone = elsewhere.get(HOME)
    assert gone.status_code == 302 and gone.headers["Location"].startswith("/login")
    assert colleague.get(HOME).status_code == 200, "another user's session lives on"
    assert can_log_in(app, office.superuser.email, NEW)
    assert not can_log_in(app, office.superuser.email, TEST_PASSWORD)
    (event,) = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "password_changed")
    ).all()
    assert event.actor_id == office.superuser.id
    (mail,) = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "password_changed")
    ).all()
    assert mail.to_email == office.superuser.email


def test_a_wrong_current_password_is_a_form_error_and_changes_nothing(app, login, office):
    here = login(office.superuser)
    elsewhere = login(office.superuser)

    response = change(here, "niet mijn wachtwoord", NEW)

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Dat is niet je huidige wachtwoord." in page
    assert elsewhere.get(HOME).status_code == 200
    assert can_log_in(app, office.superuser.email, TEST_PASSWORD)
    assert not can_log_in(app, office.superuser.email, NEW)


def test_a_short_or_unchanged_new_password_is_refused_with_the_reason(app, login, office):
    here = login(office.superuser)

    short = change(here, TEST_PASSWORD, "kort")
    assert short.status_code == 422
    assert "minstens 12 tekens" in short.get_data(as_text=True)

    same = change(here, TEST_PASSWORD, TEST_PASSWORD)
    assert same.status_code == 422
    assert "Kies een ander wachtwoord dan je huidige." in same.get_data(as_text=True)
    assert can_log_in(app, office.superuser.email, TEST_PASSWORD)


def test_changing_the_password_needs_a_csrf_token(app, login, office):
    here = login(office.superuser)
    response = here.post(
        "/account/password", data={"current_password": TEST_PASSWORD, "new_password": NEW}
    )
    assert response.status_code == 400
    assert can_log_in(app, office.superuser.email, TEST_PASSWORD)
