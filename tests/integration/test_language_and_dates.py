"""Language and dates (issue 11, item 14): dates read the same way in both languages (day,
month name, year); the overview's search finds a date as it is shown, a group of the
code and a recipient's address; a language picked on the login page is kept and used for
mail; mails and messages use real plurals; the API answers in the language asked for."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, text

from app.auth.models import User
from app.extensions import db
from app.outbox import OutboxMessage
from app.transfers import domain
from app.transfers.models import TransferCodeGroup
from tests.conftest import TEST_PASSWORD
from tests.helpers import fresh, offer
from tests.integration.pages import html_lang, text_of
from tests.integration.test_offer import clean_administration, overview, table_rows

# 08:55 in Amsterdam (winter time) on 1 December 2026; the offer expires 15 days later.
OFFERED_AT = datetime(2026, 12, 1, 7, 55, tzinfo=UTC)
EARLIER = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # expires 5 December


def speaks(user, language):
    user.language = language
    db.session.commit()
    return user


def mails_to(email: str, kind: str | None = None) -> list[OutboxMessage]:
    fresh()
    stmt = select(OutboxMessage).where(OutboxMessage.to_email == email)
    if kind:
        stmt = stmt.where(OutboxMessage.kind == kind)
    return list(db.session.scalars(stmt.order_by(OutboxMessage.id)))


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("language", "offered", "expires"),
    [
        ("en", "1 Dec 2026, 08:55", "16 Dec 2026, 08:55"),
        ("nl", "1 dec 2026, 08:55", "16 dec 2026, 08:55"),
    ],
)
def test_the_overview_shows_day_month_name_and_year_in_either_language(
    login, build, office, other_office, language, offered, expires
):
    administration = clean_administration(build, office.connection, name="Bakkerij Korenschoof")
    offer(office.superuser, [administration], now=OFFERED_AT)

    html = overview(login(speaks(office.superuser, language)))

    [row] = table_rows(html, "outgoing")
    assert offered in row["text"] and expires in row["text"]
    assert "12/1/26" not in html and "01-12-2026" not in html


@pytest.mark.parametrize(("language", "invoice_day"), [("en", "1 Mar 2024"), ("nl", "1 mrt 2024")])
def test_a_day_without_a_time_is_shown_with_the_month_name(
    login, build, office, language, invoice_day
):
    administration = build.administration(office.connection)
    build.document(administration, invoice_date=date(2024, 3, 1))

    response = login(speaks(office.superuser, language)).get(
        f"/settings/administrations/{administration.id}"
    )

    assert response.status_code == 200
    page = text_of(response.get_data(as_text=True))
    assert invoice_day in page
    assert "3/1/24" not in page and "01-03-2024" not in page


@pytest.mark.parametrize(
    ("language", "valid_until"),
    [("en", "16 December 2026, 08:55 CET"), ("nl", "16 december 2026, 08:55 CET")],
)
def test_the_offer_mail_spells_out_the_expiry_in_the_recipients_language(
    build, office, other_office, language, valid_until
):
    speaks(other_office.superuser, language)
    administration = clean_administration(build, office.connection)

    offer(office.superuser, [administration], now=OFFERED_AT)

    [mail] = mails_to(other_office.superuser.email, "transfer_offered")
    assert valid_until in mail.body_text and valid_until in mail.body_html


# --------------------------------------------------------------------------- search


@pytest.fixture
def two_offers(build, office, other_office):
    """Offer A (1 December 2026, to Zuid) and offer B (20 November, to Oost)."""
    a_administration = clean_administration(build, office.connection, name="Bakkerij Korenschoof")
    b_administration = clean_administration(build, office.connection, name="Garage Jansen")
    a, a_code = offer(office.superuser, [a_administration], now=OFFERED_AT)
    b, _b_code = offer(office.superuser, [b_administration], ["super@oost.example"], now=EARLIER)
    return a, a_code, b


DAY_SEARCHES = [
    "1 Dec 2026",
    "1 dec 2026",
    "1 DEC 2026",
    "1 december 2026",
    "1 dec. 2026",
    "1 Dec 2026, 08:55",
    "01-12-2026",
    "1-12-2026",
    "2026-12-01",
]


@pytest.mark.parametrize("q", DAY_SEARCHES)
def test_searching_the_offers_for_a_day_as_it_is_shown_finds_the_offer_of_that_day(
    login, office, two_offers, q
):
    a, _code, _b = two_offers

    rows = table_rows(overview(login(office.superuser), q_out=q), "outgoing")

    assert [r["transfer_id"] for r in rows] == [a.id], f"searching {q!r}"


def test_searching_for_the_expiry_day_as_shown_in_english_finds_the_offer(
    login, office, two_offers
):
    _a, _code, b = two_offers
    client = login(speaks(office.superuser, "en"))

    rows = table_rows(overview(client, q_out="5 Dec 2026"), "outgoing")

    assert [r["transfer_id"] for r in rows] == [b.id]


def test_the_received_list_finds_an_offer_by_the_day_it_was_offered(
    login, build, office, other_office
):
    first = clean_administration(build, office.connection, name="Bakkerij Korenschoof")
    second = clean_administration(build, office.connection, name="Garage Jansen")
    a, _ = offer(office.superuser, [first], now=OFFERED_AT)
    offer(office.superuser, [second], now=EARLIER)
    client = login(speaks(other_office.superuser, "en"))

    for q in ("1 Dec 2026", "1 dec 2026", "01-12-2026"):
        rows = table_rows(overview(client, q_in=q), "incoming")
        assert [r["transfer_id"] for r in rows] == [a.id], f"searching {q!r}"


def _groups(code: str) -> list[str]:
    return code.split("-")


CODE_SEARCHES = {
    "one group as shown": lambda groups: groups[1],
    "one group in lower case": lambda groups: groups[3].lower(),
    "two groups with their dash": lambda groups: f"{groups[0]}-{groups[1]}",
    "two groups run together": lambda groups: (groups[2] + groups[3]).lower(),
    "the whole code without dashes": lambda groups: "".join(groups),
}


@pytest.mark.parametrize("search", list(CODE_SEARCHES))
def test_searching_for_part_of_the_code_as_it_is_shown_finds_the_offer(
    login, office, two_offers, search
):
    a, a_code, _b = two_offers
    q = CODE_SEARCHES[search](_groups(a_code))

    rows = table_rows(overview(login(office.superuser), q_out=q), "outgoing")

    assert [r["transfer_id"] for r in rows] == [a.id], f"searching {q!r}"
    assert rows[0]["code"] == a_code


def test_groups_of_two_different_codes_find_nothing(login, office, two_offers):
    """Every group searched for must be of the same offer."""
    a, a_code, b = two_offers
    from app.transfers.codes import code_for

    b_code = code_for(b)
    q = f"{_groups(a_code)[0]}-{_groups(b_code)[1]}"

    assert table_rows(overview(login(office.superuser), q_out=q), "outgoing") == []


def test_the_code_groups_are_stored_only_as_keyed_digests(two_offers):
    a, a_code, _b = two_offers

    digests = set(
        db.session.scalars(
            select(TransferCodeGroup.digest).where(TransferCodeGroup.transfer_id == a.id)
        )
    )

    assert len(digests) == 5
    for group in _groups(a_code):
        assert group not in digests and group.lower() not in digests
        assert all(group.lower() not in d for d in digests)
    assert a_code.replace("-", "") not in "".join(digests).upper()


@pytest.mark.parametrize("q", ["super@zuid.example", "zuid.example", "SUPER@ZUID"])
def test_searching_the_offers_for_a_recipients_address_finds_the_offers_made_to_it(
    login, office, two_offers, q
):
    a, _code, _b = two_offers

    rows = table_rows(overview(login(office.superuser), q_out=q), "outgoing")

    assert [r["transfer_id"] for r in rows] == [a.id], f"searching {q!r}"


def test_the_received_list_finds_an_offer_by_the_colleague_it_was_sent_to(
    login, build, office, other_office
):
    colleague = build.user(other_office.environment, "superuser", email="tweede@zuid.example")
    first = clean_administration(build, office.connection, name="Bakkerij Korenschoof")
    second = clean_administration(build, office.connection, name="Garage Jansen")
    offer(office.superuser, [first], [other_office.superuser.email])
    to_colleague, _ = offer(office.superuser, [second], [colleague.email])

    rows = table_rows(overview(login(other_office.superuser), q_in="tweede@zuid"), "incoming")

    assert [r["transfer_id"] for r in rows] == [to_colleague.id]


# --------------------------------------------------------------------------- login language


def pick_language_on_the_login_page(client, language: str) -> None:
    client.get_page("/login")
    response = client.post_form("/language", {"language": language, "next": "/login"})
    assert response.status_code == 302
    assert html_lang(client.get_page("/login").get_data(as_text=True)) == language


def log_in(client, user):
    response = client.post_form("/login", {"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client.get_page(response.headers["Location"]).get_data(as_text=True)


def test_english_picked_on_the_login_page_is_kept_and_used_for_mail(
    app, build, office, other_office
):
    receiver = other_office.superuser
    assert receiver.language is None
    client = app.test_client()

    pick_language_on_the_login_page(client, "en")
    page = log_in(client, receiver)

    assert html_lang(page) == "en"
    assert db.session.get(User, receiver.id).language == "en"
    administration = clean_administration(build, office.connection)
    offer(office.superuser, [administration], [receiver.email])
    [mail] = mails_to(receiver.email, "transfer_offered")
    assert mail.language == "en"
    assert mail.subject == "Kantoor Noord offers you 1 administration"
    assert "Transfer code:" in mail.body_text


def test_an_explicit_pick_on_the_login_page_wins_over_the_saved_language(app, office):
    user = speaks(office.superuser, "nl")
    client = app.test_client()

    pick_language_on_the_login_page(client, "en")
    page = log_in(client, user)

    assert html_lang(page) == "en"
    assert db.session.get(User, user.id).language == "en"


def test_without_a_pick_the_saved_language_is_used(app, office):
    user = speaks(office.superuser, "en")
    client = app.test_client()
    client.get_page("/login")

    page = log_in(client, user)

    assert html_lang(page) == "en"
    assert db.session.get(User, user.id).language == "en"


def test_the_language_a_previous_user_left_behind_is_not_saved_for_the_next(
    app, office, other_office
):
    """Logging out keeps the language for the login page; it is no pick of the next user."""
    first = speaks(office.superuser, "en")
    client = app.test_client()
    client.get_page("/login")
    log_in(client, first)
    client.post_form("/logout")
    assert html_lang(client.get_page("/login").get_data(as_text=True)) == "en"

    log_in(client, other_office.superuser)

    assert db.session.get(User, other_office.superuser.id).language is None


# --------------------------------------------------------------------------- plurals


@pytest.mark.parametrize(
    ("language", "one", "two"),
    [
        (
            "en",
            ("Kantoor Noord offers you 1 administration", "offers you 1 administration to move"),
            ("Kantoor Noord offers you 2 administrations", "offers you 2 administrations to move"),
        ),
        (
            "nl",
            ("Kantoor Noord biedt je 1 administratie aan", "biedt je 1 administratie aan om"),
            ("Kantoor Noord biedt je 2 administraties aan", "biedt je 2 administraties aan om"),
        ),
    ],
)
def test_the_offer_mail_says_one_administration_or_two_administrations(
    build, office, other_office, language, one, two
):
    speaks(other_office.superuser, language)
    single = clean_administration(build, office.connection)
    pair = [clean_administration(build, office.connection) for _ in range(2)]

    offer(office.superuser, [single])
    offer(office.superuser, pair)

    first, second = mails_to(other_office.superuser.email, "transfer_offered")
    for mail, (subject, body) in ((first, one), (second, two)):
        assert mail.subject == subject
        assert body in mail.body_text and body in text_of(mail.body_html)
        assert "(s)" not in mail.subject


@pytest.mark.parametrize(
    ("language", "one", "two"),
    [
        ("en", "You have offered 1 administration to", "You have offered 2 administrations to"),
        ("nl", "Je hebt 1 administratie aangeboden aan", "Je hebt 2 administraties aangeboden aan"),
    ],
)
def test_the_requesters_copy_counts_in_real_plurals(
    build, office, other_office, language, one, two
):
    speaks(office.superuser, language)
    offer(office.superuser, [clean_administration(build, office.connection)])
    offer(office.superuser, [clean_administration(build, office.connection) for _ in range(2)])

    first, second = mails_to(office.superuser.email, "transfer_offered_copy")

    assert one in first.body_text and two in second.body_text
    assert "(s)" not in first.subject + second.subject


def test_a_blocked_administration_names_its_blockers_in_real_plurals(
    api_client, build, office, other_office
):
    """ "1 actieve workflow", "2 nog te beoordelen documenten": no "workflow(s)"."""
    administration = build.administration(office.connection, name="Geblokkeerd BV")
    build.document(administration, "pending")
    build.document(administration, "pending")
    build.workflow(administration)
    client, headers = api_client(office.superuser)

    response = client.post(
        "/api/v1/transfers",
        json={
            "administration_ids": [administration.id],
            "recipient_emails": [other_office.superuser.email],
            "checklist_confirmed": True,
            "accept_terms": True,
        },
        headers={**headers, "Accept-Language": "nl"},
    )

    assert response.status_code == 422
    [message] = response.get_json()["errors"]["administration_ids"]
    assert "1 actieve workflow," in message and "(s)" not in message
    assert "2 nog te beoordelen documenten" in message


# --------------------------------------------------------------------------- API errors


def _messages(body) -> list[str]:
    found = [body["message"]]

    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        else:
            found.append(value)

    walk(body.get("errors", {}))
    return found


ENGLISH_ONLY = re.compile(r"Missing data|Not a valid|Must be|Unknown field|Some of the input")


@pytest.mark.parametrize(
    ("language", "message", "required", "not_a_list"),
    [
        (
            "en",
            "Some of the input is not valid.",
            "Missing data for required field.",
            "Not a valid list.",
        ),
        (
            "nl",
            "Een deel van de invoer is niet geldig.",
            "Dit veld is verplicht.",
            "Geen geldige lijst.",
        ),
    ],
)
def test_a_422_has_its_message_and_field_errors_in_the_language_asked_for(
    api_client, office, language, message, required, not_a_list
):
    client, headers = api_client(office.superuser)

    response = client.post(
        "/api/v1/transfers",
        json={"administration_ids": "1", "checklist_confirmed": "misschien"},
        headers={**headers, "Accept-Language": language},
    )

    assert response.status_code == 422
    body = response.get_json()
    assert body["message"] == message
    assert body["errors"]["recipient_emails"] == [required]
    assert body["errors"]["administration_ids"] == [not_a_list]
    if language == "nl":
        assert not [m for m in _messages(body) if ENGLISH_ONLY.search(m)], body


@pytest.mark.parametrize(
    ("language", "expected", "choices"),
    [
        (
            "en",
            "Must be greater than or equal to 1 and less than or equal to 10000.",
            "Must be one of: pending, approved, rejected.",
        ),
        (
            "nl",
            "Moet minstens 1 en hoogstens 10000 zijn.",
            "Moet een van deze waarden zijn: pending, approved, rejected.",
        ),
    ],
)
def test_a_bound_in_a_query_is_told_in_the_language_asked_for(
    api_client, build, office, language, expected, choices
):
    administration = build.administration(office.connection)
    client, headers = api_client(office.superuser)

    response = client.get(
        f"/api/v1/administrations/{administration.id}/documents?page=0&status=bogus",
        headers={**headers, "Accept-Language": language},
    )

    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert errors["page"] == [expected]
    assert errors["status"] == [choices]


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "This page does not exist, or it is not yours to see."),
        ("nl", "Deze pagina bestaat niet, of je hebt geen toegang tot deze pagina."),
    ],
)
def test_a_404_is_told_in_the_language_asked_for(api_client, office, language, expected):
    client, headers = api_client(office.superuser)

    response = client.get(
        "/api/v1/transfers/999999", headers={**headers, "Accept-Language": language}
    )

    assert response.status_code == 404
    assert response.get_json()["message"] == expected


def test_accept_language_wins_over_the_token_users_saved_language(api_client, office):
    client, headers = api_client(speaks(office.superuser, "nl"))

    asked = client.get(
        "/api/v1/transfers/999999", headers={**headers, "Accept-Language": "en-GB,en;q=0.8"}
    )
    unasked = client.get("/api/v1/transfers/999999", headers=headers)
    unknown = client.get("/api/v1/transfers/999999", headers={**headers, "Accept-Language": "fr"})

    assert asked.get_json()["message"].startswith("This page does not exist")
    assert unasked.get_json()["message"].startswith("Deze pagina bestaat niet")
    assert unknown.get_json()["message"].startswith("Deze pagina bestaat niet")


def test_without_accept_language_the_token_users_saved_language_is_used(api_client, office):
    client, headers = api_client(speaks(office.superuser, "en"))

    response = client.post("/api/v1/transfers", json={}, headers=headers)

    assert response.get_json()["errors"]["recipient_emails"] == ["Missing data for required field."]


# --------------------------------------------------------------------------- migration


def test_the_migration_makes_the_offers_already_made_searchable_by_code_group_and_recipient(
    build, office, other_office
):
    """Offers made before the upgrade get their group digests and recipients' addresses
    (the migration's own data step, run on offers as they were before it)."""
    import importlib.util
    from pathlib import Path

    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    from app.transfers import overview as listing

    administration = clean_administration(build, office.connection, name="Bakkerij Korenschoof")
    transfer, code = offer(office.superuser, [administration], [other_office.superuser.email])
    item = transfer.items[0]
    before = domain.search_text(
        item.administration_name,
        item.administration_code,
        item.contact_email,
        item.package,
        "Exact Online",
    )
    db.session.execute(text("DELETE FROM transfer_code_groups"))
    db.session.execute(text("UPDATE transfer_items SET search_text = :t"), {"t": before})
    db.session.execute(text("UPDATE transfer_inbox SET search_text = :t"), {"t": before})
    db.session.commit()

    def found(q, actor=office.superuser, direction="outgoing"):
        page = listing.list_transfers(actor, direction=direction, q=q, state_labels={})
        return [row.transfer.id for row in page.items]

    group = code.split("-")[2]
    assert found(group) == [] and found("zuid.example") == []

    versions = Path(__file__).resolve().parents[2] / "migrations" / "versions"
    path = next(versions.glob("9b3e5d21c4a7_*.py"))
    spec = importlib.util.spec_from_file_location("code_groups_migration", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with Operations.context(MigrationContext.configure(db.session.connection())):
        migration._fill_in_existing_offers()
    db.session.commit()

    assert found(group) == [transfer.id]
    assert found("zuid.example") == [transfer.id]
    assert found("bakkerij") == [transfer.id]
    assert found("super@zuid", other_office.superuser, "incoming") == [transfer.id]
