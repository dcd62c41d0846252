"""The migration file's format, stated once for the writer (export) and the reader
(import). ``docs/migration-file.md`` describes it for other products.

A migration file is a zipped BagIt 1.0 bag (RFC 8493) with one top folder::

    <bag name>/bagit.txt
    <bag name>/bag-info.txt               Overdracht-Format-Version, Source-Organization,
                                           Bagging-Date, Payload-Oxum, Overdracht-Scope
    <bag name>/manifest-sha256.txt         every payload file: "<sha256>  data/…"
    <bag name>/tagmanifest-sha256.txt      bagit.txt, bag-info.txt, manifest-sha256.txt
    <bag name>/data/administrations.csv    one row per administration
    <bag name>/data/documents.csv          one row per document
    <bag name>/data/files/<sha256>.<ext>   each distinct file once, named by its hash

Both CSVs are UTF-8 with a byte-order mark, ``;`` separated, with the header row
below (column order is free, names are exact), so a Dutch spreadsheet opens them in
columns. Amounts use a decimal comma or point and no thousands separator; dates are
``YYYY-MM-DD``; ``decided_at`` is ISO 8601 with an offset.
"""

from __future__ import annotations

import enum

FORMAT_VERSION = "1"
BAGIT_TXT = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
CSV_DELIMITER = ";"
CSV_ENCODING = "utf-8-sig"  # UTF-8 with a byte-order mark
ADMINISTRATIONS_CSV = "data/administrations.csv"
DOCUMENTS_CSV = "data/documents.csv"
FILES_DIR = "data/files/"
MANIFEST = "manifest-sha256.txt"
TAGMANIFEST = "tagmanifest-sha256.txt"
BAG_INFO = "bag-info.txt"
BAGIT = "bagit.txt"


class Scope(enum.StrEnum):
    """``Overdracht-Scope``: what the file carries (and what may be imported from it)."""

    COMBINED = "combined"  # administrations and their documents
    ADMINISTRATIONS = "administrations"  # administrations only, no documents
    DOCUMENTS = "documents"  # documents for administrations imported before


# bag-info.txt keys
INFO_FORMAT_VERSION = "Overdracht-Format-Version"
INFO_SOURCE = "Source-Organization"
INFO_DATE = "Bagging-Date"
INFO_OXUM = "Payload-Oxum"  # "<total payload bytes>.<payload file count>"
INFO_SCOPE = "Overdracht-Scope"
INFO_AGENT = "Bag-Software-Agent"

# data/administrations.csv: package is a Package value (exact_online, twinfield, …);
# (package, administration_code) names an administration within one file.
ADMINISTRATION_COLUMNS = ("package", "administration_code", "name", "contact_email")

# data/documents.csv: file is the path below data/ ("files/<sha256>.<ext>"); kind is
# a DocumentKind value, status a DocumentStatus value or empty (the importer's default
# status then applies); uploaded_by / decided_by are people's names as text.
DOCUMENT_COLUMNS = (
    "package",
    "administration_code",
    "file",
    "filename",
    "content_type",
    "kind",
    "counterparty",
    "amount",
    "currency",
    "invoice_date",
    "status",
    "booked_year",
    "booked_period",
    "uploaded_by",
    "decided_by",
    "decided_at",
)
