"""``/api/v1/transfers`` and the preflight endpoint: offering, field errors, reading from
both sides, withdrawing, and that the database never holds a usable code."""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from app.admin_settings.models import Administration, AdministrationState
from app.audit import AuditEvent
from app.extensions import db
from app.outbox import OutboxMessage
from app.transfers import codes
from app.transfers.models import Transfer, TransferItem, TransferRecipient
from tests.helpers import count, fresh
from tests.integration.test_offer import speaks_english

API = "/api/v1/transfers"
FORMATTED_CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){4}$")


def clean_administration(build, connection, name=None):
    administration = build.administration(connection, name=name)
    build.document(administration, "approved")
    build.document(administration, "rejected")
    return administration


@pytest.fixture(autouse=True)
def zuid_receives(other_office):
    """The default recipient, super@zuid.example, is the superuser of a premium office
    (Kantoor Zuid): an offer goes nowhere else."""


def good_offer(*administrations, recipients=("super@zuid.example",)) -> dict:
    return {
        "administration_ids": [a.id for a in administrations],
        "recipient_emails": list(recipients),
        "checklist_confirmed": True,
        "accept_terms": True,
    }


def nothing_was_created():
    fresh()
    assert count(Transfer) == 0
    assert count(TransferItem) == 0
    assert count(TransferRecipient) == 0
    assert count(OutboxMessage) == 0
    assert count(AuditEvent, AuditEvent.action.in_(["transfer_offered", "mail_queued"])) == 0
    assert set(db.session.scalars(select(Administration.state))) <= {AdministrationState.ACTIVE}


@pytest.fixture
def noord_api(api_client, office):
    return api_client(office.superuser)


@pytest.fixture
def zuid_api(api_client, other_office):
    return api_client(other_office.superuser)


def post_offer(api, payload):
    client, headers = api
    return client.post(API, json=payload, headers=headers)


# --------------------------------------------------------------------------- offering


def test_an_offer_is_created_with_201_and_its_code(noord_api, build, office, other_office):
    first = clean_administration(build, office.connection, name="Bakkerij De Korenschoof")
    second = clean_administration(build, office.connection, name="Garage Jansen")

    response = post_offer(
        noord_api, good_offer(first, second, recipients=[other_office.superuser.email])
    )

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert {"id", "code", "state", "created_at", "expires_at", "items"} <= body.keys()
    assert body["state"] == "offered"
    assert FORMATTED_CODE.match(body["code"])
    created = datetime.fromisoformat(body["created_at"])
    expires = datetime.fromisoformat(body["expires_at"])
    assert expires - created == timedelta(days=15)
    assert [(i["administration_id"], i["state"]) for i in body["items"]] == [
        (first.id, "offered"),
        (second.id, "offered"),
    ]
    assert all(isinstance(i["id"], int) for i in body["items"])
    assert body["target_environment"] == {
        "id": other_office.environment.id,
        "name": other_office.environment.name,
    }
    fresh()
    transfer = db.session.get(Transfer, body["id"])
    assert codes.code_for(transfer) == body["code"]
    assert [i.id for i in transfer.items] == [i["id"] for i in body["items"]]
    assert sorted(db.session.get(Administration, a.id).state.value for a in (first, second)) == [
        "offered",
        "offered",
    ]
    assert count(OutboxMessage, OutboxMessage.ref_id == transfer.id) == 2


def _blocked(build, office):
    administration = clean_administration(build, office.connection)
    build.document(administration, "pending")
    return administration


BAD_OFFERS = {
    "no administrations": (lambda p, b, o: {**p, "administration_ids": []}, "administration_ids"),
    "administrations left out": (
        lambda p, b, o: {k: v for k, v in p.items() if k != "administration_ids"},
        "administration_ids",
    ),
    "an administration id that is not a number": (
        lambda p, b, o: {**p, "administration_ids": ["een"]},
        "administration_ids",
    ),
    "a blocked administration": (
        lambda p, b, o: {**p, "administration_ids": [_blocked(b, o).id]},
        "administration_ids",
    ),
    "no recipients": (lambda p, b, o: {**p, "recipient_emails": []}, "recipient_emails"),
    "recipients left out": (
        lambda p, b, o: {k: v for k, v in p.items() if k != "recipient_emails"},
        "recipient_emails",
    ),
    "a malformed recipient": (
        lambda p, b, o: {**p, "recipient_emails": ["geen-adres"]},
        "recipient_emails",
    ),
    "the requester as recipient": (
        lambda p, b, o: {**p, "recipient_emails": [o.superuser.email]},
        "recipient_emails",
    ),
    "a colleague as recipient": (
        lambda p, b, o: {**p, "recipient_emails": [o.user.email]},
        "recipient_emails",
    ),
    "a recipient twice": (
        lambda p, b, o: {**p, "recipient_emails": ["super@zuid.example", "SUPER@zuid.example"]},
        "recipient_emails",
    ),
    "a stranger as recipient": (
        lambda p, b, o: {**p, "recipient_emails": ["iemand@extern.example"]},
        "recipient_emails",
    ),
    "recipients of two offices": (
        lambda p, b, o: {
            **p,
            "recipient_emails": ["super@zuid.example", _superuser_of(b, "Kantoor West")],
        },
        "recipient_emails",
    ),
    "an office on the standard plan": (
        lambda p, b, o: {
            **p,
            "recipient_emails": [_superuser_of(b, "Kantoor Klein", plan="standard")],
        },
        "recipient_emails",
    ),
    "the checklist not confirmed": (
        lambda p, b, o: {**p, "checklist_confirmed": False},
        "checklist_confirmed",
    ),
    "the checklist left out": (
        lambda p, b, o: {k: v for k, v in p.items() if k != "checklist_confirmed"},
        "checklist_confirmed",
    ),
    "the terms not accepted": (lambda p, b, o: {**p, "accept_terms": False}, "accept_terms"),
    "the terms left out": (
        lambda p, b, o: {k: v for k, v in p.items() if k != "accept_terms"},
        "accept_terms",
    ),
}


def _superuser_of(build, office_name: str, plan: str = "premium") -> str:
    environment = build.environment(office_name, plan=plan)
    return build.user(environment, "superuser").email


@pytest.mark.parametrize("bad", list(BAD_OFFERS))
def test_a_bad_offer_is_422_with_the_field_and_nothing_is_created(noord_api, build, office, bad):
    spoil, field = BAD_OFFERS[bad]
    payload = spoil(good_offer(clean_administration(build, office.connection)), build, office)

    response = post_offer(noord_api, payload)

    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["code"] == 422
    assert field in body["errors"], body
    assert body["errors"][field]
    nothing_was_created()


def test_every_mistake_of_an_offer_is_reported_at_once(noord_api, build, office):
    payload = {
        "administration_ids": [_blocked(build, office).id],
        "recipient_emails": ["geen-adres"],
        "checklist_confirmed": False,
        "accept_terms": False,
    }

    response = post_offer(noord_api, payload)

    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {
        "administration_ids",
        "recipient_emails",
        "checklist_confirmed",
        "accept_terms",
    }
    nothing_was_created()


def test_offering_another_environments_administration_is_404_and_creates_nothing(
    noord_api, build, office, other_office
):
    own = clean_administration(build, office.connection)
    foreign = clean_administration(build, other_office.connection)

    response = post_offer(noord_api, good_offer(own, foreign))

    assert response.status_code == 404
    nothing_was_created()
    assert db.session.get(Administration, foreign.id).state.value == "active"


def test_offering_an_administration_that_does_not_exist_is_404(noord_api, build, office):
    response = post_offer(noord_api, {**good_offer(), "administration_ids": [987654]})

    assert response.status_code == 404
    nothing_was_created()


def test_an_administration_already_on_offer_cannot_be_offered_again(noord_api, build, office):
    administration = clean_administration(build, office.connection)
    assert post_offer(noord_api, good_offer(administration)).status_code == 201

    response = post_offer(noord_api, good_offer(administration, recipients=["ander@west.example"]))

    assert response.status_code == 422
    assert "administration_ids" in response.get_json()["errors"]
    assert count(Transfer) == 1


def test_a_user_without_the_superuser_role_cannot_offer(api_client, build, office):
    client, headers = api_client(office.user)
    administration = clean_administration(build, office.connection)

    response = client.post(API, json=good_offer(administration), headers=headers)

    assert response.status_code == 403, response.get_json()
    nothing_was_created()


def _post_at_once(clients_and_payloads) -> tuple[list[int], list[str]]:
    """POST several offers at the same moment, each from its own client and thread;
    the sorted status codes and what crashed."""
    start = threading.Barrier(len(clients_and_payloads))
    statuses: list[int] = []
    crashes: list[str] = []

    def post(api, payload):
        client, headers = api
        start.wait()
        try:
            statuses.append(client.post(API, json=payload, headers=headers).status_code)
        except Exception as error:  # the testing app propagates a 500's exception
            statuses.append(500)
            cause = getattr(error, "orig", None) or error
            crashes.append(f"{type(cause).__name__}: {str(cause).splitlines()[0]}")

    threads = [threading.Thread(target=post, args=pair) for pair in clients_and_payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(statuses), crashes


def test_two_offers_of_different_administrations_sent_at_the_same_moment_both_succeed(
    api_client, build, office
):
    first = clean_administration(build, office.connection)
    second = clean_administration(build, office.connection)
    clients = [api_client(office.superuser), api_client(office.superuser)]
    payloads = [good_offer(first), good_offer(second)]
    fresh()  # the test's own session holds no transaction while the requests run

    statuses, crashes = _post_at_once(list(zip(clients, payloads, strict=True)))

    assert crashes == []
    assert statuses == [201, 201]
    assert count(Transfer) == 2
    assert count(OutboxMessage) == 4


def test_one_administration_offered_twice_at_the_same_moment_is_offered_once(
    api_client, build, office
):
    administration = clean_administration(build, office.connection)
    clients = [api_client(office.superuser), api_client(office.superuser)]
    payloads = [good_offer(administration), good_offer(administration, recipients=["x@west.nl"])]
    fresh()  # the test's own session holds no transaction while the requests run

    statuses, crashes = _post_at_once(list(zip(clients, payloads, strict=True)))

    assert crashes == []
    assert statuses == [201, 422]
    assert count(Transfer) == 1
    assert count(TransferItem) == 1
    assert count(OutboxMessage) == 2
    assert db.session.get(Administration, administration.id).state is AdministrationState.OFFERED


# --------------------------------------------------------------------------- reading


def test_the_offering_side_lists_its_offers_with_codes_newest_first(noord_api, build, office):
    older = post_offer(noord_api, good_offer(clean_administration(build, office.connection)))
    newer = post_offer(noord_api, good_offer(clean_administration(build, office.connection)))
    client, headers = noord_api

    response = client.get(API, query_string={"direction": "outgoing"}, headers=headers)

    assert response.status_code == 200
    body = response.get_json()
    assert body["total"] == 2 and body["page"] == 1
    ids = [row["transfer_id"] for row in body["items"]]
    assert ids == [newer.get_json()["id"], older.get_json()["id"]]
    assert [row["code"] for row in body["items"]] == [
        newer.get_json()["code"],
        older.get_json()["code"],
    ]
    assert {row["state"] for row in body["items"]} == {"offered"}
    assert all(row["can_withdraw"] for row in body["items"])


def test_the_api_list_searches_by_code_typed_loosely(noord_api, build, office):
    wanted = post_offer(
        noord_api, good_offer(clean_administration(build, office.connection))
    ).get_json()
    post_offer(noord_api, good_offer(clean_administration(build, office.connection)))
    client, headers = noord_api

    loose = wanted["code"].lower().replace("-", " ")
    response = client.get(API, query_string={"q": loose}, headers=headers)

    assert [row["transfer_id"] for row in response.get_json()["items"]] == [wanted["id"]]


def test_the_receiving_side_reads_the_offer_without_its_code(
    noord_api, zuid_api, build, office, other_office
):
    created = post_offer(
        noord_api,
        good_offer(
            clean_administration(build, office.connection),
            recipients=[other_office.superuser.email],
        ),
    ).get_json()
    client, headers = zuid_api

    one = client.get(f"{API}/{created['id']}", headers=headers)
    listed = client.get(API, query_string={"direction": "incoming"}, headers=headers)
    outgoing = client.get(API, query_string={"direction": "outgoing"}, headers=headers)

    assert one.status_code == 200
    assert one.get_json()["code"] is None
    assert one.get_json()["direction"] == "incoming"
    assert one.get_json()["state"] == "offered"
    assert one.get_json()["target_environment"]["name"] == other_office.environment.name
    assert created["code"] not in one.get_data(as_text=True)
    rows = listed.get_json()["items"]
    assert [r["transfer_id"] for r in rows] == [created["id"]]
    assert rows[0]["code"] is None
    assert not rows[0]["can_withdraw"]
    assert created["code"] not in listed.get_data(as_text=True)
    assert outgoing.get_json()["items"] == []


def test_the_offering_side_reads_its_offer_with_the_code(noord_api, build, office):
    created = post_offer(
        noord_api, good_offer(clean_administration(build, office.connection))
    ).get_json()
    client, headers = noord_api

    response = client.get(f"{API}/{created['id']}", headers=headers)

    assert response.status_code == 200
    assert response.get_json()["code"] == created["code"]
    assert response.get_json()["direction"] == "outgoing"


def test_an_environment_the_offer_is_not_for_gets_404(api_client, noord_api, build, office):
    created = post_offer(
        noord_api, good_offer(clean_administration(build, office.connection))
    ).get_json()
    west = build.environment("Kantoor West", office_code="WEST")
    client, headers = api_client(build.user(west, "superuser", email="super@west.example"))

    assert client.get(f"{API}/{created['id']}", headers=headers).status_code == 404
    assert client.post(f"{API}/{created['id']}/withdraw", headers=headers).status_code == 404
    listed = client.get(API, query_string={"direction": "incoming"}, headers=headers)
    assert listed.get_json()["items"] == []


def test_an_unknown_direction_is_422(noord_api):
    client, headers = noord_api

    response = client.get(API, query_string={"direction": "sideways"}, headers=headers)

    assert response.status_code == 422
    assert "direction" in response.get_json()["errors"]


# --------------------------------------------------------------------------- withdrawing


def test_withdrawing_through_the_api_ends_the_offer(noord_api, build, office):
    administration = clean_administration(build, office.connection)
    created = post_offer(noord_api, good_offer(administration)).get_json()
    client, headers = noord_api

    response = client.post(f"{API}/{created['id']}/withdraw", headers=headers)

    assert response.status_code == 200
    body = response.get_json()
    assert body["state"] == "withdrawn"
    assert {i["state"] for i in body["items"]} == {"withdrawn"}
    fresh()
    assert db.session.get(Administration, administration.id).state.value == "active"
    assert count(OutboxMessage, OutboxMessage.kind == "transfer_withdrawn") == 1


def test_withdrawing_twice_through_the_api_is_409_and_changes_nothing(noord_api, build, office):
    created = post_offer(
        noord_api, good_offer(clean_administration(build, office.connection))
    ).get_json()
    client, headers = noord_api
    assert client.post(f"{API}/{created['id']}/withdraw", headers=headers).status_code == 200
    mails = count(OutboxMessage)

    response = client.post(f"{API}/{created['id']}/withdraw", headers=headers)

    assert response.status_code == 409
    body = response.get_json()
    assert body["code"] == 409 and body["message"]
    assert "transfer" in body["errors"]
    assert count(OutboxMessage) == mails
    assert count(AuditEvent, AuditEvent.action == "transfer_withdrawn") == 1


def test_the_receiving_side_cannot_withdraw_through_the_api(
    noord_api, zuid_api, build, office, other_office
):
    created = post_offer(
        noord_api,
        good_offer(
            clean_administration(build, office.connection),
            recipients=[other_office.superuser.email],
        ),
    ).get_json()
    client, headers = zuid_api

    assert client.post(f"{API}/{created['id']}/withdraw", headers=headers).status_code == 404
    fresh()
    assert db.session.get(Transfer, created["id"]).state.value == "offered"


# --------------------------------------------------------------------------- preflight


def test_preflight_shows_every_blocker_of_an_administration(noord_api, build, office):
    administration = clean_administration(build, office.connection)
    build.document(administration, "pending")
    build.document(administration, "pending")
    build.workflow(administration)
    build.authorization_step(administration, office.authorizer)
    client, headers = noord_api

    response = client.get(f"/api/v1/administrations/{administration.id}/preflight", headers=headers)

    assert response.status_code == 200
    body = response.get_json()
    assert body["administration_id"] == administration.id
    assert body["selectable"] is False
    assert body["blockers"] == [
        {"kind": "authorizers_in_flows", "count": 1},
        {"kind": "active_workflows", "count": 1},
        {"kind": "undecided_documents", "count": 2},
    ]
    assert body["undecided_documents"] == 2


def test_preflight_of_a_clean_administration_has_no_blockers(noord_api, build, office):
    administration = clean_administration(build, office.connection)
    build.workflow(administration, active=False)
    client, headers = noord_api

    body = client.get(
        f"/api/v1/administrations/{administration.id}/preflight", headers=headers
    ).get_json()

    assert body["blockers"] == []
    assert body["selectable"] is True
    assert body["state"] == "active"


def test_preflight_of_an_offered_administration_is_not_selectable(noord_api, build, office):
    administration = clean_administration(build, office.connection)
    post_offer(noord_api, good_offer(administration))
    client, headers = noord_api

    body = client.get(
        f"/api/v1/administrations/{administration.id}/preflight", headers=headers
    ).get_json()

    assert body["state"] == "offered"
    assert body["selectable"] is False


def test_preflight_of_another_environments_administration_is_404(noord_api, build, other_office):
    foreign = clean_administration(build, other_office.connection)
    client, headers = noord_api

    response = client.get(f"/api/v1/administrations/{foreign.id}/preflight", headers=headers)

    assert response.status_code == 404


# --------------------------------------------------------------------------- the code at rest


def _cells():
    """(table.column, text) of every value in every table of the application."""
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)).mappings():
            for column, value in row.items():
                if value is None:
                    continue
                text = json.dumps(value) if isinstance(value, dict | list) else str(value)
                yield f"{table.name}.{column}", text


def test_no_column_of_any_table_holds_the_code_after_an_offer(
    noord_api, build, office, other_office
):
    created = post_offer(
        noord_api,
        good_offer(
            clean_administration(build, office.connection),
            recipients=[other_office.superuser.email],
        ),
    ).get_json()
    formatted = created["code"]
    normalised = formatted.replace("-", "")
    needles = {formatted, normalised, formatted.lower(), normalised.lower()}
    fresh()

    found = sorted({where for where, text in _cells() if any(needle in text for needle in needles)})

    assert count(Transfer) == 1
    assert found == [], f"the transfer code is readable in {found}"


def test_the_api_names_why_an_office_cannot_be_offered_to(api_client, build, office, other_office):
    client, headers = api_client(speaks_english(office.superuser))
    west = _superuser_of(build, "Kantoor West")
    klein = _superuser_of(build, "Kantoor Klein", plan="standard")
    administration = clean_administration(build, office.connection)

    said = {}
    for case, recipients in {
        "stranger": ["iemand@extern.example"],
        "two offices": [other_office.superuser.email, west],
        "standard plan": [klein],
    }.items():
        response = client.post(
            API, json=good_offer(administration, recipients=recipients), headers=headers
        )
        assert response.status_code == 422
        said[case] = " ".join(response.get_json()["errors"]["recipient_emails"])

    assert "“iemand@extern.example” is not a superuser of an office" in said["stranger"]
    assert "belong to different offices (Kantoor West, Kantoor Zuid)" in said["two offices"]
    assert "Kantoor Klein cannot receive administrations" in said["standard plan"]
    nothing_was_created()
