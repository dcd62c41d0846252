"""Settings classes in config/: choosing one and completing it from the environment."""

from __future__ import annotations

import importlib.util
import stat

import pytest

import config
from config import (
    BASE_DIR,
    INSTANCE_DIR,
    DevelopmentConfig,
    ProductionConfig,
    TestingConfig,
    get_config,
)


def test_get_config_by_name():
    assert get_config("development") is DevelopmentConfig
    assert get_config("testing") is TestingConfig
    assert get_config("production") is ProductionConfig


def test_get_config_refuses_an_unknown_name():
    with pytest.raises(RuntimeError, match="'nope'") as excinfo:
        get_config("nope")
    for name in ("development", "production", "testing"):
        assert name in str(excinfo.value)


def test_get_config_defaults_to_overdracht_env_then_development(monkeypatch):
    monkeypatch.delenv("OVERDRACHT_ENV", raising=False)
    assert get_config() is DevelopmentConfig
    monkeypatch.setenv("OVERDRACHT_ENV", "production")
    assert get_config() is ProductionConfig
    monkeypatch.setenv("OVERDRACHT_ENV", "nope")
    with pytest.raises(RuntimeError):
        get_config()


# --- production -----------------------------------------------------------------------------


def test_production_refuses_to_start_without_secret_key_and_database_url(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(RuntimeError) as excinfo:
        ProductionConfig.finalize({})
    message = str(excinfo.value)
    assert "SECRET_KEY" in message
    assert "DATABASE_URL" in message


def test_production_names_only_what_is_missing(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://db.example/overdracht")
    with pytest.raises(RuntimeError) as excinfo:
        ProductionConfig.finalize({})
    assert "SECRET_KEY" in str(excinfo.value)
    assert "DATABASE_URL" not in str(excinfo.value)

    monkeypatch.setenv("SECRET_KEY", "s3cret")
    monkeypatch.delenv("DATABASE_URL")
    with pytest.raises(RuntimeError) as excinfo:
        ProductionConfig.finalize({})
    assert "DATABASE_URL" in str(excinfo.value)
    assert "SECRET_KEY" not in str(excinfo.value)


def test_production_treats_empty_variables_as_missing(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "")
    monkeypatch.setenv("DATABASE_URL", "")
    with pytest.raises(RuntimeError, match="SECRET_KEY.*DATABASE_URL"):
        ProductionConfig.finalize({})


def test_production_ignores_values_not_from_the_environment(monkeypatch):
    """A key left in the settings dict (e.g. a class default) is no substitute."""
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(RuntimeError):
        ProductionConfig.finalize({"SECRET_KEY": "dev", "SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_production_takes_both_from_the_environment(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://db.example/overdracht")
    settings: dict = {}
    ProductionConfig.finalize(settings)
    assert settings["SECRET_KEY"] == "s3cret"
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://db.example/overdracht"


def test_production_cookies_are_secure():
    assert ProductionConfig.SESSION_COOKIE_SECURE is True
    assert ProductionConfig.REMEMBER_COOKIE_SECURE is True
    assert ProductionConfig.SESSION_COOKIE_HTTPONLY is True


# --- development ----------------------------------------------------------------------------


def _fresh_config_module():
    """config/__init__.py executed again as a separate module (class attributes read the
    environment at import time); sys.modules and the app's classes stay untouched."""
    spec = importlib.util.spec_from_file_location(
        "config_fresh", BASE_DIR / "config" / "__init__.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_development_uses_sqlite_under_instance(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    fresh = _fresh_config_module()
    uri = fresh.DevelopmentConfig.SQLALCHEMY_DATABASE_URI
    assert uri == f"sqlite:///{INSTANCE_DIR / 'overdracht.sqlite'}"
    assert INSTANCE_DIR == BASE_DIR / "instance"
    assert fresh.DevelopmentConfig.DEBUG is True


def test_development_database_url_can_be_overridden(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://localhost/dev")
    fresh = _fresh_config_module()
    assert fresh.DevelopmentConfig.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://localhost/dev"


def test_development_secret_key_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "INSTANCE_DIR", tmp_path / "instance")
    monkeypatch.setenv("SECRET_KEY", "from-env")
    settings: dict = {}
    DevelopmentConfig.finalize(settings)
    assert settings["SECRET_KEY"] == "from-env"
    assert not (tmp_path / "instance").exists()


def test_development_secret_key_is_kept_private_in_instance(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "INSTANCE_DIR", tmp_path / "instance")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first: dict = {}
    second: dict = {}
    DevelopmentConfig.finalize(first)
    DevelopmentConfig.finalize(second)
    key_file = tmp_path / "instance" / "secret_key"
    assert first["SECRET_KEY"] == second["SECRET_KEY"] == key_file.read_text().strip()
    assert len(first["SECRET_KEY"]) == 64  # 32 random bytes as hex
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


# --- shared -----------------------------------------------------------------------------------


def test_requests_may_carry_a_little_more_than_one_upload():
    assert config.Config.MAX_CONTENT_LENGTH > config.Config.MAX_UPLOAD_BYTES


def test_testing_config_never_uses_a_real_secret_or_slow_hashes():
    assert TestingConfig.TESTING is True
    assert TestingConfig.SECRET_KEY == "testing-only-key"
    assert TestingConfig.RATELIMIT_ENABLED is False
