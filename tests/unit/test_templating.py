"""app.templating.filesize: a byte count as people read it, in the page's language."""

from __future__ import annotations

import pytest
from flask_babel import force_locale

from app.templating import filesize

KB = 1024
MB = 1024 * KB
GB = 1024 * MB


@pytest.fixture
def locale(app):
    """Flask-Babel formats numbers for the current locale, which needs the app context."""

    def _use(language: str):
        return force_locale(language)

    with app.app_context():
        yield _use


@pytest.mark.parametrize(
    ("size", "dutch", "english"),
    [
        (None, "", ""),
        (0, "0 B", "0 B"),
        (1, "1 B", "1 B"),
        (1023, "1023 B", "1023 B"),
        (KB, "1 KB", "1 KB"),
        (1536, "1,5 KB", "1.5 KB"),
        (10 * KB + 102, "10,1 KB", "10.1 KB"),
        (MB, "1 MB", "1 MB"),
        (10 * MB, "10 MB", "10 MB"),
        (int(2.5 * GB), "2,5 GB", "2.5 GB"),
        (5 * 1024 * GB, "5.120 GB", "5,120 GB"),  # GB is the largest unit
    ],
)
def test_filesize(locale, size, dutch, english):
    with locale("nl"):
        assert filesize(size) == dutch
    with locale("en"):
        assert filesize(size) == english


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (MB - 1, "1 MB"),  # 1023,999 KB rounds to 1024 KB: shown as the next unit
        (GB - 1, "1 GB"),
        (MB - 100, "1.023,9 KB"),  # still below 1024 after rounding
        (1024 * GB - 1, "1.024 GB"),  # nothing above GB
    ],
)
def test_filesize_just_below_the_next_unit(locale, size, expected):
    with locale("nl"):
        assert filesize(size) == expected
