"""What the benchmarks share: Debian tools installed on demand, a free port, gunicorn
with the repo's config, and a sampler of this process's peak memory (a module, not a
benchmark: ``make bench`` skips ``_*.py``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def apt_install(*tools: str) -> None:
    """Install the Debian packages of ``tools`` that are not on the PATH."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    print(f"  {' and '.join(missing)} missing: apt-get install -y {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    still = [tool for tool in missing if shutil.which(tool) is None]
    if still:
        raise SystemExit(f"{' and '.join(still)} could not be installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(app_spec: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """``gunicorn -c gunicorn.conf.py <app_spec>``, its output appended to ``log``;
    stopped (TERM, then KILL after 40 s) afterwards."""
    binary = Path(sys.executable).with_name("gunicorn")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(binary), "-c", str(ROOT / "gunicorn.conf.py"), app_spec],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssSampler:
    """The highest resident size seen while running, sampled every few milliseconds."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = self.start = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def growth(self) -> int:
        """Bytes above the size at the start."""
        return self.peak - self.start

    @property
    def growth_mb(self) -> float:
        return self.growth / MB
