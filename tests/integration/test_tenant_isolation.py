"""Every route, walked as a superuser of another environment, never reveals or
changes a Noord object.

The table below must name every rule in ``app.url_map``: a new route that is
not declared here fails ``test_every_route_declares_its_tenant_expectation``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.admin_settings.models import AuthorizationStep, Document, Workflow
from app.auth.models import ApiToken, User
from app.db import utcnow
from app.extensions import db
from app.migration_files import imports
from app.migration_files.models import Import
from app.storage import blob_store
from app.transfers.claims import Decision, submit_claim
from app.transfers.copying import copy_waiting
from app.transfers.models import Transfer
from app.transfers.offers import create_offer
from app.uploads.models import Upload, UploadState
from tests.helpers import ensure_receivers

# What a superuser of another environment gets from each endpoint:
#   "foreign" — the path names a Noord object: 404 for every method;
#   "own"     — no object in the path; only the caller's own data (foreign ids in
#               the query or body are ignored or refused, never shown or acted on);
#   "public"  — nothing tenant-owned at all.
EXPECTATIONS: dict[str, str] = {
    "static": "public",
    "api-docs.openapi_json": "public",
    "api_docs.docs": "public",
    "auth.index": "own",
    "auth.login": "public",
    "auth.logout": "own",
    "auth.end_sessions": "own",
    "auth.language": "own",
    "auth.account": "own",
    "auth.change_password": "own",
    "auth.revoke_token": "foreign",
    "admin_settings.administrations": "own",
    "admin_settings.administration": "foreign",
    "admin_settings.decide_documents": "foreign",
    "admin_settings.unlock_documents": "foreign",
    "admin_settings.upload_document": "foreign",
    "admin_settings.document_file": "foreign",
    "admin_settings.deactivate_workflow": "foreign",
    "admin_settings.activate_workflow": "foreign",
    "admin_settings.delete_workflow": "foreign",
    "admin_settings.remove_authorizer": "foreign",
    "admin_settings.users": "own",
    "admin_settings.connections": "own",
    # Support pages and API do not exist for a superuser.
    "support.index": "foreign",
    "support.environments": "foreign",
    "support.transfer": "foreign",
    "support.revoke": "foreign",
    "support.retry": "foreign",
    "support.evidence": "foreign",
    "support.evidence_xlsx": "foreign",
    "support.audit_trail": "foreign",
    "support.audit_csv": "foreign",
    "support_api.list_transfers": "foreign",
    "support_api.get_transfer": "foreign",
    "support_api.revoke": "foreign",
    "support_api.retry": "foreign",
    "support.imports": "foreign",
    "support.retry_import": "foreign",
    "support_api.list_imports": "foreign",
    "support_api.retry_import": "foreign",
    "auth_api.me": "own",
    "administrations_api.list_administrations": "own",
    "administrations_api.get_administration": "foreign",
    "administrations_api.list_documents": "foreign",
    "administrations_api.unlock_documents": "foreign",
    "administrations_api.decide_documents": "foreign",
    "preflight_api.preflight": "foreign",
    "transfers.overview": "own",
    "transfers.actions": "own",
    "transfers.move_checklist": "own",
    "transfers.move_select": "own",
    "transfers.move_summary": "own",
    "transfers.detail": "foreign",
    "transfers.withdraw": "foreign",
    "transfers.extend": "foreign",
    "transfers.resend": "foreign",
    "transfers.fetch": "own",
    "transfers_api.create": "own",
    "transfers_api.list_transfers": "own",
    "transfers_api.get": "foreign",
    "transfers_api.withdraw": "foreign",
    "transfers_api.extend": "foreign",
    "transfers_api.resend": "foreign",
    "transfers.submit_claim": "own",
    "transfers.claim": "foreign",
    "transfers.claim_progress": "foreign",
    "transfers.progress": "own",
    "transfers.reconciliation": "foreign",
    "transfers.reconciliation_xlsx": "foreign",
    "claims_api.preview_claim": "own",
    "claims_api.create_claim": "own",
    "claims_api.get_claim": "foreign",
    "claims_api.reconciliation": "foreign",
    "uploads.create": "own",
    "uploads.upload": "foreign",
    "imports.detail": "foreign",
    # The import wizard names no object (a foreign upload token in the form is a 422,
    # nothing created); every page of a Noord import is a 404.
    "imports.start": "own",
    "imports.choose": "own",
    "imports.upload": "own",
    "imports.confirm": "foreign",
    "imports.cancel": "foreign",
    "imports.progress_json": "foreign",
    "imports.report_csv": "foreign",
    # Migration-file export: the page lists only the caller's connections (a foreign
    # connection_id is a 404); a foreign administration id in the form is a 404.
    "migration_export.choose": "own",
    "migration_export.download": "own",
    "migration_export_api.export": "foreign",
    # Imports API: creating one is the caller's own (a foreign connection_id in the body
    # is a 422); every path naming a Noord import is a 404.
    "imports_api.create": "own",
    "imports_api.get": "foreign",
    "imports_api.confirm": "foreign",
    "imports_api.report": "foreign",
}

SECRET_NAME = "Geheime Administratie Noord"
SECRET_FILE = "noord-geheim-factuur.pdf"


def test_every_route_declares_its_tenant_expectation(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    missing = sorted(endpoints - EXPECTATIONS.keys())
    stale = sorted(EXPECTATIONS.keys() - endpoints)
    assert not missing, f"routes without a tenant expectation: {missing}"
    assert not stale, f"expectations for routes that no longer exist: {stale}"


@pytest.fixture
def noord(office, build, api_client):
    """A Noord environment with one of every tenant object, and ids to aim at."""
    administration = build.administration(office.connection, name=SECRET_NAME)
    document = build.document(administration, filename=SECRET_FILE)
    locked = build.document(administration, "approved", locked=True)
    workflow = build.workflow(administration)
    step = build.authorization_step(administration, office.authorizer)
    api_client(office.superuser)  # gives Noord's superuser a token to aim at
    offered = build.administration(office.connection, name=SECRET_NAME + " (aangeboden)")
    build.document(offered, "approved")
    ensure_receivers(["someone@elsewhere.example"])  # a third office, not the walker's
    transfer, _code = create_offer(
        office.superuser,
        administration_ids=[offered.id],
        recipient_emails=["someone@elsewhere.example"],
        checklist_confirmed=True,
        accept_terms=True,
        origin="tests",
    )
    db.session.commit()
    # A third office claims another Noord administration: a claim Zuid has no part in.
    oost = build.environment("Kantoor Oost", office_code="OOST")
    oost_super = build.user(oost, "superuser", email="super@oost.example")
    oost_connection = build.connection(oost)
    claimed = build.administration(office.connection, name=SECRET_NAME + " (geclaimd)")
    build.document(claimed, "approved")
    _t, claimed_code = create_offer(
        office.superuser,
        administration_ids=[claimed.id],
        recipient_emails=[oost_super.email],
        checklist_confirmed=True,
        accept_terms=True,
        origin="tests",
    )
    db.session.commit()
    claim = submit_claim(
        oost_super,
        claimed_code,
        [Decision(_t.items[0].id, "accept", oost_connection.id)],
        accept_terms=True,
        origin="tests",
    )
    db.session.commit()
    copy_waiting()
    token = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == office.superuser.id)
    ).one()
    upload = Upload(
        environment_id=office.environment.id,
        user_id=office.superuser.id,
        token="noord-upload-token-" + "x" * 24,
        filename=SECRET_FILE,
        length=100,
        offset=10,
        state=UploadState.UPLOADING,
        expires_at=utcnow() + timedelta(hours=1),
    )
    db.session.add(upload)
    db.session.commit()
    # A Noord import (refused: the file is no zip) to aim at.
    noord_import = imports.create_import(
        office.superuser,
        blob_key=blob_store().put_bytes(b"geen zip" * 10),
        size=80,
        file_name=SECRET_FILE,
        import_type="combined",
        default_status="pending",
        origin="tests",
    )
    imports.dry_run(noord_import)
    db.session.commit()
    ids = {
        "administration_id": administration.id,
        "document_id": document.id,
        "locked_document_id": locked.id,
        "workflow_id": workflow.id,
        "step_id": step.id,
        "token_id": token.id,
        "token": upload.token,
        "transfer_id": transfer.id,
        "claim_id": claim.id,
        "fmt": "csv",
        "items": ",".join(str(i.id) for i in _t.items),
        "connection_id": office.connection.id,
        "import_id": noord_import.id,
    }
    return office, ids


def snapshot(environment_id: int) -> dict:
    """Everything a walk could change in one environment."""
    return {
        "documents": sorted(
            (d.id, d.status.value, d.decided_by_id, d.locked)
            for d in db.session.scalars(
                select(Document).where(Document.environment_id == environment_id)
            )
        ),
        "workflows": sorted(
            (w.id, w.active)
            for w in db.session.scalars(
                select(Workflow).where(Workflow.environment_id == environment_id)
            )
        ),
        "steps": sorted(
            s.id
            for s in db.session.scalars(
                select(AuthorizationStep).where(AuthorizationStep.environment_id == environment_id)
            )
        ),
        "transfers": sorted(
            (t.id, t.state.value)
            for t in db.session.scalars(
                select(Transfer).where(Transfer.source_environment_id == environment_id)
            )
        ),
        "uploads": sorted(
            (u.id, u.state.value, u.offset)
            for u in db.session.scalars(
                select(Upload).where(Upload.environment_id == environment_id)
            )
        ),
        "imports": sorted(
            (i.id, i.state.value)
            for i in db.session.scalars(
                select(Import).where(Import.environment_id == environment_id)
            )
        ),
        "tokens": sorted(
            t.id
            for t in db.session.scalars(
                select(ApiToken).join(User).where(User.environment_id == environment_id)
            )
        ),
    }


def _url(app, rule, values: dict) -> str:
    with app.test_request_context():
        from flask import url_for

        values = {**values, "filename": "app.css", "fmt": "csv"}
        args = {name: values[name] for name in rule.arguments}
        return url_for(rule.endpoint, **args)


def _walk(app, page_client, api_headers, api_http, ids: dict, own_ids: dict):
    """Request every rule and method with foreign ids in the path, query and body."""
    failures = []
    foreign_query = {name: value for name, value in ids.items()}
    foreign_query["document_ids"] = ids["document_id"]
    foreign_body = {
        **foreign_query,
        "administration_ids": [ids["administration_id"]],
        "document_ids": [ids["document_id"], ids["locked_document_id"]],
        "action": "approve",
        "recipient_emails": ["someone@elsewhere.example"],
        "checklist_confirmed": True,
        "accept_terms": True,
    }
    # Logging out ends the walk's session, so it goes last.
    # Routes that end the session run last.
    rules = sorted(
        app.url_map.iter_rules(),
        key=lambda r: r.endpoint in ("auth.logout", "auth.end_sessions"),
    )
    for rule in rules:
        expectation = EXPECTATIONS[rule.endpoint]
        is_api = rule.rule.startswith("/api/")
        variants = [ids]
        path_args = [a for a in rule.arguments if a in ids]
        if len(path_args) > 1:
            # Own administration, foreign object beneath it: still a 404.
            variants.append({**ids, "administration_id": own_ids["administration_id"]})
        for values in variants:
            url = _url(app, rule, values)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                if is_api:
                    response = api_http.open(
                        url,
                        method=method,
                        headers=api_headers,
                        query_string=foreign_query,
                        json=foreign_body if method != "GET" else None,
                    )
                elif method == "GET":
                    response = page_client.get(url, query_string=foreign_query)
                else:
                    response = page_client.post_form(
                        url,
                        {
                            **foreign_query,
                            "administration_ids": ids["administration_id"],
                            "action": "approve",
                            "language": "en",
                        },
                    )
                body = response.get_data(as_text=True)
                response.close()
                where = f"{method} {url} ({rule.endpoint})"
                if response.status_code >= 500:
                    failures.append(f"{where}: {response.status_code}")
                if expectation == "foreign" and response.status_code != 404:
                    failures.append(f"{where}: expected 404, got {response.status_code}")
                if SECRET_NAME in body or SECRET_FILE in body:
                    failures.append(f"{where}: shows a Noord object")
    return failures


def test_a_superuser_of_another_environment_gets_404_on_every_noord_object(
    app, noord, other_office, build, login, api_client
):
    office, ids = noord
    own_administration = build.administration(other_office.connection, name="Zuid eigen")
    build.document(own_administration)
    own_ids = {"administration_id": own_administration.id}
    before = snapshot(office.environment.id)

    page_client = login(other_office.superuser)
    api_http, api_headers = api_client(other_office.superuser)
    failures = _walk(app, page_client, api_headers, api_http, ids, own_ids)

    db.session.expire_all()
    assert failures == [], "\n".join(failures)
    assert snapshot(office.environment.id) == before


def test_the_api_list_of_another_environment_never_includes_noord(
    noord, other_office, build, api_client
):
    _office, ids = noord
    build.administration(other_office.connection, name="Zuid eigen")
    http, headers = api_client(other_office.superuser)
    listed = http.get("/api/v1/administrations", headers=headers).get_json()
    assert [a["name"] for a in listed] == ["Zuid eigen"]
    assert ids["administration_id"] not in {a["id"] for a in listed}
