"""Does the migration overview stay fast when an office has offered and received a lot?

Goal: with 10,000 offered and 10,000 received transfers, the overview's first page and a
search take server time within 1.5x of the same with 100 of each, measured in the same run.

Two databases are seeded side by side (SQLite files in a temporary directory; with
``--postgres`` or ``BENCH_DATABASE_URL`` also two dedicated PostgreSQL databases,
``bench_overview_100`` and ``bench_overview_10000``, created and dropped here). Each holds
office A (a superuser and a connection) and office B (a superuser): N offers from A to B's
superuser and N from B to A's superuser, one administration each, created over the last
14 days. Requests go through Flask's test client in this process, so the time measured is
the server's: routing, queries and rendering, no network. Every measurement is repeated
(after warm-ups) alternately on both sizes and the median is reported.

When a ratio is over the limit, the SQL of one such request is timed per statement on both
sizes (``--profile`` does so always) so the slow query can be named.

    PYTHONPATH=. .venv/bin/python bench/overview.py [--postgres] [--repeat 15]

The exit code is 0 whatever the figures (this is a report); only an error makes it fail.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import gc
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.engine import Engine, make_url

from app import create_app
from app.admin_settings.models import (
    Administration,
    AdministrationState,
    Package,
)
from app.auth.services import create_api_token
from app.db import utcnow
from app.extensions import db
from app.transfers import codes, domain
from app.transfers.models import (
    ItemState,
    Transfer,
    TransferInbox,
    TransferItem,
    TransferRecipient,
    TransferState,
)
from bench._offices import PASSWORD, premium_office

LIMIT = 1.5
SMALL, LARGE = 100, 10_000
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_overview"
PROTECTED_DATABASES = {"test", "postgres", "template0", "template1"}

# Names like "Bakkerij De Korrel 00042": a word shared by 1 in 20 rows, a number by one.
TRADES = [
    "Bakkerij",
    "Slagerij",
    "Kapsalon",
    "Bouwbedrijf",
    "Installatiebedrijf",
    "Hoveniers",
    "Transport",
    "Adviesbureau",
    "Tandartspraktijk",
    "Fysiotherapie",
    "Restaurant",
    "Camping",
    "Drukkerij",
    "Garage",
    "Bloemisterij",
    "Webwinkel",
    "Architecten",
    "Schildersbedrijf",
    "Zorgboerderij",
    "Stichting",
]
NAMES = ["De Korrel", "Van Dijk", "Het Anker", "Jansen", "De Linde", "Noorderlicht", "Visser"]
SEARCH_NAME = "korrel 00042"  # one administration of each size, among thousands scanned


# --- databases --------------------------------------------------------------------------------


@dataclass
class Target:
    """One database of one size: its URL, and how to get rid of it afterwards."""

    url: str
    drop: Callable[[], None] = lambda: None


def sqlite_targets(tmp: Path, sizes: list[int]) -> dict[int, Target]:
    return {n: Target(f"sqlite:///{tmp / f'overview-{n}.sqlite'}") for n in sizes}


def postgres_targets(base_url: str, sizes: list[int]) -> dict[int, Target]:
    """A fresh database per size next to ``base_url``'s; never one of the shared ones."""
    url = make_url(base_url)
    stem = url.database or "bench_overview"
    if stem in PROTECTED_DATABASES:
        stem = "bench_overview"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    targets = {}
    for n in sizes:
        name = f"{stem}_{n}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name in PROTECTED_DATABASES:
            raise SystemExit(f"refusing to use database {name!r}")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))

        def drop(name: str = name) -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

        targets[n] = Target(url.set(database=name).render_as_string(hide_password=False), drop)
    return targets


# --- seeding ----------------------------------------------------------------------------------


@dataclass
class Seeded:
    n: int
    app: Flask
    login_email: str
    token: str
    searched_code: str  # the code of one offer A received
    seconds: float = 0.0


def _bulk(model, rows: list[dict]) -> None:
    """Insert ``rows`` fast: one executemany on SQLite, COPY on PostgreSQL (psycopg's
    executemany sends rows one by one). COPY skips SQLAlchemy, so the columns' Python
    defaults are filled in here."""
    if db.engine.dialect.name != "postgresql":
        db.session.execute(insert(model), rows)
        return
    from psycopg import sql as pg_sql

    table = model.__table__
    defaults = {
        c.name: c.default.arg if c.default.is_scalar else c.default.arg(None)
        for c in table.columns
        if c.default is not None and c.name not in rows[0]
    }
    columns = [*rows[0], *defaults]
    copy_sql = pg_sql.SQL("COPY {} ({}) FROM STDIN").format(
        pg_sql.Identifier(table.name), pg_sql.SQL(", ").join(map(pg_sql.Identifier, columns))
    )
    raw = db.session.connection().connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
        for row in rows:
            values = [*row.values(), *defaults.values()]
            copy.write_row([v.value if isinstance(v, enum.Enum) else v for v in values])


def seed(n: int, url: str, blob_root: str) -> Seeded:
    started = time.perf_counter()
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url, BLOB_ROOT=blob_root)
    with app.app_context():
        db.drop_all()
        db.create_all()
        env_a, super_a, conn_a = premium_office(
            "Kantoor A", "BENCHA", "super@a.example", "Super A", Package.EXACT_ONLINE, "Exact"
        )
        env_b, super_b, conn_b = premium_office(
            "Kantoor B", "BENCHB", "super@b.example", "Super B", Package.TWINFIELD, "Twinfield"
        )
        _row, token = create_api_token(super_a, "bench", origin="bench")

        now = utcnow()
        span = timedelta(days=14).total_seconds()
        ttl = timedelta(days=app.config["TRANSFER_CODE_TTL_DAYS"])
        terms = app.config["TRANSFER_TERMS_VERSION"]
        administrations, transfers, recipients, items, inbox = [], [], [], [], []
        searched_code = ""

        # i < n: offered by A to B; n <= i < 2n: offered by B to A (A's received offers).
        # Both spread over the last 14 days, interleaved; ids rise with created_at, as
        # they do when offers are made one after the other.
        def created_at(i: int) -> datetime:
            return now - timedelta(seconds=span * ((i * 7919) % (2 * n)) / (2 * n) + 60)

        for rank, i in enumerate(sorted(range(2 * n), key=created_at)):
            outgoing = i < n
            env, conn, sender, receiver, office = (
                (env_a, conn_a, super_a, super_b, "a")
                if outgoing
                else (env_b, conn_b, super_b, super_a, "b")
            )
            number = i % n
            code = f"{office.upper()}{number:05d}"
            name = f"{TRADES[number % len(TRADES)]} {NAMES[number % len(NAMES)]} {number:05d}"
            item_id = transfer_id = administration_id = rank + 1
            administrations.append(
                dict(
                    id=administration_id,
                    environment_id=env.id,
                    connection_id=conn.id,
                    name=name,
                    code=code,
                    contact_email=f"klant{number:05d}@client-{office}.example",
                    inbound_email=f"bench{office}.{code.lower()}@{app.config['MAIL_DOMAIN']}",
                    state=AdministrationState.OFFERED,
                    created_at=now - timedelta(days=400),
                )
            )
            created = created_at(i)
            if number < 3:
                # A few real codes (and their digests) to search for.
                nonce, normalised, digest = codes.new_code()
                if not outgoing and number == 0:
                    searched_code = domain.format_code(normalised)
            else:
                nonce, digest = secrets.token_hex(16), secrets.token_hex(32)
            transfers.append(
                dict(
                    id=transfer_id,
                    source_environment_id=env.id,
                    target_environment_id=None,
                    connection_id=conn.id,
                    offered_by_id=sender.id,
                    offered_by_name=sender.name,
                    offered_by_email=sender.email,
                    state=TransferState.OFFERED,
                    code_nonce=nonce,
                    code_digest=digest,
                    terms_version=terms,
                    created_at=created,
                    expires_at=created + ttl,
                )
            )
            recipients.append(dict(id=rank + 1, transfer_id=transfer_id, email=receiver.email))
            items.append(
                dict(
                    id=item_id,
                    transfer_id=transfer_id,
                    administration_id=administration_id,
                    state=ItemState.OFFERED,
                    administration_name=name,
                    administration_code=code,
                    contact_email=f"klant{number:05d}@client-{office}.example",
                    package=conn.package.value,
                    source_environment_id=env.id,
                    created_at=created,
                    search_text=domain.search_text(
                        name,
                        code,
                        f"klant{number:05d}@client-{office}.example",
                        conn.package.value,
                        conn.package.label,
                    ),
                    updated_at=created,
                )
            )
            # As create_offer lists it: in the receiving environment's inbox.
            inbox.append(
                dict(
                    id=rank + 1,
                    environment_id=receiver.environment_id,
                    transfer_item_id=item_id,
                    created_at=created,
                    search_text=items[-1]["search_text"],
                )
            )
        _bulk(Administration, administrations)
        _bulk(Transfer, transfers)
        _bulk(TransferRecipient, recipients)
        _bulk(TransferItem, items)
        _bulk(TransferInbox, inbox)
        if db.engine.dialect.name == "postgresql":
            for table in (
                "administrations",
                "transfers",
                "transfer_recipients",
                "transfer_items",
                "transfer_inbox",
            ):
                db.session.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            # Fresh statistics and visibility map, as autovacuum soon has them after bulk
            # inserts (index-only counts need the latter); SQLite gathers no statistics
            # unless told to, and the app never does, so it is left without.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        login_email = super_a.email
        db.session.remove()
    return Seeded(n, app, login_email, token, searched_code, time.perf_counter() - started)


# --- measuring --------------------------------------------------------------------------------


def logged_in_client(seeded: Seeded):
    client = seeded.app.test_client()
    page = client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    if not match:
        raise RuntimeError("no CSRF token on /login")
    response = client.post(
        "/login",
        data={"csrf_token": match.group(1), "email": seeded.login_email, "password": PASSWORD},
    )
    if response.status_code != 302:
        raise RuntimeError(f"login failed with {response.status_code}")
    return client


@dataclass
class Probe:
    """One request of the benchmark, and what its answer must contain."""

    label: str
    url: Callable[[Seeded], str]
    api: bool = False
    expect: Callable[[Seeded, object], None] = lambda seeded, response: None


def _expect_pages(seeded: Seeded, response) -> None:
    html = response.get_data(as_text=True)
    for table in ("outgoing", "incoming"):
        rows = re.search(rf'data-table="{table}".*?<tbody>(.*?)</tbody>', html, re.S)
        count = rows.group(1).count("<tr ") if rows else 0
        if count != min(25, seeded.n):
            raise AssertionError(f"{table}: {count} rows on the first page (N={seeded.n})")


def _expect_search(seeded: Seeded, response) -> None:
    html = response.get_data(as_text=True)
    for table in ("outgoing", "incoming"):
        rows = re.search(rf'data-table="{table}".*?<tbody>(.*?)</tbody>', html, re.S)
        count = rows.group(1).count("<tr ") if rows else 0
        if count != 1:
            raise AssertionError(f"search in {table}: {count} rows, 1 expected (N={seeded.n})")


def _expect_api(seeded: Seeded, response) -> None:
    body = response.get_json()
    if body["total"] != seeded.n or len(body["items"]) != min(25, seeded.n):
        raise AssertionError(f"API: total {body['total']}, {len(body['items'])} items")


PROBES = [
    Probe("overview, first page", lambda s: "/settings/migrations", expect=_expect_pages),
    Probe(
        "overview, search",
        lambda s: (
            f"/settings/migrations?q_out={SEARCH_NAME.replace(' ', '+')}&q_in={s.searched_code}"
        ),
        expect=_expect_search,
    ),
    Probe(
        "API incoming list",
        lambda s: "/api/v1/transfers?direction=incoming",
        api=True,
        expect=_expect_api,
    ),
]


@dataclass
class Runner:
    seeded: Seeded
    client: object = None
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        self.client = logged_in_client(self.seeded)

    def request(self, probe: Probe):
        headers = {"Authorization": f"Bearer {self.seeded.token}"} if probe.api else {}
        return self.client.get(probe.url(self.seeded), headers=headers)

    def measure(self, probe: Probe, *, keep: bool) -> None:
        started = time.perf_counter()
        response = self.request(probe)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{probe.label}: HTTP {response.status_code} (N={self.seeded.n})")
        if keep:
            self.times[probe.label].append(elapsed)
        else:
            probe.expect(self.seeded, response)


@contextlib.contextmanager
def sql_timer(engine: Engine) -> Iterator[list[tuple[float, str, object]]]:
    """Every statement run on ``engine`` inside the block: its time, text and parameters."""
    statements: list[tuple[float, str, object]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(conn, cursor, statement, parameters, context, executemany):
        started = conn.info["bench_started"].pop()
        statements.append((time.perf_counter() - started, statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def describe(statement: str) -> str:
    """A short name for one of ``list_transfers``' statements (or the SQL's start)."""
    flat = " ".join(statement.split())
    if "FROM transfer_items JOIN transfers" not in flat:
        return flat if len(flat) <= 90 else flat[:89] + "…"
    direction = "incoming" if "transfer_recipients" in flat else "outgoing"
    kind = "count(*) of all matches" if flat.startswith("SELECT count(*)") else "page of rows"
    search = ", search (LIKE)" if " LIKE " in flat else ""
    return f"list_transfers {direction}{search}: {kind}"


def explain(engine: Engine, statement: str, parameters) -> list[str]:
    """The plan of one captured statement, as the database tells it."""
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN ANALYZE "
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + statement, parameters).all()
    if engine.dialect.name == "sqlite":
        return [f"{'  ' * (row[1] > 0)}{row[-1]}" for row in rows]
    return [row[0] for row in rows]


def profile(
    runners: dict[int, Runner], probe: Probe, *, rounds: int = 3, plans: int = 1, shown: set[str]
) -> None:
    """Per statement, the median time of ``probe``'s SQL on each size, slowest first,
    and the plans of the slowest ones on the large database (each plan once: ``shown``)."""
    print(f"    SQL of “{probe.label}” (median of {rounds}, ms):")
    per_size: dict[int, dict[str, list[float]]] = {}
    parameters: dict[str, object] = {}
    totals: dict[int, list[float]] = {}
    engines: dict[int, Engine] = {}
    for n, runner in runners.items():
        with runner.seeded.app.app_context():
            engines[n] = db.engine
        per_statement: dict[str, list[float]] = defaultdict(list)
        totals[n] = []
        for _ in range(rounds):
            with sql_timer(engines[n]) as statements:
                started = time.perf_counter()
                runner.request(probe)
                totals[n].append(time.perf_counter() - started)
            seen: dict[str, float] = defaultdict(float)
            for seconds, statement, params in statements:
                seen[statement] += seconds
                parameters[statement] = params
            for statement, seconds in seen.items():
                per_statement[statement].append(seconds)
        per_size[n] = per_statement
    small, large = sorted(per_size)
    ranked = sorted(per_size[large].items(), key=lambda kv: statistics.median(kv[1]), reverse=True)
    sql_total = {n: sum(statistics.median(v) for v in per_size[n].values()) for n in per_size}
    for n in (small, large):
        print(
            f"      N={n:>6}: request {statistics.median(totals[n]) * 1000:8.2f}, "
            f"of which SQL {sql_total[n] * 1000:8.2f}"
        )
    print(f"      {'N=' + str(small):>8}   {'N=' + str(large):>8}")
    for statement, seconds in ranked[:5]:
        small_ms = statistics.median(per_size[small].get(statement, [0.0])) * 1000
        large_ms = statistics.median(seconds) * 1000
        print(f"      {small_ms:8.2f} → {large_ms:8.2f}  {describe(statement)}")
    for statement, _seconds in ranked[:plans]:
        if statement in shown:
            print(f"      (plan of “{describe(statement)}” shown above)")
            continue
        shown.add(statement)
        print(f"      plan of “{describe(statement)}” at N={large}:")
        for line in explain(engines[large], statement, parameters[statement]):
            print(f"        {line}")


def run_backend(label: str, targets: dict[int, Target], args, blob_root: str) -> bool:
    print(f"\n== {label} ==")
    seeded = {}
    for n, target in targets.items():
        seeded[n] = seed(n, target.url, blob_root)
        print(f"  seeded N={n:>6} ({n} offered + {n} received) in {seeded[n].seconds:5.1f} s")
    try:
        return _measure(label, seeded, args)
    finally:
        for s in seeded.values():  # let go of the pools before the databases are dropped
            with s.app.app_context():
                db.engine.dispose()


def _measure(label: str, seeded: dict[int, Seeded], args) -> bool:
    runners = {n: Runner(s) for n, s in seeded.items()}
    # Warm-ups (and a check that every answer is what it should be), then the rounds,
    # alternating sizes so any drift of the machine hits both alike.
    for _ in range(args.warmup):
        for probe in PROBES:
            for runner in runners.values():
                runner.measure(probe, keep=False)
    for _ in range(args.repeat):
        gc.collect()
        for probe in PROBES:
            for runner in runners.values():
                runner.measure(probe, keep=True)
    small, large = sorted(runners)
    print(
        f"  median server time over {args.repeat} runs (after {args.warmup} warm-ups), "
        f"limit {LIMIT:.1f}x:"
    )
    print(f"    {'':<24}{'N=' + str(small):>12}{'N=' + str(large):>12}{'ratio':>9}")
    all_ok = True
    failed = []
    for probe in PROBES:
        a = statistics.median(runners[small].times[probe.label])
        b = statistics.median(runners[large].times[probe.label])
        ratio = b / a
        ok = ratio <= LIMIT
        all_ok &= ok
        if not ok:
            failed.append(probe)
        print(
            f"    {probe.label:<24}{a * 1000:>9.2f} ms{b * 1000:>9.2f} ms{ratio:>8.2f}x  "
            f"{'PASS' if ok else 'FAIL'}"
        )
    shown: set[str] = set()
    for probe in PROBES if args.profile else failed:
        profile(runners, probe, plans=2 if args.plans else int(not args.profile), shown=shown)
    print(f"  {label}: {'PASS' if all_ok else 'FAIL'}")
    return all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="measured runs per request")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured runs first")
    parser.add_argument("--small", type=int, default=SMALL)
    parser.add_argument("--large", type=int, default=LARGE)
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=DEFAULT_POSTGRES,
        default=os.environ.get("BENCH_DATABASE_URL"),
        metavar="URL",
        help=f"also run on PostgreSQL (default URL {DEFAULT_POSTGRES}; "
        "or set BENCH_DATABASE_URL); databases <name>_<N> are created and dropped",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="only PostgreSQL")
    parser.add_argument("--profile", action="store_true", help="time the SQL of every request")
    parser.add_argument("--plans", action="store_true", help="plans of the 2 slowest statements")
    args = parser.parse_args(argv)
    if args.repeat < 1 or not 43 <= args.small < args.large:
        # The name searched for ends in 00042, so it must exist at both sizes.
        parser.error("--repeat must be positive and 43 <= --small < --large")

    started = time.perf_counter()
    sizes = [args.small, args.large]
    results: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="bench-overview-") as tmp:
        blob_root = str(Path(tmp) / "blobs")
        if not args.no_sqlite:
            results["SQLite"] = run_backend(
                "SQLite", sqlite_targets(Path(tmp), sizes), args, blob_root
            )
        if args.postgres:
            targets = postgres_targets(args.postgres, sizes)
            try:
                results["PostgreSQL"] = run_backend("PostgreSQL", targets, args, blob_root)
            finally:
                for target in targets.values():
                    target.drop()
    verdict = ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in results.items())
    print(f"\nverdict: {verdict or 'nothing run'}  ({time.perf_counter() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
