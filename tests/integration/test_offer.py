"""Offering administrations through the pages: the move-out wizard, the migration overview
(search, pages, both directions), withdrawing, uploads while on offer and the audit trail."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from flask import current_app
from sqlalchemy import select

from app.admin_settings.models import Administration, Document
from app.audit import AuditEvent
from app.db import utcnow
from app.extensions import db
from app.outbox import OutboxMessage
from app.transfers import codes, offers
from app.transfers.models import ItemState, Transfer, TransferItem, TransferState
from tests.helpers import count, ensure_receivers, fresh, offer
from tests.integration.pages import flash_categories, text_of

MIGRATIONS = "/settings/migrations"
MOVE = f"{MIGRATIONS}/move"
SELECT = f"{MOVE}/select"
SUMMARY = f"{MOVE}/summary"
CHECKLIST = {
    "users_stay": "y",
    "no_authorizers_in_flows": "y",
    "no_active_workflows": "y",
    "all_documents_decided": "y",
}
FORMATTED_CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){4}$")
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


# --------------------------------------------------------------------------- helpers


def clean_administration(build, connection, name=None, contact_email=None):
    """An administration that can be offered: its documents are all decided."""
    administration = build.administration(connection, name=name)
    build.document(administration, "approved")
    build.document(administration, "rejected")
    if contact_email:
        administration.contact_email = contact_email
        db.session.commit()
    return administration


def speaks_english(user):
    user.language = "en"
    db.session.commit()
    return user


def pass_checklist(client):
    client.get_page(MOVE)
    response = client.post_form(MOVE, CHECKLIST)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert urlsplit(response.headers["Location"]).path == SELECT


def choose(client, connection, administrations):
    client.get_page(f"{SELECT}?connection_id={connection.id}")
    return client.post_form(
        SELECT,
        {
            "connection_id": str(connection.id),
            "administration_ids": [str(a.id) for a in administrations],
        },
    )


def summary_data(recipients, accept_terms=True) -> dict:
    data = {f"recipient_emails-{i}": email for i, email in enumerate(recipients)}
    if accept_terms:
        data["accept_terms"] = "y"
    return data


def confirmed_office(html: str) -> str | None:
    """The receiving office the summary names before sending (its hidden id), if any."""
    match = re.search(r'name="confirmed_office" type="hidden" value="(\d+)"', html)
    return match.group(1) if match else None


def send(client, recipients, accept_terms=True):
    """Fill in the summary and send: the first press names the receiving office and
    sends nothing; the second, for that office, sends. Returns the last response."""
    client.get_page(SUMMARY)
    data = summary_data(recipients, accept_terms)
    checked = client.post_form(SUMMARY, data)
    office_id = confirmed_office(checked.get_data(as_text=True))
    if checked.status_code != 200 or office_id is None:
        return checked
    return client.post_form(SUMMARY, {**data, "confirmed_office": office_id})


def walk_the_wizard(client, connection, administrations, recipients):
    pass_checklist(client)
    response = choose(client, connection, administrations)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert urlsplit(response.headers["Location"]).path == SUMMARY
    return send(client, recipients)


def administration_states(*administrations) -> list[str]:
    fresh()
    return [db.session.get(Administration, a.id).state.value for a in administrations]


def table_rows(html: str, table: str) -> list[dict]:
    """The rows of the overview's ``outgoing`` or ``incoming`` table."""
    match = re.search(rf'<table class="table" data-table="{table}">(.*?)</table>', html, re.DOTALL)
    if not match:
        return []
    rows = []
    for transfer_id, item_id, body in re.findall(
        r'<tr data-transfer-id="(\d+)" data-item-id="(\d+)"[^>]*>(.*?)</tr>',
        match.group(1),
        re.DOTALL,
    ):
        code = re.search(r'<code class="transfer-code">([^<]*)</code>', body)
        state = re.search(r'<span class="badge item-\w+" data-state="(\w+)">([^<]*)</span>', body)
        rows.append(
            {
                "transfer_id": int(transfer_id),
                "item_id": int(item_id),
                "code": code.group(1).strip() if code else None,
                "state": state.group(1) if state else None,
                "label": state.group(2).strip() if state else None,
                "withdraw": f"/settings/migrations/{transfer_id}/withdraw" in body,
                "text": text_of(body),
            }
        )
    return rows


def overview(client, **params) -> str:
    response = client.get_page(MIGRATIONS, query_string=params)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def preflight_row(html: str, administration) -> str:
    match = re.search(
        rf'<tr data-administration-id="{administration.id}"[^>]*>(.*?)</tr>', html, re.DOTALL
    )
    assert match, f"no row for administration {administration.id}"
    return match.group(0)


def stored_blobs() -> set[Path]:
    return {p for p in Path(current_app.config["BLOB_ROOT"]).rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- the wizard


def test_walking_the_wizard_offers_two_clean_administrations_with_one_code(
    login, build, office, other_office
):
    first = clean_administration(build, office.connection, name="Bakkerij De Korenschoof")
    second = clean_administration(build, office.connection, name="Van Dijk Installatietechniek")
    client = login(office.superuser)

    response = walk_the_wizard(
        client, office.connection, [first, second], [other_office.superuser.email]
    )

    assert response.status_code == 302, response.get_data(as_text=True)
    fresh()
    transfer = db.session.scalars(select(Transfer)).one()
    assert urlsplit(response.headers["Location"]).path == f"{MIGRATIONS}/{transfer.id}"
    assert transfer.state is TransferState.OFFERED
    assert transfer.source_environment_id == office.environment.id
    assert transfer.offered_by_id == office.superuser.id
    assert transfer.recipient_emails == [other_office.superuser.email]
    assert transfer.terms_version == current_app.config["TRANSFER_TERMS_VERSION"]
    assert sorted(i.administration_id for i in transfer.items) == sorted([first.id, second.id])
    assert {i.state for i in transfer.items} == {ItemState.OFFERED}
    assert administration_states(first, second) == ["offered", "offered"]


def test_an_offer_expires_exactly_fifteen_days_after_it_was_made(
    login, build, office, other_office
):
    administration = clean_administration(build, office.connection)
    client = login(office.superuser)
    before = utcnow()

    walk_the_wizard(client, office.connection, [administration], ["super@zuid.example"])

    fresh()
    transfer = db.session.scalars(select(Transfer)).one()
    assert current_app.config["TRANSFER_CODE_TTL_DAYS"] == 15
    assert transfer.expires_at - transfer.created_at == timedelta(days=15)
    assert before <= transfer.created_at <= utcnow()


def test_the_detail_page_after_sending_shows_the_formatted_code(login, build, office, other_office):
    administration = clean_administration(build, office.connection)
    client = login(office.superuser)

    response = walk_the_wizard(client, office.connection, [administration], ["super@zuid.example"])
    html = client.get_page(response.headers["Location"]).get_data(as_text=True)
    assert '<dd id="receiving-office">Kantoor Zuid</dd>' in html  # the office it is for

    fresh()
    transfer = db.session.scalars(select(Transfer)).one()
    shown = re.search(r'<code class="transfer-code big" id="transfer-code">([^<]+)</code>', html)
    assert shown, "the code is on the page"
    assert FORMATTED_CODE.match(shown.group(1))
    assert shown.group(1) == codes.code_for(transfer)
    assert "success" in flash_categories(html)


def test_the_summary_fills_in_the_requesters_own_address(login, build, office):
    administration = clean_administration(build, office.connection)
    client = login(office.superuser)
    pass_checklist(client)
    choose(client, office.connection, [administration])

    html = client.get_page(SUMMARY).get_data(as_text=True)

    assert re.search(
        r'<input id="requester_email" type="email" value="super@noord.example" readonly>', html
    )
    assert f'data-administration-id="{administration.id}"' in html


@pytest.mark.parametrize("missing", list(CHECKLIST))
def test_the_checklist_with_a_point_left_unticked_is_refused_and_leads_nowhere(
    login, office, missing
):
    client = login(office.superuser)
    client.get_page(MOVE)

    response = client.post_form(MOVE, {k: v for k, v in CHECKLIST.items() if k != missing})

    assert response.status_code == 422
    assert 'class="has-error"' in response.get_data(as_text=True)
    next_step = client.get(SELECT)
    assert next_step.status_code == 302
    assert urlsplit(next_step.headers["Location"]).path == MOVE


def _pending_document(build, administration, office):
    build.document(administration, "pending")


def _active_workflow(build, administration, office):
    build.workflow(administration, active=True)


def _authorizer_in_flow(build, administration, office):
    build.authorization_step(administration, office.authorizer)


BLOCKERS = {
    "a pending document": (_pending_document, "documents"),
    "an active workflow": (_active_workflow, "workflows"),
    "an authorizer in a flow": (_authorizer_in_flow, "flows"),
}


@pytest.mark.parametrize("blocker", list(BLOCKERS))
def test_choosing_a_blocked_administration_is_refused_naming_it(login, build, office, blocker):
    add_blocker, _anchor = BLOCKERS[blocker]
    clean = clean_administration(build, office.connection, name="Schoon BV")
    blocked = clean_administration(build, office.connection, name="Geblokkeerd BV")
    add_blocker(build, blocked, office)
    client = login(speaks_english(office.superuser))
    pass_checklist(client)

    response = choose(client, office.connection, [clean, blocked])

    assert response.status_code == 422
    text = text_of(response.get_data(as_text=True))
    assert "“Geblokkeerd BV” cannot move yet" in text
    assert "Schoon BV” cannot" not in text
    # Nothing was remembered: the summary sends the user back to choose.
    summary = client.get(SUMMARY)
    assert summary.status_code == 302
    assert urlsplit(summary.headers["Location"]).path == SELECT
    assert administration_states(clean, blocked) == ["active", "active"]


@pytest.mark.parametrize("blocker", list(BLOCKERS))
def test_a_blocked_administration_cannot_be_ticked_and_links_to_its_fix(
    login, build, office, blocker
):
    add_blocker, anchor = BLOCKERS[blocker]
    clean = clean_administration(build, office.connection)
    blocked = clean_administration(build, office.connection)
    add_blocker(build, blocked, office)
    client = login(office.superuser)
    pass_checklist(client)

    html = client.get_page(f"{SELECT}?connection_id={office.connection.id}").get_data(as_text=True)

    blocked_row = preflight_row(html, blocked)
    assert 'class="blocked"' in blocked_row
    assert re.search(
        rf'<input type="checkbox" name="administration_ids" value="{blocked.id}"[^>]*disabled',
        blocked_row,
    )
    links = re.findall(r'<li class="blocker">\s*<a href="([^"]+)"', blocked_row)
    assert len(links) == 1
    assert urlsplit(links[0]).path == f"/settings/administrations/{blocked.id}"
    assert urlsplit(links[0]).fragment == anchor
    clean_row = preflight_row(html, clean)
    assert "disabled" not in clean_row
    assert '<li class="blocker">' not in clean_row


def test_administrations_of_two_connections_cannot_be_offered_together(login, build, office):
    twinfield = build.connection(office.environment, "twinfield")
    exact = clean_administration(build, office.connection)
    other = clean_administration(build, twinfield)
    client = login(speaks_english(office.superuser))
    pass_checklist(client)

    response = choose(client, office.connection, [exact, other])

    assert response.status_code == 422
    assert "Choose administrations of one connection" in text_of(response.get_data(as_text=True))
    assert client.get(SUMMARY).status_code == 302
    assert count(Transfer) == 0


def test_an_administration_already_on_offer_cannot_be_chosen_again(login, build, office):
    administration = clean_administration(build, office.connection, name="Al Aangeboden BV")
    offer(office.superuser, [administration])
    client = login(speaks_english(office.superuser))
    pass_checklist(client)

    html = client.get_page(f"{SELECT}?connection_id={office.connection.id}").get_data(as_text=True)
    response = choose(client, office.connection, [administration])

    assert "disabled" in preflight_row(html, administration)
    assert response.status_code == 422
    assert "“Al Aangeboden BV” is already on offer." in text_of(response.get_data(as_text=True))
    assert count(Transfer) == 1


SUMMARY_MISTAKES = {
    "no recipient": ([], True, "Give the e-mail address of at least one recipient."),
    "a malformed address": (["geen-adres"], True, "“geen-adres” is not a valid e-mail address."),
    "the requesters own address": (
        ["super@noord.example"],
        True,
        "“super@noord.example” is your own address; it already gets a copy.",
    ),
    "a colleagues address": (
        ["user@noord.example"],
        True,
        "“user@noord.example” belongs to a user of your own environment",
    ),
    "one address twice": (
        ["super@zuid.example", "Super@Zuid.example"],
        True,
        "“super@zuid.example” is given more than once.",
    ),
    "terms not accepted": (["super@zuid.example"], False, "Accept the terms to send the offer."),
}


@pytest.mark.parametrize("mistake", list(SUMMARY_MISTAKES))
def test_a_summary_with_a_mistake_is_refused_and_nothing_is_offered_or_mailed(
    login, build, office, other_office, mistake
):
    recipients, accept_terms, message = SUMMARY_MISTAKES[mistake]
    administration = clean_administration(build, office.connection)
    client = login(speaks_english(office.superuser))
    pass_checklist(client)
    choose(client, office.connection, [administration])

    response = send(client, recipients, accept_terms=accept_terms)

    assert response.status_code == 422
    assert message in text_of(response.get_data(as_text=True))
    fresh()
    assert count(Transfer) == 0
    assert count(TransferItem) == 0
    assert count(OutboxMessage) == 0
    assert count(AuditEvent, AuditEvent.action == "transfer_offered") == 0
    assert administration_states(administration) == ["active"]


def test_the_summary_reports_every_mistake_at_once(login, build, office):
    administration = clean_administration(build, office.connection)
    client = login(speaks_english(office.superuser))
    pass_checklist(client)
    choose(client, office.connection, [administration])

    response = send(client, ["geen-adres", "super@noord.example"], accept_terms=False)

    assert response.status_code == 422
    text = text_of(response.get_data(as_text=True))
    assert "“geen-adres” is not a valid e-mail address." in text
    assert "“super@noord.example” is your own address" in text
    assert "Accept the terms to send the offer." in text
    assert count(Transfer) == 0
    assert count(OutboxMessage) == 0


def test_the_summary_names_the_receiving_office_before_anything_is_sent(
    login, build, office, other_office
):
    administration = clean_administration(build, office.connection)
    client = login(office.superuser)
    pass_checklist(client)
    choose(client, office.connection, [administration])
    ensure_receivers(["super@zuid.example", "tweede@zuid.example"])
    client.get_page(SUMMARY)
    data = summary_data(["super@zuid.example", "tweede@zuid.example"])

    checked = client.post_form(SUMMARY, data)

    html = checked.get_data(as_text=True)
    assert checked.status_code == 200
    assert "Ontvangend kantoor: Kantoor Zuid" in text_of(html)
    assert "Verstuur het aanbod naar Kantoor Zuid" in text_of(html)
    assert count(Transfer) == 0
    assert count(OutboxMessage) == 0

    sent = client.post_form(SUMMARY, {**data, "confirmed_office": confirmed_office(html)})

    assert sent.status_code == 302
    transfer = db.session.scalars(select(Transfer)).one()
    assert transfer.receiving_environment.name == "Kantoor Zuid"
    detail = client.get_page(sent.headers["Location"]).get_data(as_text=True)
    assert "Kantoor Zuid" in text_of(re.search(r'id="receiving-office">[^<]*', detail).group(0))


def test_recipients_changed_after_the_check_send_nothing(login, build, office, other_office):
    """The office shown is the office the offer goes to: recipients of another office
    put in after the check are refused, and the next press names the new office."""
    administration = clean_administration(build, office.connection)
    ensure_receivers(["super@west.example"])
    client = login(speaks_english(office.superuser))
    pass_checklist(client)
    choose(client, office.connection, [administration])
    ensure_receivers(["super@zuid.example"])
    client.get_page(SUMMARY)
    checked = client.post_form(SUMMARY, summary_data(["super@zuid.example"]))
    zuid_id = confirmed_office(checked.get_data(as_text=True))

    changed = client.post_form(
        SUMMARY, {**summary_data(["super@west.example"]), "confirmed_office": zuid_id}
    )

    assert changed.status_code == 422
    assert "The recipients now belong to Kantoor West" in text_of(changed.get_data(as_text=True))
    assert confirmed_office(changed.get_data(as_text=True)) is None
    assert count(Transfer) == 0
    assert count(OutboxMessage) == 0


def test_the_summary_adds_recipient_rows_up_to_ten(login, build, office):
    administration = clean_administration(build, office.connection)
    client = login(speaks_english(office.superuser))
    pass_checklist(client)
    choose(client, office.connection, [administration])
    html = client.get_page(SUMMARY).get_data(as_text=True)
    assert len(re.findall(r'name="recipient_emails-\d+"', html)) == 3

    # As a browser posts it: every row, filled or not.
    data = {
        "recipient_emails-0": "super@zuid.example",
        "recipient_emails-1": "",
        "recipient_emails-2": "",
        "add_recipient": "1",
    }
    for rows in range(4, 11):
        response = client.post_form(SUMMARY, data)
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert len(re.findall(r'name="recipient_emails-\d+"', html)) == rows
        data[f"recipient_emails-{rows - 1}"] = ""
    # The typed address is kept; at ten rows the button is gone and nothing was sent.
    assert 'value="super@zuid.example"' in html
    assert "Add a recipient" not in text_of(html)
    assert count(Transfer) == 0


# --------------------------------------------------------------------------- the overview


def test_the_overview_lists_each_offered_administration_with_code_and_status(login, build, office):
    first = clean_administration(build, office.connection, name="Bakkerij De Korenschoof")
    second = clean_administration(build, office.connection, name="Van Dijk Installatietechniek")
    transfer, code = offer(office.superuser, [first, second])

    html = overview(login(office.superuser))

    rows = table_rows(html, "outgoing")
    assert [r["transfer_id"] for r in rows] == [transfer.id, transfer.id]
    assert {r["code"] for r in rows} == {code}
    assert {r["state"] for r in rows} == {"offered"}
    assert {r["label"] for r in rows} == {"Aangeboden"}
    assert all(r["withdraw"] for r in rows)
    names = [r["text"] for r in rows]
    assert any("Bakkerij De Korenschoof" in n for n in names)
    assert any("Van Dijk Installatietechniek" in n for n in names)
    assert table_rows(html, "incoming") == []


@pytest.fixture
def two_offers(build, office):
    """Offer A (today, live) and offer B (three days ago, withdrawn since)."""
    a_administration = clean_administration(
        build,
        office.connection,
        name="Bakkerij De Korenschoof",
        contact_email="info@korenschoof.nl",
    )
    b_administration = clean_administration(
        build, office.connection, name="Garage Jansen", contact_email="admin@garagejansen.nl"
    )
    a, a_code = offer(office.superuser, [a_administration])
    b, _b_code = offer(office.superuser, [b_administration], now=utcnow() - timedelta(days=3))
    offers.withdraw(office.superuser, b.id, origin="tests")
    db.session.commit()
    return a, a_code, b


def _day_of(moment) -> str:
    return moment.astimezone(ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])).strftime(
        "%d-%m-%Y"
    )


SEARCHES = {
    "part of the administration name": lambda a, code: "korenschoof",
    "the administration e-mail": lambda a, code: "info@korenschoof.nl",
    "the code as shown": lambda a, code: code,
    "the code in lower case without dashes": lambda a, code: code.replace("-", "").lower(),
    "the date offered as dd-mm-yyyy": lambda a, code: _day_of(a.created_at),
    "the status value": lambda a, code: "offered",
    "the Dutch status word": lambda a, code: "Aangeboden",
    "the Dutch status word in lower case": lambda a, code: "aangeboden",
}


@pytest.mark.parametrize("search", list(SEARCHES))
def test_searching_the_offers_finds_only_the_matching_offer(login, office, two_offers, search):
    a, a_code, b = two_offers
    q = SEARCHES[search](a, a_code)

    rows = table_rows(overview(login(office.superuser), q_out=q), "outgoing")

    assert [r["transfer_id"] for r in rows] == [a.id], f"searching {q!r}"


def test_searching_by_the_withdrawn_status_finds_the_withdrawn_offer(login, office, two_offers):
    a, _code, b = two_offers

    rows = table_rows(overview(login(office.superuser), q_out="withdrawn"), "outgoing")

    assert [r["transfer_id"] for r in rows] == [b.id]
    assert rows[0]["state"] == "withdrawn"
    assert not rows[0]["withdraw"]


def test_a_search_that_matches_nothing_says_so(login, office, two_offers):
    html = overview(login(speaks_english(office.superuser)), q_out="bestaat-niet")

    assert table_rows(html, "outgoing") == []
    assert "Nothing matches “bestaat-niet”." in text_of(html)


def test_the_overview_shows_25_rows_a_page_newest_first(login, build, office):
    assert current_app.config["TRANSFERS_PER_PAGE"] == 25
    start = utcnow() - timedelta(hours=2)
    transfers = []
    for i in range(26):
        administration = build.administration(office.connection, name=f"Klant {i:02d}")
        transfer, _code = offer(
            office.superuser, [administration], now=start + timedelta(minutes=i)
        )
        transfers.append(transfer.id)
    newest_first = list(reversed(transfers))
    client = login(office.superuser)

    first_page = overview(client)
    second_page = overview(client, page_out=2)

    assert [r["transfer_id"] for r in table_rows(first_page, "outgoing")] == newest_first[:25]
    assert [r["transfer_id"] for r in table_rows(second_page, "outgoing")] == newest_first[25:]
    assert re.search(r'<a href="[^"]*page_out=2[^"]*" rel="next">', first_page)
    assert 'rel="next"' not in second_page


def test_the_receiving_office_sees_the_offer_under_received_without_the_code(
    login, build, office, other_office
):
    first = clean_administration(build, office.connection, name="Bakkerij De Korenschoof")
    second = clean_administration(build, office.connection, name="Van Dijk Installatietechniek")
    transfer, code = offer(office.superuser, [first, second], [other_office.superuser.email])

    html = overview(login(other_office.superuser))

    rows = table_rows(html, "incoming")
    assert [r["transfer_id"] for r in rows] == [transfer.id, transfer.id]
    assert {r["state"] for r in rows} == {"offered"}
    assert {r["code"] for r in rows} == {None}
    assert not any(r["withdraw"] for r in rows)
    assert table_rows(html, "outgoing") == []
    assert code not in html
    assert code.replace("-", "") not in html


def test_the_receiving_office_sees_the_detail_page_without_the_code(
    login, build, office, other_office
):
    administration = clean_administration(build, office.connection)
    transfer, code = offer(office.superuser, [administration], [other_office.superuser.email])

    response = login(other_office.superuser).get_page(f"{MIGRATIONS}/{transfer.id}")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="transfer-code"' not in html
    assert code not in html
    assert f"/settings/migrations/{transfer.id}/withdraw" not in html


@pytest.mark.parametrize("role", ["user", "authorizer"])
def test_only_superusers_have_the_migration_menu(login, office, role):
    client = login(getattr(office, role))

    assert client.get(MIGRATIONS).status_code == 404
    assert client.get(MOVE).status_code == 404


# --------------------------------------------------------------------------- withdrawing


def test_withdrawing_from_the_overview_ends_the_offer_and_tells_the_recipients(
    login, build, office, other_office
):
    first = clean_administration(build, office.connection)
    second = clean_administration(build, office.connection)
    recipients = [other_office.superuser.email, "ontvanger@zuid.example"]
    transfer, _code = offer(office.superuser, [first, second], recipients)
    client = login(office.superuser)
    html = overview(client)
    assert all(r["withdraw"] for r in table_rows(html, "outgoing"))

    response = client.post_form(
        f"{MIGRATIONS}/{transfer.id}/withdraw", {"next": MIGRATIONS}, follow_redirects=True
    )

    assert response.status_code == 200
    assert response.request.path == MIGRATIONS
    assert flash_categories(response.get_data(as_text=True)) == ["success"]
    fresh()
    transfer = db.session.get(Transfer, transfer.id)
    assert transfer.state is TransferState.WITHDRAWN
    assert transfer.ended_by_id == office.superuser.id
    assert transfer.ended_at is not None
    assert {i.state for i in transfer.items} == {ItemState.WITHDRAWN}
    assert administration_states(first, second) == ["active", "active"]
    withdrawn_mails = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "transfer_withdrawn")
    ).all()
    assert sorted(m.to_email for m in withdrawn_mails) == sorted(recipients)
    assert {m.ref_id for m in withdrawn_mails} == {transfer.id}
    rows = table_rows(response.get_data(as_text=True), "outgoing")
    assert {r["state"] for r in rows} == {"withdrawn"}
    assert not any(r["withdraw"] for r in rows)


def test_withdrawing_twice_shows_an_error_and_changes_nothing(login, build, office):
    administration = clean_administration(build, office.connection)
    transfer, _code = offer(office.superuser, [administration])
    client = login(speaks_english(office.superuser))
    overview(client)
    first = client.post_form(
        f"{MIGRATIONS}/{transfer.id}/withdraw", {"next": MIGRATIONS}, follow_redirects=True
    )
    assert flash_categories(first.get_data(as_text=True)) == ["success"]
    fresh()
    ended_at = db.session.get(Transfer, transfer.id).ended_at
    mails = count(OutboxMessage)

    response = client.post_form(
        f"{MIGRATIONS}/{transfer.id}/withdraw", {"next": MIGRATIONS}, follow_redirects=True
    )

    html = response.get_data(as_text=True)
    assert flash_categories(html) == ["error"]
    assert "This offer has already been withdrawn." in text_of(html)
    fresh()
    assert db.session.get(Transfer, transfer.id).ended_at == ended_at
    assert count(OutboxMessage) == mails
    assert count(AuditEvent, AuditEvent.action == "transfer_withdrawn") == 1
    assert administration_states(administration) == ["active"]


def test_another_environments_superuser_gets_404_on_an_offer(login, build, office, other_office):
    administration = clean_administration(build, office.connection)
    transfer, _code = offer(office.superuser, [administration], [other_office.superuser.email])
    third = build.environment("Kantoor West", office_code="WEST")
    stranger = build.user(third, "superuser", email="super@west.example")
    client = login(stranger)
    overview(client)

    assert client.get(f"{MIGRATIONS}/{transfer.id}").status_code == 404
    assert client.post_form(f"{MIGRATIONS}/{transfer.id}/withdraw").status_code == 404
    assert table_rows(overview(client), "incoming") == []
    fresh()
    assert db.session.get(Transfer, transfer.id).state is TransferState.OFFERED


def test_the_receiving_office_cannot_withdraw_the_offer(login, build, office, other_office):
    administration = clean_administration(build, office.connection)
    transfer, _code = offer(office.superuser, [administration], [other_office.superuser.email])
    client = login(other_office.superuser)
    overview(client)

    assert client.post_form(f"{MIGRATIONS}/{transfer.id}/withdraw").status_code == 404
    fresh()
    assert db.session.get(Transfer, transfer.id).state is TransferState.OFFERED
    assert administration_states(administration) == ["offered"]


def test_once_the_claim_has_started_the_offer_can_no_longer_be_withdrawn(
    login, build, office, other_office
):
    first = clean_administration(build, office.connection)
    second = clean_administration(build, office.connection)
    transfer, _code = offer(office.superuser, [first, second], [other_office.superuser.email])
    # What redeeming the code does: the receiving environment owns the offer, one
    # administration is being copied and the other was turned down.
    transfer.target_environment_id = other_office.environment.id
    transfer.items[0].state = ItemState.CLAIMING
    transfer.items[1].state = ItemState.REJECTED
    db.session.commit()
    client = login(speaks_english(office.superuser))

    rows = table_rows(overview(client), "outgoing")
    response = client.post_form(
        f"{MIGRATIONS}/{transfer.id}/withdraw", {"next": MIGRATIONS}, follow_redirects=True
    )

    assert len(rows) == 2
    assert not any(r["withdraw"] for r in rows)
    assert flash_categories(response.get_data(as_text=True)) == ["error"]
    assert "started the claim" in text_of(response.get_data(as_text=True))
    fresh()
    assert db.session.get(Transfer, transfer.id).state is TransferState.OFFERED
    assert count(OutboxMessage, OutboxMessage.kind == "transfer_withdrawn") == 0


# --------------------------------------------------------------------------- while on offer


def test_an_upload_to_an_offered_administration_is_refused_and_nothing_is_stored(
    login, build, office
):
    administration = clean_administration(build, office.connection)
    offer(office.superuser, [administration])
    client = login(speaks_english(office.superuser))
    page = f"/settings/administrations/{administration.id}"
    client.get_page(page)
    documents = count(Document)
    blobs = stored_blobs()

    response = client.post_form(
        f"{page}/documents",
        {
            "file": (io.BytesIO(PDF + b"% nieuw\n"), "factuur.pdf"),
            "kind": "purchase_invoice",
            "counterparty": "Technische Unie",
            "invoice_date": "2024-05-17",
        },
        content_type="multipart/form-data",
    )

    assert response.status_code == 422
    assert "This administration is on offer to another office." in text_of(
        response.get_data(as_text=True)
    )
    assert count(Document) == documents
    assert stored_blobs() == blobs
    assert administration_states(administration) == ["offered"]


# --------------------------------------------------------------------------- the audit trail


def test_offering_and_withdrawing_are_audited_with_the_actor(login, build, office, other_office):
    first = clean_administration(build, office.connection)
    second = clean_administration(build, office.connection)
    client = login(office.superuser)
    walk_the_wizard(client, office.connection, [first, second], [other_office.superuser.email])
    fresh()
    transfer = db.session.scalars(select(Transfer)).one()
    overview(client)
    client.post_form(f"{MIGRATIONS}/{transfer.id}/withdraw", {"next": MIGRATIONS})

    fresh()
    events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    offered = [e for e in events if e.action == "transfer_offered"]
    withdrawn = [e for e in events if e.action == "transfer_withdrawn"]
    queued = [e for e in events if e.action == "mail_queued"]
    assert len(offered) == 1 and len(withdrawn) == 1
    for event in (offered[0], withdrawn[0]):
        assert event.actor_id == office.superuser.id
        assert event.actor_email == office.superuser.email
        assert event.actor_role == "superuser"
        assert event.environment_id == office.environment.id
        assert event.object_type == "transfer"
        assert event.object_id == transfer.id
        assert event.origin.startswith("web")
    assert sorted(offered[0].details["administration_ids"]) == sorted([first.id, second.id])
    assert offered[0].details["recipients"] == [other_office.superuser.email]
    assert offered[0].details["terms_version"] == transfer.terms_version
    # One recipient mail and the requester's copy when offering; one recipient mail on withdrawal.
    assert len(queued) == count(OutboxMessage) == 3
    assert {(e.details["ref_type"], e.details["ref_id"]) for e in queued} == {
        ("transfer", transfer.id)
    }
    assert sorted(e.details["kind"] for e in queued) == [
        "transfer_offered",
        "transfer_offered_copy",
        "transfer_withdrawn",
    ]
    assert offered[0].id < withdrawn[0].id


def test_an_offer_to_a_stranger_or_to_two_offices_is_refused_and_nothing_is_sent(
    login, build, office, other_office
):
    from app.outbox import OutboxMessage

    west = build.environment("Kantoor West", office_code="WEST")
    build.user(west, "superuser", email="super@west.example")
    administration = clean_administration(build, office.connection)
    client = login(office.superuser)

    stranger = walk_the_wizard(
        client, office.connection, [administration], ["iemand@extern.example"]
    )
    assert stranger.status_code == 422
    assert "is geen supergebruiker van een kantoor op deze dienst" in stranger.get_data(
        as_text=True
    )
    both = send(client, ["super@zuid.example", "super@west.example"])
    assert both.status_code == 422
    assert "horen bij verschillende kantoren (Kantoor West, Kantoor Zuid)" in both.get_data(
        as_text=True
    )
    fresh()
    assert db.session.scalars(select(Transfer)).all() == []
    assert db.session.scalars(select(OutboxMessage)).all() == []


def test_an_office_without_the_premium_plan_is_refused_with_the_reason(login, build, office):
    west = build.environment("Kantoor West", plan="standard", office_code="WEST")
    build.user(west, "superuser", email="super@west.example")
    administration = clean_administration(build, office.connection)
    client = login(office.superuser)

    response = walk_the_wizard(client, office.connection, [administration], ["super@west.example"])

    assert response.status_code == 422
    assert "Kantoor West kan geen administraties ontvangen" in response.get_data(as_text=True)
    fresh()
    assert db.session.scalars(select(Transfer)).all() == []


def test_the_code_works_for_the_receiving_office_only(build, office, other_office):
    from app.transfers import claims
    from app.transfers.claims import CodeRejected

    west = build.environment("Kantoor West", office_code="WEST")
    west_super = build.user(west, "superuser", email="super@west.example")
    _transfer, code = offer(office.superuser, [clean_administration(build, office.connection)])

    with pytest.raises(CodeRejected):
        claims.find_offer(west_super, code, origin="tests")
    assert claims.find_offer(other_office.superuser, code, origin="tests")
