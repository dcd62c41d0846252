"""How fast, and in how much memory, is one administration of 100,000 documents claimed?

Goal (per database, SQLite and PostgreSQL): the claim's copy takes at most 2x the floor,
and its peak memory grows by at most 100 MB whatever the number of documents.

The floor is the least any copy can cost: ONE ``INSERT … SELECT`` that copies the same
document rows (the columns ``app.transfers.copying`` writes) in one committed transaction.
The claim is the real thing: ``app.transfers.copying.copy_item`` on an item offered with
``offers.create_offer`` and accepted with ``claims.submit_claim``: its lease, the new
administration, provenance, the chunked document copy with progress reports, the item's
and the transfer's new states, audit events and mails, all committed. Every measurement
copies a fresh source administration of the same size, alternating floor and claim, and
the best of the rounds counts. (One model administration is bulk-inserted from Python
with realistic values, in batches of 10,000; each fresh source is copied from it inside
the database, which is quick. A claim of 10 documents first checks that claims work.) Memory is measured in separate claims, with ``tracemalloc``
(Python allocations) and a sampler of the process's resident size (the drivers' own
memory too), at two sizes: a peak that scales with the number of documents fails.

When a ratio is over the limit (``--profile``: always) every SQL statement of the claims
is timed, so the time can be placed.

    PYTHONPATH=. .venv/bin/python bench/claim.py [--n 100000] [--only sqlite|postgres]

PostgreSQL runs on a database of its own, ``bench_claim_<pid>`` (``--postgres URL`` or
``BENCH_DATABASE_URL`` to put it elsewhere), created and dropped here; when the server
cannot be reached, only SQLite runs. The exit code is 0 whatever the figures (this is a
report); only an error makes it fail.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import gc
import hashlib
import os
import re
import resource
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from flask import Flask
from sqlalchemy import create_engine, event, func, insert, literal, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from app import create_app
from app.admin_settings.domain import inbound_email
from app.admin_settings.models import (
    Administration,
    AdministrationState,
    Document,
    DocumentKind,
    DocumentStatus,
    Package,
)
from app.auth.models import User
from app.db import begin_write, utcnow
from app.extensions import db
from app.transfers import claims, offers
from app.transfers import copying as copy
from app.transfers.models import ItemState, TransferItem
from bench._offices import premium_office
from bench._shared import RssSampler

RATIO_LIMIT = 2.0
MEMORY_LIMIT_MB = 100.0
DEFAULT_N = 100_000
SMALL_N = 20_000
BATCH = 10_000
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_claim"
PROTECTED_DATABASES = {"test", "postgres", "template0", "template1"}
MB = 1024 * 1024

# The columns the claim's INSERT … SELECT writes, in its order.
COPIED_COLUMNS = [*copy.KEPT_COLUMNS, "environment_id", "administration_id", "source_document_id"]

COUNTERPARTIES = [
    "Bakkerij De Korrel B.V.",
    "Groothandel Van Dijk",
    "KPN B.V.",
    "Eneco Zakelijk",
    "Bouwmarkt Het Anker",
    "Drukkerij Noorderlicht",
    "Transportbedrijf Visser",
    "Shell Nederland Verkoop",
    "Albert Heijn 1234",
    "Belastingdienst",
]
KINDS = list(DocumentKind)
# A few distinct blobs, as content-addressed keys (the copy never touches the files).
BLOB_KEYS = [hashlib.sha256(f"bench blob {i}".encode()).hexdigest() for i in range(7)]


# --- databases --------------------------------------------------------------------------------


@dataclass
class Target:
    label: str
    url: str
    drop: Callable[[], None] = lambda: None


def sqlite_target(tmp: Path) -> Target:
    return Target("SQLite", f"sqlite:///{tmp / 'claim.sqlite'}")


def postgres_target(base_url: str) -> Target | None:
    """A fresh database ``bench_claim_<pid>`` (the URL's name and this process's id), so
    that two runs at once do not drop each other's; never one of the shared ones."""
    url = make_url(base_url)
    stem = url.database or "bench_claim"
    name = f"{stem}_{os.getpid()}"
    if stem in PROTECTED_DATABASES or not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"refusing to use database {name!r}; name a dedicated one")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        admin.dispose()
        print(f"\n== PostgreSQL ==\n  skipped: cannot reach {url.render_as_string()}: {error.orig}")
        return None

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return Target("PostgreSQL", url.set(database=name).render_as_string(hide_password=False), drop)


# --- seeding ----------------------------------------------------------------------------------


@dataclass
class Offices:
    """The offering office (Noord) and the receiving one (Zuid), both premium."""

    app: Flask
    source_environment_id: int
    source_user_id: int
    source_connection_id: int
    target_environment_id: int
    target_user_id: int
    target_connection_id: int
    office_code: str = "BENCHNOORD"
    target_office_code: str = "BENCHZUID"
    counter: int = 0

    def next_code(self) -> str:
        self.counter += 1
        return f"{self.counter:05d}"


# The copy counts its chunks with ``CursorResult.rowcount`` of an INSERT … SELECT, which
# SQLAlchemy keeps for INSERTs only with ``preserve_rowcount`` (psycopg's is -1 without).
# Should a small claim fail with the app as it is (as it did before copy.py set the
# option), the failure is reported as a bug and, unless ``--as-is``, the option is set on
# the engine by configuration (no code change) so the copy can still be timed.
ROWCOUNT_WORKAROUND = {"execution_options": {"preserve_rowcount": True}}


def make_app(url: str, tmp: Path, *, workaround: bool = False) -> Flask:
    overrides = {"SQLALCHEMY_ENGINE_OPTIONS": ROWCOUNT_WORKAROUND} if workaround else {}
    return create_app(
        "testing",
        SQLALCHEMY_DATABASE_URI=url,
        BLOB_ROOT=str(tmp / "blobs"),
        PROGRESS_ROOT=str(tmp / "progress"),
        **overrides,
    )


def build(app: Flask) -> Offices:
    """Empty tables, then Noord and Zuid: premium, a superuser and an Exact Online
    connection each."""
    with app.app_context():
        db.drop_all()
        db.create_all()
        source, source_user, source_connection = premium_office(
            "Kantoor Noord",
            "BENCHNOORD",
            "super@noord.example",
            "Sanne Noord",
            Package.EXACT_ONLINE,
            "Exact Online",
        )
        target, target_user, target_connection = premium_office(
            "Kantoor Zuid",
            "BENCHZUID",
            "super@zuid.example",
            "Sem Zuid",
            Package.EXACT_ONLINE,
            "Exact Online",
        )
        db.session.commit()
        offices = Offices(
            app,
            source.id,
            source_user.id,
            source_connection.id,
            target.id,
            target_user.id,
            target_connection.id,
        )
        db.session.remove()
    return offices


def _document_rows(offices: Offices, administration_id: int, start: int, stop: int):
    """Documents ``start``..``stop`` of one administration, decided (so it may move)."""
    base = datetime(2019, 1, 1, tzinfo=utcnow().tzinfo)
    for i in range(start, stop):
        year = 2019 + i % 7
        period = 1 + i % 12
        created = base + timedelta(minutes=37 * i)
        status = DocumentStatus.REJECTED if i % 23 == 0 else DocumentStatus.APPROVED
        yield {
            "environment_id": offices.source_environment_id,
            "administration_id": administration_id,
            "blob_key": BLOB_KEYS[i % len(BLOB_KEYS)],
            "size": 40_000 + (i * 7919) % 900_000,
            "content_type": "application/pdf" if i % 9 else "image/jpeg",
            "filename": f"factuur-{year}-{i:07d}.pdf",
            "kind": KINDS[i % len(KINDS)],
            "counterparty": COUNTERPARTIES[i % len(COUNTERPARTIES)],
            "amount": Decimal(f"{(i * 31) % 250_000}.{i % 100:02d}"),
            "currency": "EUR",
            "invoice_date": date(year, period, 1 + i % 28),
            "status": status,
            "booked_year": year,
            "booked_period": period,
            "uploaded_by_id": offices.source_user_id,
            "uploaded_by_name": "Sanne Noord",
            "decided_by_id": offices.source_user_id,
            "decided_by_name": "J. de Vries",
            "decided_at": created + timedelta(days=2),
            "created_at": created,
        }


def _copy_rows(rows: list[dict]) -> None:
    """PostgreSQL: COPY the rows (psycopg's executemany sends them one by one)."""
    from psycopg import sql as pg_sql

    columns = list(rows[0])
    copy_sql = pg_sql.SQL("COPY documents ({}) FROM STDIN").format(
        pg_sql.SQL(", ").join(map(pg_sql.Identifier, columns))
    )
    raw = db.session.connection().connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(copy_sql) as pg_copy:
        for row in rows:
            pg_copy.write_row([v.value if isinstance(v, enum.Enum) else v for v in row.values()])


def new_administration(offices: Offices, *, environment: str = "source") -> int:
    """A clean, active administration without documents; its id (flushed)."""
    code = offices.next_code()
    if environment == "source":
        env_id, conn_id, office = (
            offices.source_environment_id,
            offices.source_connection_id,
            offices.office_code,
        )
    else:
        env_id, conn_id, office = (
            offices.target_environment_id,
            offices.target_connection_id,
            offices.target_office_code,
        )
    administration = Administration(
        environment_id=env_id,
        connection_id=conn_id,
        name=f"Bakkerij De Korrel {code}",
        code=code,
        contact_email=f"klant{code}@client.example",
        inbound_email=inbound_email(office, code, offices.app.config["MAIL_DOMAIN"]),
        state=AdministrationState.ACTIVE,
    )
    db.session.add(administration)
    db.session.flush()
    return administration.id


def _without_foreign_key_checks() -> None:
    """PostgreSQL: skip the foreign-key triggers for the rest of this seeding transaction
    (the rows are valid by construction). They cost more than the rows themselves, and
    seeding is not what is measured; SQLite's checks are cheap and stay on."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL session_replication_role = replica"))


def seed_template(offices: Offices, n: int) -> int:
    """The model administration: ``n`` documents bulk-inserted from Python in batches."""
    administration_id = new_administration(offices)
    _without_foreign_key_checks()
    table = Document.__table__
    for start in range(0, n, BATCH):
        rows = list(_document_rows(offices, administration_id, start, min(n, start + BATCH)))
        if db.engine.dialect.name == "postgresql":
            _copy_rows(rows)
        else:
            db.session.execute(insert(table), rows)
    db.session.commit()
    return administration_id


def seed_administration(offices: Offices, template_id: int, n: int) -> int:
    """A fresh source administration: the template's first ``n`` documents, copied in the
    database (fast), with ids of their own."""
    administration_id = new_administration(offices)
    _without_foreign_key_checks()
    table = Document.__table__
    names = [c.name for c in table.columns if c.name not in ("id", "source_document_id")]
    # The id of the template's n-th document: copy ids up to it.
    last = db.session.scalar(
        select(table.c.id)
        .where(table.c.administration_id == template_id)
        .order_by(table.c.id)
        .offset(n - 1)
        .limit(1)
    )
    db.session.execute(
        insert(table).from_select(
            names,
            select(
                *[
                    literal(administration_id) if c == "administration_id" else table.c[c]
                    for c in names
                ]
            )
            .where(table.c.administration_id == template_id, table.c.id <= last)
            .order_by(table.c.id),
        )
    )
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        # Statistics as autovacuum would soon have them, for the floor and the claim alike.
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE documents"))
            conn.commit()
    return administration_id


def count_documents(administration_id: int) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Document)
        .where(Document.administration_id == administration_id)
    )


# --- measuring --------------------------------------------------------------------------------


@contextlib.contextmanager
def sql_timer(engine: Engine) -> Iterator[list[tuple[float, float, str]]]:
    """Every statement and COMMIT on ``engine`` inside the block: (start, end, text)."""
    timeline: list[tuple[float, float, str]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(conn, cursor, statement, parameters, context, executemany):
        timeline.append((conn.info["bench_started"].pop(), time.perf_counter(), statement))

    def commit(conn):
        now = time.perf_counter()
        timeline.append((now, now, "COMMIT"))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "commit", commit)
    try:
        yield timeline
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
        event.remove(engine, "commit", commit)


@dataclass
class ClaimRun:
    n: int
    seconds: float
    started: float = 0.0
    ended: float = 0.0
    statements: list[tuple[float, float, str]] = field(default_factory=list)
    traced_peak: int | None = None  # bytes, tracemalloc
    rss_growth: int | None = None  # bytes, sampled resident size
    maxrss_growth: int = 0  # bytes, getrusage high-water mark


def floor(offices: Offices, source_id: int, n: int) -> float:
    """ONE INSERT … SELECT of the source's document rows into a new administration."""
    table = Document.__table__
    target_id = new_administration(offices, environment="target")
    db.session.commit()
    columns = [table.c[name] for name in copy.KEPT_COLUMNS]
    # preserve_rowcount: else SQLAlchemy drops an INSERT's row count (-1 with psycopg).
    statement = (
        insert(table)
        .from_select(
            COPIED_COLUMNS,
            select(
                *columns,
                literal(offices.target_environment_id),
                literal(target_id),
                table.c.id,
            ).where(table.c.administration_id == source_id),
        )
        .execution_options(preserve_rowcount=True)
    )
    db.session.remove()
    gc.collect()
    started = time.perf_counter()
    begin_write(db.session)
    result = db.session.execute(statement)
    db.session.commit()
    seconds = time.perf_counter() - started
    if result.rowcount != n or count_documents(target_id) != n:
        raise RuntimeError(f"floor copied {result.rowcount} of {n} documents")
    db.session.remove()
    return seconds


def offer_and_claim(offices: Offices, source_id: int) -> int:
    """Offer one administration from Noord to Zuid's superuser and accept it: the item id."""
    source_user = db.session.get(User, offices.source_user_id)
    _transfer, code = offers.create_offer(
        source_user,
        administration_ids=[source_id],
        recipient_emails=["super@zuid.example"],
        checklist_confirmed=True,
        accept_terms=True,
        origin="bench",
    )
    db.session.commit()
    item_id = db.session.scalars(
        select(TransferItem.id).where(TransferItem.administration_id == source_id)
    ).one()
    target_user = db.session.get(User, offices.target_user_id)
    claims.submit_claim(
        target_user,
        code.lower().replace("-", " "),
        [claims.Decision(item_id, "accept", offices.target_connection_id)],
        accept_terms=True,
        origin="bench",
    )
    db.session.commit()
    db.session.remove()
    return item_id


def claim(offices: Offices, source_id: int, n: int, *, memory: bool = False) -> ClaimRun:
    """Time ``copy_item`` (as the worker runs it) on a freshly claimed administration."""
    item_id = offer_and_claim(offices, source_id)
    app = offices.app
    gc.collect()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    sampler = RssSampler() if memory else contextlib.nullcontext()
    with app.app_context(), sql_timer(db.engine) as statements, sampler:
        if memory:
            tracemalloc.start()
        started = time.perf_counter()
        outcome = copy.copy_item(item_id)
        ended = time.perf_counter()
        traced_peak = tracemalloc.get_traced_memory()[1] if memory else None
        if memory:
            tracemalloc.stop()
        db.session.remove()
    maxrss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - maxrss_before
    item = db.session.get(TransferItem, item_id)
    if outcome is not copy.CopyOutcome.COPIED or item.state is not ItemState.MIGRATED:
        raise RuntimeError(f"claim of item {item_id}: {outcome}, {item.state}: {item.last_error}")
    copied = count_documents(item.target_administration_id)
    if copied != n or item.documents_copied != n:
        raise RuntimeError(f"claim copied {copied} of {n} documents")
    db.session.remove()
    return ClaimRun(
        n,
        ended - started,
        started,
        ended,
        list(statements),
        traced_peak,
        sampler.growth if memory else None,
        maxrss_growth,
    )


# --- reporting --------------------------------------------------------------------------------


def describe(statement: str) -> str:
    flat = " ".join(statement.split())
    if flat == "COMMIT":
        return "COMMIT (the time after it is the commit)"
    if flat.startswith("INSERT INTO documents"):
        return "INSERT INTO documents … SELECT (one chunk)"
    if "FROM documents" in flat and "ORDER BY documents.id" in flat:
        return "SELECT documents.id … ORDER BY id (chunk boundaries)"
    return flat if len(flat) <= 80 else flat[:79] + "…"


def profile(run: ClaimRun, floor_seconds: float) -> None:
    """Where the claim's time went, per kind of statement: its execution, and the time
    after it until the next one (fetching streamed rows and Python; after a COMMIT
    marker, the commit itself)."""
    executing: dict[str, float] = defaultdict(float)
    after: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    timeline = sorted(run.statements)
    ends = [start for start, _end, _s in timeline[1:]] + [run.ended]
    for (start, end, statement), following in zip(timeline, ends, strict=True):
        label = describe(statement)
        executing[label] += end - start
        after[label] += following - end
        calls[label] += 1
    before = timeline[0][0] - run.started if timeline else 0.0
    print(f"    where the best claim's time went ({len(timeline)} statements):")
    print("      execute  then (fetch, Python, commit)")
    ranked = sorted(executing, key=lambda k: executing[k] + after[k], reverse=True)
    for label in ranked[:8]:
        print(f"      {executing[label]:7.3f}  {after[label]:7.3f} s  {calls[label]:>3}x  {label}")
    print(f"      {before:7.3f} s before the first statement")
    print(f"      {run.seconds:7.3f} s in all (floor {floor_seconds:.3f} s)")


def mb(value: int | None) -> str:
    return "   n/a" if value is None else f"{value / MB:6.1f}"


def smoke_test(offices: Offices, template_id: int) -> str | None:
    """Claim a small administration with the app as it is: None, or why it failed."""
    with offices.app.app_context():
        source_id = seed_administration(offices, template_id, 10)
        item_id = offer_and_claim(offices, source_id)
        with offices.app.app_context():
            outcome = copy.copy_item(item_id)
            db.session.remove()
        item = db.session.get(TransferItem, item_id)
        problem = None
        if outcome is not copy.CopyOutcome.COPIED:
            problem = f"copy_item → {outcome.value}: {item.last_error}"
        db.session.remove()
    return problem


def run_backend(target: Target, args, tmp: Path) -> bool:
    print(f"\n== {target.label} ==")
    started = time.perf_counter()
    app = make_app(target.url, tmp / target.label.lower())
    offices = build(app)
    n, small = args.n, max(1, min(SMALL_N, args.n // 5))
    with app.app_context():
        t0 = time.perf_counter()
        template_id = seed_template(offices, n)
        seeding = time.perf_counter() - t0
        db.session.remove()
    problem = smoke_test(offices, template_id)
    if problem:
        print(f"  BUG: a claim of 10 documents fails with the app as it is: {problem}")
        if args.as_is:
            with app.app_context():
                db.engine.dispose()
            print(f"  {target.label}: FAIL (not measured: --as-is)")
            return False
        print(
            "  measuring with SQLALCHEMY_ENGINE_OPTIONS = "
            f"{ROWCOUNT_WORKAROUND} (the fix, set by configuration)"
        )
        with app.app_context():
            db.engine.dispose()
        offices.app = app = make_app(target.url, tmp / target.label.lower(), workaround=True)
        if smoke_test(offices, template_id):
            raise RuntimeError("the claim fails even with the workaround")

    floors: list[float] = []
    runs: list[ClaimRun] = []
    try:
        with app.app_context():
            for round_ in range(args.rounds):
                # floor, claim; then claim, floor: drift of the machine hits both alike.
                for kind in ("floor", "claim") if round_ % 2 == 0 else ("claim", "floor"):
                    t0 = time.perf_counter()
                    source_id = seed_administration(offices, template_id, n)
                    seeding += time.perf_counter() - t0
                    if kind == "floor":
                        floors.append(floor(offices, source_id, n))
                    else:
                        runs.append(claim(offices, source_id, n))
            memory = {}
            for size in (small, n):
                t0 = time.perf_counter()
                source_id = seed_administration(offices, template_id, size)
                seeding += time.perf_counter() - t0
                memory[size] = claim(offices, source_id, size, memory=True)
            db.session.remove()
    finally:
        with app.app_context():
            db.engine.dispose()

    best_floor = min(floors)
    best = min(runs, key=lambda r: r.seconds)
    ratio = best.seconds / best_floor
    ratio_ok = ratio <= RATIO_LIMIT
    print(
        f"  N = {n:,} documents; best of {args.rounds} rounds (floor and claim alternating, "
        f"each on a fresh administration); seeding took {seeding:.1f} s"
    )
    print(
        f"    floor  (one INSERT … SELECT)  {best_floor:7.3f} s  {n / best_floor:>10,.0f} docs/s"
        f"   all: {', '.join(f'{s:.3f}' for s in floors)}"
    )
    print(
        f"    claim  (copying.copy_item)    {best.seconds:7.3f} s  {n / best.seconds:>10,.0f} docs/s"
        f"   all: {', '.join(f'{r.seconds:.3f}' for r in runs)}"
    )
    print(
        f"    ratio claim/floor  {ratio:5.2f}x   (limit {RATIO_LIMIT:.1f}x)  "
        f"{'PASS' if ratio_ok else 'FAIL'}"
    )
    print("    peak memory of a claim (MB): tracemalloc / sampled RSS growth / ru_maxrss growth")
    mem_ok = True
    for size, run in memory.items():
        within = max(run.traced_peak, run.rss_growth) <= MEMORY_LIMIT_MB * MB
        mem_ok &= within
        print(
            f"      N = {size:>7,}: {mb(run.traced_peak)} / {mb(run.rss_growth)} / "
            f"{mb(run.maxrss_growth)}   ({run.seconds:.2f} s under tracemalloc)"
        )
    low, high = memory[small], memory[n]
    flat = high.traced_peak <= 2 * low.traced_peak + 2 * MB and (
        high.rss_growth <= 2 * low.rss_growth + 8 * MB
    )
    mem_ok &= flat
    print(
        f"    memory: peak ≤ {MEMORY_LIMIT_MB:.0f} MB at both sizes and flat from N={small:,} "
        f"to N={n:,} (≤ 2x + slack): {'PASS' if mem_ok else 'FAIL'}"
    )
    if args.profile or not ratio_ok:
        profile(best, best_floor)
    ok = ratio_ok and mem_ok and not problem
    suffix = " (the claim fails as the app is: see BUG above)" if problem else ""
    print(
        f"  {target.label}: {'PASS' if ok else 'FAIL'}{suffix}  "
        f"({time.perf_counter() - started:.0f} s)"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="documents per administration")
    parser.add_argument("--only", choices=("sqlite", "postgres"), help="one database only")
    parser.add_argument("--rounds", type=int, default=2, help="floor/claim pairs to time")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_POSTGRES),
        metavar="URL",
        help=f"the PostgreSQL database to create and drop (default {DEFAULT_POSTGRES})",
    )
    parser.add_argument("--profile", action="store_true", help="time the claim's SQL always")
    parser.add_argument(
        "--as-is",
        action="store_true",
        help="no configuration workaround: a database where claims fail is not measured",
    )
    args = parser.parse_args(argv)
    if args.n < 5 or args.rounds < 1:
        parser.error("--n must be at least 5 and --rounds positive")

    started = time.perf_counter()
    results: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="bench-claim-") as tmp:
        if args.only in (None, "sqlite"):
            target = sqlite_target(Path(tmp))
            results[target.label] = run_backend(target, args, Path(tmp))
        if args.only in (None, "postgres"):
            target = postgres_target(args.postgres)
            if target is not None:
                try:
                    results[target.label] = run_backend(target, args, Path(tmp))
                finally:
                    target.drop()
    verdict = ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in results.items())
    print(f"\nverdict: {verdict or 'nothing run'}  ({time.perf_counter() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
