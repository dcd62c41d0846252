"""The migration-file reader: a valid package gives typed rows; every way a zip, a bag
or a row can be wrong gives a problem naming the file, line and field, and a broken
container or bag gives no rows at all."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import bagit
import pytest

from app.admin_settings.models import DocumentKind, DocumentStatus
from app.admin_settings.models import Package as AccountingPackage
from app.migration_files import format as fmt
from app.migration_files import reader
from app.migration_files.reader import Archive, Limits, MemberChanged, open_member, read_package
from tests.bags import (
    PDF,
    Bag,
    administration,
    build_zip,
    central_record,
    patch_central,
    sha256,
    valid_bag,
    zip_of,
)

LIMITS = Limits(email_test_environment=True)


def read(data: bytes, limits: Limits = LIMITS) -> reader.Package:
    return read_package(io.BytesIO(data), limits)


def found(package: reader.Package) -> list[tuple]:
    return [(p.file, p.line, p.field, p.message) for p in package.problems]


def refused(data: bytes, limits: Limits = LIMITS) -> reader.Package:
    """A package refused as a whole: problems and not one row or file."""
    package = read(data, limits)
    assert package.problems
    assert not package.bag_valid and not package.ok
    assert package.administrations == [] and package.documents == [] and package.files == {}
    return package


# --- a valid package --------------------------------------------------------------------------


def test_a_valid_package_gives_typed_rows_and_its_files():
    bag = valid_bag()
    package = read(bag.build())

    assert package.problems == []
    assert package.ok
    assert package.scope is fmt.Scope.COMBINED
    assert package.source_organization == "Administratiekantoor Oost"
    assert package.info[fmt.INFO_FORMAT_VERSION] == "1"
    assert [(a.line, a.package, a.code, a.name) for a in package.administrations] == [
        (2, AccountingPackage.EXACT_ONLINE, "1001", "Bakkerij 1001 B.V."),
        (3, AccountingPackage.TWINFIELD, "2002", "Kapsalon Knip; & Co"),
    ]
    first, second, third = package.documents
    assert first.line == 2
    assert first.amount == Decimal("1234.56")
    assert first.invoice_date == date(2024, 3, 15)
    assert first.kind is DocumentKind.PURCHASE_INVOICE
    assert first.status is DocumentStatus.APPROVED
    assert (first.booked_year, first.booked_period) == (2024, 3)
    assert first.decided_at == datetime(2024, 3, 20, 9, 15, tzinfo=UTC)
    assert first.decided_at.utcoffset() == timedelta(hours=1)
    assert (first.uploaded_by, first.decided_by) == ("Anna de Vries", "Jan Jansen")
    # Empty optional fields: None, the default currency, the importer's default status.
    assert second.status is None and second.currency == "EUR"
    assert second.amount == Decimal("99.50")
    assert (second.booked_year, second.booked_period, second.decided_at) == (None, None, None)
    assert third.counterparty is None and third.invoice_date is None
    assert third.amount == Decimal("-12.00") and third.kind is DocumentKind.RECEIPT
    assert third.decided_at.tzinfo is not None
    # Two documents share one file; each distinct file once, with its hash and size.
    assert first.file == second.file and first.sha256 == sha256(PDF)
    assert set(package.files) == {first.file, third.file}
    entry = package.files[first.file]
    assert (entry.sha256, entry.size) == (sha256(PDF), len(PDF))


def test_the_test_bag_is_a_valid_bag_for_the_bagit_library(tmp_path):
    bag = valid_bag()
    folder = bag.extract_to(tmp_path / "bag")
    checked = bagit.Bag(str(folder))
    checked.validate()  # raises BagValidationError when it is not
    assert (
        checked.info[fmt.INFO_OXUM]
        == bag.entries()[fmt.BAG_INFO].decode().split(f"{fmt.INFO_OXUM}: ")[1].split("\n")[0]
    )


def test_a_bag_at_the_root_of_the_zip_and_a_stored_zip_are_read_alike():
    bag = valid_bag()
    bag.root = ""
    bag.compression = zipfile.ZIP_STORED
    package = read(bag.build())
    assert package.ok
    assert len(package.documents) == 3


def test_bag_info_continuation_lines_and_other_labels_are_read():
    bag = valid_bag()
    bag.info = {fmt.INFO_SOURCE: "Administratiekantoor\n  Oost en West", "External-Identifier": "x"}
    package = read(bag.build())
    assert package.ok, found(package)
    assert package.source_organization == "Administratiekantoor Oost en West"
    assert package.info["External-Identifier"] == "x"


def test_quoted_fields_with_line_breaks_keep_the_line_numbers_of_later_rows():
    bag = valid_bag()
    bag.documents[0]["counterparty"] = "Groothandel\r\nDe Molen; Zuid"
    bag.documents[2]["amount"] = "12.345"
    package = read(bag.build())
    assert package.documents[0].counterparty == "Groothandel\r\nDe Molen; Zuid"
    # Row 1 spans lines 2-3, so the third document starts on line 5.
    assert found(package) == [
        (fmt.DOCUMENTS_CSV, 5, "amount", reader.NOT_AN_AMOUNT),
    ]


def test_a_payload_file_streams_later_and_its_checksum_is_checked_at_the_end():
    data = valid_bag().build()
    package = read(data)
    entry = package.files[package.documents[0].file]
    fileobj = io.BytesIO(data)
    with open_member(fileobj, entry) as stream:
        assert stream.read() == PDF
    with Archive(fileobj) as archive:
        for name in package.files:
            with archive.open(package.files[name]) as stream:
                assert sha256(stream.read()) == package.files[name].sha256


def test_a_payload_file_that_changed_after_the_check_raises():
    bag = valid_bag()
    package = read(bag.build())
    entry = package.files[package.documents[0].file]
    # The same name, other bytes: as if the stored file were swapped after the dry run.
    other = Bag(files={}, administrations=bag.administrations)
    other.files[entry.name] = b"%PDF-1.4\n% another document\n"
    with Archive(io.BytesIO(other.build())) as archive:
        with pytest.raises(MemberChanged):
            with archive.open(entry) as stream:
                stream.read()


def test_without_payload_verification_the_rows_are_the_same_and_streaming_still_checks():
    import dataclasses

    bag = valid_bag()
    data = bag.build()
    checked = read(data)
    trusted = read_package(io.BytesIO(data), dataclasses.replace(Limits(), verify_payload=False))
    assert trusted.ok
    assert trusted.documents == checked.documents
    assert trusted.files == checked.files
    # Bytes other than those checked (here: the same length, reversed) never reach the
    # store: the stream that feeds it checks the hash.
    entry = checked.files[checked.documents[0].file]
    swapped = Bag(files=dict(bag.files), administrations=bag.administrations)
    original = bag.files[entry.name]
    swapped.files[entry.name] = bytes(reversed(original))
    swapped_data = swapped.build()
    with Archive(io.BytesIO(swapped_data)) as archive:
        with pytest.raises(MemberChanged):
            with archive.open(entry) as stream:
                stream.read()


# --- the container ----------------------------------------------------------------------------


def test_not_a_zip_is_refused():
    package = refused(b"%PDF-1.4 this is not a zip at all" * 100)
    assert found(package) == [("", None, None, reader.NOT_A_ZIP)]


def test_a_truncated_zip_is_refused():
    data = valid_bag().build()
    for size in (len(data) // 2, len(data) - 10, 30):
        package = refused(data[:size])
        assert found(package) == [("", None, None, reader.NOT_A_ZIP)]


def test_an_empty_file_is_refused():
    assert found(refused(b"")) == [("", None, None, reader.NOT_A_ZIP)]


@pytest.mark.parametrize(
    "name",
    [
        "../evil.txt",
        "bag/../../etc/passwd",
        "/etc/passwd",
        "C:/Windows/win.ini",
        "c:evil",
        "bag\\data\\evil.txt",
        "bag/./data",
        "bag//data",
    ],
)
def test_entry_names_that_leave_the_folder_are_refused(name):
    entries = {f"bag/{p}": d for p, d in valid_bag().entries().items()}
    entries[name] = b"x"
    package = refused(build_zip(entries))
    assert (name, None, None, reader.BAD_NAME) in found(package)
    assert package.problems[0].params == {"name": name}


def test_a_symlink_entry_is_refused():
    bag = valid_bag()
    link = zipfile.ZipInfo("overdracht-export/data/files/link")
    link.create_system = 3
    link.external_attr = 0o120777 << 16
    entries = {bag.root + p: d for p, d in bag.entries().items()}
    entries[link.filename] = (link, b"/etc/passwd")
    package = refused(build_zip(entries))
    assert found(package) == [(link.filename, None, None, reader.SYMLINK)]


def test_an_encrypted_entry_is_refused():
    bag = valid_bag()
    name = bag.root + "data/" + next(iter(bag.files))
    data = bag.build()
    # zipfile cannot write encrypted entries: set the flag as an encrypting writer would.
    crafted = patch_central(data, name, flag_bits=central_record(data, name)["flag_bits"] | 0x1)
    package = refused(crafted)
    assert found(package) == [(name, None, None, reader.ENCRYPTED)]


def test_an_unsupported_compression_method_is_refused():
    bag = valid_bag()
    bag.compression = zipfile.ZIP_BZIP2
    package = refused(bag.build())
    assert (bag.root + fmt.BAGIT, None, None, reader.COMPRESSION) in found(package)


def test_duplicate_entry_names_are_refused():
    bag = valid_bag()
    items = [(bag.root + p, d) for p, d in bag.entries().items()]
    items.append((bag.root + fmt.DOCUMENTS_CSV, b"package;administration_code\r\n"))
    package = refused(zip_of(items))
    assert found(package) == [(bag.root + fmt.DOCUMENTS_CSV, None, None, reader.DUPLICATE_ENTRY)]


def test_more_entries_than_allowed_are_refused_before_they_are_read():
    data = valid_bag().build()
    package = refused(data, Limits(max_entries=5))
    count = len(zipfile.ZipFile(io.BytesIO(data)).infolist())
    assert found(package) == [("", None, None, reader.TOO_MANY_ENTRIES)]
    assert package.problems[0].params == {"count": count, "max": 5}


def test_more_declared_bytes_than_allowed_are_refused():
    data = valid_bag().build()
    package = refused(data, Limits(max_bytes=100))
    assert found(package) == [("", None, None, reader.TOO_MANY_BYTES)]


def test_a_high_compression_ratio_is_refused():
    bag = valid_bag()
    zeros = bytes(2 * 1024 * 1024)  # deflates about 1000:1
    name = bag.add_file(zeros, "pdf")
    bag.add_document(zeros, filename="nullen.pdf")
    data = bag.build()
    package = refused(data)
    assert found(package) == [(bag.root + "data/" + name, None, None, reader.RATIO)]
    # A small entry is exempt, however well it packs; a higher limit lets it through.
    assert read(data, Limits(max_ratio=10_000, email_test_environment=True)).ok


def test_overlapping_entries_are_refused():
    """The overlapped-file zip bomb: central directory records that share local data."""
    bag = valid_bag()
    data = bag.build()
    first = bag.root + fmt.BAGIT
    second = bag.root + fmt.BAG_INFO
    # Two records pointing at the same local header.
    crafted = patch_central(
        data, second, header_offset=central_record(data, first)["header_offset"]
    )
    package = refused(crafted)
    assert (first, None, None, reader.OVERLAP) in found(package)


def test_an_entry_whose_data_runs_into_the_next_entry_is_refused():
    bag = valid_bag()
    data = bag.build()
    name = bag.root + fmt.BAGIT
    record = central_record(data, name)
    crafted = patch_central(data, name, compress_size=record["compress_size"] + 40)
    package = refused(crafted)
    assert (name, None, None, reader.OVERLAP) in found(package)


def test_an_entry_that_unpacks_to_more_than_it_declares_is_refused():
    bag = valid_bag()
    data = bag.build()
    name = bag.root + fmt.DOCUMENTS_CSV
    record = central_record(data, name)
    crafted = patch_central(data, name, file_size=record["file_size"] // 2)
    package = refused(crafted)
    assert found(package) == [(fmt.DOCUMENTS_CSV, None, None, reader.BAD_ENTRY)]


@pytest.mark.parametrize(
    "names",
    [
        ["one/bagit.txt", "two/data/documents.csv"],  # two top folders
        ["bag/inner/bagit.txt", "bag/inner/data/x"],  # bag one folder too deep
        ["bag/data/documents.csv"],  # no bagit.txt
    ],
)
def test_any_other_layout_is_refused(names):
    package = refused(build_zip(dict.fromkeys(names, b"x")))
    assert found(package) == [("", None, None, reader.LAYOUT)]


# --- the bag ----------------------------------------------------------------------------------


def test_a_wrong_checksum_is_refused():
    bag = valid_bag()
    name = next(iter(bag.files))
    bag.manifest_digests["data/" + name] = "0" * 64
    package = refused(bag.build())
    assert found(package) == [("data/" + name, None, None, reader.CHECKSUM)]
    assert package.problems[0].params == {"manifest": fmt.MANIFEST}


def test_a_file_whose_content_does_not_match_its_hashed_name_is_refused():
    bag = valid_bag()
    name = next(iter(bag.files))
    bag.files[name] = b"other bytes"  # the manifest lists the real hash of these bytes
    package = refused(bag.build())
    assert found(package) == [("data/" + name, None, None, reader.FILE_HASH)]


def test_a_wrong_payload_oxum_is_refused():
    bag = valid_bag()
    bag.oxum = "100.5"
    package = refused(bag.build())
    assert found(package) == [(fmt.BAG_INFO, 3, fmt.INFO_OXUM, reader.OXUM_MISMATCH)]
    params = package.problems[0].params
    assert (params["declared_bytes"], params["declared_files"], params["files"]) == ("100", "5", 4)


def test_a_malformed_payload_oxum_is_refused():
    bag = valid_bag()
    bag.oxum = "lots"
    assert found(refused(bag.build())) == [(fmt.BAG_INFO, 3, fmt.INFO_OXUM, reader.OXUM_FORMAT)]


def test_a_payload_file_not_in_the_manifest_is_refused():
    bag = valid_bag()
    name = "data/" + next(iter(bag.files))
    bag.unlisted.add(name)
    package = refused(bag.build())
    assert found(package) == [(name, None, None, reader.NOT_LISTED)]


def test_a_listed_file_that_is_not_there_is_refused():
    bag = valid_bag()
    bag.manifest_extra["data/files/" + "a" * 64 + ".pdf"] = "a" * 64
    package = refused(bag.build())
    # Listed after the four payload files (two CSVs, two document files): line 5.
    assert found(package) == [(fmt.MANIFEST, 5, None, reader.LISTED_MISSING)]


def test_an_unexpected_payload_file_is_refused():
    bag = valid_bag()
    bag.extra_payload["data/readme.txt"] = b"hello"
    package = refused(bag.build())
    assert found(package) == [("data/readme.txt", None, None, reader.UNEXPECTED_FILE)]


def test_a_changed_tag_file_fails_the_tag_manifest():
    bag = valid_bag()
    entries = bag.entries()
    entries[fmt.BAG_INFO] += b"Contact-Name: changed after bagging\n"
    package = refused(build_zip({bag.root + p: d for p, d in entries.items()}))
    assert found(package) == [(fmt.BAG_INFO, None, None, reader.CHECKSUM)]
    assert package.problems[0].params == {"manifest": fmt.TAGMANIFEST}


def test_without_a_tag_manifest_the_bag_is_still_read():
    bag = valid_bag()
    bag.tagmanifest = False
    assert read(bag.build()).ok


def test_a_wrong_bagit_declaration_is_refused():
    bag = valid_bag()
    bag.bagit_txt = "BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n"
    assert (fmt.BAGIT, None, None, reader.BAGIT_DECLARATION) in found(refused(bag.build()))


def test_an_unsupported_format_version_and_an_unknown_scope_are_refused():
    bag = valid_bag()
    bag.info = {fmt.INFO_FORMAT_VERSION: "2", fmt.INFO_SCOPE: "everything"}
    assert found(refused(bag.build())) == [
        (fmt.BAG_INFO, 4, fmt.INFO_FORMAT_VERSION, reader.FORMAT_VERSION),
        (fmt.BAG_INFO, 5, fmt.INFO_SCOPE, reader.SCOPE),
    ]


def test_required_bag_info_labels_are_checked():
    bag = valid_bag()
    bag.info = {fmt.INFO_FORMAT_VERSION: None, fmt.INFO_SCOPE: None}
    assert found(refused(bag.build())) == [
        (fmt.BAG_INFO, None, fmt.INFO_FORMAT_VERSION, reader.INFO_REQUIRED),
        (fmt.BAG_INFO, None, fmt.INFO_SCOPE, reader.INFO_REQUIRED),
    ]


def test_a_missing_manifest_is_refused():
    bag = valid_bag()
    entries = bag.entries()
    del entries[fmt.MANIFEST]
    del entries[fmt.TAGMANIFEST]
    package = refused(build_zip({bag.root + p: d for p, d in entries.items()}))
    assert found(package) == [(fmt.MANIFEST, None, None, reader.MISSING_TAG_FILE)]


# --- the rows ---------------------------------------------------------------------------------


def row_problems(bag: Bag, limits: Limits = LIMITS) -> list[tuple]:
    """Problems of rows: the bag itself is fine, so the valid rows remain."""
    package = read(bag.build(), limits)
    assert package.bag_valid
    assert not package.ok
    return found(package)


def test_a_missing_and_an_unknown_column_are_problems_of_the_header():
    bag = valid_bag()
    bag.document_columns = tuple(c for c in fmt.DOCUMENT_COLUMNS if c != "invoice_date") + ("btw",)
    assert row_problems(bag) == [
        (fmt.DOCUMENTS_CSV, 1, "btw", reader.CSV_UNKNOWN_COLUMN),
        (fmt.DOCUMENTS_CSV, 1, "invoice_date", reader.CSV_MISSING_COLUMN),
    ]


def test_column_order_is_free():
    bag = valid_bag()
    bag.document_columns = tuple(reversed(fmt.DOCUMENT_COLUMNS))
    bag.administration_columns = tuple(reversed(fmt.ADMINISTRATION_COLUMNS))
    package = read(bag.build())
    assert package.ok and len(package.documents) == 3


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("invoice_date", "15-03-2024", reader.NOT_A_DATE),
        ("invoice_date", "2024-02-30", reader.NOT_A_DATE),
        ("package", "moneybird", reader.NOT_A_PACKAGE),
        ("status", "booked", reader.NOT_A_STATUS),
        ("kind", "invoice", reader.NOT_A_KIND),
        ("kind", "", reader.REQUIRED),
        ("amount", "1.234,56", reader.NOT_AN_AMOUNT),
        ("amount", "1234567890123", reader.NOT_AN_AMOUNT),
        ("amount", "12,345", reader.NOT_AN_AMOUNT),
        ("currency", "EURO", reader.NOT_A_CURRENCY),
        ("booked_year", "24", reader.NOT_A_YEAR),
        ("booked_period", "13", reader.NOT_A_PERIOD),
        ("booked_period", "0", reader.NOT_A_PERIOD),
        ("decided_at", "2024-03-20T10:15:00", reader.NOT_A_TIMESTAMP),
        ("decided_at", "yesterday", reader.NOT_A_TIMESTAMP),
        ("filename", "x" * 256, reader.TOO_LONG),
        ("counterparty", "x" * 201, reader.TOO_LONG),
        ("content_type", "pdf", reader.NOT_A_CONTENT_TYPE),
        ("filename", "bad\x00name.pdf", reader.BAD_CHARACTERS),
        ("counterparty", "De Molen \ud800", reader.BAD_CHARACTERS),
        ("file", "../../etc/passwd", reader.FILE_NAME),
    ],
)
def test_a_bad_document_field_names_its_line_and_field(column, value, message):
    bag = valid_bag()
    bag.documents[1][column] = value
    assert row_problems(bag) == [(fmt.DOCUMENTS_CSV, 3, column, message)]
    package = read(bag.build())
    assert [d.line for d in package.documents] == [2, 4]  # the other rows remain


def test_a_problem_reads_as_a_translated_sentence_with_its_value(app):
    bag = valid_bag()
    bag.documents[1]["invoice_date"] = "15-03-2024"
    (problem,) = read(bag.build()).problems
    assert (
        str(problem) == "data/documents.csv:3 [invoice_date]: Not a date (YYYY-MM-DD): 15-03-2024"
    )
    with app.test_request_context():  # Dutch by default
        assert problem.translated() == "Geen datum (JJJJ-MM-DD): 15-03-2024"


def test_undecodable_bytes_in_a_csv_are_a_problem_of_their_field():
    bag = valid_bag()
    documents_csv = bag.payload()[fmt.DOCUMENTS_CSV].replace(
        b"Groothandel De Molen", b"Groothandel \xff Molen", 1
    )
    bag.extra_payload[fmt.DOCUMENTS_CSV] = documents_csv
    assert row_problems(bag) == [(fmt.DOCUMENTS_CSV, 2, "counterparty", reader.BAD_CHARACTERS)]


def test_a_period_needs_a_year():
    bag = valid_bag()
    bag.documents[0]["booked_year"] = ""
    assert row_problems(bag) == [
        (fmt.DOCUMENTS_CSV, 2, "booked_period", reader.PERIOD_WITHOUT_YEAR)
    ]


def test_a_row_with_too_few_fields_is_a_problem():
    bag = valid_bag()
    documents_csv = bag.payload()[fmt.DOCUMENTS_CSV] + b"exact_online;1001\r\n"
    bag.extra_payload[fmt.DOCUMENTS_CSV] = documents_csv
    assert row_problems(bag) == [(fmt.DOCUMENTS_CSV, 5, None, reader.CSV_FIELD_COUNT)]


def test_a_document_naming_a_file_that_is_not_there_is_a_problem():
    bag = valid_bag()
    bag.documents[2]["file"] = "files/" + "b" * 64 + ".pdf"
    problems = row_problems(bag)
    assert problems == [(fmt.DOCUMENTS_CSV, 4, "file", reader.FILE_NOT_THERE)]


def test_a_document_of_an_unlisted_administration_is_a_problem():
    bag = valid_bag()
    bag.documents[0]["administration_code"] = "9999"
    bag.documents[2]["package"] = "exact_online"  # 2002 is listed under Twinfield only
    assert row_problems(bag) == [
        (fmt.DOCUMENTS_CSV, 2, "administration_code", reader.UNKNOWN_ADMINISTRATION),
        (fmt.DOCUMENTS_CSV, 4, "administration_code", reader.UNKNOWN_ADMINISTRATION),
    ]


def test_administration_rows_are_checked():
    bag = valid_bag()
    bag.administrations += [
        administration("1001"),  # a duplicate of line 2
        administration("3003", contact_email="not an address"),
        administration("x" * 41),
        administration("5005", package="", name=""),
    ]
    problems = row_problems(bag)
    assert problems == [
        (fmt.ADMINISTRATIONS_CSV, 5, "contact_email", reader.NOT_AN_EMAIL),
        (fmt.ADMINISTRATIONS_CSV, 6, "administration_code", reader.TOO_LONG),
        (fmt.ADMINISTRATIONS_CSV, 7, "package", reader.REQUIRED),
        (fmt.ADMINISTRATIONS_CSV, 7, "name", reader.REQUIRED),
        (fmt.ADMINISTRATIONS_CSV, 4, "administration_code", reader.DUPLICATE_ADMINISTRATION),
    ]
    assert read(bag.build()).problems[-1].params == {"first": 2}


def test_scope_administrations_carries_no_documents():
    bag = valid_bag()
    bag.scope = "administrations"
    assert row_problems(bag) == [(fmt.DOCUMENTS_CSV, 2, None, reader.SCOPE_HAS_NO_DOCUMENTS)]
    empty = Bag(scope="administrations", administrations=[administration("1001")])
    package = read(empty.build())
    assert package.ok and package.scope is fmt.Scope.ADMINISTRATIONS
    assert [a.code for a in package.administrations] == ["1001"] and package.documents == []


def test_scope_documents_names_the_administrations_the_documents_go_to():
    bag = valid_bag()
    bag.scope = "documents"
    assert read(bag.build()).ok
    bag.administrations = bag.administrations[:1]
    assert row_problems(bag) == [
        (fmt.DOCUMENTS_CSV, 4, "administration_code", reader.UNKNOWN_ADMINISTRATION)
    ]


def test_problems_are_bounded():
    bag = valid_bag()
    for _ in range(30):
        bag.add_document(status="booked")
    package = read(bag.build(), Limits(max_problems=10, email_test_environment=True))
    assert len(package.problems) == 11
    assert package.problems[-1].message == reader.MORE_PROBLEMS
    assert package.problems[-1].params == {"count": 20}


def test_rows_are_bounded():
    bag = valid_bag()
    package = read(bag.build(), Limits(max_rows=2, email_test_environment=True))
    assert (fmt.DOCUMENTS_CSV, 4, None, reader.CSV_TOO_MANY_ROWS) in found(package)


def test_limits_come_from_the_settings(app):
    limits = Limits.from_config(app.config)
    assert limits.max_entries == app.config["IMPORT_MAX_ENTRIES"] == 200_000
    assert limits.max_bytes == app.config["IMPORT_MAX_BYTES"] == 50 * 1024**3
    assert limits.max_ratio == app.config["IMPORT_MAX_RATIO"] == 100


def test_a_timezone_other_than_utc_is_kept():
    bag = valid_bag()
    bag.documents[0]["decided_at"] = "2024-03-20T10:15:00-05:00"
    package = read(bag.build())
    assert package.documents[0].decided_at.tzinfo == timezone(timedelta(hours=-5))


def test_administration_codes_are_read_without_surrounding_spaces():
    bag = valid_bag()
    bag.administrations[0]["administration_code"] = " 1001 "
    package = read(bag.build())
    assert package.ok, found(package)
    assert package.administrations[0].code == "1001"


def test_a_csv_that_breaks_the_quoting_rules_is_a_problem_of_its_line():
    bag = valid_bag()
    documents_csv = bag.payload()[fmt.DOCUMENTS_CSV] + b'exact_online;"10"01;x\r\n'
    bag.extra_payload[fmt.DOCUMENTS_CSV] = documents_csv
    assert row_problems(bag) == [(fmt.DOCUMENTS_CSV, 5, None, reader.CSV_BROKEN)]


def test_a_line_of_millions_of_fields_is_refused_without_reading_it_into_a_row():
    bag = valid_bag()
    documents_csv = bag.payload()[fmt.DOCUMENTS_CSV] + b";" * (2 * reader.CSV_LINE_MAX) + b"\r\n"
    bag.extra_payload[fmt.DOCUMENTS_CSV] = documents_csv
    # (Such a line packs very well: the ratio check alone would refuse it by default.)
    limits = Limits(max_ratio=100_000, email_test_environment=True)
    assert row_problems(bag, limits) == [(fmt.DOCUMENTS_CSV, 5, None, reader.CSV_LINE_TOO_LONG)]


def test_a_malformed_manifest_line_is_refused():
    bag = valid_bag()
    entries = bag.entries()
    entries[fmt.MANIFEST] = b"not-a-hash  data/documents.csv\n" + entries[fmt.MANIFEST]
    package = refused(build_zip({bag.root + p: d for p, d in entries.items()}))
    assert (fmt.MANIFEST, 1, None, reader.MANIFEST_LINE) in found(package)


def test_a_repeated_required_label_is_refused():
    bag = valid_bag()
    entries = bag.entries()
    entries[fmt.BAG_INFO] += b"Overdracht-Scope: documents\n"
    entries.pop(fmt.TAGMANIFEST)
    package = refused(build_zip({bag.root + p: d for p, d in entries.items()}))
    assert found(package) == [(fmt.BAG_INFO, 7, fmt.INFO_SCOPE, reader.INFO_REPEATED)]


def test_a_fetch_file_is_refused():
    bag = valid_bag()
    entries = {bag.root + p: d for p, d in bag.entries().items()}
    entries[bag.root + "fetch.txt"] = b"https://example.org/x 10 data/files/x.pdf\n"
    package = refused(build_zip(entries))
    assert ("fetch.txt", None, None, reader.FETCH_NOT_SUPPORTED) in found(package)


def test_reading_streams_a_large_file_in_small_reads():
    """A 24 MiB document file is hashed without ever being held in memory whole."""
    import os
    import tracemalloc

    bag = valid_bag()
    big = os.urandom(24 * 1024 * 1024)
    bag.add_document(big, filename="groot.pdf")
    fileobj = io.BytesIO(bag.build())
    del big
    tracemalloc.start()
    try:
        package = read_package(fileobj, LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert package.ok, found(package)
    assert package.files[package.documents[-1].file].size == 24 * 1024 * 1024
    assert peak < 8 * 1024 * 1024


def test_no_damaged_byte_makes_the_reader_raise_or_change_the_rows():
    """Every byte of a valid package flipped in turn (in steps): the reader answers with
    problems or, when the byte did not matter (a timestamp), with the very same rows."""
    data = valid_bag().build()
    original = read(data)
    for position in range(0, len(data), 7):
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        package = read(bytes(damaged))
        if package.ok:
            assert package.documents == original.documents, position
            assert package.administrations == original.administrations, position
        else:
            assert package.problems, position


def test_a_zip_written_as_a_stream_with_data_descriptors_is_read():
    bag = valid_bag()
    data = bag.build(streamed=True)
    assert central_record(data, bag.root + fmt.BAGIT)["flag_bits"] & 0x08  # descriptors
    package = read(data)
    assert package.ok, found(package)
    assert len(package.documents) == 3
    # And the overlap check still holds there.
    name = bag.root + fmt.BAGIT
    crafted = patch_central(
        data, name, compress_size=central_record(data, name)["compress_size"] + 40
    )
    assert (name, None, None, reader.OVERLAP) in found(refused(crafted))
