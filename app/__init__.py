"""Overdracht: move client administrations between accounting offices."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, g, request, session
from flask_login import current_user

from config import Config, get_config

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: str | type[Config] | None = None, **overrides) -> Flask:
    """Build the application from ``config`` (a settings class or its name).

    ``overrides`` set individual settings after the class, e.g. a test database.
    """
    config_cls = get_config(config) if config is None or isinstance(config, str) else config
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
    )
    app.config.from_object(config_cls)
    config_cls.finalize(app.config)
    app.config.update(overrides)

    register_converters(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    register_template_helpers(app)
    register_security_headers(app)
    register_proxy_fix(app)
    return app


def register_security_headers(app: Flask) -> None:
    # HSTS only where the site is served over HTTPS: the production settings.
    hsts = app.config.get("PREFERRED_URL_SCHEME") == "https" and not (app.debug or app.testing)

    @app.after_request
    def security_headers(response):
        if hsts:
            response.headers.setdefault(
                "Strict-Transport-Security", "max-age=31536000; includeSubDomains"
            )
        # Tenant data is never kept by a browser or proxy cache: every answer to a
        # logged-in user or to the API, whatever it is, except static files.
        if request.endpoint != "static" and (
            request.path.startswith("/api/") or "_user_id" in session or g.get("api_user")
        ):
            response.headers["Cache-Control"] = "no-store"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; "
            "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        )
        return response


def register_extensions(app: Flask) -> None:
    from app.auth.models import User
    from app.extensions import api, babel, csrf, db, limiter, login_manager, mail, migrate
    from app.migration_files import models as _imports  # noqa: F401  (tables in metadata)
    from app.outbox import register_secrets
    from app.progress import init_progress
    from app.storage import init_storage
    from app.uploads import models as _uploads  # noqa: F401

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(
        app,
        locale_selector=select_locale,
        default_translation_directories=str(ROOT / "translations"),
    )
    api.init_app(app)
    mail.init_app(app)
    from app.transfers.notifications import secrets_for

    register_secrets(app, "transfer", secrets_for)
    init_storage(app)
    init_progress(app)

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"
    from flask_babel import lazy_gettext

    login_manager.login_message = lazy_gettext("Log in to see this page.")
    login_manager.login_message_category = "info"

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        # A session whose version is no longer the user's (logged out, signed out
        # everywhere) names nobody, on every worker alike.
        from app.auth.domain import SESSION_VERSION_KEY
        from app.auth.services import user_for_session

        return user_for_session(user_id, session.get(SESSION_VERSION_KEY))


def select_locale() -> str:
    """The language of this request's pages, messages and dates.

    API requests (``/api/…``): the client's ``Accept-Language`` (its best match among
    ``LANGUAGES``) wins over the token user's saved language, so one script gets one
    language whoever's token it holds, and every message of one answer (its message
    and its field errors) is in it; without a usable header, the user's saved language,
    else Dutch. Pages: the user's saved language, else the one chosen this session,
    else Dutch (a browser's ``Accept-Language`` is not looked at: Dutch is the default).
    """
    from flask import current_app

    languages = current_app.config["LANGUAGES"]
    if request and request.path.startswith("/api/"):
        named = [value for value in request.accept_languages.values() if value != "*"]
        asked = request.accept_languages.best_match(languages) if named else None
        if asked:
            return asked
    user = getattr(g, "api_user", None) or (current_user if current_user else None)
    if user is not None and getattr(user, "is_authenticated", False) and user.language in languages:
        return user.language
    if request and session.get("language") in languages:
        return session["language"]
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def register_blueprints(app: Flask) -> None:
    from app.admin_settings.api import blp as administrations_api
    from app.admin_settings.views import bp as admin_settings_bp
    from app.api_docs import bp as api_docs_bp
    from app.auth.api import blp as auth_api
    from app.auth.views import bp as auth_bp
    from app.extensions import api, csrf
    from app.migration_files.export_api import blp as migration_export_api
    from app.migration_files.export_views import bp as migration_export_bp
    from app.migration_files.import_api import blp as imports_api
    from app.migration_files.import_views import bp as imports_bp
    from app.support.api import blp as support_api
    from app.support.views import bp as support_bp
    from app.transfers.api import blp as transfers_api
    from app.transfers.api import claims_blp as claims_api
    from app.transfers.api import preflight_blp as preflight_api
    from app.transfers.views import bp as transfers_bp
    from app.uploads.views import bp as uploads_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(api_docs_bp)
    app.register_blueprint(admin_settings_bp)
    app.register_blueprint(transfers_bp)
    app.register_blueprint(support_bp)
    app.register_blueprint(uploads_bp)
    app.register_blueprint(migration_export_bp)
    app.register_blueprint(imports_bp)
    if app.config["DEV_MAILBOX"]:
        from app.dev import bp as dev_bp

        app.register_blueprint(dev_bp)

    # The API authenticates by bearer token only (never the session cookie), so it
    # cannot be driven cross-site and needs no CSRF token.
    for blp in (
        auth_api,
        administrations_api,
        preflight_api,
        transfers_api,
        claims_api,
        support_api,
        migration_export_api,
        imports_api,
    ):
        csrf.exempt(blp)
        api.register_blueprint(blp, url_prefix="/api/v1" + (blp.url_prefix or ""))


def register_converters(app: Flask) -> None:
    """Bounded ids in paths, the error shape of the OpenAPI document, and the input
    checks every request passes (see ``app.converters``); before the extensions and
    blueprints, which read them."""
    from app.converters import register

    register(app)


def register_errorhandlers(app: Flask) -> None:
    from app.errors import register_errorhandlers as register

    register(app)


def register_commands(app: Flask) -> None:
    from app.cli import register

    register(app)


def register_template_helpers(app: Flask) -> None:
    from app.auth.domain import Permission, has_permission
    from app.templating import register

    register(app)

    @app.context_processor
    def permissions():
        def can(permission: str) -> bool:
            return current_user.is_authenticated and has_permission(
                current_user.role, Permission(permission)
            )

        return {"can": can}


def register_proxy_fix(app: Flask) -> None:
    """Take the client address (and scheme and host) from ``PROXY_FIX_HOPS`` trusted
    proxies in front of the app; with 0, X-Forwarded-* headers are never looked at.

    Each trusted proxy must append the address it saw to X-Forwarded-For and set (not
    pass on) X-Forwarded-Proto and X-Forwarded-Host; the nearest one's are taken.
    """
    hops = int(app.config.get("PROXY_FIX_HOPS") or 0)
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=1, x_host=1)
