"""Template filters and translatable labels for the values the domain stores."""

from __future__ import annotations

import enum
import functools

from flask import Flask
from flask_babel import format_date, format_datetime, format_decimal, get_locale, get_timezone
from flask_babel import lazy_gettext as _l

from app.admin_settings.domain import BlockerKind
from app.admin_settings.models import (
    PACKAGE_LABELS,
    AdministrationState,
    DocumentKind,
    DocumentStatus,
    Package,
    Plan,
)
from app.auth.models import Role
from app.migration_files.models import ImportState
from app.transfers.models import ItemState, TransferState

# (member, word) pairs: string enums of different kinds compare equal when their values
# do (ItemState.OFFERED == AdministrationState.OFFERED), so they cannot be dict keys.
_LABELS = (
    (ImportState.UPLOADING, _l("Uploading")),
    (ImportState.CHECKING, _l("Being checked")),
    (ImportState.AWAITING_CONFIRMATION, _l("Awaiting confirmation")),
    (ImportState.REFUSED, _l("Refused")),
    (ImportState.QUEUED, _l("In the queue")),
    (ImportState.IMPORTING, _l("Being imported")),
    (ImportState.COMPLETED, _l("Done")),
    (ImportState.FAILED, _l("Failed")),
    (ImportState.CANCELLED, _l("Cancelled")),
    (AdministrationState.ACTIVE, _l("Active")),
    (AdministrationState.OFFERED, _l("Offered")),
    (AdministrationState.MIGRATED, _l("Migrated")),
    (DocumentStatus.PENDING, _l("To be decided")),
    (DocumentStatus.APPROVED, _l("Approved")),
    (DocumentStatus.REJECTED, _l("Rejected")),
    (DocumentKind.PURCHASE_INVOICE, _l("Purchase invoice")),
    (DocumentKind.SALES_INVOICE, _l("Sales invoice")),
    (DocumentKind.RECEIPT, _l("Receipt")),
    (DocumentKind.OTHER, _l("Other")),
    (Plan.STANDARD, _l("Standard")),
    (Plan.PREMIUM, _l("Premium")),
    (Role.SUPERUSER, _l("Superuser")),
    (Role.USER, _l("User")),
    (Role.AUTHORIZER, _l("Authorizer")),
    (Role.SUPPORT, _l("Support")),
    (ItemState.OFFERED, _l("Offered")),
    (ItemState.CLAIMING, _l("Being copied")),
    (ItemState.MIGRATED, _l("Migrated")),
    (ItemState.FAILED, _l("Failed")),
    (ItemState.REJECTED, _l("Turned down")),
    (ItemState.WITHDRAWN, _l("Withdrawn")),
    (ItemState.EXPIRED, _l("Expired")),
    (ItemState.REVOKED, _l("Revoked")),
    (TransferState.OFFERED, _l("Offered")),
    (TransferState.COMPLETED, _l("Completed")),
    (TransferState.WITHDRAWN, _l("Withdrawn")),
    (TransferState.EXPIRED, _l("Expired")),
    (TransferState.REVOKED, _l("Revoked")),
    (BlockerKind.AUTHORIZERS_IN_FLOWS, _l("Authorizers in authorization flows")),
    (BlockerKind.ACTIVE_WORKFLOWS, _l("Active workflows")),
    (BlockerKind.UNDECIDED_DOCUMENTS, _l("Documents still to be decided")),
)
# A locked document (imported already decided) is shown as "gemigreerd" whatever its status.
MIGRATED_DOCUMENT = _l("Migrated")

# Keyed by (kind, value); a bare string is looked up in ``_STRING_ORDER``.
LABELS = {(type(member), member.value): text for member, text in _LABELS}
_STRING_ORDER = (TransferState, ItemState, AdministrationState, DocumentStatus, Role, Plan)


def label(value) -> str:
    """A person's word for an enum value (or a bare state string), in the current language."""
    if isinstance(value, Package):
        return PACKAGE_LABELS[value]
    if isinstance(value, enum.Enum):
        key = (type(value), value.value)
        return _translated(key, get_locale()) if key in LABELS else value.value
    for kind in _STRING_ORDER:
        if (kind, value) in LABELS:
            return _translated((kind, value), get_locale())
    return str(value)


@functools.cache
def _translated(key: tuple, locale) -> str:
    """LABELS[key] in ``locale`` (the current one), translated once per process: a page
    of 50 rows asks for a handful of words 100 times over."""
    return str(LABELS[key])


def document_status(document) -> str:
    """The status word people see for a document: "gemigreerd" while it is locked."""
    if getattr(document, "locked", False):
        return str(MIGRATED_DOCUMENT)
    return label(document.status)


def import_state_label(state) -> str:
    """An import's state (the enum or its value) in words, on every page alike."""
    return label(ImportState(state))


def item_state_labels() -> dict[ItemState, str]:
    """Each item state's word in the current language, for searching by status."""
    return {state: label(state) for state in ItemState}


def label_package(value: str) -> str:
    """The accounting package's name for a stored package value."""
    try:
        return PACKAGE_LABELS[Package(value)]
    except ValueError:
        return value


def filesize(n: int | None) -> str:
    """A byte count for people: 512 B, 2,2 KB, 1 MB (the unit chosen after rounding)."""
    if n is None:
        return ""
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if round(size, 1) < 1024 or unit == "GB":
            return f"{format_decimal(round(size, 1))} {unit}"
    raise AssertionError("unreachable")


# One layout for every page and mail, in both languages: day, month name, year, and a
# 24-hour clock ("1 Dec 2026, 08:55", "1 dec 2026, 08:55"), never a month-first or
# two-digit year (CLDR's English "12/1/26"). Babel supplies the month names; the names of
# the formats are the ones templates pass ("short", "medium", "long", "full").
DATE_PATTERNS = {
    "short": "d MMM y",
    "medium": "d MMM y",
    "long": "d MMMM y",
    "full": "EEEE d MMMM y",
}
TIME_PATTERN = "HH:mm"


def format_day(d, fmt: str = "medium") -> str:
    """A calendar day for people: "1 Dec 2026" (en), "1 dec 2026" (nl); "" for none."""
    if not d:
        return ""
    return format_date(d, DATE_PATTERNS.get(fmt, fmt))


def format_moment(d, fmt: str = "medium") -> str:
    """A moment in the user's time zone and language: "1 Dec 2026, 08:55"; ``long`` and
    ``full`` spell the month out and name the time zone ("1 December 2026, 08:55 CET").
    Cached: the same rows of a list are shown again and again."""
    if not d:
        return ""
    return _formatted_datetime(d, fmt, get_locale(), get_timezone())


@functools.lru_cache(maxsize=8192)
def _formatted_datetime(d, fmt: str, locale, timezone) -> str:
    # ``locale`` and ``timezone`` are the request's current ones, which Babel uses here.
    if fmt not in DATE_PATTERNS:
        return format_datetime(d, fmt)  # an explicit Babel pattern
    shown = format_datetime(d, f"{DATE_PATTERNS[fmt]}, {TIME_PATTERN}")
    if fmt in ("long", "full"):
        shown += " " + (d.astimezone(timezone).tzname() or "")
    return shown.rstrip()


def register(app: Flask) -> None:
    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.filters["label"] = label
    app.jinja_env.globals["import_state_label"] = import_state_label
    app.jinja_env.filters["document_status"] = document_status
    app.jinja_env.filters["filesize"] = filesize
    app.jinja_env.filters["label_package"] = label_package
    app.jinja_env.filters["date"] = format_day
    app.jinja_env.filters["datetime"] = format_moment
    app.jinja_env.filters["money"] = lambda amount, currency="EUR": (
        "" if amount is None else f"{currency} {format_decimal(amount, format='#,##0.00')}"
    )
