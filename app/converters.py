"""Input bounds every request shares, checked before any view or service runs.

- Ids in paths are bounded to the database's integer range: the ``int`` converter is
  replaced, so ``/transfers/2147483648`` is a 404 like any other missing id.
- Text in the query string and in forms may not hold NUL bytes or lone surrogates:
  one ``before_request`` answers 422 for every page, form and API query at once, so no
  form or view can forget it (JSON bodies go through ``app.schemas.Text``).
- A JSON body nested deeper than ``MAX_JSON_DEPTH`` is a 400 before it is parsed: a
  scan over its brackets outside strings, which costs about nothing.
- ``OPTIONS`` is answered by Flask's default response before any blueprint's hooks,
  so it never looks at the user.

``arg_int``, ``page_arg`` and ``as_id`` parse numbers from forms and query strings of
the pages with the same bounds the API's schemas declare.
"""

from __future__ import annotations

import re

from flask import Flask, current_app, request
from flask_babel import gettext as _
from werkzeug.routing import IntegerConverter

from app.errors import N_, Invalid

MAX_ID = 2**31 - 1  # the database's integer range
MAX_OLDER_THAN_DAYS = 3650

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NUMBER = re.compile(r"-?[0-9]{1,20}")

NOT_A_NUMBER = N_("Enter a whole number from %(min)d to %(max)d.")
BAD_CHARACTERS = N_("This contains characters that are not allowed.")


class IdConverter(IntegerConverter):
    """``<int:...>`` limited to 0..2**31-1: a bigger id matches no route (404)."""

    def __init__(self, map, fixed_digits=0, min=None, max=MAX_ID, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def _id_param_schema(converter: IdConverter) -> dict:
    return {"type": "integer", "minimum": 0, "maximum": converter.max or MAX_ID}


def has_bad_text(value: str) -> bool:
    return _BAD_TEXT.search(value) is not None


def json_too_deep(data: bytes, limit: int) -> bool:
    """Whether ``data`` nests arrays and objects deeper than ``limit``, not counting
    brackets inside strings. Stops at the first level past the limit."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def as_id(value) -> int | None:
    """An id from a form or query string, or None when it is no id the database holds."""
    if value is None:
        return None
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ID else None


def arg_int(
    name: str, default: int | None = None, *, min: int, max: int, values=None
) -> int | None:
    """A whole number from the query string (or ``values``), within ``min``..``max``;
    blank is ``default``; anything else is a 422 for field ``name``."""
    raw = (request.args if values is None else values).get(name)
    if raw is None or not raw.strip():
        return default
    raw = raw.strip()
    if _NUMBER.fullmatch(raw) and min <= int(raw) <= max:
        return int(raw)
    raise Invalid(name, NOT_A_NUMBER, min=min, max=max)


def page_arg(name: str = "page", values=None) -> int:
    return arg_int(name, 1, min=1, max=current_app.config["MAX_PAGE"], values=values)


def id_arg(name: str, values=None) -> int | None:
    return arg_int(name, None, min=1, max=MAX_ID, values=values)


def _check_input():
    if request.method == "OPTIONS":
        if request.routing_exception is None:
            return current_app.make_default_options_response()
        return None
    sources = [request.args]
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and not request.is_json:
        sources.append(request.form)
    for source in sources:
        for key, values in source.lists():
            if has_bad_text(key) or any(has_bad_text(v) for v in values):
                raise Invalid(key if not has_bad_text(key) else "", BAD_CHARACTERS)
    if request.is_json and request.content_length != 0:
        limit = current_app.config["MAX_JSON_DEPTH"]
        if json_too_deep(request.get_data(cache=True), limit):
            from flask_smorest import abort

            abort(
                400,
                message=_("The request could not be understood. Reload the page and try again."),
                errors={"json": [_("Nested deeper than %(limit)d levels.", limit=limit)]},
            )
    return None


def register(app: Flask) -> None:
    """Called from ``create_app`` before the extensions and blueprints are set up."""
    from app.extensions import api
    from app.schemas import ErrorSchema

    app.url_map.converters["int"] = IdConverter
    api.ERROR_SCHEMA = ErrorSchema
    if not any(converter is IdConverter for converter, _func in api._converters):
        api.register_converter(IdConverter, _id_param_schema)
    app.before_request(_check_input)
