"""Real processes for reliability tests: start them with an environment, wait until they
serve (always with a deadline), stop them (SIGTERM, then SIGKILL), and keep their output
in log files whose tails a failing test prints.

Every process runs in a session of its own, so stopping it also stops what it forked
(gunicorn's worker, for one). Nothing here knows the application: the test says what to
run and what "ready" means.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]

# Variables of the test run that must not leak into a process started "as in production".
SCRUBBED = ("MAIL_SERVER", "FLASK_APP", "FLASK_DEBUG", "FLASK_ENV", "WERKZEUG_RUN_MAIN")


class Timeout(AssertionError):
    """A wait ran past its deadline."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    check: Callable[[], T], *, timeout: float, interval: float = 0.1, what: str = "condition"
) -> T:
    """Call ``check`` until it returns something truthy and return that; ``Timeout`` after
    ``timeout`` seconds. An exception from ``check`` counts as "not yet" until the deadline,
    then it is raised as the cause."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
        except Exception as error:  # noqa: BLE001 - not ready yet; kept for the message
            last_error, result = error, None
        if result:
            return result
        if time.monotonic() >= deadline:
            raise Timeout(f"{what}: not reached within {timeout:.0f} s") from last_error
        time.sleep(interval)


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def cookies(self) -> dict[str, str]:
        """Name → value of every Set-Cookie (attributes such as ``Secure`` ignored)."""
        jar = {}
        for line in self.headers.get_all("Set-Cookie") or []:
            name, _, rest = line.partition("=")
            jar[name.strip()] = rest.split(";", 1)[0]
        return jar


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10,
) -> Response:
    """One HTTP request, redirects not followed; the whole body read."""
    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname, parts.port, timeout=timeout)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        connection.request(method, target, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return Response(response.status, response.headers, response.read())
    finally:
        connection.close()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Process:
    """One started process; its stdout and stderr both go to ``log_path``."""

    name: str
    args: list[str]
    log_path: Path
    popen: subprocess.Popen
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def expect_alive(self) -> None:
        if not self.alive():
            raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")

    def wait_for_log(self, text: str, *, timeout: float) -> None:
        """Until ``text`` appears in the output; fails at once when the process exits."""

        def seen() -> bool:
            if text in self.log():
                return True
            self.expect_alive()
            return False

        wait_until(seen, timeout=timeout, what=f"{self.name} to log {text!r}")

    def wait_for_http(self, url: str, *, timeout: float, status: int = 200) -> None:
        """Until GET ``url`` answers ``status``; fails at once when the process exits."""

        def answers() -> bool:
            self.expect_alive()
            return request("GET", url, timeout=2).status == status

        wait_until(answers, timeout=timeout, interval=0.2, what=f"{self.name} to serve {url}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the process alone (not its session), as a crash would."""
        if self.alive():
            os.kill(self.pid, sig)
        if sig == signal.SIGKILL:
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM to its whole session, SIGKILL after ``timeout``; the exit code."""
        if self.alive():
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(timeout=10)
        # Whatever it forked and left behind goes too.
        self._signal_group(signal.SIGKILL)
        return self.popen.returncode

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


class Processes:
    """The processes of one test: ``start`` them, ``stop_all`` at the end (in reverse
    order), ``tails`` for the report of a failed test."""

    def __init__(self, log_dir: Path, base_env: Mapping[str, str] | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.base_env = dict(base_env or {})
        self.started: list[Process] = []

    def start(
        self,
        name: str,
        args: Iterable[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> Process:
        environment = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        environment.update(self.base_env)
        environment.update(env or {})
        environment.setdefault("PYTHONUNBUFFERED", "1")
        log_path = self.log_dir / f"{name}.log"
        args = list(args)
        with log_path.open("ab") as log_file:
            popen = subprocess.Popen(
                args,
                cwd=cwd,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, args, log_path, popen)
        self.started.append(process)
        return process

    def by_pid(self, pid: int) -> Process | None:
        return next((p for p in self.started if p.pid == pid), None)

    def stop_all(self, timeout: float = 10) -> None:
        for process in reversed(self.started):
            process.stop(timeout=timeout)

    def tails(self, lines: int = 40) -> str:
        return "\n".join(
            f"----- {p.name} (pid {p.pid}, "
            f"{'running' if p.alive() else f'exit {p.popen.returncode}'}) {p.log_path}\n"
            f"{p.tail(lines)}"
            for p in self.started
        )


@contextlib.contextmanager
def slow_copies(session, name: str, seconds_per_row: float):
    """PostgreSQL: every statement that inserts copied documents (``source_document_id``
    set) sleeps ``seconds_per_row`` per row, so a copy lasts long enough to be killed in
    the middle; seeded rows are not slowed. Dropped again afterwards."""
    from sqlalchemy import text

    session.execute(
        text(
            f"""
            CREATE OR REPLACE FUNCTION {name}() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_sleep(
                    (SELECT count(*) FROM copied WHERE source_document_id IS NOT NULL)
                    * {seconds_per_row}
                );
                RETURN NULL;
            END $$
            """
        )
    )
    session.execute(text(f"DROP TRIGGER IF EXISTS {name} ON documents"))
    session.execute(
        text(
            f"CREATE TRIGGER {name} AFTER INSERT ON documents "
            "REFERENCING NEW TABLE AS copied FOR EACH STATEMENT "
            f"EXECUTE FUNCTION {name}()"
        )
    )
    session.commit()
    try:
        yield
    finally:
        session.rollback()
        session.execute(text(f"DROP TRIGGER IF EXISTS {name} ON documents"))
        session.execute(text(f"DROP FUNCTION IF EXISTS {name}()"))
        session.commit()
