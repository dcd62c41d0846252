"""Gunicorn settings for production: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Every value can be overridden from the environment (names below) or on the command line.

- Workers: ``WEB_CONCURRENCY``, else 2 x cores + 1, at most ``MAX_WORKERS`` (default 12).
- Threaded workers (``gthread``, ``GUNICORN_THREADS`` threads each, default 4), so a few
  slow clients hold a thread each, not a whole worker. Behind nginx with
  ``proxy_buffering on`` (see the README) slow clients never reach gunicorn at all.
- Timeouts: a request gets ``GUNICORN_TIMEOUT`` (30 s), a worker that is told to stop gets
  30 s to finish its requests; idle keep-alive connections are closed after 5 s.
- Graceful recycling: each worker restarts after about ``GUNICORN_MAX_REQUESTS`` (1000)
  requests, with jitter so that they do not all restart at once.
- Access log to stdout, with the time taken, the client address and the request id.
- Bind: ``BIND``, else ``127.0.0.1:$PORT`` (``PORT`` default 8000).
"""

from __future__ import annotations

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on
    except (AttributeError, OSError):
        return multiprocessing.cpu_count()


def default_workers(cores: int, cap: int) -> int:
    return max(1, min(2 * cores + 1, cap))


bind = os.environ.get("BIND") or f"127.0.0.1:{_int('PORT', 8000)}"

workers = _int("WEB_CONCURRENCY", 0) or default_workers(_cores(), _int("MAX_WORKERS", 12))
worker_class = "gthread"
threads = _int("GUNICORN_THREADS", 4)

timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = 30
keepalive = 5

max_requests = _int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = max_requests // 10

# Two masters on one host (say two instances, or a test next to a running service)
# would otherwise fight over the one control socket in ~/.gunicorn.
control_socket_disable = True

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# client, user, time, request line, status, bytes, duration (ms), referer, agent.
access_log_format = (
    '%({x-forwarded-for}i)s %(h)s %(u)s %(t)s "%(r)s" %(s)s %(B)s %(M)sms "%(f)s" "%(a)s"'
)

# The application is loaded in each worker after the fork, so no database connection
# or thread of the master is shared with a worker.
preload_app = False
