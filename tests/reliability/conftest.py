"""Reliability tests run real processes (gunicorn, the scheduler, an S3 server) against
the test database; see ``processes.py``. A test's fixtures can ask whether it failed
(``request.node.failed``) to print the processes' logs only then."""

from __future__ import annotations

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.failed = report.failed
    elif report.failed and not hasattr(item, "failed"):
        item.failed = True  # setup failed
    return report
