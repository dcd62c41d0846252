"""Do export, import and upload of a migration file keep up with the plain tools?

On one generated administration of ``--documents`` documents (default 20,000) of
``--size-kb`` KiB each (default 50: about 1 GB of PDF-like, incompressible bytes, every
file distinct), measured in the same run:

- export: ``export_administrations(...).chunks`` written to a file, against
  ``zip -0 -r`` of the same files (the blob store's folder); bar: at most 1.5x.
- import processing: the dry run (``imports.dry_run``: ``read_package`` and
  ``planning.plan``), confirmation and ``process_imports()`` landing every document,
  into another premium office with a blob store of its own (so no file is "already
  there"), against ``unzip`` of the same file plus ``sha256sum`` over its files; bar: at
  most 2x.
- upload: the file through the tus endpoint (``POST /uploads/`` then ``PATCH`` chunks of
  8 MiB on one keep-alive connection with ``http.client``, logged in through the login
  form, CSRF token in ``X-CSRFToken``), against ``curl -T`` of the same file to a bare
  endpoint: a minimal WSGI app (``bench/_drain_wsgi.py``) served by the same gunicorn
  command with the same ``gunicorn.conf.py``; both on loopback, the app's on SQLite
  (``OVERDRACHT_ENV=production``). Bar: at least 0.5x the speed of the bare endpoint
  that *stores* the body (``/store``: written to a file in the same ``UPLOAD_ROOT`` and
  synced before answering), since an upload endpoint must keep what it accepts; the
  ratio against ``/drain`` (read and dropped) is printed beside it. On these machines
  the disk takes about 300 MB/s with a sync (``dd ... conv=fdatasync``) while loopback
  carries 600-1,500 MB/s, so against ``/drain`` the ratio measures the disk.
- memory: the resident size of this process sampled every 5 ms (``/proc/self/statm``;
  drivers and zipfile included, the page cache not), its peak above the size before the
  step; bar: at most 100 MB growth for export and for import.

Each measurement runs ``--rounds`` times (default 1), floor and real thing alternating,
and the best counts. Everything lives in a temporary folder (SQLite database, blob
stores, upload spool), removed afterwards; instance/ is never touched. Debian's
``zip``/``unzip`` are installed with apt-get when they are missing.

    PYTHONPATH=. .venv/bin/python bench/migration_file.py [--documents 20000] [--size-kb 50]
    PYTHONPATH=. .venv/bin/python bench/migration_file.py --quick   # 2,000 documents

``make bench`` runs the full size (about 2 minutes on 2 cores, seeding 1 GB included);
``--quick`` is for trying a change, its small file is dominated by fixed costs. At the
last full run (December 2026, 2 cores): export 1.24x, import 1.68x, upload 0.86x of the
storing floor (0.33x of the draining one), memory 25 and 52 MB. The exit code is 1
when a bar is missed, 0 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.admin_settings.domain import inbound_email  # noqa: E402
from app.admin_settings.models import (  # noqa: E402
    Administration,
    Document,
    DocumentKind,
    DocumentStatus,
    Package,
)
from app.extensions import db  # noqa: E402
from app.migration_files import imports, processing  # noqa: E402
from app.migration_files.export import export_administrations  # noqa: E402
from app.migration_files.models import Import, ImportState  # noqa: E402
from app.storage import blob_store  # noqa: E402
from app.web import unit_of_work  # noqa: E402
from bench._offices import PASSWORD, premium_office  # noqa: E402
from bench._shared import RssSampler, apt_install, free_port, gunicorn  # noqa: E402

EXPORT_LIMIT = 1.5  # at most this many times zip -0 -r
IMPORT_LIMIT = 2.0  # at most this many times unzip + sha256sum
UPLOAD_LIMIT = 0.5  # at least this fraction of curl's speed
MEMORY_LIMIT_MB = 100.0
CHUNK = 8 * 1024 * 1024  # tus PATCH size, as the browser client sends
MB = 1024 * 1024
AGENT = {"User-Agent": "bench-migration-file"}
BATCH = 5_000


# --- tools ------------------------------------------------------------------------------------


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def run(*command: str, **kwargs) -> None:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **kwargs)


# --- data -------------------------------------------------------------------------------------


@dataclass
class Setup:
    noord_user_id: int
    administration_id: int
    zuid_user_id: int


def pdf_like(index: int, size: int) -> bytes:
    """``size`` bytes that start like a PDF and do not compress (distinct per index)."""
    head = b"%%PDF-1.4\n%% bench document %d\n" % index
    return head + os.urandom(size - len(head) - 6) + b"\n%%EOF"


def seed(app, documents: int, size: int) -> Setup:
    """Noord with one administration of ``documents`` documents (blobs in its store),
    Zuid without any; both premium with an Exact Online connection."""
    with app.app_context():
        db.create_all()
        with unit_of_work():
            noord, noord_user, noord_link = premium_office(
                "Kantoor Noord",
                "BENCHNOORD",
                "super@noord.example",
                "Sanne Noord",
                Package.EXACT_ONLINE,
                "Exact Online",
            )
            _zuid, zuid_user, _link = premium_office(
                "Kantoor Zuid",
                "BENCHZUID",
                "super@zuid.example",
                "Eva Zuid",
                Package.EXACT_ONLINE,
                "Exact Online",
            )
            administration = Administration(
                environment_id=noord.id,
                connection_id=noord_link.id,
                name="Bakkerij De Korrel B.V.",
                code="1001",
                contact_email="administratie@korrel.example",
                inbound_email=inbound_email("BENCHNOORD", "1001", app.config["MAIL_DOMAIN"]),
            )
            db.session.add(administration)
            db.session.flush()
            setup = Setup(noord_user.id, administration.id, zuid_user.id)
            store = blob_store()
            now = datetime.now(UTC)
            rows: list[dict] = []
            for i in range(documents):
                data = pdf_like(i, size)
                day = date(2022, 1, 3) + timedelta(days=i % 1400)
                decided = i % 10 != 0
                rows.append(
                    {
                        "environment_id": noord.id,
                        "administration_id": administration.id,
                        "blob_key": store.put_bytes(data),
                        "size": len(data),
                        "content_type": "application/pdf",
                        "filename": f"factuur-{i + 1:06d}.pdf",
                        "kind": DocumentKind.PURCHASE_INVOICE,
                        "counterparty": "Groothandel Van Dijk",
                        "amount": Decimal("121.00") + i % 500,
                        "currency": "EUR",
                        "invoice_date": day,
                        "status": DocumentStatus.APPROVED if decided else DocumentStatus.PENDING,
                        "booked_year": day.year if decided else None,
                        "booked_period": day.month if decided else None,
                        "uploaded_by_id": noord_user.id,
                        "uploaded_by_name": noord_user.name,
                        "decided_by_id": noord_user.id if decided else None,
                        "decided_by_name": noord_user.name if decided else None,
                        "decided_at": now if decided else None,
                        "created_at": now,
                    }
                )
                if len(rows) == BATCH:
                    db.session.execute(insert(Document), rows)
                    rows.clear()
            if rows:
                db.session.execute(insert(Document), rows)
    return setup


# --- export -----------------------------------------------------------------------------------


def export_to(app, setup: Setup, path: Path) -> RssSampler:
    with app.app_context():
        from app.auth.models import User

        with RssSampler() as memory:
            with unit_of_work():
                actor = db.session.get(User, setup.noord_user_id)
                export = export_administrations(actor, [setup.administration_id], origin="bench")
            with path.open("wb") as out:
                for chunk in export.chunks:
                    out.write(chunk)
    return memory


def zip_floor(blob_root: Path, path: Path) -> None:
    path.unlink(missing_ok=True)
    run("zip", "-0", "-r", "-q", str(path), ".", cwd=blob_root)


# --- import -----------------------------------------------------------------------------------


def import_file(app, setup: Setup, path: Path) -> tuple[float, RssSampler, int]:
    """Store the file (not timed), then dry run, confirm and process it: the seconds
    that took, its memory and how many documents landed."""
    with app.app_context():
        from app.auth.models import User

        with path.open("rb") as fh:
            key = blob_store().put(fh)
        started = time.perf_counter()
        with RssSampler() as memory:
            with unit_of_work():
                actor = db.session.get(User, setup.zuid_user_id)
                imp = imports.create_import(
                    actor,
                    blob_key=key,
                    size=path.stat().st_size,
                    file_name=path.name,
                    import_type="combined",
                    default_status="pending",
                    origin="bench",
                )
                imports.dry_run(imp)
                if imp.state is not ImportState.AWAITING_CONFIRMATION:
                    raise SystemExit(f"the dry run refused the file: {imp.report}")
                import_id = imp.id
            with unit_of_work():
                actor = db.session.get(User, setup.zuid_user_id)
                imports.confirm(actor, import_id, conflicts=None, origin="bench")
            if processing.process_imports() != 1:
                raise SystemExit("process_imports() did not complete the import")
        seconds = time.perf_counter() - started
        done = db.session.get(Import, import_id)
        if done.state is not ImportState.COMPLETED:
            raise SystemExit(f"import ended {done.state}")
        return seconds, memory, done.documents_total


def forget_import(app, setup: Setup, store_root: Path) -> None:
    """Undo an import (rows and stored files), so the next round lands everything again."""
    with app.app_context(), unit_of_work():
        from app.auth.models import User

        zuid = db.session.get(User, setup.zuid_user_id).environment_id
        for table in reversed(db.metadata.sorted_tables):
            if "environment_id" in table.c and table.name not in ("users", "connections"):
                db.session.execute(table.delete().where(table.c.environment_id == zuid))
    shutil.rmtree(store_root, ignore_errors=True)


def unzip_floor(path: Path, into: Path) -> None:
    shutil.rmtree(into, ignore_errors=True)
    run("unzip", "-q", "-o", str(path), "-d", str(into))
    files = subprocess.run(
        ["find", str(into), "-type", "f", "-print0"], check=True, capture_output=True
    ).stdout
    run("xargs", "-0", "sha256sum", input=files)


# --- upload -----------------------------------------------------------------------------------


def server_env(url: str, tmp: Path, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GUNICORN_", "MAIL_")) and k not in ("BIND", "PORT")
    }
    env.update(
        OVERDRACHT_ENV="production",
        SECRET_KEY="bench secret key, not a secret",
        DATABASE_URL=url,
        RATELIMIT_STORAGE_URI="memory://",
        BLOB_STORE="local",
        BLOB_ROOT=str(tmp / "server-blobs"),
        UPLOAD_ROOT=str(tmp / "server-uploads"),
        PROGRESS_STORE="file",
        PROGRESS_ROOT=str(tmp / "progress"),
        BIND=f"127.0.0.1:{port}",
        PYTHONPATH=str(ROOT),
    )
    return env


def request(
    conn: http.client.HTTPConnection, method: str, path: str, body=None, headers=None
) -> tuple[int, dict[str, str], str]:
    conn.request(method, path, body=body, headers={**AGENT, **(headers or {})})
    response = conn.getresponse()
    text = response.read().decode("utf-8", "replace")
    return response.status, {k.lower(): v for k, v in response.getheaders()}, text


def wait_until_up(proc: subprocess.Popen, port: int, path: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn stopped ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                if request(conn, "GET", path)[0] < 500:
                    return
            finally:
                conn.close()
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer:\n{log.read_text()[-3000:]}")


def _cookie(headers: dict[str, str], name: str) -> str | None:
    # http.client joins repeated Set-Cookie headers with ", "; the session one is enough.
    match = re.search(rf"(?:^|, ){name}=([^;]+)", headers.get("set-cookie", ""))
    return f"{name}={match.group(1)}" if match else None


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    if not match:
        raise SystemExit("no CSRF token on the page")
    return match.group(1)


def log_in(conn: http.client.HTTPConnection, email: str) -> tuple[str, str]:
    """The session cookie and a CSRF token of a logged-in superuser."""
    _status, headers, page = request(conn, "GET", "/login")
    session = _cookie(headers, "session")
    form = urlencode({"csrf_token": _csrf(page), "email": email, "password": PASSWORD})
    status, headers, _ = request(
        conn,
        "POST",
        "/login",
        form,
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": session},
    )
    if status != 302:
        raise SystemExit(f"login failed with HTTP {status}")
    session = _cookie(headers, "session") or session
    status, headers, page = request(
        conn, "GET", "/settings/migrations/imports/upload", headers={"Cookie": session}
    )
    if status != 200:
        status, headers, page = request(
            conn, "GET", "/settings/administrations", headers={"Cookie": session}
        )
    return _cookie(headers, "session") or session, _csrf(page)


def tus_upload(port: int, path: Path, email: str) -> float:
    """Seconds from the creating POST to the last PATCH's answer (login not counted)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        session, csrf = log_in(conn, email)
        headers = {"Cookie": session, "X-CSRFToken": csrf, "Tus-Resumable": "1.0.0"}
        length = path.stat().st_size
        started = time.perf_counter()
        status, answer, text = request(
            conn,
            "POST",
            "/uploads/",
            b"",
            {**headers, "Upload-Length": str(length), "Upload-Metadata": "filename YmVuY2guemlw"},
        )
        if status != 201:
            raise SystemExit(f"tus creation: HTTP {status} {text[:200]}")
        location = answer["location"]
        offset = 0
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                status, answer, text = request(
                    conn,
                    "PATCH",
                    location,
                    chunk,
                    {
                        **headers,
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                    },
                )
                if status != 204:
                    raise SystemExit(f"tus PATCH at {offset}: HTTP {status} {text[:200]}")
                offset = int(answer["upload-offset"])
        seconds = time.perf_counter() - started
        if offset != length:
            raise SystemExit(f"tus upload ended at {offset} of {length} bytes")
        return seconds
    finally:
        conn.close()


def curl_floor(port: int, path: Path, endpoint: str = "/drain") -> float:
    started = time.perf_counter()
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-H",
            "Expect:",
            "-H",
            "Content-Type: application/octet-stream",
            "-T",
            str(path),
            f"http://127.0.0.1:{port}{endpoint}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    seconds = time.perf_counter() - started
    if out != "204":
        raise SystemExit(f"curl to the bare endpoint: HTTP {out}")
    return seconds


# --- main -------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--size-kb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2,000 documents")
    args = parser.parse_args(argv)
    if args.quick:
        args.documents = 2_000
    apt_install("zip", "unzip")
    size = args.size_kb * 1024

    with tempfile.TemporaryDirectory(prefix="bench-migration-file-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'bench.sqlite'}"
        export_app = create_app(
            "testing",
            SQLALCHEMY_DATABASE_URI=url,
            BLOB_ROOT=str(tmp / "blobs"),
            PROGRESS_ROOT=str(tmp / "progress"),
            UPLOAD_ROOT=str(tmp / "uploads"),
        )
        import_app = create_app(
            "testing",
            SQLALCHEMY_DATABASE_URI=url,
            BLOB_ROOT=str(tmp / "import-blobs"),
            PROGRESS_ROOT=str(tmp / "progress"),
            UPLOAD_ROOT=str(tmp / "uploads"),
        )
        print(
            f"== {args.documents:,} documents of {args.size_kb} KiB "
            f"({args.documents * size / 1e9:.2f} GB), SQLite =="
        )
        started = time.perf_counter()
        setup = seed(export_app, args.documents, size)
        print(f"  seeded in {time.perf_counter() - started:.1f} s", flush=True)

        exported = tmp / "export.zip"
        floor_zip = tmp / "floor.zip"
        export_s, zip_s, export_mb = [], [], 0.0
        for _ in range(args.rounds):
            zip_s.append(timed(lambda: zip_floor(tmp / "blobs", floor_zip)))
            started = time.perf_counter()
            memory = export_to(export_app, setup, exported)
            export_s.append(time.perf_counter() - started)
            export_mb = max(export_mb, memory.growth_mb)
        floor_zip.unlink(missing_ok=True)
        file_mb = exported.stat().st_size / MB
        print(f"  export: {min(export_s):.2f} s ({file_mb:,.0f} MB file), ", end="")
        print(f"zip -0 -r: {min(zip_s):.2f} s", flush=True)

        import_s, unzip_s, import_mb, landed = [], [], 0.0, 0
        for _ in range(args.rounds):
            unzip_s.append(timed(lambda: unzip_floor(exported, tmp / "unzipped")))
            shutil.rmtree(tmp / "unzipped", ignore_errors=True)
            forget_import(import_app, setup, tmp / "import-blobs")
            seconds, memory, landed = import_file(import_app, setup, exported)
            import_s.append(seconds)
            import_mb = max(import_mb, memory.growth_mb)
        if landed != args.documents:
            raise SystemExit(f"the import landed {landed} of {args.documents} documents")
        print(f"  import: {min(import_s):.2f} s ({landed:,} documents landed), ", end="")
        print(f"unzip + sha256sum: {min(unzip_s):.2f} s", flush=True)

        port, bare_port = free_port(), free_port()
        log = tmp / "gunicorn.log"
        tus_s, curl_s = [], []
        with (
            gunicorn("wsgi:app", server_env(url, tmp, port), log) as app_proc,
            gunicorn("bench._drain_wsgi:app", server_env(url, tmp, bare_port), log) as bare,
        ):
            wait_until_up(app_proc, port, "/login", log)
            wait_until_up(bare, bare_port, "/drain", log)
            store_s = []
            for _ in range(args.rounds):
                curl_s.append(curl_floor(bare_port, exported))
                store_s.append(curl_floor(bare_port, exported, "/store"))
                tus_s.append(tus_upload(port, exported, "super@zuid.example"))
        tus_speed, curl_speed = file_mb / min(tus_s), file_mb / min(curl_s)
        store_speed = file_mb / min(store_s)
        print(
            f"  tus upload: {tus_speed:,.0f} MB/s, curl to a bare endpoint: {curl_speed:,.0f} "
            f"MB/s, to one that stores the body on disk: {store_speed:,.0f} MB/s"
        )

    export_ratio = min(export_s) / min(zip_s)
    import_ratio = min(import_s) / min(unzip_s)
    upload_ratio = tus_speed / store_speed
    drain_ratio = tus_speed / curl_speed
    checks = [
        (
            f"export / zip -0 -r            {export_ratio:5.2f}x  (bar <= {EXPORT_LIMIT}x)",
            export_ratio <= EXPORT_LIMIT,
        ),
        (
            f"import / unzip + sha256sum    {import_ratio:5.2f}x  (bar <= {IMPORT_LIMIT}x)",
            import_ratio <= IMPORT_LIMIT,
        ),
        (
            f"tus upload / curl, storing    {upload_ratio:5.2f}x  (bar >= {UPLOAD_LIMIT}x)",
            upload_ratio >= UPLOAD_LIMIT,
        ),
        (
            f"export memory growth      {export_mb:7.1f} MB  (bar <= {MEMORY_LIMIT_MB:.0f} MB)",
            export_mb <= MEMORY_LIMIT_MB,
        ),
        (
            f"import memory growth      {import_mb:7.1f} MB  (bar <= {MEMORY_LIMIT_MB:.0f} MB)",
            import_mb <= MEMORY_LIMIT_MB,
        ),
    ]
    print()
    for line, ok in checks:
        print(f"  {line}  {verdict(ok)}")
    # For the record: against a drain that stores nothing, the disk's own speed shows.
    print(f"  (tus upload / curl, draining  {drain_ratio:5.2f}x: no bar, nothing stored)")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
