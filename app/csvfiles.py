"""CSV downloads that people open in a spreadsheet: a Dutch Excel opens them in columns
(``;`` separated, UTF-8 with a byte-order mark), no cell can run as a formula (OWASP CSV
injection: a text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return gets a leading apostrophe), and a report can start with a header block that
ends in a SHA-256 over the whole list, so a copy can be checked against the original.

Streams: rows are written to a spooled temporary file while they are hashed (the
digest must come first), so memory stays bounded for 100,000 rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal

DELIMITER = ";"
BOM = "\ufeff"
PIECE = 64 * 1024
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str | int:
    """A cell as written: numbers as they are (a decimal comma for amounts), dates in
    ISO form, and text that could start a formula neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return f"{value:.2f}".replace(".", ",")
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _writer(out) -> csv.writer:
    return csv.writer(out, delimiter=DELIMITER, lineterminator="\r\n")


def csv_lines() -> Callable[[Sequence], str]:
    """A function that turns one row into its CSV line as written (cells made safe): the
    text the list's SHA-256 is taken over, here and in the Excel download."""
    line = io.StringIO()
    writer = _writer(line)

    def as_line(values: Sequence) -> str:
        writer.writerow([safe_cell(v) for v in values])
        text = line.getvalue()
        line.seek(0)
        line.truncate()
        return text

    return as_line


def spreadsheet_csv(
    columns: Sequence[str],
    rows: Iterable[Sequence],
    *,
    preamble: Callable[[int, str], list[Sequence]] | None = None,
) -> Iterator[str]:
    """The CSV in pieces: BOM, then (when ``preamble`` is given) the header block it
    returns for the number of rows and the list's SHA-256, a blank line, then the
    column headers and the rows. The digest covers the header line and every row as
    written (UTF-8), so it can be checked with ``sha256sum`` on that part."""
    if preamble is None:
        out = io.StringIO()
        out.write(BOM)
        writer = _writer(out)
        writer.writerow([safe_cell(c) for c in columns])
        for row in rows:
            writer.writerow([safe_cell(v) for v in row])
            if out.tell() > PIECE:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()
        return
    digest = hashlib.sha256()
    count = 0
    with tempfile.SpooledTemporaryFile(
        max_size=8 * 1024 * 1024, mode="w+", encoding="utf-8", newline=""
    ) as spool:
        as_line = csv_lines()

        def put(values) -> None:
            text = as_line(values)
            digest.update(text.encode("utf-8"))
            spool.write(text)

        put(columns)
        for row in rows:
            put(row)
            count += 1
        head = io.StringIO()
        head.write(BOM)
        head_writer = _writer(head)
        for values in preamble(count, digest.hexdigest()):
            head_writer.writerow([safe_cell(v) for v in values])
        head.write("\r\n")
        yield head.getvalue()
        spool.seek(0)
        while piece := spool.read(PIECE):
            yield piece
