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
    """An offer made through the service, committed, as the wizard would."""
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
