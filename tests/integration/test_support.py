"""The support console: every transfer of every environment, its filters and search, the
stuck view with the reason for each row, revoking and retrying (through the pages and
racing claims and copies), the audit trail, the evidence export, least privilege, and
the demo's two transfers that need support."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta
from html import unescape
from urllib.parse import quote

import pytest
from flask_babel import force_locale
from sqlalchemy import select, update

from app.admin_settings.models import (
    Administration,
    AdministrationState,
    Document,
    Environment,
    Plan,
    Provenance,
)
from app.audit import AuditEvent
from app.auth.models import User
from app.db import utcnow
from app.errors import ServiceError
from app.extensions import db
from app.outbox import OutboxMessage
from app.support import services as support
from app.templating import format_moment
from app.transfers import claims, codes, domain, jobs, offers
from app.transfers.claims import CodeRejected, Decision
from app.transfers.copying import CopyOutcome, copy_item, copy_waiting
from app.transfers.models import (
    Claim,
    ItemState,
    Transfer,
    TransferItem,
    TransferState,
)
from tests.helpers import accept_all as claim
from tests.helpers import count, fresh, offer, spreadsheet
from tests.integration.pages import field_errors, flash_categories, text_of

SUPPORT_EMAIL = "support@overdracht.example"
REVOKED_FLASH = "The transfer has been revoked; both offices have been told why."
ALREADY_ENDED = "This transfer has already ended and cannot be revoked."
NOTHING_TO_RETRY = "Nothing to retry: this transfer has no failed copy."
# Audit events of logging in and of API tokens: not changes to a transfer.
ACCOUNT_ACTIONS = ("login", "login_failed", "api_token_created", "api_token_revoked")


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def support_user(build):
    user = build.user(None, "support", email=SUPPORT_EMAIL, name="Sam Support")
    user.language = "en"
    db.session.commit()
    return user


@pytest.fixture
def console(login, support_user):
    """A browser logged in as support staff (English)."""
    return login(support_user)


@pytest.fixture
def oost(build):
    env = build.environment("Kantoor Oost", office_code="OOST")
    superuser = build.user(env, "superuser", email="super@oost.example", name="Olga Oost")
    return env, superuser, build.connection(env)


def offerable(build, connection, *, documents=2, name=None, code=None):
    """An administration that can be offered: every document decided."""
    administration = build.administration(connection, name=name, code=code)
    for n in range(documents):
        build.document(
            administration,
            "approved" if n % 2 == 0 else "rejected",
            content=f"%PDF-1.4\n% {administration.code} inhoud {n}\n%%EOF\n".encode(),
        )
    return administration


def hang(item_id: int, *, minutes_ago: int = 120) -> None:
    """A worker took the copy ``minutes_ago`` and hangs: it holds the lease for a day."""
    now = utcnow()
    db.session.execute(
        update(TransferItem)
        .where(TransferItem.id == item_id)
        .values(
            updated_at=now - timedelta(minutes=minutes_ago),
            lease_until=now + timedelta(days=1),
            attempts=1,
        )
    )
    db.session.commit()


def fail(item_id: int, error: str = "OperationalError: server closed the connection") -> None:
    """The copy gave up after its last attempt."""
    db.session.execute(
        update(TransferItem)
        .where(TransferItem.id == item_id)
        .values(
            state=ItemState.FAILED,
            last_error=error,
            attempts=5,
            lease_until=None,
            updated_at=utcnow() - timedelta(hours=1),
        )
    )
    db.session.commit()


def listed(html: str) -> list[int]:
    """The transfer ids in the console's table, top to bottom."""
    return [int(i) for i in re.findall(r'<tr data-transfer-id="(\d+)">', html)]


def row_of(html: str, transfer_id: int) -> str:
    match = re.search(rf'<tr data-transfer-id="{transfer_id}">(.*?)</tr>', html, re.DOTALL)
    assert match, f"no row for transfer {transfer_id}"
    return match.group(1)


def reasons_in(html: str) -> list[str]:
    """The texts of the ``ul.reasons`` list in a piece of HTML."""
    match = re.search(r'<ul class="[^"]*\breasons\b[^"]*">(.*?)</ul>', html, re.DOTALL)
    if not match:
        return []
    return [
        unescape(m.strip()) for m in re.findall(r"<li[^>]*>(.*?)</li>", match.group(1), re.DOTALL)
    ]


def badge_state(html: str) -> str:
    """The transfer state badge (``data-state``) of a console row or the transfer page."""
    match = re.search(r'class="badge transfer-[\w-]+" data-state="([\w-]+)"', html)
    assert match, "no state badge"
    return match.group(1)


def audit_rows(html: str) -> list[tuple[str, str]]:
    """(action, object) of every row of an audit table (its ``data-`` attributes)."""
    rows = re.findall(r'<tr data-action="([\w.-]+)" data-object="([^"]*)">', html)
    return [(action, " ".join(obj.split())) for action, obj in rows]


def page_of(client, url: str) -> str:
    response = client.get_page(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def mails(transfer_id: int, kind: str) -> list[OutboxMessage]:
    fresh()
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.ref_id == transfer_id, OutboxMessage.kind == kind)
            .order_by(OutboxMessage.to_email)
        )
    )


def events(action: str, object_id: int | None = None) -> list[AuditEvent]:
    fresh()
    stmt = select(AuditEvent).where(AuditEvent.action == action)
    if object_id is not None:
        stmt = stmt.where(AuditEvent.object_id == object_id)
    return list(db.session.scalars(stmt.order_by(AuditEvent.id)))


def snapshot(transfer_id: int) -> tuple:
    """Everything a refused revoke or retry must leave as it was."""
    fresh()
    transfer = db.session.get(Transfer, transfer_id)
    items = [
        (i.id, i.state, i.attempts, i.lease_until, i.last_error, i.updated_at)
        for i in transfer.items
    ]
    administrations = [
        db.session.get(Administration, i.administration_id).state for i in transfer.items
    ]
    return (
        transfer.state,
        transfer.ended_at,
        items,
        administrations,
        count(OutboxMessage),
        count(AuditEvent, AuditEvent.action.not_in(ACCOUNT_ACTIONS)),
    )


# --------------------------------------------------------------------------- access


SUPPORT_PAGES = (
    "/support",
    "/support?stuck=1",
    "/support/environments",
    "/support/audit",
    "/support/audit.csv",
    "/support/transfers/{id}",
    "/support/transfers/{id}/evidence.csv",
)


def test_the_console_does_not_exist_for_anyone_but_support_staff(
    login, client, build, office, other_office, support_user
):
    administration = offerable(build, office.connection)
    transfer, _code = offer(office.superuser, [administration])
    before = snapshot(transfer.id)
    for user in (office.superuser, office.user, office.authorizer, other_office.superuser):
        browser = login(user)
        for url in SUPPORT_PAGES:
            response = browser.get(url.format(id=transfer.id))
            assert response.status_code == 404, (user.email, url, response.status_code)
        for action, data in (("revoke", {"reason": "Een geldige reden"}), ("retry", {})):
            response = browser.post_form(f"/support/transfers/{transfer.id}/{action}", data)
            assert response.status_code == 404, (user.email, action)
    for url in SUPPORT_PAGES:
        response = client.get(url.format(id=transfer.id))
        assert response.status_code == 302, url
        assert "/login" in response.headers["Location"]
    assert snapshot(transfer.id) == before
    # Support staff land in the console after logging in.
    response = login(support_user).get("/")
    assert response.headers["Location"].endswith("/support")


# --------------------------------------------------------------------------- the list


def test_the_console_lists_every_environments_transfers_newest_first_with_their_states(
    console, build, office, other_office, oost
):
    oost_env, oost_super, oost_connection = oost
    now = utcnow()
    noord_offer, _ = offer(
        office.superuser, [offerable(build, office.connection)], now=now - timedelta(hours=3)
    )
    oost_offer, oost_code = offer(
        oost_super, [offerable(build, oost_connection)], now=now - timedelta(hours=2)
    )
    claim(other_office.superuser, oost_offer, oost_code, other_office.connection)
    zuid_offer, _ = offer(
        other_office.superuser,
        [offerable(build, other_office.connection)],
        recipients=["super@oost.example"],
        now=now - timedelta(hours=1),
    )

    html = page_of(console, "/support")

    assert listed(html) == [zuid_offer.id, oost_offer.id, noord_offer.id]
    noord_row = row_of(html, noord_offer.id)
    assert "Kantoor Noord" in noord_row and "super@noord.example" in noord_row
    assert "super@zuid.example" in noord_row  # not claimed yet: whom it was sent to
    assert badge_state(noord_row) == "offered"
    oost_row = row_of(html, oost_offer.id)
    assert "Kantoor Oost" in oost_row and "Kantoor Zuid" in oost_row
    assert badge_state(oost_row) == "claiming"
    assert 'data-item-state="claiming"' in oost_row
    assert badge_state(row_of(html, zuid_offer.id)) == "offered"


@pytest.fixture
def every_state(build, office, other_office, support_user, monkeypatch):
    """One transfer in each state the console filters on, by name."""
    monkeypatch.setattr("app.transfers.notifications.offer_made", lambda *a, **k: None)
    now = utcnow()
    made = {}

    def new(name, *, claimed=False, days_ago=0):
        administration = build.administration(office.connection, name=f"Administratie {name}")
        transfer, code = offer(
            office.superuser, [administration], now=now - timedelta(days=days_ago)
        )
        if claimed:
            claim(other_office.superuser, transfer, code, other_office.connection)
        made[name] = transfer.id
        return transfer

    new("offered")
    new("claiming", claimed=True)
    completed = new("completed", claimed=True)
    assert copy_item(completed.items[0].id) is CopyOutcome.COPIED
    withdrawn = new("withdrawn")
    offers.withdraw(office.superuser, withdrawn.id, origin="tests")
    db.session.commit()
    new("expired", days_ago=20)
    assert jobs.sweep_expired() == 1
    new("unswept", days_ago=20)  # past its expiry; no sweep has run since
    revoked = new("revoked")
    support.revoke(support_user, revoked.id, "Dubbel aangeboden", origin="tests")
    db.session.commit()
    failed = new("failed", claimed=True)
    fail(failed.items[0].id)
    return made


STATE_FILTERS = {
    "offered": {"offered"},
    "claiming": {"claiming", "failed"},
    "completed": {"completed"},
    "withdrawn": {"withdrawn"},
    "expired": {"expired", "unswept"},
    "revoked": {"revoked"},
    "failed": {"failed"},
}


def test_the_state_filter_lists_exactly_the_transfers_in_each_state(console, every_state):
    assert set(STATE_FILTERS) == set(support.FILTER_STATES)
    for state, expected in STATE_FILTERS.items():
        html = page_of(console, f"/support?state={state}")

        assert set(listed(html)) == {every_state[name] for name in expected}, state
        assert f'<option value="{state}" selected>' in html, state
    # A state that does not exist filters nothing.
    assert set(listed(page_of(console, "/support?state=bogus"))) == set(every_state.values())


def test_each_transfer_shows_the_state_people_see(console, every_state):
    html = page_of(console, "/support")

    assert set(listed(html)) == set(every_state.values())
    shown = {name: badge_state(row_of(html, tid)) for name, tid in every_state.items()}
    assert shown == {
        "offered": "offered",
        "claiming": "claiming",
        "completed": "completed",
        "withdrawn": "withdrawn",
        "expired": "expired",
        "unswept": "expired",  # dead the moment it expired, swept or not
        "revoked": "revoked",
        "failed": "failed",  # a failed copy says so, not "being copied"
    }
    assert 'data-item-state="failed"' in row_of(html, every_state["failed"])


def test_the_source_and_target_filters_list_only_transfers_from_or_to_that_environment(
    console, build, office, other_office, oost
):
    oost_env, oost_super, oost_connection = oost
    noord_open, _ = offer(office.superuser, [offerable(build, office.connection)])
    noord_claimed, code = offer(office.superuser, [offerable(build, office.connection)])
    claim(other_office.superuser, noord_claimed, code, other_office.connection)
    oost_claimed, code = offer(oost_super, [offerable(build, oost_connection)])
    claim(other_office.superuser, oost_claimed, code, other_office.connection)
    zuid_claimed, code = offer(
        other_office.superuser,
        [offerable(build, other_office.connection)],
        recipients=["super@oost.example"],
    )
    claim(oost_super, zuid_claimed, code, oost_connection)
    noord, zuid = office.environment.id, other_office.environment.id

    def ids(query):
        return set(listed(page_of(console, f"/support?{query}")))

    assert ids(f"source={noord}") == {noord_open.id, noord_claimed.id}
    assert ids(f"source={oost_env.id}") == {oost_claimed.id}
    assert ids(f"target={zuid}") == {noord_claimed.id, oost_claimed.id}
    assert ids(f"target={oost_env.id}") == {zuid_claimed.id}
    assert ids(f"source={noord}&target={zuid}") == {noord_claimed.id}
    assert ids(f"source={zuid}&target={zuid}") == set()


def test_the_age_filter_lists_only_transfers_offered_more_than_that_many_days_ago(
    console, build, office
):
    now = utcnow()
    old, _ = offer(office.superuser, [offerable(build, office.connection)], now=now - timedelta(10))
    recent, _ = offer(
        office.superuser, [offerable(build, office.connection)], now=now - timedelta(3)
    )
    new, _ = offer(office.superuser, [offerable(build, office.connection)])

    assert listed(page_of(console, "/support?older_than=7")) == [old.id]
    assert listed(page_of(console, "/support?older_than=2")) == [recent.id, old.id]
    assert listed(page_of(console, "/support?older_than=11")) == []
    assert listed(page_of(console, "/support?older_than=")) == [new.id, recent.id, old.id]


def test_search_finds_transfers_by_administration_environment_or_e_mail(
    console, build, office, other_office, oost
):
    oost_env, oost_super, oost_connection = oost
    korrel = build.administration(office.connection, name="Bakkerij De Korrel", code="4711")
    by_name, _ = offer(office.superuser, [korrel])
    by_recipient, _ = offer(
        office.superuser,
        [build.administration(office.connection, name="Garage Vos")],
        recipients=["boekhouder@elders.example"],
    )
    zuid_boss = build.user(other_office.environment, "superuser", email="baas@andere.example")
    by_target, code = offer(
        oost_super,
        [build.administration(oost_connection, name="Kapper")],
        recipients=["baas@andere.example"],
    )
    claim(zuid_boss, by_target, code, other_office.connection)
    contact = db.session.get(Administration, by_recipient.items[0].administration_id)

    def found(q):
        return set(listed(page_of(console, f"/support?q={q}")))

    assert found("korrel") == {by_name.id}
    assert found("BAKKERIJ de") == {by_name.id}
    assert found("4711") == {by_name.id}
    assert found("boekhouder@elders.example") == {by_recipient.id}
    assert found(contact.contact_email.upper()) == {by_recipient.id}
    assert found("super@noord.example") == {by_name.id, by_recipient.id}
    assert found("Kantoor Oost") == {by_target.id}  # its source environment
    assert found("kantoor zuid") == {by_target.id}  # its target environment
    assert found("super@oost.example") == {by_target.id}
    assert found("baas@andere") == {by_target.id}
    html = page_of(console, "/support?q=niets-dat-zo-heet")
    assert listed(html) == []
    assert "No transfers match." in text_of(html)


def test_search_finds_transfers_by_code_code_group_or_a_day_as_shown(
    console, build, office, other_office
):
    old, old_code = offer(
        office.superuser,
        [build.administration(office.connection, name="Oud BV")],
        now=utcnow() - timedelta(days=40),
    )
    new, new_code = offer(office.superuser, [build.administration(office.connection)])

    def found(q):
        return set(listed(page_of(console, f"/support?q={quote(q)}")))

    assert found(new_code) == {new.id}
    assert found(new_code.replace("-", " ").lower()) == {new.id}
    assert found(old_code.split("-")[2]) == {old.id}  # one group, as the offer shows it
    for language in ("en", "nl"):
        with force_locale(language):
            shown = format_moment(old.created_at, "medium")
        assert found(shown) == {old.id}, shown  # "1 Oct 2026, 09:15" / "1 okt 2026, 09:15"
        assert found(shown.split(",")[0]) == {old.id}


def test_the_console_shows_25_transfers_a_page_and_the_pager_keeps_the_filters(
    console, build, office, monkeypatch
):
    monkeypatch.setattr("app.transfers.notifications.offer_made", lambda *a, **k: None)
    now = utcnow()
    ids = []
    for n in range(27):
        transfer, _ = offer(
            office.superuser,
            [build.administration(office.connection)],
            now=now - timedelta(minutes=n),
        )
        ids.append(transfer.id)  # newest first

    first = page_of(console, "/support")
    second = page_of(console, "/support?page=2")

    assert listed(first) == ids[:25]
    assert listed(second) == ids[25:]
    assert "Page 1 of 2" in text_of(first)
    assert 'href="/support?page=2" rel="next"' in first
    filtered = page_of(console, "/support?state=offered&q=noord")
    assert listed(filtered) == ids[:25]
    next_link = re.search(r'href="([^"]+)" rel="next"', filtered).group(1)
    assert "state=offered" in next_link and "q=noord" in next_link and "page=2" in next_link
    assert listed(page_of(console, unescape(next_link))) == ids[25:]


# --------------------------------------------------------------------------- stuck


def test_the_stuck_view_lists_every_kind_of_stuck_transfer_each_with_its_reason(
    console, build, office, other_office
):
    now = utcnow()
    copying_long, code = offer(office.superuser, [offerable(build, office.connection)])
    claim(other_office.superuser, copying_long, code, other_office.connection)
    hang(copying_long.items[0].id, minutes_ago=120)
    copying_now, code = offer(office.superuser, [offerable(build, office.connection)])
    claim(other_office.superuser, copying_now, code, other_office.connection)
    hang(copying_now.items[0].id, minutes_ago=10)
    failed, code = offer(office.superuser, [offerable(build, office.connection)])
    claim(other_office.superuser, failed, code, other_office.connection)
    fail(failed.items[0].id, "OperationalError: the disk is full")
    unswept, _ = offer(
        office.superuser, [offerable(build, office.connection)], now=now - timedelta(days=20)
    )
    just_expired, _ = offer(office.superuser, [offerable(build, office.connection)])
    expiring, _ = offer(office.superuser, [offerable(build, office.connection)])
    for transfer, expires_at in ((just_expired, now), (expiring, now + timedelta(hours=1))):
        db.session.execute(
            update(Transfer).where(Transfer.id == transfer.id).values(expires_at=expires_at)
        )
    db.session.commit()
    pending = offerable(build, office.connection, name="Bloemenhuis Zon")
    with_pending, _ = offer(office.superuser, [pending])
    build.document(pending, "pending")  # added straight into the database after the offer
    workflowed = offerable(build, office.connection, name="Hoveniers Groen")
    with_workflow, _ = offer(office.superuser, [workflowed])
    build.workflow(workflowed, active=True)
    inactive = offerable(build, office.connection, name="Slagerij Mals")
    healthy, _ = offer(office.superuser, [inactive])
    build.workflow(inactive, active=False)  # an inactive workflow blocks nothing
    done, code = offer(office.superuser, [offerable(build, office.connection)])
    claim(other_office.superuser, done, code, other_office.connection)
    assert copy_item(done.items[0].id) is CopyOutcome.COPIED

    html = page_of(console, "/support?stuck=1")

    expected = {
        copying_long.id: ["Being copied for more than 30 minutes"],
        failed.id: ["A copy failed: OperationalError: the disk is full"],
        unswept.id: ["Past its expiry date, but not yet marked expired"],
        just_expired.id: ["Past its expiry date, but not yet marked expired"],
        with_pending.id: ["An offered administration has gained a blocker: Bloemenhuis Zon"],
        with_workflow.id: ["An offered administration has gained a blocker: Hoveniers Groen"],
    }
    assert set(listed(html)) == set(expected)
    for transfer_id, reasons in expected.items():
        assert reasons_in(row_of(html, transfer_id)) == reasons, transfer_id
    assert 'aria-current="page">Stuck<' in html
    # The full list says why too, and shows the healthy ones without a reason.
    everything = page_of(console, "/support")
    assert set(listed(everything)) == set(expected) | {
        copying_now.id,
        healthy.id,
        done.id,
        expiring.id,
    }
    assert reasons_in(row_of(everything, expiring.id)) == []
    assert reasons_in(row_of(everything, healthy.id)) == []
    assert reasons_in(row_of(everything, copying_now.id)) == []
    assert reasons_in(row_of(everything, failed.id)) == expected[failed.id]


def test_a_copy_counts_as_stuck_once_it_is_older_than_the_configured_minutes(
    app, console, build, office, other_office, monkeypatch
):
    items = {}
    for minutes in (29, 31):
        transfer, code = offer(office.superuser, [offerable(build, office.connection)])
        claim(other_office.superuser, transfer, code, other_office.connection)
        hang(transfer.items[0].id, minutes_ago=minutes)
        items[minutes] = transfer.id

    assert listed(page_of(console, "/support?stuck=1")) == [items[31]]

    monkeypatch.setitem(app.config, "SUPPORT_STUCK_AFTER_MINUTES", 20)
    html = page_of(console, "/support?stuck=1")
    assert set(listed(html)) == {items[29], items[31]}
    assert reasons_in(row_of(html, items[29])) == ["Being copied for more than 20 minutes"]


def test_the_stuck_view_says_so_when_nothing_is_stuck(console, build, office):
    offer(office.superuser, [offerable(build, office.connection)])

    html = page_of(console, "/support?stuck=1")

    assert listed(html) == []
    assert "Nothing is stuck." in text_of(html)


# --------------------------------------------------------------------------- revoke


def revoke_on_page(console, transfer_id: int, reason: str):
    console.get_page(f"/support/transfers/{transfer_id}")
    return console.post_form(f"/support/transfers/{transfer_id}/revoke", {"reason": reason})


def test_revoking_an_open_offer_ends_it_frees_its_administrations_and_tells_both_sides(
    console, build, office, other_office, support_user
):
    first = offerable(build, office.connection)
    second = offerable(build, office.connection)
    transfer, code = offer(
        office.superuser, [first, second], recipients=["super@zuid.example", "collega@zuid.example"]
    )
    reason = "De klant heeft de overstap afgeblazen."

    response = revoke_on_page(console, transfer.id, reason)

    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/support/transfers/{transfer.id}")
    html = page_of(console, f"/support/transfers/{transfer.id}")
    assert REVOKED_FLASH in text_of(html)
    assert badge_state(html) == "revoked"
    assert 'id="revoke"' not in html  # nothing left to revoke
    fresh()
    transfer = db.session.get(Transfer, transfer.id)
    assert transfer.state is TransferState.REVOKED
    assert transfer.ended_by_id == support_user.id
    assert transfer.ended_at is not None
    assert [i.state for i in transfer.items] == [ItemState.REVOKED, ItemState.REVOKED]
    for administration in (first, second):
        assert db.session.get(Administration, administration.id).state is (
            AdministrationState.ACTIVE
        )
    sent = mails(transfer.id, "transfer_revoked")
    assert [m.to_email for m in sent] == [
        "collega@zuid.example",
        "super@noord.example",
        "super@zuid.example",
    ]
    for message in sent:
        assert reason in message.body_text
    (event,) = events("transfer_revoked", transfer.id)
    assert event.actor_email == SUPPORT_EMAIL
    assert event.actor_role == "support"
    assert event.environment_id == office.environment.id
    assert event.details["reason"] == reason
    assert sorted(event.details["revoked_item_ids"]) == sorted(i.id for i in transfer.items)
    # The code is dead: the receiver who tries it gets the neutral answer.
    with pytest.raises(CodeRejected):
        claim(other_office.superuser, transfer, code, other_office.connection)
    db.session.rollback()
    # The freed administrations can be offered again.
    again, _ = offer(office.superuser, [first, second])
    assert again.state is TransferState.OFFERED


def test_revoking_a_stuck_claim_tells_the_claimer_and_the_offering_superuser_and_copies_nothing(
    console, build, office, other_office
):
    administration = offerable(build, office.connection)
    transfer, code = offer(
        office.superuser,
        [administration],
        recipients=["super@zuid.example", "collega@zuid.example"],
    )
    claim(other_office.superuser, transfer, code, other_office.connection)
    hang(transfer.items[0].id)

    revoke_on_page(console, transfer.id, "De kopie hangt al twee uur.")

    fresh()
    assert db.session.get(Transfer, transfer.id).state is TransferState.REVOKED
    item = db.session.get(TransferItem, transfer.items[0].id)
    assert item.state is ItemState.REVOKED
    assert item.lease_until is None
    assert db.session.get(Administration, administration.id).state is AdministrationState.ACTIVE
    assert [m.to_email for m in mails(transfer.id, "transfer_revoked")] == [
        "super@noord.example",
        "super@zuid.example",
    ]
    assert copy_waiting(now=utcnow() + timedelta(days=2)) == 0
    assert count(Administration, Administration.environment_id == other_office.environment.id) == 0


def test_a_revoke_keeps_the_copies_that_finished_and_ends_the_rest(
    console, build, office, other_office
):
    copied = offerable(build, office.connection, documents=3)
    waiting = offerable(build, office.connection)
    transfer, code = offer(office.superuser, [copied, waiting])
    claim(other_office.superuser, transfer, code, other_office.connection)
    copied_item, waiting_item = (i.id for i in transfer.items)
    assert copy_item(copied_item) is CopyOutcome.COPIED
    hang(waiting_item)

    revoke_on_page(console, transfer.id, "De tweede kopie hangt.")

    fresh()
    assert db.session.get(Transfer, transfer.id).state is TransferState.REVOKED
    assert db.session.get(TransferItem, copied_item).state is ItemState.MIGRATED
    assert db.session.get(TransferItem, waiting_item).state is ItemState.REVOKED
    assert db.session.get(Administration, copied.id).state is AdministrationState.MIGRATED
    assert db.session.get(Administration, waiting.id).state is AdministrationState.ACTIVE
    target = db.session.get(TransferItem, copied_item).target_administration_id
    assert count(Document, Document.administration_id == target) == 3
    (event,) = events("transfer_revoked", transfer.id)
    assert event.details["revoked_item_ids"] == [waiting_item]


BAD_REASONS = {
    "": "Give the reason for revoking.",
    "      ": "Give the reason for revoking.",
    "kort": "Give the reason in 5 to 1,000 characters.",
    "x" * 1001: "Give the reason in 5 to 1,000 characters.",
}


def test_a_revoke_without_a_proper_reason_is_refused_and_changes_nothing(console, build, office):
    transfer, _ = offer(office.superuser, [offerable(build, office.connection)])
    before = snapshot(transfer.id)
    for reason, message in BAD_REASONS.items():
        response = revoke_on_page(console, transfer.id, reason)

        assert response.status_code == 422, repr(reason)
        html = response.get_data(as_text=True)
        assert field_errors(html, "reason") == [message], repr(reason)
        assert badge_state(html) == "offered"
        assert snapshot(transfer.id) == before, repr(reason)


def test_revoking_a_transfer_that_has_already_ended_says_so_and_changes_nothing(
    console, build, office, other_office, support_user
):
    now = utcnow()
    ended = {}
    for ending in ("completed", "withdrawn", "expired", "revoked"):
        transfer, code = offer(
            office.superuser,
            [offerable(build, office.connection)],
            now=now - timedelta(days=20) if ending == "expired" else None,
        )
        ended[ending] = transfer.id
        if ending == "completed":
            claim(other_office.superuser, transfer, code, other_office.connection)
            assert copy_waiting() == 1
        elif ending == "withdrawn":
            offers.withdraw(office.superuser, transfer.id, origin="tests")
            db.session.commit()
        elif ending == "expired":
            assert jobs.sweep_expired() == 1
        else:
            support.revoke(support_user, transfer.id, "De eerste keer", origin="tests")
            db.session.commit()

    for ending, transfer_id in ended.items():
        before = snapshot(transfer_id)

        response = revoke_on_page(console, transfer_id, "Nog een keer intrekken")

        assert response.status_code == 302, ending
        html = page_of(console, f"/support/transfers/{transfer_id}")
        assert ALREADY_ENDED in text_of(html), ending
        assert flash_categories(html) == ["error"], ending
        assert badge_state(html) == ending
        assert snapshot(transfer_id) == before, ending


def test_revoking_retrying_or_reading_a_transfer_that_does_not_exist_is_404(console, build, office):
    transfer, _ = offer(office.superuser, [offerable(build, office.connection)])
    missing = transfer.id + 1000
    before = snapshot(transfer.id)
    console.get_page("/support")

    assert console.get(f"/support/transfers/{missing}").status_code == 404
    assert console.get(f"/support/transfers/{missing}/evidence.csv").status_code == 404
    assert (
        console.post_form(f"/support/transfers/{missing}/revoke", {"reason": "Bestaat niet"})
    ).status_code == 404
    assert console.post_form(f"/support/transfers/{missing}/revoke", {}).status_code == 404
    assert console.post_form(f"/support/transfers/{missing}/retry").status_code == 404
    assert snapshot(transfer.id) == before


def test_a_revoke_without_the_forms_csrf_token_is_refused(console, build, office):
    transfer, _ = offer(office.superuser, [offerable(build, office.connection)])
    before = snapshot(transfer.id)

    response = console.post(
        f"/support/transfers/{transfer.id}/revoke", data={"reason": "Zonder token"}
    )

    assert response.status_code in (400, 422)
    assert snapshot(transfer.id) == before


# --------------------------------------------------------------------------- retry


def test_a_retry_queues_the_failed_copy_and_the_workers_then_make_exactly_one_complete_copy(
    app, console, build, office, other_office
):
    administration = offerable(build, office.connection, documents=4)
    transfer, code = offer(office.superuser, [administration])
    claim(other_office.superuser, transfer, code, other_office.connection)
    item_id = transfer.items[0].id
    # A real failure: the receiving environment lost its premium plan during the copy.
    other_office.environment.plan = Plan.STANDARD
    db.session.commit()
    assert copy_waiting() == 0
    fresh()
    assert db.session.get(TransferItem, item_id).state is ItemState.FAILED
    html = page_of(console, "/support?stuck=1")
    assert listed(html) == [transfer.id]
    assert reasons_in(row_of(html, transfer.id)) == [
        "A copy failed: The receiving environment no longer has the premium plan."
    ]
    # The list says the copy failed, not that it is being copied.
    assert 'data-state="failed">Failed<' in row_of(html, transfer.id)
    assert 'id="retry"' in page_of(console, f"/support/transfers/{transfer.id}")
    other_office.environment.plan = Plan.PREMIUM
    db.session.commit()

    response = console.post_form(f"/support/transfers/{transfer.id}/retry")

    assert response.status_code == 302
    html = page_of(console, f"/support/transfers/{transfer.id}")
    assert "1 failed copy queued again." in text_of(html)
    fresh()
    item = db.session.get(TransferItem, item_id)
    assert item.state is ItemState.CLAIMING
    assert item.attempts == 0
    assert item.last_error is None
    (event,) = events("copy_retried", transfer.id)
    assert event.actor_email == SUPPORT_EMAIL
    assert event.details["item_ids"] == [item_id]
    assert listed(page_of(console, "/support?stuck=1")) == []

    outcomes = race(lambda: copy_waiting(), lambda: copy_waiting(), lambda: copy_waiting())

    assert [o for o in outcomes if o[0] == "raised"] == [], outcomes
    assert sum(o[1] for o in outcomes) == 1
    fresh()
    item = db.session.get(TransferItem, item_id)
    assert item.state is ItemState.MIGRATED
    assert count(Provenance, Provenance.transfer_item_id == item_id) == 1
    copies = db.session.scalars(
        select(Administration).where(
            Administration.environment_id == other_office.environment.id,
            Administration.code == administration.code,
        )
    ).all()
    assert [c.id for c in copies] == [item.target_administration_id]
    source = sorted(
        db.session.scalars(
            select(Document.blob_key).where(Document.administration_id == administration.id)
        )
    )
    target = sorted(
        db.session.scalars(
            select(Document.blob_key).where(Document.administration_id == copies[0].id)
        )
    )
    assert target == source and len(source) == 4
    assert db.session.get(Transfer, transfer.id).state is TransferState.COMPLETED
    assert db.session.get(Administration, administration.id).state is (AdministrationState.MIGRATED)
    assert copy_waiting(now=utcnow() + timedelta(days=1)) == 0


def test_retrying_a_transfer_without_a_failed_copy_says_so_and_changes_nothing(
    console, build, office, other_office
):
    situations = {}
    for situation in ("offered", "claiming", "completed"):
        transfer, code = offer(office.superuser, [offerable(build, office.connection)])
        situations[situation] = transfer.id
        if situation != "offered":
            claim(other_office.superuser, transfer, code, other_office.connection)
        if situation == "claiming":
            hang(transfer.items[0].id)
        if situation == "completed":
            assert copy_waiting() == 1

    for situation, transfer_id in situations.items():
        before = snapshot(transfer_id)

        response = console.post_form(f"/support/transfers/{transfer_id}/retry")

        assert response.status_code == 302, situation
        html = page_of(console, f"/support/transfers/{transfer_id}")
        assert NOTHING_TO_RETRY in text_of(html), situation
        assert flash_categories(html) == ["error"], situation
        assert 'id="retry"' not in html, situation
        assert snapshot(transfer_id) == before, situation
    assert events("copy_retried") == []


# --------------------------------------------------------------------------- audit trail


def copied_transfer(build, office, other_office, documents=3):
    administration = offerable(build, office.connection, documents=documents)
    transfer, code = offer(office.superuser, [administration])
    claim(other_office.superuser, transfer, code, other_office.connection)
    assert copy_waiting() == 1
    fresh()
    return db.session.get(Transfer, transfer.id), administration


def test_the_transfer_page_shows_its_own_audit_trail_and_filters_it_by_action(
    console, build, office, other_office
):
    transfer, _ = copied_transfer(build, office, other_office)
    other, _ = offer(office.superuser, [offerable(build, office.connection)])
    item_id = transfer.items[0].id
    mail_ids = {
        m.id
        for m in db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.ref_id == transfer.id)
        )
    }

    html = page_of(console, f"/support/transfers/{transfer.id}")

    rows = audit_rows(html)
    assert {action for action, _obj in rows} == {
        "transfer_offered",
        "mail_queued",
        "claim_submitted",
        "transfer_claimed",
        "administration_migrated",
        "transfer_completed",
    }
    allowed = {f"transfer {transfer.id}", f"transfer_item {item_id}"} | {
        f"outbox_message {i}" for i in mail_ids
    }
    assert {obj for _action, obj in rows} <= allowed
    assert f"transfer {other.id}" not in {obj for _action, obj in rows}
    assert len(rows) == count(
        AuditEvent,
        (
            (AuditEvent.object_type == "transfer") & (AuditEvent.object_id == transfer.id)
            | (AuditEvent.object_type == "transfer_item") & (AuditEvent.object_id == item_id)
            | (AuditEvent.object_type == "outbox_message") & AuditEvent.object_id.in_(mail_ids)
        ),
    )

    filtered = audit_rows(
        page_of(console, f"/support/transfers/{transfer.id}?action=administration_migrated")
    )
    assert filtered == [("administration_migrated", f"transfer_item {item_id}")]


def test_the_audit_trail_of_an_environment_lists_its_events_only_and_filters_them_by_action(
    console, build, office, other_office
):
    copied_transfer(build, office, other_office)
    offer(office.superuser, [offerable(build, office.connection)])
    zuid = other_office.environment.id

    def expected(*where):
        fresh()
        return sorted(
            (e.action, f"{e.object_type} {e.object_id or ''}".strip())
            for e in db.session.scalars(select(AuditEvent).where(*where))
        )

    html = page_of(console, f"/support/audit?environment={zuid}")
    assert sorted(audit_rows(html)) == expected(AuditEvent.environment_id == zuid)
    assert {"claim_submitted", "administration_migrated"} <= {a for a, _o in audit_rows(html)}
    assert "transfer_offered" not in {a for a, _o in audit_rows(html)}
    assert f'<option value="{zuid}" selected>' in html

    noord_offers = audit_rows(
        page_of(
            console,
            f"/support/audit?environment={office.environment.id}&action=transfer_offered",
        )
    )
    assert sorted(noord_offers) == expected(
        AuditEvent.environment_id == office.environment.id,
        AuditEvent.action == "transfer_offered",
    )
    assert len(noord_offers) == 2

    everything = audit_rows(page_of(console, "/support/audit?action=transfer_claimed"))
    assert sorted(everything) == expected(AuditEvent.action == "transfer_claimed")
    assert len(everything) == 1


# --------------------------------------------------------------------------- evidence


def evidence_rows(console, transfer_id: int) -> list[dict]:
    response = console.get(f"/support/transfers/{transfer_id}/evidence.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert f"evidence-transfer-{transfer_id}.csv" in response.headers["Content-Disposition"]
    block, rows = spreadsheet(response.get_data(as_text=True))
    assert block["Offering office"] == "Kantoor Noord"
    assert int(block["Lines"]) == len(rows)
    # The support console reads English here; the headers are in the reader's language.
    return [{k.lower(): v for k, v in row.items()} for row in rows]


def test_the_evidence_holds_the_offer_the_acceptance_every_step_and_a_match_per_document(
    app, console, build, office, other_office
):
    transfer, administration = copied_transfer(build, office, other_office, documents=5)

    rows = evidence_rows(console, transfer.id)

    sections = [r["section"] for r in rows]
    (offered,) = [r for r in rows if r["section"] == "offer"]
    assert offered["actor"] == "super@noord.example"
    assert offered["subject"] == "Kantoor Noord"
    assert offered["time"] == transfer.created_at.isoformat()
    assert f"terms {app.config['TRANSFER_TERMS_VERSION']}" in offered["detail"]
    assert "super@zuid.example" in offered["detail"]
    (accepted,) = [r for r in rows if r["section"] == "acceptance"]
    assert accepted["actor"] == "super@zuid.example"
    assert accepted["subject"] == "Kantoor Zuid"
    assert f"terms {app.config['TRANSFER_TERMS_VERSION']}" in accepted["detail"]
    assert "fee 25.00 EUR per administration" in accepted["detail"]
    # Each step in words, as on the audit page.
    steps = {r["action"]: r for r in rows if r["section"] == "step"}
    assert steps["Transfer offered"]["actor"] == "super@noord.example"
    assert steps["Transfer offered"]["role"] == "Superuser"
    assert "to Kantoor Zuid" in steps["Transfer offered"]["subject"]
    assert steps["Claim submitted"]["actor"] == "super@zuid.example"
    assert steps["Administration copied"]["actor"] == "Background job"
    assert "Transfer completed" in steps and "E-mail queued" in steps
    assert not any("_" in action for action in steps), "no action codes"
    times = [r["time"] for r in rows if r["section"] == "step"]
    assert times == sorted(times) and all(times)
    documents = [r for r in rows if r["section"] == "document"]
    assert len(documents) == 5
    assert {r["action"] for r in documents} == {"match"}
    source_ids = set(
        db.session.scalars(
            select(Document.id).where(Document.administration_id == administration.id)
        )
    )
    assert {int(re.search(r"document (\d+) →", r["subject"]).group(1)) for r in documents} == (
        source_ids
    )
    (item,) = [r for r in rows if r["section"] == "item"]
    assert item["action"] == "migrated" and "documents 5" in item["detail"]
    assert sections[0] == "offer"


def test_the_evidence_of_a_revoked_offer_has_no_acceptance_and_no_documents(
    console, build, office, support_user
):
    transfer, _ = offer(office.superuser, [offerable(build, office.connection)])
    support.revoke(support_user, transfer.id, "Verkeerd kantoor gekozen", origin="tests")
    db.session.commit()

    rows = evidence_rows(console, transfer.id)

    assert [r for r in rows if r["section"] in ("acceptance", "document")] == []
    (revoked,) = [r for r in rows if r["action"] == "Transfer revoked by support"]
    assert revoked["actor"] == SUPPORT_EMAIL and revoked["role"] == "Support"
    assert "Verkeerd kantoor gekozen" in revoked["subject"] + revoked["detail"]


# --------------------------------------------------------------------------- least privilege


def test_support_never_sees_a_document_file_its_contents_or_a_transfer_code(
    console, build, office, other_office, support_user
):
    secret = b"%PDF-1.4\n% GEHEIM-BEDRAG-98765 van de klant\n%%EOF\n"
    administration = build.administration(office.connection, name="Notariskantoor Stil")
    document = build.document(administration, "approved", content=secret)
    transfer, code = offer(office.superuser, [administration])
    claim(other_office.superuser, transfer, code, other_office.connection)
    assert copy_waiting() == 1
    open_offer, open_code = offer(office.superuser, [offerable(build, office.connection)])
    fresh()
    copied = db.session.get(TransferItem, transfer.items[0].id).target_administration_id
    copied_document = db.session.scalars(
        select(Document).where(Document.administration_id == copied)
    ).one()

    for administration_id, document_id in (
        (administration.id, document.id),
        (copied, copied_document.id),
    ):
        for suffix in ("/file", "/file?download=1"):
            url = f"/settings/administrations/{administration_id}/documents/{document_id}{suffix}"
            assert console.get(url).status_code == 404, url
        assert console.get(f"/settings/administrations/{administration_id}").status_code == 404

    secrets = []
    for transfer_id, known in ((transfer.id, code), (open_offer.id, open_code)):
        formatted = codes.code_for(db.session.get(Transfer, transfer_id))
        assert formatted == known
        secrets += [formatted, domain.normalise_code(formatted)]
    urls = [
        "/support",
        "/support?stuck=1",
        "/support/environments",
        "/support/audit",
        f"/support/audit?environment={office.environment.id}",
        "/support/audit.csv",
    ]
    for transfer_id in (transfer.id, open_offer.id):
        urls += [
            f"/support/transfers/{transfer_id}",
            f"/support/transfers/{transfer_id}/evidence.csv",
        ]
    for url in urls:
        body = console.get(url).get_data()
        assert b"GEHEIM-BEDRAG-98765" not in body, url
        for value in secrets:
            assert value.encode() not in body, (url, value)
        assert b"/documents/" not in body, url


def test_the_environments_page_shows_every_office_with_counts_only(
    console, build, office, other_office
):
    offerable(build, office.connection, documents=3, name="Bakkerij Telbaar")

    html = page_of(console, "/support/environments")

    for name in ("Kantoor Noord", "Kantoor Zuid"):
        assert name in html
    noord_row = re.search(r"<tr><td>Kantoor Noord</td>(.*?)</tr>", html, re.DOTALL).group(1)
    assert re.findall(r'<td class="num">(\d+)</td>', noord_row) == ["1", "3", "3"]
    assert "Bakkerij Telbaar" not in html


# --------------------------------------------------------------------------- races


def race(*functions, timeout=60) -> list:
    """Run each function in a thread of its own (with an app context of its own), all
    released at once; return ("ok", result) or ("raised", error) for each."""
    from flask import current_app

    app = current_app._get_current_object()
    fresh()
    barrier = threading.Barrier(len(functions))
    results: list = [None] * len(functions)

    def run(index, fn):
        with app.app_context():
            try:
                barrier.wait()
                results[index] = ("ok", fn())
            except Exception as error:  # noqa: BLE001 - reported to the test
                db.session.rollback()
                results[index] = ("raised", error)
            finally:
                db.session.remove()

    threads = [
        threading.Thread(target=run, args=(n, fn), name=f"racer-{n}")
        for n, fn in enumerate(functions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a thread hung"
    return results


# Head starts (seconds) for the two sides of a race, round after round: sometimes one
# side, sometimes the other gets there first, and sometimes they meet in the middle.
HEAD_STARTS = ((0, 0), (0.15, 0), (0, 0.1), (0.03, 0), (0, 0.01), (0.01, 0))


def revoker(support_id: int, transfer_id: int, *, wait: threading.Event | None = None, delay=0.0):
    """Revoke as support: ('revoked', None) or ('refused', ServiceError)."""

    def run():
        actor = db.session.get(User, support_id)
        time.sleep(delay)
        if wait is not None:
            assert wait.wait(30), "the copy never got to its end"
        try:
            support.revoke(actor, transfer_id, "Gelijktijdig ingetrokken", origin="race")
            db.session.commit()
            return ("revoked", None)
        except ServiceError as error:
            db.session.rollback()
            return ("refused", error)

    return run


def on_postgresql() -> bool:
    return db.engine.dialect.name == "postgresql"


def test_a_revoke_racing_a_claim_always_ends_the_transfer_and_nothing_is_ever_copied(
    build, office, other_office, support_user
):
    rounds = 12 if on_postgresql() else 6
    zuid_id, connection_id = other_office.superuser.id, other_office.connection.id
    seen = set()
    for round_no in range(rounds):
        administration = offerable(build, office.connection, documents=1)
        transfer, code = offer(office.superuser, [administration])
        item_ids = [i.id for i in transfer.items]

        revoke_delay, claim_delay = HEAD_STARTS[round_no % len(HEAD_STARTS)]

        def claimer(transfer_code=code, item_ids=item_ids, delay=claim_delay):
            time.sleep(delay)
            actor = db.session.get(User, zuid_id)
            try:
                claims.submit_claim(
                    actor,
                    transfer_code,
                    [Decision(i, "accept", connection_id) for i in item_ids],
                    accept_terms=True,
                    origin="race",
                )
                db.session.commit()
                return ("claimed", None)
            except ServiceError as error:
                db.session.rollback()
                return ("refused", error)

        results = race(revoker(support_user.id, transfer.id, delay=revoke_delay), claimer)

        assert [r for r in results if r[0] == "raised"] == [], f"round {round_no}: {results}"
        revoked, claimed = results[0][1], results[1][1]
        # The revoke always wins: an offer, claimed or not, can be revoked.
        assert revoked == ("revoked", None), f"round {round_no}: {results}"
        copies = copy_waiting(now=utcnow() + timedelta(days=1))
        fresh()
        transfer = db.session.get(Transfer, transfer.id)
        assert transfer.state is TransferState.REVOKED
        assert [i.state for i in transfer.items] == [ItemState.REVOKED]
        assert copies == 0
        assert db.session.get(Administration, administration.id).state is (
            AdministrationState.ACTIVE
        )
        assert count(Provenance, Provenance.transfer_id == transfer.id) == 0
        to = [m.to_email for m in mails(transfer.id, "transfer_revoked")]
        if claimed[0] == "claimed":
            seen.add("claim first")
            assert count(Claim, Claim.transfer_id == transfer.id) == 1
            assert transfer.target_environment_id == other_office.environment.id
        else:
            seen.add("revoke first")
            assert isinstance(claimed[1], CodeRejected), f"round {round_no}: {claimed}"
            assert count(Claim, Claim.transfer_id == transfer.id) == 0
            assert transfer.target_environment_id is None
        assert to == ["super@noord.example", "super@zuid.example"]
    assert seen == {"claim first", "revoke first"}


def target_traces(environment_id: int, code: str, item_id: int) -> tuple[int, int, int]:
    """(administrations, documents, provenance rows) a copy of ``item_id`` left behind."""
    fresh()
    administrations = list(
        db.session.scalars(
            select(Administration.id).where(
                Administration.environment_id == environment_id, Administration.code == code
            )
        )
    )
    documents = count(Document, Document.administration_id.in_(administrations))
    return (
        len(administrations),
        documents,
        count(Provenance, Provenance.transfer_item_id == item_id),
    )


def test_a_revoke_racing_a_copy_ends_in_exactly_one_of_the_two(
    build, office, other_office, support_user
):
    rounds = 12 if on_postgresql() else 6
    zuid = other_office.environment.id
    seen = set()
    for round_no in range(rounds):
        administration = offerable(build, office.connection, documents=3)
        transfer, code = offer(office.superuser, [administration])
        claim(other_office.superuser, transfer, code, other_office.connection)
        item_id = transfer.items[0].id

        revoke_delay, copy_delay = HEAD_STARTS[round_no % len(HEAD_STARTS)]

        def copier(item_id=item_id, delay=copy_delay):
            time.sleep(delay)
            return copy_item(item_id)

        results = race(revoker(support_user.id, transfer.id, delay=revoke_delay), copier)

        assert [r for r in results if r[0] == "raised"] == [], f"round {round_no}: {results}"
        revoked, copied = results[0][1], results[1][1]
        fresh()
        transfer = db.session.get(Transfer, transfer.id)
        item = db.session.get(TransferItem, item_id)
        traces = target_traces(zuid, administration.code, item_id)
        if revoked[0] == "revoked":
            seen.add("revoked")
            assert copied is not CopyOutcome.COPIED, f"round {round_no}: both won"
            assert transfer.state is TransferState.REVOKED
            assert item.state is ItemState.REVOKED
            assert traces == (0, 0, 0), f"round {round_no}: a copy remains"
            assert db.session.get(Administration, administration.id).state is (
                AdministrationState.ACTIVE
            )
        else:
            seen.add("copied")
            assert copied is CopyOutcome.COPIED, f"round {round_no}: neither won: {results}"
            assert str(revoked[1]) == ALREADY_ENDED
            assert transfer.state is TransferState.COMPLETED
            assert item.state is ItemState.MIGRATED
            assert traces == (1, 3, 1)
            assert db.session.get(Administration, administration.id).state is (
                AdministrationState.MIGRATED
            )
            assert mails(transfer.id, "transfer_revoked") == []
    assert seen == {"copied", "revoked"}


class PauseAfterItemMigrated:
    """In the thread named ``thread``, right after the copy has marked the item migrated
    (still inside its transaction), tell the test and hold on for ``seconds``: the
    moment a revoke arrives while the copy is finishing."""

    def __init__(self, thread: str, seconds: float = 0.6) -> None:
        self.thread = thread
        self.seconds = seconds
        self.reached = threading.Event()

    def __enter__(self):
        from sqlalchemy import event

        event.listen(db.engine, "after_cursor_execute", self._hook)
        return self

    def __exit__(self, *exc) -> None:
        from sqlalchemy import event

        event.remove(db.engine, "after_cursor_execute", self._hook)

    def _hook(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if threading.current_thread().name != self.thread or self.reached.is_set():
            return
        sql = " ".join(statement.split()).upper()
        if sql.startswith("UPDATE TRANSFER_ITEMS SET STATE"):
            self.reached.set()
            time.sleep(self.seconds)


def revoke_while_copy_finishes(build, office, other_office, support_user, *, items: int):
    """Claim ``items`` administrations, and let a revoke arrive just as the copy of the
    first one has marked it migrated (the others hang). Returns what each side answered
    and what the first one left behind."""
    administrations = [offerable(build, office.connection, documents=3) for _ in range(items)]
    transfer, code = offer(office.superuser, administrations)
    claim(other_office.superuser, transfer, code, other_office.connection)
    copying, *others = [i.id for i in transfer.items]
    for other in others:
        hang(other)  # the other copies are stuck: the reason support revokes

    with PauseAfterItemMigrated("racer-1") as pause:
        results = race(
            revoker(support_user.id, transfer.id, wait=pause.reached),
            lambda: copy_item(copying),
        )

    assert pause.reached.is_set()
    errors = [r[1] for r in results if r[0] == "raised"]
    assert errors == [], f"a database error instead of an answer: {errors}"
    fresh()
    return {
        "revoked": results[0][1],
        "copied": results[1][1],
        "transfer": db.session.get(Transfer, transfer.id),
        "item": db.session.get(TransferItem, copying),
        "others": [db.session.get(TransferItem, i) for i in others],
        "traces": target_traces(other_office.environment.id, administrations[0].code, copying),
        "source": db.session.get(Administration, administrations[0].id).state,
    }


def describe(outcome) -> str:
    return (
        f"revoke answered {outcome['revoked']}, the copy {outcome['copied']}; afterwards the "
        f"transfer is {outcome['transfer'].state.value}, the item {outcome['item'].state.value}, "
        f"the source administration {outcome['source'].value}; the target holds "
        f"(administrations, documents, provenance) {outcome['traces']}"
    )


def assert_whole_or_undone(outcome) -> None:
    """A copy that finished stays migrated; one that lost leaves not a row behind."""
    if outcome["copied"] is CopyOutcome.COPIED:
        assert outcome["item"].state is ItemState.MIGRATED, describe(outcome)
        assert outcome["traces"] == (1, 3, 1), describe(outcome)
        assert outcome["source"] is AdministrationState.MIGRATED, describe(outcome)
    else:
        assert outcome["item"].state is ItemState.REVOKED, describe(outcome)
        assert outcome["traces"] == (0, 0, 0), describe(outcome)
        assert outcome["source"] is AdministrationState.ACTIVE, describe(outcome)


def test_a_revoke_arriving_as_the_last_copy_finishes_gets_a_clear_answer_and_one_of_the_two_wins(
    build, office, other_office, support_user
):
    outcome = revoke_while_copy_finishes(build, office, other_office, support_user, items=1)

    assert_whole_or_undone(outcome)
    if outcome["copied"] is CopyOutcome.COPIED:
        assert outcome["revoked"][0] == "refused", describe(outcome)
        assert str(outcome["revoked"][1]) == ALREADY_ENDED
        assert outcome["transfer"].state is TransferState.COMPLETED
    else:
        assert outcome["revoked"] == ("revoked", None), describe(outcome)
        assert outcome["transfer"].state is TransferState.REVOKED


def test_a_revoke_arriving_as_one_of_two_copies_finishes_keeps_that_copy_and_ends_the_other(
    build, office, other_office, support_user
):
    outcome = revoke_while_copy_finishes(build, office, other_office, support_user, items=2)

    assert_whole_or_undone(outcome)
    assert outcome["revoked"] == ("revoked", None), describe(outcome)
    assert outcome["transfer"].state is TransferState.REVOKED
    (other,) = outcome["others"]
    assert other.state is ItemState.REVOKED
    assert db.session.get(Administration, other.administration_id).state is (
        AdministrationState.ACTIVE
    )


# --------------------------------------------------------------------------- the demo


def test_the_demo_has_exactly_two_stuck_transfers_support_revokes_one_and_retries_the_other(
    app, login
):
    from app.demo import seed_demo

    seed_demo(reset=True, echo=lambda *_: None)
    db.session.commit()
    support_user = db.session.scalars(select(User).where(User.email == SUPPORT_EMAIL)).one()
    support_user.language = "en"
    db.session.commit()
    console = login(support_user, password=app.config["DEMO_PASSWORD"])

    def transfer_of(code):
        return db.session.scalars(
            select(Transfer)
            .join(TransferItem, TransferItem.transfer_id == Transfer.id)
            .where(TransferItem.administration_code == code)
        ).one()

    hung, failed = transfer_of("1006"), transfer_of("1007")
    hung_id, failed_id = hung.id, failed.id
    wolters = hung.items[0].administration_id
    html = page_of(console, "/support?stuck=1")

    assert sorted(listed(html)) == sorted([hung_id, failed_id])
    assert reasons_in(row_of(html, hung_id)) == ["Being copied for more than 30 minutes"]
    assert reasons_in(row_of(html, failed_id)) == [
        "A copy failed: OperationalError: server closed the connection unexpectedly"
    ]
    assert "Autobedrijf Wolters" in row_of(html, hung_id)
    assert "Kinderopvang Het Nest" in row_of(html, failed_id)

    response = revoke_on_page(console, hung_id, "De kopie van Wolters hangt al twee uur.")
    assert response.status_code == 302
    console.get_page(f"/support/transfers/{failed_id}")
    response = console.post_form(f"/support/transfers/{failed_id}/retry")
    assert response.status_code == 302
    assert copy_waiting() == 1

    fresh()
    hung = db.session.get(Transfer, hung_id)
    assert hung.state is TransferState.REVOKED
    assert hung.items[0].state is ItemState.REVOKED
    assert db.session.get(Administration, wolters).state is AdministrationState.ACTIVE
    assert [m.to_email for m in mails(hung_id, "transfer_revoked")] == [
        "super@noord.example",
        "super@zuid.example",
    ]
    failed = db.session.get(Transfer, failed_id)
    item = failed.items[0]
    assert item.state is ItemState.MIGRATED
    assert item.documents_copied == item.documents_total == 80
    assert failed.state is TransferState.COMPLETED
    zuid = db.session.scalars(select(Environment).where(Environment.office_code == "ZUID")).one()
    assert db.session.get(Administration, item.target_administration_id).environment_id == (zuid.id)
    html = page_of(console, "/support?stuck=1")
    assert listed(html) == []
    assert "Nothing is stuck." in text_of(html)
