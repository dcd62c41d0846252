"""Locked ("gemigreerd") documents: imported already decided, shown and downloadable,
not changeable until a superuser unlocks them (one or many, audited); a transfer's
copy keeps the lock."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.admin_settings import services
from app.admin_settings.locks import DocumentLocked, unlock_documents
from app.admin_settings.models import Administration, Document, DocumentStatus
from app.audit import AuditEvent
from app.errors import NotAllowed, NotFoundError
from app.extensions import db
from app.transfers.copying import copy_waiting
from tests.helpers import accept_all, fresh, offer
from tests.integration.pages import flash_categories, row_blockers, row_counts, text_of

LIST = "/settings/administrations"


def page_of(administration) -> str:
    return f"{LIST}/{administration.id}"


def decide_url(administration) -> str:
    return f"{page_of(administration)}/documents/decide"


def unlock_url(administration) -> str:
    return f"{page_of(administration)}/documents/unlock"


def api_unlock_url(administration) -> str:
    return f"/api/v1/administrations/{administration.id}/documents/unlock"


def document_row(html: str, document_id: int) -> str:
    match = re.search(rf'<tr data-document-id="{document_id}"[^>]*>(.*?)</tr>', html, re.DOTALL)
    assert match, f"no row for document {document_id}"
    return match.group(1)


def row_buttons(html: str, document_id: int) -> list[str]:
    return re.findall(r'data-action="(\w+)"', document_row(html, document_id))


def state(*documents) -> list[tuple[str, bool]]:
    fresh()
    return [
        (db.session.get(Document, d.id).status.value, db.session.get(Document, d.id).locked)
        for d in documents
    ]


def unlock_events(administration) -> list[AuditEvent]:
    fresh()
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.action == "documents_unlocked",
                AuditEvent.object_id == administration.id,
            )
            .order_by(AuditEvent.id)
        )
    )


@pytest.fixture
def migrated(build, office):
    """An administration with an imported approved and rejected document (locked) and a
    document of its own, still to be decided."""
    administration = build.administration(office.connection, name="Bakkerij Het Korenschoof")
    approved = build.document(
        administration, "approved", locked=True, filename="gemigreerd-goed.pdf"
    )
    rejected = build.document(administration, "rejected", locked=True, filename="gemigreerd-af.pdf")
    own = build.document(administration, "pending", filename="eigen.pdf")
    return administration, approved, rejected, own


# --------------------------------------------------------------------------- the page


def test_a_locked_document_shows_gemigreerd_and_no_decide_buttons(login, office, migrated):
    administration, approved, rejected, own = migrated
    html = login(office.superuser).get_page(page_of(administration)).get_data(as_text=True)

    for locked in (approved, rejected):
        row = text_of(document_row(html, locked.id))
        assert "Gemigreerd" in row
        assert row_buttons(html, locked.id) == ["unlock"]
    assert "Gemigreerd" not in text_of(document_row(html, own.id))
    assert row_buttons(html, own.id) == ["approve", "reject"]
    assert 'id="unlock-selected"' in html


@pytest.mark.parametrize("role", ["authorizer", "user"])
def test_only_a_superuser_sees_unlock_buttons(login, office, migrated, role):
    administration, approved, _rejected, _own = migrated
    html = login(getattr(office, role)).get_page(page_of(administration)).get_data(as_text=True)
    assert "Gemigreerd" in text_of(document_row(html, approved.id))
    assert row_buttons(html, approved.id) == []
    assert 'id="unlock-selected"' not in html


def test_a_locked_document_can_still_be_downloaded(login, office, migrated):
    administration, approved, _rejected, _own = migrated
    response = login(office.user).get(f"{page_of(administration)}/documents/{approved.id}/file")
    assert response.status_code == 200
    assert response.get_data().startswith(b"%PDF-")
    assert response.mimetype == "application/pdf"


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_a_locked_document_cannot_be_decided_on_the_page(login, office, migrated, action):
    administration, approved, rejected, _own = migrated
    client = login(office.superuser)
    client.get_page(page_of(administration))
    for document in (approved, rejected):
        response = client.post_form(
            f"{decide_url(administration)}?one={document.id}&action={action}",
            follow_redirects=True,
        )
        html = response.get_data(as_text=True)
        assert flash_categories(html) == ["error"]
        assert "Dit document is gemigreerd en vergrendeld; ontgrendel het eerst." in text_of(html)
    assert state(approved, rejected) == [("approved", True), ("rejected", True)]


def test_a_batch_with_a_locked_document_changes_nothing_and_names_it(login, office, migrated):
    administration, approved, _rejected, own = migrated
    client = login(office.superuser)
    client.get_page(page_of(administration))
    response = client.post_form(
        decide_url(administration),
        {"action": "reject", "document_ids": [own.id, approved.id]},
        follow_redirects=True,
    )
    text = text_of(response.get_data(as_text=True))
    assert (
        "Er is niets gewijzigd: deze documenten zijn gemigreerd en vergrendeld; "
        "ontgrendel ze eerst: gemigreerd-goed.pdf." in text
    )
    assert state(own, approved) == [("pending", False), ("approved", True)]
    fresh()
    assert db.session.get(Document, own.id).decided_by_id is None


def test_the_decide_service_refuses_a_locked_document(office, migrated):
    administration, approved, _rejected, own = migrated
    with pytest.raises(DocumentLocked) as refused:
        services.decide_documents(
            office.superuser, administration.id, [own.id, approved.id], "approve", origin="tests"
        )
    db.session.rollback()
    assert refused.value.status == 422
    assert refused.value.document_ids == [approved.id]
    assert refused.value.field == "document_ids"
    assert state(own, approved) == [("pending", False), ("approved", True)]


def test_unlocking_one_on_the_page_is_audited_and_then_it_can_be_decided(login, office, migrated):
    administration, approved, rejected, _own = migrated
    client = login(office.superuser)
    client.get_page(page_of(administration))

    response = client.post_form(f"{unlock_url(administration)}?one={approved.id}")
    assert response.status_code == 302
    html = client.get_page(response.headers["Location"]).get_data(as_text=True)
    assert "1 document ontgrendeld." in text_of(html)
    assert state(approved, rejected) == [("approved", False), ("rejected", True)]
    # It shows its own status again, with its decide buttons.
    assert "Gemigreerd" not in text_of(document_row(html, approved.id))
    assert "Goedgekeurd" in text_of(document_row(html, approved.id))
    assert row_buttons(html, approved.id) == ["reject"]

    [event] = unlock_events(administration)
    assert event.details["count"] == 1
    assert event.actor_id == office.superuser.id
    assert event.environment_id == office.environment.id

    client.post_form(f"{decide_url(administration)}?one={approved.id}&action=reject")
    assert state(approved) == [("rejected", False)]


def test_unlocking_many_on_the_page_counts_only_the_locked_ones(login, office, migrated):
    administration, approved, rejected, own = migrated
    client = login(office.superuser)
    client.get_page(page_of(administration))
    response = client.post_form(
        unlock_url(administration),
        {"document_ids": [approved.id, rejected.id, own.id]},
        follow_redirects=True,
    )
    assert "2 documenten ontgrendeld." in text_of(response.get_data(as_text=True))
    assert state(approved, rejected, own) == [
        ("approved", False),
        ("rejected", False),
        ("pending", False),
    ]
    [event] = unlock_events(administration)
    assert event.details["count"] == 2
    assert sorted(event.details["document_ids"]) == sorted([approved.id, rejected.id])


def test_unlocking_documents_that_are_not_locked_records_nothing(office, migrated):
    administration, _approved, _rejected, own = migrated
    assert unlock_documents(office.superuser, administration.id, [own.id], origin="tests") == 0
    db.session.commit()
    assert unlock_events(administration) == []


@pytest.mark.parametrize("role", ["authorizer", "user"])
def test_only_a_superuser_may_unlock(login, office, migrated, role, api_client):
    administration, approved, _rejected, _own = migrated
    client = login(getattr(office, role))
    client.get_page(page_of(administration))
    assert client.post_form(f"{unlock_url(administration)}?one={approved.id}").status_code == 403
    http, headers = api_client(getattr(office, role))
    response = http.post(
        api_unlock_url(administration), json={"document_ids": [approved.id]}, headers=headers
    )
    assert response.status_code == 403
    with pytest.raises(NotAllowed):
        unlock_documents(getattr(office, role), administration.id, [approved.id], origin="tests")
    assert state(approved) == [("approved", True)]
    assert unlock_events(administration) == []


def test_another_environments_documents_are_not_found(
    login, build, office, other_office, migrated, api_client
):
    administration, approved, _rejected, _own = migrated
    theirs = build.administration(other_office.connection)
    their_locked = build.document(theirs, "approved", locked=True)

    # Zuid aims at Noord's administration: 404 on the page and in the API.
    client = login(other_office.superuser)
    client.get_page(LIST)
    assert client.post_form(f"{unlock_url(administration)}?one={approved.id}").status_code == 404
    http, headers = api_client(other_office.superuser)
    response = http.post(
        api_unlock_url(administration), json={"document_ids": [approved.id]}, headers=headers
    )
    assert response.status_code == 404
    # Its own administration with Noord's document in the batch: 404, nothing unlocked.
    response = http.post(
        api_unlock_url(theirs),
        json={"document_ids": [their_locked.id, approved.id]},
        headers=headers,
    )
    assert response.status_code == 404
    with pytest.raises(NotFoundError):
        unlock_documents(other_office.superuser, theirs.id, [approved.id], origin="tests")
    assert state(approved, their_locked) == [("approved", True), ("approved", True)]


def test_a_document_of_another_administration_is_not_found(build, office, migrated, api_client):
    administration, approved, _rejected, _own = migrated
    other = build.administration(office.connection)
    http, headers = api_client(office.superuser)
    response = http.post(
        api_unlock_url(other), json={"document_ids": [approved.id]}, headers=headers
    )
    assert response.status_code == 404
    assert state(approved) == [("approved", True)]


def test_a_migrated_administrations_documents_stay_locked(build, office, api_client):
    moved = build.administration(office.connection, state="migrated")
    locked = build.document(moved, "approved", locked=True)
    http, headers = api_client(office.superuser)
    response = http.post(api_unlock_url(moved), json={"document_ids": [locked.id]}, headers=headers)
    assert response.status_code == 422
    assert "administration" in response.get_json()["errors"]
    assert state(locked) == [("approved", True)]


# --------------------------------------------------------------------------- filters and counts


def test_the_gemigreerd_filter_shows_the_locked_ones_and_the_others_do_not(login, office, migrated):
    administration, approved, rejected, own = migrated
    client = login(office.superuser)

    def listed(status):
        html = client.get_page(f"{page_of(administration)}?status={status}").get_data(as_text=True)
        return sorted(int(i) for i in re.findall(r'<tr data-document-id="(\d+)"', html)), html

    ids, html = listed("migrated")
    assert ids == sorted([approved.id, rejected.id])
    tabs = text_of(html)
    assert "Gemigreerd (2)" in tabs
    assert "Goedgekeurd (0)" in tabs
    assert "Afgekeurd (0)" in tabs
    assert "Alle (3)" in tabs
    assert listed("approved")[0] == []
    assert listed("rejected")[0] == []
    assert listed("pending")[0] == [own.id]


def test_the_administrations_list_counts_locked_ones_as_gemigreerd(login, office, migrated, build):
    administration, _approved, _rejected, _own = migrated
    build.document(administration, "approved")
    html = login(office.superuser).get_page(LIST).get_data(as_text=True)
    counts = row_counts(html, administration.id)
    assert counts["pending"] == 1
    assert counts["approved"] == 1
    assert counts["rejected"] == 0
    assert counts["locked"] == 2
    assert "Gemigreerd" in html


def test_locked_decided_documents_count_as_decided_for_the_checklist(login, build, office):
    administration = build.administration(office.connection)
    build.document(administration, "approved", locked=True)
    build.document(administration, "rejected", locked=True)
    html = login(office.superuser).get_page(LIST).get_data(as_text=True)
    assert row_blockers(html, administration.id) == []
    row = services.get_administration(office.superuser, administration.id)
    assert row.blockers == []


# --------------------------------------------------------------------------- the API


def test_the_api_lists_documents_with_locked(office, migrated, api_client):
    administration, approved, rejected, own = migrated
    http, headers = api_client(office.user)
    url = f"/api/v1/administrations/{administration.id}/documents"
    body = http.get(url, headers=headers).get_json()
    locked = {d["id"]: d["locked"] for d in body["items"]}
    assert locked == {approved.id: True, rejected.id: True, own.id: False}
    statuses = {d["id"]: d["status"] for d in body["items"]}
    assert statuses[approved.id] == "approved"

    only_locked = http.get(url, query_string={"locked": "true"}, headers=headers).get_json()
    assert sorted(d["id"] for d in only_locked["items"]) == sorted([approved.id, rejected.id])

    item = http.get(f"/api/v1/administrations/{administration.id}", headers=headers).get_json()
    assert item["documents"]["locked"] == 2
    assert item["documents"]["total"] == 3


def test_unlocking_many_through_the_api(office, migrated, api_client):
    administration, approved, rejected, own = migrated
    http, headers = api_client(office.superuser)
    response = http.post(
        api_unlock_url(administration),
        json={"document_ids": [approved.id, rejected.id, own.id]},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.get_json() == {"unlocked": 2}
    assert state(approved, rejected, own) == [
        ("approved", False),
        ("rejected", False),
        ("pending", False),
    ]
    [event] = unlock_events(administration)
    assert event.details["count"] == 2
    assert event.origin == "api"

    again = http.post(
        api_unlock_url(administration), json={"document_ids": [approved.id]}, headers=headers
    )
    assert again.get_json() == {"unlocked": 0}
    assert len(unlock_events(administration)) == 1


def api_decide_url(administration) -> str:
    return f"/api/v1/administrations/{administration.id}/documents/decide"


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_a_locked_document_cannot_be_decided_through_the_api(office, migrated, api_client, action):
    administration, approved, rejected, own = migrated
    http, headers = api_client(office.authorizer)
    response = http.post(
        api_decide_url(administration),
        json={"document_ids": [own.id, approved.id, rejected.id], "action": action},
        headers=headers,
    )
    assert response.status_code == 422
    [message] = response.get_json()["errors"]["document_ids"]
    assert "gemigreerd-goed.pdf" in message
    assert "gemigreerd-af.pdf" in message
    assert state(own, approved, rejected) == [
        ("pending", False),
        ("approved", True),
        ("rejected", True),
    ]


def test_after_unlocking_through_the_api_it_can_be_decided_there(office, migrated, api_client):
    administration, approved, _rejected, own = migrated
    http, headers = api_client(office.superuser)
    http.post(api_unlock_url(administration), json={"document_ids": [approved.id]}, headers=headers)
    response = http.post(
        api_decide_url(administration),
        json={"document_ids": [approved.id, own.id], "action": "reject"},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.get_json() == {"changed": 2}
    assert state(approved, own) == [("rejected", False), ("rejected", False)]


def test_deciding_through_the_api_follows_the_roles_and_the_tenant(
    build, office, other_office, migrated, api_client
):
    administration, _approved, _rejected, own = migrated
    http, headers = api_client(office.user)
    body = {"document_ids": [own.id], "action": "approve"}
    assert http.post(api_decide_url(administration), json=body, headers=headers).status_code == 403
    http, headers = api_client(other_office.superuser)
    assert http.post(api_decide_url(administration), json=body, headers=headers).status_code == 404
    theirs = build.administration(other_office.connection)
    assert http.post(api_decide_url(theirs), json=body, headers=headers).status_code == 404
    http, headers = api_client(office.superuser)
    response = http.post(
        api_decide_url(administration),
        json={"document_ids": [own.id], "action": "keep"},
        headers=headers,
    )
    assert response.status_code == 422
    assert "action" in response.get_json()["errors"]
    assert state(own) == [("pending", False)]


@pytest.mark.parametrize(
    "body",
    [
        {"document_ids": []},
        {"document_ids": [0]},
        {"document_ids": [2**31]},
        {"document_ids": ["een"]},
        {"document_ids": list(range(1, 102))},
        {},
    ],
)
def test_bad_unlock_input_is_a_field_error(office, migrated, api_client, body):
    administration, approved, _rejected, _own = migrated
    http, headers = api_client(office.superuser)
    response = http.post(api_unlock_url(administration), json=body, headers=headers)
    assert response.status_code == 422
    assert "document_ids" in response.get_json()["errors"]
    assert state(approved) == [("approved", True)]


def test_more_than_the_limit_on_the_page_is_refused(login, office, migrated, app):
    administration, approved, _rejected, _own = migrated
    limit = app.config["MAX_LIST_ITEMS"]
    client = login(office.superuser)
    client.get_page(page_of(administration))
    response = client.post_form(
        unlock_url(administration),
        {"document_ids": [approved.id] * (limit + 1)},
        follow_redirects=True,
    )
    assert flash_categories(response.get_data(as_text=True)) == ["error"]
    assert f"Kies ten hoogste {limit} documenten tegelijk." in text_of(
        response.get_data(as_text=True)
    )
    assert state(approved) == [("approved", True)]


def test_the_openapi_document_declares_unlock_and_locked(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    assert "post" in paths["/api/v1/administrations/{administration_id}/documents/unlock"]
    assert "post" in paths["/api/v1/administrations/{administration_id}/documents/decide"]
    schemas = spec["components"]["schemas"]
    ids = schemas["Unlock"]["properties"]["document_ids"]
    assert ids["minItems"] == 1
    assert ids["maxItems"] == 100
    assert schemas["Document"]["properties"]["locked"]["type"] == "boolean"


# --------------------------------------------------------------------------- the transfer copy


def test_a_transfers_copy_keeps_the_lock(build, office, other_office):
    source = build.administration(office.connection, name="Verhuisd met slot")
    locked = build.document(source, "approved", locked=True)
    plain = build.document(source, "rejected")
    transfer, code = offer(office.superuser, [source], recipients=[other_office.superuser.email])
    accept_all(other_office.superuser, transfer, code, other_office.connection)
    assert copy_waiting() == 1

    fresh()
    target = db.session.scalars(
        select(Administration).where(Administration.environment_id == other_office.environment.id)
    ).one()
    copies = {
        d.source_document_id: d
        for d in db.session.scalars(select(Document).where(Document.administration_id == target.id))
    }
    assert copies[locked.id].locked is True
    assert copies[locked.id].status is DocumentStatus.APPROVED
    assert copies[plain.id].locked is False
    with pytest.raises(DocumentLocked):
        services.decide_documents(
            other_office.superuser,
            target.id,
            [copies[locked.id].id],
            "reject",
            origin="tests",
        )
    db.session.rollback()
