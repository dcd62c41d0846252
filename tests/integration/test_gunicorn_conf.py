"""gunicorn.conf.py computes its settings from the core count and the environment."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from unittest import mock

import pytest

CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"
VARIABLES = ("WEB_CONCURRENCY", "MAX_WORKERS", "GUNICORN_THREADS", "PORT", "BIND")


def load(env: dict[str, str], cores: int = 2):
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    spec = importlib.util.spec_from_file_location("gunicorn_conf_under_test", CONF)
    module = importlib.util.module_from_spec(spec)
    with (
        mock.patch.dict(os.environ, {**clean, **env}, clear=True),
        mock.patch("os.sched_getaffinity", return_value=set(range(cores)), create=True),
    ):
        spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("cores", "workers"), [(1, 3), (2, 5), (4, 9), (64, 12)])
def test_workers_follow_the_cores_with_a_cap(cores, workers):
    assert load({}, cores=cores).workers == workers


def test_web_concurrency_and_the_cap_override():
    assert load({"WEB_CONCURRENCY": "4"}, cores=16).workers == 4
    assert load({"MAX_WORKERS": "3"}, cores=16).workers == 3


def test_threaded_workers_timeouts_and_recycling():
    conf = load({})
    assert conf.worker_class == "gthread"
    assert conf.threads == 4
    assert load({"GUNICORN_THREADS": "8"}).threads == 8
    assert (conf.timeout, conf.graceful_timeout, conf.keepalive) == (30, 30, 5)
    assert conf.max_requests > 0 and 0 < conf.max_requests_jitter < conf.max_requests
    assert conf.accesslog == "-"
    assert conf.control_socket_disable is True


def test_bind():
    assert load({}).bind == "127.0.0.1:8000"
    assert load({"PORT": "9001"}).bind == "127.0.0.1:9001"
    assert load({"BIND": "0.0.0.0:80", "PORT": "9001"}).bind == "0.0.0.0:80"


def test_gunicorn_accepts_every_setting():
    from gunicorn.config import Config

    conf = load({})
    config = Config()
    names = [n for n in vars(conf) if n in config.settings]
    for name in names:
        config.set(name, getattr(conf, name))
    assert {"workers", "worker_class", "threads", "control_socket_disable"} <= set(names)
