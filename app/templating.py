"""Template filters and translatable labels for the values the domain stores."""

from __future__ import annotations

from flask import Flask
from flask_babel import format_date, format_datetime, format_decimal, get_locale
from flask_babel import lazy_gettext as _l

from app.admin_settings.domain import BlockerKind
from app.admin_settings.models import (
    PACKAGE_LABELS,
    AdministrationState,
    DocumentKind,
    DocumentStatus,
    Plan,
)
from app.auth.models import Role

LABELS = {
    AdministrationState.ACTIVE: _l("Active"),
    AdministrationState.OFFERED: _l("Offered"),
    AdministrationState.MIGRATED: _l("Migrated"),
    DocumentStatus.PENDING: _l("To be decided"),
    DocumentStatus.APPROVED: _l("Approved"),
    DocumentStatus.REJECTED: _l("Rejected"),
    DocumentKind.PURCHASE_INVOICE: _l("Purchase invoice"),
    DocumentKind.SALES_INVOICE: _l("Sales invoice"),
    DocumentKind.RECEIPT: _l("Receipt"),
    DocumentKind.OTHER: _l("Other"),
    Plan.STANDARD: _l("Standard"),
    Plan.PREMIUM: _l("Premium"),
    Role.SUPERUSER: _l("Superuser"),
    Role.USER: _l("User"),
    Role.AUTHORIZER: _l("Authorizer"),
    Role.SUPPORT: _l("Support"),
    BlockerKind.AUTHORIZERS_IN_FLOWS: _l("Authorizers in authorization flows"),
    BlockerKind.ACTIVE_WORKFLOWS: _l("Active workflows"),
    BlockerKind.UNDECIDED_DOCUMENTS: _l("Documents still to be decided"),
}


def label(value) -> str:
    """A person's word for an enum value, in the current language."""
    if value in PACKAGE_LABELS:
        return PACKAGE_LABELS[value]
    return str(LABELS.get(value, value))


def filesize(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{format_decimal(round(size, 1))} {unit}" if unit != "B" else f"{n} B"
        size /= 1024
    return f"{n} B"


def register(app: Flask) -> None:
    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.filters["label"] = label
    app.jinja_env.filters["filesize"] = filesize
    app.jinja_env.filters["date"] = lambda d, fmt="medium": format_date(d, fmt) if d else ""
    app.jinja_env.filters["datetime"] = lambda d, fmt="medium": format_datetime(d, fmt) if d else ""
    app.jinja_env.filters["money"] = lambda amount, currency="EUR": (
        "" if amount is None else f"{currency} {format_decimal(amount, format='#,##0.00')}"
    )
