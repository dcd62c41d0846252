"""Small helpers the integration tests share: reading what others committed, and making
offers and claims through the real services."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.transfers import claims, offers


def fresh() -> None:
    """End the test session's transaction (which also expires what it loaded), so the
    next read sees what requests and other threads committed."""
    db.session.commit()


def count(model, *where) -> int:
    fresh()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def offer(actor, administrations, recipients=("super@zuid.example",), now=None):
    """An offer made through the service, committed, as the wizard would (to the
    superusers of one other office, made when the test has none)."""
    ensure_receivers(recipients)
    transfer, code = offers.create_offer(
        actor,
        administration_ids=[a.id for a in administrations],
        recipient_emails=list(recipients),
        checklist_confirmed=True,
        accept_terms=True,
        origin="tests",
        now=now,
    )
    db.session.commit()
    return transfer, code


def accept_all(actor, transfer, code, connection, now=None):
    """Claim ``transfer`` accepting every item into ``connection``, as the claim form would."""
    claim = claims.submit_claim(
        actor,
        code,
        [claims.Decision(i.id, "accept", connection.id) for i in transfer.items],
        accept_terms=True,
        origin="tests",
        now=now,
    )
    db.session.commit()
    return claim


def spreadsheet(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """A spreadsheet CSV download (``app.csvfiles``) read back: its header block as a
    dict and its rows; asserts the BOM, the ``;`` layout and the block's SHA-256."""
    import csv
    import hashlib
    import io

    assert text.startswith("\ufeff"), "UTF-8 with a byte-order mark"
    head, _blank, body = text[1:].partition("\r\n\r\n")
    block = {r[0]: r[1] for r in csv.reader(io.StringIO(head), delimiter=";") if r}
    digests = [v for k, v in block.items() if "SHA-256" in k]
    if digests:
        assert digests[0] == hashlib.sha256(body.encode("utf-8")).hexdigest()
    rows = list(csv.DictReader(io.StringIO(body, newline=""), delimiter=";"))
    return block, rows


def ensure_receivers(emails) -> None:
    """Offers go to superusers of one other office: make any of ``emails`` that does not
    exist yet a superuser of one premium office with an Exact Online connection (named
    after the first address's domain, e.g. ``super@zuid.example`` → Kantoor Zuid)."""
    from app.admin_settings.models import Connection, Environment, Package, Plan
    from app.auth.models import Role, User
    from app.auth.services import create_user
    from tests.conftest import TEST_PASSWORD

    emails = [e.strip().lower() for e in emails]
    known = set(
        db.session.scalars(select(func.lower(User.email)).where(func.lower(User.email).in_(emails)))
    )
    missing = [e for e in emails if e not in known]
    if not missing:
        return
    word = missing[0].split("@", 1)[1].split(".", 1)[0]
    code = word.upper()[:12]
    environment = db.session.scalars(
        select(Environment).where(Environment.office_code == code)
    ).first()
    if environment is None:
        environment = Environment(
            name=f"Kantoor {word.title()}", office_code=code, plan=Plan.PREMIUM
        )
        db.session.add(environment)
        db.session.flush()
        db.session.add(
            Connection(
                environment_id=environment.id, package=Package.EXACT_ONLINE, name="Exact Online"
            )
        )
    for email in missing:
        create_user(
            email=email,
            name=email.split("@")[0].title(),
            role=Role.SUPERUSER,
            password=TEST_PASSWORD,
            environment_id=environment.id,
        )
    db.session.commit()


def used_elsewhere(build, office) -> str:
    """A code that was offered to another office (Oost) and claimed there: used, and never
    for the office under test."""
    from app.admin_settings.models import Connection, Environment

    ensure_receivers(["super@oost.example"])
    oost = db.session.scalars(select(Environment).where(Environment.office_code == "OOST")).one()
    administration = build.administration(office.connection)
    build.document(administration, "approved")
    transfer, code = offer(office.superuser, [administration], recipients=("super@oost.example",))
    from app.auth.models import User

    oost_super = db.session.scalars(select(User).where(User.email == "super@oost.example")).one()
    connection = db.session.scalars(
        select(Connection).where(Connection.environment_id == oost.id)
    ).first()
    accept_all(oost_super, transfer, code, connection)
    return code
