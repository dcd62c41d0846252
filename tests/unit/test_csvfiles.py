"""Spreadsheet CSV downloads: columns for a Dutch Excel, no formulas, a checkable list."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from app.csvfiles import safe_cell, spreadsheet_csv
from tests.helpers import spreadsheet


@pytest.mark.parametrize(
    "text", ['=HYPERLINK("http://x")', "+31 6 123", "-2+3", "@SUM(A1)", "\tx", "\rx"]
)
def test_a_cell_that_could_start_a_formula_is_neutralised(text):
    assert safe_cell(text) == "'" + text


def test_plain_text_numbers_amounts_and_dates_are_kept_as_they_are():
    assert safe_cell("Bakkerij Jansen") == "Bakkerij Jansen"
    assert safe_cell(42) == 42
    assert safe_cell(Decimal("-121.5")) == "-121,50"  # a number, not a formula
    assert safe_cell(date(2026, 12, 1)) == "2026-12-01"
    assert safe_cell(None) == ""


def test_a_list_with_a_header_block_reads_back_and_its_digest_holds():
    rows = [["=1+1", Decimal("10.00")], ["gewoon", Decimal("2.50")]]
    text = "".join(
        spreadsheet_csv(
            ["Naam", "Bedrag"],
            iter(rows),
            preamble=lambda count, digest: [["Aantal", count], ["SHA-256", digest]],
        )
    )

    block, read = spreadsheet(text)

    assert block["Aantal"] == "2"
    assert read == [{"Naam": "'=1+1", "Bedrag": "10,00"}, {"Naam": "gewoon", "Bedrag": "2,50"}]


def test_without_a_header_block_it_is_bom_header_and_rows():
    text = "".join(spreadsheet_csv(["a", "b"], iter([[1, "x;y"]])))
    assert text == '\ufeffa;b\r\n1;"x;y"\r\n'
