"""A live server for the session's app and a headless Chromium page per test.

The server runs the same ``app`` object as the rest of the suite in a daemon
thread, so it reads the rows the test commits (and the tables are emptied after
each test as usual). Chromium is Debian's ``/usr/bin/chromium`` (``make chromium``),
driven by Playwright's sync API; Playwright's own browser download is not used.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def live_server(app) -> Iterator[str]:
    """The base URL of ``app`` served on a free port of 127.0.0.1."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium for the session, closed even when a test fails."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing; install it with `make chromium`")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no loop running: the sync API may start its own
    else:
        pytest.fail("Playwright's sync API cannot run inside a running asyncio event loop")

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, live_server) -> Iterator[object]:
    """A fresh browser context (no cookies) with a page opened on the live server."""
    context = browser.new_context(base_url=live_server, locale="nl-NL")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
