"""An S3 server for tests and benchmarks: moto's standalone server in a process of its own.

Importable without pytest, so the multi-host test and the benchmarks can start one
server that several processes share::

    with S3Server() as url:           # or: server = S3Server(); url = server.start()
        ...                           # S3_ENDPOINT_URL=url, buckets made with create_bucket
                                      # server.stop()

Moto accepts any credentials; ``FAKE_AWS_ENV`` holds fake ones (and a region) for the
clients' environment, so boto3 never looks for real ones.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from uuid import uuid4

ROOT = Path(__file__).resolve().parents[1]
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port_url() -> str:
    """An HTTP URL on a local port that nothing listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


def use_fake_aws_credentials(environ=os.environ) -> None:
    """Fake AWS credentials and region in ``environ``; a real profile or credentials
    file is never read either."""
    environ.update(FAKE_AWS_ENV)
    environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    environ["AWS_CONFIG_FILE"] = os.devnull


class S3Server:
    """``python -m moto.server`` on 127.0.0.1 and a free port; ``start()`` returns its
    URL once it answers, ``stop()`` ends it (and only it)."""

    def __init__(self, *, port: int | None = None, python: str = sys.executable) -> None:
        self.port = port or free_port()
        self.python = python
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> str:
        if self.process is not None:
            return self.url
        env = {**os.environ, **FAKE_AWS_ENV}
        self.process = subprocess.Popen(
            [self.python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise RuntimeError(f"moto server exited with {code} before answering")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    return self.url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not answer on {self.url}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_s3_server(**kwargs) -> S3Server:
    """A started server; its ``url``, and ``stop()`` when done."""
    server = S3Server(**kwargs)
    server.start()
    return server


def fake_session():
    """A boto3 session with the fake credentials and region (clients from one session
    are quick to make)."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=FAKE_AWS_ENV["AWS_DEFAULT_REGION"],
    )


@functools.cache
def _admin_client(url: str):
    return fake_session().client("s3", endpoint_url=url)


def create_bucket(url: str, name: str | None = None) -> str:
    """A new, empty bucket on the server at ``url``; its name."""
    name = name or f"test-{uuid4().hex[:16]}"
    _admin_client(url).create_bucket(Bucket=name)
    return name


def delete_bucket(url: str, name: str) -> None:
    """Remove the bucket ``name`` and everything in it."""
    client = _admin_client(url)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        names = [{"Key": item["Key"]} for item in page.get("Contents", ())]
        if names:
            client.delete_objects(Bucket=name, Delete={"Objects": names, "Quiet": True})
    client.delete_bucket(Bucket=name)
