"""Receiving administrations through the pages: the code, the preview, accepting and
rejecting, the background copy, the claim page, both overviews, the mails and the
reconciliation report; and every bad input, each with its own clear message and
nothing copied."""

from __future__ import annotations

import json
import os
import re
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from app.admin_settings.models import (
    Administration,
    AdministrationState,
    AuthorizationFlow,
    AuthorizationStep,
    Document,
    DocumentKind,
    Plan,
    Provenance,
    Workflow,
)
from app.audit import AuditEvent
from app.auth.models import User
from app.db import utcnow
from app.extensions import db
from app.outbox import OutboxMessage, filled_in
from app.transfers import claims, domain, offers
from app.transfers.copying import copy_waiting
from app.transfers.models import (
    Claim,
    ItemState,
    Transfer,
    TransferItem,
    TransferState,
)
from app.transfers.notifications import claim_link
from tests.helpers import accept_all as claim_via_service
from tests.helpers import count, fresh, offer, spreadsheet, used_elsewhere
from tests.integration.pages import all_field_errors, field_errors, flash_categories, text_of

MIGRATIONS = "/settings/migrations"
FETCH = f"{MIGRATIONS}/fetch"
CLAIMS = f"{MIGRATIONS}/claims"
NEUTRAL = claims.NEUTRAL


# --------------------------------------------------------------------------- helpers


def speaks_english(*users):
    for user in users:
        user.language = "en"
    db.session.commit()


def offerable(build, connection, *, documents=3, name=None, code=None, uploader=None, decider=None):
    """An administration that can be offered: every document decided, booked over several
    years, with uploader and decider (ids and names) like real documents have."""
    administration = build.administration(connection, name=name, code=code)
    for n in range(documents):
        status = "approved" if n % 3 else "rejected"
        build.document(
            administration,
            status,
            content=f"%PDF-1.4\n% {administration.code} document {n}\n%%EOF\n".encode(),
            kind=DocumentKind.SALES_INVOICE if n % 2 else DocumentKind.PURCHASE_INVOICE,
            counterparty=f"Relatie {n}",
            amount=Decimal("10.00") + n,
            invoice_date=date(2022 + n % 3, 1 + n % 12, 1 + n % 28),
            booked_year=2022 + n % 3,
            booked_period=1 + n % 12,
            uploaded_by_id=uploader.id if uploader else None,
            uploaded_by_name=uploader.name if uploader else f"Uploader {n}",
            decided_by_id=decider.id if decider else None,
            decided_by_name=decider.name if decider else f"Beslisser {n}",
            decided_at=utcnow(),
        )
    return administration


def decisions_form(code, decisions: dict, accept_terms=True) -> dict:
    """The claim form: ``decisions`` maps an item id to (action, connection id, message)."""
    data = {"code": code}
    for item_id, (action, connection_id, message) in decisions.items():
        data[f"action-{item_id}"] = action
        if connection_id is not None:
            data[f"connection-{item_id}"] = str(connection_id)
        if message is not None:
            data[f"message-{item_id}"] = message
    if accept_terms:
        data["accept_terms"] = "y"
    return data


def preview_facts(html: str) -> dict[int, dict]:
    """Per item on the preview page: its facts and the connections it may go under."""
    facts = {}
    for item_id, body in re.findall(
        r'<section class="card decision[^"]*" data-item-id="(\d+)">(.*?)</section>', html, re.DOTALL
    ):
        values = dict(re.findall(r'<dd data-fact="(\w+)">([^<]*)</dd>', body))
        options = re.findall(r'<option value="(\d+)"\s*(disabled)?', body)
        facts[int(item_id)] = {
            **{k: v.strip() for k, v in values.items()},
            "connections": [(int(v), bool(d)) for v, d in options],
            "errors": [text_of(e).strip() for e in re.findall(r"<li>(.*?)</li>", body, re.DOTALL)],
        }
    return facts


def table_rows(html: str, table: str) -> dict[int, str]:
    """Item id → the data-state of its row in the overview's ``outgoing``/``incoming`` table."""
    match = re.search(rf'<table class="table" data-table="{table}">(.*?)</table>', html, re.DOTALL)
    assert match, f"no {table} table"
    return {
        int(item_id): state
        for item_id, state in re.findall(
            r'<tr data-transfer-id="\d+" data-item-id="(\d+)"[^>]*>.*?data-state="(\w+)"',
            match.group(1),
            re.DOTALL,
        )
    }


def code_errors(response) -> list[str]:
    return field_errors(response.get_data(as_text=True), "code")


def typo_of(code: str) -> str:
    """The code with one data symbol changed: the check symbol then no longer fits."""
    plain = code.replace("-", "")
    wrong = domain.ALPHABET[(domain.ALPHABET.index(plain[3]) + 1) % len(domain.ALPHABET)]
    return domain.format_code(plain[:3] + wrong + plain[4:])


def unknown_code() -> str:
    """A well-formed code with a right check symbol that no offer has."""
    return domain.format_code(domain.code_from_nonce(os.urandom(16), b"not the server's key"))


def target_snapshot(environment) -> dict:
    """What a claim would add in the receiving environment."""
    return {
        "administrations": count(Administration, Administration.environment_id == environment.id),
        "documents": count(Document, Document.environment_id == environment.id),
        "claims": count(Claim, Claim.target_environment_id == environment.id),
        "provenance": count(
            Provenance,
            Provenance.administration_id.in_(
                select(Administration.id).where(Administration.environment_id == environment.id)
            ),
        ),
    }


# --------------------------------------------------------------------------- the whole flow


@pytest.fixture
def two_offered(build, office, other_office):
    """Noord offers two administrations in one offer to Zuid's superuser: "Bakkerij" with
    documents of several years, statuses, uploaders and deciders, an inactive workflow and
    an empty authorization flow; and "Slagerij", which Zuid will reject."""
    bakkerij = offerable(
        build,
        office.connection,
        documents=7,
        name="Bakkerij de Korst",
        code="4711",
        uploader=office.user,
        decider=office.authorizer,
    )
    build.workflow(bakkerij, active=False, name="Oude workflow")
    db.session.add(
        AuthorizationFlow(
            environment_id=bakkerij.environment_id,
            administration_id=bakkerij.id,
            name="Lege flow",
        )
    )
    db.session.commit()
    slagerij = offerable(build, office.connection, documents=2, name="Slagerij Vers", code="815")
    transfer, code = offer(office.superuser, [bakkerij, slagerij])
    return transfer, code, bakkerij, slagerij


def test_claiming_one_administration_and_rejecting_another_moves_exactly_the_accepted_one(
    login, office, other_office, two_offered
):
    transfer, code, bakkerij, slagerij = two_offered
    accept_item, reject_item = transfer.items
    speaks_english(office.superuser, other_office.superuser)
    users_before = {
        env.id: sorted(db.session.scalars(select(User.email).where(User.environment_id == env.id)))
        for env in (office.environment, other_office.environment)
    }
    source_documents = {
        d.id: d
        for d in db.session.scalars(
            select(Document).where(Document.administration_id == bakkerij.id)
        )
    }
    zuid = login(other_office.superuser)

    # The code leads to the preview: what arrives, per administration.
    assert zuid.get_page(FETCH).status_code == 200
    page = zuid.post_form(FETCH, {"code": code.lower().replace("-", " ")})
    assert page.status_code == 200, page.get_data(as_text=True)
    facts = preview_facts(page.get_data(as_text=True))
    assert facts[accept_item.id]["documents"] == "7"
    assert facts[accept_item.id]["years"] == "2022, 2023, 2024"
    assert facts[accept_item.id]["size"] == f"{sum(d.size for d in source_documents.values())} B"
    assert facts[accept_item.id]["connections"] == [(other_office.connection.id, False)]
    assert facts[reject_item.id]["documents"] == "2"

    response = zuid.post_form(
        CLAIMS,
        decisions_form(
            code,
            {
                accept_item.id: ("accept", other_office.connection.id, None),
                reject_item.id: ("reject", None, "Deze klant blijft bij jullie."),
            },
        ),
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    claim = db.session.scalars(select(Claim)).one()
    assert urlsplit(response.headers["Location"]).path == f"{CLAIMS}/{claim.id}"

    assert copy_waiting() == 1

    fresh()
    # The administration arrived under the chosen connection with a new inbound address.
    accept_item = db.session.get(TransferItem, accept_item.id)
    assert accept_item.state is ItemState.MIGRATED
    target = db.session.get(Administration, accept_item.target_administration_id)
    assert target.environment_id == other_office.environment.id
    assert target.connection_id == other_office.connection.id
    assert (target.name, target.code, target.contact_email) == (
        bakkerij.name,
        bakkerij.code,
        bakkerij.contact_email,
    )
    assert target.inbound_email == "zuid.4711@in.overdracht.example"
    assert target.state is AdministrationState.ACTIVE
    provenance = db.session.scalars(
        select(Provenance).where(Provenance.administration_id == target.id)
    ).one()
    assert provenance.transfer_item_id == accept_item.id
    assert provenance.source_environment_id == office.environment.id
    assert provenance.source_environment_name == "Kantoor Noord"
    assert provenance.source_administration_id == bakkerij.id

    # Every document, as it was, by reference to the same file.
    copies = list(
        db.session.scalars(select(Document).where(Document.administration_id == target.id))
    )
    assert sorted(c.source_document_id for c in copies) == sorted(source_documents)
    for copy in copies:
        source = source_documents[copy.source_document_id]
        for column in (
            "blob_key",
            "size",
            "content_type",
            "filename",
            "kind",
            "status",
            "booked_year",
            "booked_period",
            "counterparty",
            "amount",
            "currency",
            "invoice_date",
            "uploaded_by_name",
            "decided_by_name",
            "decided_at",
        ):
            assert getattr(copy, column) == getattr(source, column), column
        assert copy.environment_id == other_office.environment.id
        # No Noord user travels along: the names stay as text only.
        assert copy.uploaded_by_id is None and copy.decided_by_id is None
        assert copy.uploaded_by_name == office.user.name
        assert copy.decided_by_name == "J. de Vries"

    # Users, workflows and authorization flows stay behind.
    for env in (office.environment, other_office.environment):
        assert (
            sorted(db.session.scalars(select(User.email).where(User.environment_id == env.id)))
            == users_before[env.id]
        )
    assert count(Workflow, Workflow.environment_id == other_office.environment.id) == 0
    assert (
        count(AuthorizationFlow, AuthorizationFlow.environment_id == other_office.environment.id)
        == 0
    )
    assert (
        count(AuthorizationStep, AuthorizationStep.environment_id == other_office.environment.id)
        == 0
    )

    # The source is kept, read-only, with all its documents.
    source = db.session.get(Administration, bakkerij.id)
    assert source.state is AdministrationState.MIGRATED
    assert count(Document, Document.administration_id == bakkerij.id) == 7
    assert count(Workflow, Workflow.administration_id == bakkerij.id) == 1

    # The rejected administration is Noord's again, and the transfer is done.
    assert db.session.get(TransferItem, reject_item.id).state is ItemState.REJECTED
    assert db.session.get(Administration, slagerij.id).state is AdministrationState.ACTIVE
    assert count(Administration, Administration.code == "815") == 1
    assert db.session.get(Transfer, transfer.id).state is TransferState.COMPLETED

    # Both sides are told it is complete; Noord is told about the rejection and why.
    completed = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "transfer_completed")
    ).all()
    assert sorted(m.to_email for m in completed) == ["super@noord.example", "super@zuid.example"]
    rejected_mail = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "transfer_items_rejected")
    ).one()
    assert rejected_mail.to_email == "super@noord.example"
    assert "Slagerij Vers" in rejected_mail.body_text
    assert "Deze klant blijft bij jullie." in rejected_mail.body_text
    assert "Bakkerij de Korst" not in rejected_mail.body_text

    # Both overviews say so.
    noord = login(office.superuser)
    outgoing = table_rows(noord.get_page(MIGRATIONS).get_data(as_text=True), "outgoing")
    assert outgoing == {accept_item.id: "migrated", reject_item.id: "rejected"}
    incoming = table_rows(zuid.get_page(MIGRATIONS).get_data(as_text=True), "incoming")
    assert incoming == {accept_item.id: "migrated", reject_item.id: "rejected"}

    # The claim page: done, with a link to the new administration and the report.
    html = zuid.get_page(f"{CLAIMS}/{claim.id}").get_data(as_text=True)
    row = re.search(rf'<tr data-item-id="{accept_item.id}">(.*?)</tr>', html, re.DOTALL).group(1)
    assert 'aria-valuenow="100"' in row
    assert f'href="/settings/administrations/{target.id}"' in row
    assert 'data-finished="true"' in html
    progress = zuid.get(f"{CLAIMS}/{claim.id}/progress").get_json()
    assert progress["finished"] is True
    assert {i["item_id"]: (i["state"], i["percent"]) for i in progress["items"]} == {
        accept_item.id: ("migrated", 100),
        reject_item.id: ("rejected", 0),
    }

    report = zuid.get(f"{CLAIMS}/{claim.id}/reconciliation.csv")
    assert report.status_code == 200
    block, rows = spreadsheet(report.get_data(as_text=True))
    # In the reader's language (this one reads English), ready for a Dutch spreadsheet.
    assert block["Offering office"] == "Kantoor Noord"
    assert block["Receiving office"] == "Kantoor Zuid"
    assert block["Documents"] == "7" and block["Matching"] == "7"
    assert len(rows) == 7
    assert {int(r["Source document"]) for r in rows} == set(source_documents)
    for r in rows:
        assert r["Verdict"] == "match"
        source = source_documents[int(r["Source document"])]
        assert r["Source SHA-256"] == r["Target SHA-256"] == source.blob_key
        assert r["File name"] == source.filename
        assert r["Amount"] == f"{source.amount:.2f}".replace(".", ",")
    summary = json.loads(zuid.get(f"{CLAIMS}/{claim.id}/reconciliation.json").get_data())
    by_item = {a["transfer_item_id"]: a for a in summary["administrations"]}
    assert by_item[accept_item.id]["verdict"] == "match"
    assert by_item[accept_item.id]["source_documents"] == 7
    assert by_item[accept_item.id]["target_documents"] == 7
    assert by_item[reject_item.id]["verdict"] == "rejected"
    assert len(summary["documents"]) == 7


def test_a_migrated_source_administration_refuses_decisions_on_its_documents(
    login, office, other_office, two_offered
):
    transfer, code, bakkerij, _slagerij = two_offered
    speaks_english(office.superuser)
    claim_via_service(other_office.superuser, transfer, code, other_office.connection)
    assert copy_waiting() == 2
    assert db.session.get(Administration, bakkerij.id).state is AdministrationState.MIGRATED
    rejected = db.session.scalars(
        select(Document).where(
            Document.administration_id == bakkerij.id, Document.status == "rejected"
        )
    ).first()
    noord = login(office.superuser)
    noord.get_page(f"/settings/administrations/{bakkerij.id}")

    response = noord.post_form(
        f"/settings/administrations/{bakkerij.id}/documents/decide",
        {"document_ids": str(rejected.id), "action": "approve"},
        follow_redirects=True,
    )

    html = response.get_data(as_text=True)
    assert "error" in flash_categories(html)
    assert "moved to another office and is read-only" in text_of(html)
    fresh()
    assert db.session.get(Document, rejected.id).status.value == "rejected"
    assert db.session.get(Document, rejected.id).decided_by_name == "J. de Vries"


def test_the_claim_page_shows_the_copy_waiting_before_the_worker_has_run(
    login, office, other_office, two_offered
):
    transfer, code, _bakkerij, _slagerij = two_offered
    claim = claim_via_service(other_office.superuser, transfer, code, other_office.connection)
    zuid = login(other_office.superuser)

    progress = zuid.get(f"{CLAIMS}/{claim.id}/progress").get_json()
    html = zuid.get_page(f"{CLAIMS}/{claim.id}").get_data(as_text=True)

    assert progress["finished"] is False
    assert {i["state"] for i in progress["items"]} == {"claiming"}
    assert {i["percent"] for i in progress["items"]} == {0}
    assert 'data-finished="false"' in html
    assert "/settings/administrations/" not in html
    assert count(Administration, Administration.environment_id == other_office.environment.id) == 0


def test_the_signed_link_in_the_offer_mail_opens_the_code_entry_with_the_code_filled_in(
    app, login, build, office, other_office
):
    administration = offerable(build, office.connection)
    transfer, code = offer(office.superuser, [administration])
    link = claim_link(transfer, code)
    parts = urlsplit(link)
    assert parts.path == FETCH
    zuid = login(other_office.superuser)

    response = zuid.get_page(f"{parts.path}?{parts.query}")

    assert response.status_code == 200
    assert f'name="code" value="{code}"' in response.get_data(as_text=True)
    # The mail as it is sent carries such a link (the outbox row itself holds no code).
    mail = db.session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.kind == "transfer_offered", OutboxMessage.to_email == "super@zuid.example"
        )
    ).one()
    assert code not in mail.body_text
    sent_text, _sent_html = filled_in(mail)
    assert code in sent_text
    sent_link = urlsplit(re.search(r"http\S+/settings/migrations/fetch\?token=\S+", sent_text)[0])
    opened = zuid.get_page(f"{sent_link.path}?{sent_link.query}")
    assert f'name="code" value="{code}"' in opened.get_data(as_text=True)


def test_a_tampered_signed_link_leaves_the_code_empty_and_says_the_link_is_bad(
    login, build, office, other_office
):
    administration = offerable(build, office.connection)
    transfer, code = offer(office.superuser, [administration])
    parts = urlsplit(claim_link(transfer, code))
    speaks_english(other_office.superuser)

    response = login(other_office.superuser).get_page(f"{parts.path}?{parts.query[:-3]}abc")

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'name="code" value=""' in html
    assert "This link has expired or is not valid" in html
    assert code not in html


def test_posting_the_claim_twice_makes_one_claim_and_the_second_answer_says_it_is_claimed(
    login, build, office, other_office
):
    administration = offerable(build, office.connection)
    transfer, code = offer(office.superuser, [administration])
    speaks_english(other_office.superuser)
    item = transfer.items[0]
    zuid = login(other_office.superuser)
    zuid.get_page(FETCH)
    form = decisions_form(code, {item.id: ("accept", other_office.connection.id, None)})

    first = zuid.post_form(CLAIMS, form)
    second = zuid.post_form(CLAIMS, form)

    assert first.status_code == 302
    assert second.status_code == 422
    assert code_errors(second) == [
        "Your office has already claimed this offer; follow it in the migration overview."
    ]
    assert count(Claim) == 1
    assert copy_waiting() == 1
    assert count(Administration, Administration.environment_id == other_office.environment.id) == 1


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def offered(build, office, other_office):
    """One clean administration offered to Zuid's (and Oost's) superuser."""
    speaks_english(other_office.superuser)
    administration = offerable(build, office.connection, name="Kapsalon Knip", code="2024")
    transfer, code = offer(office.superuser, [administration], recipients=("super@zuid.example",))
    return transfer, code, administration


def _case_empty(ctx):
    return ctx.zuid_user, "", None, ["Enter the transfer code from the e-mail."]


def _case_malformed(ctx):
    return (
        ctx.zuid_user,
        "ABCDE-FGHJK",
        None,
        ["A transfer code has 25 characters in five groups, like ABCDE-FGHJK-MNPQR-STVWX-YZ012."],
    )


def _case_typo(ctx):
    return (
        ctx.zuid_user,
        typo_of(ctx.code),
        None,
        ["This code contains a typo: one of the characters is wrong. Check it against the e-mail."],
    )


def _case_unknown(ctx):
    return ctx.zuid_user, unknown_code(), None, [NEUTRAL]


def _case_expired(ctx):
    administration = offerable(ctx.build, ctx.office.connection)
    transfer, code = offer(
        ctx.office.superuser, [administration], now=utcnow() - timedelta(days=16)
    )
    ctx.transfer = transfer
    return ctx.zuid_user, code, None, [NEUTRAL]


def _case_withdrawn(ctx):
    offers.withdraw(ctx.office.superuser, ctx.transfer.id, origin="tests")
    db.session.commit()
    return ctx.zuid_user, ctx.code, None, [NEUTRAL]


def _case_used(ctx):  # offered to and claimed by another office
    return ctx.zuid_user, used_elsewhere(ctx.build, ctx.office), None, [NEUTRAL]


def _case_standard_plan(ctx):
    ctx.other_office.environment.plan = "standard"
    db.session.commit()
    return (
        ctx.zuid_user,
        ctx.code,
        None,
        ["Only an environment with the premium plan can receive administrations."],
    )


def _case_no_connection_of_the_package(ctx):
    connection = ctx.other_office.connection
    connection.package = "twinfield"
    connection.name = "Twinfield"
    db.session.commit()
    return (
        ctx.zuid_user,
        ctx.code,
        connection.id,
        ["Your environment has no connection to Exact Online for “Kapsalon Knip”."],
    )


def _case_code_clash(ctx):
    ctx.build.administration(ctx.other_office.connection, name="Eigen Kapsalon", code="2024")
    return (
        ctx.zuid_user,
        ctx.code,
        ctx.other_office.connection.id,
        [
            "The chosen connection already has an administration with code 2024; "
            "“Kapsalon Knip” cannot go there."
        ],
    )


def _case_no_decision(ctx):
    return ctx.zuid_user, ctx.code, "none", ["Accept or reject “Kapsalon Knip”."]


def _case_terms_not_accepted(ctx):
    return ctx.zuid_user, ctx.code, "no-terms", ["Accept the terms and the fee to claim."]


BAD_INPUT = {
    "empty code": _case_empty,
    "malformed code": _case_malformed,
    "mistyped code": _case_typo,
    "unknown code": _case_unknown,
    "expired code": _case_expired,
    "withdrawn code": _case_withdrawn,
    "used code": _case_used,
    "standard plan": _case_standard_plan,
    "no connection of the package": _case_no_connection_of_the_package,
    "code clash in the connection": _case_code_clash,
    "no decision": _case_no_decision,
    "terms not accepted": _case_terms_not_accepted,
}


class Ctx:
    def __init__(self, build, office, other_office, transfer, code):
        self.build, self.office, self.other_office = build, office, other_office
        self.transfer, self.code = transfer, code
        self.zuid_user = other_office.superuser


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_a_bad_claim_gets_a_clear_message_422_and_nothing_is_copied(
    case, login, build, office, other_office, offered
):
    transfer, code, _administration = offered
    ctx = Ctx(build, office, other_office, transfer, code)
    actor, raw_code, special, expected = BAD_INPUT[case](ctx)
    transfer = ctx.transfer
    item = transfer.items[0]
    before = target_snapshot(other_office.environment)
    claims_before = set(db.session.scalars(select(Claim.id)))
    target_before = transfer.target_environment_id
    client = login(actor)
    client.get_page(FETCH)
    connection_id = special if isinstance(special, int) else other_office.connection.id
    decisions = {} if special == "none" else {item.id: ("accept", connection_id, None)}

    response = client.post_form(
        CLAIMS, decisions_form(raw_code, decisions, accept_terms=special != "no-terms")
    )
    copy_waiting()

    html = response.get_data(as_text=True)
    assert response.status_code == 422, html
    shown = all_field_errors(html) + [
        text_of(m).strip()
        for m in re.findall(r'<div class="flash flash-error" role="alert">(.*?)</div>', html, re.S)
    ]
    for message in expected:
        assert message in shown, shown
    assert target_snapshot(other_office.environment) == before
    assert set(db.session.scalars(select(Claim.id))) == claims_before
    fresh()
    assert db.session.get(Transfer, transfer.id).target_environment_id == target_before
    assert (
        count(
            Administration,
            Administration.environment_id == other_office.environment.id,
            Administration.code == item.administration_code,
            Administration.name == item.administration_name,
        )
        == 0
    )


@pytest.mark.parametrize("case", ["empty code", "malformed code", "mistyped code", "unknown code"])
def test_a_bad_code_at_the_code_entry_is_refused_with_the_same_message_as_at_the_claim(
    case, login, build, office, other_office, offered
):
    transfer, code, _administration = offered
    actor, raw_code, _special, expected = BAD_INPUT[case](
        Ctx(build, office, other_office, transfer, code)
    )
    client = login(actor)
    client.get_page(FETCH)

    response = client.post_form(FETCH, {"code": raw_code})

    assert response.status_code == 422
    assert code_errors(response) == expected


def test_unknown_expired_withdrawn_and_used_codes_get_exactly_the_same_answer(
    login, build, office, other_office
):
    speaks_english(other_office.superuser)
    recipients = ("super@zuid.example",)
    expired_admin = offerable(build, office.connection)
    _t, expired = offer(
        office.superuser, [expired_admin], recipients, now=utcnow() - timedelta(days=15, seconds=1)
    )
    withdrawn_transfer, withdrawn = offer(
        office.superuser, [offerable(build, office.connection)], recipients
    )
    offers.withdraw(office.superuser, withdrawn_transfer.id, origin="tests")
    db.session.commit()
    used = used_elsewhere(build, office)
    zuid = login(other_office.superuser)
    zuid.get_page(FETCH)

    answers = {}
    for name, code in {
        "unknown": unknown_code(),
        "expired": expired,
        "withdrawn": withdrawn,
        "used": used,
    }.items():
        at_entry = zuid.post_form(FETCH, {"code": code})
        at_claim = zuid.post_form(CLAIMS, {"code": code, "accept_terms": "y"})
        assert (at_entry.status_code, at_claim.status_code) == (422, 422), name
        answers[name] = (code_errors(at_entry), code_errors(at_claim))

    assert answers == {name: ([NEUTRAL], [NEUTRAL]) for name in answers}


def test_the_neutral_answer_is_the_same_in_dutch_for_every_dead_code(
    login, build, office, other_office
):
    recipients = ("super@zuid.example",)
    _t, expired = offer(
        office.superuser,
        [offerable(build, office.connection)],
        recipients,
        now=utcnow() - timedelta(days=16),
    )
    withdrawn_transfer, withdrawn = offer(
        office.superuser, [offerable(build, office.connection)], recipients
    )
    offers.withdraw(office.superuser, withdrawn_transfer.id, origin="tests")
    db.session.commit()
    zuid = login(other_office.superuser)
    zuid.get_page(FETCH)

    texts = {
        name: code_errors(zuid.post_form(FETCH, {"code": code}))
        for name, code in {
            "unknown": unknown_code(),
            "expired": expired,
            "withdrawn": withdrawn,
        }.items()
    }

    assert len({tuple(t) for t in texts.values()}) == 1, texts
    assert texts["unknown"] != [NEUTRAL]  # translated, not the English msgid
    assert len(texts["unknown"]) == 1


def test_any_superuser_of_the_receiving_office_may_claim_not_only_the_addressee(
    login, build, office, other_office
):
    """The code works for the office it was offered to: a colleague of the addressee can
    claim it (one person's failed attempts never lock the office out)."""
    transfer, code = offer(office.superuser, [offerable(build, office.connection)])
    second = build.user(
        other_office.environment, "superuser", email="tweede@zuid.example", name="Tweede"
    )
    client = login(second)
    client.get_page(FETCH)

    preview = client.post_form(FETCH, {"code": code})
    claimed = client.post_form(
        CLAIMS,
        decisions_form(code, {transfer.items[0].id: ("accept", other_office.connection.id, None)}),
    )

    assert preview.status_code == 200
    assert claimed.status_code == 302
    fresh()
    assert (
        db.session.get(Transfer, transfer.id).target_environment_id == other_office.environment.id
    )


def test_a_code_offered_to_another_office_gets_the_same_answer_as_a_wrong_code(
    login, build, office, other_office
):
    """No answer may tell that a code is live: not the status, not the body."""
    _transfer, code = offer(
        office.superuser, [offerable(build, office.connection)], recipients=("super@oost.example",)
    )
    speaks_english(other_office.superuser)
    client = login(other_office.superuser)
    client.get_page(FETCH)

    at_entry = client.post_form(FETCH, {"code": code})
    wrong = client.post_form(FETCH, {"code": unknown_code()})

    assert (at_entry.status_code, wrong.status_code) == (422, 422)
    assert code_errors(at_entry) == code_errors(wrong)
    assert code_errors(wrong) == [
        "This transfer code is not valid. It may be mistyped, expired, withdrawn or already used."
    ]
    assert count(Claim) == 0


def test_a_recipient_address_is_matched_whatever_its_case(login, build, office, other_office):
    transfer, code = offer(
        office.superuser, [offerable(build, office.connection)], recipients=("SUPER@Zuid.Example",)
    )
    zuid = login(other_office.superuser)
    zuid.get_page(FETCH)

    response = zuid.post_form(
        CLAIMS,
        decisions_form(code, {transfer.items[0].id: ("accept", other_office.connection.id, None)}),
    )

    assert response.status_code == 302, response.get_data(as_text=True)


def test_failed_code_entries_are_audited_but_typos_are_not(login, build, office, other_office):
    _transfer, code = offer(office.superuser, [offerable(build, office.connection)])
    zuid = login(other_office.superuser)
    zuid.get_page(FETCH)

    zuid.post_form(FETCH, {"code": typo_of(code)})
    zuid.post_form(CLAIMS, {"code": typo_of(code), "accept_terms": "y"})
    assert count(AuditEvent, AuditEvent.action == "claim_code_failed") == 0

    zuid.post_form(FETCH, {"code": unknown_code()})
    zuid.post_form(CLAIMS, {"code": unknown_code(), "accept_terms": "y"})

    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "claim_code_failed")
    ).all()
    assert len(events) == 2
    for event in events:
        assert event.actor_id == other_office.superuser.id
        assert event.actor_email == "super@zuid.example"
        assert event.environment_id == other_office.environment.id
        assert event.details == {"reason": "unknown"}


def test_a_withdrawn_code_entry_is_audited_as_not_claimable(login, build, office, other_office):
    transfer, code = offer(office.superuser, [offerable(build, office.connection)])
    offers.withdraw(office.superuser, transfer.id, origin="tests")
    db.session.commit()
    zuid = login(other_office.superuser)
    zuid.get_page(FETCH)

    zuid.post_form(FETCH, {"code": code})

    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "claim_code_failed")
    ).one()
    assert event.details == {"reason": "not_claimable"}


def test_the_offering_office_cannot_claim_its_own_offer(login, build, office):
    transfer, code = offer(office.superuser, [offerable(build, office.connection)])
    speaks_english(office.superuser)
    noord = login(office.superuser)
    noord.get_page(FETCH)

    response = noord.post_form(
        CLAIMS, decisions_form(code, {transfer.items[0].id: ("accept", office.connection.id, None)})
    )

    assert response.status_code == 422
    assert code_errors(response) == [NEUTRAL]
    assert count(Claim) == 0


def test_a_decision_for_an_item_of_another_offer_is_404_and_records_nothing(
    login, build, office, other_office
):
    transfer, code = offer(office.superuser, [offerable(build, office.connection)])
    other_transfer, _other_code = offer(office.superuser, [offerable(build, office.connection)])
    zuid = login(other_office.superuser)
    zuid.get_page(FETCH)

    response = zuid.post_form(
        CLAIMS,
        decisions_form(
            code,
            {
                transfer.items[0].id: ("accept", other_office.connection.id, None),
                other_transfer.items[0].id: ("accept", other_office.connection.id, None),
            },
        ),
    )

    assert response.status_code == 404
    assert count(Claim) == 0
    fresh()
    assert db.session.get(Transfer, transfer.id).target_environment_id is None
    assert db.session.get(Transfer, other_transfer.id).target_environment_id is None


def test_with_two_connections_of_the_package_the_receiver_chooses_where_it_goes(
    login, build, office, other_office
):
    second = build.connection(other_office.environment, name="Exact tweede")
    build.connection(other_office.environment, "twinfield")
    transfer, code = offer(
        office.superuser, [offerable(build, office.connection, name="Kapsalon", code="2024")]
    )
    item = transfer.items[0]
    zuid = login(other_office.superuser)
    zuid.get_page(FETCH)

    facts = preview_facts(zuid.post_form(FETCH, {"code": code}).get_data(as_text=True))
    response = zuid.post_form(CLAIMS, decisions_form(code, {item.id: ("accept", second.id, None)}))
    copy_waiting()

    assert sorted(facts[item.id]["connections"]) == sorted(
        [(other_office.connection.id, False), (second.id, False)]
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    fresh()
    item = db.session.get(TransferItem, item.id)
    assert item.state is ItemState.MIGRATED, item.last_error
    assert item.target_connection_id == second.id
    assert db.session.get(Administration, item.target_administration_id).connection_id == second.id


def test_a_connection_that_already_has_the_code_is_shown_disabled_next_to_one_that_has_not(
    login, build, office, other_office
):
    second = build.connection(other_office.environment, name="Exact tweede")
    build.administration(second, name="Eigen", code="2024")
    transfer, code = offer(
        office.superuser, [offerable(build, office.connection, name="Kapsalon", code="2024")]
    )
    zuid = login(other_office.superuser)
    zuid.get_page(FETCH)

    response = zuid.post_form(FETCH, {"code": code})

    facts = preview_facts(response.get_data(as_text=True))[transfer.items[0].id]
    assert sorted(facts["connections"]) == sorted(
        [(other_office.connection.id, False), (second.id, True)]
    )
    assert re.search(
        rf'<option value="{second.id}" disabled[^>]*>Exact tweede — [^<]*2024',
        response.get_data(as_text=True),
    )


def test_a_claim_the_preview_allows_is_never_left_uncopyable_by_the_same_code_elsewhere(
    login, build, office, other_office
):
    """Zuid already has an administration with code 2024 under one Exact connection and
    takes Noord's 2024 into its other one: allowed, since codes are unique per connection.
    The office's inbound addresses are built from the code, so either the service refuses
    this placement up front, or the copy gets an inbound address of its own. What must
    never happen is a claim that is accepted and then can never be copied."""
    second = build.connection(other_office.environment, name="Exact tweede")
    own = build.administration(other_office.connection, name="Eigen", code="2024")
    transfer, code = offer(
        office.superuser, [offerable(build, office.connection, name="Kapsalon", code="2024")]
    )
    item = transfer.items[0]
    zuid = login(other_office.superuser)
    zuid.get_page(FETCH)

    response = zuid.post_form(CLAIMS, decisions_form(code, {item.id: ("accept", second.id, None)}))
    copy_waiting()

    fresh()
    item = db.session.get(TransferItem, item.id)
    if response.status_code == 422:  # refused up front: nothing was claimed
        assert count(Claim) == 0
        assert item.state is ItemState.OFFERED
        return
    assert response.status_code == 302, response.get_data(as_text=True)
    assert item.state is ItemState.MIGRATED, item.last_error
    target = db.session.get(Administration, item.target_administration_id)
    assert (target.connection_id, target.code) == (second.id, "2024")
    assert target.inbound_email != db.session.get(Administration, own.id).inbound_email
    assert target.inbound_email.startswith("zuid.")
    assert target.inbound_email.endswith("@in.overdracht.example")


def test_an_office_that_lost_the_premium_plan_can_still_turn_an_offer_down_without_the_terms(
    login, build, office
):
    west = build.environment("Kantoor West", office_code="WEST")
    west_super = build.user(west, "superuser", email="super@west.example")
    administration = offerable(build, office.connection, name="Garage Snel")
    transfer, code = offer(office.superuser, [administration], recipients=(west_super.email,))
    west.plan = Plan.STANDARD  # it lost the premium plan after the offer was made
    db.session.commit()
    client = login(west_super)
    client.get_page(FETCH)

    response = client.post_form(
        CLAIMS,
        decisions_form(
            code,
            {transfer.items[0].id: ("reject", None, "Wij nemen deze klant niet over.")},
            accept_terms=False,
        ),
    )

    assert response.status_code == 302, response.get_data(as_text=True)
    fresh()
    assert db.session.get(Transfer, transfer.id).state is TransferState.COMPLETED
    assert db.session.get(Administration, administration.id).state is AdministrationState.ACTIVE
    claim = db.session.scalars(select(Claim).where(Claim.transfer_id == transfer.id)).one()
    assert claim.terms_version == "" and claim.fee_per_administration == 0
    mail = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "transfer_items_rejected")
    ).one()
    assert "Wij nemen deze klant niet over." in mail.body_text


def test_accepting_still_needs_the_premium_plan_and_the_terms(login, build, office):
    west = build.environment("Kantoor West", office_code="WEST")
    west_super = build.user(west, "superuser", email="super@west.example")
    connection = build.connection(west)
    administration = offerable(build, office.connection, name="Garage Snel")
    transfer, code = offer(office.superuser, [administration], recipients=(west_super.email,))
    west.plan = Plan.STANDARD
    db.session.commit()
    client = login(west_super)
    client.get_page(FETCH)

    response = client.post_form(
        CLAIMS,
        decisions_form(code, {transfer.items[0].id: ("accept", connection.id, None)}),
    )

    assert response.status_code == 422
    assert count(Claim) == 0


def test_rejecting_every_administration_completes_the_offer_without_a_copy(
    login, build, office, other_office
):
    administration = offerable(build, office.connection, name="Garage Snel")
    transfer, code = offer(office.superuser, [administration])
    zuid = login(other_office.superuser)
    zuid.get_page(FETCH)

    response = zuid.post_form(
        CLAIMS,
        decisions_form(code, {transfer.items[0].id: ("reject", None, "Te klein voor ons.")}),
    )

    assert response.status_code == 302
    assert copy_waiting() == 0
    fresh()
    assert db.session.get(Transfer, transfer.id).state is TransferState.COMPLETED
    assert db.session.get(Administration, administration.id).state is AdministrationState.ACTIVE
    assert count(Administration, Administration.environment_id == other_office.environment.id) == 0
    mail = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "transfer_items_rejected")
    ).one()
    assert "Te klein voor ons." in mail.body_text
    assert count(OutboxMessage, OutboxMessage.kind == "transfer_completed") == 0
