"""Extending an open offer (``POST /api/v1/transfers/{id}/extend``): fifteen days from
now, at most twice, the same code, the recipients told; never an ended or foreign offer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from app.audit import AuditEvent
from app.extensions import db
from app.outbox import OutboxMessage
from app.transfers import claims, jobs
from app.transfers.domain import TransferState
from app.transfers.models import Transfer
from tests.helpers import count, fresh, offer

API = "/api/v1/transfers"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def offered(clock, build, office, other_office):
    administration = build.administration(office.connection, name="Bakkerij De Korenschoof")
    build.document(administration, "approved")
    return offer(office.superuser, [administration], [other_office.superuser.email])


@pytest.fixture
def noord_api(api_client, office):
    return api_client(office.superuser)


def extend(api, transfer_id):
    client, headers = api
    return client.post(f"{API}/{transfer_id}/extend", headers=headers)


def mails(kind: str) -> list[OutboxMessage]:
    fresh()
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)))


def test_extending_gives_fifteen_days_from_now_and_tells_both_sides(
    clock, offered, noord_api, office, other_office
):
    transfer, _code = offered
    clock.shift(timedelta(days=10))

    response = extend(noord_api, transfer.id)

    assert response.status_code == 200, response.get_json()
    expires = datetime.fromisoformat(response.get_json()["expires_at"])
    assert expires == T0 + timedelta(days=10 + 15)
    assert [m.to_email for m in mails("transfer_extended")] == [other_office.superuser.email]
    assert [m.to_email for m in mails("transfer_extended_copy")] == [office.superuser.email]
    assert count(AuditEvent, AuditEvent.action == "transfer_extended") == 1


def test_the_same_code_works_past_the_old_expiry_once_extended(
    clock, offered, noord_api, other_office
):
    transfer, code = offered
    clock.shift(timedelta(days=14))
    assert extend(noord_api, transfer.id).status_code == 200
    clock.shift(timedelta(days=5))  # 19 days after the offer: the old expiry has passed

    assert jobs.sweep_expired() == 0
    preview = claims.preview(other_office.superuser, code, origin="tests")
    assert preview.transfer.id == transfer.id
    db.session.rollback()


def test_an_offer_is_extended_at_most_twice(clock, offered, noord_api):
    transfer, _code = offered
    for _ in range(2):
        clock.shift(timedelta(days=1))
        assert extend(noord_api, transfer.id).status_code == 200

    refused = extend(noord_api, transfer.id)

    assert refused.status_code == 409
    assert "2" in refused.get_json()["message"]
    assert count(AuditEvent, AuditEvent.action == "transfer_extended") == 2


def test_an_ended_offer_cannot_be_extended(clock, offered, noord_api, office):
    transfer, _code = offered
    client, headers = noord_api
    assert client.post(f"{API}/{transfer.id}/withdraw", headers=headers).status_code == 200

    response = extend(noord_api, transfer.id)

    assert response.status_code == 409
    fresh()
    assert db.session.get(Transfer, transfer.id).state is TransferState.WITHDRAWN
    assert mails("transfer_extended") == []


def test_another_office_cannot_extend_an_offer_it_did_not_make(
    clock, offered, api_client, other_office
):
    transfer, _code = offered
    before = transfer.expires_at

    response = extend(api_client(other_office.superuser), transfer.id)

    assert response.status_code == 404
    fresh()
    assert db.session.get(Transfer, transfer.id).expires_at == before


def test_extending_twice_at_the_same_moment_says_there_is_nothing_to_extend(
    clock, offered, noord_api
):
    transfer, _code = offered
    clock.shift(timedelta(days=1))
    assert extend(noord_api, transfer.id).status_code == 200

    again = extend(noord_api, transfer.id)

    assert again.status_code == 409
    assert "niets te verlengen" in again.get_json()["message"]
    assert count(AuditEvent, AuditEvent.action == "transfer_extended") == 1


def test_the_mailed_link_keeps_working_once_the_offer_is_extended(
    clock, offered, noord_api, login, other_office
):
    from urllib.parse import urlsplit

    from tests.integration.test_outbox import claim_link, code_field, filled_in

    transfer, code = offered
    (sent,) = [m for m in mails("transfer_offered") if m.to_email == other_office.superuser.email]
    parts = urlsplit(claim_link(filled_in(sent)[0]))
    link = f"{parts.path}?{parts.query}"
    clock.shift(timedelta(days=14))
    assert extend(noord_api, transfer.id).status_code == 200
    clock.shift(timedelta(days=5))  # past the expiry the link was made with

    html = login(other_office.superuser).get_page(link).get_data(as_text=True)

    assert code_field(html) == code
    clock.shift(timedelta(days=11))  # past the extended expiry too
    html = login(other_office.superuser).get_page(link).get_data(as_text=True)
    assert code_field(html) == ""


# --------------------------------------------------------------------------- on the page, re-send


def test_the_offer_page_extends_shows_the_reminder_and_sends_the_code_mail_again(
    clock, offered, login, office, other_office
):
    transfer, code = offered
    page_url = f"/settings/migrations/{transfer.id}"
    client = login(office.superuser)
    html = client.get_page(page_url).get_data(as_text=True)
    assert 'id="extend"' in html and 'id="resend"' in html
    assert "herinnering" in html  # when the reminder goes out

    clock.shift(timedelta(days=3))
    extended = client.post_form(f"{page_url}/extend", follow_redirects=True)
    assert "Het aanbod is verlengd tot" in extended.get_data(as_text=True)
    fresh()
    assert db.session.get(Transfer, transfer.id).expires_at == T0 + timedelta(days=3 + 15)

    before = len(mails("transfer_offered"))
    resent = client.post_form(f"{page_url}/resend", follow_redirects=True)
    assert "De codemail is opnieuw naar de ontvangers verstuurd." in resent.get_data(as_text=True)
    again = mails("transfer_offered")
    assert len(again) == before + 1
    assert again[-1].to_email == other_office.superuser.email
    assert count(OutboxMessage, OutboxMessage.kind == "transfer_offered_copy") == 2
    assert count(AuditEvent, AuditEvent.action == "transfer_resent") == 1

    too_soon = client.post_form(f"{page_url}/resend", follow_redirects=True)
    assert "minder dan 60 minuten geleden" in too_soon.get_data(as_text=True)
    assert len(mails("transfer_offered")) == before + 1
    clock.shift(timedelta(minutes=61))
    assert client.post_form(f"{page_url}/resend").status_code == 302
    assert len(mails("transfer_offered")) == before + 2


def test_the_api_sends_the_code_mail_again_at_most_once_an_hour(clock, offered, noord_api):
    transfer, _code = offered
    client, headers = noord_api

    first = client.post(f"{API}/{transfer.id}/resend", headers=headers)
    second = client.post(f"{API}/{transfer.id}/resend", headers=headers)

    assert first.status_code == 200, first.get_json()
    assert second.status_code == 409
    assert len(mails("transfer_offered")) == 2  # the offer's own mail and one again


def test_an_ended_offer_cannot_be_sent_again(clock, offered, noord_api, office):
    from app.transfers import offers

    transfer, _code = offered
    offers.withdraw(office.superuser, transfer.id, origin="tests")
    db.session.commit()
    client, headers = noord_api

    assert client.post(f"{API}/{transfer.id}/resend", headers=headers).status_code == 409
    assert len(mails("transfer_offered")) == 1


def test_another_office_cannot_send_an_offers_mail_again(clock, offered, api_client, other_office):
    transfer, _code = offered
    client, headers = api_client(other_office.superuser)

    assert client.post(f"{API}/{transfer.id}/resend", headers=headers).status_code == 404
    assert len(mails("transfer_offered")) == 1
