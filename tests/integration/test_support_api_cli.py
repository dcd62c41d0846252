"""Support through ``/api/v1/support`` and the ``flask transfers`` commands: listing (with
the stuck ones and why), revoking and retrying, every bad input with a clear answer and
nothing changed, and never a transfer code in what they return."""

from __future__ import annotations

import getpass
import json
from datetime import timedelta

import pytest
from flask_babel import force_locale, gettext
from sqlalchemy import select, update

from app.admin_settings.models import Administration, AdministrationState
from app.audit import AuditEvent
from app.db import utcnow
from app.extensions import db
from app.outbox import OutboxMessage
from app.transfers import codes, domain, offers
from app.transfers.copying import copy_waiting
from app.transfers.models import ItemState, Transfer, TransferItem, TransferState
from tests.helpers import accept_all as claim
from tests.helpers import count, fresh, offer

API = "/api/v1/support/transfers"
SUPPORT_EMAIL = "support@overdracht.example"
ACCOUNT_ACTIONS = ("login", "login_failed", "api_token_created", "api_token_revoked")


# --------------------------------------------------------------------------- helpers


def offerable(build, connection, *, documents=2, name=None):
    administration = build.administration(connection, name=name)
    for _ in range(documents):
        build.document(administration, "approved")
    return administration


def set_item(item_id: int, **values) -> None:
    db.session.execute(update(TransferItem).where(TransferItem.id == item_id).values(**values))
    db.session.commit()


def hang(item_id: int) -> None:
    now = utcnow()
    set_item(
        item_id,
        updated_at=now - timedelta(hours=2),
        lease_until=now + timedelta(days=1),
        attempts=1,
    )


def fail(item_id: int) -> None:
    set_item(
        item_id,
        state=ItemState.FAILED,
        attempts=5,
        last_error="OperationalError: server closed the connection",
    )


def snapshot(transfer_id: int) -> tuple:
    """What a refused revoke or retry must leave as it was."""
    fresh()
    transfer = db.session.get(Transfer, transfer_id)
    items = [(i.state, i.attempts, i.lease_until, i.last_error) for i in transfer.items]
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


@pytest.fixture
def support_user(build):
    user = build.user(None, "support", email=SUPPORT_EMAIL, name="Sam Support")
    user.language = "en"
    db.session.commit()
    return user


@pytest.fixture
def support_api(api_client, support_user):
    return api_client(support_user)


@pytest.fixture
def transfers(build, office, other_office):
    """An open offer, a claim stuck in its copy, a failed copy and a completed transfer."""
    made = {}
    made["open"], _ = offer(office.superuser, [offerable(build, office.connection)])
    for name in ("hung", "failed", "completed"):
        transfer, code = offer(
            office.superuser, [offerable(build, office.connection, name=f"Administratie {name}")]
        )
        claim(other_office.superuser, transfer, code, other_office.connection)
        made[name] = transfer
    hang(made["hung"].items[0].id)
    fail(made["failed"].items[0].id)
    assert copy_waiting() == 1  # only the completed one is free to copy
    return {name: t.id for name, t in made.items()}


def codes_of(*transfer_ids: int) -> list[str]:
    """Every spelling of the codes of these transfers that a response must not contain."""
    fresh()
    found = []
    for transfer_id in transfer_ids:
        code = codes.code_for(db.session.get(Transfer, transfer_id))
        found += [code, domain.normalise_code(code)]
    return found


def get(api, url, **kwargs):
    client, headers = api
    return client.get(url, headers=headers, **kwargs)


def post(api, url, payload=None):
    client, headers = api
    if payload is None:
        return client.post(url, headers=headers)
    return client.post(url, json=payload, headers=headers)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.get_json()
    return [t["id"] for t in response.get_json()["items"]]


# --------------------------------------------------------------------------- API: reading


def test_the_api_lists_every_transfer_newest_first_with_states_and_metadata_only(
    support_api, transfers
):
    response = get(support_api, API)

    assert response.status_code == 200
    body = response.get_json()
    assert [t["id"] for t in body["items"]] == sorted(transfers.values(), reverse=True)
    assert (body["page"], body["per_page"], body["total"], body["pages"]) == (1, 25, 4, 1)
    by_id = {t["id"]: t for t in body["items"]}
    open_offer = by_id[transfers["open"]]
    assert open_offer["state"] == "offered"
    assert open_offer["source_environment"] == "Kantoor Noord"
    assert open_offer["target_environment"] is None
    assert open_offer["offered_by"] == "super@noord.example"
    assert open_offer["recipient_emails"] == ["super@zuid.example"]
    assert open_offer["reasons"] == []
    hung = by_id[transfers["hung"]]
    assert (hung["state"], hung["target_environment"]) == ("claiming", "Kantoor Zuid")
    assert hung["reasons"] == ["claiming_too_long"]
    (item,) = by_id[transfers["failed"]]["items"]
    assert item["state"] == "failed"
    assert item["attempts"] == 5
    assert item["last_error"] == "OperationalError: server closed the connection"
    assert item["accounting_system"] == "exact_online"
    assert by_id[transfers["failed"]]["reasons"] == ["failed"]
    assert by_id[transfers["completed"]]["state"] == "completed"
    assert by_id[transfers["completed"]]["items"][0]["documents_copied"] == 2
    assert set(item) == {
        "id",
        "administration_name",
        "administration_code",
        "accounting_system",
        "state",
        "attempts",
        "last_error",
        "documents_copied",
    }
    assert "code" not in open_offer


def test_the_api_filters_by_state_stuck_search_and_environment_and_pages(
    support_api, transfers, office, other_office
):
    assert ids(get(support_api, f"{API}?state=offered")) == [transfers["open"]]
    assert ids(get(support_api, f"{API}?state=claiming")) == [
        transfers["failed"],
        transfers["hung"],
    ]
    assert ids(get(support_api, f"{API}?state=failed")) == [transfers["failed"]]
    assert ids(get(support_api, f"{API}?state=completed")) == [transfers["completed"]]
    assert ids(get(support_api, f"{API}?stuck=true")) == [transfers["failed"], transfers["hung"]]
    assert ids(get(support_api, f"{API}?q=administratie%20hung")) == [transfers["hung"]]
    assert ids(get(support_api, f"{API}?target={other_office.environment.id}")) == sorted(
        [transfers["hung"], transfers["failed"], transfers["completed"]], reverse=True
    )
    assert ids(get(support_api, f"{API}?source={other_office.environment.id}")) == []
    assert ids(get(support_api, f"{API}?older_than=1")) == []
    newest_first = sorted(transfers.values(), reverse=True)
    first = get(support_api, f"{API}?per_page=3").get_json()
    second = get(support_api, f"{API}?per_page=3&page=2").get_json()
    assert [t["id"] for t in first["items"]] == newest_first[:3]
    assert [t["id"] for t in second["items"]] == newest_first[3:]
    assert (first["total"], first["pages"], second["page"]) == (4, 2, 2)


def test_a_bad_list_query_is_422_with_the_field(support_api, transfers):
    for query in (
        "state=bogus",
        "stuck=misschien",
        "page=0",
        "per_page=0",
        "per_page=101",
        "older_than=-1",
        "q=" + "x" * 101,
    ):
        response = get(support_api, f"{API}?{query}")

        assert response.status_code == 422, query
        assert list(response.get_json()["errors"]) == [query.split("=")[0]], query


def test_the_api_shows_one_transfer_and_a_missing_one_is_404(support_api, transfers):
    response = get(support_api, f"{API}/{transfers['failed']}")

    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == transfers["failed"]
    assert body["reasons"] == ["failed"]
    assert get(support_api, f"{API}/{max(transfers.values()) + 100}").status_code == 404


def test_the_support_api_is_401_without_a_token_and_404_for_everyone_but_support(
    api_client, client, office, transfers
):
    before = snapshot(transfers["failed"])
    assert client.get(API).status_code == 401
    assert (
        client.post(
            f"{API}/{transfers['open']}/revoke", json={"reason": "Zonder token"}
        ).status_code
        == 401
    )
    for user in (office.superuser, office.user, office.authorizer):
        api = api_client(user)
        assert get(api, API).status_code == 404, user.email
        assert get(api, f"{API}/{transfers['open']}").status_code == 404
        assert (
            post(api, f"{API}/{transfers['open']}/revoke", {"reason": "Geen support"}).status_code
            == 404
        )
        assert post(api, f"{API}/{transfers['failed']}/retry").status_code == 404
    assert snapshot(transfers["failed"]) == before
    assert snapshot(transfers["open"])[0] is TransferState.OFFERED


# --------------------------------------------------------------------------- API: revoke


def test_revoking_through_the_api_ends_the_transfer_and_tells_both_sides(
    support_api, transfers, support_user
):
    transfer_id = transfers["hung"]

    response = post(support_api, f"{API}/{transfer_id}/revoke", {"reason": "De kopie hangt."})

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["state"] == "revoked"
    assert [i["state"] for i in body["items"]] == ["revoked"]
    fresh()
    transfer = db.session.get(Transfer, transfer_id)
    assert transfer.state is TransferState.REVOKED
    assert transfer.ended_by_id == support_user.id
    assert db.session.get(Administration, transfer.items[0].administration_id).state is (
        AdministrationState.ACTIVE
    )
    sent = db.session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.ref_id == transfer_id, OutboxMessage.kind == "transfer_revoked"
        )
    ).all()
    assert sorted(m.to_email for m in sent) == ["super@noord.example", "super@zuid.example"]
    assert all("De kopie hangt." in m.body_text for m in sent)
    (event,) = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "transfer_revoked")
    ).all()
    assert (event.actor_email, event.origin, event.object_id) == (SUPPORT_EMAIL, "api", transfer_id)
    assert event.details["reason"] == "De kopie hangt."


BAD_PAYLOADS = {
    "missing": {},
    "empty": {"reason": ""},
    "short": {"reason": "kort"},
    "blank": {"reason": "      "},
    "null": {"reason": None},
    "a number": {"reason": 12345},
    "too long": {"reason": "x" * 1001},
}


def test_a_revoke_without_a_proper_reason_is_422_and_changes_nothing(support_api, transfers):
    transfer_id = transfers["open"]
    before = snapshot(transfer_id)
    for name, payload in BAD_PAYLOADS.items():
        response = post(support_api, f"{API}/{transfer_id}/revoke", payload)

        assert response.status_code == 422, (name, response.get_json())
        assert list(response.get_json()["errors"]) == ["reason"], name
        assert snapshot(transfer_id) == before, name


def test_a_blank_reason_is_refused_with_a_clear_message(support_api, transfers):
    response = post(support_api, f"{API}/{transfers['open']}/revoke", {"reason": "      "})

    assert response.status_code == 422
    assert response.get_json()["errors"]["reason"] == [
        "Give the reason for revoking (at least 5 characters)."
    ]


def test_revoking_a_transfer_that_already_ended_is_409_and_changes_nothing(
    support_api, transfers, office
):
    assert (
        post(support_api, f"{API}/{transfers['failed']}/revoke", {"reason": "Eerste keer"})
    ).status_code == 200
    offers.withdraw(office.superuser, transfers["open"], origin="tests")
    db.session.commit()
    for name in ("completed", "failed", "open"):  # completed, revoked, withdrawn
        transfer_id = transfers[name]
        before = snapshot(transfer_id)

        response = post(support_api, f"{API}/{transfer_id}/revoke", {"reason": "Nog een keer"})

        assert response.status_code == 409, name
        assert response.get_json()["message"] == (
            "This transfer has already ended and cannot be revoked."
        )
        assert list(response.get_json()["errors"]) == ["transfer"]
        assert snapshot(transfer_id) == before, name


def test_revoking_or_retrying_an_unknown_transfer_is_404(support_api, transfers):
    missing = max(transfers.values()) + 100
    before = snapshot(transfers["open"])

    assert (
        post(support_api, f"{API}/{missing}/revoke", {"reason": "Bestaat niet"}).status_code == 404
    )
    assert post(support_api, f"{API}/{missing}/retry").status_code == 404
    assert snapshot(transfers["open"]) == before


# --------------------------------------------------------------------------- API: retry


def test_retrying_through_the_api_queues_the_failed_copy_and_the_worker_copies_it_once(
    support_api, transfers
):
    transfer_id = transfers["failed"]

    response = post(support_api, f"{API}/{transfer_id}/retry")

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [(i["state"], i["attempts"], i["last_error"]) for i in body["items"]] == [
        ("claiming", 0, None)
    ]
    assert body["reasons"] == []
    assert copy_waiting() == 1
    assert copy_waiting(now=utcnow() + timedelta(hours=1)) == 0
    fresh()
    transfer = db.session.get(Transfer, transfer_id)
    assert transfer.items[0].state is ItemState.MIGRATED
    assert transfer.state is TransferState.COMPLETED
    (event,) = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "copy_retried")
    ).all()
    assert (event.actor_email, event.origin) == (SUPPORT_EMAIL, "api")


def test_retrying_a_transfer_without_a_failed_copy_is_409_and_changes_nothing(
    support_api, transfers
):
    for name in ("open", "hung", "completed"):
        before = snapshot(transfers[name])

        response = post(support_api, f"{API}/{transfers[name]}/retry")

        assert response.status_code == 409, name
        assert response.get_json()["message"] == (
            "Nothing to retry: this transfer has no failed copy."
        )
        assert snapshot(transfers[name]) == before, name


def test_no_support_api_response_contains_a_transfer_code(support_api, transfers):
    secrets = codes_of(*transfers.values())
    responses = [
        get(support_api, API),
        get(support_api, f"{API}?stuck=true"),
        *(get(support_api, f"{API}/{i}") for i in transfers.values()),
        post(support_api, f"{API}/{transfers['failed']}/retry"),
        post(support_api, f"{API}/{transfers['open']}/revoke", {"reason": "Klant wil niet"}),
    ]
    for response in responses:
        assert response.status_code == 200
        text = json.dumps(response.get_json())
        for secret in secrets:
            assert secret not in text


# --------------------------------------------------------------------------- CLI


def cli_text(app, message: str, **params) -> str:
    """``message`` as the command line shows it: in the default language."""
    with app.test_request_context(), force_locale(app.config["BABEL_DEFAULT_LOCALE"]):
        return gettext(message, **params)


def run(runner, *args):
    result = runner.invoke(args=["transfers", *args])
    db.session.expire_all()
    return result


def test_transfers_list_shows_every_transfer_with_its_state_and_where_it_goes(runner, transfers):
    result = run(runner, "list")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines if line.startswith("#")] == [
        f"#{i}" for i in sorted(transfers.values(), reverse=True)
    ]
    (open_line,) = [line for line in lines if line.startswith(f"#{transfers['open']} ")]
    assert "offered" in open_line
    assert "Kantoor Noord -> super@zuid.example" in open_line
    (completed,) = [line for line in lines if line.startswith(f"#{transfers['completed']} ")]
    assert "completed" in completed and "Kantoor Noord -> Kantoor Zuid" in completed
    assert "[migrated]" in completed
    assert lines[-1] == "4 of 4 shown."


def test_transfers_list_stuck_shows_only_the_stuck_ones_and_why(app, runner, transfers):
    result = run(runner, "list", "--stuck")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines if line.startswith("#")] == [
        f"#{transfers['failed']}",
        f"#{transfers['hung']}",
    ]
    why = [line.strip() for line in lines if line.strip().startswith("why:")]
    assert why == [
        "why: "
        + cli_text(
            app,
            "A copy failed: %(error)s",
            error="OperationalError: server closed the connection",
        ),
        "why: " + cli_text(app, "Being copied for more than %(minutes)d minutes", minutes=30),
    ]
    assert lines[-1] == "2 of 2 shown."


def test_transfers_list_says_so_when_nothing_is_stuck_or_nothing_is_there(runner, build, office):
    result = run(runner, "list")
    assert result.exit_code == 0
    assert result.output.splitlines() == ["No transfers.", "0 of 0 shown."]

    offer(office.superuser, [offerable(build, office.connection)])
    result = run(runner, "list", "--stuck")
    assert result.exit_code == 0
    assert result.output.splitlines() == ["Nothing is stuck.", "0 of 0 shown."]


def test_transfers_list_filters_by_state_and_refuses_an_unknown_state(app, runner, transfers):
    result = run(runner, "list", "--state", "completed")
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.output.splitlines() if line.startswith("#")] == [
        f"#{transfers['completed']}"
    ]

    result = run(runner, "list", "--state", "kapot")
    assert result.exit_code != 0
    assert cli_text(app, "Unknown state.") in result.output
    assert "#" not in result.output


def test_transfers_revoke_ends_the_transfer_and_tells_both_sides(runner, transfers):
    transfer_id = transfers["hung"]

    result = run(runner, "revoke", str(transfer_id), "--reason", "De kopie hangt al uren.")

    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Transfer #{transfer_id} revoked."
    fresh()
    transfer = db.session.get(Transfer, transfer_id)
    assert transfer.state is TransferState.REVOKED
    assert transfer.items[0].state is ItemState.REVOKED
    assert db.session.get(Administration, transfer.items[0].administration_id).state is (
        AdministrationState.ACTIVE
    )
    assert (
        count(
            OutboxMessage,
            OutboxMessage.ref_id == transfer_id,
            OutboxMessage.kind == "transfer_revoked",
        )
        == 2
    )
    (event,) = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "transfer_revoked")
    ).all()
    assert event.actor_id is None
    assert event.origin == f"cli {getpass.getuser()}"
    assert event.details["reason"] == "De kopie hangt al uren."


BAD_COMMANDS = (
    (("revoke", "{open}"), 2, "Missing option '--reason'"),
    (("revoke", "{open}", "--reason", "kort"), 1, "reason_short"),
    (("revoke", "{open}", "--reason", "     "), 1, "reason_short"),
    (("revoke", "{completed}", "--reason", "Al klaar"), 1, "already_ended"),
    (("revoke", "{missing}", "--reason", "Bestaat niet"), 1, "No transfer #{missing}."),
    (("revoke", "twaalf", "--reason", "Geen nummer"), 2, "is not a valid integer"),
    (("retry", "{open}"), 1, "nothing_to_retry"),
    (("retry", "{hung}"), 1, "nothing_to_retry"),
    (("retry", "{completed}"), 1, "nothing_to_retry"),
    (("retry", "{missing}"), 1, "No transfer #{missing}."),
    (("retry",), 2, "Missing argument"),
)


def test_a_bad_command_says_what_is_wrong_exits_non_zero_and_changes_nothing(
    app, runner, transfers
):
    names = {**transfers, "missing": max(transfers.values()) + 100}
    messages = {
        "reason_short": cli_text(app, "Give the reason for revoking (at least 5 characters)."),
        "already_ended": cli_text(app, "This transfer has already ended and cannot be revoked."),
        "nothing_to_retry": cli_text(app, "Nothing to retry: this transfer has no failed copy."),
    }
    before = {name: snapshot(transfer_id) for name, transfer_id in transfers.items()}
    for args, exit_code, message in BAD_COMMANDS:
        command = [a.format(**names) for a in args]

        result = run(runner, *command)

        assert result.exit_code == exit_code, (command, result.output)
        assert messages.get(message, message.format(**names)) in result.output, command
        after = {name: snapshot(transfer_id) for name, transfer_id in transfers.items()}
        assert after == before, command


def test_transfers_retry_queues_the_failed_copy_and_the_worker_copies_it(runner, transfers):
    transfer_id = transfers["failed"]

    result = run(runner, "retry", str(transfer_id))

    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"1 failed copy(ies) of transfer #{transfer_id} queued again."
    assert copy_waiting() == 1
    fresh()
    transfer = db.session.get(Transfer, transfer_id)
    assert transfer.items[0].state is ItemState.MIGRATED
    assert transfer.state is TransferState.COMPLETED
    result = run(runner, "list", "--stuck")
    assert f"#{transfer_id}" not in result.output


def test_the_commands_never_print_a_transfer_code(runner, transfers):
    secrets = codes_of(*transfers.values())
    outputs = [
        run(runner, "list").output,
        run(runner, "list", "--stuck").output,
        run(runner, "retry", str(transfers["failed"])).output,
        run(runner, "revoke", str(transfers["open"]), "--reason", "Klant wil niet").output,
        run(runner, "list", "--state", "revoked").output,
    ]
    for output in outputs:
        for secret in secrets:
            assert secret not in output
