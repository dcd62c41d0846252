"""A copy that runs longer than COPY_SLOW_AFTER_MINUTES: both offices read that it takes
longer than usual and that support knows, and support is mailed once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.audit import AuditEvent
from app.db import utcnow
from app.extensions import db
from app.outbox import OutboxMessage
from app.transfers import jobs
from app.transfers.copying import copy_waiting
from tests.helpers import accept_all, count, fresh, offer
from tests.integration.pages import text_of
from tests.integration.test_claim import offerable

SLOW = "duurt langer dan gewoonlijk; support is op de hoogte"
MINUTE = timedelta(minutes=1)


def claimed(build, office, other_office, at):
    transfer, code = offer(office.superuser, [offerable(build, office.connection, documents=4)])
    claim = accept_all(other_office.superuser, transfer, code, other_office.connection, now=at)
    return transfer, claim


def slow_mails():
    fresh()
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "copy_slow")))


def test_a_slow_copy_is_reported_once_to_support_and_shown_to_both_offices(
    app, build, login, office, other_office
):
    support = build.user(None, role="support", email="support@overdracht.example")
    claimed_at = utcnow() - 16 * MINUTE
    transfer, claim = claimed(build, office, other_office, claimed_at)
    claim_page = f"/settings/migrations/claims/{claim.id}"
    assert SLOW not in text_of(login(other_office.superuser).get_page(claim_page).get_data(True))

    assert jobs.report_slow_copies() == 1
    assert jobs.report_slow_copies() == 0, "support hears it once"

    mails = slow_mails()
    assert [m.to_email for m in mails] == [support.email]
    assert mails[0].subject == f"De kopie van overdracht {transfer.id} duurt langer dan gewoonlijk"
    assert f"/support/transfers/{transfer.id}" in mails[0].body_text
    assert count(AuditEvent, AuditEvent.action == "copy_slow") == 1
    for user in (other_office.superuser, office.superuser):
        client = login(user)
        assert SLOW in text_of(client.get_page(claim_page).get_data(as_text=True))
        progress = client.get(f"{claim_page}/progress").get_json()
        assert all(SLOW in i["text"] for i in progress["items"])
        assert all(i["text"].startswith("0 van 4 documenten") for i in progress["items"])

    # Once the copy is done, the pages no longer say it is slow.
    assert copy_waiting() == 1
    done = login(other_office.superuser).get(f"{claim_page}/progress").get_json()
    assert all(SLOW not in i["text"] for i in done["items"])


def test_a_copy_within_the_usual_time_or_already_done_is_not_reported(
    app, build, office, other_office
):
    build.user(None, role="support", email="support@overdracht.example")
    claimed(build, office, other_office, utcnow() - 60 * MINUTE)
    assert copy_waiting() == 1  # that one is done
    fresh_transfer, _claim = claimed(build, office, other_office, utcnow() - 14 * MINUTE)

    assert jobs.report_slow_copies() == 0
    assert slow_mails() == []

    # Two minutes later the fresh one has run 16 minutes: only it is reported.
    assert jobs.report_slow_copies(now=utcnow() + 2 * MINUTE) == 1
    assert [m.ref_id for m in slow_mails()] == [fresh_transfer.id]
