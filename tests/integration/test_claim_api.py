"""``/api/v1/claims``: the preview, the claim (202), its progress, the reconciliation report,
bad input as 422 with errors keyed by field, and another environment's claim as 404."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.admin_settings.models import Administration, Document
from app.audit import AuditEvent
from app.db import utcnow
from app.extensions import db
from app.transfers import claims, offers
from app.transfers.copying import copy_waiting
from app.transfers.models import Claim, ItemState, Transfer, TransferItem
from tests.helpers import used_elsewhere
from tests.integration.test_claim import (
    count,
    fresh,
    offer,
    offerable,
    speaks_english,
    target_snapshot,
    typo_of,
    unknown_code,
)

API = "/api/v1/claims"
NEUTRAL = claims.NEUTRAL


@pytest.fixture
def zuid_api(api_client, other_office):
    speaks_english(other_office.superuser)
    return api_client(other_office.superuser)


@pytest.fixture
def offered(build, office):
    """Noord offers "Kapsalon Knip" (5 documents over three years) and "Garage Snel"."""
    kapsalon = offerable(build, office.connection, documents=5, name="Kapsalon Knip", code="2024")
    garage = offerable(build, office.connection, documents=1, name="Garage Snel", code="77")
    transfer, code = offer(
        office.superuser,
        [kapsalon, garage],
        recipients=("super@zuid.example",),
    )
    return transfer, code, kapsalon, garage


def accept_all(transfer, connection, code, accept_terms=True) -> dict:
    return {
        "code": code,
        "decisions": [
            {"item_id": i.id, "action": "accept", "connection_id": connection.id}
            for i in transfer.items
        ],
        "accept_terms": accept_terms,
    }


def test_the_preview_shows_what_arrives_and_where_it_can_go(
    zuid_api, build, office, other_office, offered
):
    transfer, code, kapsalon, garage = offered
    second = build.connection(other_office.environment, name="Exact tweede")
    build.administration(second, name="Eigen", code="2024")
    http, headers = zuid_api

    response = http.post(f"{API}/preview", json={"code": code.lower()}, headers=headers)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["transfer_id"] == transfer.id
    assert body["source_environment"] == "Kantoor Noord"
    assert body["offered_by"] == "Sanne Noord"
    assert body["premium"] is True
    assert body["problems"] == []
    assert body["fee_per_administration"] == "25.00"
    assert body["currency"] == "EUR"
    assert body["terms_version"] == "2026-11"
    items = {i["item_id"]: i for i in body["items"]}
    first, other = transfer.items
    sizes = {
        a.id: sum(
            db.session.scalars(select(Document.size).where(Document.administration_id == a.id))
        )
        for a in (kapsalon, garage)
    }
    assert items[first.id]["administration_name"] == "Kapsalon Knip"
    assert items[first.id]["administration_code"] == "2024"
    assert items[first.id]["accounting_system"] == "exact_online"
    assert items[first.id]["documents"] == 5
    assert items[first.id]["archive_years"] == [2022, 2023, 2024]
    assert items[first.id]["total_size"] == sizes[kapsalon.id]
    assert sorted(items[first.id]["connections"], key=lambda c: c["id"]) == [
        {"id": other_office.connection.id, "name": "Exact Online", "code_clash": False},
        {"id": second.id, "name": "Exact tweede", "code_clash": True},
    ]
    assert items[first.id]["problem"] is None
    assert items[other.id]["documents"] == 1
    assert items[other.id]["archive_years"] == [2022]
    assert items[other.id]["total_size"] == sizes[garage.id]
    assert all(not c["code_clash"] for c in items[other.id]["connections"])


def test_a_preview_changes_nothing(zuid_api, other_office, offered):
    transfer, code, _k, _g = offered
    http, headers = zuid_api
    before = target_snapshot(other_office.environment)

    http.post(f"{API}/preview", json={"code": code}, headers=headers)

    assert target_snapshot(other_office.environment) == before
    fresh()
    assert db.session.get(Transfer, transfer.id).target_environment_id is None
    assert {i.state for i in db.session.get(Transfer, transfer.id).items} == {ItemState.OFFERED}


def test_the_preview_of_a_receiver_without_the_premium_plan_names_the_problem(
    zuid_api, other_office, offered
):
    _t, code, _k, _g = offered
    other_office.environment.plan = "standard"
    db.session.commit()
    http, headers = zuid_api

    body = http.post(f"{API}/preview", json={"code": code}, headers=headers).get_json()

    assert body["premium"] is False
    assert body["problems"] == [
        "Only an environment with the premium plan can receive administrations."
    ]


def test_the_preview_names_a_missing_package_by_its_label(zuid_api, other_office, offered):
    transfer, code, _k, _g = offered
    other_office.connection.package = "twinfield"
    db.session.commit()
    http, headers = zuid_api

    body = http.post(f"{API}/preview", json={"code": code}, headers=headers).get_json()

    item = body["items"][0]
    assert item["connections"] == []
    assert item["problem"] == "Your environment has no connection to Exact Online."


def test_a_claim_is_accepted_with_202_and_then_copied_in_the_background(
    zuid_api, other_office, offered
):
    transfer, code, kapsalon, garage = offered
    http, headers = zuid_api

    response = http.post(
        API, json=accept_all(transfer, other_office.connection, code), headers=headers
    )

    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    claim = db.session.scalars(select(Claim)).one()
    assert body["id"] == claim.id
    assert body["transfer_id"] == transfer.id
    assert body["state"] == "copying"
    assert body["finished"] is False
    assert body["terms_version"] == "2026-11"
    assert body["fee_per_administration"] == "25.00"
    assert body["currency"] == "EUR"
    assert [
        (i["item_id"], i["state"], i["percent"], i["target_administration_id"])
        for i in body["items"]
    ] == [(i.id, "claiming", 0, None) for i in transfer.items]
    assert claim.claimed_by_email == "super@zuid.example"
    assert claim.target_environment_id == other_office.environment.id

    waiting = http.get(f"{API}/{claim.id}", headers=headers).get_json()
    assert waiting["finished"] is False

    assert copy_waiting() == 2

    done = http.get(f"{API}/{claim.id}", headers=headers)
    assert done.status_code == 200
    body = done.get_json()
    assert body["state"] == "done"
    assert body["finished"] is True
    fresh()
    for entry in body["items"]:
        item = db.session.get(TransferItem, entry["item_id"])
        assert entry["state"] == "migrated"
        assert entry["percent"] == 100
        assert entry["documents_done"] == entry["documents_total"]
        assert entry["target_administration_id"] == item.target_administration_id
        target = db.session.get(Administration, item.target_administration_id)
        assert target.environment_id == other_office.environment.id
        assert entry["error"] is None
    assert sorted(i["documents_total"] for i in body["items"]) == [1, 5]


def test_the_offering_side_follows_the_claim_without_the_target_ids(
    api_client, zuid_api, office, other_office, offered
):
    transfer, code, _k, _g = offered
    http, headers = zuid_api
    claim_id = http.post(
        API, json=accept_all(transfer, other_office.connection, code), headers=headers
    ).get_json()["id"]
    copy_waiting()
    noord_http, noord_headers = api_client(office.superuser)

    response = noord_http.get(f"{API}/{claim_id}", headers=noord_headers)

    assert response.status_code == 200
    assert {i["state"] for i in response.get_json()["items"]} == {"migrated"}
    assert {i["target_administration_id"] for i in response.get_json()["items"]} == {None}


def test_the_reconciliation_report_compares_every_document_of_both_sides(
    zuid_api, other_office, offered
):
    transfer, code, kapsalon, garage = offered
    http, headers = zuid_api
    decisions = {
        "code": code,
        "decisions": [
            {
                "item_id": transfer.items[0].id,
                "action": "accept",
                "connection_id": other_office.connection.id,
            },
            {"item_id": transfer.items[1].id, "action": "reject", "message": "Nee, dank je."},
        ],
        "accept_terms": True,
    }
    claim_id = http.post(API, json=decisions, headers=headers).get_json()["id"]
    copy_waiting()

    response = http.get(f"{API}/{claim_id}/reconciliation", headers=headers)

    assert response.status_code == 200
    body = response.get_json()
    assert body["claim_id"] == claim_id
    summary = {a["transfer_item_id"]: a for a in body["administrations"]}
    assert summary[transfer.items[0].id] == {
        "transfer_item_id": transfer.items[0].id,
        "administration": "Kapsalon Knip",
        "state": "migrated",
        "source_documents": 5,
        "target_documents": 5,
        "matching": 5,
        "verdict": "match",
    }
    assert summary[transfer.items[1].id]["verdict"] == "rejected"
    source = {
        d.id: d.blob_key
        for d in db.session.scalars(
            select(Document).where(Document.administration_id == kapsalon.id)
        )
    }
    assert sorted(r["source_document_id"] for r in body["documents"]) == sorted(source)
    targets = set()
    for row in body["documents"]:
        assert row["transfer_item_id"] == transfer.items[0].id
        assert row["source_sha256"] == row["target_sha256"] == source[row["source_document_id"]]
        assert row["verdict"] == "match"
        copy = db.session.get(Document, row["target_document_id"])
        assert copy.source_document_id == row["source_document_id"]
        assert copy.environment_id == other_office.environment.id
        targets.add(row["target_document_id"])
    assert len(targets) == 5


# --------------------------------------------------------------------------- bad input


def bad_request(case, ctx) -> tuple[dict, str, list[str]]:
    """The request body for ``case``, the field its error is under, and the messages."""
    transfer, code, connection = ctx["transfer"], ctx["code"], ctx["connection"]
    item = transfer.items[0]
    body = accept_all(transfer, connection, code)
    if case == "empty code":
        body["code"] = ""
        return body, "code", ["Enter the transfer code from the e-mail."]
    if case == "malformed code":
        body["code"] = "ABCDE-FGHJK-MNPQR"
        return (
            body,
            "code",
            [
                "A transfer code has 25 characters in five groups, like ABCDE-FGHJK-MNPQR-STVWX-YZ012."
            ],
        )
    if case == "mistyped code":
        body["code"] = typo_of(code)
        return (
            body,
            "code",
            [
                "This code contains a typo: one of the characters is wrong. Check it against the e-mail."
            ],
        )
    if case == "unknown code":
        body["code"] = unknown_code()
        return body, "code", [NEUTRAL]
    if case == "expired code":
        other = offerable(ctx["build"], ctx["office"].connection)
        expired_transfer, expired = offer(
            ctx["office"].superuser, [other], now=utcnow() - timedelta(days=16)
        )
        ctx["transfer"] = expired_transfer
        return accept_all(expired_transfer, connection, expired), "code", [NEUTRAL]
    if case == "withdrawn code":
        offers.withdraw(ctx["office"].superuser, transfer.id, origin="tests")
        db.session.commit()
        return body, "code", [NEUTRAL]
    if case == "used code":  # offered to and claimed by another office
        body["code"] = used_elsewhere(ctx["build"], ctx["office"])
        return body, "code", [NEUTRAL]
    if case == "standard plan":
        ctx["other_office"].environment.plan = "standard"
        db.session.commit()
        return (
            body,
            "environment",
            ["Only an environment with the premium plan can receive administrations."],
        )
    if case == "no connection of the package":
        connection.package = "twinfield"
        db.session.commit()
        return (
            body,
            f"decisions.{item.id}",
            ["Your environment has no connection to Exact Online for “Kapsalon Knip”."],
        )
    if case == "code clash in the connection":
        ctx["build"].administration(connection, name="Eigen", code="2024")
        return (
            body,
            f"decisions.{item.id}",
            [
                "The chosen connection already has an administration with code 2024; "
                "“Kapsalon Knip” cannot go there."
            ],
        )
    if case == "no connection chosen":
        body["decisions"][0]["connection_id"] = None
        return body, f"decisions.{item.id}", ["Choose the connection “Kapsalon Knip” goes under."]
    if case == "another environments connection":
        body["decisions"][0]["connection_id"] = ctx["office"].connection.id
        return body, f"decisions.{item.id}", ["Choose the connection “Kapsalon Knip” goes under."]
    if case == "no decision":
        body["decisions"] = body["decisions"][1:]
        return body, f"decisions.{item.id}", ["Accept or reject “Kapsalon Knip”."]
    if case == "terms not accepted":
        body["accept_terms"] = False
        return body, "accept_terms", ["Accept the terms and the fee to claim."]
    raise AssertionError(case)


BAD = [
    "empty code",
    "malformed code",
    "mistyped code",
    "unknown code",
    "expired code",
    "withdrawn code",
    "used code",
    "standard plan",
    "no connection of the package",
    "code clash in the connection",
    "no connection chosen",
    "another environments connection",
    "no decision",
    "terms not accepted",
]


@pytest.mark.parametrize("case", BAD)
def test_a_bad_claim_is_422_with_the_error_under_its_field_and_nothing_is_copied(
    case, zuid_api, build, office, other_office, offered
):
    transfer, code, _k, _g = offered
    ctx = {
        "transfer": transfer,
        "code": code,
        "connection": other_office.connection,
        "build": build,
        "office": office,
        "other_office": other_office,
    }
    body, field, messages = bad_request(case, ctx)
    transfer = ctx["transfer"]
    target_before = transfer.target_environment_id
    before = target_snapshot(other_office.environment)
    http, headers = zuid_api

    response = http.post(API, json=body, headers=headers)
    copy_waiting()

    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]
    assert errors[field] == messages, errors
    assert target_snapshot(other_office.environment) == before
    fresh()
    assert db.session.get(Transfer, transfer.id).target_environment_id == target_before


@pytest.mark.parametrize(
    "case", ["empty code", "malformed code", "mistyped code", "unknown code", "withdrawn code"]
)
def test_a_bad_code_in_the_preview_is_422_with_the_same_code_error(
    case, zuid_api, build, office, other_office, offered
):
    transfer, code, _k, _g = offered
    ctx = {
        "transfer": transfer,
        "code": code,
        "connection": other_office.connection,
        "build": build,
        "office": office,
        "other_office": other_office,
    }
    body, field, messages = bad_request(case, ctx)
    http, headers = zuid_api

    response = http.post(f"{API}/preview", json={"code": body["code"]}, headers=headers)

    assert response.status_code == 422
    assert response.get_json()["errors"] == {"code": messages}
    assert response.get_json()["message"] == messages[0]


def test_every_dead_code_gets_the_same_422_body(zuid_api, build, office, offered):
    transfer, code, _k, _g = offered
    expired_transfer, expired = offer(
        office.superuser,
        [offerable(build, office.connection)],
        now=utcnow() - timedelta(days=16),
    )
    withdrawn_transfer, withdrawn = offer(office.superuser, [offerable(build, office.connection)])
    offers.withdraw(office.superuser, withdrawn_transfer.id, origin="tests")
    db.session.commit()
    used = used_elsewhere(build, office)
    http, headers = zuid_api

    bodies = [
        http.post(f"{API}/preview", json={"code": c}, headers=headers).get_json()
        for c in (unknown_code(), expired, withdrawn, used)
    ]

    assert all(b == bodies[0] for b in bodies), bodies
    assert bodies[0]["errors"] == {"code": [NEUTRAL]}


def test_a_request_without_a_code_or_decisions_is_422_naming_both_fields(zuid_api):
    http, headers = zuid_api

    response = http.post(API, json={"accept_terms": True}, headers=headers)

    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"code", "decisions"}
    assert count(Claim) == 0


def test_an_unknown_action_is_422_under_the_decision(zuid_api, other_office, offered):
    transfer, code, _k, _g = offered
    body = accept_all(transfer, other_office.connection, code)
    body["decisions"][0]["action"] = "maybe"
    http, headers = zuid_api

    response = http.post(API, json=body, headers=headers)

    assert response.status_code == 422
    assert "decisions" in response.get_json()["errors"]
    assert count(Claim) == 0


def test_failed_api_code_entries_are_audited_but_typos_are_not(zuid_api, other_office, offered):
    _t, code, _k, _g = offered
    http, headers = zuid_api

    http.post(f"{API}/preview", json={"code": typo_of(code)}, headers=headers)
    assert count(AuditEvent, AuditEvent.action == "claim_code_failed") == 0
    http.post(f"{API}/preview", json={"code": unknown_code()}, headers=headers)

    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "claim_code_failed")
    ).one()
    assert event.origin == "api"
    assert event.actor_id == other_office.superuser.id
    assert event.details == {"reason": "unknown"}


def test_claiming_again_through_the_api_says_the_office_already_claimed_it(
    zuid_api, other_office, offered
):
    transfer, code, _k, _g = offered
    http, headers = zuid_api
    body = accept_all(transfer, other_office.connection, code)

    first = http.post(API, json=body, headers=headers)
    second = http.post(API, json=body, headers=headers)

    assert first.status_code == 202
    assert second.status_code == 422
    assert second.get_json()["errors"] == {
        "code": ["Your office has already claimed this offer; follow it in the migration overview."]
    }
    assert count(Claim) == 1


def test_another_environments_claim_is_404_for_reading_and_for_its_report(
    api_client, build, zuid_api, other_office, offered
):
    transfer, code, _k, _g = offered
    http, headers = zuid_api
    claim_id = http.post(
        API, json=accept_all(transfer, other_office.connection, code), headers=headers
    ).get_json()["id"]
    copy_waiting()
    west = build.environment("Kantoor West", office_code="WEST")
    west_http, west_headers = api_client(build.user(west, "superuser", email="super@west.example"))

    assert west_http.get(f"{API}/{claim_id}", headers=west_headers).status_code == 404
    assert (
        west_http.get(f"{API}/{claim_id}/reconciliation", headers=west_headers).status_code == 404
    )
    assert west_http.get(f"{API}/{claim_id + 1000}", headers=west_headers).status_code == 404


def test_a_user_who_is_not_a_superuser_cannot_claim(api_client, other_office, offered):
    transfer, code, _k, _g = offered
    http, headers = api_client(other_office.user)

    preview = http.post(f"{API}/preview", json={"code": code}, headers=headers)
    claim = http.post(
        API, json=accept_all(transfer, other_office.connection, code), headers=headers
    )

    assert preview.status_code in (403, 404)
    assert claim.status_code in (403, 404)
    assert count(Claim) == 0


def test_a_request_without_a_token_is_401(client, offered):
    _t, code, _k, _g = offered

    response = client.post(f"{API}/preview", json={"code": code})

    assert response.status_code == 401


def test_a_code_offered_to_another_office_gets_the_dead_code_body(
    api_client, build, office, other_office
):
    _transfer, code = offer(
        office.superuser, [offerable(build, office.connection)], recipients=("super@oost.example",)
    )
    speaks_english(other_office.superuser)
    http, headers = api_client(other_office.superuser)

    live = http.post(f"{API}/preview", json={"code": code}, headers=headers)
    dead = http.post(f"{API}/preview", json={"code": unknown_code()}, headers=headers)

    assert live.status_code == dead.status_code == 422
    assert live.get_json() == dead.get_json()
    assert dead.get_json()["errors"] == {"code": [NEUTRAL]}
