"""Two small fixtures for the integration tests; the rest comes from ``tests/conftest.py``."""

from __future__ import annotations

import pytest


@pytest.fixture
def new_client(app):
    """``new_client()``: another anonymous browser, with its own cookies."""
    return app.test_client


@pytest.fixture
def keep_shared_extensions():
    """Creating another app re-initialises the module-level extension objects that keep
    per-app state on themselves: the rate limiter (its ``enabled`` flag and storage) and
    the flask-smorest ``Api`` (its app and OpenAPI spec). Put them back afterwards, so
    the session's app keeps working as before."""
    from app.extensions import api, limiter

    saved = {obj: dict(vars(obj)) for obj in (limiter, api)}
    yield
    for obj, attributes in saved.items():
        vars(obj).clear()
        vars(obj).update(attributes)
