"""Expiry and reminders at their exact boundaries (a frozen clock and the services' ``now=``),
and the scheduler: ``flask scheduler --once`` and two schedulers running at once."""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from app.admin_settings.models import Administration, AdministrationState
from app.audit import AuditEvent
from app.db import utcnow
from app.extensions import db
from app.outbox import OutboxMessage, filled_in
from app.scheduler import run_all_once
from app.transfers import jobs, offers
from app.transfers.models import ItemState, Transfer, TransferState
from tests.helpers import count, ensure_receivers, fresh
from tests.integration.pages import flash_categories, text_of

API = "/api/v1/transfers"
MIGRATIONS = "/settings/migrations"
T0 = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)


# --------------------------------------------------------------------------- helpers


def offer(build, office, recipients=("super@zuid.example",), now=None, administrations=1):
    chosen = []
    for _ in range(administrations):
        administration = build.administration(office.connection)
        build.document(administration, "approved")
        chosen.append(administration)
    ensure_receivers(recipients)
    transfer, code = offers.create_offer(
        office.superuser,
        administration_ids=[a.id for a in chosen],
        recipient_emails=list(recipients),
        checklist_confirmed=True,
        accept_terms=True,
        origin="tests",
        now=now,
    )
    db.session.commit()
    return transfer, code, chosen


def mails(kind: str, transfer_id: int | None = None) -> list[OutboxMessage]:
    fresh()
    stmt = select(OutboxMessage).where(OutboxMessage.kind == kind)
    if transfer_id is not None:
        stmt = stmt.where(OutboxMessage.ref_id == transfer_id)
    return list(db.session.scalars(stmt.order_by(OutboxMessage.id)))


def states_of(administrations) -> set[AdministrationState]:
    fresh()
    return {db.session.get(Administration, a.id).state for a in administrations}


def outgoing_rows(html: str) -> list[tuple[str, bool]]:
    """(effective state, has a withdraw button) of each row offered by us."""
    match = re.search(r'data-table="outgoing">(.*?)</table>', html, re.DOTALL)
    assert match, "the overview lists our offers"
    rows = re.findall(r"<tr data-transfer-id=.*?</tr>", match.group(1), re.DOTALL)
    return [(re.search(r'data-state="(\w+)"', row).group(1), "/withdraw" in row) for row in rows]


@pytest.fixture
def clock():
    """A frozen clock at ``T0``; ``clock.move_to(moment)`` moves it."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


# --------------------------------------------------------------------------- the expiry moment


def test_one_second_before_expiry_the_offer_is_offered_everywhere_and_can_be_withdrawn(
    clock, build, office, login, api_client
):
    transfer, _code, chosen = offer(build, office)
    assert transfer.expires_at == T0 + timedelta(days=15)
    clock.move_to(transfer.expires_at - SECOND)
    api, headers = api_client(office.superuser)
    browser = login(office.superuser)

    read = api.get(f"{API}/{transfer.id}", headers=headers).get_json()
    rows = outgoing_rows(browser.get_page(MIGRATIONS).get_data(as_text=True))
    withdrawn = api.post(f"{API}/{transfer.id}/withdraw", headers=headers)

    assert read["state"] == "offered"
    assert [i["state"] for i in read["items"]] == ["offered"]
    assert rows == [("offered", True)]
    assert withdrawn.status_code == 200
    assert withdrawn.get_json()["state"] == "withdrawn"
    assert states_of(chosen) == {AdministrationState.ACTIVE}


def test_one_second_after_expiry_the_offer_is_expired_everywhere_without_a_sweep(
    clock, build, office, login, api_client
):
    transfer, _code, chosen = offer(build, office)
    clock.move_to(transfer.expires_at + SECOND)
    api, headers = api_client(office.superuser)
    browser = login(office.superuser)

    read = api.get(f"{API}/{transfer.id}", headers=headers).get_json()
    listed = api.get(API, headers=headers).get_json()["items"]
    found = api.get(API, query_string={"q": "expired"}, headers=headers).get_json()["items"]
    rows = outgoing_rows(browser.get_page(MIGRATIONS).get_data(as_text=True))
    detail = browser.get_page(f"{MIGRATIONS}/{transfer.id}").get_data(as_text=True)

    assert read["state"] == "expired"
    assert [i["state"] for i in read["items"]] == ["expired"]
    assert [(r["state"], r["can_withdraw"]) for r in listed] == [("expired", False)]
    assert [r["transfer_id"] for r in found] == [transfer.id]
    assert rows == [("expired", False)]
    assert 'data-state="expired"' in detail
    assert f"/settings/migrations/{transfer.id}/withdraw" not in detail
    fresh()
    assert db.session.get(Transfer, transfer.id).state is TransferState.OFFERED, "no sweep ran"


def test_at_the_very_moment_of_expiry_the_offer_is_expired(clock, build, office, api_client):
    transfer, _code, _chosen = offer(build, office)
    clock.move_to(transfer.expires_at)
    api, headers = api_client(office.superuser)

    assert api.get(f"{API}/{transfer.id}", headers=headers).get_json()["state"] == "expired"
    assert api.post(f"{API}/{transfer.id}/withdraw", headers=headers).status_code == 409


def test_an_expired_offer_cannot_be_withdrawn_through_the_api(clock, build, office, api_client):
    transfer, _code, chosen = offer(build, office)
    clock.move_to(transfer.expires_at + SECOND)
    office.superuser.language = "en"
    fresh()
    api, headers = api_client(office.superuser)

    response = api.post(f"{API}/{transfer.id}/withdraw", headers=headers)

    assert response.status_code == 409
    assert response.get_json()["message"] == "This offer has expired."
    assert mails("transfer_withdrawn") == []
    assert states_of(chosen) == {AdministrationState.OFFERED}


def test_an_expired_offer_cannot_be_withdrawn_from_the_overview(clock, build, office, login):
    transfer, _code, _chosen = offer(build, office)
    clock.move_to(transfer.expires_at + SECOND)
    office.superuser.language = "en"
    fresh()
    browser = login(office.superuser)
    browser.get_page(MIGRATIONS)

    response = browser.post_form(
        f"{MIGRATIONS}/{transfer.id}/withdraw", {"next": MIGRATIONS}, follow_redirects=True
    )

    html = response.get_data(as_text=True)
    assert flash_categories(html) == ["error"]
    assert "This offer has expired." in text_of(html)
    assert mails("transfer_withdrawn") == []
    assert count(AuditEvent, AuditEvent.action == "transfer_withdrawn") == 0


# --------------------------------------------------------------------------- the sweep


def test_the_sweep_leaves_an_offer_alone_until_its_expiry(build, office):
    transfer, _code, chosen = offer(build, office, now=T0)

    assert jobs.sweep_expired(transfer.expires_at - SECOND) == 0
    fresh()
    assert db.session.get(Transfer, transfer.id).state is TransferState.OFFERED
    assert states_of(chosen) == {AdministrationState.OFFERED}
    assert mails("transfer_expired") == []


def test_the_sweep_marks_an_expired_offer_frees_its_administrations_and_tells_the_requester(
    build, office
):
    transfer, _code, chosen = offer(build, office, now=T0, administrations=2)
    now = transfer.expires_at + SECOND

    done = jobs.sweep_expired(now)

    assert done == 1
    fresh()
    swept = db.session.get(Transfer, transfer.id)
    assert swept.state is TransferState.EXPIRED
    assert swept.ended_at == now
    assert swept.ended_by_id is None
    assert {i.state for i in swept.items} == {ItemState.EXPIRED}
    assert states_of(chosen) == {AdministrationState.ACTIVE}
    expired = mails("transfer_expired")
    assert [(m.to_email, m.ref_id) for m in expired] == [(office.superuser.email, transfer.id)]
    assert count(AuditEvent, AuditEvent.action == "transfer_expired") == 1


def test_the_sweep_marks_an_offer_at_the_very_moment_it_expires(build, office):
    transfer, _code, _chosen = offer(build, office, now=T0)

    assert jobs.sweep_expired(transfer.expires_at) == 1


def test_running_the_sweep_again_does_nothing(build, office):
    transfer, _code, chosen = offer(build, office, now=T0)
    now = transfer.expires_at + SECOND
    assert jobs.sweep_expired(now) == 1

    assert jobs.sweep_expired(now) == 0
    assert jobs.sweep_expired(now + DAY) == 0

    assert len(mails("transfer_expired")) == 1
    assert count(AuditEvent, AuditEvent.action == "transfer_expired") == 1
    assert states_of(chosen) == {AdministrationState.ACTIVE}


def test_the_sweep_leaves_a_withdrawn_offer_alone(build, office):
    transfer, _code, chosen = offer(build, office, now=T0)
    offers.withdraw(office.superuser, transfer.id, origin="tests", now=T0 + DAY)
    db.session.commit()

    assert jobs.sweep_expired(transfer.expires_at + SECOND) == 0
    fresh()
    assert db.session.get(Transfer, transfer.id).state is TransferState.WITHDRAWN
    assert mails("transfer_expired") == []


def test_an_expired_administration_can_be_offered_again_after_the_sweep(build, office):
    transfer, _code, chosen = offer(build, office, now=T0)
    jobs.sweep_expired(transfer.expires_at + SECOND)

    again, _ = offers.create_offer(
        office.superuser,
        administration_ids=[chosen[0].id],
        recipient_emails=["super@zuid.example"],
        checklist_confirmed=True,
        accept_terms=True,
        origin="tests",
        now=transfer.expires_at + DAY,
    )
    db.session.commit()

    assert again.id != transfer.id
    assert states_of(chosen) == {AdministrationState.OFFERED}


# --------------------------------------------------------------------------- reminders


def test_no_reminder_one_second_before_the_reminder_window(build, office):
    transfer, _code, _chosen = offer(build, office, now=T0)

    assert jobs.remind_expiring(transfer.expires_at - 3 * DAY - SECOND) == 0

    assert mails("transfer_reminder") == mails("transfer_reminder_copy") == []
    fresh()
    assert db.session.get(Transfer, transfer.id).reminder_sent_at is None


def test_a_reminder_goes_to_both_sides_from_exactly_three_days_before_expiry(
    build, office, other_office
):
    recipients = [other_office.superuser.email, "ontvanger@zuid.example"]
    transfer, code, _chosen = offer(build, office, recipients=recipients, now=T0)
    now = transfer.expires_at - 3 * DAY

    assert jobs.remind_expiring(now) == 1

    to_recipients = mails("transfer_reminder", transfer.id)
    to_requester = mails("transfer_reminder_copy", transfer.id)
    assert sorted(m.to_email for m in to_recipients) == sorted(recipients)
    assert [m.to_email for m in to_requester] == [office.superuser.email]
    assert all(code in filled_in(m)[0] for m in to_recipients)  # as sent
    fresh()
    assert db.session.get(Transfer, transfer.id).reminder_sent_at == now
    assert count(AuditEvent, AuditEvent.action == "transfer_reminder_sent") == 1


def test_a_reminder_is_never_sent_twice(build, office):
    transfer, _code, _chosen = offer(build, office, now=T0)
    assert jobs.remind_expiring(transfer.expires_at - 2 * DAY) == 1

    assert jobs.remind_expiring(transfer.expires_at - 2 * DAY) == 0
    assert jobs.remind_expiring(transfer.expires_at - SECOND) == 0

    assert len(mails("transfer_reminder")) == 1
    assert len(mails("transfer_reminder_copy")) == 1


def test_no_reminder_for_an_offer_that_has_expired_unswept(build, office):
    transfer, _code, _chosen = offer(build, office, now=T0)

    assert jobs.remind_expiring(transfer.expires_at) == 0
    assert jobs.remind_expiring(transfer.expires_at + SECOND) == 0

    assert mails("transfer_reminder") == mails("transfer_reminder_copy") == []


def test_no_reminder_for_a_withdrawn_offer(build, office):
    transfer, _code, _chosen = offer(build, office, now=T0)
    offers.withdraw(office.superuser, transfer.id, origin="tests", now=T0 + DAY)
    db.session.commit()

    assert jobs.remind_expiring(transfer.expires_at - DAY) == 0

    assert mails("transfer_reminder") == mails("transfer_reminder_copy") == []


# --------------------------------------------------------------------------- the scheduler


def test_flask_scheduler_once_runs_every_job_and_exits_cleanly(runner, build, office):
    due, _code, chosen = offer(build, office, now=utcnow() - timedelta(days=16))
    soon, _code, _ = offer(build, office, now=utcnow() - timedelta(days=13))

    result = runner.invoke(args=["scheduler", "--once"])

    assert result.exit_code == 0, result.output
    fresh()
    assert db.session.get(Transfer, due.id).state is TransferState.EXPIRED
    assert states_of(chosen) == {AdministrationState.ACTIVE}
    assert len(mails("transfer_expired", due.id)) == 1
    assert db.session.get(Transfer, soon.id).reminder_sent_at is not None


def test_two_schedulers_at_once_expire_and_remind_each_offer_exactly_once(
    app, build, office, other_office, caplog
):
    recipients = [other_office.superuser.email, "ontvanger@zuid.example"]
    expiring = [
        offer(build, office, recipients=recipients, now=utcnow() - timedelta(days=16))[0].id
        for _ in range(4)
    ]
    reminding = [
        offer(build, office, recipients=recipients, now=utcnow() - timedelta(days=13))[0].id
        for _ in range(4)
    ]
    fresh()
    start = threading.Barrier(2)
    crashed = []

    def scheduler():
        try:
            start.wait()
            run_all_once(app)
        except Exception as error:  # reported below, in the test's thread
            crashed.append(error)

    caplog.set_level(logging.INFO)
    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert crashed == []
    failures = [
        f"{r.getMessage()}: {r.exc_info[1] if r.exc_info else ''}"
        for r in caplog.records
        if r.levelno >= logging.ERROR
    ]
    assert failures == [], "a scheduler job failed (e.g. database is locked)"
    fresh()
    for transfer_id in expiring:
        transfer = db.session.get(Transfer, transfer_id)
        assert transfer.state is TransferState.EXPIRED
        assert len(mails("transfer_expired", transfer_id)) == 1
        assert len(mails("transfer_reminder", transfer_id)) == 0
        assert (
            count(
                AuditEvent,
                AuditEvent.action == "transfer_expired",
                AuditEvent.object_id == transfer_id,
            )
            == 1
        )
    for transfer_id in reminding:
        transfer = db.session.get(Transfer, transfer_id)
        assert transfer.state is TransferState.OFFERED
        assert sorted(m.to_email for m in mails("transfer_reminder", transfer_id)) == sorted(
            recipients
        )
        assert len(mails("transfer_reminder_copy", transfer_id)) == 1
        assert len(mails("transfer_expired", transfer_id)) == 0
    assert count(Administration, Administration.state == AdministrationState.OFFERED) == 4
