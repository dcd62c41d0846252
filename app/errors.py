"""One error shape for the API, friendly pages for people.

JSON errors look like flask-smorest's own: ``{"code", "status", "message",
"errors"}``, where ``errors`` maps field names to lists of messages. A request
gets JSON when it is for the API or prefers JSON over HTML.
"""

from __future__ import annotations

import re

from flask import Flask, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge


def N_(message: str) -> str:
    """Mark a message for extraction; it is translated later, where it is shown."""
    return message


def N_plural(singular: str, plural: str) -> tuple[str, str]:  # noqa: N802
    """Mark a message with a plural for extraction; shown later with ``ngettext``, which
    picks the form by the count (``queue_mail`` takes such a pair as a subject)."""
    return singular, plural


class ServiceError(Exception):
    """What a service refuses, tied to the field it concerns; views and the API show it.

    ``message`` is an untranslated msgid; it is translated where it is shown, and
    ``params`` fill its placeholders after translation. Subclasses say which kind of
    refusal it is, and ``status`` is the one HTTP status pages and the API give it.
    A plain ``ServiceError`` is bad input (422).
    """

    status = 422

    def __init__(self, field: str = "", message: str = "", **params) -> None:
        super().__init__(message % params if params else message)
        self.field = field
        self.message = message
        self.params = params

    def translated(self) -> str:
        return _(self.message, **self.params) if self.message else ""

    @property
    def for_the_form(self) -> bool:
        """Shown beside the input (bad input, a state that changed); a 404 or 403 is
        never a form error: it passes to the error handler."""
        return self.status not in (403, 404)

    def by_field(self) -> dict[str, list[str]]:
        """Translated messages per field, as forms and the API show them."""
        return {self.field: [self.translated()]} if self.message else {}


# The typed errors services raise; each maps to one status in ``handle_service_error``.
Invalid = ServiceError  # bad input: 422 with field errors


class NotFoundError(ServiceError):
    """Nothing to see: missing, or another tenant's (the two are never told apart)."""

    status = 404


class NotAllowed(ServiceError):
    """The actor's role may not do this."""

    status = 403


class Conflict(ServiceError):
    """The object's state no longer allows this (withdrawn, already claimed, …)."""

    status = 409


class ValidationFailed(ServiceError):
    """Several pieces of bad input at once; each a ``ServiceError`` for its field."""

    def __init__(self, errors: list[ServiceError]) -> None:
        Exception.__init__(self, "; ".join(str(e) for e in errors))
        self.errors = errors
        self.field = errors[0].field if errors else ""
        self.message = errors[0].message if errors else ""
        self.params = errors[0].params if errors else {}

    def by_field(self) -> dict[str, list[str]]:
        fields: dict[str, list[str]] = {}
        for error in self.errors:
            fields.setdefault(error.field, []).append(error.translated())
        return fields


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def error_body(code: int, status: str, message: str, errors: dict | None = None) -> dict:
    body = {"code": code, "status": status, "message": message}
    if errors:
        body["errors"] = _as_fields(errors)
    return body


def _as_fields(errors) -> dict:
    """Errors are always an object of field → messages (nested fields: an object of
    their own, as marshmallow gives them); a bare list belongs to ``_schema``."""
    if isinstance(errors, dict):
        return errors
    return {"_schema": errors if isinstance(errors, list) else [str(errors)]}


# marshmallow's and webargs' own messages come out in English, already formatted; each is
# shown as one of ours, translated, with the values it names. ``{name}`` in the English
# text is a value, carried over to ``%(name)s`` in the msgid.
LIBRARY_MESSAGES = (
    ("Missing data for required field.", N_("Missing data for required field.")),
    ("Field may not be null.", N_("Field may not be null.")),
    ("Unknown field.", N_("Unknown field.")),
    ("Invalid input type.", N_("Invalid input type.")),
    ("Invalid value.", N_("Invalid value.")),
    ("Invalid input.", N_("Invalid input.")),
    ("Invalid type.", N_("Invalid type.")),
    ("Invalid JSON body.", N_("Invalid JSON body.")),
    ("Not a valid boolean.", N_("Not a valid boolean.")),
    ("Not a valid integer.", N_("Not a valid integer.")),
    ("Not a valid number.", N_("Not a valid number.")),
    ("Number too large.", N_("Number too large.")),
    (
        "Special numeric values (nan or infinity) are not permitted.",
        N_("Special numeric values (nan or infinity) are not permitted."),
    ),
    ("Not a valid string.", N_("Not a valid string.")),
    ("Not a valid utf-8 string.", N_("Not a valid utf-8 string.")),
    ("Not a valid list.", N_("Not a valid list.")),
    ("Not a valid tuple.", N_("Not a valid tuple.")),
    ("Not a valid mapping type.", N_("Not a valid mapping type.")),
    ("Not a valid date.", N_("Not a valid date.")),
    ("Not a valid datetime.", N_("Not a valid datetime.")),
    ("Not a valid time.", N_("Not a valid time.")),
    ("Not a valid email address.", N_("Not a valid email address.")),
    ("Not a valid URL.", N_("Not a valid URL.")),
    ("Not a valid UUID.", N_("Not a valid UUID.")),
    ("String does not match expected pattern.", N_("String does not match expected pattern.")),
    ("Must be one of: {choices}.", N_("Must be one of: %(choices)s.")),
    ("Shorter than minimum length {min}.", N_("Shorter than minimum length %(min)s.")),
    ("Longer than maximum length {max}.", N_("Longer than maximum length %(max)s.")),
    ("Length must be between {min} and {max}.", N_("Length must be between %(min)s and %(max)s.")),
    ("Length must be {equal}.", N_("Length must be %(equal)s.")),
    (
        "Must be greater than or equal to {min} and less than or equal to {max}.",
        N_("Must be greater than or equal to %(min)s and less than or equal to %(max)s."),
    ),
    (
        "Must be greater than or equal to {min} and less than {max}.",
        N_("Must be greater than or equal to %(min)s and less than %(max)s."),
    ),
    (
        "Must be greater than {min} and less than or equal to {max}.",
        N_("Must be greater than %(min)s and less than or equal to %(max)s."),
    ),
    (
        "Must be greater than {min} and less than {max}.",
        N_("Must be greater than %(min)s and less than %(max)s."),
    ),
    ("Must be greater than or equal to {min}.", N_("Must be greater than or equal to %(min)s.")),
    ("Must be greater than {min}.", N_("Must be greater than %(min)s.")),
    ("Must be less than or equal to {max}.", N_("Must be less than or equal to %(max)s.")),
    ("Must be less than {max}.", N_("Must be less than %(max)s.")),
)


def _library_pattern(english: str) -> re.Pattern:
    # A bound is one word ("1", "2147483647"); a list of choices may hold spaces.
    parts = re.split(r"\{(\w+)\}", english)
    regex = ""
    for i, part in enumerate(parts):
        if i % 2 == 0:
            regex += re.escape(part)
        else:
            regex += f"(?P<{part}>" + (".+?" if part == "choices" else r"\S+") + ")"
    return re.compile(f"^{regex}$")


_LIBRARY_PATTERNS = tuple((_library_pattern(e), msgid) for e, msgid in LIBRARY_MESSAGES)


def in_our_words(errors):
    """``errors`` (field → messages, nested as marshmallow gives them) with every message
    of marshmallow's or webargs' own in the current language; other messages (ours,
    already translated) are kept as they are."""
    if isinstance(errors, dict):
        return {key: in_our_words(value) for key, value in errors.items()}
    if isinstance(errors, list | tuple):
        return [in_our_words(value) for value in errors]
    if isinstance(errors, str):
        for pattern, msgid in _LIBRARY_PATTERNS:
            match = pattern.match(errors)
            if match:
                return _(msgid, **match.groupdict())
    return errors


def _rollback() -> None:
    """A failed statement leaves the session unusable; the error page reads the user
    (menu, language), so roll back before rendering anything."""
    from app.extensions import db

    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the connection itself may be gone
        db.session.close()


def _messages() -> dict[int, str]:
    return {
        400: _("The request could not be understood. Reload the page and try again."),
        401: _("Log in to continue."),
        403: _("You do not have permission to do this."),
        404: _("This page does not exist, or it is not yours to see."),
        405: _("This action is not possible here."),
        409: _("This is no longer possible in the current state."),
        413: _("The file is too large."),
        422: _("Some of the input is not valid."),
        429: _("Too many attempts. Wait a moment and try again."),
        503: _("The document store cannot be reached right now. Try again in a few minutes."),
        500: _("Something went wrong on our side. Try again later."),
    }


def _titles() -> dict[int, str]:
    return {
        400: _("Bad request"),
        401: _("Not logged in"),
        403: _("Not allowed"),
        404: _("Not found"),
        405: _("Not possible"),
        409: _("No longer possible"),
        413: _("Too large"),
        422: _("Invalid input"),
        429: _("Too many attempts"),
        500: _("Server error"),
        503: _("Temporarily unavailable"),
    }


def handle_http_exception(error: HTTPException):
    _rollback()
    code = error.code or 500
    message = _messages().get(code) or _("Something went wrong.")
    if isinstance(error, CSRFError):
        message = _(
            "The form has expired or was not sent from this site. Reload the page and try again."
        )
    if isinstance(error, RequestEntityTooLarge):
        message = _("The file is too large. The maximum is %(mb)s MB.", mb=_upload_limit_mb())
    headers = error.get_response().headers if code in (405, 429) else {}
    wait = _retry_after(headers) if code == 429 else None
    if wait is not None:
        message = _("Too many attempts. Try again in %(wait)s.", wait=_in_words(wait))
    if wants_json():
        errors = None
        data = getattr(error, "data", None)
        if isinstance(data, dict) and "messages" in data:  # webargs validation errors
            errors = data["messages"]
            if (
                isinstance(errors, dict)
                and len(errors) == 1
                and next(iter(errors)) in ("json", "query", "form")
                and isinstance(next(iter(errors.values())), dict)
            ):
                errors = next(iter(errors.values()))
        elif isinstance(data, dict):  # flask_smorest.abort(code, message=..., errors=...)
            errors = data.get("errors")
            message = data.get("message") or message
        body = error_body(code, error.name, message, in_our_words(errors))
        extra = {k: v for k, v in headers.items() if k in ("Allow", "Retry-After")}
        if code == 401:
            extra["WWW-Authenticate"] = 'Bearer realm="overdracht"'
        return body, code, extra
    title = _titles().get(code) or _("Error")
    response = render_template("errors/error.html", code=code, title=title, message=message)
    return response, code, {k: v for k, v in headers.items() if k in ("Allow", "Retry-After")}


def _retry_after(headers) -> int | None:
    """Seconds until a refused request may be made again: the response's own
    ``Retry-After``, else the breached limit's reset (Flask-Limiter adds the header only
    after this handler has run)."""
    value = str(headers.get("Retry-After", ""))
    if value.isdigit():
        return int(value)
    import time

    from app.extensions import limiter

    current = limiter.current_limit
    if current is None or not current.breached:
        return None
    return max(1, current.reset_at - int(time.time()))


def _in_words(seconds: int) -> str:
    """A wait as people say it: "58 minuten", "30 seconden", "3 uur"."""
    from datetime import timedelta

    from flask_babel import format_timedelta

    return format_timedelta(timedelta(seconds=seconds), threshold=2, add_direction=False)


def _upload_limit_mb() -> str:
    from flask import current_app

    return f"{current_app.config['MAX_UPLOAD_BYTES'] / (1024 * 1024):g}"


def handle_service_error(error: ServiceError):
    """A typed service error that no view turned into a form error: one status and one
    shape for pages and the API alike. The unit of work has rolled back by now."""
    _rollback()
    code = error.status
    message = error.translated() or _messages().get(code) or _("Something went wrong.")
    if isinstance(error, ValidationFailed):  # the fields say what is wrong
        message = _messages()[422]
    if wants_json():
        status = {404: "Not Found", 403: "Forbidden", 409: "Conflict"}.get(
            code, "Unprocessable Entity"
        )
        return error_body(code, status, message, error.by_field() or None), code
    title = _titles().get(code) or _("Error")
    if code == 404:  # a foreign object reads exactly like a missing one
        message = _messages()[404]
    return render_template("errors/error.html", code=code, title=title, message=message), code


def handle_storage_unavailable(error):
    """The blob store (S3, MinIO, Ceph) cannot be reached: 503, in the client's shape."""
    from werkzeug.exceptions import ServiceUnavailable

    _rollback()
    return handle_http_exception(ServiceUnavailable())


def register_errorhandlers(app: Flask) -> None:
    from app.storage import StorageUnavailable

    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(ServiceError, handle_service_error)
    app.register_error_handler(StorageUnavailable, handle_storage_unavailable)
