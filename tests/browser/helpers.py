"""What the browser tests share."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def screenshot_on_failure(page, tmp_path):
    """Keep a full-page screenshot in the test's tmp_path when the block fails."""
    try:
        yield
    except BaseException:
        path = tmp_path / "failure.png"
        with contextlib.suppress(Exception):
            page.screenshot(path=str(path), full_page=True)
            print(f"screenshot of the failing page: {path} (at {page.url})")
        raise
