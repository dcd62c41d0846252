"""Excel (.xlsx) downloads beside the CSVs of ``app.csvfiles``, from the same inputs
(columns, rows, header block): the header block first, a blank row, the column headers
in bold (frozen), then the rows.

Cells are typed: numbers and amounts are numbers, dates and times are dates (times in
UTC, and the cell says so), everything else is text. A text cell is always written as
text, never as a formula or an error value, whatever it starts with (``=``, ``+``,
``-``, ``@``, a tab, ``#N/A``); one that could start a formula also gets Excel's quote
prefix, so editing it keeps it text. Characters a worksheet cannot hold are replaced.

The header block's SHA-256 is the one the CSV download carries for the same list (the
column headers and rows as the CSV writes them), so both files can be checked against
each other and against ``sha256sum``.

Memory stays flat: rows are hashed and parked in a temporary file (the digest and the
column widths must be known before the first row is written), and the workbook is
written in openpyxl's write-only mode, which streams each row to disk.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from app.csvfiles import FORMULA_START, csv_lines

MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_TEXT = 32_767  # what one Excel cell holds
MIN_WIDTH, MAX_WIDTH = 8, 60
DATE_FORMAT = "yyyy-mm-dd"
TIME_FORMAT = 'yyyy-mm-dd hh:mm:ss "UTC"'
AMOUNT_FORMAT = "0.00"
_BAD_TITLE = re.compile(r"[\[\]:*?/\\]")
_BOLD = Font(bold=True)


def _width(value) -> int:
    if value is None:
        return 0
    if isinstance(value, datetime):
        return 23
    if isinstance(value, date):
        return 10
    return len(str(value))


def _cell(sheet, value, *, bold: bool = False):
    """One typed cell; text always stays text."""
    if value is None or value == "":
        return None
    if isinstance(value, bool | int | float | Decimal):
        cell = WriteOnlyCell(sheet, value)
        if isinstance(value, Decimal):
            cell.number_format = AMOUNT_FORMAT
    elif isinstance(value, datetime):
        if value.tzinfo is not None:  # Excel has no time zones: UTC, and the format says so
            value = value.astimezone(UTC).replace(tzinfo=None)
        cell = WriteOnlyCell(sheet, value)
        cell.number_format = TIME_FORMAT
    elif isinstance(value, date):
        cell = WriteOnlyCell(sheet, value)
        cell.number_format = DATE_FORMAT
    else:
        text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", str(value))[:MAX_TEXT]
        cell = WriteOnlyCell(sheet)
        # Set past the value setter, which would make "=..." a formula and "#N/A" an error.
        cell._value = text
        cell.data_type = "s"
        if text.startswith(FORMULA_START):
            cell.quotePrefix = True
    if bold:
        cell.font = _BOLD
    return cell


def _title(title: str) -> str:
    return _BAD_TITLE.sub(" ", title).strip()[:31] or "Sheet1"


def spreadsheet_xlsx(
    columns: Sequence[str],
    rows: Iterable[Sequence],
    *,
    preamble: Callable[[int, str], list[Sequence]] | None = None,
    title: str = "",
) -> bytes:
    """The .xlsx file: (when ``preamble`` is given) the header block it returns for the
    number of rows and the list's SHA-256 and a blank row, then the bold column headers
    (frozen) and the rows, on one sheet named ``title``."""
    as_line = csv_lines()
    digest = hashlib.sha256(as_line(columns).encode("utf-8"))
    widths = [_width(c) for c in columns]
    count = 0
    with tempfile.TemporaryFile() as spool:
        for row in rows:
            values = list(row)
            digest.update(as_line(values).encode("utf-8"))
            for index, value in enumerate(values):
                if index < len(widths):
                    widths[index] = max(widths[index], _width(value))
            pickle.dump(values, spool, protocol=pickle.HIGHEST_PROTOCOL)
            count += 1
        head = list(preamble(count, digest.hexdigest())) if preamble else []

        book = Workbook(write_only=True)
        sheet = book.create_sheet(_title(title))
        for index, width in enumerate(widths):
            sheet.column_dimensions[get_column_letter(index + 1)].width = min(
                max(width + 2, MIN_WIDTH), MAX_WIDTH
            )
        header_row = len(head) + (2 if head else 1)
        sheet.freeze_panes = f"A{header_row + 1}"
        for values in head:
            sheet.append([_cell(sheet, v) for v in values])
        if head:
            sheet.append([])
        sheet.append([_cell(sheet, c, bold=True) for c in columns])
        spool.seek(0)
        for _ in range(count):
            # Our own temporary file, written just above: nothing from outside is unpickled.
            values = pickle.load(spool)
            sheet.append([_cell(sheet, v) for v in values])
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()
