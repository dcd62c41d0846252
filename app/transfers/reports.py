"""Reports of a claim: per document the source and target content hash with a verdict
(the reconciliation), summed up per administration, and written as CSV or JSON,
streamed so 100,000 documents are never held in memory at once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from app.admin_settings.models import Document
from app.auth.models import User
from app.csvfiles import spreadsheet_csv
from app.db import utcnow
from app.extensions import db
from app.spreadsheets import spreadsheet_xlsx
from app.storage import blob_store
from app.templating import label
from app.transfers.claims import get_claim
from app.transfers.domain import ItemState
from app.transfers.models import TransferItem


@dataclass(frozen=True)
class ReconciliationRow:
    item_id: int
    administration: str
    source_document_id: int
    source_hash: str
    target_document_id: int | None
    target_hash: str | None
    # What people look for in the list (the source document's own facts).
    filename: str = ""
    invoice_date: date | None = None
    amount: Decimal | None = None
    status: str = ""

    @property
    def verdict(self) -> str:
        if self.target_document_id is None:
            return "missing"
        return "match" if self.source_hash == self.target_hash else "differs"


@dataclass(frozen=True)
class ReconciliationSummary:
    item_id: int
    administration: str
    state: str
    source_documents: int
    target_documents: int
    matching: int

    @property
    def verdict(self) -> str:
        if self.state != ItemState.MIGRATED.value:
            return self.state
        ok = self.source_documents == self.target_documents == self.matching
        return "match" if ok else "mismatch"


def reconciliation_summary(actor: User, claim_id: int) -> list[ReconciliationSummary]:
    view = get_claim(actor, claim_id)
    summaries = []
    for progress in view.items:
        item = progress.item
        source_n = target_n = matching = 0
        if item.state is ItemState.MIGRATED:
            for row in _rows(item):
                source_n += 1
                if row.target_document_id is not None:
                    target_n += 1
                    matching += row.verdict == "match"
            target_n = db.session.scalar(
                select(func.count())
                .select_from(Document)
                .where(Document.administration_id == item.target_administration_id)
            )
        else:
            source_n = db.session.scalar(
                select(func.count())
                .select_from(Document)
                .where(Document.administration_id == item.administration_id)
            )
        summaries.append(
            ReconciliationSummary(
                item.id, item.administration_name, item.state.value, source_n, target_n, matching
            )
        )
    return summaries


def reconciliation_rows(actor: User, claim_id: int) -> Iterator[ReconciliationRow]:
    """Per document of every migrated administration: source and target content hash.

    Streams: the report of 100,000 documents is never held in memory at once. Who may
    read it is decided now, before the first row, so a refusal is an answer, not a
    broken stream.
    """
    view = get_claim(actor, claim_id)
    migrated = [p.item.id for p in view.items if p.item.state is ItemState.MIGRATED]

    def rows() -> Iterator[ReconciliationRow]:
        for item_id in migrated:
            yield from _rows(db.session.get(TransferItem, item_id))

    return rows()


def item_reconciliation(item: TransferItem) -> Iterator[ReconciliationRow]:
    """The per-document comparison of one migrated item (no tenant check: callers scope)."""
    return _rows(item)


def _rows(item: TransferItem) -> Iterator[ReconciliationRow]:
    source = aliased(Document)
    target = aliased(Document)
    stmt = (
        select(
            source.id,
            source.blob_key,
            target.id,
            target.blob_key,
            source.filename,
            source.invoice_date,
            source.amount,
            source.status,
        )
        .outerjoin(
            target,
            (target.source_document_id == source.id)
            & (target.administration_id == item.target_administration_id),
        )
        .where(source.administration_id == item.administration_id)
        .order_by(source.id)
        .execution_options(yield_per=5000)
    )
    store = blob_store()
    # One look-up in the blob store per chunk of documents, never one per document.
    chunk: list[tuple] = []
    for row in db.session.execute(stmt):
        chunk.append(tuple(row))
        if len(chunk) >= 1000:
            yield from _judged(item, chunk, store)
            chunk = []
    yield from _judged(item, chunk, store)


def _judged(item: TransferItem, chunk: list[tuple], store) -> Iterator[ReconciliationRow]:
    gone = store.missing({row[3] for row in chunk if row[2] is not None}) if chunk else set()
    for source_id, source_hash, target_id, target_hash, filename, day, amount, status in chunk:
        # The target's hash is its blob's key; a blob that is gone does not match.
        if target_id is not None and target_hash in gone:
            target_hash = None
        yield ReconciliationRow(
            item.id,
            item.administration_name,
            source_id,
            source_hash,
            target_id,
            target_hash,
            filename,
            day,
            amount,
            status.value if status is not None else "",
        )


# --- writers ------------------------------------------------------------------------------------


def _columns() -> list[str]:
    """The CSV's column headers, in the reader's language."""
    return [
        _("Transfer item"),
        _("Administration"),
        _("Source document"),
        _("File name"),
        _("Invoice date"),
        _("Amount"),
        _("Status"),
        _("Source SHA-256"),
        _("Target document"),
        _("Target SHA-256"),
        _("Verdict"),
    ]


def _verdict_word(verdict: str) -> str:
    return {
        "match": _("match"),
        "differs": _("differs"),
        "missing": _("missing"),
    }.get(verdict, verdict)


def reconciliation_csv(
    rows: Iterable[ReconciliationRow],
    *,
    source: str = "",
    target: str = "",
    claim_id: int | None = None,
    made_at: datetime | None = None,
) -> Iterator[str]:
    """The per-document rows as a spreadsheet CSV (see ``app.csvfiles``): a header block
    with the offices, the date, the totals and a SHA-256 over the list, then the rows."""
    body, preamble = _sheet(rows, source, target, claim_id, made_at)
    return spreadsheet_csv(_columns(), body, preamble=preamble)


def reconciliation_xlsx(
    rows: Iterable[ReconciliationRow],
    *,
    source: str = "",
    target: str = "",
    claim_id: int | None = None,
    made_at: datetime | None = None,
) -> bytes:
    """The same report as an Excel file (see ``app.spreadsheets``)."""
    body, preamble = _sheet(rows, source, target, claim_id, made_at)
    return spreadsheet_xlsx(_columns(), body, preamble=preamble, title=_("Reconciliation report"))


def _sheet(
    rows: Iterable[ReconciliationRow],
    source: str,
    target: str,
    claim_id: int | None,
    made_at: datetime | None,
) -> tuple[Iterator[list], Callable[[int, str], list[list]]]:
    """The report's rows and header block, written as CSV or Excel alike."""
    counts = {"match": 0, "other": 0}

    def body() -> Iterator[list]:
        for row in rows:
            counts["match" if row.verdict == "match" else "other"] += 1
            yield [
                row.item_id,
                row.administration,
                row.source_document_id,
                row.filename,
                row.invoice_date,
                row.amount,
                label(row.status) if row.status else "",
                row.source_hash,
                row.target_document_id or "",
                row.target_hash or "",
                _verdict_word(row.verdict),
            ]

    def preamble(count: int, digest: str) -> list[list]:
        return [
            [_("Reconciliation report"), f"{_('Claim')} {claim_id}" if claim_id else ""],
            [_("Offering office"), source],
            [_("Receiving office"), target],
            [_("Made at"), (made_at or utcnow()).replace(microsecond=0)],
            [_("Documents"), count],
            [_("Matching"), counts["match"]],
            [_("Not matching"), counts["other"]],
            [_("SHA-256 of the list below"), digest],
        ]

    return body(), preamble


def reconciliation_json(
    claim_id: int, summary: list[ReconciliationSummary], rows: Iterable[ReconciliationRow]
) -> Iterator[str]:
    """The ``ReconciliationSchema`` document, streamed row by row: the schemas dump each
    part, so the pages' download and the API answer the same documented shape."""
    from app.transfers.schemas import (
        ReconciliationAdministrationSchema,
        ReconciliationDocumentSchema,
    )

    dump_row = ReconciliationDocumentSchema().dump
    head = {
        "claim_id": claim_id,
        "administrations": ReconciliationAdministrationSchema(many=True).dump(summary),
    }
    yield json.dumps(head)[:-1] + ', "documents": ['
    for index, row in enumerate(rows):
        yield ("," if index else "") + json.dumps(dump_row(row))
    yield "]}"
