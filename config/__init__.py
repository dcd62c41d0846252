"""Settings classes: development (SQLite in instance/), testing, production.

``create_app`` takes one of these classes (or its name). Every value can be
overridden by an environment variable of the same name where noted.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
INSTANCE_DIR = BASE_DIR / "instance"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


class Config:
    """Settings shared by every environment."""

    SECRET_KEY: str | None = None
    SQLALCHEMY_DATABASE_URI: str | None = None
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}

    # Sessions and CSRF.
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = False
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session

    # Internationalisation: Dutch by default, English on request.
    BABEL_DEFAULT_LOCALE = "nl"
    BABEL_DEFAULT_TIMEZONE = "Europe/Amsterdam"
    LANGUAGES = ("nl", "en")

    # Product settings.
    MAIL_DOMAIN = os.environ.get("MAIL_DOMAIN", "in.overdracht.example")
    MAX_UPLOAD_BYTES = _env_int("MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
    # Requests may carry a little more than one file (form fields, multipart framing).
    MAX_CONTENT_LENGTH = MAX_UPLOAD_BYTES + 64 * 1024
    BLOB_ROOT = os.environ.get("BLOB_ROOT", str(INSTANCE_DIR / "blobs"))
    PROGRESS_ROOT = os.environ.get("PROGRESS_ROOT", str(INSTANCE_DIR / "progress"))
    # Blob storage: "local" (a folder, BLOB_ROOT) or "s3" (any S3-compatible object store:
    # AWS S3, MinIO, Ceph's gateway). Credentials come from the standard AWS variables
    # (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION) or an instance role.
    BLOB_STORE = os.environ.get("BLOB_STORE", "local")
    S3_BUCKET = os.environ.get("S3_BUCKET")
    S3_ENDPOINT_URL = os.environ.get("S3_ENDPOINT_URL") or None  # empty: AWS itself
    S3_PRESIGN_SECONDS = _env_int("S3_PRESIGN_SECONDS", 60)  # lifetime of a download link
    # Resumable uploads (tus 1.0) of migration files: the bytes of an upload in progress
    # are spooled in UPLOAD_ROOT (a volume every host shares when several serve uploads).
    UPLOAD_ROOT = os.environ.get("UPLOAD_ROOT", str(INSTANCE_DIR / "uploads"))
    UPLOAD_MAX_BYTES = _env_int("UPLOAD_MAX_BYTES", 20 * 1024**3)
    UPLOAD_EXPIRY_HOURS = _env_int("UPLOAD_EXPIRY_HOURS", 24)
    # Progress of long work: "file" (PROGRESS_ROOT, one machine) or "redis" (REDIS_URL).
    PROGRESS_STORE = os.environ.get("PROGRESS_STORE", "file")
    REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    DOCUMENTS_PER_PAGE = 50
    PASSWORD_HASH_METHOD = "scrypt"
    DEMO_PASSWORD: str | None = None

    # Transfers.
    TRANSFER_CODE_TTL_DAYS = _env_int("TRANSFER_CODE_TTL_DAYS", 15)
    TRANSFER_REMINDER_DAYS = 3
    TRANSFER_MAX_EXTENSIONS = 2  # an open offer's expiry can be moved this often
    TRANSFER_RESEND_MINUTES = 60  # the code mail can be sent again this often
    TRANSFER_TERMS_VERSION = "2026-11"
    TRANSFERS_PER_PAGE = 25
    TRANSFER_FEE_PER_ADMINISTRATION = os.environ.get("TRANSFER_FEE_PER_ADMINISTRATION", "25.00")
    TRANSFER_FEE_CURRENCY = "EUR"
    # Documents per INSERT … SELECT; progress is told per chunk.
    COPY_CHUNK_DOCUMENTS = _env_int("COPY_CHUNK_DOCUMENTS", 5000)
    # A worker holds a copy with a lease that a heartbeat renews; when the worker dies or
    # hangs, the heartbeat stops and another worker takes the copy over once it lapses.
    COPY_LEASE_SECONDS = _env_int("COPY_LEASE_SECONDS", 90)
    COPY_HEARTBEAT_SECONDS = _env_int("COPY_HEARTBEAT_SECONDS", 20)
    COPY_MAX_ATTEMPTS = 5  # then the item is failed and waits for support
    # PostgreSQL: a copy's session idle inside its transaction this long (a stopped, hung
    # worker) is ended by the server, which releases its locks for the worker taking over.
    COPY_IDLE_TIMEOUT_SECONDS = _env_int("COPY_IDLE_TIMEOUT_SECONDS", 60)
    # PostgreSQL: the copy, revoke, retry and withdraw wait this long at most for a row
    # lock a (hung) copy holds; then "the copy is still running" / a back-off.
    COPY_LOCK_TIMEOUT_SECONDS = _env_int("COPY_LOCK_TIMEOUT_SECONDS", 5)
    SUPPORT_STUCK_AFTER_MINUTES = _env_int("SUPPORT_STUCK_AFTER_MINUTES", 30)
    # A copy still running this long after the claim "takes longer than usual": both
    # offices' pages say so and support is mailed, once.
    COPY_SLOW_AFTER_MINUTES = _env_int("COPY_SLOW_AFTER_MINUTES", 15)
    # Failed code entries per hour, per user and per environment (NIST SP 800-63B).
    # Failed transfer-code entries: per user, and per environment with a higher ceiling,
    # so one person or script cannot lock every colleague out.
    CLAIM_CODE_RATE_LIMIT = "100 per hour"
    CLAIM_CODE_ENVIRONMENT_RATE_LIMIT = "1000 per hour"
    # Where links in e-mails point; mails are also written outside a request.
    BASE_URL = os.environ.get("BASE_URL", "http://127.0.0.1:5000")

    # Mail: written to the outbox, sent after commit by the relay.
    MAIL_SERVER = os.environ.get("MAIL_SERVER")  # none: the local mailbox at /dev/mail
    MAIL_PORT = _env_int("MAIL_PORT", 25)
    MAIL_USE_TLS = os.environ.get("MAIL_USE_TLS") == "1"
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
    MAIL_DEFAULT_SENDER = os.environ.get(
        "MAIL_DEFAULT_SENDER", "Overdracht <noreply@overdracht.example>"
    )
    MAIL_SUPPRESS_SEND = False
    MAIL_TIMEOUT = _env_int("MAIL_TIMEOUT", 30)  # seconds to connect and per SMTP command
    MAIL_LEASE_SECONDS = 300  # a claimed message is retried after this if its relay died
    MAIL_MAX_ATTEMPTS = 8
    MAIL_RELAY_AFTER_REQUEST = True
    # Whether the configured SMTP server announces SMTPUTF8. Off (the safe default): an
    # address with a non-ASCII local part is refused at input, since it could not be sent.
    MAIL_SMTPUTF8 = os.environ.get("MAIL_SMTPUTF8") == "1"
    DEV_MAILBOX = False

    # Scheduler intervals (seconds).
    SCHEDULER_RELAY_SECONDS = 10
    SCHEDULER_SWEEP_SECONDS = 60
    SCHEDULER_COPY_SECONDS = _env_int("SCHEDULER_COPY_SECONDS", 2)

    # Login throttling (Flask-Limiter).
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_ENABLED = True
    RATELIMIT_HEADERS_ENABLED = True
    # Failed logins only: per client address, and per account (then a growing delay and
    # a mail to the account's owner).
    LOGIN_RATE_LIMIT = "20 per minute"
    LOGIN_ACCOUNT_RATE_LIMIT = "10 per 15 minutes"
    # How many proxies in front of the app may be trusted for the client address
    # (X-Forwarded-For etc.); 0: use the connection's own address, ignore the headers.
    PROXY_FIX_HOPS = _env_int("PROXY_FIX_HOPS", 0)
    # Input limits: nothing the API or a page accepts is unbounded.
    MAX_JSON_DEPTH = 32
    MAX_LIST_ITEMS = 100  # administrations per offer, decisions, ids per progress query
    MAX_RECIPIENTS = 10
    MAX_PAGE = 10_000
    # Migration files (imports): entries in the zip, declared uncompressed bytes in total,
    # and each entry's uncompressed/compressed ratio (entries under 64 KiB exempt).
    # Queued imports are processed after office hours (Europe/Amsterdam), or "always".
    IMPORT_WINDOW = os.environ.get("IMPORT_WINDOW", "18:00-07:00")
    IMPORT_TIMEZONE = os.environ.get("IMPORT_TIMEZONE", "Europe/Amsterdam")
    IMPORT_LEASE_SECONDS = _env_int("IMPORT_LEASE_SECONDS", 120)
    IMPORT_HEARTBEAT_SECONDS = _env_int("IMPORT_HEARTBEAT_SECONDS", 20)
    IMPORT_MAX_ATTEMPTS = 5  # then the import is failed and waits for a retry
    IMPORT_DOCUMENT_CHUNK = 1000  # document rows inserted per statement
    SCHEDULER_IMPORT_SECONDS = _env_int("SCHEDULER_IMPORT_SECONDS", 10)
    IMPORT_MAX_ENTRIES = _env_int("IMPORT_MAX_ENTRIES", 200_000)
    IMPORT_MAX_BYTES = _env_int("IMPORT_MAX_BYTES", 50 * 1024**3)
    IMPORT_MAX_RATIO = _env_int("IMPORT_MAX_RATIO", 100)

    # JSON API (flask-smorest).
    API_TITLE = "Overdracht API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"
    API_SPEC_OPTIONS = {
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
            }
        },
        "security": [{"bearerAuth": []}],
    }

    @classmethod
    def finalize(cls, config: dict) -> None:
        """Complete ``config`` (the app's) from the environment; raise when it cannot run."""


def _development_secret_key() -> str:
    """A random key kept in instance/ so sessions survive a restart of `make run`."""
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    key_file = INSTANCE_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


class DevelopmentConfig(Config):
    DEBUG = True
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'overdracht.sqlite'}"
    )
    DEMO_PASSWORD = "demo"
    DEV_MAILBOX = True
    IMPORT_WINDOW = os.environ.get("IMPORT_WINDOW", "always")  # the demo imports at once

    @classmethod
    def finalize(cls, config: dict) -> None:
        config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or _development_secret_key()


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing-only-key"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"  # fast hashes keep the suite quick
    DEMO_PASSWORD = "demo"
    RATELIMIT_ENABLED = False
    IMPORT_WINDOW = "always"
    MAIL_RELAY_AFTER_REQUEST = False  # tests relay explicitly
    MAIL_SERVER = None
    MAIL_TIMEOUT = 2


class ProductionConfig(Config):
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    PREFERRED_URL_SCHEME = "https"
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "redis://127.0.0.1:6379")

    @classmethod
    def finalize(cls, config: dict) -> None:
        config["SECRET_KEY"] = os.environ.get("SECRET_KEY")
        config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL")
        missing = [
            name
            for name, key in (
                ("SECRET_KEY", "SECRET_KEY"),
                ("DATABASE_URL", "SQLALCHEMY_DATABASE_URI"),
            )
            if not config.get(key)
        ]
        if missing:
            raise RuntimeError(
                "Production settings need these environment variables: " + ", ".join(missing)
            )


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def get_config(name: str | None = None) -> type[Config]:
    """The settings class for ``name`` (default: ``$OVERDRACHT_ENV`` or development)."""
    name = name or os.environ.get("OVERDRACHT_ENV", "development")
    try:
        return CONFIGS[name]
    except KeyError:
        raise RuntimeError(f"Unknown settings {name!r}; choose one of {sorted(CONFIGS)}") from None
