"""Do the busy pages keep up with the cheapest one under load, served as in production?

Goal: gunicorn with the repo's ``gunicorn.conf.py`` on PostgreSQL, under wrk with 16
connections for 20 s per request, serves each of

- the migration overview page of a superuser with 10,000 offered and 10,000 received
  transfers (logged in once; the session cookie is sent by hand, as production marks it
  Secure),
- ``GET /api/v1/transfers`` with that superuser's bearer token,
- ``POST /api/v1/claims/preview`` with a right code (one of the offers received),

at no less than 0.4x the requests per second of the login page (``GET /login``, the
ceiling, measured in the same run against the same server), with 0 errors (connection
errors, timeouts and non-2xx/3xx answers alike).

The database ``bench_web_load`` (next to ``BENCH_DATABASE_URL``'s, or on the local
PostgreSQL) is created, seeded with bench/overview.py's data and dropped here. Debian's
``wrk`` is installed with apt-get when it is missing. ``--profile`` then runs each request
in this process under pyinstrument and counts its SQL statements, to see where the time
goes.

    PYTHONPATH=. .venv/bin/python bench/web_load.py [--seconds 20] [--connections 16]

The exit code is 1 when a bar is missed (ratio or errors), 0 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench._shared import apt_install, free_port, gunicorn

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_web_load"
DATABASE = "bench_web_load"
PROTECTED_DATABASES = {"test", "postgres", "template0", "template1"}
RATIO = 0.4
# Flask-Login's strong session protection ties a session to the client's User-Agent:
# every request of this bench (login, wrk, the profile) sends the same one.
AGENT = {"User-Agent": "bench-web-load"}
OFFERS = 10_000


# --- tools and database -----------------------------------------------------------------------


def ensure_wrk() -> str:
    """The path of wrk, installed from Debian's packages when it is missing."""
    apt_install("wrk")
    return shutil.which("wrk")


@contextlib.contextmanager
def database(base_url: str) -> Iterator[str]:
    """A fresh database ``bench_web_load`` next to ``base_url``'s, dropped afterwards."""
    url = make_url(base_url)
    name = DATABASE
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name in PROTECTED_DATABASES:
        raise SystemExit(f"refusing to use database {name!r}")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- the server -------------------------------------------------------------------------------


def server_env(url: str, tmp: Path, port: int, secret: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GUNICORN_", "MAIL_")) and k not in ("BIND", "PORT")
    }
    env.update(
        OVERDRACHT_ENV="production",
        SECRET_KEY=secret,
        DATABASE_URL=url,
        # The login page is the ceiling: its limiter (POSTs only) counts in memory.
        RATELIMIT_STORAGE_URI="memory://",
        BLOB_STORE="local",
        BLOB_ROOT=str(tmp / "blobs"),
        PROGRESS_STORE="file",
        PROGRESS_ROOT=str(tmp / "progress"),
        BIND=f"127.0.0.1:{port}",
        PYTHONPATH=str(ROOT),
    )
    return env


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: str

    def cookie(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == "set-cookie" and value.startswith(name + "="):
                return value.split(";", 1)[0]
        return None


def call(
    port: int, method: str, path: str, *, body: str | None = None, headers: dict | None = None
) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={**AGENT, **(headers or {})})
        response = conn.getresponse()
        return Answer(
            response.status, response.getheaders(), response.read().decode("utf-8", "replace")
        )
    finally:
        conn.close()


def wait_until_up(proc: subprocess.Popen, port: int, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn stopped ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            if call(port, "GET", "/login").status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer in {seconds:.0f} s:\n{log.read_text()[-3000:]}")


def log_in(port: int, email: str, password: str) -> str:
    """The Cookie header of a logged-in session (one POST /login)."""
    page = call(port, "GET", "/login")
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.body)
    session = page.cookie("session")
    if not match or not session:
        raise SystemExit("no CSRF token or session cookie on /login")
    form = urlencode({"csrf_token": match.group(1), "email": email, "password": password})
    answer = call(
        port,
        "POST",
        "/login",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": session},
    )
    if answer.status != 302:
        raise SystemExit(f"login failed with HTTP {answer.status}")
    return answer.cookie("session") or session


# --- the probes -------------------------------------------------------------------------------


@dataclass
class Probe:
    label: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    expect: str = ""  # a piece of text every answer must have

    def lua(self) -> str:
        """A wrk script: this request, and a summary as one JSON line at the end."""
        lines = [f"wrk.method = {json.dumps(self.method)}"]
        if self.body is not None:
            lines.append(f"wrk.body = {json.dumps(self.body)}")
        for key, value in {**AGENT, **self.headers}.items():
            lines.append(f"wrk.headers[{json.dumps(key)}] = {json.dumps(value)}")
        lines.append(
            """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""
        )
        return "\n".join(lines)


@dataclass
class Result:
    probe: Probe
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def probes(cookie: str, token: str, code: str) -> list[Probe]:
    bearer = {"Authorization": f"Bearer {token}"}
    return [
        Probe("login page (ceiling)", "GET", "/login", expect='name="csrf_token"'),
        Probe(
            "overview, 10,000 offers",
            "GET",
            "/settings/migrations",
            {"Cookie": cookie},
            expect='data-table="incoming"',
        ),
        Probe("GET /api/v1/transfers", "GET", "/api/v1/transfers", bearer, expect='"total"'),
        Probe(
            "POST /api/v1/claims/preview",
            "POST",
            "/api/v1/claims/preview",
            {**bearer, "Content-Type": "application/json"},
            json.dumps({"code": code}),
            expect='"items"',
        ),
    ]


def check(port: int, probe: Probe) -> None:
    answer = call(port, probe.method, probe.path, body=probe.body, headers=probe.headers)
    if answer.status != 200 or probe.expect not in answer.body:
        raise SystemExit(f"{probe.label}: HTTP {answer.status}, {answer.body[:300]!r}")


def run_wrk(wrk: str, port: int, probe: Probe, args, tmp: Path) -> Result:
    script = tmp / f"probe-{secrets.token_hex(4)}.lua"
    script.write_text(probe.lua())
    command = [
        wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{probe.path}",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^WRK-JSON (\{.*\})$", out, re.M)
    if not match:
        raise SystemExit(f"no summary from wrk:\n{out}")
    s = json.loads(match.group(1))
    errors = s["connect"] + s["read"] + s["write"] + s["status"] + s["timeout"]
    return Result(
        probe,
        s["requests"] / (s["duration_us"] / 1e6),
        s["p50_us"] / 1000,
        s["p99_us"] / 1000,
        errors,
        s["requests"],
    )


# --- profile (in this process) ----------------------------------------------------------------


def profile(env: dict[str, str], probe_list: list[Probe], rounds: int) -> None:
    """Each probe ``rounds`` times through Flask's test client in this process: SQL
    statements per request, and pyinstrument's call tree of all rounds."""
    from pyinstrument import Profiler
    from sqlalchemy import event

    from app import create_app
    from app.extensions import db

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        app = create_app("production")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    client = app.test_client(use_cookies=False)  # the probes carry their own cookie
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        for probe in probe_list:
            kwargs = dict(
                method=probe.method,
                headers={**AGENT, **probe.headers},
                data=probe.body,
                base_url="https://localhost",
            )
            for _ in range(5):
                client.open(probe.path, **kwargs)
            statements.clear()
            response = client.open(probe.path, **kwargs)
            if response.status_code != 200:
                raise SystemExit(f"profile {probe.label}: HTTP {response.status_code}")
            print(f"\n  -- {probe.label}: {len(statements)} SQL statements per request")
            for statement in statements:
                flat = " ".join(statement.split())
                print(f"       {flat[:150]}")
            profiler = Profiler(interval=0.0005)
            started = time.perf_counter()
            with profiler:
                for _ in range(rounds):
                    client.open(probe.path, **kwargs)
            per = (time.perf_counter() - started) / rounds * 1000
            print(f"     {per:.2f} ms per request in process ({rounds} rounds, profiled)")
            print(
                profiler.output_text(
                    unicode=True, color=False, show_all=False, time="percent_of_total"
                )
            )
    finally:
        event.remove(engine, "before_cursor_execute", count)
        with app.app_context():
            db.engine.dispose()


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="wrk's duration per request")
    parser.add_argument("--connections", type=int, default=16, help="wrk's open connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--offers", type=int, default=OFFERS, help="offers each way")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_POSTGRES,
        metavar="URL",
        help=f"the PostgreSQL server (default {DEFAULT_POSTGRES}, or BENCH_DATABASE_URL); "
        f"the database {DATABASE} is created and dropped on it",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, profile each request in this process (pyinstrument, SQL count)",
    )
    parser.add_argument("--profile-rounds", type=int, default=200)
    parser.add_argument("--only-profile", action="store_true", help="skip wrk; just profile")
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.connections < 1 or args.threads < 1:
        parser.error("--seconds, --connections and --threads must be positive")
    if args.threads > args.connections:
        args.threads = args.connections
    if args.offers < 43:
        parser.error("--offers must be at least 43 (the seed's searched names)")

    from app.extensions import db
    from bench._offices import PASSWORD
    from bench.overview import seed  # its data: offices A and B, N offers each way

    started = time.perf_counter()
    wrk = None if args.only_profile else ensure_wrk()
    with (
        tempfile.TemporaryDirectory(prefix="bench-web-load-") as tmp_name,
        database(args.postgres) as url,
    ):
        tmp = Path(tmp_name)
        seeded = seed(args.offers, url, str(tmp / "blobs"))
        with seeded.app.app_context():
            db.engine.dispose()
        print(f"  seeded {args.offers} offered + {args.offers} received in {seeded.seconds:.1f} s")
        port = free_port()
        # The seed's codes are keyed with its app's SECRET_KEY: the server needs the same.
        env = server_env(url, tmp, port, seeded.app.config["SECRET_KEY"])
        log = tmp / "gunicorn.log"
        with gunicorn("wsgi:app", env, log) as proc:
            wait_until_up(proc, port, log)
            workers = re.findall(r"Booting worker with pid", log.read_text())
            try:
                cookie = log_in(port, seeded.login_email, PASSWORD)
                probe_list = probes(cookie, seeded.token, seeded.searched_code)
                for probe in probe_list:
                    check(port, probe)
            except SystemExit:
                print(log.read_text()[-4000:], file=sys.stderr)
                raise
            results: list[Result] = []
            if wrk:
                print(
                    f"  gunicorn -c gunicorn.conf.py wsgi:app ({len(workers)} workers), "
                    f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, "
                    f"{os.cpu_count()} cores:",
                    flush=True,
                )
                for probe in probe_list:
                    results.append(run_wrk(wrk, port, probe, args, tmp))
                    r = results[-1]
                    print(f"    … {probe.label}: {r.rps:.0f} rps, {r.errors} errors", flush=True)
            if proc.poll() is not None:
                raise SystemExit(f"gunicorn stopped:\n{log.read_text()[-3000:]}")
        failed = report(results) if results else False
        if args.profile or args.only_profile:
            profile(env, probe_list, args.profile_rounds)
    print(f"\n  ({time.perf_counter() - started:.0f} s in all)")
    return 1 if failed else 0


def report(results: list[Result]) -> bool:
    """Print the table; True when a bar is missed."""
    ceiling = results[0].rps
    print(f"\n    {'':<30}{'rps':>8}{'p50':>10}{'p99':>10}{'errors':>8}{'ratio':>8}")
    failed = False
    for i, r in enumerate(results):
        ok = r.errors == 0 and (i == 0 or r.rps >= RATIO * ceiling)
        failed |= not ok
        verdict = "ceiling" if i == 0 and ok else ("PASS" if ok else "FAIL")
        print(
            f"    {r.probe.label:<30}{r.rps:>8.0f}{r.p50_ms:>8.1f}ms{r.p99_ms:>8.1f}ms"
            f"{r.errors:>8}{r.rps / ceiling:>7.2f}x  {verdict}"
        )
    print(f"  bar: each at least {RATIO}x the ceiling, 0 errors: {'FAIL' if failed else 'PASS'}")
    return failed


if __name__ == "__main__":
    sys.exit(main())
