"""Reading and checking a migration file: a zipped BagIt 1.0 bag (see ``format``).

``read_package(fileobj, limits)`` reads a seekable binary file with the standard
library's ``zipfile``, entry by entry: never ``extractall``, never a whole entry in
memory, never a byte on disk. It is pure (no database, no request) and never raises
for bad input: every finding is a ``Problem`` (file, line, field, an untranslated
msgid and its parameters), translated where it is shown.

The checks run in three rings, and a ring's problems stop the next:

1. the container, from the central directory and the local headers, before a byte
   is decompressed: entry names (``..``, absolute, drive letters, backslashes),
   symlinks, encryption, compression methods, duplicates, entry count, declared
   total size, compression ratio, overlapping entries (the overlapped-file zip bomb),
   the bag's layout;
2. the bag: ``bagit.txt``, ``bag-info.txt``, ``manifest-sha256.txt`` (every payload
   file listed, every listed file present, each sha256 computed while streaming),
   ``tagmanifest-sha256.txt`` when present, ``Payload-Oxum``;
3. the rows of ``data/administrations.csv`` and ``data/documents.csv``, and the
   document files they name.

A package with a problem of the container or the bag carries no rows at all
(``Package.bag_valid`` is False); a package with row problems carries the rows that
were valid, and ``Package.ok`` is False. The importer later streams a payload file
with ``Archive.open`` (or ``open_member``), which checks its sha256 at the end.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import re
import stat
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from email_validator import EmailNotValidError, validate_email

from app.admin_settings.models import DocumentKind, DocumentStatus
from app.admin_settings.models import Package as AccountingPackage
from app.errors import N_
from app.migration_files import format as fmt

CHUNK = 1024 * 1024  # bytes per read
TAG_FILE_MAX = 1024 * 1024  # bagit.txt and bag-info.txt are a few lines
CSV_LINE_MAX = 64 * 1024  # characters per physical CSV line (a row is a few hundred)
SUPPORTED_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
MAX_BOOKED_YEAR = 2100
MIN_BOOKED_YEAR = 1900

# Lengths of the model's columns (app/admin_settings/models.py).
NAME_MAX = 200
CODE_MAX = 40
EMAIL_MAX = 254
FILENAME_MAX = 255
COUNTERPARTY_MAX = 200
CONTENT_TYPE_MAX = 100
PERSON_MAX = 200

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")  # NUL, lone surrogates, undecodable bytes
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")  # in entry names
_DRIVE = re.compile(r"^[A-Za-z]:")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_FILE_NAME = re.compile(r"^files/([0-9a-f]{64})(\.[A-Za-z0-9]{1,16})?$")
_OXUM = re.compile(r"^([0-9]{1,20})\.([0-9]{1,20})$")
_AMOUNT = re.compile(r"^-?[0-9]{1,12}(?:[.,][0-9]{1,2})?$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_INTEGER = re.compile(r"^-?[0-9]{1,6}$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$")
_TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.,]+(?:Z|[+-][0-9:]+)$")

_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's structFileHeader
_LOCAL_SIGNATURE = b"PK\x03\x04"


# --- messages (msgids; translated where they are shown) ---------------------------------------

NOT_A_ZIP = N_("This is not a zip file, or the file is incomplete.")
TOO_MANY_ENTRIES = N_("The file holds %(count)d entries; at most %(max)d are allowed.")
TOO_MANY_BYTES = N_("The file unpacks to %(size)d bytes; at most %(max)d are allowed.")
BAD_NAME = N_("The entry name “%(name)s” is not allowed (a path that leaves the folder).")
SYMLINK = N_("The entry “%(name)s” is a symbolic link; links are not allowed.")
ENCRYPTED = N_("The entry “%(name)s” is encrypted; encrypted files cannot be read.")
COMPRESSION = N_("The entry “%(name)s” uses a compression method that is not supported.")
DUPLICATE_ENTRY = N_("The entry “%(name)s” occurs more than once.")
RATIO = N_("The entry “%(name)s” unpacks more than %(max)d times its packed size.")
OVERLAP = N_("The entry “%(name)s” overlaps another entry in the file.")
BAD_ENTRY = N_("The entry “%(name)s” is damaged: its content does not match its size or checksum.")
LAYOUT = N_(
    "The file is not a bag: bagit.txt must sit at the top or in one single top folder, with everything else beside it."
)
UNEXPECTED_FILE = N_("The file “%(name)s” does not belong in a migration file.")
FETCH_NOT_SUPPORTED = N_("fetch.txt is not supported: every file must be inside the package.")
MISSING_TAG_FILE = N_("The file is missing.")
TAG_FILE_TOO_LARGE = N_("The file is larger than %(max)d bytes.")
NOT_UTF8 = N_("The file is not UTF-8 text.")
BAGIT_DECLARATION = N_(
    "bagit.txt must declare BagIt-Version 1.0 and Tag-File-Character-Encoding UTF-8."
)
INFO_LINE = N_("This line is not “Label: value”.")
INFO_REQUIRED = N_("The label is missing.")
INFO_REPEATED = N_("The label occurs more than once.")
FORMAT_VERSION = N_(
    "Format version %(value)s is not supported; this service reads version %(supported)s."
)
SCOPE = N_("“%(value)s” is not a scope (combined, administrations or documents).")
OXUM_FORMAT = N_("Payload-Oxum must be “<bytes>.<files>”, not “%(value)s”.")
OXUM_MISMATCH = N_(
    "Payload-Oxum says %(declared_bytes)s bytes in %(declared_files)s files; the payload has %(bytes)d bytes in %(files)d files."
)
MANIFEST_LINE = N_("This line is not “<sha256> <path>”.")
MANIFEST_REPEATED = N_("“%(path)s” is listed more than once.")
MANIFEST_OUTSIDE = N_("“%(path)s” is not a payload file (it is not below data/).")
LISTED_MISSING = N_("“%(path)s” is listed in the manifest but is not in the file.")
NOT_LISTED = N_("The file is not listed in %(manifest)s.")
CHECKSUM = N_("The file's sha256 checksum does not match %(manifest)s.")
FILE_NAME = N_("A document file must be named files/<sha256>.<extension>.")
FILE_HASH = N_("The file's content does not match the sha256 in its name.")
CSV_EMPTY = N_("The file has no header row.")
CSV_BROKEN = N_("This line cannot be read as CSV: %(error)s")
CSV_MISSING_COLUMN = N_("The column “%(column)s” is missing.")
CSV_UNKNOWN_COLUMN = N_("The column “%(column)s” is unknown.")
CSV_REPEATED_COLUMN = N_("The column “%(column)s” occurs more than once.")
CSV_FIELD_COUNT = N_("This row has %(found)d fields; the header has %(expected)d.")
CSV_LINE_TOO_LONG = N_("This line is longer than %(max)d characters.")
CSV_TOO_MANY_ROWS = N_("The file has more than %(max)d rows.")
BAD_CHARACTERS = N_("This contains characters that are not allowed (or is not UTF-8).")
REQUIRED = N_("This field is required.")
TOO_LONG = N_("At most %(max)d characters: %(value)s")
NOT_A_PACKAGE = N_("Not an accounting package: %(value)s")
NOT_A_KIND = N_("Not a document kind: %(value)s")
NOT_A_STATUS = N_("Not a document status (pending, approved, rejected): %(value)s")
NOT_AN_AMOUNT = N_(
    "Not an amount (digits, a decimal comma or point, at most 12 digits before it and 2 after): %(value)s"
)
NOT_A_CURRENCY = N_("Not a currency code of three letters: %(value)s")
NOT_A_DATE = N_("Not a date (YYYY-MM-DD): %(value)s")
NOT_A_TIMESTAMP = N_("Not a date and time in ISO 8601 with an offset: %(value)s")
NOT_A_YEAR = N_("Not a year from %(min)d to %(max)d: %(value)s")
NOT_A_PERIOD = N_("Not a period from 1 to 12: %(value)s")
PERIOD_WITHOUT_YEAR = N_("A booked period needs a booked year.")
NOT_AN_EMAIL = N_("Not a valid e-mail address: %(value)s")
NOT_A_CONTENT_TYPE = N_("Not a content type (such as application/pdf): %(value)s")
DUPLICATE_ADMINISTRATION = N_("This administration is listed before, on line %(first)d.")
UNKNOWN_ADMINISTRATION = N_("This administration is not listed in data/administrations.csv.")
FILE_NOT_THERE = N_("The file %(value)s is not in the package.")
SCOPE_HAS_NO_DOCUMENTS = N_("A file with scope administrations carries no documents.")
MORE_PROBLEMS = N_("%(count)d more problems are not shown.")


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What a package may hold; the caller takes them from ``current_app.config``."""

    max_entries: int = 200_000
    max_bytes: int = 50 * 1024**3
    max_ratio: int = 100
    ratio_exempt_bytes: int = 64 * 1024  # entries unpacking to less are not ratio-checked
    max_rows: int | None = None  # per CSV; None: max_entries
    max_problems: int = 1000  # more are counted in one last problem
    email_test_environment: bool = False  # email_validator's test_environment (tests)
    # False only for a file whose every byte was checked before and cannot have changed
    # since (the import's worker reads the content-addressed blob its dry run checked):
    # the document files are then not hashed again here; ``Archive.open`` still checks
    # each one as it is streamed into the store.
    verify_payload: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Limits:
        return cls(
            max_entries=int(config.get("IMPORT_MAX_ENTRIES", cls.max_entries)),
            max_bytes=int(config.get("IMPORT_MAX_BYTES", cls.max_bytes)),
            max_ratio=int(config.get("IMPORT_MAX_RATIO", cls.max_ratio)),
            email_test_environment=bool(config.get("TESTING", False)),
        )

    @property
    def rows(self) -> int:
        return self.max_rows if self.max_rows is not None else self.max_entries


@dataclass(frozen=True)
class Problem:
    """One finding. ``file`` is the path in the bag ("data/documents.csv"; a zip entry's
    own name for container problems; "" for the whole file), ``line`` is 1-based (the
    header is line 1), ``message`` an untranslated msgid filled with ``params``."""

    file: str
    line: int | None
    field: str | None
    message: str
    params: dict = field(default_factory=dict)

    def translated(self) -> str:
        from flask_babel import gettext

        return gettext(self.message, **self.params)

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line) if p not in ("", None))
        if self.field:
            where += f" [{self.field}]"
        text = self.message % self.params if self.params else self.message
        return f"{where}: {text}" if where else text


@dataclass(frozen=True)
class FileEntry:
    """A document file of the payload. ``name`` is the path below data/ as
    documents.csv names it ("files/<sha256>.<ext>"); ``member`` its zip entry name."""

    name: str
    sha256: str
    size: int
    member: str = ""


@dataclass(frozen=True)
class AdministrationRow:
    line: int
    package: AccountingPackage
    code: str
    name: str
    contact_email: str


@dataclass(frozen=True)
class DocumentRow:
    line: int
    package: AccountingPackage
    administration_code: str
    file: str  # "files/<sha256>.<ext>", a key of Package.files
    sha256: str
    filename: str
    content_type: str
    kind: DocumentKind
    counterparty: str | None
    amount: Decimal | None
    currency: str
    invoice_date: date | None
    status: DocumentStatus | None  # None: the importer's default status
    booked_year: int | None
    booked_period: int | None
    uploaded_by: str | None
    decided_by: str | None
    decided_at: datetime | None  # aware


@dataclass
class Package:
    info: dict[str, str] = field(default_factory=dict)
    scope: fmt.Scope | None = None
    source_organization: str | None = None
    administrations: list[AdministrationRow] = field(default_factory=list)
    documents: list[DocumentRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: dict[str, FileEntry] = field(default_factory=dict)
    bag_valid: bool = False  # the container and the bag passed; rows can be trusted
    root: str = ""  # the bag's folder in the zip ("" or "<top>/")

    @property
    def ok(self) -> bool:
        """Nothing wrong at all: the package may be imported."""
        return self.bag_valid and not self.problems


class MemberChanged(Exception):
    """A payload file read later differs from what ``read_package`` checked."""


# --- problems, bounded ----------------------------------------------------------------------


class _Problems:
    def __init__(self, limit: int) -> None:
        self.items: list[Problem] = []
        self.limit = limit
        self.dropped = 0
        self.of_the_bag = 0

    def add(self, file: str, line: int | None, field: str | None, message: str, **params) -> None:
        """A problem of the container or the bag: nothing may be imported."""
        self.of_the_bag += 1
        self.add_row(file, line, field, message, **params)

    def add_row(
        self, file: str, line: int | None, field: str | None, message: str, **params
    ) -> None:
        """A problem of a row (or a CSV's header): that row is left out."""
        if len(self.items) < self.limit:
            self.items.append(Problem(file, line, field, message, params))
        else:
            self.dropped += 1

    def __len__(self) -> int:
        return len(self.items) + self.dropped

    def result(self) -> list[Problem]:
        if self.dropped:
            return [*self.items, Problem("", None, None, MORE_PROBLEMS, {"count": self.dropped})]
        return list(self.items)


# --- the container --------------------------------------------------------------------------


def _declared_entry_count(fp: IO[bytes]) -> int | None:
    """The entry count in the end-of-central-directory record, read before zipfile
    builds an object per entry (so a file claiming millions is refused cheaply)."""
    fp.seek(0, io.SEEK_END)
    size = fp.tell()
    tail_size = min(size, 22 + 0xFFFF + 20)
    fp.seek(size - tail_size)
    tail = fp.read(tail_size)
    pos = tail.rfind(_EOCD)
    if pos < 0 or len(tail) - pos < 22:
        return None
    (count,) = struct.unpack("<H", tail[pos + 10 : pos + 12])
    if count == 0xFFFF and pos >= 20 and tail[pos - 20 : pos - 16] == _ZIP64_LOCATOR:
        (offset,) = struct.unpack("<Q", tail[pos - 12 : pos - 4])
        if 0 <= offset < size:
            fp.seek(offset)
            record = fp.read(56)
            if len(record) == 56 and record[:4] == _ZIP64_EOCD:
                (count,) = struct.unpack("<Q", record[32:40])
    return count


def _bad_name(name: str) -> bool:
    if not name or "\\" in name or name.startswith("/") or _DRIVE.match(name):
        return True
    if _CONTROL.search(name):
        return True
    parts = name.rstrip("/").split("/")
    return any(part in ("", ".", "..") for part in parts)


def _check_container(
    zf: zipfile.ZipFile, fp: IO[bytes], limits: Limits, problems: _Problems
) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        problems.add("", None, None, TOO_MANY_ENTRIES, count=len(infos), max=limits.max_entries)
        return infos
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        total += info.file_size
        if _bad_name(name):
            problems.add(name, None, None, BAD_NAME, name=name)
        if stat.S_ISLNK(info.external_attr >> 16):
            problems.add(name, None, None, SYMLINK, name=name)
        if info.flag_bits & 0x41:  # traditional or strong encryption
            problems.add(name, None, None, ENCRYPTED, name=name)
        if info.compress_type not in SUPPORTED_COMPRESSION:
            problems.add(name, None, None, COMPRESSION, name=name)
        if name in seen:
            problems.add(name, None, None, DUPLICATE_ENTRY, name=name)
        seen.add(name)
        if info.file_size >= limits.ratio_exempt_bytes and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            problems.add(name, None, None, RATIO, name=name, max=limits.max_ratio)
    if total > limits.max_bytes:
        problems.add("", None, None, TOO_MANY_BYTES, size=total, max=limits.max_bytes)
    _check_overlaps(zf, fp, infos, problems)
    return infos


def _check_overlaps(
    zf: zipfile.ZipFile, fp: IO[bytes], infos: list[zipfile.ZipInfo], problems: _Problems
) -> None:
    """Each entry's local header and data end before the next entry begins, and the
    last before the central directory: the overlapped-file zip bomb fails here."""
    ordered = sorted(infos, key=lambda i: i.header_offset)
    end_of_entries = getattr(zf, "start_dir", None)
    for index, info in enumerate(ordered):
        name = info.filename
        if info.header_offset < 0:
            problems.add(name, None, None, OVERLAP, name=name)
            continue
        fp.seek(info.header_offset)
        header = fp.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            problems.add(name, None, None, BAD_ENTRY, name=name)
            continue
        fields = _LOCAL_HEADER.unpack(header)
        name_length, extra_length = fields[10], fields[11]
        local_name = fp.read(name_length)
        encoding = "utf-8" if fields[3] & 0x800 else "cp437"
        if local_name.decode(encoding, "replace") != info.orig_filename:
            problems.add(name, None, None, BAD_ENTRY, name=name)
        end = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        end += info.compress_size
        if info.flag_bits & 0x08:  # a data descriptor follows: crc and two sizes at least
            end += 12
        following = ordered[index + 1].header_offset if index + 1 < len(ordered) else end_of_entries
        if following is not None and end > following:
            problems.add(name, None, None, OVERLAP, name=name)


def _bag_root(infos: list[zipfile.ZipInfo], problems: _Problems) -> str | None:
    names = [i.filename for i in infos]
    if fmt.BAGIT in names:
        root = ""
    else:
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) != 1:
            problems.add("", None, None, LAYOUT)
            return None
        root = next(iter(tops)) + "/"
        if root + fmt.BAGIT not in names or not all(n.startswith(root) for n in names):
            problems.add("", None, None, LAYOUT)
            return None
    return root


# --- streaming helpers ----------------------------------------------------------------------


class _Hashing(io.RawIOBase):
    """A raw stream over a zip entry that hashes and counts what passes through."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.sha256.update(data)
        self.size += n
        return n

    def drain(self) -> None:
        while self._read_more():
            pass

    def _read_more(self) -> bool:
        data = self.stream.read(CHUNK)
        if data:
            self.sha256.update(data)
            self.size += len(data)
        return bool(data)


_ENTRY_ERRORS = (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, ValueError)


def _read_small(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | None:
    """A tag file's bytes (bounded by TAG_FILE_MAX); None when it is larger."""
    if info.file_size > TAG_FILE_MAX:
        return None
    with zf.open(info) as stream:
        data = stream.read(TAG_FILE_MAX + 1)
    return data if len(data) <= TAG_FILE_MAX else None


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, str]]:
    """Decoded lines (CR, LF or CRLF), numbered from 1; undecodable bytes become lone
    surrogates, which the callers refuse."""
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline=None)
    for number, line in enumerate(text, start=1):
        yield number, line.rstrip("\n")


# --- the bag ----------------------------------------------------------------------------------


def _check_bagit_txt(data: bytes | None, problems: _Problems) -> None:
    if data is None:
        problems.add(fmt.BAGIT, None, None, TAG_FILE_TOO_LARGE, max=TAG_FILE_MAX)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        problems.add(fmt.BAGIT, None, None, NOT_UTF8)
        return
    values = {}
    for line in text.splitlines():
        label, sep, value = line.partition(":")
        if sep:
            values[label.strip()] = value.strip()
    if values.get("BagIt-Version") != "1.0" or values.get(
        "Tag-File-Character-Encoding", ""
    ).upper() not in (
        "UTF-8",
        "UTF8",
    ):
        problems.add(fmt.BAGIT, None, None, BAGIT_DECLARATION)


def parse_bag_info(text: str) -> tuple[list[tuple[str, str, int]], list[tuple[int, str]]]:
    """bag-info.txt per RFC 8493 §2.2.2: ``Label: value`` lines; a line starting with
    white space continues the value before it. Returns (label, value, line) triples and
    the numbers of lines that are neither (with the message)."""
    entries: list[list] = []
    bad: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line[0] in " \t":
            if entries:
                entries[-1][1] = f"{entries[-1][1]} {line.strip()}".strip()
            else:
                bad.append((number, INFO_LINE))
            continue
        label, sep, value = line.partition(":")
        if not sep or not label.strip() or label != label.strip():
            bad.append((number, INFO_LINE))
            continue
        entries.append([label, value.strip(), number])
    return [(e[0], e[1], e[2]) for e in entries], bad


def _check_bag_info(data: bytes | None, package: Package, problems: _Problems) -> tuple | None:
    """Fills ``package.info``, scope and source; returns the declared oxum (bytes, files)."""
    name = fmt.BAG_INFO
    if data is None:
        problems.add(name, None, None, TAG_FILE_TOO_LARGE, max=TAG_FILE_MAX)
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        problems.add(name, None, None, NOT_UTF8)
        return None
    if _BAD_TEXT.search(text):
        problems.add(name, None, None, BAD_CHARACTERS)
        return None
    entries, bad = parse_bag_info(text)
    for number, message in bad:
        problems.add(name, number, None, message)
    lines: dict[str, int] = {}
    for label, value, number in entries:
        if label in lines and label in (
            fmt.INFO_FORMAT_VERSION,
            fmt.INFO_SCOPE,
            fmt.INFO_OXUM,
            fmt.INFO_SOURCE,
        ):
            problems.add(name, number, label, INFO_REPEATED)
            continue
        lines.setdefault(label, number)
        package.info.setdefault(label, value)
    info = package.info
    for label in (fmt.INFO_FORMAT_VERSION, fmt.INFO_SCOPE, fmt.INFO_OXUM):
        if label not in info:
            problems.add(name, None, label, INFO_REQUIRED)
    version = info.get(fmt.INFO_FORMAT_VERSION)
    if version is not None and version != fmt.FORMAT_VERSION:
        problems.add(
            name,
            lines[fmt.INFO_FORMAT_VERSION],
            fmt.INFO_FORMAT_VERSION,
            FORMAT_VERSION,
            value=version,
            supported=fmt.FORMAT_VERSION,
        )
    scope = info.get(fmt.INFO_SCOPE)
    if scope is not None:
        try:
            package.scope = fmt.Scope(scope)
        except ValueError:
            problems.add(name, lines[fmt.INFO_SCOPE], fmt.INFO_SCOPE, SCOPE, value=scope)
    package.source_organization = info.get(fmt.INFO_SOURCE) or None
    oxum = info.get(fmt.INFO_OXUM)
    if oxum is not None:
        match = _OXUM.match(oxum)
        if not match:
            problems.add(name, lines[fmt.INFO_OXUM], fmt.INFO_OXUM, OXUM_FORMAT, value=oxum)
            return None
        return int(match.group(1)), int(match.group(2)), lines[fmt.INFO_OXUM]
    return None


def _decode_path(path: str) -> str:
    """RFC 8493 §2.1.3: CR, LF and % in manifest paths are percent-encoded."""
    return (
        path.replace("%0D", "\r")
        .replace("%0d", "\r")
        .replace("%0A", "\n")
        .replace("%0a", "\n")
        .replace("%25", "%")
    )


def _read_manifest(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    manifest: str,
    payload: bool,
    problems: _Problems,
    hashes: dict[str, str],
) -> dict[str, tuple[str, int]]:
    """path → (sha256, line), streamed line by line; the manifest's own hash lands in
    ``hashes`` (for the tag manifest)."""
    listed: dict[str, tuple[str, int]] = {}
    with zf.open(info) as stream:
        hashing = _Hashing(stream)
        buffered = io.BufferedReader(hashing, CHUNK)
        for number, line in _lines(buffered):
            if not line.strip():
                continue
            parts = line.strip().split(None, 1)
            if len(parts) != 2 or not _SHA256.match(parts[0]) or _BAD_TEXT.search(line):
                problems.add(manifest, number, None, MANIFEST_LINE)
                continue
            digest, path = parts[0].lower(), _decode_path(parts[1].strip())
            if path.startswith("./"):
                path = path[2:]
            if payload and not path.startswith("data/"):
                problems.add(manifest, number, None, MANIFEST_OUTSIDE, path=path)
                continue
            if path in listed:
                problems.add(manifest, number, None, MANIFEST_REPEATED, path=path)
                continue
            listed[path] = (digest, number)
        hashing.drain()
    hashes[manifest] = hashing.sha256.hexdigest()
    return listed


# --- the rows -------------------------------------------------------------------------------


class _Row:
    """One CSV row's fields with the problems found while reading them."""

    def __init__(self, file: str, line: int, values: dict[str, str], problems: _Problems):
        self.file, self.line, self.values, self.problems = file, line, values, problems
        self.bad = False

    def problem(self, column: str | None, message: str, **params) -> None:
        self.bad = True
        self.problems.add_row(self.file, self.line, column, message, **params)

    def text(self, column: str, max_length: int, *, required: bool) -> str | None:
        value = self.values[column]
        if _BAD_TEXT.search(value):
            self.problem(column, BAD_CHARACTERS)
            return None
        if not value.strip():
            if required:
                self.problem(column, REQUIRED)
            return None
        if len(value) > max_length:
            self.problem(column, TOO_LONG, max=max_length, value=_short(value))
            return None
        return value

    def choice(self, column: str, enum_cls, message: str, *, required: bool):
        value = self.text(column, 40, required=required)
        if value is None:
            return None
        try:
            return enum_cls(value.strip())
        except ValueError:
            self.problem(column, message, value=_short(value))
            return None


class _LineTooLong(Exception):
    pass


def _bounded_lines(text: IO[str]) -> Iterator[str]:
    """The CSV's physical lines, each at most CSV_LINE_MAX characters: a row of millions
    of empty fields never becomes a list of millions of strings."""
    while True:
        line = text.readline(CSV_LINE_MAX + 1)
        if not line:
            return
        if len(line) > CSV_LINE_MAX:
            raise _LineTooLong
        yield line


def _short(value: str, length: int = 60) -> str:
    return value if len(value) <= length else value[: length - 1] + "…"


def _read_csv(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    name: str,
    columns: tuple[str, ...],
    limits: Limits,
    problems: _Problems,
) -> tuple[Iterator[_Row], _Hashing]:
    """Rows of one CSV while its bytes are hashed; the caller drains the hash."""
    stream = zf.open(info)
    hashing = _Hashing(stream)

    def rows() -> Iterator[_Row]:
        try:
            text = io.TextIOWrapper(
                io.BufferedReader(hashing, CHUNK),
                encoding=fmt.CSV_ENCODING,
                errors="surrogateescape",
                newline="",
            )
            reader = csv.reader(_bounded_lines(text), delimiter=fmt.CSV_DELIMITER, strict=True)
            line = 0
            try:
                header = next(reader)
            except StopIteration:
                problems.add_row(name, None, None, CSV_EMPTY)
                return
            except csv.Error as error:
                problems.add_row(name, 1, None, CSV_BROKEN, error=str(error))
                return
            except _LineTooLong:
                problems.add_row(name, 1, None, CSV_LINE_TOO_LONG, max=CSV_LINE_MAX)
                return
            line = reader.line_num
            header_ok = True
            counts = Counter(header)
            for column in counts:
                if counts[column] > 1:
                    problems.add_row(
                        name, 1, _short(column), CSV_REPEATED_COLUMN, column=_short(column)
                    )
                    header_ok = False
                elif column not in columns:
                    problems.add_row(
                        name, 1, _short(column), CSV_UNKNOWN_COLUMN, column=_short(column)
                    )
                    header_ok = False
            for column in columns:
                if column not in header:
                    problems.add_row(name, 1, column, CSV_MISSING_COLUMN, column=column)
                    header_ok = False
            if not header_ok:
                return
            count = 0
            while True:
                start = line + 1
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as error:
                    problems.add_row(name, reader.line_num, None, CSV_BROKEN, error=str(error))
                    return
                except _LineTooLong:
                    problems.add_row(
                        name, reader.line_num + 1, None, CSV_LINE_TOO_LONG, max=CSV_LINE_MAX
                    )
                    return
                line = reader.line_num
                if not values or values == [""]:
                    continue
                count += 1
                if count > limits.rows:
                    problems.add_row(name, start, None, CSV_TOO_MANY_ROWS, max=limits.rows)
                    return
                if len(values) != len(header):
                    problems.add_row(
                        name, start, None, CSV_FIELD_COUNT, found=len(values), expected=len(header)
                    )
                    continue
                yield _Row(name, start, dict(zip(header, values, strict=True)), problems)
        finally:
            hashing.drain()
            stream.close()

    return rows(), hashing


def _administration(row: _Row, limits: Limits) -> AdministrationRow | None:
    package = row.choice("package", AccountingPackage, NOT_A_PACKAGE, required=True)
    code = _code(row)
    name = row.text("name", NAME_MAX, required=True)
    email = row.text("contact_email", EMAIL_MAX, required=True)
    if email is not None:
        try:
            validate_email(
                email.strip(),
                check_deliverability=False,
                test_environment=limits.email_test_environment,
            )
        except EmailNotValidError:
            row.problem("contact_email", NOT_AN_EMAIL, value=_short(email))
    if row.bad:
        return None
    return AdministrationRow(row.line, package, code, name, email.strip())


def _collect(into: list, rows: Iterator[_Row], make, limits: Limits) -> None:
    for row in rows:
        result = make(row, limits)
        if result is not None:
            into.append(result)


def _document(row: _Row, limits: Limits) -> DocumentRow | None:
    package = row.choice("package", AccountingPackage, NOT_A_PACKAGE, required=True)
    code = _code(row)
    file = row.text("file", FILENAME_MAX, required=True)
    sha256 = None
    if file is not None:
        match = _FILE_NAME.match(file.strip())
        if match:
            file, sha256 = file.strip(), match.group(1)
        else:
            row.problem("file", FILE_NAME)
    filename = row.text("filename", FILENAME_MAX, required=True)
    content_type = row.text("content_type", CONTENT_TYPE_MAX, required=True)
    if content_type is not None and not _CONTENT_TYPE.match(content_type.strip()):
        row.problem("content_type", NOT_A_CONTENT_TYPE, value=_short(content_type))
    kind = row.choice("kind", DocumentKind, NOT_A_KIND, required=True)
    counterparty = row.text("counterparty", COUNTERPARTY_MAX, required=False)
    amount = _amount(row)
    currency = row.text("currency", 40, required=False)
    if currency is None:
        currency = "EUR"
    elif not _CURRENCY.match(currency.strip()):
        row.problem("currency", NOT_A_CURRENCY, value=_short(currency))
    invoice_date = _date(row)
    status = row.choice("status", DocumentStatus, NOT_A_STATUS, required=False)
    year = _integer(row, "booked_year", MIN_BOOKED_YEAR, MAX_BOOKED_YEAR, NOT_A_YEAR)
    period = _integer(row, "booked_period", 1, 12, NOT_A_PERIOD)
    if period is not None and year is None and row.values["booked_year"].strip() == "":
        row.problem("booked_period", PERIOD_WITHOUT_YEAR)
    uploaded_by = row.text("uploaded_by", PERSON_MAX, required=False)
    decided_by = row.text("decided_by", PERSON_MAX, required=False)
    decided_at = _timestamp(row)
    if row.bad:
        return None
    return DocumentRow(
        line=row.line,
        package=package,
        administration_code=code,
        file=file,
        sha256=sha256,
        filename=filename,
        content_type=content_type.strip(),
        kind=kind,
        counterparty=counterparty,
        amount=amount,
        currency=currency.strip().upper(),
        invoice_date=invoice_date,
        status=status,
        booked_year=year,
        booked_period=period,
        uploaded_by=uploaded_by,
        decided_by=decided_by,
        decided_at=decided_at,
    )


def _code(row: _Row) -> str | None:
    """The administration code, without surrounding spaces (a spreadsheet adds them)."""
    value = row.text("administration_code", CODE_MAX + 40, required=True)
    if value is None:
        return None
    value = value.strip()
    if len(value) > CODE_MAX:
        row.problem("administration_code", TOO_LONG, max=CODE_MAX, value=_short(value))
        return None
    return value


def _amount(row: _Row) -> Decimal | None:
    value = row.text("amount", 40, required=False)
    if value is None:
        return None
    value = value.strip()
    if not _AMOUNT.match(value):
        row.problem("amount", NOT_AN_AMOUNT, value=_short(value))
        return None
    try:
        return Decimal(value.replace(",", ".")).quantize(Decimal("0.01"))
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        row.problem("amount", NOT_AN_AMOUNT, value=_short(value))
        return None


def _date(row: _Row) -> date | None:
    value = row.text("invoice_date", 40, required=False)
    if value is None:
        return None
    value = value.strip()
    try:
        if not _DATE.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        row.problem("invoice_date", NOT_A_DATE, value=_short(value))
        return None


def _integer(row: _Row, column: str, low: int, high: int, message: str) -> int | None:
    value = row.text(column, 40, required=False)
    if value is None:
        return None
    value = value.strip()
    number = int(value) if _INTEGER.match(value) else None
    if number is None or not low <= number <= high:
        row.problem(column, message, min=low, max=high, value=_short(value))
        return None
    return number


def _timestamp(row: _Row) -> datetime | None:
    value = row.text("decided_at", 60, required=False)
    if value is None:
        return None
    value = value.strip()
    try:
        if not _TIMESTAMP.match(value):
            raise ValueError(value)
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(value)
    except ValueError:
        row.problem("decided_at", NOT_A_TIMESTAMP, value=_short(value))
        return None
    return moment


# --- reading a package ----------------------------------------------------------------------


def read_package(fileobj: IO[bytes], limits: Limits | None = None) -> Package:
    """Read and check the migration file in ``fileobj`` (seekable, binary). Never raises
    for bad input; raises only the store's own I/O errors (``OSError``)."""
    limits = limits or Limits()
    problems = _Problems(limits.max_problems)
    package = Package()
    with contextlib.suppress(_Refused):
        _read(fileobj, limits, package, problems)
    package.problems = problems.result()
    if not package.bag_valid:
        package.administrations, package.documents, package.files = [], [], {}
    return package


class _Refused(Exception):
    """Stop reading: the container or the bag is wrong (the problem is recorded)."""


def _read(fp: IO[bytes], limits: Limits, package: Package, problems: _Problems) -> None:
    try:
        declared = _declared_entry_count(fp)
        if declared is not None and declared > limits.max_entries:
            problems.add("", None, None, TOO_MANY_ENTRIES, count=declared, max=limits.max_entries)
            raise _Refused
        fp.seek(0)
        zf = zipfile.ZipFile(fp)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        ValueError,
        struct.error,
        UnicodeDecodeError,
        NotImplementedError,
        KeyError,
        IndexError,
    ):
        problems.add("", None, None, NOT_A_ZIP)
        raise _Refused
    with zf:
        try:
            infos = _check_container(zf, fp, limits, problems)
        except (zipfile.BadZipFile, struct.error, UnicodeError):
            problems.add("", None, None, NOT_A_ZIP)
            raise _Refused
        if problems:
            raise _Refused
        root = _bag_root(infos, problems)
        if root is None:
            raise _Refused
        package.root = root
        try:
            _read_bag(zf, infos, root, limits, package, problems)
        except _ENTRY_ERRORS as error:
            # A damaged entry (bad CRC, short data, broken deflate stream) while reading.
            name = getattr(error, "_reader_entry", "")
            problems.add(name, None, None, BAD_ENTRY, name=name)
            raise _Refused


def _read_bag(
    zf: zipfile.ZipFile,
    infos: list[zipfile.ZipInfo],
    root: str,
    limits: Limits,
    package: Package,
    problems: _Problems,
) -> None:
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.is_dir():
            continue
        entries[info.filename[len(root) :]] = info
    payload = {p: i for p, i in entries.items() if p.startswith("data/")}
    tags = {p: i for p, i in entries.items() if not p.startswith("data/")}

    # Tag files.
    if "fetch.txt" in tags:
        problems.add("fetch.txt", None, None, FETCH_NOT_SUPPORTED)
    tag_hashes: dict[str, str] = {}
    for required in (fmt.BAGIT, fmt.BAG_INFO, fmt.MANIFEST):
        if required not in tags:
            problems.add(required, None, None, MISSING_TAG_FILE)
    if problems:
        raise _Refused
    bagit = _tag_bytes(zf, tags[fmt.BAGIT], fmt.BAGIT, tag_hashes)
    _check_bagit_txt(bagit, problems)
    info_bytes = _tag_bytes(zf, tags[fmt.BAG_INFO], fmt.BAG_INFO, tag_hashes)
    oxum = _check_bag_info(info_bytes, package, problems)
    manifest = _guarded(
        fmt.MANIFEST,
        _read_manifest,
        zf,
        tags[fmt.MANIFEST],
        fmt.MANIFEST,
        True,
        problems,
        tag_hashes,
    )

    # Payload: one pass in the order of the file, hashing every entry, parsing the CSVs.
    admin_rows: list[AdministrationRow] = []
    document_rows: list[DocumentRow] = []
    actual: dict[str, tuple[str, int]] = {}
    for path, info in sorted(payload.items(), key=lambda item: item[1].header_offset):
        if path == fmt.ADMINISTRATIONS_CSV:
            rows, hashing = _read_csv(zf, info, path, fmt.ADMINISTRATION_COLUMNS, limits, problems)
            _guarded(path, _collect, admin_rows, rows, _administration, limits)
        elif path == fmt.DOCUMENTS_CSV:
            rows, hashing = _read_csv(zf, info, path, fmt.DOCUMENT_COLUMNS, limits, problems)
            _guarded(path, _collect, document_rows, rows, _document, limits)
        else:
            if not _FILE_NAME.match(path[len("data/") :]):
                problems.add(path, None, None, UNEXPECTED_FILE, name=path)
            if not limits.verify_payload and path in manifest:
                # Checked before (see Limits.verify_payload); checked again as it streams.
                actual[path] = (manifest[path][0], info.file_size)
                continue
            hashing = _guarded(path, _hash_entry, zf, info)
        actual[path] = (hashing.sha256.hexdigest(), hashing.size)
    for required in (fmt.ADMINISTRATIONS_CSV, fmt.DOCUMENTS_CSV):
        if required not in payload:
            problems.add(required, None, None, MISSING_TAG_FILE)

    # The manifest against the payload.
    for path, (digest, _size) in actual.items():
        if path not in manifest:
            problems.add(path, None, None, NOT_LISTED, manifest=fmt.MANIFEST)
        elif manifest[path][0] != digest:
            problems.add(path, None, None, CHECKSUM, manifest=fmt.MANIFEST)
    for path, (_digest, line) in manifest.items():
        if path not in actual:
            problems.add(fmt.MANIFEST, line, None, LISTED_MISSING, path=path)
    if oxum is not None:
        declared_bytes, declared_files, oxum_line = oxum
        total = sum(size for _digest, size in actual.values())
        if (declared_bytes, declared_files) != (total, len(actual)):
            problems.add(
                fmt.BAG_INFO,
                oxum_line,
                fmt.INFO_OXUM,
                OXUM_MISMATCH,
                declared_bytes=str(declared_bytes),
                declared_files=str(declared_files),
                bytes=total,
                files=len(actual),
            )

    # The tag manifest, when there is one.
    if fmt.TAGMANIFEST in tags:
        tagmanifest = _guarded(
            fmt.TAGMANIFEST,
            _read_manifest,
            zf,
            tags[fmt.TAGMANIFEST],
            fmt.TAGMANIFEST,
            False,
            problems,
            {},
        )
        for path, (digest, line) in tagmanifest.items():
            if path.startswith("data/") or path not in tags or path == fmt.TAGMANIFEST:
                problems.add(fmt.TAGMANIFEST, line, None, LISTED_MISSING, path=path)
                continue
            if path not in tag_hashes:
                tag_hashes[path] = _guarded(path, _hash_entry, zf, tags[path]).sha256.hexdigest()
            if tag_hashes[path] != digest:
                problems.add(path, None, None, CHECKSUM, manifest=fmt.TAGMANIFEST)

    # Document files: named by their own hash.
    files: dict[str, FileEntry] = {}
    for path, (digest, size) in actual.items():
        match = _FILE_NAME.match(path[len("data/") :])
        if not match:
            continue
        if match.group(1) != digest:
            problems.add(path, None, None, FILE_HASH)
            continue
        name = path[len("data/") :]
        files[name] = FileEntry(name, digest, size, payload[path].filename)

    if problems.of_the_bag:
        raise _Refused  # the container or the bag is wrong: no rows at all
    package.bag_valid = True
    package.files = files
    _cross_check(package, admin_rows, document_rows, problems)


def _cross_check(
    package: Package,
    admin_rows: list[AdministrationRow],
    document_rows: list[DocumentRow],
    problems: _Problems,
) -> None:
    first_line: dict[tuple[AccountingPackage, str], int] = {}
    administrations = []
    for row in admin_rows:
        key = (row.package, row.code)
        if key in first_line:
            problems.add_row(
                fmt.ADMINISTRATIONS_CSV,
                row.line,
                "administration_code",
                DUPLICATE_ADMINISTRATION,
                first=first_line[key],
            )
            continue
        first_line[key] = row.line
        administrations.append(row)
    documents = []
    for row in document_rows:
        bad = False
        if (row.package, row.administration_code) not in first_line:
            problems.add_row(
                fmt.DOCUMENTS_CSV, row.line, "administration_code", UNKNOWN_ADMINISTRATION
            )
            bad = True
        if row.file not in package.files:
            problems.add_row(fmt.DOCUMENTS_CSV, row.line, "file", FILE_NOT_THERE, value=row.file)
            bad = True
        if not bad:
            documents.append(row)
    if package.scope is fmt.Scope.ADMINISTRATIONS and document_rows:
        problems.add_row(fmt.DOCUMENTS_CSV, document_rows[0].line, None, SCOPE_HAS_NO_DOCUMENTS)
        documents = []
    package.administrations = administrations
    package.documents = documents


def _guarded(path: str, work, *args):
    """Run ``work(*args)``; a damaged entry's error carries the entry's name out."""
    try:
        return work(*args)
    except _ENTRY_ERRORS as error:
        error._reader_entry = path
        raise


def _tag_bytes(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, hashes: dict[str, str]
) -> bytes | None:
    data = _guarded(path, _read_small, zf, info)
    if data is not None:
        hashes[path] = hashlib.sha256(data).hexdigest()
    return data


def _hash_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Hashing:
    with zf.open(info) as stream:
        hashing = _Hashing(stream)
        hashing.drain()
    return hashing


# --- reading a payload file later -----------------------------------------------------------


class _CheckedStream(io.RawIOBase):
    """A payload file's bytes; at the end its size and sha256 must be the ones checked."""

    def __init__(self, stream: IO[bytes], entry: FileEntry, owned: zipfile.ZipFile | None):
        self._stream = stream
        self._entry = entry
        self._owned = owned
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._stream.read(len(buffer))
        except _ENTRY_ERRORS as error:
            raise MemberChanged(self._entry.name) from error
        n = len(data)
        buffer[:n] = data
        self._sha256.update(data)
        self._size += n
        if self._size > self._entry.size:
            raise MemberChanged(self._entry.name)
        if n == 0 and not self._checked and len(buffer):
            self._checked = True
            if self._size != self._entry.size or self._sha256.hexdigest() != self._entry.sha256:
                raise MemberChanged(self._entry.name)
        return n

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
            if self._owned is not None:
                self._owned.close()
        super().close()


class Archive:
    """The package's zip, opened once, for streaming several payload files in turn::

    with Archive(fileobj) as archive:
        with archive.open(package.files[row.file]) as stream:
            store.put(stream)
    """

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._zf = zipfile.ZipFile(fileobj)

    def open(self, entry: FileEntry) -> IO[bytes]:
        """A readable stream (buffered, 1 MiB) of ``entry``'s bytes; raises
        ``MemberChanged`` on a read that shows other bytes than were checked."""
        return io.BufferedReader(_CheckedStream(self._zf.open(entry.member), entry, None), CHUNK)

    def close(self) -> None:
        self._zf.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_member(fileobj: IO[bytes], entry: FileEntry) -> IO[bytes]:
    """One payload file's bytes from the same seekable file (see ``Archive`` for many)."""
    zf = zipfile.ZipFile(fileobj)
    try:
        stream = zf.open(entry.member)
    except BaseException:
        zf.close()
        raise
    return io.BufferedReader(_CheckedStream(stream, entry, zf), CHUNK)
