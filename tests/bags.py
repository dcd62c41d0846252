"""Migration files for tests, built in memory with ``zipfile``: a valid bag by default,
and the knobs and byte-level patches that break it in each way the reader must notice.

Independent of the export module on purpose: the reader is tested against the format
(``app.migration_files.format``), not against one writer.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from app.migration_files import format as fmt

PDF = b"%PDF-1.4\n% test document\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def csv_bytes(columns: tuple[str, ...] | list[str], rows: list[dict]) -> bytes:
    """A CSV as the format wants it: UTF-8 with BOM, ``;``, CRLF; fields with ``;``,
    quotes or line breaks quoted."""

    def cell(value) -> str:
        text = "" if value is None else str(value)
        if any(c in text for c in ';"\r\n'):
            text = '"' + text.replace('"', '""') + '"'
        return text

    lines = [";".join(columns)] + [";".join(cell(row.get(c)) for c in columns) for row in rows]
    # surrogatepass: a lone surrogate in a test row lands as the bytes a broken writer
    # would produce (which are not valid UTF-8).
    return ("\r\n".join(lines) + "\r\n").encode("utf-8-sig", errors="surrogatepass")


def administration(code: str = "1001", **fields) -> dict:
    return {
        "package": "exact_online",
        "administration_code": code,
        "name": f"Bakkerij {code} B.V.",
        "contact_email": f"boekhouding{code}@bakkerij.nl",
        **fields,
    }


@dataclass
class Bag:
    """A migration file's parts; ``build()`` gives the zip's bytes."""

    root: str = "overdracht-export/"  # the single top folder ("" for the zip's root)
    scope: str = "combined"
    info: dict[str, str] = field(default_factory=dict)  # extra or replaced labels
    administrations: list[dict] = field(default_factory=list)
    documents: list[dict] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # "files/<sha>.<ext>" → bytes
    administration_columns: tuple[str, ...] = fmt.ADMINISTRATION_COLUMNS
    document_columns: tuple[str, ...] = fmt.DOCUMENT_COLUMNS
    extra_payload: dict[str, bytes] = field(default_factory=dict)  # "data/…" → bytes
    unlisted: set[str] = field(default_factory=set)  # payload paths left out of the manifest
    manifest_digests: dict[str, str] = field(default_factory=dict)  # path → a wrong digest
    manifest_extra: dict[str, str] = field(default_factory=dict)  # listed, not present
    oxum: str | None = None  # None: the right one
    tagmanifest: bool = True
    bagit_txt: str = fmt.BAGIT_TXT
    compression: int = zipfile.ZIP_DEFLATED

    def add_file(self, content: bytes, ext: str = "pdf") -> str:
        name = f"files/{sha256(content)}.{ext}"
        self.files[name] = content
        return name

    def add_document(self, content: bytes = PDF, ext: str = "pdf", **fields) -> dict:
        name = self.add_file(content, ext)
        row = {
            "package": "exact_online",
            "administration_code": "1001",
            "file": name,
            "filename": "factuur-2024-017.pdf",
            "content_type": "application/pdf",
            "kind": "purchase_invoice",
            "counterparty": "Groothandel De Molen",
            "amount": "1234,56",
            "currency": "EUR",
            "invoice_date": "2024-03-15",
            "status": "approved",
            "booked_year": "2024",
            "booked_period": "3",
            "uploaded_by": "Anna de Vries",
            "decided_by": "Jan Jansen",
            "decided_at": "2024-03-20T10:15:00+01:00",
            **fields,
        }
        self.documents.append(row)
        return row

    def payload(self) -> dict[str, bytes]:
        parts = {
            fmt.ADMINISTRATIONS_CSV: csv_bytes(self.administration_columns, self.administrations),
            fmt.DOCUMENTS_CSV: csv_bytes(self.document_columns, self.documents),
        }
        parts.update({f"data/{name}": content for name, content in self.files.items()})
        parts.update(self.extra_payload)
        return parts

    def entries(self) -> dict[str, bytes]:
        """Bag-relative path → bytes, in the order they go into the zip."""
        payload = self.payload()
        manifest = "".join(
            f"{self.manifest_digests.get(path, sha256(data))}  {path}\n"
            for path, data in payload.items()
            if path not in self.unlisted
        ) + "".join(f"{digest}  {path}\n" for path, digest in self.manifest_extra.items())
        total = sum(len(d) for d in payload.values())
        labels = {
            fmt.INFO_SOURCE: "Administratiekantoor Oost",
            fmt.INFO_DATE: "2026-12-01",
            fmt.INFO_OXUM: self.oxum or f"{total}.{len(payload)}",
            fmt.INFO_FORMAT_VERSION: fmt.FORMAT_VERSION,
            fmt.INFO_SCOPE: self.scope,
            fmt.INFO_AGENT: "tests/bags.py",
            **self.info,
        }
        bag_info = "".join(f"{k}: {v}\n" for k, v in labels.items() if v is not None)
        tags = {
            fmt.BAGIT: self.bagit_txt.encode(),
            fmt.BAG_INFO: bag_info.encode(),
            fmt.MANIFEST: manifest.encode(),
        }
        if self.tagmanifest:
            tags[fmt.TAGMANIFEST] = "".join(
                f"{sha256(data)}  {path}\n" for path, data in tags.items()
            ).encode()
        return {**tags, **payload}

    def build(self, *, streamed: bool = False) -> bytes:
        """The zip's bytes; ``streamed``: written as a streaming writer does, to a sink
        that cannot seek (each entry's sizes in a data descriptor after its data)."""
        return build_zip(
            {self.root + path: data for path, data in self.entries().items()},
            compression=self.compression,
            streamed=streamed,
        )

    def extract_to(self, folder: Path) -> Path:
        """The bag as a folder (for the bagit library's own validation)."""
        for path, data in self.entries().items():
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return folder


def valid_bag() -> Bag:
    """Two administrations of two packages, three documents, two of which share a file."""
    bag = Bag(
        administrations=[
            administration("1001"),
            administration("2002", package="twinfield", name="Kapsalon Knip; & Co"),
        ]
    )
    bag.add_document()
    bag.add_document(
        PDF,
        filename="kopie van factuur.pdf",
        status="",
        amount="99.5",
        currency="",
        booked_year="",
        booked_period="",
        decided_by="",
        decided_at="",
    )
    bag.add_document(
        b"\x89PNG\r\n\x1a\nbon",
        ext="png",
        package="twinfield",
        administration_code="2002",
        filename="bon.png",
        content_type="image/png",
        kind="receipt",
        counterparty="",
        amount="-12,00",
        invoice_date="",
        status="rejected",
        decided_at="2024-04-01T08:00:00Z",
    )
    return bag


def build_zip(
    entries: dict[str, bytes | zipfile.ZipInfo | tuple[zipfile.ZipInfo, bytes]],
    compression: int = zipfile.ZIP_DEFLATED,
    streamed: bool = False,
) -> bytes:
    """A zip of ``entries`` (name → bytes, or a ZipInfo with its bytes for special
    entries)."""
    buffer = io.BytesIO()
    sink = _Unseekable(buffer) if streamed else buffer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name" is what some tests want
        with zipfile.ZipFile(sink, "w", compression=compression) as zf:
            for name, value in entries.items():
                if isinstance(value, tuple):
                    zf.writestr(value[0], value[1])
                else:
                    zf.writestr(name, value)
    return buffer.getvalue()


class _Unseekable(io.RawIOBase):
    """A write-only sink without seek or tell, like a response being streamed."""

    def __init__(self, buffer: io.BytesIO) -> None:
        self.buffer = buffer

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return self.buffer.write(data)


def zip_of(items: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    """A zip from a list (so one name may occur twice)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for info, data in items:
                zf.writestr(info, data)
    return buffer.getvalue()


# --- byte-level patches of a zip's central directory ----------------------------------------

_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # zipfile's structCentralDir
_FIELDS = {"flag_bits": 5, "crc": 9, "compress_size": 10, "file_size": 11, "header_offset": 18}


def _central_records(data: bytes):
    end = data.rfind(b"PK\x05\x06")
    size, offset = struct.unpack("<LL", data[end + 12 : end + 20])
    pos = offset
    while pos < offset + size:
        record = list(_CENTRAL.unpack(data[pos : pos + _CENTRAL.size]))
        name_end = pos + _CENTRAL.size + record[12]
        name = data[pos + _CENTRAL.size : name_end].decode("utf-8")
        yield pos, name, record
        pos = name_end + record[13] + record[14]


def patch_central(data: bytes, name: str, **values: int) -> bytes:
    """``data`` with the central directory record of entry ``name`` changed (sizes,
    offset, crc): what a crafted zip declares."""
    out = bytearray(data)
    for pos, entry_name, record in _central_records(data):
        if entry_name == name:
            for key, value in values.items():
                record[_FIELDS[key]] = value
            out[pos : pos + _CENTRAL.size] = _CENTRAL.pack(*record)
            return bytes(out)
    raise KeyError(name)


def central_record(data: bytes, name: str) -> dict[str, int]:
    for _pos, entry_name, record in _central_records(data):
        if entry_name == name:
            return {key: record[index] for key, index in _FIELDS.items()}
    raise KeyError(name)
