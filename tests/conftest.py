"""Shared fixtures: the app, a clean database per test, clients logged in as a
given user, and builders for the domain objects.

The suite runs on SQLite by default and on PostgreSQL when ``TEST_DATABASE_URL``
is set. Tables are created once per run and emptied after every test, so a
browser test's server thread sees the same committed data as the test itself.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask
from flask.globals import _cv_app
from flask.testing import FlaskClient
from sqlalchemy import text

from app import create_app
from app.extensions import db

TEST_PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory) -> Flask:
    app = create_app(
        "testing",
        SQLALCHEMY_DATABASE_URI=database_url,
        BLOB_ROOT=str(tmp_path_factory.mktemp("blobs")),
        PROGRESS_ROOT=str(tmp_path_factory.mktemp("progress")),
    )
    app.test_client_class = Client
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app


def _empty_all_tables() -> None:
    tables = [t.name for t in db.metadata.sorted_tables]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    else:
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
    db.session.commit()


UNIT_TESTS = Path(__file__).parent / "unit"


@pytest.fixture(autouse=True)
def _clean_database(app, request):
    """Every test runs inside an app context and leaves empty tables behind.

    Unit tests never touch the database, so there is nothing to empty after them.
    """
    with app.app_context():
        yield
        db.session.rollback()
        if UNIT_TESTS not in request.node.path.parents:
            _empty_all_tables()
        db.session.remove()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Client(FlaskClient):
    """A test client that knows its CSRF token once it has loaded a page.

    Each request runs in an app context of its own, as in production: the test's
    context (and so ``g``, the logged-in user and the database session) is hidden
    while the request runs. The test's session commits before and is expired after
    each request, so what the test reads afterwards is what the request committed.
    """

    csrf_token: str | None = None

    def open(self, *args, **kwargs):
        # Streamed bodies are read inside the request, while its context is active.
        kwargs.setdefault("buffered", True)
        outer = _cv_app.get(None)
        if outer is None:
            return super().open(*args, **kwargs)
        db.session.commit()
        token = _cv_app.set(None)  # hide the test's app context from the request
        try:
            response = super().open(*args, **kwargs)
        finally:
            _cv_app.reset(token)
            db.session.expire_all()
        # The body is buffered; closing now also closes the request's input stream.
        response.close()
        return response

    def remember_csrf(self, html: str) -> None:
        match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
            r'name="csrf_token" value="([^"]+)"', html
        )
        if match:
            self.csrf_token = match.group(1)

    def get_page(self, url: str, **kwargs):
        response = self.get(url, **kwargs)
        self.remember_csrf(response.get_data(as_text=True))
        return response

    def post_form(self, url: str, data: dict | None = None, **kwargs):
        """POST like a browser does: with the CSRF token of the session."""
        if self.csrf_token is None:
            self.get_page("/login")
        payload = {"csrf_token": self.csrf_token, **(data or {})}
        response = self.post(url, data=payload, **kwargs)
        self.remember_csrf(response.get_data(as_text=True))
        return response


@pytest.fixture
def client(app) -> Client:
    return app.test_client()


@pytest.fixture
def login(app):
    """``login(user)`` returns a new client logged in as ``user`` through the real form."""

    def _login(user, password: str = TEST_PASSWORD) -> Client:
        c: Client = app.test_client()
        c.get_page("/login")
        response = c.post_form("/login", {"email": user.email, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return c

    return _login


@pytest.fixture
def api_client(app):
    """``api_client(user)`` returns ``(client, headers)`` with a fresh bearer token."""
    from app.auth.services import create_api_token

    def _api(user):
        _row, token = create_api_token(user, "tests", origin="tests")
        db.session.commit()
        return app.test_client(), {"Authorization": f"Bearer {token}"}

    return _api


@dataclass
class Builders:
    """Builds committed domain objects with sensible defaults."""

    counter = itertools.count(1)

    def _n(self) -> int:
        return next(self.counter)

    def environment(self, name: str | None = None, plan: str = "premium", office_code=None):
        from app.admin_settings.models import Environment, Plan

        n = self._n()
        env = Environment(
            name=name or f"Kantoor {n}", office_code=office_code or f"K{n}", plan=Plan(plan)
        )
        db.session.add(env)
        db.session.commit()
        return env

    def user(self, environment=None, role: str = "superuser", email=None, name=None):
        from app.auth.models import Role
        from app.auth.services import create_user

        n = self._n()
        user = create_user(
            email=email or f"user{n}@example.com",
            name=name or f"User {n}",
            role=Role(role),
            password=TEST_PASSWORD,
            environment_id=environment.id if environment else None,
        )
        db.session.commit()
        return user

    def connection(self, environment, package: str = "exact_online", name=None):
        from app.admin_settings.models import PACKAGE_LABELS, Connection, Package

        connection = Connection(
            environment_id=environment.id,
            package=Package(package),
            name=name or PACKAGE_LABELS[Package(package)],
        )
        db.session.add(connection)
        db.session.commit()
        return connection

    def administration(self, connection, name=None, code=None, state: str = "active"):
        from flask import current_app

        from app.admin_settings.domain import inbound_email
        from app.admin_settings.models import Administration, AdministrationState

        n = self._n()
        code = code or f"{1000 + n}"
        administration = Administration(
            environment_id=connection.environment_id,
            connection_id=connection.id,
            name=name or f"Administratie {n}",
            code=code,
            contact_email=f"admin{n}@client.example",
            inbound_email=inbound_email(
                connection.environment.office_code, code, current_app.config["MAIL_DOMAIN"]
            ),
            state=AdministrationState(state),
        )
        db.session.add(administration)
        db.session.commit()
        return administration

    def document(
        self, administration, status: str = "pending", content: bytes | None = None, **fields
    ):
        from app.admin_settings.models import Document, DocumentKind, DocumentStatus
        from app.storage import blob_store

        n = self._n()
        data = content or b"%PDF-1.4\n% test document " + str(n).encode() + b"\n%%EOF\n"
        key = blob_store().put_bytes(data)
        values = dict(
            environment_id=administration.environment_id,
            administration_id=administration.id,
            blob_key=key,
            size=len(data),
            content_type="application/pdf",
            filename=f"factuur-{n}.pdf",
            kind=DocumentKind.PURCHASE_INVOICE,
            counterparty=f"Leverancier {n}",
            amount=Decimal("121.00"),
            invoice_date=date(2024, 3, 1),
            status=DocumentStatus(status),
            booked_year=2024 if status != "pending" else None,
            booked_period=3 if status != "pending" else None,
        )
        values.update(fields)
        document = Document(**values)
        db.session.add(document)
        db.session.commit()
        return document

    def workflow(self, administration, active: bool = True, name=None):
        from app.admin_settings.models import Workflow

        workflow = Workflow(
            environment_id=administration.environment_id,
            administration_id=administration.id,
            name=name or f"Workflow {self._n()}",
            active=active,
        )
        db.session.add(workflow)
        db.session.commit()
        return workflow

    def authorization_step(
        self, administration, authorizer, flow=None, position: int | None = None
    ):
        from app.admin_settings.models import AuthorizationFlow, AuthorizationStep

        if flow is None:
            flow = AuthorizationFlow(
                environment_id=administration.environment_id,
                administration_id=administration.id,
                name=f"Flow {self._n()}",
            )
            db.session.add(flow)
            db.session.flush()
        step = AuthorizationStep(
            environment_id=administration.environment_id,
            flow_id=flow.id,
            position=position if position is not None else len(flow.steps) + 1,
            authorizer_id=authorizer.id,
        )
        db.session.add(step)
        db.session.commit()
        return step


@pytest.fixture
def build() -> Builders:
    return Builders()


@dataclass
class Office:
    """One environment with a superuser, a user, an authorizer and one connection."""

    environment: object
    superuser: object
    user: object
    authorizer: object
    connection: object


@pytest.fixture
def office(build) -> Office:
    env = build.environment("Kantoor Noord", office_code="NOORD")
    return Office(
        environment=env,
        superuser=build.user(env, "superuser", email="super@noord.example", name="Sanne Noord"),
        user=build.user(env, "user", email="user@noord.example"),
        authorizer=build.user(
            env, "authorizer", email="autorisator@noord.example", name="J. de Vries"
        ),
        connection=build.connection(env),
    )


@pytest.fixture
def other_office(build) -> Office:
    env = build.environment("Kantoor Zuid", office_code="ZUID")
    return Office(
        environment=env,
        superuser=build.user(env, "superuser", email="super@zuid.example", name="Sem Zuid"),
        user=build.user(env, "user", email="user@zuid.example"),
        authorizer=build.user(env, "authorizer", email="autorisator@zuid.example"),
        connection=build.connection(env),
    )


# --- S3: moto's server, for the blob store ------------------------------------------------


@pytest.fixture
def fake_aws_credentials(monkeypatch):
    """Fake AWS credentials and region for boto3; a real profile is never read."""
    from tests.s3server import FAKE_AWS_ENV

    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)


@pytest.fixture(scope="session")
def _s3_server_url():
    from tests.s3server import S3Server

    server = S3Server()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def s3_server(_s3_server_url, fake_aws_credentials) -> str:
    """The URL of moto's S3 server (one for the session, in its own process), with fake
    AWS credentials in the environment for the test."""
    return _s3_server_url


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh, empty bucket on the S3 server; emptied and removed after the test."""
    from tests.s3server import create_bucket, delete_bucket

    name = create_bucket(s3_server)
    yield name
    delete_bucket(s3_server, name)


@pytest.fixture(scope="session")
def _s3_session():
    from tests.s3server import fake_session

    return fake_session()


@pytest.fixture
def s3_store(s3_server, s3_bucket, _s3_session):
    """An ``S3BlobStore`` on the fresh bucket, with the app's client settings (a client
    of its own, so what a test registers on it stays in the test)."""
    from app.storage.s3 import S3BlobStore, s3_client

    return S3BlobStore(s3_client(s3_server, session=_s3_session), s3_bucket)
